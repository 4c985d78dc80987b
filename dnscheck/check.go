package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// Checker runs the DNS checks. Its fields are the configuration; one
// Checker can serve many runs.
type Checker struct {
	Roots        []netip.Addr     // root hints for the delegation walk
	Port         uint16           // port of every authoritative server (53)
	Resolvers    []netip.AddrPort // recursive resolvers; the first is the CA's view
	TrustAnchors []dns.RR         // DNSSEC root trust anchors (DS or DNSKEY)
	Allow        []netip.Prefix   // special-purpose ranges to treat as public
	CAIdentities []string         // CAA issuer domains of the CA
	AccountURI   string           // ACME account URI for CAA accounturi
	QueryTimeout time.Duration    // per exchange with one authoritative server
	// ResolverTimeout bounds one question to a recursive resolver, which
	// may itself wait out dead authoritative servers before answering.
	ResolverTimeout time.Duration
	LocalAddr       netip.Addr // source address for every query (a vantage)
	MaxInflight     int        // exchanges on the wire at once; 0 = unbounded
	// UDP shares UDP sockets across sessions (a daemon's probe runs); nil
	// gives every session a pool of its own.
	UDP    *UDPPool
	Now    func() time.Time // DNSSEC validity reference
	Logger *zap.Logger
}

// Request is one name to check.
type Request struct {
	Name      string // as the user wrote it
	Challenge reports.Challenge
	ExpectTXT string // dns-01: the value that must be visible everywhere
}

// Result is what the checks found for one name.
type Result struct {
	Name     string // canonical (A-label) form, or the input when invalid
	Findings []reports.Finding
	Checks   []reports.Check
	// Addresses the CA's resolver returned for the name (AAAA first, then A,
	// the order Boulder tries them), for http-01 and tls-alpn-01.
	IPv6, IPv4 []netip.Addr
}

// Stats counts a run's work.
type Stats struct {
	Queries  int64 // messages sent
	Timeouts int64 // exchanges that waited out the whole per-query timeout
}

// Default timeouts: one exchange with an authoritative server, and one
// question to a recursive resolver.
const (
	DefaultQueryTimeout    = 2 * time.Second
	DefaultResolverTimeout = 10 * time.Second
)

// Check runs every DNS check for every request concurrently in one Session.
func (c *Checker) Check(ctx context.Context, reqs []Request) ([]Result, Stats) {
	s := c.NewSession()
	results := make([]Result, len(reqs))
	var wg sync.WaitGroup
	for i, req := range reqs {
		wg.Go(func() { results[i] = s.Check(ctx, req) })
	}
	wg.Wait()
	return results, s.Stats()
}

// Session is one round of checks. Names checked in a session share it: a
// question is asked once, and an address that timed out once is not waited
// on again. A session is meant to live for one diagnosis or one probe round,
// not forever: what it remembers does not expire.
type Session struct{ r *run }

// NewSession starts a round with the Checker's configuration.
func (c *Checker) NewSession() *Session { return &Session{r: c.newRun()} }

// Check runs every DNS check for one name. Safe for concurrent use.
func (s *Session) Check(ctx context.Context, req Request) Result { return s.r.checkName(ctx, req) }

// Stats counts the session's work so far.
func (s *Session) Stats() Stats { return Stats{Queries: s.r.q.Sent(), Timeouts: s.r.q.Timeouts()} }

// run is the state of one Check call.
type run struct {
	c               *Checker
	q               *Querier
	resolverTimeout time.Duration
	w               *walker
	now             time.Time
	logger          *zap.Logger

	mu     sync.Mutex
	health map[string]*healthCall
	chains map[string]*chainCall
}

