package probes

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// Schedule defaults.
const (
	DefaultInterval    = 60 * time.Second
	DefaultJitter      = 0.1
	DefaultConcurrency = 32
	DefaultTimeout     = 30 * time.Second
	DefaultMaxBackoff  = 10 * time.Minute
)

// dispatchSlack is how early a run may start so that runs due close
// together start in one wake-up of the dispatcher: at 10,000 names × 4
// vantages every minute the runs are 1.5 ms apart, and waking the
// dispatcher's thread for each costs more CPU than the scheduling itself.
const dispatchSlack = 50 * time.Millisecond

// maxBackoffShift caps the exponent of the backoff so that interval×2^n
// cannot overflow before the MaxBackoff cap applies.
const maxBackoffShift = 30

// Schedule says how often and how many at once the probes run. Zero fields
// take the defaults.
type Schedule struct {
	Interval    map[string]time.Duration // per probe kind; default 60s
	Jitter      float64                  // fraction of the interval added at random to each wait, default 0.1
	Concurrency int                      // runs in flight at once, default 32
	Timeout     time.Duration            // per run, default 30s
	MaxBackoff  time.Duration            // default 10m
}

func (sch Schedule) interval(kind string) time.Duration {
	if d := sch.Interval[kind]; d > 0 {
		return d
	}
	return DefaultInterval
}

// runKey names one run: one probe kind for one name from one vantage.
type runKey struct{ name, vantage, kind string }

// schedRun is one (vantage × target × kind) and its timing. Fields are
// guarded by Scheduler.mu. The target and the vantage are shared by every
// run of the same target or vantage: at 100,000 targets a copy per run
// cost some 35 MiB.
type schedRun struct {
	key      runKey
	target   *Target
	vantage  *Vantage
	probe    Probe
	next     time.Time
	failures int
	index    int  // position in the heap; -1 while running or removed
	running  bool // handed to a worker
	again    bool // Reprobe asked while it was running: run again on completion
	removed  bool // left the work while running: drop its result
	done     bool // completed at least once
}

// runHeap orders runs by when they are due.
type runHeap []*schedRun

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return h[i].next.Before(h[j].next) }
func (h runHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *runHeap) Push(x any) {
	r := x.(*schedRun)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *runHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.index = -1
	return r
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
	probes  []Probe
	store   *Store
	log     *zap.Logger
	clock   Clock
	jitter  func() float64 // uniform in [0, 1)
	slack   time.Duration  // dispatchSlack; tests that check exact times set 0
	running atomic.Bool

	mu       sync.Mutex
	runs     map[runKey]*schedRun
	byName   map[string][]*schedRun
	heap     runHeap
	notReady int  // runs that have not completed once
	loaded   bool // SetWork was called
	metrics  *Metrics
	wake     chan struct{} // the earliest due time may have moved
	inflight int
	// sleepUntil is when the dispatcher's current timer fires, zero while
	// it is not sleeping on a timer (tests wait for a quiet scheduler).
	sleepUntil time.Time
}

// NewScheduler returns a scheduler with no work; SetWork gives it some.
// A nil logger logs nothing, a nil clock is the real one, a nil store keeps
// nothing.
func NewScheduler(sch Schedule, probes []Probe, store *Store, logger *zap.Logger, clock Clock) *Scheduler {
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
	return &Scheduler{sch: sch, probes: probes, store: store, log: logger.Named("scheduler"), clock: clock,
		jitter: rand.Float64, slack: dispatchSlack, runs: map[runKey]*schedRun{}, byName: map[string][]*schedRun{},
		wake: make(chan struct{}, 1)}
}

// SetMetrics makes the scheduler count every run in m (Metrics.Observe).
// Call it before Run.
func (s *Scheduler) SetMetrics(m *Metrics) {
	s.mu.Lock()
	s.metrics = m
	s.mu.Unlock()
}

// applies reports whether probe p has anything to check for t: a challenge
// probe only runs for targets of its challenge (it would record an empty
// observation for the others).
func applies(p Probe, t Target) bool {
	if a, ok := p.(Applier); ok {
		return a.Applies(t)
	}
	return true
}

