package probes

import (
	"context"
	"sync"
	"time"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/reports"
)

// Sessions hands out one dnscheck session per vantage for a round of
// probes, so the DNS probe and the challenge probes of the same vantage
// share answers (and dead addresses) instead of asking twice.
type Sessions struct {
	Checker dnscheck.Checker // the base configuration; each vantage overrides source address and resolvers

	mu sync.Mutex
	m  map[string]*dnscheck.Session
}

// For returns the vantage's session for this round.
func (s *Sessions) For(v Vantage) *dnscheck.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*dnscheck.Session{}
	}
	if sess, ok := s.m[v.Name]; ok {
		return sess
	}
	c := s.Checker
	if v.SourceAddr.IsValid() {
		// A run made from no vantage keeps the checker's own source.
		c.LocalAddr = v.SourceAddr
	}
	if len(v.Resolvers) > 0 {
		c.Resolvers = v.Resolvers
	}
	if c.Logger != nil {
		c.Logger = c.Logger.With(zapVantage(v))
	}
	sess := c.NewSession()
	s.m[v.Name] = sess
	return sess
}

// Stats adds up the work of every session of the round.
func (s *Sessions) Stats() dnscheck.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var total dnscheck.Stats
	for _, sess := range s.m {
		st := sess.Stats()
		total.Queries += st.Queries
		total.Timeouts += st.Timeouts
	}
	return total
}

// dnsKind checks everything DNS from each vantage: delegation, every
// authoritative server, addresses or the dns-01 TXT record, CAA, DNSSEC.
func dnsKind() KindSpec {
	return KindSpec{Kind: KindDNS, Remote: true, Lane: LaneProbes,
		Doc: "delegation, every authoritative server, addresses or the dns-01 TXT record, CAA and DNSSEC",
		New: func(p *Plan) Probe {
			env := p.Env
			return ProbeFunc(func(ctx context.Context, t Target, v Vantage) reports.Observation {
				o, done := env.observe(t, v, KindDNS)
				res := env.sessions().For(v).Check(ctx, dnscheck.Request{Name: t.Name, Challenge: t.Challenge, ExpectTXT: t.ExpectTXT})
				o.Findings, o.Checks = res.Findings, res.Checks
				return done(o).Finish()
			})
		}}
}

// observe starts the observation of one run of kind for t from v: its
// start on the plan's clock (what correlation and queries compare), and
// done sets its duration, measured on the monotonic clock (what the run
// cost).
func (e *Env) observe(t Target, v Vantage, kind reports.Kind) (o reports.Observation, done func(reports.Observation) reports.Observation) {
	o = reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: kind, Start: e.Clock.Now()}
	t0 := time.Now()
	return o, func(o reports.Observation) reports.Observation {
		o.Duration = time.Since(t0)
		return o
	}
}
