package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

const (
	maxWalkDepth     = 32 // zone cuts on one path; real names have < 10
	maxNSHostDepth   = 4  // nested resolutions of out-of-zone name server names
	maxServersPerSet = 20 // NS names considered per zone; more is hostile
	maxAddrsPerHost  = 8
)

// Server is one authoritative name server of a zone and its addresses.
type Server struct {
	Host     string // NS target, lower-case FQDN
	Addrs    []netip.Addr
	InParent bool  // listed in the parent's delegation
	InChild  bool  // listed in the zone's own NS RRset
	Glue     bool  // addresses came as glue in the referral
	Err      error // the host name could not be resolved
}

// Zone is one zone cut on the path from the root to a name.
type Zone struct {
	Name     string // apex, lower-case FQDN
	Parent   string // "" for the root
	ParentNS []string
	ChildNS  []string // filled by the zone health check
	Servers  []*Server
	mu       sync.Mutex
}

// Addrs lists every server address of the zone once, with the host that
// owns it (the first one, when hosts share an address).
func (z *Zone) Addrs() []HostAddr {
	z.mu.Lock()
	defer z.mu.Unlock()
	var out []HostAddr
	seen := map[netip.Addr]bool{}
	for _, s := range z.Servers {
		for _, a := range s.Addrs {
			if !seen[a] {
				seen[a] = true
				out = append(out, HostAddr{Host: s.Host, Addr: a})
			}
		}
	}
	return out
}

func (z *Zone) server(host string) *Server {
	for _, s := range z.Servers {
		if s.Host == host {
			return s
		}
	}
	return nil
}

// HostAddr names one address of one server.
type HostAddr struct {
	Host string
	Addr netip.Addr
}

func (h HostAddr) String() string {
	return fmt.Sprintf("%s (%s)", strings.TrimSuffix(h.Host, "."), h.Addr)
}

// Path is the chain of zones from the root to the zone authoritative for a name.
type Path struct {
	Name  string
	Zones []*Zone // root first; the last is authoritative for Name
	// Final is the authoritative answer to "Name NS" that ended the walk
	// (an answer, NODATA, NXDOMAIN, or a CNAME).
	Final *Response
}

// Zone returns the zone authoritative for the name.
func (p *Path) Zone() *Zone { return p.Zones[len(p.Zones)-1] }

// WalkError says where the walk from the root stopped and why.
type WalkError struct {
	Name      string
	Zone      string      // the last zone reached
	Responses []*Response // what its servers answered
	Reason    string
}

func (e *WalkError) Error() string {
	return fmt.Sprintf("resolving %s from the root stopped at zone %s: %s", e.Name, e.Zone, e.Reason)
}

// AllSilent reports whether every server of the zone failed with a timeout
// or network error.
func (e *WalkError) AllSilent() bool {
	for _, r := range e.Responses {
		var qe *QueryError
		if !errors.As(r.Err, &qe) || (qe.Kind != KindTimeout && qe.Kind != KindNetwork) {
			return false
		}
	}
	return len(e.Responses) > 0
}

// walker resolves iteratively from the root hints, remembering paths and
// server host addresses for one run.
type walker struct {
	q     *Querier
	roots []netip.Addr
	port  uint16

	mu    sync.Mutex
	zones map[string]*Zone // by apex: the same zone object on every path
	paths map[string]*pathResult
	hosts map[string]hostResult
}

type pathResult struct {
	done chan struct{}
	path *Path
	err  error
}

type hostResult struct {
	addrs []netip.Addr
	err   error
}

func newWalker(q *Querier, roots []netip.Addr, port uint16) *walker {
	return &walker{q: q, roots: roots, port: port, zones: map[string]*Zone{},
		paths: map[string]*pathResult{}, hosts: map[string]hostResult{}}
}

func (w *walker) rootZone() *Zone {
	w.mu.Lock()
	defer w.mu.Unlock()
	if z, ok := w.zones["."]; ok {
		return z
	}
	z := &Zone{Name: "."}
	for i, a := range w.roots {
		z.Servers = append(z.Servers, &Server{Host: fmt.Sprintf("root-hint-%d.", i+1), Addrs: []netip.Addr{a}, InParent: true, Glue: true})
	}
	w.zones["."] = z
	return z
}

// Walk follows referrals from the root to the zone authoritative for name.
func (w *walker) Walk(ctx context.Context, name string) (*Path, error) {
	return w.walk(ctx, strings.ToLower(dns.Fqdn(name)), 0)
}

