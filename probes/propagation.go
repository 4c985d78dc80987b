package probes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// The propagation watch is a probe kind: each run asks every authoritative
// server address of a dns-01 record's zone that has not served the
// expected value yet, once, directly (RD=0), and records when each first
// served it. Its cadence is its own (Next): dense while the value is new
// (every PropagationFirstInterval, growing by PropagationBackoff up to
// PropagationMaxInterval, never faster than PropagationMaxRate queries a
// second per address), then the DNS interval once every address serves it
// or the watch timed out. The value is the target's expect_txt, or, while
// a canary order waits between publishing its record and answering the
// challenge, the order's (Watches.Await): the same watch, scheduled by the
// same scheduler, stored like every other observation.

// Pacing of a watch.
const (
	// PropagationMaxRate is the most queries a second sent to one server
	// address: polls are at least a fifth of a second apart.
	PropagationMaxRate = 5
	// PropagationMaxInterval bounds the wait between polls: a slow
	// provider costs one query every two seconds per address.
	PropagationMaxInterval = 2 * time.Second
	// propagationAgeShare: the wait is the watch's age divided by it.
	propagationAgeShare = 8
	// maxWatchedAddrs bounds the state of one watch; a zone with more
	// server addresses than this is hostile.
	maxWatchedAddrs = 64
	// serversMaxAge is how long a watch trusts the server addresses it
	// found; a value being watched keeps its list, a watch idle at the
	// slow cadence walks the delegation again on its next run.
	serversMaxAge = 10 * time.Minute
)

// PropagationCheck is the check name of each server address in a watch's
// observation.
const PropagationCheck = "dns01.propagation"

// Watches is the state of every propagation watch: which value each
// dns-01 name should serve and since when, the servers of its record, and
// when each first served the value. It outlives plans (Shared).
type Watches struct {
	mu      sync.Mutex
	watches map[string]*watch // normalized target name
	// poke runs a name's propagation watch now; the engine that runs the
	// plan sets it (SetPoke).
	poke func(name string)
}

// watch is one name's watch of one value.
type watch struct {
	value   string
	canary  bool      // the value is a waiting canary order's
	start   time.Time // when the value became expected
	servers *dnscheck.TXTServers
	found   time.Time
	seen    map[netip.Addr]time.Duration // first served, since start
	polls   int
	done    bool          // every address served it
	changed chan struct{} // closed and replaced after every run
}

// NewWatches returns empty watches.
func NewWatches() *Watches { return &Watches{watches: map[string]*watch{}} }

// SetPoke installs what runs a name's watch now (the engine's re-probe).
func (w *Watches) SetPoke(poke func(name string)) {
	w.mu.Lock()
	w.poke = poke
	w.mu.Unlock()
}

// expect returns the watch of name for value, starting it anew (at now)
// when the value changed; canary marks the value as a waiting order's.
// Call with mu held.
func (w *Watches) expect(name, value string, canary bool, now time.Time) *watch {
	name = normName(name)
	wt := w.watches[name]
	if wt == nil || wt.value != value {
		wt = &watch{value: value, canary: canary, start: now, seen: map[netip.Addr]time.Duration{}, changed: make(chan struct{})}
		if old := w.watches[name]; old != nil {
			close(old.changed) // a waiter of the old value sees it is gone
		}
		w.watches[name] = wt
	}
	return wt
}

// Await is a canary order's wait between publishing value at name's
// _acme-challenge record and answering the challenge: it makes value the
// watched one, runs the watch now, and returns nil once every server
// address served it, or an error naming the lagging addresses when ctx
// ends first. The target's own expected value (expect_txt), if any, is
// watched again afterwards.
func (w *Watches) Await(ctx context.Context, clock Clock, name, value string) error {
	w.mu.Lock()
	wt := w.expect(name, value, true, clock.Now())
	poke := w.poke
	w.mu.Unlock()
	defer func() {
		w.mu.Lock()
		if cur := w.watches[normName(name)]; cur == wt {
			delete(w.watches, normName(name))
			close(wt.changed)
		}
		w.mu.Unlock()
	}()
	if poke == nil {
		return errors.New("no propagation watch runs here")
	}
	poke(name)
	for {
		w.mu.Lock()
		done, changed := wt.done, wt.changed
		w.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
			if cur := w.current(name); cur != wt {
				return fmt.Errorf("another value replaced %q while it was watched", value)
			}
		case <-ctx.Done():
			return fmt.Errorf("%s not served everywhere yet: %s: %w", dnscheck.ChallengeName(strings.TrimPrefix(name, "*.")),
				w.lagging(wt), ctx.Err())
		}
	}
}

func (w *Watches) current(name string) *watch {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.watches[normName(name)]
}

func (w *Watches) lagging(wt *watch) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wt.servers == nil {
		return "its servers are not known yet"
	}
	var out []string
	for _, ha := range watched(wt.servers) {
		if _, ok := wt.seen[ha.Addr]; !ok {
			out = append(out, ha.String())
		}
	}
	return "missing at " + strings.Join(out, ", ")
}

