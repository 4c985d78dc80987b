package probes

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/acmediag/acmediag/internal/special"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/probes/tlscheck"
	"github.com/acmediag/acmediag/reports"
)

// KindTLS reads the certificate each address of a name serves.
const KindTLS reports.Kind = "tls"

// DefaultTLSInterval is the tls kind's interval: a served certificate
// changes at a renewal, days apart; five minutes sees a stale backend
// soon after one and keeps a handshake per name and vantage cheap.
const DefaultTLSInterval = 5 * time.Minute

// TLSPlan is the tls kind under a plan.
type TLSPlan struct {
	// Enabled is tls.enabled: whether targets that do not say are read.
	Enabled bool
	Roots   *x509.CertPool // nil: the system pool
	// ARI, when set, is the CA asked for its renewal window of the newest
	// certificate served (RFC 9773 renewalInfo).
	ARI     *canary.Config
	Horizon time.Duration // 0: reports.DefaultRenewalHorizon, capped at a third of the lifetime
}

// tlsKind connects to every address of a name on the HTTPS port from each
// vantage, with SNI, and records the chain served (tlscheck); for the
// newest leaf it asks the CA for its renewal window when the plan names
// one. Findings: tls.* per run; the renewal rule reads the facts across
// vantages (Plan.Renewal).
func tlsKind() KindSpec {
	return KindSpec{Kind: KindTLS, Remote: true, Lane: LaneProbes,
		Doc:     "the certificate each address serves on the HTTPS port (SNI): expiry, names, chain, trust, stale backends; the CA's renewal window (ARI)",
		Applies: func(p *Plan, t Target) bool { return p.TLS.On(t) && !strings.HasPrefix(t.Name, "*.") },
		Interval: func(p *Plan) time.Duration {
			if d, ok := p.Settings.Schedule.Intervals[string(KindTLS)]; ok {
				return time.Duration(d)
			}
			return DefaultTLSInterval
		},
		New: func(p *Plan) Probe {
			return ProbeFunc(func(ctx context.Context, t Target, v Vantage) reports.Observation {
				return p.Env.inspectTLS(ctx, p.TLS, t, v)
			})
		}}
}

func (e *Env) inspectTLS(ctx context.Context, tp *TLSPlan, t Target, v Vantage) reports.Observation {
	if tp == nil {
		tp = &TLSPlan{}
	}
	obs, done := e.observe(t, v, KindTLS)
	check := reports.Check{Name: "tls.served", Target: t.Name}
	v6, v4, err := e.sessions().For(v).LookupHost(ctx, t.Name)
	var addrs []netip.Addr
	for _, a := range append(v6, v4...) {
		// What DNS says is never a reason to connect to a reserved
		// address (the DNS probe reports those, as http-01 does).
		if special.ReservedReason(a.Unmap(), e.Validator.Allow) == "" {
			addrs = append(addrs, a)
		}
	}
	if err != nil || len(addrs) == 0 {
		check.Status, check.Note = reports.CheckSkipped, "no address to connect to"
		obs.Checks = []reports.Check{check}
		obs = done(obs).Finish()
		obs.OK = false
		return obs
	}
	res := e.Shared.tlsChecker(v.Name, e).Inspect(ctx, tlscheck.Request{Name: t.Name, Addrs: addrs, Port: e.Validator.HTTPSPort,
		LocalAddr: v.SourceAddr, Roots: tp.Roots, Now: e.Clock.Now()})
	facts := &reports.TLSFacts{Served: res.Served("")}
	obs.Findings = res.Findings
	if tp.ARI != nil {
		if f, ok := e.askARI(ctx, tp, t.Name, res, facts); ok {
			obs.Findings = append(obs.Findings, f)
		}
	}
	obs = done(obs)
	obs.TLS = facts
	check.Duration = obs.Duration
	check.Status = reports.CheckOK
	if newest, ok := facts.Newest(); ok {
		check.Note = fmt.Sprintf("serial %s, expires %s", newest.Serial, newest.NotAfter.UTC().Format(time.RFC3339))
	}
	obs.Checks = []reports.Check{check}
	obs = obs.Finish()
	if !obs.OK {
		check.Status = reports.CheckFail
	} else if len(obs.Findings) > 0 {
		check.Status = reports.CheckWarn
	}
	obs.Checks[0] = check
	return obs
}

