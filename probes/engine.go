package probes

import (
	"context"
	"slices"
	"sync"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// Engine runs a plan: one Scheduler per lane, every run recorded in the
// store and counted in the metrics. diagnose runs a plan once (RunOnce),
// the daemon forever (Run), swapping plans on reload (SetPlan).
type Engine struct {
	store   *Store
	metrics *Metrics
	log     *zap.Logger
	clock   Clock

	// setMu puts one SetPlan or SetLeading in force at a time, so that
	// a reload and a change of leader never interleave their work.
	setMu sync.Mutex
	mu    sync.Mutex
	plan  *Plan
	lanes map[Lane]*Scheduler // fixed by the first plan: their pacing takes effect at start
	order []Lane
	// leaderOnly lanes run only while leading (cluster mode: the canary
	// spends the CA's rate limits once per cluster, not once per pod).
	leaderOnly map[Lane]bool
	leading    bool
}

// NewEngine returns an engine that records into store and counts into
// metrics (either may be nil); a nil clock is the real one.
func NewEngine(store *Store, metrics *Metrics, logger *zap.Logger, clock Clock) *Engine {
	if logger == nil {
		logger = zap.NewNop()
	}
	if clock == nil {
		clock = RealClock()
	}
	return &Engine{store: store, metrics: metrics, log: logger, clock: clock, lanes: map[Lane]*Scheduler{},
		leaderOnly: map[Lane]bool{}, leading: true}
}

// SetLeaderOnly makes lanes run only while the engine leads (SetLeading);
// it starts not leading. Call it before the first SetPlan. Leader-only
// lanes do not count for Ready: a pod's readiness must not follow its
// leadership, since every pod probes as a vantage.
func (e *Engine) SetLeaderOnly(lanes ...Lane) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range lanes {
		e.leaderOnly[l] = true
	}
	e.leading = false
}

// SetLeading starts (true) or stops the leader-only lanes' runs; stopped
// runs' observations leave the store, as a removed target's do.
func (e *Engine) SetLeading(leading bool) {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	e.mu.Lock()
	e.leading = leading
	p := e.plan
	var lanes []*Scheduler
	var which []Lane
	for l := range e.leaderOnly {
		if s, ok := e.lanes[l]; ok {
			lanes, which = append(lanes, s), append(which, l)
		}
	}
	e.mu.Unlock()
	if p == nil {
		return
	}
	for i, s := range lanes {
		var work []Entry
		if leading {
			for _, en := range p.Entries() {
				if en.Lane == which[i] {
					work = append(work, en)
				}
			}
		}
		s.SetWork(work)
	}
}

// SetPlan puts p in force: each lane's runs follow p's entries (runs that
// stay keep their timing), the propagation watches are run through this
// engine. The lanes' pacing (concurrency, timeout) is the first plan's.
func (e *Engine) SetPlan(p *Plan) {
	e.setMu.Lock()
	defer e.setMu.Unlock()
	entries := p.Entries()
	byLane := map[Lane][]Entry{}
	for _, en := range entries {
		byLane[en.Lane] = append(byLane[en.Lane], en)
	}
	e.mu.Lock()
	e.plan = p
	if e.metrics != nil {
		e.metrics.usePlan(p)
	}
	for _, k := range p.Registry.Kinds() {
		if _, ok := e.lanes[k.Lane]; ok {
			continue
		}
		s := NewScheduler(p.LaneSchedule(k.Lane), e.store, e.log.Named(string(k.Lane)), e.clock)
		if e.metrics != nil {
			s.SetMetrics(e.metrics)
		}
		e.lanes[k.Lane] = s
		e.order = append(e.order, k.Lane)
	}
	lanes := slices.Clone(e.order)
	held := map[Lane]bool{}
	for l := range e.leaderOnly {
		held[l] = !e.leading
	}
	e.mu.Unlock()
	for _, l := range lanes {
		if held[l] {
			e.lanes[l].SetWork(nil)
			continue
		}
		e.lanes[l].SetWork(byLane[l])
	}
	p.Env.Shared.Watches.SetPoke(func(name string) { e.Reprobe(name, KindPropagation) })
	for _, k := range p.Registry.Kinds() {
		if k.Follow == nil {
			continue
		}
		for _, name := range k.Follow(p) {
			e.Reprobe(name, k.Kind)
		}
	}
}

// Plan is the plan in force.
func (e *Engine) Plan() *Plan {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.plan
}

func (e *Engine) schedulers() []*Scheduler {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]*Scheduler, 0, len(e.order))
	for _, l := range e.order {
		out = append(out, e.lanes[l])
	}
	return out
}

// Run runs every lane until ctx ends.
func (e *Engine) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range e.schedulers() {
		wg.Go(func() { _ = s.Run(ctx) })
	}
	wg.Wait()
}

// RunOnce runs the plan until every run has completed once (or ctx ends),
// then stops: diagnose. Runs a lane triggers meanwhile (a canary order
// waiting on its propagation watch) run as often as they are due.
func (e *Engine) RunOnce(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.Run(ctx)
	}()
	for _, s := range e.schedulers() {
		select {
		case <-s.AllRan():
		case <-ctx.Done():
		}
	}
	cancel()
	<-done
}

// Reprobe runs name's probes now: all, or those of the given kinds.
func (e *Engine) Reprobe(name string, kinds ...reports.Kind) {
	for _, s := range e.schedulers() {
		s.Reprobe(name, kinds...)
	}
}

// Ready reports whether every run of every lane has completed once.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	var ss []*Scheduler
	for _, l := range e.order {
		if !e.leaderOnly[l] {
			ss = append(ss, e.lanes[l])
		}
	}
	e.mu.Unlock()
	for _, s := range ss {
		if !s.Ready() {
			return false
		}
	}
	return len(ss) > 0
}
