package probes

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// propagationPort is the universe port of the propagation tests and
// benchmark: their own, so they run beside other packages' universes.
const propagationPort = 11053

// startPropagationUniverse starts the universe for one test or benchmark.
func startPropagationUniverse(tb testing.TB, log *zap.Logger) *testenv.Universe {
	tb.Helper()
	if testing.Short() {
		tb.Skip("runs the universe")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: propagationPort, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = u.Close() })
	return u
}

// universeSettings points the settings at u, as the daemon's file would.
func universeSettings(u *testenv.Universe, targets ...Target) Settings {
	s := DefaultSettings()
	s.DNS.Roots = u.Roots()
	s.DNS.Resolvers = []string{u.Resolver()}
	s.DNS.TrustAnchor = u.TrustAnchorFile()
	s.DNS.DNSPort = u.Port()
	s.DNS.AllowAddresses = []string{"127.0.0.0/8", "::1/128"}
	s.DNS.QueryTimeout = Duration(time.Second)
	s.HTTP = HTTPSettings{HTTPPort: u.HTTPPort(), HTTPSPort: u.HTTPSPort()}
	s.Targets = targets
	return s
}

// stepEngine runs the engine's timeline on the fake clock up to until: wait
// until every lane is idle, call before with the time the clock moves to
// next (the test stages what happens then), move it, repeat.
func stepEngine(t *testing.T, e *Engine, clk *fakeClock, until time.Time, before func(next time.Time)) {
	t.Helper()
	for {
		next := time.Time{}
		for _, s := range e.schedulers() {
			wake := waitIdle(t, s, clk)
			if !wake.IsZero() && (next.IsZero() || wake.Before(next)) {
				next = wake
			}
		}
		if next.IsZero() || next.After(until) {
			next = until
		}
		if before != nil {
			before(next)
		}
		clk.Set(next)
		if !next.Before(until) {
			return
		}
	}
}

// waitIdle waits (bounded: 10 s of real time) until the scheduler sleeps
// with nothing in flight; it returns when it will wake (zero: never).
func waitIdle(t *testing.T, s *Scheduler, clk *fakeClock) time.Time {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if next, ok := s.idle(); ok && (next.IsZero() || next.After(clk.Now())) {
			return next
		}
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatal("the scheduler did not become idle within 10 s")
	return time.Time{}
}

