package probes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// Dispatch slack is how early a run may start so that runs due close
// together start in one wake-up of the dispatcher: at 10,000 names × 4
// vantages every minute the runs are 1.5 ms apart, and every time the
// process wakes from idle the Go runtime spends more CPU getting going
// (waking threads, sysmon polling every 20 µs for a while) than one run
// costs. A run may start 1/240 of its interval early, at least
// minDispatchSlack and at most maxDispatchSlack: 250 ms at 60 s (a batch
// of some 170 runs at that load; 50 ms batches cost about a third more
// CPU per run in BenchmarkSchedulerDNS10k), 50 ms for intervals up to 12 s.
const (
	minDispatchSlack = 50 * time.Millisecond
	maxDispatchSlack = 250 * time.Millisecond
	slackDivisor     = 240
)

// maxBackoffShift caps the exponent of the backoff so that interval×2^n
// cannot overflow before the MaxBackoff cap applies.
const maxBackoffShift = 30

// Schedule says how often and how many at once the probes run. Zero fields
// take the defaults.
type Schedule struct {
	Interval    map[reports.Kind]time.Duration // per probe kind; default 60s
	Jitter      float64                        // fraction of the interval added at random to each wait, default 0.1
	Concurrency int                            // runs in flight at once, default 32
	Timeout     time.Duration                  // per run, default 30s
	MaxBackoff  time.Duration                  // default 10m
	// FirstWithin spreads the first run of new work over this window
	// instead of a whole interval (0: the interval). The canary sets a
	// short one: an hourly order should not wait up to an hour to show
	// that a fresh deployment works.
	FirstWithin time.Duration
	// Next, for the kinds that have one, decides the wait after a run
	// instead of the interval and the backoff (ok false: they apply).
	Next map[reports.Kind]func(reports.Observation) (time.Duration, bool)
}

func (sch Schedule) interval(kind reports.Kind) time.Duration {
	if d := sch.Interval[kind]; d > 0 {
		return d
	}
	return DefaultInterval
}

// firstWithin is the window kind's first runs are spread over.
func (sch Schedule) firstWithin(kind reports.Kind) time.Duration {
	iv := sch.interval(kind)
	if sch.FirstWithin > 0 {
		return min(sch.FirstWithin, iv)
	}
	return iv
}

// runKey names one run: one probe kind for one name from one vantage.
type runKey struct {
	name, vantage string
	kind          reports.Kind
}

// key is the run's runKey.
func (r *schedRun) key() runKey { return runKey{normName(r.target.Name), r.vantage.Name, r.kind} }

// schedRun is one (vantage × target × kind) and its timing. Fields are
// guarded by Scheduler.mu. The target and the vantage are shared by every
// run of the same target or vantage: at 100,000 targets a copy per run
// cost some 35 MiB.
type schedRun struct {
	kind     reports.Kind
	target   *Target
	vantage  *Vantage
	probe    Probe
	next     time.Time
	failures int32
	index    int32 // position in the heap; -1 while running or removed
	running  bool  // handed to a worker
	gen      uint64
	again    bool // Reprobe asked while it was running: run again on completion
	removed  bool // left the work while running: drop its result
	done     bool // completed at least once
	// exact: the kind chose this wait itself (Schedule.Next), a pace that
	// early dispatch must not shorten (a watch's polls keep a minimum gap).
	exact bool
}

// runHeap orders runs by when they are due: a 4-ary min-heap whose entries
// carry the due time inline, so that sifting compares neighbouring array
// slots instead of following a pointer to each run (at 40,000 runs those
// cache misses were a tenth of the scheduler's CPU).
type runHeap []heapEntry

// heapEntry is one run in the heap; at is r.next as an offset from the
// scheduler's epoch (Sub keeps time.Time's monotonic ordering).
type heapEntry struct {
	at int64
	r  *schedRun
}

const heapArity = 4

func (h runHeap) set(i int, e heapEntry) {
	h[i] = e
	e.r.index = int32(i)
}

func (h runHeap) up(i int) {
	e := h[i]
	for i > 0 {
		parent := (i - 1) / heapArity
		if h[parent].at <= e.at {
			break
		}
		h.set(i, h[parent])
		i = parent
	}
	h.set(i, e)
}