func (c *Checker) newRun() *run {
	logger := c.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	timeout := c.QueryTimeout
	if timeout <= 0 {
		timeout = DefaultQueryTimeout
	}
	now := time.Now
	if c.Now != nil {
		now = c.Now
	}
	port := c.Port
	if port == 0 {
		port = 53
	}
	q := NewQuerier(timeout, c.LocalAddr, logger)
	q.Limit(c.MaxInflight)
	pool := c.UDP
	if pool == nil {
		pool = NewUDPPool()
	}
	q.UseUDPPool(pool)
	resolverTimeout := c.ResolverTimeout
	if resolverTimeout <= 0 {
		resolverTimeout = DefaultResolverTimeout
	}
	return &run{c: c, q: q, resolverTimeout: resolverTimeout, w: newWalker(q, c.Roots, port), now: now(), logger: logger.Named("dnscheck"),
		health: map[string]*healthCall{}, chains: map[string]*chainCall{}}
}

// nameRun collects the findings and checks of one name; checks of one name
// run concurrently.
type nameRun struct {
	*run
	req  Request
	name Name

	mu       sync.Mutex
	findings []reports.Finding
	index    map[string]int // finding key → position, so checks sharing a zone report it once
	checks   []reports.Check
}

// add records findings once each: checks that share a zone report the same
// finding, perhaps one with the CA's problem attached and one without.
func (n *nameRun) add(fs ...reports.Finding) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.index == nil {
		n.index = map[string]int{}
	}
	for _, f := range fs {
		f.Name = n.name.ASCII
		k := string(f.Code) + "\x00" + f.Vantage + "\x00" + f.Detail
		if i, ok := n.index[k]; ok {
			if n.findings[i].Problem == nil {
				n.findings[i].Problem = f.Problem
			}
			continue
		}
		n.index[k] = len(n.findings)
		n.findings = append(n.findings, f)
	}
}

// timed runs one named check and records how it ended.
func (n *nameRun) timed(name, target string, fn func() (reports.CheckStatus, string)) {
	start := time.Now()
	status, note := fn()
	n.mu.Lock()
	n.checks = append(n.checks, reports.Check{Name: name, Target: strings.TrimSuffix(target, "."), Status: status,
		Duration: time.Since(start), Note: note})
	n.mu.Unlock()
}

func (r *run) checkName(ctx context.Context, req Request) Result {
	name, err := NormalizeName(req.Name)
	if err != nil {
		res := Result{Name: req.Name, Checks: []reports.Check{{Name: "name.policy", Target: req.Name, Status: reports.CheckFail}}}
		if ne, ok := err.(*NameError); ok {
			f := ne.Finding()
			f.Name = req.Name
			res.Findings = append(res.Findings, f)
		} else {
			res.Findings = append(res.Findings, reports.New(reports.CodeNameInvalid, req.Name, err.Error()))
		}
		return res
	}
	n := &nameRun{run: r, req: req, name: name}
	n.checks = append(n.checks, reports.Check{Name: "name.policy", Target: name.ASCII, Status: reports.CheckOK})
	if f := ChallengeFinding(name, req.Challenge); f != nil {
		n.add(*f)
	}
	if len(r.c.Roots) == 0 {
		n.add(reports.New(reports.CodeDNSTimeout, name.ASCII, "no root servers configured (`--roots`, or `dns.roots` in the daemon's configuration)"))
		return n.result(nil, nil)
	}

	var v6, v4 []netip.Addr
	var wg sync.WaitGroup
	// A wildcard is validated by dns-01 whatever was asked: that is what
	// the CA will check.
	if req.Challenge == reports.DNS01 || name.Wildcard {
		wg.Go(func() { n.checkDNS01(ctx) })
	} else {
		wg.Go(func() { v6, v4 = n.checkAddresses(ctx) })
	}
	wg.Go(func() { n.checkCAA(ctx) })
	wg.Wait()
	n.foldConsequences()
	return n.result(v6, v4)
}

