package main

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// The daemon's propagation watches: for every dns-01 target with an
// expect_txt value, a probes.PropagationWatcher measures when each
// authoritative server address of the record's zone first served the
// value. A value is watched once when it appears (the daemon starts, or a
// reload brings a new value); a watch that did not see the value
// everywhere is watched again on a re-probe of the name. Memory and load
// are bounded: one watch per name at a time (a new value cancels the
// old one's), at most propagation.concurrency running, each ending after
// propagation.timeout, and at most maxPropagationResults results kept.
//
// The canary's dns-01 orders wait on CanaryCheck between publishing their
// TXT record and answering the challenge: the same watch, run on the
// canary's goroutine, its result kept per target beside the expect_txt
// one (a target shows whichever ended last).

// Bounds of the propagation results.
const (
	// maxPropagationResults bounds the finished watches kept (about 1 KiB
	// each with findings); the oldest results go first.
	maxPropagationResults = 10_000
	// maxPagePropagationRows bounds the page's propagation table: the
	// slowest names first. The API has each name's result.
	maxPagePropagationRows = 1_000
)

type watchState int

const (
	watchPending watchState = iota
	watchRunning
	watchDone
)

// propWatch is one name's expected value and its watch.
type propWatch struct {
	name, value string
	gen         uint64 // which watch of the name this is; older ones' results are dropped
	state       watchState
	cancel      context.CancelFunc // while running
	res         *propagationOutcome
}

// propagationOutcome is a finished watch as the API and the page show it.
// Its slices are never modified once it is published.
type propagationOutcome struct {
	Value     string
	Canary    bool // the value of a canary order, not the target's expect_txt
	Start     time.Time
	End       time.Time
	Verdict   probes.PropagationVerdict
	Elapsed   time.Duration
	Addresses []propagationAddr
	Findings  []reports.Finding // named after the target, not _acme-challenge
}

// propagationAddr is one authoritative server address in a finished watch.
type propagationAddr struct {
	Server    string // "ns1.example.com (192.0.2.1)"
	Served    bool
	FirstSeen time.Duration // since the watch started, when Served
	Queries   int
}

// watchRef names one queued or finished watch.
type watchRef struct {
	name string
	gen  uint64
}

// propagationWatches runs the daemon's propagation watches.
type propagationWatches struct {
	log     *zap.Logger
	base    *zap.Logger // the watcher names its own logger
	metrics *probes.Metrics
	workers int // fixed when Run starts

	mu       sync.Mutex
	checker  dnscheck.Checker
	settings propagationSettings
	watches  map[string]*propWatch
	canary   map[string]*propagationOutcome // the last canary order's watch, by name
	queue    []watchRef                     // pending watches, oldest first; stale entries are skipped
	finished []watchRef                     // finished watches in completion order, for eviction
	results  int
	gen      uint64
	wake     chan struct{}
}

func newPropagationWatches(log *zap.Logger, m *probes.Metrics, workers int) *propagationWatches {
	if log == nil {
		log = zap.NewNop()
	}
	return &propagationWatches{log: log.Named("propagation"), base: log, metrics: m, workers: max(workers, 1),
		watches: map[string]*propWatch{}, canary: map[string]*propagationOutcome{}, wake: make(chan struct{}, 1)}
}

// Set makes the watches follow targets: a dns-01 target with a new
// expect_txt value gets a watch queued, a changed value cancels the old
// value's watch, a target gone (or without a value now) drops its watch
// and result. checker and s apply to watches started from now on.
func (p *propagationWatches) Set(targets []probes.Target, checker dnscheck.Checker, s propagationSettings) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.checker, p.settings = checker, s
	want := make(map[string]string)
	var order []string
	isTarget := make(map[string]bool, len(targets))
	for _, t := range targets {
		isTarget[t.Name] = true
		if t.Challenge != dnscheck.DNS01 || t.ExpectTXT == "" {
			continue
		}
		if _, dup := want[t.Name]; !dup {
			order = append(order, t.Name)
		}
		want[t.Name] = t.ExpectTXT
	}
	for name, w := range p.watches {
		if v, ok := want[name]; !ok || v != w.value {
			p.drop(w)
		}
	}
	for name := range p.canary {
		if !isTarget[name] {
			delete(p.canary, name)
		}
	}
	added := 0
	for _, name := range order {
		if _, ok := p.watches[name]; !ok {
			p.enqueue(name, want[name])
			added++
		}
	}
	if len(p.queue) > 1024 && len(p.queue) > 2*len(p.watches) {
		// Reloads that change values leave stale entries behind.
		p.queue = slices.DeleteFunc(p.queue, func(r watchRef) bool { return !p.pending(r) })
	}
	if added > 0 {
		p.log.Info("propagation watches queued", zap.Int("new", added), zap.Int("names", len(p.watches)))
	}
	p.poke()
}

