package probes

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// acmeKind asks a real ACME server (a staging directory, or Pebble in the
// test universe) to validate the target: the CA's own verdict, from the
// CA's own perspectives, which no local probe can stand in for. An http-01
// name gets a probe order (the token is not served; a 404 from the right
// server is a pass) or, with a serve address, a full order; a dns-01 name
// gets a full order whose record the DNS provider publishes, answered once
// the propagation watch saw it everywhere.
func acmeKind() KindSpec {
	return KindSpec{Kind: KindACME, Once: true, Lane: LaneCanary,
		Doc: "an order at the ACME directory: the CA's own verdict",
		Applies: func(p *Plan, t Target) bool {
			c := p.Canary
			return c != nil && c.Names[t.Name] && (t.Challenge == reports.HTTP01 || t.Challenge == reports.DNS01 && c.DNSProvider != nil)
		},
		Interval: func(p *Plan) time.Duration {
			if p.Canary == nil {
				return DefaultCanaryInterval
			}
			return p.Canary.Interval
		},
		New: func(p *Plan) Probe {
			return ProbeFunc(func(ctx context.Context, t Target, v Vantage) reports.Observation { return p.order(ctx, t, v) })
		},
		Record: func(m *Metrics, o reports.Observation) { m.observeOrder(o) }}
}

// order places one order for t and records the CA's verdict.
func (p *Plan) order(ctx context.Context, t Target, v Vantage) reports.Observation {
	c, env := p.Canary, p.Env
	obs, done := env.observe(t, v, KindACME)
	var out canary.Outcome
	switch {
	case t.Challenge == reports.DNS01:
		cfg := c.Config
		// The order waits until every authoritative server address serves
		// its value: the propagation watch of the name.
		cfg.DNS01Propagation = env.canaryWait(t.Name)
		defer env.Shared.records.lock(t.Name)()
		out = canary.DNS01Order(ctx, cfg, t.Name, c.DNSProvider)
	case c.Tokens != nil:
		out = canary.FullOrder(ctx, c.Config, t.Name, c.Tokens)
	default:
		out = canary.ProbeOrder(ctx, c.Config, t.Name)
	}
	obs = done(obs)
	for _, s := range out.Steps {
		ck := reports.Check{Name: "acme." + s.Name, Target: t.Name, Status: reports.CheckOK, Duration: s.Duration}
		if s.Err != "" {
			ck.Status, ck.Note = reports.CheckFail, s.Err
		}
		obs.Checks = append(obs.Checks, ck)
	}
	obs.Findings = out.Findings
	obs.Trace.Problem = out.Problem
	if out.Err != nil {
		// Refused here, before (or instead of) asking the CA.
		obs.Checks = append(obs.Checks, reports.Check{Name: "acme.order", Target: t.Name, Status: reports.CheckFail, Note: out.Err.Error()})
	}
	obs = obs.Finish()
	obs.OK = obs.OK && out.Err == nil
	return obs
}

// recordLocks serializes the canary's dns-01 orders whose TXT records
// share an owner name (a wildcard and its base name both publish at
// _acme-challenge.BASE): lego providers such as dnsupdate replace the whole
// TXT set when they publish, so two orders at once would delete each
// other's value and both fail for no fault of the user's.
type recordLocks struct {
	mu sync.Mutex
	m  map[string]*recordLock
}

type recordLock struct {
	sync.Mutex
	users int // holders and waiters; the entry goes with the last
}

// lock waits until no other order publishes at name's record, and returns
// the unlock.
func (l *recordLocks) lock(name string) (unlock func()) {
	owner := strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(name, "."), "*."))
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*recordLock{}
	}
	rl := l.m[owner]
	if rl == nil {
		rl = &recordLock{}
		l.m[owner] = rl
	}
	rl.users++
	l.mu.Unlock()
	rl.Lock()
	return func() {
		rl.Unlock()
		l.mu.Lock()
		if rl.users--; rl.users == 0 {
			delete(l.m, owner)
		}
		l.mu.Unlock()
	}
}
