package probes

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
)

// scriptProbe records when (on the fake clock) each name was probed from
// each vantage; it fails the names in fail and can hold each run for a
// while of real time.
type scriptProbe struct {
	kind  reports.Kind
	clock Clock
	hold  time.Duration // real time each run takes (or until its ctx ends)

	mu       sync.Mutex
	fail     map[string]bool
	runs     map[string][]time.Time // "vantage/name"
	inflight int
	maxIn    int
	ctxErrs  []error
}

func (p *scriptProbe) Kind() reports.Kind { return p.kind }

func (p *scriptProbe) Run(ctx context.Context, t Target, v Vantage) reports.Observation {
	p.mu.Lock()
	if p.runs == nil {
		p.runs = map[string][]time.Time{}
	}
	k := v.Name + "/" + t.Name
	p.runs[k] = append(p.runs[k], p.clock.Now())
	p.inflight++
	p.maxIn = max(p.maxIn, p.inflight)
	fail := p.fail[t.Name]
	p.mu.Unlock()
	if p.hold > 0 {
		select {
		case <-time.After(p.hold):
		case <-ctx.Done():
		}
	}
	p.mu.Lock()
	p.inflight--
	p.ctxErrs = append(p.ctxErrs, ctx.Err())
	p.mu.Unlock()
	o := reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: p.kind, Start: p.clock.Now()}
	if fail {
		o.Findings = []reports.Finding{reports.New(reports.CodeDNSTimeout, t.Name, "scripted failure")}
	}
	return o.Finish()
}

func (p *scriptProbe) times(key string) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.runs[key])
}

func (p *scriptProbe) setFail(name string, fail bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fail == nil {
		p.fail = map[string]bool{}
	}
	p.fail[name] = fail
}

// gaps are the waits between consecutive runs.
func gaps(ts []time.Time) []time.Duration {
	var out []time.Duration
	for i := 1; i < len(ts); i++ {
		out = append(out, ts[i].Sub(ts[i-1]))
	}
	return out
}

// startScheduler runs s until the test ends and checks that Run returned.
func startScheduler(t *testing.T, s *Scheduler) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return within 10 s of its context ending")
		}
	})
	return cancel
}

// kindProbe is a test probe that names its kind.
type kindProbe interface {
	Probe
	Kind() reports.Kind
}

// testScheduler is a Scheduler whose work the tests give as targets ×
// vantages × probes (the plan's Entries in production).
type testScheduler struct {
	*Scheduler
	probes []kindProbe
}

func newSched(sch Schedule, probes []kindProbe, store *Store, logger *zap.Logger, clock Clock) *testScheduler {
	return &testScheduler{Scheduler: NewScheduler(sch, store, logger, clock), probes: probes}
}

// SetWork runs every probe for every target from every vantage.
func (s *testScheduler) SetWork(ts []Target, vs []Vantage) {
	var es []Entry
	for vi := range vs {
		for ti := range ts {
			for _, p := range s.probes {
				es = append(es, Entry{Target: &ts[ti], Vantage: &vs[vi], Kind: p.Kind(), Probe: p})
			}
		}
	}
	s.Scheduler.SetWork(es)
}

// allRuns lists every run; call with mu held.
func (s *Scheduler) allRuns() []*schedRun {
	var out []*schedRun
	for _, runs := range s.byName {
		out = append(out, runs...)
	}
	return out
}

func vantages(names ...string) []Vantage {
	out := make([]Vantage, len(names))
	for i, n := range names {
		out[i].Name = n
	}
	return out
}

func targets(names ...string) []Target {
	var ts []Target
	for _, n := range names {
		ts = append(ts, Target{Name: n, Challenge: "http-01"})
	}
	return ts
}

