package probes

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// obsAt is an observation of name from vantage by kind, started at t0+sec.
func obsAt(name, vantage string, kind reports.Kind, sec int) reports.Observation {
	return reports.Observation{Name: name, Vantage: reports.Vantage{Name: vantage}, Kind: kind,
		Start: t0.Add(time.Duration(sec) * time.Second), OK: true}
}

func starts(obs []reports.Observation) string {
	var parts []string
	for _, o := range obs {
		parts = append(parts, fmt.Sprintf("%s/%s/%s@%d", o.Name, o.Vantage.Name, o.Kind, int(o.Start.Sub(t0)/time.Second)))
	}
	return strings.Join(parts, " ")
}

func TestStore(t *testing.T) {
	t.Parallel()
	// One history entry's charge: every observation below is the same size
	// but for its name's length.
	one := SizeOf(obsAt("a.com", "us", "dns", 0)) + histOverhead
	tests := []struct {
		desc      string
		limits    StoreLimits
		add       []reports.Observation
		queryName string
		since     int
		wantQuery string
		wantLast  string
		wantStats func(StoreStats) bool
	}{
		{
			desc:   "a full ring drops its own oldest, not another key's",
			limits: StoreLimits{PerKey: 3},
			add: []reports.Observation{obsAt("a.com", "us", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("a.com", "us", "dns", 3),
				obsAt("a.com", "us", "dns", 4), obsAt("a.com", "us", "dns", 5), obsAt("a.com", "us", "dns", 6)},
			wantQuery: "b.com/us/dns@2 a.com/us/dns@4 a.com/us/dns@5 a.com/us/dns@6",
			wantLast:  "a.com/us/dns@6 b.com/us/dns@2",
			wantStats: func(st StoreStats) bool {
				return st.Observations == 4 && st.Keys == 2 && st.HistoryBytes == 2*one && st.Dropped == 0
			},
		},
		{
			desc:   "the byte bound evicts the oldest history of all keys",
			limits: StoreLimits{PerKey: 10, MaxBytes: 2 * one},
			add: []reports.Observation{obsAt("a.com", "us", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("a.com", "us", "dns", 3),
				obsAt("b.com", "us", "dns", 4), obsAt("a.com", "us", "dns", 5), obsAt("b.com", "us", "dns", 6)},
			wantQuery: "a.com/us/dns@3 b.com/us/dns@4 a.com/us/dns@5 b.com/us/dns@6",
			wantLast:  "a.com/us/dns@5 b.com/us/dns@6",
			wantStats: func(st StoreStats) bool { return st.Observations == 4 && st.HistoryBytes == 2*one && st.Dropped == 2 },
		},
		{
			desc:   "a key probed rarely (the hourly canary) keeps its latest however busy the others are",
			limits: StoreLimits{PerKey: 10, MaxBytes: one},
			add: []reports.Observation{obsAt("a.com", "ca", "acme", 1), obsAt("b.com", "us", "dns", 2), obsAt("b.com", "us", "dns", 3),
				obsAt("b.com", "us", "dns", 4), obsAt("b.com", "us", "dns", 5), obsAt("b.com", "us", "dns", 6)},
			wantQuery: "a.com/ca/acme@1 b.com/us/dns@5 b.com/us/dns@6",
			wantLast:  "a.com/ca/acme@1 b.com/us/dns@6",
			wantStats: func(st StoreStats) bool { return st.Observations == 3 && st.Keys == 2 && st.Dropped == 3 },
		},
		{
			desc:      "history larger than the whole bound is not kept, the latest is",
			limits:    StoreLimits{PerKey: 10, MaxBytes: one - 1},
			add:       []reports.Observation{obsAt("a.com", "us", "dns", 1), obsAt("a.com", "us", "dns", 2), obsAt("c.com", "us", "dns", 3)},
			wantQuery: "a.com/us/dns@2 c.com/us/dns@3",
			wantLast:  "a.com/us/dns@2 c.com/us/dns@3",
			wantStats: func(st StoreStats) bool { return st.Observations == 2 && st.HistoryBytes == 0 && st.Dropped == 1 },
		},
		{
			desc:   "query by name ignores case and the root dot, and since",
			limits: StoreLimits{},
			add: []reports.Observation{obsAt("A.com.", "us", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("a.com", "eu", "http-01", 3),
				obsAt("a.com", "us", "dns", 4)},
			queryName: "a.COM", since: 2,
			wantQuery: "a.com/eu/http-01@3 a.com/us/dns@4",
			wantLast:  "a.com/eu/http-01@3 a.com/us/dns@4 b.com/us/dns@2",
			wantStats: func(st StoreStats) bool { return st.Observations == 4 && st.Keys == 3 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			s := NewStore(tc.limits)
			for _, o := range tc.add {
				s.Add(o)
			}
			if got := starts(s.Query(tc.queryName, t0.Add(time.Duration(tc.since)*time.Second))); got != tc.wantQuery {
				t.Errorf("Query(%q) = %q, want %q", tc.queryName, got, tc.wantQuery)
			}
			if got := starts(s.Latest("")); got != tc.wantLast {
				t.Errorf("Latest() = %q, want %q", got, tc.wantLast)
			}
			if got := s.Stats(); !tc.wantStats(got) {
				t.Errorf("Stats() = %+v", got)
			}
		})
	}
}

// Random traffic over keys of random sizes: the history stays within the
// bound, the bytes charged match what is held, and every key ever added
// keeps its latest observation.
func TestStoreEvictionInvariants(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	one := SizeOf(obsAt("k00.com", "us", "dns", 0)) + histOverhead
	s := NewStore(StoreLimits{PerKey: 4, MaxBytes: 20 * one})
	latest := map[string]int{}
	for i := range 20_000 {
		name := fmt.Sprintf("k%02d.com", rng.IntN(40))
		o := obsAt(name, "us", "dns", i)
		if rng.IntN(4) == 0 { // now and then a larger observation
			o.Findings = []reports.Finding{reports.New(reports.CodeDNSTimeout, name, strings.Repeat("x", rng.IntN(2000)))}
		}
		s.Add(o)
		latest[name] = i
		s.mu.Lock()
		var hist, lat int64
		keys := 0
		for _, e := range s.names {
			for _, sl := range e.slots {
				keys++
				lat += int64(sl.latestSize)
				if r := sl.ring; r != nil {
					for j := range r.n {
						hist += r.buf[(r.start+j)%len(r.buf)].size + histOverhead
					}
				}
			}
		}
		histBytes, latestBytes := s.histBytes, s.latestBytes
		s.mu.Unlock()
		if hist != histBytes || lat != latestBytes || histBytes > 20*one {
			t.Fatalf("add %d: history %d charged %d held (bound %d); latest %d charged %d held", i, histBytes, hist, 20*one, latestBytes, lat)
		}
		if keys != len(latest) {
			t.Fatalf("add %d: %d keys held, %d added", i, keys, len(latest))
		}
	}
	for name, i := range latest {
		if got := s.Latest(name); len(got) != 1 || !got[0].Start.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Errorf("%s: latest %s, want @%d", name, starts(got), i)
		}
	}
}

// However small the bound, every key's latest observation stays: the
// metrics, the report and the page are made of them.
func TestStoreKeepsEveryLatest(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreLimits{PerKey: 2, MaxBytes: 1})
	const names, rounds = 5000, 3
	for r := range rounds {
		for i := range names {
			s.Add(obsAt(fmt.Sprintf("n%d.com", i), "us", "dns", r*names+i))
		}
	}
	st := s.Stats()
	if st.Keys != names || len(s.Latest("")) != names || st.HistoryBytes != 0 {
		t.Errorf("stats %+v, %d latest; want %d keys, all latest, no history", st, len(s.Latest("")), names)
	}
}

// Remove forgets one key entirely, and its bytes.
func TestStoreRemove(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreLimits{})
	s.Add(obsAt("a.com", "us", "dns", 1))
	s.Add(obsAt("a.com", "us", "dns", 2))
	s.Add(obsAt("b.com", "us", "dns", 3))
	s.Remove("A.com", "us", "dns")
	if got := starts(s.Query("", t0)); got != "b.com/us/dns@3" {
		t.Errorf("after Remove, Query = %q", got)
	}
	if st := s.Stats(); st.Observations != 1 || st.Keys != 1 || st.HistoryBytes != 0 ||
		st.Bytes != contentSize(obsAt("b.com", "us", "dns", 3))+slotOverhead+nameOverhead {
		t.Errorf("after Remove, Stats = %+v", st)
	}
	if got := s.Query("a.com", t0); len(got) != 0 {
		t.Errorf("removed name still queried: %s", starts(got))
	}
}