// down sifts h[i] toward the leaves and reports whether it moved.
func (h runHeap) down(i int) bool {
	e, start, n := h[i], i, len(h)
	for {
		first := heapArity*i + 1
		if first >= n {
			break
		}
		least := first
		for c := first + 1; c < min(first+heapArity, n); c++ {
			if h[c].at < h[least].at {
				least = c
			}
		}
		if e.at <= h[least].at {
			break
		}
		h.set(i, h[least])
		i = least
	}
	h.set(i, e)
	return i != start
}

// at is the heap key of a run due at t.
func (s *Scheduler) at(t time.Time) int64 { return int64(t.Sub(s.epoch)) }

// push adds r to the heap, due at r.next.
func (s *Scheduler) push(r *schedRun) {
	s.heap = append(s.heap, heapEntry{at: s.at(r.next), r: r})
	s.heap.up(len(s.heap) - 1)
}

// pop takes the earliest run off the heap.
func (s *Scheduler) pop() *schedRun {
	return s.removeAt(0)
}

// removeAt takes the run at heap position i off the heap.
func (s *Scheduler) removeAt(i int) *schedRun {
	h := s.heap
	r := h[i].r
	last := len(h) - 1
	if i != last {
		h.set(i, h[last])
	}
	h[last] = heapEntry{}
	s.heap = h[:last]
	if i != last && !s.heap.down(i) {
		s.heap.up(i)
	}
	r.index = -1
	return r
}

// fix restores the heap after r.next of the run at position i changed.
func (s *Scheduler) fix(i int) {
	s.heap[i].at = s.at(s.heap[i].r.next)
	if !s.heap.down(i) {
		s.heap.up(i)
	}
}

// Scheduler runs every (vantage × target × probe kind) on its interval
// with jitter, under a global concurrency limit, each run under a per-run
// timeout, with exponential backoff after failures, and records each
// Observation in the Store.
//
// It is a timer heap and a worker pool, not a goroutine per run: one
// dispatcher sleeps until the earliest run is due and hands it to one of
// Concurrency workers, so 100,000 targets cost one heap entry each, not a
// goroutine stack each.
type Scheduler struct {
	sch     Schedule
	store   *Store
	log     *zap.Logger
	clock   Clock
	epoch   time.Time      // heap keys are offsets from it
	jitter  func() float64 // uniform in [0, 1)
	slack   time.Duration  // maxDispatchSlack; tests that check exact times set 0
	running atomic.Bool

	mu       sync.Mutex
	byName   map[string][]*schedRun // normalized name → its runs
	nruns    int
	gen      uint64 // SetWork's generation: runs it did not mention leave
	heap     runHeap
	notReady int  // runs that have not completed once
	loaded   bool // SetWork was called
	metrics  *Metrics
	ready    chan struct{} // closed while every run has completed once
	wake     chan struct{} // the earliest due time may have moved
	inflight int
	// sleepUntil is when the dispatcher's current timer fires, zero while
	// it is not sleeping on a timer (awake, or waiting for work to be set).
	// A run due no earlier needs no wake-up: the timer comes first. Tests
	// wait for a quiet scheduler with it.
	sleepUntil time.Time
}

// NewScheduler returns a scheduler with no work; SetWork gives it some.
// A nil logger logs nothing, a nil clock is the real one, a nil store keeps
// nothing.
func NewScheduler(sch Schedule, store *Store, logger *zap.Logger, clock Clock) *Scheduler {
	if logger == nil {
		logger = zap.NewNop()
	}
	if clock == nil {
		clock = RealClock()
	}
	if sch.Jitter < 0 {
		sch.Jitter = 0
	} else if sch.Jitter == 0 {
		sch.Jitter = DefaultJitter
	}
	if sch.Concurrency <= 0 {
		sch.Concurrency = DefaultConcurrency
	}
	if sch.Timeout <= 0 {
		sch.Timeout = DefaultTimeout
	}
	if sch.MaxBackoff <= 0 {
		sch.MaxBackoff = DefaultMaxBackoff
	}
	return &Scheduler{sch: sch, store: store, log: logger.Named("scheduler"), clock: clock, epoch: clock.Now(),
		jitter: rand.Float64, slack: maxDispatchSlack, byName: map[string][]*schedRun{},
		wake: make(chan struct{}, 1), ready: make(chan struct{})}
}

