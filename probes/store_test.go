package probes

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// obsAt is an observation of name from vantage by kind, started at t0+sec.
func obsAt(name, vantage, kind string, sec int) Observation {
	return Observation{Target: Target{Name: name}, Vantage: Vantage{Name: vantage}, Kind: kind,
		Start: t0.Add(time.Duration(sec) * time.Second), OK: true}
}

func starts(obs []Observation) string {
	var parts []string
	for _, o := range obs {
		parts = append(parts, fmt.Sprintf("%s/%s/%s@%d", o.Target.Name, o.Vantage.Name, o.Kind, int(o.Start.Sub(t0)/time.Second)))
	}
	return strings.Join(parts, " ")
}

func TestStore(t *testing.T) {
	t.Parallel()
	one := ObservationSize(obsAt("a.com", "us", "dns", 0)) + obsOverhead
	tests := []struct {
		desc      string
		limits    StoreLimits
		add       []Observation
		queryName string
		since     int
		wantQuery string
		wantLast  string
		wantStats StoreStats
	}{
		{
			desc:   "a full ring drops its own oldest, not another key's",
			limits: StoreLimits{PerKey: 3},
			add: []Observation{obsAt("a.com", "us", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("a.com", "us", "dns", 3),
				obsAt("a.com", "us", "dns", 4), obsAt("a.com", "us", "dns", 5), obsAt("a.com", "us", "dns", 6)},
			queryName: "", since: 0,
			wantQuery: "b.com/us/dns@2 a.com/us/dns@4 a.com/us/dns@5 a.com/us/dns@6",
			wantLast:  "a.com/us/dns@6 b.com/us/dns@2",
			wantStats: StoreStats{Observations: 4, Bytes: 4*one + 2*keyOverhead, Keys: 2},
		},
		{
			desc:   "the byte bound evicts the oldest of all keys first",
			limits: StoreLimits{PerKey: 10, MaxBytes: 3*one + 3*keyOverhead},
			add: []Observation{obsAt("a.com", "us", "dns", 1), obsAt("b.com", "eu", "dns", 2), obsAt("a.com", "eu", "dns", 3),
				obsAt("b.com", "us", "dns", 4), obsAt("a.com", "us", "dns", 5)},
			wantQuery: "a.com/eu/dns@3 b.com/us/dns@4 a.com/us/dns@5",
			wantLast:  "a.com/eu/dns@3 a.com/us/dns@5 b.com/us/dns@4",
			wantStats: StoreStats{Observations: 3, Bytes: 3*one + 3*keyOverhead, Keys: 3, Dropped: 2},
		},
		{
			desc:   "query by name ignores case and the root dot, and since",
			limits: StoreLimits{},
			add: []Observation{obsAt("A.com.", "us", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("a.com", "eu", "http-01", 3),
				obsAt("a.com", "us", "dns", 4)},
			queryName: "a.COM", since: 2,
			wantQuery: "a.com/eu/http-01@3 a.com/us/dns@4",
			wantLast:  "a.com/eu/http-01@3 a.com/us/dns@4 b.com/us/dns@2",
			wantStats: StoreStats{Observations: 4, Bytes: 4*one + 3*keyOverhead + 5, Keys: 3}, // "A.com." is 1 byte longer, "http-01" 4
		},
		{
			desc:      "an observation larger than the bound is not kept",
			limits:    StoreLimits{MaxBytes: one - 1},
			add:       []Observation{obsAt("a.com", "us", "dns", 1)},
			wantStats: StoreStats{Dropped: 1},
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
			if got := starts(s.Latest()); got != tc.wantLast {
				t.Errorf("Latest() = %q, want %q", got, tc.wantLast)
			}
			if got := s.Stats(); got != tc.wantStats {
				t.Errorf("Stats() = %+v, want %+v", got, tc.wantStats)
			}
		})
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
	if st := s.Stats(); st.Observations != 1 || st.Keys != 1 || st.Bytes != ObservationSize(obsAt("b.com", "us", "dns", 3))+obsOverhead+keyOverhead {
		t.Errorf("after Remove, Stats = %+v", st)
	}
	if got := s.Query("a.com", t0); len(got) != 0 {
		t.Errorf("removed name still queried: %s", starts(got))
	}
}

// Ring turnover leaves stale entries in the eviction order; they must not
// accumulate without bound when the byte bound is never reached.
func TestStoreOrderStaysBounded(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreLimits{PerKey: 2})
	for i := range 100_000 {
		s.Add(obsAt(fmt.Sprintf("n%d.com", i%10), "us", "dns", i))
	}
	s.mu.Lock()
	live := len(s.order) - s.head
	s.mu.Unlock()
	if st := s.Stats(); st.Observations != 20 || live > 2048 {
		t.Errorf("Observations %d (want 20), order queue %d entries (want ≤ 2048)", st.Observations, live)
	}
}

// The size estimate grows with what an observation holds, and a hostile
// trace (a cycle) neither hangs nor explodes it.
func TestObservationSize(t *testing.T) {
	t.Parallel()
	type node struct {
		next *node
		s    string
	}
	cyc := &node{s: "x"}
	cyc.next = cyc
	base := obsAt("a.com", "us", "dns", 0)
	withFinding := base
	withFinding.Findings = []reports.Finding{reports.New(reports.CodeDNSTimeout, "a.com", strings.Repeat("d", 1000)).With("server", "192.0.2.1")}
	withTrace := base
	withTrace.Trace = strings.Repeat("t", 5000)
	withCycle := base
	withCycle.Trace = cyc
	tests := []struct {
		desc     string
		o        Observation
		min, max int64
	}{
		{desc: "bare observation", o: base, min: 200, max: 1000},
		{desc: "a finding counts its detail, summary and fix", o: withFinding, min: ObservationSize(base) + 1000, max: ObservationSize(base) + 4000},
		{desc: "a trace counts", o: withTrace, min: ObservationSize(base) + 5000, max: ObservationSize(base) + 5100},
		{desc: "a cyclic trace is walked once", o: withCycle, min: ObservationSize(base), max: ObservationSize(base) + 100},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			if got := ObservationSize(tc.o); got < tc.min || got > tc.max {
				t.Errorf("ObservationSize = %d, want in [%d, %d]", got, tc.min, tc.max)
			}
		})
	}
}