// Ring turnover leaves stale entries in the eviction queue; they must not
// accumulate without bound when the byte bound is never reached.
func TestStoreOrderStaysBounded(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreLimits{PerKey: 2})
	for i := range 100_000 {
		s.Add(obsAt(fmt.Sprintf("n%d.com", i%10), "us", "dns", i))
	}
	s.mu.Lock()
	queued := len(s.queue) - s.head
	s.mu.Unlock()
	if st := s.Stats(); st.Observations != 20 || queued > 2048 {
		t.Errorf("Observations %d (want 20), a queue of %d entries (want ≤ 2048)", st.Observations, queued)
	}
}

// The size grows with what an observation holds, by construction.
func TestSizeOf(t *testing.T) {
	t.Parallel()
	base := obsAt("a.com", "us", "dns", 0)
	withFinding := base
	withFinding.Findings = []reports.Finding{reports.New(reports.CodeDNSTimeout, "a.com", strings.Repeat("d", 1000)).
		With("servers", []string{"ns1", "ns2"}).WithProblem(reports.ProblemDNS, strings.Repeat("p", 500))}
	withChecks := base
	withChecks.Checks = []reports.Check{{Name: "dns.caa", Target: "a.com", Note: strings.Repeat("n", 300)}}
	withTrace := base
	withTrace.Trace.Add("%s", strings.Repeat("t", 100))
	for _, tc := range []struct {
		desc     string
		o        reports.Observation
		min, max int64
	}{
		{desc: "a finding counts its detail, summary, fix, problem and evidence", o: withFinding, min: SizeOf(base) + 1500, max: SizeOf(base) + 3000},
		{desc: "a check counts its note", o: withChecks, min: SizeOf(base) + 300, max: SizeOf(base) + 500},
		{desc: "a trace counts its lines", o: withTrace, min: SizeOf(base) + 100, max: SizeOf(base) + 200},
	} {
		if got := SizeOf(tc.o); got < tc.min || got > tc.max {
			t.Errorf("%s: SizeOf = %d, want in [%d, %d]", tc.desc, got, tc.min, tc.max)
		}
	}
}