// Runs start spread over one interval and then follow the interval, plus
// at most Jitter × interval.
func TestSchedulerIntervalAndJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		interval time.Duration
		jitter   float64
		wantMin  time.Duration
		wantMax  time.Duration
	}{
		{desc: "defaults: 60 s plus up to 10 %", wantMin: time.Minute, wantMax: 66 * time.Second},
		{desc: "per-kind interval and 50 % jitter", interval: 10 * time.Second, jitter: 0.5, wantMin: 10 * time.Second, wantMax: 15 * time.Second},
		{desc: "negative jitter turns it off", interval: 30 * time.Second, jitter: -1, wantMin: 30 * time.Second, wantMax: 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(t0)
			p := &scriptProbe{kind: "dns", clock: clk}
			sch := Schedule{Jitter: tc.jitter}
			iv := DefaultInterval
			if tc.interval > 0 {
				sch.Interval = map[reports.Kind]time.Duration{"dns": tc.interval}
				iv = tc.interval
			}
			s := newTestScheduler(sch, []kindProbe{p}, NewStore(StoreLimits{}), zaptest.NewLogger(t), clk)
			names := []string{"a.com", "b.com", "c.com", "d.com", "e.com", "f.com", "g.com", "h.com"}
			s.SetWork(targets(names...), vantages("us", "eu"))
			startScheduler(t, s.Scheduler)
			stepUntil(t, s.Scheduler, clk, t0.Add(10*iv))
			var firsts []time.Duration
			for _, v := range []string{"us", "eu"} {
				for _, n := range names {
					ts := p.times(v + "/" + n)
					if want := int(9 * iv / tc.wantMax); len(ts) < want {
						t.Fatalf("%s/%s ran %d times in 10 intervals, want at least %d", v, n, len(ts), want)
					}
					firsts = append(firsts, ts[0].Sub(t0))
					if first := ts[0].Sub(t0); first < 0 || first >= iv {
						t.Errorf("%s/%s first ran %s after the start, want within one interval %s", v, n, first, iv)
					}
					for i, g := range gaps(ts) {
						if g < tc.wantMin || g > tc.wantMax {
							t.Errorf("%s/%s gap %d = %s, want in [%s, %s]", v, n, i, g, tc.wantMin, tc.wantMax)
						}
					}
				}
			}
			// The first runs are spread, not all at once.
			slices.Sort(firsts)
			if firsts[len(firsts)-1]-firsts[0] < iv/4 {
				t.Errorf("first runs bunch within %s of each other: %v", firsts[len(firsts)-1]-firsts[0], firsts)
			}
			if !s.Ready() {
				t.Error("not Ready after every run completed")
			}
		})
	}
}

// Failures back off exponentially up to MaxBackoff; a success resets it.
func TestSchedulerBackoff(t *testing.T) {
	t.Parallel()
	const iv = 10 * time.Second
	tests := []struct {
		desc       string
		maxBackoff time.Duration
		want       []time.Duration // the first gaps while failing
	}{
		{desc: "doubles up to the cap", maxBackoff: 100 * time.Second, want: []time.Duration{20 * time.Second, 40 * time.Second, 80 * time.Second, 100 * time.Second, 100 * time.Second}},
		{desc: "a cap below the interval keeps the interval", maxBackoff: 5 * time.Second, want: []time.Duration{iv, iv, iv}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(t0)
			p := &scriptProbe{kind: "dns", clock: clk}
			p.setFail("bad.com", true)
			s := newTestScheduler(Schedule{Interval: map[reports.Kind]time.Duration{"dns": iv}, Jitter: -1, MaxBackoff: tc.maxBackoff},
				[]kindProbe{p}, nil, zaptest.NewLogger(t), clk)
			s.SetWork(targets("bad.com", "good.com"), vantages("us"))
			startScheduler(t, s.Scheduler)
			var total time.Duration
			for _, g := range tc.want {
				total += g
			}
			stepUntil(t, s.Scheduler, clk, t0.Add(iv+total))
			got := gaps(p.times("us/bad.com"))
			if len(got) < len(tc.want) || !slices.Equal(got[:len(tc.want)], tc.want) {
				t.Errorf("failing gaps %v, want %v", got, tc.want)
			}
			for _, g := range gaps(p.times("us/good.com")) {
				if g != iv {
					t.Errorf("a passing name's gap is %s, want %s", g, iv)
				}
			}
			// Recovery: the next run passes, and the one after follows the interval.
			p.setFail("bad.com", false)
			n := len(p.times("us/bad.com"))
			stepUntil(t, s.Scheduler, clk, clk.Now().Add(2*max(tc.maxBackoff, iv)+iv))
			after := p.times("us/bad.com")[n:]
			if len(after) < 2 || after[1].Sub(after[0]) != iv {
				t.Errorf("after recovery the runs are %v apart, want %s", gaps(after), iv)
			}
		})
	}
}

