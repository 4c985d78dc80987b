package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

// maxCNAMEHops bounds a CNAME chain, as resolvers do.
const maxCNAMEHops = 8

// AuthAnswers is every server address's answer to one question in one zone.
type AuthAnswers struct {
	Zone      *Zone
	Name      string
	Type      uint16
	Hosts     []HostAddr
	Responses []*Response // Responses[i] came from Hosts[i]
}

// First is the first authoritative answer (NOERROR or NXDOMAIN with AA),
// preferring one given with EDNS (the others carry no DNSSEC records), or nil.
func (a *AuthAnswers) First() *Response {
	var plain *Response
	for _, r := range a.Responses {
		switch {
		case authoritative(r) && !r.NoEDNS:
			return r
		case authoritative(r) && plain == nil:
			plain = r
		}
	}
	return plain
}

func authoritative(r *Response) bool {
	return r.Msg != nil && r.Msg.Authoritative && (r.Msg.Rcode == dns.RcodeSuccess || r.Msg.Rcode == dns.RcodeNameError)
}

// lookupAll asks every address of the zone the same question in parallel.
func (r *run) lookupAll(ctx context.Context, z *Zone, name string, qtype uint16) *AuthAnswers {
	hosts := z.Addrs()
	a := &AuthAnswers{Zone: z, Name: name, Type: qtype, Hosts: hosts, Responses: make([]*Response, len(hosts))}
	var wg sync.WaitGroup
	for i, ha := range hosts {
		wg.Go(func() {
			a.Responses[i] = r.q.Query(ctx, netip.AddrPortFrom(ha.Addr, r.w.port), name, qtype, QueryOptions{})
		})
	}
	wg.Wait()
	return a
}

// Hop is one step of a CNAME chain as the authoritative servers tell it.
type Hop struct {
	Name    string
	Path    *Path
	Answers *AuthAnswers
	Target  string // CNAME target leaving this hop, "" at the end
}

// ChainEnd says how a chain ended.
type ChainEnd struct {
	Records  []dns.RR // records of the asked type at the end
	NXDomain bool     // the last name does not exist
	Dangling bool     // a CNAME points at a name that does not exist or cannot be resolved
	Loop     bool
	// Endless: more than maxCNAMEHops CNAMEs; a resolver gives up on such
	// a chain (SERVFAIL) as on a loop, whether or not it ends somewhere.
	Endless bool
	Err     string // why the chain could not be followed ("" when it ended normally)
}

// follow asks the authoritative servers of name for qtype and follows
// CNAMEs across zones (bounded, loop-safe), walking each target's
// delegation from the root. Findings about the zones met on the way are
// returned with the hops.
func (n *nameRun) follow(ctx context.Context, name string, qtype uint16) ([]*Hop, ChainEnd, []reports.Finding) {
	var hops []*Hop
	var fs []reports.Finding
	seen := map[string]bool{}
	cur := strings.ToLower(dns.Fqdn(name))
	for range maxCNAMEHops + 1 {
		if seen[cur] {
			return hops, ChainEnd{Loop: true, Dangling: true, Err: "CNAME loop: " + chainText(hops, cur)}, fs
		}
		seen[cur] = true
		var ans *AuthAnswers
		path, pfs := n.pathFor(ctx, cur, func(p *Path) { ans = n.lookupAll(ctx, p.Zone(), cur, qtype) })
		fs = append(fs, pfs...)
		if path == nil {
			end := ChainEnd{Err: fmt.Sprintf("%s cannot be resolved from the root", trimDot(cur))}
			end.Dangling = len(hops) > 0
			return hops, end, fs
		}
		fs = append(fs, truncationFindings(ans)...)
		hop := &Hop{Name: cur, Path: path, Answers: ans}
		hops = append(hops, hop)
		first := ans.First()
		if first == nil {
			return hops, ChainEnd{Err: fmt.Sprintf("no server of zone %s gave an authoritative answer for %s %s",
				trimDot(path.Zone().Name), trimDot(cur), dns.TypeToString[qtype]), Dangling: len(hops) > 1}, fs
		}
		last, records, loop := chase(first.Msg, cur, qtype)
		if loop {
			return hops, ChainEnd{Loop: true, Dangling: true, Err: fmt.Sprintf("CNAME loop inside zone %s: %s leads back to %s",
				trimDot(path.Zone().Name), trimDot(cur), trimDot(last))}, fs
		}
		if len(records) > 0 || last == cur {
			end := ChainEnd{Records: records, NXDomain: first.Msg.Rcode == dns.RcodeNameError && len(records) == 0}
			end.Dangling = end.NXDomain && len(hops) > 1
			return hops, end, fs
		}
		hop.Target = last
		cur = last
	}
	return hops, ChainEnd{Dangling: true, Endless: true, Err: fmt.Sprintf("more than %d CNAMEs: %s", maxCNAMEHops, chainText(hops, cur))}, fs
}