func watched(srv *dnscheck.TXTServers) []dnscheck.HostAddr {
	if len(srv.Servers) > maxWatchedAddrs {
		return srv.Servers[:maxWatchedAddrs]
	}
	return srv.Servers
}

// follow makes the watches follow the plan's expected values: a name
// whose expect_txt is new or changed starts a new watch now, a name gone
// or without a value drops its own (a waiting canary order's stays). It
// returns the names to watch at once.
func (w *Watches) follow(p *Plan) []string {
	now := p.Env.Clock.Now()
	want := map[string]string{}
	for _, t := range p.Targets {
		if t.Challenge == reports.DNS01 && t.ExpectTXT != "" {
			want[normName(t.Name)] = t.ExpectTXT
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, wt := range w.watches {
		if v, ok := want[name]; !wt.canary && (!ok || v != wt.value) {
			delete(w.watches, name)
			close(wt.changed)
		}
	}
	var start []string
	for name, v := range want {
		if wt := w.watches[name]; wt == nil {
			w.expect(name, v, false, now)
			start = append(start, name)
		}
	}
	slices.Sort(start)
	return start
}

// propagationKind registers the watch.
func propagationKind() KindSpec {
	return KindSpec{Kind: KindPropagation, Once: true, Lane: LanePropagation,
		Doc: "the time a dns-01 value takes to reach every authoritative server address",
		Applies: func(p *Plan, t Target) bool {
			if t.Challenge != reports.DNS01 {
				return false
			}
			return t.ExpectTXT != "" || p.Canary != nil && p.Canary.DNSProvider != nil && p.Canary.Names[t.Name]
		},
		Interval: func(p *Plan) time.Duration {
			if d := p.Schedule.Intervals[string(KindDNS)]; d > 0 {
				return time.Duration(d)
			}
			return DefaultInterval
		},
		Next: func(p *Plan, o reports.Observation) (time.Duration, bool) {
			return p.Env.Shared.Watches.next(o, p.Propagation.Timeout)
		},
		Follow: func(p *Plan) []string { return p.Env.Shared.Watches.follow(p) },
		New: func(p *Plan) Probe {
			return ProbeFunc(func(ctx context.Context, t Target, v Vantage) reports.Observation {
				return p.Env.Shared.Watches.run(ctx, p, t, v)
			})
		},
		Record: func(m *Metrics, o reports.Observation) {
			for _, c := range o.Checks {
				if c.Name == PropagationCheck+".everywhere" {
					m.ObservePropagation(c.Duration)
				}
			}
		}}
}

// run is one run of the watch of t: it asks each address that has not
// served the value yet.
func (w *Watches) run(ctx context.Context, p *Plan, t Target, v Vantage) reports.Observation {
	env := p.Env
	obs, done := env.observe(t, v, KindPropagation)
	now := obs.Start
	w.mu.Lock()
	wt := w.watches[normName(t.Name)]
	if wt == nil || !wt.canary {
		if t.ExpectTXT == "" {
			delete(w.watches, normName(t.Name))
			wt = nil
		} else {
			wt = w.expect(t.Name, t.ExpectTXT, false, now)
		}
	}
	var servers *dnscheck.TXTServers
	seen := map[netip.Addr]time.Duration{}
	if wt != nil {
		servers, seen = wt.servers, copySeen(wt.seen)
		if wt.done && now.Sub(wt.found) > serversMaxAge {
			servers = nil
		}
	}
	w.mu.Unlock()
	if wt == nil {
		obs.Checks = []reports.Check{{Name: PropagationCheck, Target: t.Name, Status: reports.CheckSkipped,
			Note: "no value to watch: no expect_txt, and no canary order is waiting"}}
		return done(obs).Finish()
	}
	sess := env.sessions().For(v)
	challenge := dnscheck.ChallengeName(strings.TrimPrefix(t.Name, "*."))
	if servers == nil {
		srv, err := sess.TXTServers(ctx, challenge)
		if err != nil {
			obs.Checks = []reports.Check{{Name: PropagationCheck, Target: t.Name, Status: reports.CheckFail,
				Note: fmt.Sprintf("cannot find the authoritative servers of %s: %v", strings.TrimSuffix(challenge, "."), err)}}
			obs.Findings = []reports.Finding{reports.New(reports.CodeDNS01TXTNotPropagated, t.Name,
				fmt.Sprintf("cannot watch %q reach the authoritative servers: %v", wt.value, err))}
			w.finishRun(wt, nil, nil)
			return done(obs).Finish()
		}
		servers = srv
	}
	// Ask every address that has not served the value, at once.
	hosts := watched(servers)
	answers := make([]string, len(hosts))
	served := make([]bool, len(hosts))
	var wg sync.WaitGroup
	for i, ha := range hosts {
		if _, ok := seen[ha.Addr]; ok {
			continue
		}
		wg.Go(func() {
			values, resp := sess.AskTXT(ctx, netip.AddrPortFrom(ha.Addr, servers.Port), servers.Owner)
			served[i] = slices.Contains(values, wt.value)
			answers[i] = dnscheck.AnswerText(resp)
		})
	}
	wg.Wait()
	// First seen: this run's time on the plan's clock.
	elapsed := max(env.Clock.Now().Sub(wt.start), time.Nanosecond)
	for i, ha := range hosts {
		if served[i] {
			seen[ha.Addr] = elapsed
		}
	}
	everywhere, first := w.finishRun(wt, servers, seen)
	obs = done(obs)
	obs.Checks, obs.Findings = watchResult(p, t, wt, hosts, seen, answers, elapsed, everywhere, first)
	return obs.Finish()
}

// finishRun stores a run's results in the watch and wakes its waiters;
// first says the run saw the value everywhere for the first time.
func (w *Watches) finishRun(wt *watch, servers *dnscheck.TXTServers, seen map[netip.Addr]time.Duration) (everywhere, first bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt.polls++
	if servers != nil && servers != wt.servers {
		wt.servers, wt.found = servers, time.Now()
	}
	for a, d := range seen {
		if _, ok := wt.seen[a]; !ok {
			wt.seen[a] = d
		}
	}
	if servers != nil {
		everywhere = true
		for _, ha := range watched(servers) {
			if _, ok := wt.seen[ha.Addr]; !ok {
				everywhere = false
			}
		}
	}
	first = everywhere && !wt.done
	wt.done = wt.done || everywhere
	close(wt.changed)
	wt.changed = make(chan struct{})
	return everywhere, first
}

// watchResult is a run's checks (one per server address: served after how
// long, or what it answers) and findings (not everywhere by the timeout;
// slower than the issuer waits).
func watchResult(p *Plan, t Target, wt *watch, hosts []dnscheck.HostAddr, seen map[netip.Addr]time.Duration, answers []string,
	elapsed time.Duration, everywhere, first bool) ([]reports.Check, []reports.Finding) {
	timedOut := !everywhere && elapsed >= p.Propagation.Timeout
	var checks []reports.Check
	var lagging, lines []string
	slowest, slowestAt := time.Duration(0), ""
	for i, ha := range hosts {
		c := reports.Check{Name: PropagationCheck, Target: t.Name, Server: ha.String()}
		if d, ok := seen[ha.Addr]; ok {
			c.Status, c.Duration, c.Note = reports.CheckOK, d, fmt.Sprintf("served %q after %s", wt.value, d.Round(time.Millisecond))
			if d >= slowest {
				slowest, slowestAt = d, ha.String()
			}
		} else {
			c.Status, c.Note = reports.CheckWarn, "not yet: "+answers[i]
			if timedOut {
				c.Status = reports.CheckFail
			}
			lagging = append(lagging, ha.String())
			lines = append(lines, fmt.Sprintf("%s: %s", ha, answers[i]))
		}
		checks = append(checks, c)
	}
	if first {
		// The time to "everywhere", for acmediag_propagation_seconds.
		checks = append(checks, reports.Check{Name: PropagationCheck + ".everywhere", Target: t.Name, Status: reports.CheckOK,
			Duration: slowest, Note: fmt.Sprintf("%q reached every server address after %s", wt.value, slowest.Round(time.Millisecond))})
	}
	var fs []reports.Finding
	zone := strings.TrimSuffix(wt.servers.Zone, ".")
	if timedOut {
		fs = append(fs, reports.New(reports.CodeDNS01TXTNotPropagated, t.Name,
			fmt.Sprintf("%q is served by %d of %d server addresses of zone %s after %s; missing at:\n%s",
				wt.value, len(hosts)-len(lagging), len(hosts), zone, elapsed.Round(time.Millisecond), strings.Join(lines, "\n"))).
			With("missing", lagging).With("zone", zone).With("watched_seconds", elapsed.Seconds()))
	}
	if wait := p.Propagation.IssuerWait; everywhere && wait > 0 && slowest > wait {
		fs = append(fs, reports.New(reports.CodeDNS01PropagationSlow, t.Name,
			fmt.Sprintf("%q took %s to reach every server address of zone %s (the last: %s); the issuer waits %s",
				wt.value, slowest.Round(time.Millisecond), zone, slowestAt, wait)).
			With("propagation_seconds", slowest.Seconds()).With("wait_seconds", wait.Seconds()))
	}
	return checks, fs
}

// next is the watch's cadence after o: dense while its value is not
// everywhere and the watch has not timed out, the kind's interval after.
func (w *Watches) next(o reports.Observation, timeout time.Duration) (time.Duration, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt := w.watches[normName(o.Name)]
	if wt == nil || wt.done || (!wt.canary && o.Start.Sub(wt.start) >= timeout) {
		return 0, false
	}
	age := max(o.Start.Sub(wt.start), 0)
	return min(max(age/propagationAgeShare, time.Second/PropagationMaxRate), PropagationMaxInterval), true
}

func copySeen(m map[netip.Addr]time.Duration) map[netip.Addr]time.Duration {
	out := make(map[netip.Addr]time.Duration, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// canaryWait is a canary dns-01 order's wait on the watch of name.
func (e *Env) canaryWait(name string) canary.PropagationCheck {
	return func(ctx context.Context, _, value string) error {
		return e.Shared.Watches.Await(ctx, e.Clock, name, value)
	}
}