// However many runs are due, no more than Concurrency are in flight.
func TestSchedulerConcurrencyLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc  string
		limit int
		names int
	}{
		{desc: "3 at once among 24 due", limit: 3, names: 24},
		{desc: "1 at a time", limit: 1, names: 5},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(t0)
			p := &scriptProbe{kind: "dns", clock: clk, hold: 5 * time.Millisecond}
			s := newTestScheduler(Schedule{Concurrency: tc.limit}, []kindProbe{p}, nil, zaptest.NewLogger(t), clk)
			var names []string
			for i := range tc.names {
				names = append(names, fmt.Sprintf("n%d.com", i))
			}
			s.SetWork(targets(names...), vantages("us"))
			startScheduler(t, s.Scheduler)
			waitQuiet(t, s.Scheduler, clk)
			clk.Set(t0.Add(DefaultInterval)) // every first run is due at once
			waitQuiet(t, s.Scheduler, clk)
			p.mu.Lock()
			maxIn := p.maxIn
			p.mu.Unlock()
			if maxIn != tc.limit {
				t.Errorf("at most %d runs in flight, want exactly the limit %d", maxIn, tc.limit)
			}
			if !s.Ready() {
				t.Error("not Ready after every run completed")
			}
		})
	}
}

// A run that outlives its timeout sees its context end and is recorded
// as failed, with a check saying so.
func TestSchedulerTimeout(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	p := &scriptProbe{kind: "dns", clock: clk, hold: time.Minute}
	store := NewStore(StoreLimits{})
	s := newTestScheduler(Schedule{Timeout: 20 * time.Millisecond}, []kindProbe{p}, store, zaptest.NewLogger(t), clk)
	s.SetWork(targets("slow.com"), vantages("us"))
	startScheduler(t, s.Scheduler)
	start := time.Now()
	stepUntil(t, s.Scheduler, clk, t0.Add(DefaultInterval))
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the timed-out run took %s of real time", took)
	}
	p.mu.Lock()
	errs := slices.Clone(p.ctxErrs)
	p.mu.Unlock()
	if len(errs) != 1 || !errors.Is(errs[0], context.DeadlineExceeded) {
		t.Fatalf("the probe saw context errors %v, want one DeadlineExceeded", errs)
	}
	obs := store.Query("slow.com", time.Time{})
	if len(obs) != 1 || obs[0].OK || !slices.ContainsFunc(obs[0].Checks, func(c reports.Check) bool {
		return c.Name == "probe.run" && c.Status == reports.CheckFail
	}) {
		t.Errorf("stored %+v, want one failed observation with a failed probe.run check", obs)
	}
}

// Reprobe runs every probe of the name now, and only those.
func TestSchedulerReprobe(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	dnsP := &scriptProbe{kind: "dns", clock: clk}
	httpP := &scriptProbe{kind: "http-01", clock: clk}
	s := newTestScheduler(Schedule{}, []kindProbe{dnsP, httpP}, nil, zaptest.NewLogger(t), clk)
	s.SetWork(targets("a.com", "b.com"), vantages("us", "eu"))
	startScheduler(t, s.Scheduler)
	stepUntil(t, s.Scheduler, clk, t0.Add(90*time.Second))
	count := func(p *scriptProbe, key string) int { return len(p.times(key)) }
	before := map[string]int{}
	for _, p := range []*scriptProbe{dnsP, httpP} {
		for _, k := range []string{"us/a.com", "eu/a.com", "us/b.com", "eu/b.com"} {
			before[string(p.kind)+" "+k] = count(p, k)
		}
	}
	s.Reprobe("A.com")
	waitQuiet(t, s.Scheduler, clk)
	for _, p := range []*scriptProbe{dnsP, httpP} {
		for _, k := range []string{"us/a.com", "eu/a.com", "us/b.com", "eu/b.com"} {
			want := before[string(p.kind)+" "+k]
			if k[3:] == "a.com" {
				want++
				if ts := p.times(k); ts[len(ts)-1] != t0.Add(90*time.Second) {
					t.Errorf("%s %s reprobed at %s, want now", p.kind, k, ts[len(ts)-1].Sub(t0))
				}
			}
			if got := count(p, k); got != want {
				t.Errorf("%s %s ran %d times, want %d", p.kind, k, got, want)
			}
		}
	}
	s.Reprobe("unknown.com") // ignored
	waitQuiet(t, s.Scheduler, clk)
}

