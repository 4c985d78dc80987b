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

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// Default pacing of a propagation watch. Replication usually completes
// within the first seconds, so addresses are polled as densely as the rate
// limit allows at first; the interval then grows by PropagationBackoff per
// poll up to PropagationMaxInterval, so a slow provider costs one query
// every two seconds per address, not a flood.
const (
	PropagationFirstInterval = 50 * time.Millisecond
	PropagationBackoff       = 1.5
	PropagationMaxInterval   = 2 * time.Second
	// PropagationMaxRate is the most queries per second sent to one server
	// address, whatever the other settings say.
	PropagationMaxRate = 5
	// maxWatchedAddrs bounds the goroutines and state of one watch; a zone
	// with more server addresses than this is hostile.
	maxWatchedAddrs = 64
)

// PropagationVerdict is how a watch ended.
type PropagationVerdict string

// Verdicts of a propagation watch.
const (
	// PropagationEverywhere: every authoritative address served the value.
	PropagationEverywhere PropagationVerdict = "everywhere"
	// PropagationPartial: some addresses served it when the watch ended.
	PropagationPartial PropagationVerdict = "partial"
	// PropagationNowhere: no address served it when the watch ended.
	PropagationNowhere PropagationVerdict = "nowhere"
	// PropagationUnknown: the servers could not be found.
	PropagationUnknown PropagationVerdict = "unknown"
)

// PropagationWatcher watches a dns-01 TXT value reach every authoritative
// server address of its zone, asking each address directly (RD=0), and
// measures when each one first served it. Its fields are configuration;
// one watcher can run many watches concurrently.
type PropagationWatcher struct {
	// Checker is the DNS configuration: roots, port, timeouts, source address.
	Checker dnscheck.Checker
	// FirstInterval, Backoff and MaxInterval pace the polls of one address:
	// the k-th wait is FirstInterval·Backoff^k, at most MaxInterval, and
	// never shorter than the rate limit allows. Zero values take the
	// Propagation* defaults.
	FirstInterval time.Duration
	Backoff       float64
	MaxInterval   time.Duration
	// MaxRate caps the queries per second to one address (0 or above
	// PropagationMaxRate: PropagationMaxRate).
	MaxRate int
	// Wait is how long the issuer waits before answering the challenge
	// (cert-manager's or lego's propagation delay): a measured time above
	// it gives dns01.propagation_slow. 0: no such finding.
	Wait time.Duration
	// Metrics, when set, observes acmediag_propagation_seconds for every
	// watch that ends "everywhere".
	Metrics *Metrics
	// OnQuery, when set, is called just before each poll is sent (tests
	// count queries per address with it). It must not block.
	OnQuery func(addr netip.Addr, at time.Time)
	Logger  *zap.Logger
}

// AddrPropagation is what one authoritative server address did during a watch.
type AddrPropagation struct {
	dnscheck.HostAddr
	Served    bool          // the address served the value
	FirstSeen time.Duration // since the watch started, when Served
	Queries   int           // polls sent to this address
	// Last is the address's last answer in a few words (an error, an
	// rcode, the TXT set), for the lagging ones.
	Last string
}

// PropagationResult is one watch's outcome.
type PropagationResult struct {
	Name    string // the challenge name (_acme-challenge.NAME)
	Owner   string // the name holding the TXT record after CNAMEs
	Zone    string // Owner's zone
	Value   string
	Start   time.Time
	Verdict PropagationVerdict
	// Elapsed is the time from Start to the last address serving the value
	// (Verdict everywhere), else to the end of the watch.
	Elapsed   time.Duration
	Addresses []AddrPropagation // sorted by host, then address
	Queries   int64             // every query sent, discovery included
	Polls     int               // TXT polls of the authoritative addresses
	Findings  []reports.Finding
	Err       error // why the servers could not be found (Verdict unknown)
}

// Lagging lists the addresses that had not served the value.
func (r *PropagationResult) Lagging() []AddrPropagation {
	var out []AddrPropagation
	for _, a := range r.Addresses {
		if !a.Served {
			out = append(out, a)
		}
	}
	return out
}

func (w *PropagationWatcher) logger() *zap.Logger {
	if w.Logger == nil {
		return zap.NewNop()
	}
	return w.Logger.Named("propagation")
}