// chase follows the CNAMEs inside one answer from name and returns the last
// name reached and the records of qtype there; loop is set when the CNAMEs
// in the answer lead back to a name already visited.
func chase(m *dns.Msg, name string, qtype uint16) (last string, records []dns.RR, loop bool) {
	cur := strings.ToLower(name)
	visited := map[string]bool{cur: true}
	for range maxCNAMEHops {
		next := ""
		for _, rr := range m.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, cur) && qtype != dns.TypeCNAME {
				next = strings.ToLower(dns.Fqdn(c.Target))
				break
			}
		}
		if next == "" {
			break
		}
		if visited[next] {
			return next, nil, true
		}
		visited[next] = true
		cur = next
	}
	for _, rr := range m.Answer {
		if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, cur) {
			records = append(records, rr)
		}
	}
	return cur, records, false
}

func chainText(hops []*Hop, last string) string {
	var parts []string
	for _, h := range hops {
		parts = append(parts, trimDot(h.Name))
	}
	parts = append(parts, trimDot(last))
	return strings.Join(parts, " → ")
}

// recordSet renders an RRset's data for details (sorted, bounded).
func recordSet(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.TXT:
			out = append(out, fmt.Sprintf("%q", strings.Join(v.Txt, "")))
		default:
			out = append(out, strings.TrimPrefix(rr.String(), rr.Header().String()))
		}
	}
	return out
}

// truncationFindings reports servers whose answer did not fit in UDP and
// that then failed over TCP: the CA's resolver gets no answer from them. It
// asks another server then, so the validation fails only when no server of
// the zone gives the answer (an error); otherwise it is a warning.
func truncationFindings(a *AuthAnswers) []reports.Finding {
	var lines []string
	answered := false
	for i, r := range a.Responses {
		var qe *QueryError
		if errors.As(r.Err, &qe) && qe.Kind == KindTruncated {
			lines = append(lines, fmt.Sprintf("%s: %s", a.Hosts[i], qe.Err))
		}
		answered = answered || authoritative(r)
	}
	if len(lines) == 0 {
		return nil
	}
	detail := fmt.Sprintf("the answer to %s %s exceeds %d bytes, so it is truncated over UDP, and TCP fails:\n%s",
		trimDot(a.Name), dns.TypeToString[a.Type], EDNSBufferSize, strings.Join(lines, "\n"))
	sev := reports.Error
	if answered {
		sev = reports.Warning
		detail += "\nLet's Encrypt's resolver asks another server of the zone, which answers over TCP: validation passes, but every lookup that meets these servers first waits for the retry."
	}
	return []reports.Finding{reports.New(reports.CodeDNSTransport, "", detail).
		With("zone", trimDot(a.Zone.Name)).With("question", trimDot(a.Name)+" "+dns.TypeToString[a.Type]).WithSeverity(sev)}
}