// SetWork adds and removes runs without moving the others.
func TestSchedulerSetWork(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	p := &scriptProbe{kind: "dns", clock: clk}
	store := NewStore(StoreLimits{})
	s := newTestScheduler(Schedule{}, []kindProbe{p}, store, zaptest.NewLogger(t), clk)
	s.SetWork(targets("keep.com", "gone.com"), vantages("us", "old"))
	startScheduler(t, s.Scheduler)
	stepUntil(t, s.Scheduler, clk, t0.Add(70*time.Second))
	next := func() map[runKey]time.Time {
		s.mu.Lock()
		defer s.mu.Unlock()
		out := map[runKey]time.Time{}
		for _, r := range s.allRuns() {
			k := r.key()
			out[k] = r.next
		}
		return out
	}
	before := next()
	changed := targets("keep.com", "new.com")
	changed[0].ExpectTXT = "v2" // details change, timing does not
	s.SetWork(changed, vantages("us"))
	after := next()
	tests := []struct {
		desc    string
		key     runKey
		present bool
		same    bool
	}{
		{desc: "unaffected run keeps its time", key: runKey{"keep.com", "us", "dns"}, present: true, same: true},
		{desc: "removed target", key: runKey{"gone.com", "us", "dns"}},
		{desc: "removed vantage", key: runKey{"keep.com", "old", "dns"}},
		{desc: "new target starts within one interval", key: runKey{"new.com", "us", "dns"}, present: true},
	}
	for _, tc := range tests {
		got, ok := after[tc.key]
		if ok != tc.present {
			t.Errorf("%s: present %v, want %v", tc.desc, ok, tc.present)
			continue
		}
		if tc.same && !got.Equal(before[tc.key]) {
			t.Errorf("%s: next moved from %s to %s", tc.desc, before[tc.key].Sub(t0), got.Sub(t0))
		}
		if tc.present && !tc.same && (got.Before(clk.Now()) || got.After(clk.Now().Add(DefaultInterval))) {
			t.Errorf("%s: next at %s, now %s", tc.desc, got.Sub(t0), clk.Now().Sub(t0))
		}
	}
	if s.Ready() {
		t.Error("Ready with a new run that has not completed")
	}
	for _, o := range store.Latest("") {
		if o.Name == "gone.com" || o.Vantage.Name == "old" {
			t.Errorf("the store still holds %s/%s", o.Vantage.Name, o.Name)
		}
	}
	stepUntil(t, s.Scheduler, clk, t0.Add(140*time.Second))
	if !s.Ready() {
		t.Error("not Ready once the new run completed")
	}
	s.mu.Lock()
	r := findRun(s.byName["keep.com"], "us", "dns")
	txt := r.target.ExpectTXT
	s.mu.Unlock()
	if txt != "v2" {
		t.Errorf("the kept run probes ExpectTXT %q, want the updated v2", txt)
	}
}