// SetMetrics makes the scheduler count every run in m (Metrics.Observe).
// Call it before Run.
func (s *Scheduler) SetMetrics(m *Metrics) {
	s.mu.Lock()
	s.metrics = m
	s.mu.Unlock()
}

// SetWork replaces the runs with entries: runs that stay keep their timing
// and backoff (their target, vantage and probe are updated), new ones
// start at a random point within one interval (FirstWithin), removed ones
// stop and their observations leave the store. An entry listed twice
// counts once.
func (s *Scheduler) SetWork(entries []Entry) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	added := 0
	for i := range entries {
		e := &entries[i]
		name := normName(e.Target.Name)
		runs := s.byName[name]
		if r := findRun(runs, e.Vantage.Name, e.Kind); r != nil {
			if r.gen != s.gen { // an entry listed twice counts once
				r.gen, r.target, r.vantage, r.probe = s.gen, e.Target, e.Vantage, e.Probe
			}
			continue
		}
		r := &schedRun{kind: e.Kind, target: e.Target, vantage: e.Vantage, probe: e.Probe, index: -1, gen: s.gen,
			next: now.Add(time.Duration(s.jitter() * float64(s.sch.firstWithin(e.Kind))))}
		s.byName[name] = append(runs, r)
		s.push(r)
		s.nruns++
		s.notReady++
		added++
	}
	removed := 0
	for name, runs := range s.byName {
		kept := runs[:0]
		for _, r := range runs {
			if r.gen == s.gen {
				kept = append(kept, r)
				continue
			}
			removed++
			s.nruns--
			if !r.done {
				s.notReady--
			}
			if r.index >= 0 {
				s.removeAt(int(r.index))
			}
			r.removed = true
			if s.store != nil {
				s.store.Remove(name, r.vantage.Name, r.kind)
			}
		}
		clear(runs[len(kept):])
		if len(kept) == 0 {
			delete(s.byName, name)
		} else {
			s.byName[name] = kept
		}
	}
	s.loaded = true
	s.readyChanged()
	s.log.Info("work set", zap.Int("runs", s.nruns), zap.Int("added", added), zap.Int("removed", removed))
	s.poke()
}

// findRun is the run of a name's runs from vantage by kind, or nil.
func findRun(runs []*schedRun, vantage string, kind reports.Kind) *schedRun {
	for _, r := range runs {
		if r.vantage.Name == vantage && r.kind == kind {
			return r
		}
	}
	return nil
}

// readyChanged opens or closes the ready channel after notReady changed;
// call with mu held.
func (s *Scheduler) readyChanged() {
	select {
	case <-s.ready:
		if s.notReady > 0 || !s.loaded {
			s.ready = make(chan struct{})
		}
	default:
		if s.loaded && s.notReady == 0 {
			close(s.ready)
		}
	}
}

// AllRan is closed once work was set and every run has completed once
// (until work that has not run yet is added).
func (s *Scheduler) AllRan() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready
}

// slackOf is how early r may start (see minDispatchSlack), never more than
// s.slack.
func (s *Scheduler) slackOf(r *schedRun) time.Duration {
	if r.exact {
		return 0
	}
	return min(s.slack, max(minDispatchSlack, s.sch.interval(r.kind)/slackDivisor))
}

// wakeFor wakes the dispatcher for a run now due at next, unless its
// timer fires no later anyway; call with mu held. At 10,000 names × 4
// vantages a wake-up per completed run (the dispatcher re-arming its
// timer 700 times a second) was a fifth of the scheduler's CPU.
func (s *Scheduler) wakeFor(next time.Time) {
	if !s.sleepUntil.IsZero() && !next.Before(s.sleepUntil) {
		return
	}
	s.poke()
}

// poke wakes the dispatcher; call with mu held.
func (s *Scheduler) poke() {
	s.sleepUntil = time.Time{}
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Reprobe runs every probe of name now, or those of the given kinds (runs
// in flight run again as soon as they finish). Unknown names are ignored.
func (s *Scheduler) Reprobe(name string, kinds ...reports.Kind) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.byName[normName(name)] {
		if len(kinds) > 0 && !slices.Contains(kinds, r.kind) {
			continue
		}
		if r.running {
			r.again = true
			continue
		}
		if r.index >= 0 {
			r.next = now
			s.fix(int(r.index))
		}
	}
	s.poke()
}

// Ready reports whether work was set and every run has completed once.
func (s *Scheduler) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loaded && s.notReady == 0
}