// askARI fetches the CA's window for the newest leaf served (through the
// shared cache, which honours the CA's Retry-After); a failure the rule
// cannot do without is a finding.
func (e *Env) askARI(ctx context.Context, tp *TLSPlan, name string, res tlscheck.Result, facts *reports.TLSFacts) (reports.Finding, bool) {
	newest, ok := facts.Newest()
	if !ok || newest.AKI == "" {
		return reports.Finding{}, false
	}
	id, err := canary.ARICertIDFromFacts(newest.AKI, newest.Serial)
	if err != nil {
		return reports.Finding{}, false
	}
	cfg := *tp.ARI
	cfg.Clock = e.Clock.Now
	w, err := e.Shared.ARI.RenewalInfoByID(ctx, cfg, id)
	if err != nil {
		return canary.ARIErrorFinding(name, err)
	}
	facts.ARI, facts.ARISerial = w.ARI(), newest.Serial
	return reports.Finding{}, false
}

// tlsCheckers keeps one tlscheck.Checker per vantage: each remembers the
// judgement of the chains it saw, so a renewal-free day costs a handshake
// and a hash per run, not a chain verification.
type tlsCheckers struct {
	mu sync.Mutex
	by map[string]*tlscheck.Checker
}

func (s *Shared) tlsChecker(vantage string, e *Env) *tlscheck.Checker {
	s.tls.mu.Lock()
	defer s.tls.mu.Unlock()
	if s.tls.by == nil {
		s.tls.by = map[string]*tlscheck.Checker{}
	}
	c := s.tls.by[vantage]
	if c == nil {
		c = &tlscheck.Checker{Logger: e.Logger.Named("tlscheck"), Clock: e.Clock.Now}
		s.tls.by[vantage] = c
	}
	return c
}

// On says whether the tls kind reads t: its own tls key, else
// tls.enabled.
func (tp *TLSPlan) On(t Target) bool {
	if tp == nil {
		return false
	}
	if t.TLS != nil {
		return *t.TLS
	}
	return tp.Enabled
}

// tls validates the tls settings into the plan's TLSPlan.
func (b *builder) tls() *TLSPlan {
	s := b.s.TLS
	tp := &TLSPlan{Enabled: s.Enabled, Horizon: time.Duration(s.RenewalHorizon)}
	if tp.Horizon < 0 {
		b.errf("tls.renewal_horizon", "%s: want 0 (7 days, or a third of the lifetime) or a positive duration", tp.Horizon)
	}
	if s.Roots != "" {
		pem, err := os.ReadFile(s.Roots)
		switch {
		case err != nil:
			b.errf("tls.roots", "%v", err)
		default:
			tp.Roots = x509.NewCertPool()
			if !tp.Roots.AppendCertsFromPEM(pem) {
				b.errf("tls.roots", "%s holds no PEM certificate", s.Roots)
			}
		}
	}
	if s.ARIDirectory != "" {
		u, err := url.Parse(s.ARIDirectory)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			b.errf("tls.ari_directory", "%q is not an https URL of an ACME directory", truncate(s.ARIDirectory, 80))
		}
		if s.ARICACert != "" {
			if _, err := os.Stat(s.ARICACert); err != nil {
				b.errf("tls.ari_ca_cert", "%v", err)
			}
		}
		// Asking for renewalInfo is a read: production directories are
		// fine here, unlike for the canary's orders.
		tp.ARI = &canary.Config{DirectoryURL: s.ARIDirectory, CACertFile: s.ARICACert, AllowProduction: true, Logger: b.opts.Logger}
	} else if s.ARICACert != "" {
		b.errf("tls.ari_ca_cert", "set without tls.ari_directory")
	}
	return tp
}
