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
	"golang.org/x/net/publicsuffix"

	"github.com/acmediag/acmediag/reports"
)

// NegativeTTLLimit is the longest negative-caching TTL that does not earn a
// warning: beyond an hour, a resolver that saw NXDOMAIN before the record
// existed keeps the client waiting past its propagation timeout.
const NegativeTTLLimit = 3600

// AddrHealth is what one server address answered to the zone's SOA question.
type AddrHealth struct {
	HostAddr
	SOA    *Response // SOA asked with a mixed-case name (0x20 check)
	NoEDNS *Response // the same without EDNS, only when the EDNS one failed
	Serial uint32
	// State is "ok", "silent", "lame" (REFUSED or not authoritative),
	// "failing" (SERVFAIL and other rcodes) or "malformed".
	State  string
	Reason string
}

// ZoneHealth is the verdict on one zone's servers.
type ZoneHealth struct {
	Zone     *Zone
	Addrs    []AddrHealth
	SOA      *dns.SOA // from the first healthy server
	findings []reports.Finding
}

type healthCall struct {
	done chan struct{}
	h    *ZoneHealth
}

// userZone: a zone the user runs (below the public suffix); root and TLD
// servers are not the user's to fix and are not health-checked.
func userZone(apex string) bool {
	if apex == "." {
		return false
	}
	name := trimDot(apex)
	ps, _ := publicsuffix.PublicSuffix(name)
	return ps != name
}

// zoneHealth asks every address of the zone, once per run.
func (n *nameRun) zoneHealth(ctx context.Context, z *Zone) *ZoneHealth {
	r := n.run
	r.mu.Lock()
	if c, ok := r.health[z.Name]; ok {
		r.mu.Unlock()
		<-c.done
		return c.h
	}
	c := &healthCall{done: make(chan struct{})}
	r.health[z.Name] = c
	r.mu.Unlock()
	n.timed("dns.zone", z.Name, func() (reports.CheckStatus, string) {
		c.h = r.checkZone(ctx, z)
		return statusOf(c.h.findings), fmt.Sprintf("%d server addresses", len(c.h.Addrs))
	})
	close(c.done)
	return c.h
}

func (r *run) checkZone(ctx context.Context, z *Zone) *ZoneHealth {
	h := &ZoneHealth{Zone: z}
	mixed := mixCase(z.Name)
	var mu sync.Mutex
	var wg sync.WaitGroup
	asked := map[netip.Addr]bool{}
	askAll := func(addrs []HostAddr) {
		for _, ha := range addrs {
			if asked[ha.Addr] {
				continue
			}
			asked[ha.Addr] = true
			wg.Go(func() {
				ah := r.soaHealth(ctx, ha, z.Name, mixed)
				mu.Lock()
				h.Addrs = append(h.Addrs, ah)
				mu.Unlock()
			})
		}
	}
	// The delegation's servers are asked while the zone's own NS set is
	// fetched; only servers the child adds wait for it.
	askAll(z.Addrs())
	r.childNS(ctx, z)
	askAll(z.Addrs())
	wg.Wait()
	slices.SortFunc(h.Addrs, func(a, b AddrHealth) int {
		return cmp.Or(strings.Compare(a.Host, b.Host), a.Addr.Compare(b.Addr))
	})
	h.findings = h.judge()
	return h
}

// soaHealth asks one address for the zone's SOA with a mixed-case name,
// and again without EDNS when that failed.
func (r *run) soaHealth(ctx context.Context, ha HostAddr, apex, mixed string) AddrHealth {
	ah := AddrHealth{HostAddr: ha}
	server := netip.AddrPortFrom(ha.Addr, r.w.port)
	ah.SOA = r.q.Query(ctx, server, mixed, dns.TypeSOA, QueryOptions{KeepCase: true})
	if m := ah.SOA.Msg; m != nil && m.Rcode == dns.RcodeFormatError || ah.SOA.Msg == nil && !r.q.Dead(ha.Addr) {
		ah.NoEDNS = r.q.Query(ctx, server, apex, dns.TypeSOA, QueryOptions{NoEDNS: true})
	}
	judgeAddr(&ah, apex, mixed)
	return ah
}