// errRunning is Run's answer to a second concurrent call.
var errRunning = errors.New("probes: scheduler is already running")

// Run runs the work until ctx ends, then waits for the runs in flight to
// return (they see ctx cancelled) and returns nil.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return errRunning
	}
	defer s.running.Store(false)
	work := make(chan *schedRun)
	var wg sync.WaitGroup
	for range s.sch.Concurrency {
		wg.Go(func() {
			for {
				// A worker that just finished takes the run the dispatcher
				// holds, else the next due run straight from the heap: in
				// a batch of due runs the dispatcher need not wake for
				// each. Only an idle worker waits.
				var r *schedRun
				select {
				case r = <-work:
				default:
					r = s.takeDue(ctx)
				}
				if r == nil {
					select {
					case r = <-work:
					case <-ctx.Done():
						return
					}
				}
				s.execute(ctx, r)
			}
		})
	}
	s.dispatch(ctx, work)
	wg.Wait()
	return nil
}

// takeDue pops the earliest run if it is due (within its slack), as the
// dispatcher would, or returns nil.
func (s *Scheduler) takeDue(ctx context.Context) *schedRun {
	if ctx.Err() != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.heap) == 0 || s.heap[0].r.next.After(s.clock.Now().Add(s.slackOf(s.heap[0].r))) {
		return nil
	}
	r := s.pop()
	r.running = true
	s.inflight++
	return r
}