// Restart watches name's value again when its last watch ended without
// seeing it everywhere (or its result was evicted); a watch pending or
// running, or one that saw it everywhere, stays. It reports whether a
// watch was queued.
func (p *propagationWatches) Restart(name string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.watches[name]
	if w == nil || w.state != watchDone || w.res != nil && w.res.Verdict == probes.PropagationEverywhere {
		return false
	}
	value := w.value
	p.drop(w)
	p.enqueue(name, value)
	p.poke()
	return true
}

// CanaryCheck is the wait of a canary order for target: it watches the
// order's TXT value now, on the order's goroutine, and keeps the result
// as target's canary watch (a wildcard target's record is its base
// name's).
func (p *propagationWatches) CanaryCheck(target string) canary.PropagationCheck {
	return probes.AwaitPropagation(func(ctx context.Context, name, value string) probes.PropagationResult {
		p.mu.Lock()
		w := &probes.PropagationWatcher{Checker: p.checker, Wait: p.settings.IssuerWait, Metrics: p.metrics, Logger: p.base}
		p.mu.Unlock()
		res := w.Watch(ctx, name, value)
		out := summarize(target, res, true)
		p.mu.Lock()
		p.canary[target] = out
		p.mu.Unlock()
		return res
	})
}

// Result returns name's last finished watch.
func (p *propagationWatches) Result(name string) (propagationOutcome, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o := p.latest(name)
	if o == nil {
		return propagationOutcome{}, false
	}
	return *o, true
}

// Results returns every name's last finished watch.
func (p *propagationWatches) Results() map[string]propagationOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]propagationOutcome, p.results+len(p.canary))
	for name, w := range p.watches {
		if w.res != nil {
			out[name] = *p.latest(name)
		}
	}
	for name := range p.canary {
		out[name] = *p.latest(name)
	}
	return out
}

// latest is name's watch that ended last, expect_txt or canary, or nil;
// call with mu held.
func (p *propagationWatches) latest(name string) *propagationOutcome {
	var expected *propagationOutcome
	if w := p.watches[name]; w != nil {
		expected = w.res
	}
	c := p.canary[name]
	if expected == nil || c != nil && c.End.After(expected.End) {
		return c
	}
	return expected
}

// Run runs the queued watches, at most workers at once, until ctx ends.
func (p *propagationWatches) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for {
				w, ok := p.next(ctx)
				if !ok {
					select {
					case <-p.wake:
						continue
					case <-ctx.Done():
						return
					}
				}
				w.run()
			}
		})
	}
	wg.Wait()
}

// startedWatch is one watch handed to a worker.
type startedWatch struct {
	p       *propagationWatches
	ref     watchRef
	value   string
	ctx     context.Context
	parent  context.Context
	cancel  context.CancelFunc
	watcher *probes.PropagationWatcher
}

// next takes the oldest pending watch and marks it running.
func (p *propagationWatches) next(ctx context.Context) (startedWatch, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.queue) > 0 {
		r := p.queue[0]
		p.queue[0] = watchRef{}
		p.queue = p.queue[1:]
		if !p.pending(r) {
			continue
		}
		w := p.watches[r.name]
		wctx, cancel := context.WithTimeout(ctx, p.settings.Timeout)
		w.state, w.cancel = watchRunning, cancel
		if len(p.queue) > 0 {
			p.poke() // another idle worker may take the next one
		}
		return startedWatch{p: p, ref: r, value: w.value, ctx: wctx, parent: ctx, cancel: cancel,
			watcher: &probes.PropagationWatcher{Checker: p.checker, Wait: p.settings.IssuerWait, Metrics: p.metrics, Logger: p.base}}, true
	}
	p.queue = nil
	return startedWatch{}, false
}

// run performs the watch and records its result, unless the watch was
// superseded or the daemon is stopping (then the result says nothing).
func (s startedWatch) run() {
	res := s.watcher.Watch(s.ctx, s.ref.name, s.value)
	s.cancel()
	if s.parent.Err() != nil {
		return
	}
	s.p.finish(s.ref, summarize(s.ref.name, res, false))
}