// Run returns once its context ends, cancelling runs in flight, and leaves
// no goroutine behind; a second concurrent Run is refused.
func TestSchedulerRunReturns(t *testing.T) {
	// Not parallel: it counts the process's goroutines.
	before := runtime.NumGoroutine()
	clk := newFakeClock(t0)
	var started atomic.Int32
	p := &blockingProbe{started: &started}
	s := newTestScheduler(Schedule{Concurrency: 8}, []kindProbe{p}, nil, zaptest.NewLogger(t), clk)
	s.SetWork(targets("a.com", "b.com", "c.com"), vantages("us"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	clk.Set(t0.Add(DefaultInterval))
	for i := 0; started.Load() < 3 && i < 5000; i++ {
		time.Sleep(time.Millisecond)
	}
	if started.Load() != 3 {
		t.Fatalf("%d runs started, want 3", started.Load())
	}
	if err := s.Run(ctx); err == nil {
		t.Error("a second concurrent Run was not refused")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of its context ending")
	}
	var n int
	for range 1000 {
		if n = runtime.NumGoroutine(); n <= before {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if n > before {
		t.Errorf("%d goroutines after Run returned, %d before", n, before)
	}
	if s.Ready() {
		t.Error("Ready although every run was cancelled")
	}
}

// blockingProbe waits for its context.
type blockingProbe struct{ started *atomic.Int32 }

func (p *blockingProbe) Kind() reports.Kind { return "dns" }
func (p *blockingProbe) Run(ctx context.Context, t Target, v Vantage) reports.Observation {
	p.started.Add(1)
	<-ctx.Done()
	return reports.Observation{Name: t.Name, Vantage: v.Vantage, Kind: "dns"}
}

// A panicking probe is a failed run with a probe.internal_error finding,
// counted, not a dead daemon; the stack stays out of the observation.
func TestSchedulerProbePanic(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	store := NewStore(StoreLimits{})
	m := NewMetrics(nil, store, nil, "test")
	s := newTestScheduler(Schedule{}, []kindProbe{panicProbe{}}, store, zaptest.NewLogger(t), clk)
	s.SetMetrics(m)
	s.SetWork(targets("a.com"), vantages("us"))
	startScheduler(t, s.Scheduler)
	stepUntil(t, s.Scheduler, clk, t0.Add(DefaultInterval))
	obs := store.Query("a.com", time.Time{})
	if len(obs) != 1 || obs[0].OK || len(obs[0].Checks) != 1 || obs[0].Checks[0].Status != reports.CheckFail {
		t.Fatalf("stored %+v, want one failed observation", obs)
	}
	f := obs[0].Findings
	if len(f) != 1 || f[0].Code != reports.CodeProbeInternalError || f[0].Severity != reports.Error ||
		!strings.Contains(f[0].Detail, "boom") || strings.Contains(f[0].Detail, "goroutine") {
		t.Errorf("findings %+v, want one probe.internal_error naming the panic, without a stack", f)
	}
	if got := testutil.ToFloat64(m.panics.WithLabelValues("dns")); got != 1 {
		t.Errorf("acmediag_probe_panics_total{kind=dns} = %v, want 1", got)
	}
}

type panicProbe struct{}

func (panicProbe) Kind() reports.Kind { return "dns" }
func (panicProbe) Run(context.Context, Target, Vantage) reports.Observation {
	panic("boom")
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc     string
		interval time.Duration
		failures int
		max      time.Duration
		want     time.Duration
	}{
		{desc: "one failure doubles", interval: time.Minute, failures: 1, max: time.Hour, want: 2 * time.Minute},
		{desc: "capped", interval: time.Minute, failures: 5, max: 10 * time.Minute, want: 10 * time.Minute},
		{desc: "many failures do not overflow", interval: time.Minute, failures: 1000, max: 10 * time.Minute, want: 10 * time.Minute},
		{desc: "cap below the interval", interval: time.Minute, failures: 3, max: time.Second, want: time.Minute},
	}
	for _, tc := range tests {
		if got := backoff(tc.interval, tc.failures, tc.max); got != tc.want {
			t.Errorf("%s: backoff = %s, want %s", tc.desc, got, tc.want)
		}
	}
}

// newTestScheduler is NewScheduler without dispatch slack, so that runs
// start exactly when due on the fake clock.
func newTestScheduler(sch Schedule, probes []kindProbe, store *Store, logger *zap.Logger, clock Clock) *testScheduler {
	s := newSched(sch, probes, store, logger, clock)
	s.slack = 0
	return s
}

// Runs due within the dispatch slack start in one wake-up, the others wait.
func TestSchedulerSlack(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	p := &scriptProbe{kind: "dns", clock: clk}
	s := newSched(Schedule{Interval: map[reports.Kind]time.Duration{"dns": time.Second}, Jitter: -1}, []kindProbe{p}, nil, zaptest.NewLogger(t), clk)
	offsets := []float64{0.5, 0.51, 0.54, 0.7} // × the 1 s interval
	var i int
	s.jitter = func() float64 { i++; return offsets[(i-1)%len(offsets)] }
	s.SetWork(targets("a.com", "b.com", "c.com", "d.com"), vantages("us"))
	startScheduler(t, s.Scheduler)
	next := waitQuiet(t, s.Scheduler, clk)
	if want := t0.Add(500 * time.Millisecond); !next.Equal(want) {
		t.Fatalf("first wake-up at %s, want %s", next.Sub(t0), want.Sub(t0))
	}
	clk.Set(next)
	next = waitQuiet(t, s.Scheduler, clk)
	tests := []struct {
		desc string
		name string
		runs int
	}{
		{desc: "due now", name: "a.com", runs: 1},
		{desc: "due 10 ms later: started with it", name: "b.com", runs: 1},
		{desc: "due 40 ms later: started with it", name: "c.com", runs: 1},
		{desc: "due 200 ms later: waits", name: "d.com", runs: 0},
	}
	for _, tc := range tests {
		if got := len(p.times("us/" + tc.name)); got != tc.runs {
			t.Errorf("%s: %s ran %d times, want %d", tc.desc, tc.name, got, tc.runs)
		}
	}
	if want := t0.Add(700 * time.Millisecond); !next.Equal(want) {
		t.Errorf("next wake-up at %s, want %s", next.Sub(t0), want.Sub(t0))
	}
	// Early starts do not drift the cadence: b.com is next due one interval
	// after it was due, not after it started.
	s.mu.Lock()
	got := findRun(s.byName["b.com"], "us", "dns").next
	s.mu.Unlock()
	if want := t0.Add(1510 * time.Millisecond); !got.Equal(want) {
		t.Errorf("b.com next due at %s, want %s", got.Sub(t0), want.Sub(t0))
	}
}

// At longer intervals the slack grows with the interval (1/240 of it, at
// most 250 ms): bigger batches, so fewer wake-ups of the whole process.
func TestSchedulerSlackLongInterval(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	p := &scriptProbe{kind: "dns", clock: clk}
	s := newSched(Schedule{Interval: map[reports.Kind]time.Duration{"dns": time.Minute}, Jitter: -1}, []kindProbe{p}, nil, zaptest.NewLogger(t), clk)
	offsets := []float64{0.5, 0.5 + 0.2/60, 0.5 + 0.3/60} // × the 60 s interval: 30 s, 30.2 s, 30.3 s
	var i int
	s.jitter = func() float64 { i++; return offsets[(i-1)%len(offsets)] }
	s.SetWork(targets("a.com", "b.com", "c.com"), vantages("us"))
	startScheduler(t, s.Scheduler)
	clk.Set(waitQuiet(t, s.Scheduler, clk))
	waitQuiet(t, s.Scheduler, clk)
	for _, tc := range []struct {
		desc string
		name string
		runs int
	}{
		{desc: "due now", name: "a.com", runs: 1},
		{desc: "due 200 ms later: started with it", name: "b.com", runs: 1},
		{desc: "due 300 ms later: waits", name: "c.com", runs: 0},
	} {
		if got := len(p.times("us/" + tc.name)); got != tc.runs {
			t.Errorf("%s: %s ran %d times, want %d", tc.desc, tc.name, got, tc.runs)
		}
	}
}

// The run heap pops in due order through pushes, fixes and removals, and
// keeps each run's index.
func TestRunHeap(t *testing.T) {
	t.Parallel()
	s := newSched(Schedule{}, nil, nil, nil, newFakeClock(t0))
	rnd := rand.New(rand.NewPCG(1, 2))
	var runs []*schedRun
	for range 500 {
		r := &schedRun{next: t0.Add(time.Duration(rnd.IntN(1000)) * time.Millisecond), index: -1}
		runs = append(runs, r)
		s.push(r)
	}
	for _, r := range runs[:100] { // move some
		r.next = t0.Add(time.Duration(rnd.IntN(1000)) * time.Millisecond)
		s.fix(int(r.index))
	}
	for _, r := range runs[100:150] { // remove some
		s.removeAt(int(r.index))
	}
	for i, e := range s.heap {
		if int(e.r.index) != i {
			t.Fatalf("heap[%d] has index %d", i, e.r.index)
		}
	}
	var last time.Time
	for n := 0; len(s.heap) > 0; n++ {
		r := s.pop()
		if r.next.Before(last) || r.index != -1 {
			t.Fatalf("pop %d: due %s after %s, index %d", n, r.next.Sub(t0), last.Sub(t0), r.index)
		}
		last = r.next
	}
}

// clockProbe takes its time on the fake clock: each run moves it forward.
type clockProbe struct {
	clock *fakeClock
	takes time.Duration
}

func (p *clockProbe) Kind() reports.Kind { return "dns" }

func (p *clockProbe) Run(_ context.Context, t Target, v Vantage) reports.Observation {
	start := p.clock.Now()
	p.clock.Set(start.Add(p.takes))
	return reports.Observation{Name: t.Name, Vantage: v.Vantage, Kind: "dns", Start: start, Duration: p.takes}.Finish()
}

// A run that waits for a free worker starts late by the time it waited,
// and acmediag_schedule_delay_seconds says so.
func TestSchedulerDelayMetric(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg, nil, nil, "test")
	s := newTestScheduler(Schedule{Concurrency: 1, Jitter: -1}, []kindProbe{&clockProbe{clock: clk, takes: 3 * time.Second}}, nil, zaptest.NewLogger(t), clk)
	s.SetMetrics(m)
	// One name from two vantages: a re-probe makes both runs due at one
	// instant.
	s.SetWork(targets("a.com"), vantages("us", "eu"))
	startScheduler(t, s.Scheduler)
	waitQuiet(t, s.Scheduler, clk)
	clk.Set(t0.Add(DefaultInterval))
	waitQuiet(t, s.Scheduler, clk)
	delays := func() (uint64, float64) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "acmediag_schedule_delay_seconds" {
				h := mf.GetMetric()[0].GetHistogram()
				return h.GetSampleCount(), h.GetSampleSum()
			}
		}
		return 0, 0
	}
	count0, sum0 := delays()
	if count0 < 2 {
		t.Fatalf("%d delays recorded for the first runs, want one per run (2 or more)", count0)
	}
	// Both due at one instant, one worker: the second waits 3 s.
	s.Reprobe("a.com")
	waitQuiet(t, s.Scheduler, clk)
	count, sum := delays()
	if count-count0 != 2 || math.Abs(sum-sum0-3) > 1e-6 {
		t.Errorf("re-probe delays: %d runs, %.1f s in all; want 2 runs, 3.0 s (0 and 3)", count-count0, sum-sum0)
	}
}

