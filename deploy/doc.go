// Package deploy holds what a cluster installs — the Helm chart in
// helm/acmediag, with the alerts (files/alerts.yaml) and the Grafana
// dashboards (files/dashboards) inside it — and the tests that prove each
// with the real tool: helm lints and renders it, a real kube-apiserver
// takes the objects and holds the ServiceAccount to the RBAC rules,
// promtool checks and tests the alerts over a simulated month, and a real
// Prometheus scrapes a real daemon, evaluates the rules and every
// dashboard query. It has no Go code of its own to import.
package deploy