func (p *propagationWatches) finish(r watchRef, out *propagationOutcome) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.watches[r.name]
	if w == nil || w.gen != r.gen {
		return
	}
	w.state, w.cancel, w.res = watchDone, nil, out
	p.results++
	p.finished = append(p.finished, r)
	for p.results > maxPropagationResults && len(p.finished) > 0 {
		old := p.finished[0]
		p.finished[0] = watchRef{}
		p.finished = p.finished[1:]
		if ow := p.watches[old.name]; ow != nil && ow.gen == old.gen && ow.res != nil {
			ow.res = nil
			p.results--
		}
	}
	if len(p.finished) > 2*maxPropagationResults {
		p.finished = slices.DeleteFunc(slices.Clone(p.finished), func(f watchRef) bool {
			fw := p.watches[f.name]
			return fw == nil || fw.gen != f.gen || fw.res == nil
		})
	}
	p.log.Debug("propagation watch ended", zap.String("name", r.name), zap.String("verdict", string(out.Verdict)),
		zap.Duration("elapsed", out.Elapsed))
}

// pending: r is the current watch of its name and waits for a worker.
// Call with mu held.
func (p *propagationWatches) pending(r watchRef) bool {
	w := p.watches[r.name]
	return w != nil && w.gen == r.gen && w.state == watchPending
}

// enqueue queues a new watch of name; call with mu held.
func (p *propagationWatches) enqueue(name, value string) {
	p.gen++
	p.watches[name] = &propWatch{name: name, value: value, gen: p.gen}
	p.queue = append(p.queue, watchRef{name, p.gen})
}

// drop cancels and forgets w; call with mu held.
func (p *propagationWatches) drop(w *propWatch) {
	if w.cancel != nil {
		w.cancel()
	}
	if w.res != nil {
		p.results--
	}
	delete(p.watches, w.name)
}

// poke wakes one idle worker; call with mu held.
func (p *propagationWatches) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// summarize keeps what the API and the page show of a watch: the findings
// renamed after the target (the page groups findings by target name), with
// when the watch ended, and each address's first-seen time.
func summarize(name string, res probes.PropagationResult, canary bool) *propagationOutcome {
	// Elapsed runs to the last address serving the value, or to the end
	// of the watch.
	source := "propagation watch"
	if canary {
		source = "canary order's propagation watch"
	}
	out := &propagationOutcome{Value: res.Value, Canary: canary, Start: res.Start, End: res.Start.Add(res.Elapsed), Verdict: res.Verdict, Elapsed: res.Elapsed}
	for _, a := range res.Addresses {
		out.Addresses = append(out.Addresses, propagationAddr{Server: a.HostAddr.String(), Served: a.Served, FirstSeen: a.FirstSeen, Queries: a.Queries})
	}
	for _, f := range res.Findings {
		f = f.With("challenge_name", f.Name).With("watch_started", res.Start.UTC().Format(time.RFC3339)).
			With("source", source)
		f.Name = name
		out.Findings = append(out.Findings, f)
	}
	return out
}

// check is the watch as a check line of the report: the verdict, and
// every address with when it first served the value.
func (o propagationOutcome) check(name string) reports.Check {
	st := reports.CheckOK
	switch {
	case o.Verdict != probes.PropagationEverywhere:
		st = reports.CheckFail
	case len(o.Findings) > 0:
		st = reports.CheckWarn
	}
	parts := make([]string, 0, len(o.Addresses))
	for _, a := range o.Addresses {
		if a.Served {
			parts = append(parts, fmt.Sprintf("%s after %.1fs", a.Server, a.FirstSeen.Seconds()))
		} else {
			parts = append(parts, fmt.Sprintf("%s not yet (%d queries)", a.Server, a.Queries))
		}
	}
	what := "expected value"
	if o.Canary {
		what = "canary order's value"
	}
	note := fmt.Sprintf("%s %q %s, watch started %s", what, o.Value, o.Verdict, o.Start.UTC().Format(time.RFC3339))
	if len(parts) > 0 {
		note += ": " + strings.Join(parts, "; ")
	}
	return reports.Check{Name: "dns01.propagation", Target: name, Status: st, Duration: o.Elapsed, Note: note}
}

// pageRows lists the addresses that served their value, for the page's
// propagation table: the slowest names first, at most maxPagePropagationRows.
func pageRows(results map[string]propagationOutcome) []reports.PropagationTime {
	names := make([]string, 0, len(results))
	for n, o := range results {
		if slices.ContainsFunc(o.Addresses, func(a propagationAddr) bool { return a.Served }) {
			names = append(names, n)
		}
	}
	slices.SortFunc(names, func(a, b string) int {
		return cmp.Or(cmp.Compare(results[b].Elapsed, results[a].Elapsed), strings.Compare(a, b))
	})
	var rows []reports.PropagationTime
	for _, n := range names {
		for _, a := range results[n].Addresses {
			if a.Served && len(rows) < maxPagePropagationRows {
				rows = append(rows, reports.PropagationTime{Name: n, Server: a.Server, Seconds: a.FirstSeen.Seconds()})
			}
		}
	}
	return rows
}