// FirstWithin spreads the first runs over a short window instead of the
// whole interval (the canary's hourly orders start within seconds).
func TestSchedulerFirstWithin(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc        string
		firstWithin time.Duration
		want        int // runs by 10 s after the start
	}{
		{desc: "spread over 10 s", firstWithin: 10 * time.Second, want: 5},
		{desc: "spread over the hour", want: 0},
		{desc: "a window longer than the interval is the interval", firstWithin: 2 * time.Hour, want: 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			clk := newFakeClock(t0)
			p := &scriptProbe{kind: "dns", clock: clk}
			s := newTestScheduler(Schedule{Interval: map[reports.Kind]time.Duration{"dns": time.Hour}, FirstWithin: tc.firstWithin, Jitter: -1},
				[]kindProbe{p}, nil, zaptest.NewLogger(t), clk)
			s.jitter = func() float64 { return 0.9 }
			s.SetWork(targets("a.com", "b.com", "c.com", "d.com", "e.com"), vantages("us"))
			startScheduler(t, s.Scheduler)
			clk.Set(t0.Add(10 * time.Second))
			waitQuiet(t, s.Scheduler, clk)
			p.mu.Lock()
			runs := 0
			for _, ts := range p.runs {
				runs += len(ts)
			}
			p.mu.Unlock()
			if runs != tc.want {
				t.Errorf("%d runs in the first 10 s, want %d", runs, tc.want)
			}
		})
	}
}
