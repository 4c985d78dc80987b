// Package renewals is the cluster face of acmediag: it watches
// cert-manager's Certificates, CertificateRequests, Orders, Challenges,
// Issuers and ClusterIssuers through cert-manager's own typed clientset,
// informers and listers (one watch per resource type), and turns them into
//
//   - targets: every dnsNames entry of every Certificate, with the challenge
//     type and solver its Issuer would pick (cert-manager's solver selection);
//   - explanations: each failed renewal attempt (a Challenge invalid or
//     errored, an Order invalid, Issuing=False after a failed request, a
//     Challenge stuck in its self-check) ranked against what every vantage
//     observed of the same names (reports.Correlate), written as a Warning
//     Event on the Certificate (reason RenewalDiagnosis, one per attempt) and
//     as the finding renewal.failed;
//   - the renewal rule (reports.AssessRenewal) on the Certificate's
//     renewalTime, and cert-manager's own state: renewal.backoff,
//     issuer.not_ready, certmanager.self_check_blocked;
//   - timelines: a Certificate's attempts (requests, orders, challenges) as
//     reports.Timeline, for the daemon's API and page and for diagnose --kube;
//   - for a stuck Challenge, the checks the CA will run with its own token and
//     key (CheckFor), plus what its solver's configuration explains beyond
//     them (record_not_replicated, wrong_zone, the ingress route).
//
// It never writes to cert-manager's resources; Events are its only writes.
// It knows nothing of scheduling: the daemon (probes/run) hands it the
// observations and takes its targets (Options), and runs Watcher.Run as
// leader-only work.
package renewals