// TestPropagationWatch watches values reach the servers of their zone on
// the engine's fake clock: each server gets the value at its time (the test
// sets it as the clock passes), and the watch must see it at its first run
// from then, never before, polling no address more than PropagationMaxRate
// times a second; a secondary that never gets it is named once the watch
// times out, one that gets it later than the issuer waits is slow.
func TestPropagationWatch(t *testing.T) {
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	u := startPropagationUniverse(t, log)
	never := time.Duration(-1)
	cases := []struct {
		desc        string
		name        string // the domain watched
		zone, owner string // where the TXT lives (after CNAMEs)
		schedule    map[string]time.Duration
		timeout     time.Duration
		wait        time.Duration // the issuer's wait (propagation_slow)
		everywhere  bool
		codes       []reports.Code
	}{
		{desc: "plain zone, secondary 0.7 s behind", name: "www.txtmissing.com",
			zone: "txtmissing.com", owner: "_acme-challenge.www.txtmissing.com",
			schedule: map[string]time.Duration{"txtmissing.com-ns1": 0, "txtmissing.com-ns2": 700 * time.Millisecond},
			timeout:  10 * time.Second, everywhere: true},
		{desc: "through a CNAME into a signed zone, both late", name: "www.dns01-cname.com",
			zone: "acme-delegate.net", owner: "www-dns01-cname.acme-delegate.net",
			schedule: map[string]time.Duration{"acme-delegate.net-ns1": 300 * time.Millisecond, "acme-delegate.net-ns2": 1300 * time.Millisecond},
			timeout:  10 * time.Second, everywhere: true},
		{desc: "slower than the issuer waits", name: "www.dns01-ok.com",
			zone: "dns01-ok.com", owner: "_acme-challenge.www.dns01-ok.com",
			schedule: map[string]time.Duration{"dns01-ok.com-ns1": 200 * time.Millisecond, "dns01-ok.com-ns2": 4 * time.Second},
			timeout:  10 * time.Second, wait: 3 * time.Second, everywhere: true,
			codes: []reports.Code{reports.CodeDNS01PropagationSlow}},
		{desc: "a secondary that never gets it", name: "app.txtmissing.com",
			zone: "txtmissing.com", owner: "_acme-challenge.app.txtmissing.com",
			schedule: map[string]time.Duration{"txtmissing.com-ns1": 100 * time.Millisecond, "txtmissing.com-ns2": never},
			timeout:  5 * time.Second, codes: []reports.Code{reports.CodeDNS01TXTNotPropagated}},
	}
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, nil, nil, "test")
	everywhere := 0
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			value := "v-" + strings.ReplaceAll(tc.desc, " ", "-")[:min(40, len(tc.desc))]
			s := universeSettings(u, Target{Name: tc.name, Challenge: reports.DNS01, ExpectTXT: value})
			s.Propagation = PropagationSettings{Timeout: Duration(tc.timeout), IssuerWait: Duration(tc.wait), Concurrency: 1}
			clk := newFakeClock(t0)
			plan, err := Build(s, BuildOptions{Logger: log, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			store := NewStore(StoreLimits{PerKey: 1000, MaxBytes: 64 << 20})
			// Each server gets the value when the clock reaches its time.
			pending := map[string]time.Duration{}
			for id, d := range tc.schedule {
				if d >= 0 {
					pending[id] = d
				}
			}
			stage := func(now time.Time) {
				for id, d := range pending {
					if !t0.Add(d).After(now) {
						if err := u.SetTXT(tc.zone, tc.owner, []string{value}, id); err != nil {
							t.Fatal(err)
						}
						delete(pending, id)
					}
				}
			}
			stage(t0)
			e := NewEngine(store, metrics, log, clk)
			e.SetPlan(plan)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); e.Run(ctx) }()
			defer func() { cancel(); <-done }()
			stepEngine(t, e, clk, t0.Add(tc.timeout+3*time.Second), stage)
			if tc.everywhere {
				everywhere++
			}

			var runs []reports.Observation
			for _, o := range store.Query(tc.name, time.Time{}) {
				if o.Kind == KindPropagation {
					runs = append(runs, o)
				}
			}
			if len(runs) < 2 {
				t.Fatalf("%d propagation runs", len(runs))
			}
			last := runs[len(runs)-1]
			// Every address of every server of the zone has a check.
			want := map[string]time.Duration{}
			for id, d := range tc.schedule {
				for _, a := range u.Server(id).Addrs() {
					want[a] = d
				}
			}
			var served int
			for _, c := range last.Checks {
				if c.Server == "" {
					continue
				}
				addr := c.Server[strings.LastIndex(c.Server, "(")+1 : len(c.Server)-1]
				sched, ok := want[addr]
				if !ok {
					t.Errorf("check %q is not a server of %s", c.Server, tc.zone)
					continue
				}
				delete(want, addr)
				if (c.Status == reports.CheckOK) != (sched >= 0) {
					t.Errorf("%s: status %s, scheduled at %v", c.Server, c.Status, sched)
					continue
				}
				if sched < 0 {
					if c.Status != reports.CheckFail || !strings.Contains(c.Note, "NXDOMAIN") && !strings.Contains(c.Note, "no TXT") {
						t.Errorf("%s: %s %q, want failed with the missing record", c.Server, c.Status, c.Note)
					}
					continue
				}
				served++
				// Seen at the first run at or after the value was set.
				first := slices.IndexFunc(runs, func(o reports.Observation) bool { return !o.Start.Before(t0.Add(sched)) })
				if first < 0 || c.Duration != runs[first].Start.Sub(t0) && !(sched == 0 && c.Duration == time.Nanosecond) {
					t.Errorf("%s: first seen after %v, set at %v; the first run from then was at %v", c.Server, c.Duration, sched,
						runs[max(first, 0)].Start.Sub(t0))
				}
			}
			if len(want) > 0 {
				t.Errorf("no check for %v", want)
			}
			// No one-second window holds more than PropagationMaxRate polls.
			for i := range runs {
				j := i
				for j < len(runs) && runs[j].Start.Sub(runs[i].Start) < time.Second {
					j++
				}
				if j-i > PropagationMaxRate {
					t.Errorf("%d polls within a second from %v", j-i, runs[i].Start.Sub(t0))
					break
				}
			}
			var codes []reports.Code
			for _, f := range last.Findings {
				codes = append(codes, f.Code)
				if f.Code == reports.CodeDNS01TXTNotPropagated && !strings.Contains(f.Detail, u.Server(tc.zone + "-ns2").Addrs()[0]) {
					t.Errorf("the finding does not name the lagging server: %s", f.Detail)
				}
			}
			if !slices.Equal(codes, tc.codes) {
				t.Errorf("findings %v, want %v", codes, tc.codes)
			}
		})
	}
	// One histogram observation per watch that got everywhere.
	var count uint64
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "acmediag_propagation_seconds" {
			count = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if count != uint64(everywhere) || everywhere == 0 {
		t.Errorf("acmediag_propagation_seconds count %d, want %d", count, everywhere)
	}
}

// A canary order's wait is the same watch, run through the engine: nil
// once the value is everywhere, an error naming the lagging address when
// the order gives up first.
func TestPropagationAwait(t *testing.T) {
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	u := startPropagationUniverse(t, log)
	cases := []struct {
		desc    string
		servers []string
		wantErr string
	}{
		{desc: "everywhere", servers: []string{"dns01-ok.com-ns1", "dns01-ok.com-ns2"}},
		{desc: "one server lacks it", servers: []string{"dns01-ok.com-ns1"}, wantErr: u.Server("dns01-ok.com-ns2").Addrs()[0]},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			value := "canary-" + strings.ReplaceAll(tc.desc, " ", "-")
			if err := u.SetTXT("dns01-ok.com", "_acme-challenge.www.dns01-ok.com", []string{value}, tc.servers...); err != nil {
				t.Fatal(err)
			}
			// A canary-only dns-01 target: no expect_txt; the order's value is
			// the one watched.
			s := universeSettings(u, Target{Name: "www.dns01-ok.com", Challenge: reports.DNS01, ExpectTXT: "x"})
			clk := newFakeClock(t0)
			plan, err := Build(s, BuildOptions{Logger: log, Clock: clk})
			if err != nil {
				t.Fatal(err)
			}
			e := NewEngine(NewStore(StoreLimits{}), nil, log, clk)
			e.SetPlan(plan)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); e.Run(ctx) }()
			defer func() { cancel(); <-done }()
			awaitCtx, giveUp := context.WithCancel(ctx)
			res := make(chan error, 1)
			go func() {
				res <- plan.Env.canaryWait("www.dns01-ok.com")(awaitCtx, "_acme-challenge.www.dns01-ok.com.", value)
			}()
			stepEngine(t, e, clk, t0.Add(5*time.Second), nil)
			giveUp()
			select {
			case err = <-res:
			case <-time.After(10 * time.Second):
				t.Fatal("the wait did not return")
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !errors.Is(err, context.Canceled)):
				t.Errorf("error %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}