// SetWork replaces the targets and vantages: runs that stay keep their
// timing and backoff (their target and vantage details are updated), new
// ones start at a random point within one interval, removed ones stop and
// their observations leave the store. A target listed twice counts once.
func (s *Scheduler) SetWork(targets []Target, vantages []Vantage) {
	now := s.clock.Now()
	want := make(map[runKey]struct{}, len(targets)*len(vantages)*len(s.probes))
	s.mu.Lock()
	defer s.mu.Unlock()
	added := 0
	shared := make([]*Target, len(targets))
	for i := range targets {
		t := targets[i]
		shared[i] = &t
	}
	for _, v := range vantages {
		vp := &v
		for i, t := range targets {
			tp := shared[i]
			for _, p := range s.probes {
				if !applies(p, t) {
					continue
				}
				k := runKey{normName(t.Name), v.Name, p.Kind()}
				if _, dup := want[k]; dup {
					continue
				}
				want[k] = struct{}{}
				if r := s.runs[k]; r != nil {
					r.target, r.vantage, r.probe = tp, vp, p
					continue
				}
				iv := s.sch.interval(p.Kind())
				r := &schedRun{key: k, target: tp, vantage: vp, probe: p, index: -1,
					next: now.Add(time.Duration(s.jitter() * float64(iv)))}
				s.runs[k] = r
				s.byName[k.name] = append(s.byName[k.name], r)
				heap.Push(&s.heap, r)
				s.notReady++
				added++
			}
		}
	}
	removed := 0
	for k, r := range s.runs {
		if _, ok := want[k]; ok {
			continue
		}
		removed++
		delete(s.runs, k)
		if !r.done {
			s.notReady--
		}
		if r.index >= 0 {
			heap.Remove(&s.heap, r.index)
		}
		r.removed = true
		if s.store != nil {
			s.store.Remove(k.name, k.vantage, k.kind)
		}
	}
	if removed > 0 {
		for name, rs := range s.byName {
			kept := rs[:0]
			for _, r := range rs {
				if !r.removed {
					kept = append(kept, r)
				}
			}
			if len(kept) == 0 {
				delete(s.byName, name)
			} else {
				s.byName[name] = kept
			}
		}
	}
	s.loaded = true
	s.log.Info("work set", zap.Int("runs", len(s.runs)), zap.Int("added", added), zap.Int("removed", removed))
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

// Reprobe runs every probe of name now (runs in flight run again as soon
// as they finish). Unknown names are ignored.
func (s *Scheduler) Reprobe(name string) {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.byName[normName(name)] {
		if r.running {
			r.again = true
			continue
		}
		if r.index >= 0 {
			r.next = now
			heap.Fix(&s.heap, r.index)
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
				select {
				case r := <-work:
					s.execute(ctx, r)
				case <-ctx.Done():
					return
				}
			}
		})
	}
	s.dispatch(ctx, work)
	wg.Wait()
	return nil
}

// dispatch hands due runs to the workers; the unbuffered channel is the
// concurrency limit: with every worker busy, the next due run waits.
func (s *Scheduler) dispatch(ctx context.Context, work chan<- *schedRun) {
	for {
		s.mu.Lock()
		now := s.clock.Now()
		if len(s.heap) > 0 && !s.heap[0].next.After(now.Add(s.slack)) {
			r := heap.Pop(&s.heap).(*schedRun)
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
					heap.Push(&s.heap, r)
				}
				s.mu.Unlock()
				return
			}
		}
		var timer Timer
		var fire <-chan time.Time
		if len(s.heap) > 0 {
			d := s.heap[0].next.Sub(now)
			timer = s.clock.NewTimer(d)
			fire = timer.C()
			s.sleepUntil = s.heap[0].next
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
	t, v, p := *r.target, *r.vantage, r.probe
	metrics := s.metrics
	s.mu.Unlock()

	start := s.clock.Now()
	runCtx, cancel := context.WithTimeout(ctx, s.sch.Timeout)
	obs := s.runProbe(runCtx, p, t, v)
	timedOut := errors.Is(runCtx.Err(), context.DeadlineExceeded)
	cancel()
	shutdown := ctx.Err() != nil

	if obs.Kind == "" {
		obs.Kind = p.Kind()
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
			heap.Push(&s.heap, r)
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
	}
	wait := s.sch.interval(r.key.kind)
	if obs.OK {
		r.failures = 0
	} else {
		r.failures++
		wait = backoff(wait, r.failures, s.sch.MaxBackoff)
		s.log.Debug("probe run failed", zap.String("name", t.Name), zapVantage(v), zap.String("kind", obs.Kind),
			zap.Int("failures", r.failures), zap.Duration("next_in", wait))
	}
	wait += time.Duration(s.jitter() * s.sch.Jitter * float64(wait))
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
	heap.Push(&s.heap, r)
	s.poke()
}

// runProbe runs p, turning a panic in a probe into a failed observation:
// one bad probe kind must not take the daemon down.
func (s *Scheduler) runProbe(ctx context.Context, p Probe, t Target, v Vantage) (obs Observation) {
	defer func() {
		if rec := recover(); rec != nil {
			s.log.Error("probe panicked", zap.String("kind", p.Kind()), zap.String("name", t.Name), zapVantage(v), zap.Any("panic", rec))
			obs = Observation{Target: t, Vantage: v, Kind: p.Kind(), Checks: []reports.Check{{Name: "probe.run", Target: t.Name,
				Status: reports.CheckFail, Note: fmt.Sprintf("the %s probe crashed: %v", p.Kind(), rec)}}}
		}
	}()
	return p.Run(ctx, t, v)
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

// quiet reports, for tests, when the dispatcher will next wake up if it is
// asleep with no run in flight.
func (s *Scheduler) quiet() (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sleepUntil, s.inflight == 0 && !s.sleepUntil.IsZero() && len(s.wake) == 0
}
