package probes

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// propagationPort is the universe port of the propagation tests and
// benchmark: their own, so they run beside other packages' universes.
const propagationPort = 11053

// startPropagationUniverse starts the universe for one test or benchmark.
func startPropagationUniverse(tb testing.TB, log *zap.Logger) *testenv.Universe {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: propagationPort, Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = u.Close() })
	return u
}

// universeChecker is a Checker pointed at u's roots.
func universeChecker(tb testing.TB, u *testenv.Universe, log *zap.Logger) dnscheck.Checker {
	tb.Helper()
	var roots []netip.Addr
	for _, r := range u.Roots() {
		a, err := netip.ParseAddr(r)
		if err != nil {
			tb.Fatal(err)
		}
		roots = append(roots, a)
	}
	return dnscheck.Checker{Roots: roots, Port: uint16(u.Port()), QueryTimeout: time.Second,
		Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, Logger: log}
}

// stage sets the TXT value at owner in zone on each server at its time
// after t0 (a negative time: never), in a goroutine per server.
func stage(tb testing.TB, u *testenv.Universe, zone, owner, value string, t0 time.Time, at map[string]time.Duration) *sync.WaitGroup {
	var wg sync.WaitGroup
	for server, d := range at {
		if d < 0 {
			continue
		}
		wg.Go(func() {
			time.Sleep(time.Until(t0.Add(d)))
			if err := u.SetTXT(zone, owner, []string{value}, server); err != nil {
				tb.Errorf("staging %s on %s: %v", value, server, err)
			}
		})
	}
	return &wg
}

// queryLog records the watcher's polls per address.
type queryLog struct {
	mu sync.Mutex
	at map[netip.Addr][]time.Time
}

func (l *queryLog) record(a netip.Addr, t time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.at == nil {
		l.at = map[netip.Addr][]time.Time{}
	}
	l.at[a] = append(l.at[a], t)
}

func (l *queryLog) times(a netip.Addr) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.at[a])
}

// maxInWindow is the most timestamps in any half-open one-second window.
func maxInWindow(ts []time.Time) int {
	most := 0
	for i := range ts {
		n := 0
		for _, t := range ts[i:] {
			if t.Sub(ts[i]) < time.Second {
				n++
			}
		}
		most = max(most, n)
	}
	return most
}

