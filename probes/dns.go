package probes

import (
	"context"
	"sync"
	"time"

	"github.com/acmediag/acmediag/dnscheck"
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
	c.LocalAddr = v.SourceAddr
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

// DNSProbe checks everything DNS: delegation, every authoritative server,
// addresses or the dns-01 TXT record, CAA, DNSSEC.
type DNSProbe struct{ Sessions *Sessions }

// Kind implements Probe.
func (p *DNSProbe) Kind() string { return "dns" }

// Run implements Probe.
func (p *DNSProbe) Run(ctx context.Context, t Target, v Vantage) Observation {
	start := time.Now()
	res := p.Sessions.For(v).Check(ctx, dnscheck.Request{Name: t.Name, Challenge: t.Challenge, ExpectTXT: t.ExpectTXT})
	return finish(Observation{Target: t, Vantage: v, Kind: p.Kind(), Start: start, Duration: time.Since(start),
		Findings: res.Findings, Checks: res.Checks, Trace: res})
}