func (n *nameRun) result(v6, v4 []netip.Addr) Result {
	n.mu.Lock()
	defer n.mu.Unlock()
	slices.SortFunc(n.checks, func(a, b reports.Check) int {
		return strings.Compare(a.Name+" "+a.Target, b.Name+" "+b.Target)
	})
	return Result{Name: n.name.ASCII, Findings: n.findings, Checks: n.checks, IPv6: v6, IPv4: v4}
}

// pathFor walks to name, then runs alongside (the lookups that need only
// the zone's servers) at the same time as the health check of every zone on
// the way that belongs to the user (below the public suffix) and the
// gathering of its DNSSEC chain: after the walk, one round of questions.
// A walk that stops becomes a finding; the returned path is nil then.
func (n *nameRun) pathFor(ctx context.Context, name string, alongside func(*Path)) (*Path, []reports.Finding) {
	path, err := n.w.Walk(ctx, name)
	var fs []reports.Finding
	if path != nil {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var healths []*ZoneHealth
		for _, z := range path.Zones {
			if userZone(z.Name) {
				wg.Go(func() {
					h := n.zoneHealth(ctx, z)
					mu.Lock()
					healths = append(healths, h)
					mu.Unlock()
				})
			}
		}
		var keys ChainKeys
		var chain Validation
		if err == nil {
			if len(n.c.TrustAnchors) > 0 {
				wg.Go(func() { keys, chain = n.chainFor(ctx, path) })
			}
			if alongside != nil {
				wg.Go(func() { alongside(path) })
			}
		}
		wg.Wait()
		for _, h := range healths {
			fs = append(fs, h.findings...)
			if f := h.ednsFinding(expectsSignatures(keys, chain, h.Zone.Name)); f != nil {
				fs = append(fs, *f)
			}
		}
	}
	if err != nil {
		// The health of the zone where the walk stopped usually says why,
		// server by server; the walk's own summary is for the rest.
		if we, ok := err.(*WalkError); !ok || !userZone(we.Zone) || statusOf(fs) != reports.CheckFail {
			fs = append(fs, walkFinding(name, err))
		}
		return nil, fs
	}
	return path, fs
}

// walkFinding classifies a walk that stopped.
func walkFinding(name string, err error) reports.Finding {
	we, ok := err.(*WalkError)
	if !ok {
		return reports.New(reports.CodeDNSServFail, "", fmt.Sprintf("resolving %s from the root failed: %v", strings.TrimSuffix(name, "."), err))
	}
	switch {
	case we.AllSilent():
		return reports.New(reports.CodeDNSTimeout, "", we.Error()).With("zone", trimDot(we.Zone))
	case allLame(we.Responses):
		return reports.New(reports.CodeDNSLameDelegation, "", we.Error()).With("zone", trimDot(we.Zone))
	default:
		return reports.New(reports.CodeDNSServFail, "", we.Error()).With("zone", trimDot(we.Zone))
	}
}

func allLame(rs []*Response) bool {
	for _, r := range rs {
		lame := r.Msg != nil && (r.Msg.Rcode == dns.RcodeRefused || r.Msg.Rcode == dns.RcodeSuccess && !r.Msg.Authoritative)
		if !lame {
			return false
		}
	}
	return len(rs) > 0
}

// rootCauses are DNS findings that make every lookup in a zone fail.
var rootCauses = []reports.Code{reports.CodeDNSTimeout, reports.CodeDNSServFail, reports.CodeDNSDNSSECBogus, reports.CodeDNSLameDelegation}

// rootCause: f makes every lookup in its zone fail (a dns.transport
// finding says so in its evidence: EDNS intolerance in a signed zone, 0x20
// with servers that disagree).
func rootCause(f reports.Finding) bool {
	every, _ := f.Evidence["every_lookup"].(bool)
	return f.Severity >= reports.Error && (slices.Contains(rootCauses, f.Code) || f.Code == reports.CodeDNSTransport && every)
}

