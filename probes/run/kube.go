package run

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cert-manager/cert-manager/pkg/client/clientset/versioned"
	"go.uber.org/zap"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/renewals"
	"github.com/acmediag/acmediag/reports"
)

// KubeOptions say which cert-manager object `diagnose --kube` reads and
// how to reach its API server.
type KubeOptions struct {
	// Object is KIND/NAME: certificate/NAME, order/NAME or challenge/NAME.
	Object string
	// Kubeconfig is the kubeconfig file; "" follows kubectl's rules
	// ($KUBECONFIG, ~/.kube/config, then the in-cluster config).
	Kubeconfig string
	// Namespace is the object's namespace; "" is the kubeconfig context's.
	Namespace string
	// Config, when set, is used instead of any kubeconfig (tests).
	Config *rest.Config
}

// DiagnoseKube diagnoses one cert-manager object: it reads the object and
// its chain (Certificate → CertificateRequests → Orders → Challenges) with
// Get and List, runs the checks the CA will run for its Challenges with
// their own token and key (every Challenge of an Order; for a Certificate,
// those of its newest attempt still open, or its names when none is), adds
// what each Challenge's solver explains (renewals.Check), and puts the
// Certificate's timeline in the report. Errors reading the cluster say
// which object and, when refused, which verb on which resource.
func DiagnoseKube(ctx context.Context, s probes.Settings, k KubeOptions, opts DiagnoseOptions) (*reports.Report, error) {
	ref, err := renewals.ParseRef(k.Object)
	if err != nil {
		return nil, &probes.SettingsError{Issues: []probes.Issue{{Key: "--kube", Msg: err.Error()}}}
	}
	cfg, ns, err := kubeConfig(k)
	if err != nil {
		return nil, &probes.SettingsError{Issues: []probes.Issue{{Key: "--kubeconfig", Msg: err.Error()}}}
	}
	cs, err := versioned.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("cert-manager client: %w", err)
	}
	path, err := renewals.ReadPath(ctx, cs, ns, ref)
	var pathNote string
	switch {
	case err == nil:
	case path != nil && errors.Is(err, renewals.ErrNoCertificate):
		// A Challenge or Order on its own can still be checked.
		pathNote = err.Error()
	default:
		return nil, fmt.Errorf("diagnose %s: %w", ref, err)
	}
	var checks []renewals.Check
	for _, ch := range path.Focus {
		if c := renewals.CheckFor(ch); ref.Kind == "challenge" || c.Open() {
			checks = append(checks, c)
		}
	}
	s.Targets = kubeTargets(path, checks)
	if len(s.Targets) == 0 {
		return nil, fmt.Errorf("diagnose %s: nothing to check: no Challenge and no dnsNames", ref)
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	opts.Extend = func(ctx context.Context, p *probes.Plan, r *reports.Report) {
		explainChallenges(ctx, p, r, checks, logger)
		if path.Chain.Certificate != nil {
			r.Timelines = append(r.Timelines, renewals.BuildTimeline(path.Chain))
		}
		if pathNote != "" {
			r.Checks = append(r.Checks, reports.Check{Name: "certmanager.path", Target: ref.String(), Status: reports.CheckWarn, Note: pathNote})
		}
	}
	return Diagnose(ctx, s, opts)
}

// kubeConfig is the REST config and namespace of k.
func kubeConfig(k KubeOptions) (*rest.Config, string, error) {
	if k.Config != nil {
		return k.Config, cmp.Or(k.Namespace, "default"), nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.Kubeconfig
	over := &clientcmd.ConfigOverrides{}
	over.Context.Namespace = k.Namespace
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", err
	}
	return cfg, ns, nil
}

// kubeTargets are the names to probe: each Challenge's, with its token and
// key; without Challenges, the Certificate's dnsNames with the challenge
// type its newest Challenge of that name used.
func kubeTargets(p *renewals.Path, checks []renewals.Check) []probes.Target {
	var out []probes.Target
	seen := map[string]bool{}
	for _, c := range checks {
		if seen[c.Name] {
			continue
		}
		seen[c.Name] = true
		t := probes.Target{Name: c.Name, Challenge: c.Type}
		switch c.Type {
		case reports.DNS01:
			t.ExpectTXT = c.Key
		case reports.HTTP01:
			t.Token, t.KeyAuth = c.Token, c.Key
		}
		out = append(out, t)
	}
	if len(out) > 0 || p.Chain.Certificate == nil {
		return out
	}
	last := map[string]reports.Challenge{}
	tl := renewals.BuildTimeline(p.Chain)
	for _, a := range tl.Attempts {
		if a.Order == nil {
			continue
		}
		for _, ch := range a.Order.Challenges {
			last[ch.DNSName] = ch.Type
		}
	}
	for _, n := range p.Chain.Certificate.Spec.DNSNames {
		if !seen[n] {
			seen[n] = true
			out = append(out, probes.Target{Name: n, Challenge: last[n]})
		}
	}
	return out
}

// explainChallenges adds what each Challenge's solver explains to the
// report: for dns-01 the record at every authoritative server and at an
// rfc2136 solver's own server, for http-01 the ingress or route that
// should answer.
func explainChallenges(ctx context.Context, p *probes.Plan, r *reports.Report, checks []renewals.Check, log *zap.Logger) {
	for _, c := range checks {
		switch c.Type {
		case reports.HTTP01:
			r.Findings = c.AnnotateHTTP01(r.Findings)
		case reports.DNS01:
			if c.Key == "" {
				continue
			}
			var extra []netip.AddrPort
			if c.Solver.Server.IsValid() {
				extra = append(extra, c.Solver.Server)
			}
			view, err := p.AskTXT(ctx, c.Name, extra...)
			if err != nil {
				// The DNS probe reports why the zone cannot be found.
				log.Debug("solver check: no zone", zap.String("name", c.Name), zap.Error(err))
				continue
			}
			facts := renewals.DNS01Facts{Owner: view.Owner, Zone: view.Zone}
			for _, s := range view.Servers {
				facts.Servers = append(facts.Servers, txtAnswer(s))
			}
			if len(view.Extra) > 0 {
				a := txtAnswer(view.Extra[0])
				facts.Solver = &a
				status, note := reports.CheckFail, "the solver's server does not hold the challenge's value: "+a.Answer
				if slices.Contains(a.Values, c.Key) {
					status, note = reports.CheckOK, "the solver's server holds the challenge's value"
				}
				r.Checks = append(r.Checks, reports.Check{Name: "certmanager.solver_server", Target: c.Name, Server: a.Addr.String(), Status: status, Note: note})
			}
			r.Findings = append(r.Findings, c.ExplainDNS01(facts)...)
		}
	}
}

func txtAnswer(s probes.ServerTXT) renewals.TXTAnswer {
	return renewals.TXTAnswer{Host: s.Host, Addr: s.Addr, Values: s.Values, Answer: s.Answer}
}