func (w *walker) walk(ctx context.Context, name string, depth int) (*Path, error) {
	w.mu.Lock()
	if r, ok := w.paths[name]; ok {
		select {
		case <-r.done:
			w.mu.Unlock()
			return r.path, r.err
		default:
		}
		if depth > 0 {
			// A nested resolution (a name server's address) must not wait on a
			// walk in progress: two zones whose servers live in each other
			// would wait on each other forever. Walk again; the questions are
			// remembered and the depth bound ends a cycle.
			w.mu.Unlock()
			return w.doWalk(ctx, name, depth)
		}
		w.mu.Unlock()
		select {
		case <-r.done:
			return r.path, r.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	r := &pathResult{done: make(chan struct{})}
	w.paths[name] = r
	w.mu.Unlock()
	r.path, r.err = w.doWalk(ctx, name, depth)
	close(r.done)
	return r.path, r.err
}

func (w *walker) doWalk(ctx context.Context, name string, depth int) (*Path, error) {
	path := &Path{Name: name, Zones: []*Zone{w.rootZone()}}
	for range maxWalkDepth {
		zone := path.Zone()
		resp, all := w.ask(ctx, zone, name, dns.TypeNS)
		if resp == nil {
			reason := "no server answered"
			if len(all) == 0 {
				reason = "the zone has no server address"
			} else {
				reason = describeFailures(all)
			}
			return path, &WalkError{Name: name, Zone: zone.Name, Responses: all, Reason: reason}
		}
		child, ns := referral(resp.Msg, zone.Name, name)
		if child == "" {
			path.Final = resp
			return path, nil
		}
		next, err := w.delegate(ctx, zone, child, ns, resp.Msg, depth)
		if err != nil {
			return path, &WalkError{Name: name, Zone: zone.Name, Responses: []*Response{resp}, Reason: err.Error()}
		}
		path.Zones = append(path.Zones, next)
	}
	return path, &WalkError{Name: name, Zone: path.Zone().Name, Reason: fmt.Sprintf("more than %d zone cuts (referral loop?)", maxWalkDepth)}
}

// delegate builds (or finds) the child zone from a referral.
func (w *walker) delegate(ctx context.Context, parent *Zone, child string, ns []string, msg *dns.Msg, depth int) (*Zone, error) {
	w.mu.Lock()
	z, ok := w.zones[child]
	w.mu.Unlock()
	if ok {
		return z, nil
	}
	z = &Zone{Name: child, Parent: parent.Name, ParentNS: ns}
	glue := map[string][]netip.Addr{}
	for _, rr := range msg.Extra {
		owner := strings.ToLower(rr.Header().Name)
		if !slices.Contains(ns, owner) || len(glue[owner]) >= maxAddrsPerHost {
			continue
		}
		// Glue is only believed inside the parent's bailiwick, as resolvers do.
		if !dns.IsSubDomain(parent.Name, owner) {
			continue
		}
		if a, ok := rrAddr(rr); ok {
			glue[owner] = append(glue[owner], a)
		}
	}
	var wg sync.WaitGroup
	for _, host := range ns {
		s := &Server{Host: host, InParent: true, Addrs: glue[host], Glue: len(glue[host]) > 0}
		z.Servers = append(z.Servers, s)
		if !s.Glue {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.Addrs, s.Err = w.resolveHost(ctx, host, depth+1)
			}()
		}
	}
	wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	if existing, ok := w.zones[child]; ok {
		return existing, nil
	}
	w.zones[child] = z
	return z, nil
}

// resolveHost finds the addresses of a name server host by walking from the
// root, the way an iterative resolver does for an out-of-zone NS name.
func (w *walker) resolveHost(ctx context.Context, host string, depth int) ([]netip.Addr, error) {
	if depth > maxNSHostDepth {
		return nil, fmt.Errorf("resolving name server %s needs more than %d nested lookups (a cycle between zones?)", host, maxNSHostDepth)
	}
	w.mu.Lock()
	if r, ok := w.hosts[host]; ok {
		w.mu.Unlock()
		return r.addrs, r.err
	}
	w.mu.Unlock()
	addrs, err := w.lookupAddrs(ctx, host, depth)
	w.mu.Lock()
	w.hosts[host] = hostResult{addrs, err}
	w.mu.Unlock()
	return addrs, err
}

func (w *walker) lookupAddrs(ctx context.Context, host string, depth int) ([]netip.Addr, error) {
	path, err := w.walk(ctx, host, depth)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		resp, all := w.ask(ctx, path.Zone(), host, t)
		if resp == nil {
			errs = append(errs, fmt.Errorf("%s %s: %s", host, dns.TypeToString[t], describeFailures(all)))
			continue
		}
		for _, rr := range resp.Msg.Answer {
			if a, ok := rrAddr(rr); ok && strings.EqualFold(rr.Header().Name, host) && len(addrs) < maxAddrsPerHost {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		if len(errs) > 0 {
			return nil, errors.Join(errs...)
		}
		return nil, fmt.Errorf("name server %s has no A or AAAA record", host)
	}
	return addrs, nil
}

// ask sends the question to every address of the zone at once and returns
// the first usable answer (an authoritative answer or a referral) as soon as
// it arrives; the rest complete in the background into the run's memory, so
// the per-server checks later find them without asking again. all is every
// response when none was usable.
func (w *walker) ask(ctx context.Context, zone *Zone, name string, qtype uint16) (first *Response, all []*Response) {
	addrs := zone.Addrs()
	if len(addrs) == 0 {
		return nil, nil
	}
	ch := make(chan *Response, len(addrs))
	for _, ha := range addrs {
		go func() { ch <- w.q.Query(ctx, netip.AddrPortFrom(ha.Addr, w.port), name, qtype, QueryOptions{}) }()
	}
	// An answer given only without EDNS carries no DNSSEC records: like a
	// validating resolver, take it only when no server answers with EDNS.
	var plain *Response
	for range addrs {
		r := <-ch
		switch {
		case usable(r, zone.Name, name) && !r.NoEDNS:
			return r, nil
		case usable(r, zone.Name, name):
			plain = cmp.Or(plain, r)
		default:
			all = append(all, r)
		}
	}
	if plain != nil {
		return plain, nil
	}
	return nil, all
}

// usable: an answer to rely on for following the delegation.
func usable(r *Response, zone, name string) bool {
	if r.Msg == nil || (r.Msg.Rcode != dns.RcodeSuccess && r.Msg.Rcode != dns.RcodeNameError) {
		return false
	}
	if r.Msg.Authoritative {
		return true
	}
	child, _ := referral(r.Msg, zone, name)
	return child != ""
}

// referral extracts a delegation to a zone strictly below zone and at or
// above name from a non-authoritative answer; "" when msg is not one.
func referral(msg *dns.Msg, zone, name string) (child string, ns []string) {
	if msg.Authoritative || len(msg.Answer) > 0 {
		return "", nil
	}
	for _, rr := range msg.Ns {
		n, ok := rr.(*dns.NS)
		if !ok {
			continue
		}
		owner := strings.ToLower(n.Hdr.Name)
		if owner == zone || !dns.IsSubDomain(zone, owner) || !dns.IsSubDomain(owner, name) {
			continue
		}
		if child == "" {
			child = owner
		}
		target := strings.ToLower(dns.Fqdn(n.Ns))
		if owner == child && !slices.Contains(ns, target) && len(ns) < maxServersPerSet {
			ns = append(ns, target)
		}
	}
	slices.Sort(ns)
	return child, ns
}

func rrAddr(rr dns.RR) (netip.Addr, bool) {
	switch v := rr.(type) {
	case *dns.A:
		a, ok := netip.AddrFromSlice(v.A.To4())
		return a, ok
	case *dns.AAAA:
		a, ok := netip.AddrFromSlice(v.AAAA.To16())
		return a, ok
	}
	return netip.Addr{}, false
}

// describeFailures says what each server answered, for details.
func describeFailures(rs []*Response) string {
	var parts []string
	for _, r := range rs {
		switch {
		case r.Err != nil:
			var qe *QueryError
			if errors.As(r.Err, &qe) && qe.Kind == KindRcode {
				parts = append(parts, fmt.Sprintf("%s answered %s", r.Server.Addr(), dns.RcodeToString[qe.Rcode]))
			} else {
				parts = append(parts, fmt.Sprintf("%s: %s", r.Server.Addr(), r.Outcome()))
			}
		case r.Msg != nil && !r.Msg.Authoritative:
			parts = append(parts, fmt.Sprintf("%s answered without the AA bit and no referral", r.Server.Addr()))
		default:
			parts = append(parts, fmt.Sprintf("%s answered %s", r.Server.Addr(), dns.RcodeToString[r.Rcode()]))
		}
	}
	return strings.Join(parts, "; ")
}

// errText is the innermost useful text of a query error.
func errText(err error) string {
	var qe *QueryError
	if errors.As(err, &qe) {
		switch qe.Kind {
		case KindTimeout:
			return "no answer (timeout)"
		case KindRcode:
			return dns.RcodeToString[qe.Rcode]
		}
		if qe.Err != nil {
			return qe.Kind.String() + ": " + qe.Err.Error()
		}
		return qe.Kind.String()
	}
	return err.Error()
}