// foldConsequences drops a failed CAA lookup when a DNS finding of the
// same name already explains why every lookup fails: the CA would stop at
// the address or TXT lookup first, and the user has one thing to fix. A
// broken chain of trust to a zone whose servers answer only without EDNS
// (so without signatures) is that transport problem, not a signing one;
// answers bogus for the same reason in the same zone are one problem.
func (n *nameRun) foldConsequences() {
	n.mu.Lock()
	defer n.mu.Unlock()
	fs := n.findings
	keep := make([]bool, len(fs))
	for i := range keep {
		keep[i] = true
	}
	zoneOf := func(f reports.Finding) string { z, _ := f.Evidence["zone"].(string); return z }
	find := func(match func(reports.Finding) bool) int {
		for i, g := range fs {
			if keep[i] && match(g) {
				return i
			}
		}
		return -1
	}
	into := func(i int, f reports.Finding, note string) {
		fs[i].Detail += "\n" + note
		if fs[i].Problem == nil {
			fs[i].Problem = f.Problem
		}
	}
	// In turn: a bogus chain or answer caused by answers without EDNS
	// goes to that transport finding; bogus answers of one zone and reason
	// go to the first of them; then failed CAA lookups go to their cause.
	// A finding only ever receives notes from findings folded after it.
	fold := func(apply func(k int, f reports.Finding) (int, string)) {
		for k := range fs {
			if !keep[k] {
				continue
			}
			keep[k] = false // not its own cause
			if i, note := apply(k, fs[k]); i >= 0 {
				into(i, fs[k], note)
				continue
			}
			keep[k] = true
		}
	}
	fold(func(_ int, f reports.Finding) (int, string) {
		if f.Code != reports.CodeDNSDNSSECBogus {
			return -1, ""
		}
		return find(func(g reports.Finding) bool {
			_, edns := g.Evidence["edns_intolerant"]
			return edns && rootCause(g) && zoneOf(g) == zoneOf(f)
		}), "DNSSEC validation fails for this reason: " + f.Detail
	})
	fold(func(k int, f reports.Finding) (int, string) {
		question, _ := f.Evidence["question"].(string)
		if f.Code != reports.CodeDNSDNSSECBogus || question == "" {
			return -1, ""
		}
		i := find(func(g reports.Finding) bool {
			_, q := g.Evidence["question"]
			return q && g.Code == f.Code && g.Severity == f.Severity && zoneOf(g) == zoneOf(f) && g.Evidence["reason"] == f.Evidence["reason"]
		})
		if i > k {
			return -1, "" // the later one folds into this one
		}
		return i, "The answer for " + question + " is bogus for the same reason."
	})
	fold(func(_ int, f reports.Finding) (int, string) {
		label, _ := f.Evidence["label"].(string)
		if f.Code != reports.CodeCAALookupFailed || label == "" {
			return -1, ""
		}
		return find(func(g reports.Finding) bool {
			zone := zoneOf(g)
			return rootCause(g) && zone != "" && dns.IsSubDomain(dns.Fqdn(zone), dns.Fqdn(label))
		}), "CAA lookups at " + trimDot(label) + " fail for the same reason."
	})
	out := fs[:0]
	for i, f := range fs {
		if keep[i] {
			out = append(out, f)
		}
	}
	n.findings = out
}

func statusOf(fs []reports.Finding) reports.CheckStatus {
	s := reports.CheckOK
	for _, f := range fs {
		switch {
		case f.Severity >= reports.Error:
			return reports.CheckFail
		case f.Severity == reports.Warning:
			s = reports.CheckWarn
		}
	}
	return s
}

// trimDot is a name as messages show it: without the root dot, except the
// root itself (".").
func trimDot(s string) string {
	if s == "." {
		return s
	}
	return strings.TrimSuffix(s, ".")
}

// caResolver is the resolver whose view stands for the CA's.
func (n *nameRun) caResolver() (netip.AddrPort, bool) {
	if len(n.c.Resolvers) == 0 {
		return netip.AddrPort{}, false
	}
	return n.c.Resolvers[0], true
}
