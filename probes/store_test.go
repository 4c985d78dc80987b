package probes

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unsafe"

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
			desc:   "the byte bound evicts history, then the keys updated longest ago",
			limits: StoreLimits{PerKey: 10, MaxBytes: 3*one + 3*keyOverhead},
			add: []Observation{obsAt("a.com", "us", "dns", 1), obsAt("b.com", "eu", "dns", 2), obsAt("a.com", "eu", "dns", 3),
				obsAt("b.com", "us", "dns", 4), obsAt("a.com", "us", "dns", 5)},
			wantQuery: "a.com/eu/dns@3 b.com/us/dns@4 a.com/us/dns@5",
			wantLast:  "a.com/eu/dns@3 a.com/us/dns@5 b.com/us/dns@4",
			wantStats: StoreStats{Observations: 3, Bytes: 3*one + 3*keyOverhead, Keys: 3, Dropped: 2},
		},
		{
			desc:   "history goes before the newest observation of a key probed rarely (the hourly canary)",
			limits: StoreLimits{PerKey: 10, MaxBytes: 4*one + 2*keyOverhead},
			add: []Observation{obsAt("a.com", "ca", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("b.com", "us", "dns", 3),
				obsAt("b.com", "us", "dns", 4), obsAt("b.com", "us", "dns", 5), obsAt("b.com", "us", "dns", 6)},
			wantQuery: "a.com/ca/dns@1 b.com/us/dns@4 b.com/us/dns@5 b.com/us/dns@6",
			wantLast:  "a.com/ca/dns@1 b.com/us/dns@6",
			wantStats: StoreStats{Observations: 4, Bytes: 4*one + 2*keyOverhead, Keys: 2, Dropped: 2},
		},
		{
			desc:   "with every key down to its newest, the key updated longest ago goes",
			limits: StoreLimits{PerKey: 10, MaxBytes: 2*one + 2*keyOverhead},
			add: []Observation{obsAt("a.com", "us", "dns", 1), obsAt("b.com", "us", "dns", 2), obsAt("c.com", "us", "dns", 3),
				obsAt("b.com", "us", "dns", 4)},
			wantQuery: "c.com/us/dns@3 b.com/us/dns@4",
			wantLast:  "b.com/us/dns@4 c.com/us/dns@3",
			wantStats: StoreStats{Observations: 2, Bytes: 2*one + 2*keyOverhead, Keys: 2, Dropped: 2},
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

// Random traffic over keys of random sizes: the bytes charged always match
// what is held and stay within the bound, and a key loses its newest
// observation only when no key has history left to give.
func TestStoreEvictionInvariants(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	one := ObservationSize(obsAt("k00.com", "us", "dns", 0)) + obsOverhead
	s := NewStore(StoreLimits{PerKey: 4, MaxBytes: 20*one + 8*keyOverhead})
	for i := range 20_000 {
		o := obsAt(fmt.Sprintf("k%02d.com", rng.IntN(40)), "us", "dns", i)
		if rng.IntN(4) == 0 { // now and then a larger observation
			o.Findings = []reports.Finding{reports.New(reports.CodeDNSTimeout, o.Target.Name, strings.Repeat("x", rng.IntN(2000)))}
		}
		s.mu.Lock()
		_, known := s.rings[keyOf(o)]
		before := len(s.rings)
		s.mu.Unlock()
		if !known {
			before++
		}
		s.Add(o)
		s.mu.Lock()
		var held int64
		withHistory := 0
		for _, r := range s.rings {
			held += keyOverhead + r.bytes
			if r.n > 1 {
				withHistory++
			}
		}
		bytes, keys := s.bytes, len(s.rings)
		s.mu.Unlock()
		if bytes != held || bytes > s.maxBytes {
			t.Fatalf("add %d: %d bytes charged, %d held, bound %d", i, bytes, held, s.maxBytes)
		}
		// A newest goes only once no history is left, and nothing makes
		// history after that within one add.
		if lost := before - keys; lost > 0 && withHistory > 0 {
			t.Fatalf("add %d: %d keys lost their newest while %d keys keep history", i, lost, withHistory)
		}
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

// Ring turnover leaves stale entries in the eviction queues; they must not
// accumulate without bound when the byte bound is never reached.
func TestStoreOrderStaysBounded(t *testing.T) {
	t.Parallel()
	s := NewStore(StoreLimits{PerKey: 2})
	for i := range 100_000 {
		s.Add(obsAt(fmt.Sprintf("n%d.com", i%10), "us", "dns", i))
	}
	s.mu.Lock()
	history, newest := len(s.history.entries)-s.history.head, len(s.newest.entries)-s.newest.head
	s.mu.Unlock()
	if st := s.Stats(); st.Observations != 20 || history > 2048 || newest > 2048 {
		t.Errorf("Observations %d (want 20), queues of %d and %d entries (want ≤ 2048)", st.Observations, history, newest)
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

// reflectiveSize is ObservationSize by the reflective walk alone.
func reflectiveSize(o Observation) int64 {
	var w sizeWalker
	n := int64(unsafe.Sizeof(o)) + w.walk(reflect.ValueOf(o), 0)
	if w.overflow {
		n += sizeWalkOverflow
	}
	return n
}

// The plain estimate of common observations equals the reflective walk's,
// byte for byte, so that taking it changes nothing the store keeps; other
// shapes take the walk.
func TestObservationSizePlain(t *testing.T) {
	t.Parallel()
	berlin := time.FixedZone("CEST", 2*3600)
	if loc, err := time.LoadLocation("Europe/Berlin"); err == nil {
		berlin = loc
	}
	base := obsAt("a.com", "us", "dns", 0)
	full := Observation{Target: Target{Name: "www.example.com", Challenge: "http-01", Token: "tok", KeyAuth: "tok.key", ExpectTXT: "txt"},
		Vantage: Vantage{Name: "fra", Kind: KindExternal, Region: "eu-central", RIR: "RIPE", SourceAddr: netip.MustParseAddr("192.0.2.7")},
		Kind:    "dns", Start: time.Now(), Duration: time.Second, OK: false,
		Findings: make([]reports.Finding, 2, 5),
		Checks:   []reports.Check{{Name: "dns.authoritative", Target: "www.example.com", Vantage: "fra", Status: reports.CheckFail, Note: "n"}, {Name: "x"}}}
	full.Findings[0] = reports.New(reports.CodeDNSTimeout, "www.example.com", "192.0.2.1: timeout")
	with := func(f func(o *Observation)) Observation {
		o := full
		f(&o)
		return o
	}
	manyChecks := make([]reports.Check, 3000)
	tests := []struct {
		desc  string
		o     Observation
		plain bool
	}{
		{desc: "bare, UTC", o: base, plain: true},
		{desc: "every field, local time", o: full, plain: true},
		{desc: "a zone with transitions", o: with(func(o *Observation) { o.Start = o.Start.In(berlin) }), plain: true},
		{desc: "IPv6 source with a zone", o: with(func(o *Observation) { o.Vantage.SourceAddr = netip.MustParseAddr("fe80::1%eth0") }), plain: true},
		{desc: "IPv6 source", o: with(func(o *Observation) { o.Vantage.SourceAddr = netip.MustParseAddr("2001:db8::1") }), plain: true},
		{desc: "empty, non-nil slices", o: with(func(o *Observation) { o.Findings, o.Checks = []reports.Finding{}, []reports.Check{} }), plain: true},
		{desc: "resolvers", o: with(func(o *Observation) { o.Vantage.Resolvers = []netip.AddrPort{netip.MustParseAddrPort("192.0.2.53:53")} })},
		{desc: "a trace", o: with(func(o *Observation) { o.Trace = "trace" })},
		{desc: "evidence", o: with(func(o *Observation) { o.Findings = []reports.Finding{o.Findings[0].With("server", "192.0.2.1")} })},
		{desc: "too many checks to walk", o: with(func(o *Observation) { o.Checks = manyChecks })},
	}
	for _, tc := range tests {
		var w sizeWalker
		if _, ok := w.plain(&tc.o); ok != tc.plain {
			t.Errorf("%s: plain estimate taken = %v, want %v", tc.desc, ok, tc.plain)
		}
		if got, want := ObservationSize(tc.o), reflectiveSize(tc.o); got != want {
			t.Errorf("%s: ObservationSize = %d, the reflective walk %d", tc.desc, got, want)
		}
	}
}