func TestPropagationWatch(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the universe")
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	u := startPropagationUniverse(t, log)
	reg := prometheus.NewRegistry()
	metrics := NewMetrics(reg, nil, "test")

	never := time.Duration(-1)
	cases := []struct {
		desc        string
		name        string // the domain watched
		zone, owner string // where the TXT lives (after CNAMEs)
		schedule    map[string]time.Duration
		timeout     time.Duration
		wait        time.Duration // the issuer's wait (propagation_slow)
		verdict     PropagationVerdict
		codes       []reports.Code
	}{
		{desc: "plain zone, secondary 0.7 s behind", name: "www.txtmissing.com",
			zone: "txtmissing.com", owner: "_acme-challenge.www.txtmissing.com",
			schedule: map[string]time.Duration{"txtmissing.com-ns1": 0, "txtmissing.com-ns2": 700 * time.Millisecond},
			timeout:  10 * time.Second, verdict: PropagationEverywhere},
		{desc: "through a CNAME into a signed zone, both late", name: "www.dns01-cname.com",
			zone: "acme-delegate.net", owner: "www-dns01-cname.acme-delegate.net",
			schedule: map[string]time.Duration{"acme-delegate.net-ns1": 300 * time.Millisecond, "acme-delegate.net-ns2": 1300 * time.Millisecond},
			timeout:  10 * time.Second, verdict: PropagationEverywhere},
		{desc: "slower than the issuer waits", name: "www.dns01-ok.com",
			zone: "dns01-ok.com", owner: "_acme-challenge.www.dns01-ok.com",
			schedule: map[string]time.Duration{"dns01-ok.com-ns1": 200 * time.Millisecond, "dns01-ok.com-ns2": 900 * time.Millisecond},
			timeout:  10 * time.Second, wait: 500 * time.Millisecond, verdict: PropagationEverywhere,
			codes: []reports.Code{reports.CodeDNS01PropagationSlow}},
		{desc: "a secondary that never gets it", name: "app.txtmissing.com",
			zone: "txtmissing.com", owner: "_acme-challenge.app.txtmissing.com",
			schedule: map[string]time.Duration{"txtmissing.com-ns1": 100 * time.Millisecond, "txtmissing.com-ns2": never},
			timeout:  2500 * time.Millisecond, verdict: PropagationPartial,
			codes: []reports.Code{reports.CodeDNS01TXTNotPropagated}},
	}
	everywhere := 0
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			value := "v-" + strings.ReplaceAll(tc.desc, " ", "-")
			if len(value) > 60 {
				value = value[:60]
			}
			var ql queryLog
			w := &PropagationWatcher{Checker: universeChecker(t, u, log), Wait: tc.wait, Metrics: metrics,
				OnQuery: ql.record, Logger: log}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			t0 := time.Now()
			staged := stage(t, u, tc.zone, tc.owner, value, t0, tc.schedule)
			res := w.Watch(ctx, tc.name, value)
			staged.Wait()
			if res.Verdict == PropagationEverywhere {
				everywhere++
			}
			offset := res.Start.Sub(t0)

			if res.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s (err %v, addresses %+v)", res.Verdict, tc.verdict, res.Err, res.Addresses)
			}
			if res.Owner != tc.owner || res.Zone != tc.zone {
				t.Errorf("owner %s in zone %s, want %s in %s", res.Owner, res.Zone, tc.owner, tc.zone)
			}
			// Every address of every server of the zone is reported.
			want := map[netip.Addr]time.Duration{}
			for id, d := range tc.schedule {
				for _, a := range u.Server(id).Addrs() {
					want[netip.MustParseAddr(a)] = d
				}
			}
			if len(res.Addresses) != len(want) {
				t.Fatalf("%d addresses reported, want %d: %+v", len(res.Addresses), len(want), res.Addresses)
			}
			type seen struct {
				sched, first time.Duration
			}
			var order []seen
			polls := 0
			for _, a := range res.Addresses {
				sched, ok := want[a.Addr]
				if !ok {
					t.Errorf("address %s is not a server of %s", a.Addr, tc.zone)
					continue
				}
				ts := ql.times(a.Addr)
				polls += len(ts)
				if len(ts) != a.Queries {
					t.Errorf("%s: %d queries reported, %d sent", a.Addr, a.Queries, len(ts))
				}
				if n := maxInWindow(ts); n > PropagationMaxRate {
					t.Errorf("%s: %d queries within one second (%v)", a.Addr, n, ts)
				}
				if a.Served != (sched >= 0) {
					t.Errorf("%s: served %v, scheduled at %v", a.Addr, a.Served, sched)
					continue
				}
				if !a.Served {
					if !strings.Contains(a.Last, "no TXT") && !strings.Contains(a.Last, "NXDOMAIN") {
						t.Errorf("%s: last answer %q, want the missing record", a.Addr, a.Last)
					}
					continue
				}
				// It cannot be seen before it was set; it must be seen soon after
				// (the poll interval is under 0.6 s in the first 1.5 s).
				if lo := sched - offset; a.FirstSeen < lo {
					t.Errorf("%s: first seen at %v, set at %v", a.Addr, a.FirstSeen, lo)
				}
				if hi := sched + 800*time.Millisecond; a.FirstSeen > hi {
					t.Errorf("%s: first seen at %v, set at %v: polled too sparsely", a.Addr, a.FirstSeen, sched)
				}
				// It stops once served: the last poll is the one that saw it.
				if last := ts[len(ts)-1]; last.Sub(res.Start) > a.FirstSeen {
					t.Errorf("%s: polled at %v after being seen at %v", a.Addr, last.Sub(res.Start), a.FirstSeen)
				}
				order = append(order, seen{sched, a.FirstSeen})
			}
			slices.SortFunc(order, func(a, b seen) int { return int(a.sched - b.sched) })
			for i := 1; i < len(order); i++ {
				if order[i].first < order[i-1].first {
					t.Errorf("first-seen order %v contradicts the schedule", order)
				}
			}
			if polls != res.Polls || res.Queries < int64(polls) {
				t.Errorf("polls %d (result %d), queries %d", polls, res.Polls, res.Queries)
			}
			if res.Verdict == PropagationEverywhere {
				if latest := order[len(order)-1].first; res.Elapsed != latest {
					t.Errorf("elapsed %v, want the last first-seen %v", res.Elapsed, latest)
				}
			}
			var codes []reports.Code
			for _, f := range res.Findings {
				codes = append(codes, f.Code)
				if f.Code == reports.CodeDNS01TXTNotPropagated {
					for _, a := range res.Lagging() {
						if !strings.Contains(f.Detail, a.Addr.String()) {
							t.Errorf("finding does not name lagging %s: %s", a.Addr, f.Detail)
						}
					}
				}
			}
			if !slices.Equal(codes, tc.codes) {
				t.Errorf("findings %v, want %v", codes, tc.codes)
			}
		})
	}

	// One histogram observation per watch that ended everywhere.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	for _, mf := range mfs {
		if mf.GetName() == "acmediag_propagation_seconds" {
			count = mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	if count != uint64(everywhere) || everywhere == 0 {
		t.Errorf("acmediag_propagation_seconds count %d, want %d", count, everywhere)
	}
}

// TestAuthoritativePropagation checks the canary's wait: nil once the value
// is everywhere, an error naming the lagging address when ctx ends first.
func TestAuthoritativePropagation(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the universe")
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	u := startPropagationUniverse(t, log)
	check := AuthoritativePropagation(universeChecker(t, u, log))
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
			ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
			defer cancel()
			err := check(ctx, "_acme-challenge.www.dns01-ok.com.", value)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}