// childNS asks the zone's servers for its own NS set and adds the servers
// only the child lists (their addresses resolved from the root).
func (r *run) childNS(ctx context.Context, z *Zone) {
	resp, _ := r.w.ask(ctx, z, z.Name, dns.TypeNS)
	if resp == nil {
		return
	}
	var child []string
	for _, rr := range resp.Msg.Answer {
		if ns, ok := rr.(*dns.NS); ok && strings.EqualFold(ns.Hdr.Name, z.Name) && len(child) < maxServersPerSet {
			t := strings.ToLower(dns.Fqdn(ns.Ns))
			if !slices.Contains(child, t) {
				child = append(child, t)
			}
		}
	}
	slices.Sort(child)
	var added []*Server
	z.mu.Lock()
	z.ChildNS = child
	for _, host := range child {
		if s := z.server(host); s != nil {
			s.InChild = true
		} else {
			s := &Server{Host: host, InChild: true}
			z.Servers = append(z.Servers, s)
			added = append(added, s)
		}
	}
	z.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range added {
		wg.Go(func() {
			addrs, err := r.w.resolveHost(ctx, s.Host, 1)
			z.mu.Lock()
			s.Addrs, s.Err = addrs, err
			z.mu.Unlock()
		})
	}
	wg.Wait()
}

func judgeAddr(ah *AddrHealth, apex, mixed string) {
	resp := ah.SOA
	var qe *QueryError
	switch {
	case errors.As(resp.Err, &qe) && qe.Kind == KindTimeout:
		ah.State, ah.Reason = "silent", "no answer within the timeout"
		if errors.Is(qe.Err, ErrServerDead) {
			ah.Reason = "no answer (timed out earlier in this run)"
		}
	case errors.As(resp.Err, &qe) && qe.Kind == KindNetwork:
		ah.State, ah.Reason = "silent", qe.Err.Error()
	case resp.Msg == nil:
		ah.State, ah.Reason = "malformed", resp.Outcome()
	case resp.Msg.Rcode == dns.RcodeRefused:
		ah.State, ah.Reason = "lame", "answered REFUSED for its own zone"
	case resp.Msg.Rcode != dns.RcodeSuccess:
		ah.State, ah.Reason = "failing", "answered "+dns.RcodeToString[resp.Msg.Rcode]
	case !resp.Msg.Authoritative:
		ah.State, ah.Reason = "lame", "answered without the AA bit (not authoritative for the zone)"
	default:
		ah.State = "ok"
		for _, rr := range resp.Msg.Answer {
			if soa, ok := rr.(*dns.SOA); ok {
				ah.Serial = soa.Serial
			}
		}
	}
	if ah.NoEDNS != nil && ah.NoEDNS.Msg != nil && ah.NoEDNS.Msg.Rcode == dns.RcodeSuccess && ah.State != "ok" {
		ah.State, ah.Reason = "edns", "fails queries with EDNS (OPT record) but answers without: EDNS intolerant"
	}
	if ah.State == "ok" && len(resp.Msg.Question) == 1 && resp.Msg.Question[0].Name != mixed && strings.ContainsFunc(apex, isLetter) {
		ah.State, ah.Reason = "0x20", fmt.Sprintf("changed the case of the question (asked %s, echoed %s): breaks resolvers that use 0x20 as Let's Encrypt's do", mixed, resp.Msg.Question[0].Name)
	}
}

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// mixCase gives a name alternating letter case, the 0x20 probe.
func mixCase(name string) string {
	b := []byte(name)
	upper := true
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			if upper {
				b[i] = c - 'a' + 'A'
			}
			upper = !upper
		}
	}
	return string(b)
}

