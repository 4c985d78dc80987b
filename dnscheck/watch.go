package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/miekg/dns"
)

// TXTServers is where a dns-01 challenge's TXT record lives: the name that
// holds it once CNAMEs are followed, its zone, and every address of that
// zone's authoritative servers (the parent's delegation and the zone's own
// NS set together).
type TXTServers struct {
	Name    string     // the challenge name asked (lower-case FQDN)
	Chain   []string   // CNAME targets followed from Name, in order; empty without CNAMEs
	Owner   string     // the name holding the TXT record: the last of Chain, or Name
	Zone    string     // apex of Owner's zone
	Servers []HostAddr // every address of Zone's servers, once each
	Port    uint16     // the port they listen on
}

// TXTServers walks from the root to the zone of name, following CNAMEs
// into other zones (bounded, loop-safe), and returns the zone's server
// addresses. The walk's questions are remembered by the session like any
// other; a failed walk is a *WalkError.
func (s *Session) TXTServers(ctx context.Context, name string) (*TXTServers, error) {
	r := s.r
	cur := strings.ToLower(dns.Fqdn(name))
	out := &TXTServers{Name: cur, Port: r.w.port}
	seen := map[string]bool{}
	for range maxCNAMEHops + 1 {
		if seen[cur] {
			return nil, fmt.Errorf("CNAME loop: %s", strings.Join(append([]string{out.Name}, out.Chain...), " → "))
		}
		seen[cur] = true
		path, err := r.w.Walk(ctx, cur)
		if err != nil {
			return nil, fmt.Errorf("finding the zone of %s: %w", trimDot(cur), err)
		}
		z := path.Zone()
		// The walk ended with the zone's answer to "cur NS": a CNAME there
		// moves the record into another zone (perhaps another provider).
		if path.Final != nil && path.Final.Msg != nil {
			if last, _, loop := chase(path.Final.Msg, cur, dns.TypeNS); loop {
				return nil, fmt.Errorf("CNAME loop inside zone %s at %s", trimDot(z.Name), trimDot(cur))
			} else if last != cur {
				out.Chain = append(out.Chain, last)
				cur = last
				continue
			}
		}
		r.childNS(ctx, z)
		out.Owner, out.Zone, out.Servers = cur, z.Name, z.Addrs()
		if len(out.Servers) == 0 {
			return nil, fmt.Errorf("zone %s of %s has no server address", trimDot(z.Name), trimDot(cur))
		}
		return out, nil
	}
	return nil, fmt.Errorf("more than %d CNAMEs from %s", maxCNAMEHops, trimDot(out.Name))
}

// AskTXT asks server for name's TXT records once, with RD=0, bypassing the
// session's memory: every call is a new question on the wire, for
// watchers that poll. values are the TXT strings at name (CNAMEs inside
// the answer followed) when the answer is authoritative; resp is the raw
// exchange (resp.Err set on failure, counted in the session's Stats).
func (s *Session) AskTXT(ctx context.Context, server netip.AddrPort, name string) (values []string, resp *Response) {
	name = strings.ToLower(dns.Fqdn(name))
	resp = s.r.q.exchange(ctx, server, name, dns.TypeTXT, QueryOptions{})
	if resp.Err != nil || !authoritative(resp) {
		return nil, resp
	}
	_, recs, _ := chase(resp.Msg, name, dns.TypeTXT)
	return txtValues(recs), resp
}

// AnswerText summarises what a server answered to a TXT question, for
// details and logs (bounded).
func AnswerText(resp *Response) string {
	if resp == nil {
		return "not asked"
	}
	return answerText(resp, resp.Name, dns.TypeTXT)
}