// pacing returns the effective schedule parameters.
func (w *PropagationWatcher) pacing() (first time.Duration, backoff float64, maxInterval time.Duration, rate int) {
	first, backoff, maxInterval, rate = w.FirstInterval, w.Backoff, w.MaxInterval, w.MaxRate
	if first <= 0 {
		first = PropagationFirstInterval
	}
	if backoff < 1 {
		backoff = PropagationBackoff
	}
	if maxInterval <= 0 {
		maxInterval = PropagationMaxInterval
	}
	maxInterval = max(maxInterval, first)
	if rate <= 0 || rate > PropagationMaxRate {
		rate = PropagationMaxRate
	}
	return first, backoff, maxInterval, rate
}

// Watch waits until value is served at _acme-challenge.NAME (CNAMEs
// followed) by every authoritative server address of its zone, or until
// ctx ends. name is the domain (a wildcard's "*." is dropped). Addresses
// are polled independently: each stops as soon as it serves the value.
func (w *PropagationWatcher) Watch(ctx context.Context, name, value string) (res PropagationResult) {
	log := w.logger()
	start := time.Now()
	challenge := dnscheck.ChallengeName(strings.TrimSuffix(name, "."))
	res = PropagationResult{Name: strings.TrimSuffix(challenge, "."), Value: value, Start: start, Verdict: PropagationUnknown}
	sess := w.Checker.NewSession()
	defer func() { res.Queries = sess.Stats().Queries }()

	srv, err := sess.TXTServers(ctx, challenge)
	if err != nil {
		res.Err = err
		res.Elapsed = time.Since(start)
		res.Findings = append(res.Findings, reports.New(reports.CodeDNS01TXTNotPropagated, res.Name,
			fmt.Sprintf("cannot watch %q reach the authoritative servers: %v", value, err)))
		return res
	}
	res.Owner, res.Zone = strings.TrimSuffix(srv.Owner, "."), strings.TrimSuffix(srv.Zone, ".")
	hosts := srv.Servers
	if len(hosts) > maxWatchedAddrs {
		hosts = hosts[:maxWatchedAddrs]
	}
	res.Addresses = make([]AddrPropagation, len(hosts))
	var wg sync.WaitGroup
	for i, ha := range hosts {
		wg.Go(func() {
			res.Addresses[i] = w.pollAddr(ctx, sess, start, netip.AddrPortFrom(ha.Addr, srv.Port), ha, srv.Owner, value)
		})
	}
	wg.Wait()

	served, last := 0, time.Duration(0)
	for _, a := range res.Addresses {
		res.Polls += a.Queries
		if a.Served {
			served++
			last = max(last, a.FirstSeen)
		}
	}
	slices.SortFunc(res.Addresses, func(a, b AddrPropagation) int {
		if c := strings.Compare(a.Host, b.Host); c != 0 {
			return c
		}
		return a.Addr.Compare(b.Addr)
	})
	switch {
	case served == len(res.Addresses):
		res.Verdict, res.Elapsed = PropagationEverywhere, last
		if w.Metrics != nil {
			w.Metrics.ObservePropagation(last)
		}
	case served > 0:
		res.Verdict, res.Elapsed = PropagationPartial, time.Since(start)
	default:
		res.Verdict, res.Elapsed = PropagationNowhere, time.Since(start)
	}
	res.Findings = append(res.Findings, w.judge(&res, served)...)
	log.Debug("propagation watch ended", zap.String("name", res.Name), zap.String("verdict", string(res.Verdict)),
		zap.Duration("elapsed", res.Elapsed), zap.Int("polls", res.Polls))
	return res
}

