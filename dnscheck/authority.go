package dnscheck

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
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
	// SOA is the answer to the SOA question asked with a mixed-case name
	// (0x20 check) and EDNS; asked again without EDNS when the server
	// failed that (SOA.NoEDNS then says so).
	SOA    *Response
	Serial uint32
	// State is "ok", "silent", "lame" (REFUSED or not authoritative),
	// "failing" (SERVFAIL and other rcodes) or "malformed".
	State  string
	Reason string
	// On an "ok" address: it answers only without EDNS (EDNS intolerant),
	// or it does not echo the question's letter case (breaks 0x20).
	NoEDNS     bool
	Breaks0x20 bool
	CaseReason string
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

// soaHealth asks one address for the zone's SOA with a mixed-case name
// (the Querier asks again without EDNS when the server fails EDNS).
func (r *run) soaHealth(ctx context.Context, ha HostAddr, apex, mixed string) AddrHealth {
	ah := AddrHealth{HostAddr: ha}
	server := netip.AddrPortFrom(ha.Addr, r.w.port)
	ah.SOA = r.q.Query(ctx, server, mixed, dns.TypeSOA, QueryOptions{KeepCase: true})
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
	if ah.State != "ok" {
		return
	}
	ah.NoEDNS = resp.NoEDNS
	if len(resp.Msg.Question) == 1 && resp.Msg.Question[0].Name != mixed && strings.ContainsFunc(apex, isLetter) {
		ah.Breaks0x20 = true
		ah.CaseReason = fmt.Sprintf("changed the letter case of the question (asked %s, echoed %s)", mixed, resp.Msg.Question[0].Name)
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
	var silent, lame, failing []string
	var ok []AddrHealth
	serials := map[uint32][]string{}
	for _, a := range h.Addrs {
		line := fmt.Sprintf("%s: %s", a.HostAddr, a.Reason)
		switch a.State {
		case "ok":
			ok = append(ok, a)
			serials[a.Serial] = append(serials[a.Serial], a.HostAddr.String())
			if h.SOA == nil {
				for _, rr := range a.SOA.Msg.Answer {
					if soa, ok := rr.(*dns.SOA); ok {
						h.SOA = soa
					}
				}
			}
		case "silent":
			silent = append(silent, line)
		case "lame":
			lame = append(lame, line)
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
	if f := caseFinding(apex, ok); f != nil {
		fs = append(fs, *f)
	}
	return fs
}

// caseFinding judges servers that do not echo the question's letter case as
// Let's Encrypt's resolver meets them. Unbound with use-caps-for-id then
// asks every server of the zone again without 0x20 and takes the answer
// when they all give the same one; when they differ it gives up ("0x20
// failed, then got different replies in fallback": SERVFAIL). Servers that
// serve different versions of the zone (SOA) differ in every negative
// answer, so in every CAA lookup of a label without CAA records.
func caseFinding(apex string, ok []AddrHealth) *reports.Finding {
	var breakers []string
	versions := map[string][]string{}
	for _, a := range ok {
		if a.Breaks0x20 {
			breakers = append(breakers, fmt.Sprintf("%s: %s", a.HostAddr, a.CaseReason))
		}
		for _, rr := range a.SOA.Msg.Answer {
			if soa, isSOA := rr.(*dns.SOA); isSOA {
				v := fmt.Sprintf("SOA serial %d (%s %s %d %d %d %d)", soa.Serial, strings.ToLower(soa.Ns), strings.ToLower(soa.Mbox),
					soa.Refresh, soa.Retry, soa.Expire, soa.Minttl)
				versions[v] = append(versions[v], a.HostAddr.String())
				break
			}
		}
	}
	if len(breakers) == 0 {
		return nil
	}
	detail := fmt.Sprintf("zone %s:\n%s", apex, strings.Join(breakers, "\n"))
	var differ []string
	for _, v := range slices.Sorted(maps.Keys(versions)) {
		differ = append(differ, fmt.Sprintf("%s at %s", v, strings.Join(versions[v], ", ")))
	}
	sev := reports.Warning
	switch {
	case len(versions) > 1 && len(breakers) == len(ok):
		sev = reports.Error
		detail += "\nLet's Encrypt's resolver (Unbound, which uses 0x20) then asks every server again without 0x20 and compares the answers, " +
			"but the servers serve different versions of the zone:\n" + strings.Join(differ, "\n") +
			"\nso their negative answers (every CAA lookup of a label without CAA records among them) differ and it gives up with SERVFAIL: validation fails."
	case len(versions) > 1:
		detail += "\nWhen Let's Encrypt's resolver (Unbound, which uses 0x20) asks one of these servers, it asks every server again without 0x20 and compares the answers, " +
			"but the servers serve different versions of the zone:\n" + strings.Join(differ, "\n") +
			"\nso their negative answers differ and it gives up with SERVFAIL: validation fails whenever it picks one of these servers first."
	default:
		detail += "\nLet's Encrypt's resolver (Unbound, which uses 0x20) asks every server again without 0x20 and, as they all give the same answer, takes it: validation passes. " +
			"It fails while the servers disagree (a change that has not reached every server yet), and resolvers that use 0x20 without this fallback fail always."
	}
	return transportFinding(apex, detail, sev, "breaks_0x20", len(breakers))
}

// transportFinding is a zone's dns.transport finding; as an error it makes
// every lookup in the zone fail (its evidence says so, for folding).
func transportFinding(apex, detail string, sev reports.Severity, what string, servers int) *reports.Finding {
	f := reports.New(reports.CodeDNSTransport, "", detail).With("zone", apex).With(what, servers).WithSeverity(sev)
	if sev == reports.Error {
		f = f.With("every_lookup", true)
	}
	return &f
}

// ednsFinding judges servers that fail queries carrying EDNS as Let's
// Encrypt's resolver meets them: Unbound asks again without EDNS and uses
// that answer, which carries no DNSSEC signatures (no DO bit). In an
// unsigned zone nothing is lost; in a signed one (signed: the parent
// publishes a DS and the chain of trust reaches the zone) Unbound takes the
// signed answer of a server that does EDNS, and when there is none the
// validation fails ("DNSSEC: RRSIGs Missing").
func (h *ZoneHealth) ednsFinding(signed bool) *reports.Finding {
	var lines []string
	withEDNS := 0
	for _, a := range h.Addrs {
		switch {
		case a.State != "ok":
		case a.NoEDNS:
			lines = append(lines, fmt.Sprintf("%s: fails queries that carry EDNS (an OPT record) and answers them without: EDNS intolerant", a.HostAddr))
		default:
			withEDNS++
		}
	}
	if len(lines) == 0 {
		return nil
	}
	apex := trimDot(h.Zone.Name)
	detail := fmt.Sprintf("zone %s:\n%s", apex, strings.Join(lines, "\n"))
	sev := reports.Warning
	switch {
	case signed && withEDNS == 0:
		sev = reports.Error
		detail += "\nThe zone is signed (its parent publishes a DS record). Let's Encrypt's resolver (Unbound) asks again without EDNS, " +
			"but an answer without EDNS carries no DNSSEC signatures and no server of the zone answers with EDNS: " +
			"validation fails (SERVFAIL, \"DNSSEC: RRSIGs Missing\")."
	case signed:
		detail += "\nThe zone is signed, and an answer without EDNS carries no DNSSEC signatures: Let's Encrypt's resolver (Unbound) takes the signed answer " +
			"of a server that does EDNS and validation passes. A validating resolver that reaches only these servers fails."
	default:
		detail += "\nLet's Encrypt's resolver (Unbound) asks again without EDNS and gets the answer: validation passes. " +
			"Resolvers that do not retry without EDNS fail, answers over 512 bytes need TCP, and once the zone is signed validation fails."
	}
	return transportFinding(apex, detail, sev, "edns_intolerant", len(lines))
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