// dispatch hands due runs to the workers; the unbuffered channel is the
// concurrency limit: with every worker busy, the next due run waits.
func (s *Scheduler) dispatch(ctx context.Context, work chan<- *schedRun) {
	for {
		s.mu.Lock()
		s.sleepUntil = time.Time{} // awake: it looks at the heap before sleeping again
		now := s.clock.Now()
		if len(s.heap) > 0 && !s.heap[0].r.next.After(now.Add(s.slackOf(s.heap[0].r))) {
			r := s.pop()
			r.running = true
			s.inflight++
			s.mu.Unlock()
			select {
			case work <- r:
				continue
			case <-ctx.Done():
				s.mu.Lock()
				r.running = false
				s.inflight--
				if !r.removed {
					s.push(r)
				}
				s.mu.Unlock()
				return
			}
		}
		var timer Timer
		var fire <-chan time.Time
		if len(s.heap) > 0 {
			next := s.heap[0].r.next
			timer = s.clock.NewTimer(next.Sub(now))
			fire = timer.C()
			s.sleepUntil = next
		}
		s.mu.Unlock()
		select {
		case <-fire:
		case <-s.wake:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// execute performs one run under the per-run timeout, records it and
// schedules the next.
func (s *Scheduler) execute(ctx context.Context, r *schedRun) {
	s.mu.Lock()
	t, v, p, kind := *r.target, *r.vantage, r.probe, r.kind
	metrics, due := s.metrics, r.next
	s.mu.Unlock()

	start := s.clock.Now()
	if metrics != nil {
		metrics.ObserveDelay(kind, start.Sub(due))
	}
	runCtx, cancel := context.WithTimeout(ctx, s.sch.Timeout)
	obs := s.runProbe(runCtx, kind, p, t, v)
	timedOut := errors.Is(runCtx.Err(), context.DeadlineExceeded)
	cancel()
	shutdown := ctx.Err() != nil

	obs.Kind = kind
	if obs.Name == "" {
		obs.Name, obs.Challenge, obs.Vantage = t.Name, t.Challenge, v.Vantage
	}
	if obs.Start.IsZero() {
		obs.Start = start
	}
	if obs.Duration == 0 {
		obs.Duration = s.clock.Now().Sub(start)
	}
	if timedOut && !shutdown {
		obs.OK = false
		obs.Checks = append(obs.Checks, reports.Check{Name: "probe.run", Target: t.Name, Status: reports.CheckFail,
			Duration: obs.Duration, Note: fmt.Sprintf("the %s probe did not finish within its %s timeout", obs.Kind, s.sch.Timeout)})
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	r.running = false
	s.inflight--
	if shutdown {
		// An artifact of shutting down, not an observation of the target.
		if !r.removed {
			s.push(r)
		}
		return
	}
	if r.removed {
		return
	}
	if s.store != nil {
		s.store.Add(obs)
	}
	if metrics != nil {
		metrics.Observe(obs)
	}
	if !r.done {
		r.done = true
		s.notReady--
		s.readyChanged()
	}
	wait := s.sch.interval(kind)
	if obs.OK {
		r.failures = 0
	} else {
		r.failures++
		wait = backoff(wait, int(r.failures), s.sch.MaxBackoff)
		s.log.Debug("probe run failed", zap.String("name", t.Name), zapVantage(v), zap.String("kind", string(kind)),
			zap.Int("failures", int(r.failures)), zap.Duration("next_in", wait))
	}
	r.exact = false
	if next := s.sch.Next[kind]; next != nil {
		if d, ok := next(obs); ok {
			wait, r.exact = d, true
		}
	}
	if !r.exact {
		wait += time.Duration(s.jitter() * s.sch.Jitter * float64(wait))
	}
	// The cadence follows the time the run was due, not when it started, so
	// neither early dispatch (slack) nor a full worker pool makes it drift;
	// a run longer than its interval runs again at once.
	r.next = r.next.Add(wait)
	if now := s.clock.Now(); r.next.Before(now) {
		r.next = now
	}
	if r.again {
		r.again = false
		r.next = s.clock.Now()
	}
	s.push(r)
	s.wakeFor(r.next)
}

// runProbe runs p, turning a panic into a failed observation with a
// probe.internal_error finding: one bad answer or one bug must not take the
// daemon down. The stack goes to the log, never into the report.
func (s *Scheduler) runProbe(ctx context.Context, kind reports.Kind, p Probe, t Target, v Vantage) (obs reports.Observation) {
	defer func() {
		if rec := recover(); rec != nil {
			obs = s.panicked(kind, t, v, rec)
		}
	}()
	return p.Run(ctx, t, v)
}

// panicked records a probe run that panicked.
func (s *Scheduler) panicked(kind reports.Kind, t Target, v Vantage, rec any) reports.Observation {
	s.log.Error("probe panicked", zap.String("kind", string(kind)), zap.String("name", t.Name), zapVantage(v),
		zap.Any("panic", rec), zap.Stack("stack"))
	s.mu.Lock()
	m := s.metrics
	s.mu.Unlock()
	if m != nil {
		m.ObservePanic(kind)
	}
	return PanicObservation(kind, t, v, rec)
}

// PanicObservation is the observation of a run that panicked: not OK, a
// probe.internal_error finding naming the kind, nothing of the panic's
// own text beyond its first line (it may carry what a hostile answer said).
func PanicObservation(kind reports.Kind, t Target, v Vantage, rec any) reports.Observation {
	msg := strings.SplitN(fmt.Sprint(rec), "\n", 2)[0]
	o := reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: kind,
		Findings: []reports.Finding{reports.New(reports.CodeProbeInternalError, t.Name,
			fmt.Sprintf("the %s probe failed inside acmediag (%s); its log line has the stack", kind, truncate(msg, 120)))},
		Checks: []reports.Check{{Name: "probe.run", Target: t.Name, Status: reports.CheckFail, Note: fmt.Sprintf("the %s probe crashed", kind)}}}
	return o.Finish()
}

// backoff is interval × 2^failures, capped at max (never below interval).
func backoff(interval time.Duration, failures int, max time.Duration) time.Duration {
	if max < interval {
		return interval
	}
	shift := min(failures, maxBackoffShift)
	if interval > max>>shift {
		return max
	}
	return interval << shift
}

// idle reports, for tests, when the dispatcher will next wake up if it is
// asleep with no run in flight (zero: nothing is scheduled at all).
func (s *Scheduler) idle() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == 0 && len(s.heap) == 0 && len(s.wake) == 0 && s.loaded {
		return time.Time{}, true
	}
	return s.sleepUntil, s.inflight == 0 && !s.sleepUntil.IsZero() && len(s.wake) == 0
}

// quiet reports, for tests, when the dispatcher will next wake up if it is
// asleep with no run in flight.
func (s *Scheduler) quiet() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sleepUntil, s.inflight == 0 && !s.sleepUntil.IsZero() && len(s.wake) == 0
}