// judge turns a finished watch into findings.
func (w *PropagationWatcher) judge(res *PropagationResult, served int) []reports.Finding {
	var fs []reports.Finding
	if res.Verdict != PropagationEverywhere {
		var lines, lagging []string
		for _, a := range res.Lagging() {
			lagging = append(lagging, a.HostAddr.String())
			lines = append(lines, fmt.Sprintf("%s: %s (%d queries)", a.HostAddr, a.Last, a.Queries))
		}
		fs = append(fs, reports.New(reports.CodeDNS01TXTNotPropagated, res.Name,
			fmt.Sprintf("%q is served by %d of %d server addresses of zone %s after %s; missing at:\n%s",
				res.Value, served, len(res.Addresses), res.Zone, res.Elapsed.Round(time.Millisecond), strings.Join(lines, "\n"))).
			With("missing", lagging).With("zone", res.Zone).With("watched_seconds", res.Elapsed.Seconds()))
	}
	if w.Wait > 0 && res.Verdict == PropagationEverywhere && res.Elapsed > w.Wait {
		slowest := ""
		for _, a := range res.Addresses {
			if a.FirstSeen == res.Elapsed {
				slowest = a.HostAddr.String()
			}
		}
		fs = append(fs, reports.New(reports.CodeDNS01PropagationSlow, res.Name,
			fmt.Sprintf("%q took %s to reach every server address of zone %s (the last: %s); the issuer waits %s",
				res.Value, res.Elapsed.Round(time.Millisecond), res.Zone, slowest, w.Wait)).
			With("propagation_seconds", res.Elapsed.Seconds()).With("wait_seconds", w.Wait.Seconds()))
	}
	return fs
}

// pollAddr polls one address until it serves value or ctx ends. One
// question is on the wire at a time; the waits grow from the first
// interval, and a sliding window keeps the last rate sends at least one
// second apart, so no one-second window ever holds more than rate queries.
func (w *PropagationWatcher) pollAddr(ctx context.Context, sess *dnscheck.Session, start time.Time, server netip.AddrPort,
	ha dnscheck.HostAddr, owner, value string) AddrPropagation {
	first, backoff, maxInterval, rate := w.pacing()
	minGap := time.Second / time.Duration(rate)
	out := AddrPropagation{HostAddr: ha, Last: "not asked"}
	sent := make([]time.Time, 0, rate) // the last rate send times, oldest first
	interval := first
	next := start
	for {
		// The window: the (rate+1)-th query must come a second (and a hair,
		// for timer slop) after the oldest of the last rate.
		if len(sent) == rate {
			next = latest(next, sent[0].Add(time.Second+time.Millisecond))
		}
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return out
			case <-t.C:
			}
		}
		if ctx.Err() != nil {
			return out
		}
		now := time.Now()
		if len(sent) == rate {
			sent = append(sent[:0], sent[1:]...)
		}
		sent = append(sent, now)
		if w.OnQuery != nil {
			w.OnQuery(ha.Addr, now)
		}
		out.Queries++
		values, resp := sess.AskTXT(ctx, server, owner)
		if slices.Contains(values, value) {
			out.Served, out.FirstSeen = true, time.Since(start)
			out.Last = "serves the value"
			return out
		}
		if resp.Err != nil && errors.Is(resp.Err, context.Canceled) && ctx.Err() != nil {
			return out
		}
		out.Last = dnscheck.AnswerText(resp)
		next = now.Add(max(interval, minGap))
		interval = min(time.Duration(float64(interval)*backoff), maxInterval)
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// AuthoritativePropagation is the canary's wait between publishing a
// dns-01 TXT record and answering the challenge: a PropagationWatcher with
// c's configuration, returning once every authoritative server address of
// the record's zone serves value, or an error naming the lagging addresses
// when ctx ends first.
func AuthoritativePropagation(c dnscheck.Checker) canary.PropagationCheck {
	w := &PropagationWatcher{Checker: c, Logger: c.Logger}
	return AwaitPropagation(w.Watch)
}

// AwaitPropagation makes a canary.PropagationCheck of watch, which watches
// name's TXT value at every authoritative server address (a
// PropagationWatcher's Watch, or the daemon's, which also keeps the
// result): nil once the value is served everywhere, else an error naming
// the lagging addresses.
func AwaitPropagation(watch func(ctx context.Context, name, value string) PropagationResult) canary.PropagationCheck {
	return func(ctx context.Context, fqdn, value string) error {
		base := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(fqdn), "_acme-challenge."), ".")
		res := watch(ctx, base, value)
		if res.Verdict == PropagationEverywhere {
			return nil
		}
		detail := ""
		for _, f := range res.Findings {
			if f.Code == reports.CodeDNS01TXTNotPropagated {
				detail = f.Detail
			}
		}
		err := ctx.Err()
		if err == nil {
			err = res.Err
		}
		if err == nil {
			err = errors.New("the watch ended")
		}
		return fmt.Errorf("%s not served everywhere yet: %s: %w", strings.TrimSuffix(fqdn, "."), detail, err)
	}
}