// judge turns the per-address answers into findings about the zone.
func (h *ZoneHealth) judge() []reports.Finding {
	z := h.Zone
	apex := trimDot(z.Name)
	var fs []reports.Finding
	var silent, lame, failing, transport []string
	serials := map[uint32][]string{}
	for _, a := range h.Addrs {
		line := fmt.Sprintf("%s: %s", a.HostAddr, a.Reason)
		switch a.State {
		case "ok", "0x20":
			serials[a.Serial] = append(serials[a.Serial], a.HostAddr.String())
			if h.SOA == nil {
				for _, rr := range a.SOA.Msg.Answer {
					if soa, ok := rr.(*dns.SOA); ok {
						h.SOA = soa
					}
				}
			}
			if a.State == "0x20" {
				transport = append(transport, line)
			}
		case "silent":
			silent = append(silent, line)
		case "lame":
			lame = append(lame, line)
		case "edns":
			transport = append(transport, line)
		default:
			failing = append(failing, line)
		}
	}
	z.mu.Lock()
	for _, s := range z.Servers {
		if s.Err != nil {
			lame = append(lame, fmt.Sprintf("%s: name server host cannot be resolved: %v", trimDot(s.Host), s.Err))
		}
	}
	parentNS, childNS := z.ParentNS, z.ChildNS
	z.mu.Unlock()

	total := len(h.Addrs)
	switch {
	case total > 0 && len(silent) == total:
		fs = append(fs, reports.New(reports.CodeDNSTimeout, "",
			fmt.Sprintf("no server of zone %s answers:\n%s", apex, strings.Join(silent, "\n"))).With("zone", apex))
	case len(silent) > 0:
		fs = append(fs, reports.New(reports.CodeDNSNSUnreachable, "",
			fmt.Sprintf("%d of %d server addresses of zone %s do not answer:\n%s", len(silent), total, apex, strings.Join(silent, "\n"))).
			With("zone", apex).With("silent", len(silent)).With("addresses", total))
	}
	if len(childNS) > 0 && !slices.Equal(parentNS, childNS) && len(parentNS) > 0 {
		lame = append(lame, fmt.Sprintf("the parent zone delegates to {%s} but the zone's own NS set is {%s}",
			joinHosts(parentNS), joinHosts(childNS)))
	}
	if len(lame) > 0 {
		fs = append(fs, reports.New(reports.CodeDNSLameDelegation, "",
			fmt.Sprintf("zone %s:\n%s", apex, strings.Join(lame, "\n"))).With("zone", apex))
	}
	if len(failing) > 0 && len(failing)+len(silent)+len(lame) == total {
		fs = append(fs, reports.New(reports.CodeDNSServFail, "",
			fmt.Sprintf("no server of zone %s gives a usable answer:\n%s", apex, strings.Join(failing, "\n"))).With("zone", apex))
	} else if len(failing) > 0 {
		fs = append(fs, reports.New(reports.CodeDNSNSUnreachable, "",
			fmt.Sprintf("some servers of zone %s fail:\n%s", apex, strings.Join(failing, "\n"))).With("zone", apex))
	}
	if len(serials) > 1 {
		var parts []string
		keys := make([]uint32, 0, len(serials))
		for s := range serials {
			keys = append(keys, s)
		}
		slices.Sort(keys)
		for _, s := range keys {
			parts = append(parts, fmt.Sprintf("serial %d at %s", s, strings.Join(serials[s], ", ")))
		}
		fs = append(fs, reports.New(reports.CodeDNSSerialMismatch, "",
			fmt.Sprintf("zone %s servers disagree on the SOA serial (a secondary lags):\n%s", apex, strings.Join(parts, "\n"))).With("zone", apex))
	}
	if len(transport) > 0 {
		fs = append(fs, reports.New(reports.CodeDNSTransport, "",
			fmt.Sprintf("zone %s:\n%s", apex, strings.Join(transport, "\n"))).With("zone", apex))
	}
	return fs
}

// negativeTTLFinding warns when the zone's negative-caching TTL is long.
func (h *ZoneHealth) negativeTTLFinding() *reports.Finding {
	if h.SOA == nil {
		return nil
	}
	ttl := min(h.SOA.Hdr.Ttl, h.SOA.Minttl)
	if ttl <= NegativeTTLLimit {
		return nil
	}
	f := reports.New(reports.CodeDNSNegativeTTLHigh, "",
		fmt.Sprintf("zone %s: SOA TTL %d, MINIMUM %d: a resolver that saw the name missing keeps that answer for %s",
			trimDot(h.Zone.Name), h.SOA.Hdr.Ttl, h.SOA.Minttl, humanSeconds(ttl))).
		With("zone", trimDot(h.Zone.Name)).With("negative_ttl", ttl)
	return &f
}

func humanSeconds(s uint32) string {
	switch {
	case s >= 3600 && s%3600 == 0:
		return fmt.Sprintf("%d h", s/3600)
	case s >= 60 && s%60 == 0:
		return fmt.Sprintf("%d min", s/60)
	}
	return fmt.Sprintf("%d s", s)
}

func joinHosts(hosts []string) string {
	out := make([]string, len(hosts))
	for i, h := range hosts {
		out[i] = trimDot(h)
	}
	return strings.Join(out, ", ")
}
