package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"

	"github.com/miekg/dns"
)

// LookupHost returns a host's AAAA and A addresses as the CA's resolver
// gives them (redirect targets of HTTP-01 are resolved this way, never
// through the system resolver). err is set only when both lookups fail, and
// reads as Boulder's problem text ("DNS problem: NXDOMAIN looking up A for
// x - ...; DNS problem: NXDOMAIN looking up AAAA for x - ...").
func (s *Session) LookupHost(ctx context.Context, host string) (v6, v4 []netip.Addr, err error) {
	name := strings.ToLower(dns.Fqdn(host))
	var problems [2]string
	var addrs [2][]netip.Addr
	var wg sync.WaitGroup
	for i, t := range []uint16{dns.TypeAAAA, dns.TypeA} {
		wg.Go(func() { addrs[i], problems[i] = s.r.lookupAddrs(ctx, name, t) })
	}
	wg.Wait()
	if problems[0] != "" && problems[1] != "" {
		return nil, nil, errors.New(problems[1] + "; " + problems[0])
	}
	return addrs[0], addrs[1], nil
}

// lookupAddrs asks the CA's resolver (or, without one, the authoritative
// servers) for one address type.
func (r *run) lookupAddrs(ctx context.Context, name string, qtype uint16) ([]netip.Addr, string) {
	var records []dns.RR
	if len(r.c.Resolvers) > 0 {
		a := r.resolve(ctx, r.c.Resolvers[0], name, qtype)
		if a.Failed() {
			return nil, a.Problem
		}
		records = a.Records
	} else {
		n := &nameRun{run: r, name: Name{ASCII: trimDot(name), Base: trimDot(name)}}
		_, end, _ := n.follow(ctx, name, qtype)
		if end.Err != "" || end.NXDomain {
			detail := "SERVFAIL"
			if end.NXDomain {
				detail = "NXDOMAIN"
			}
			return nil, fmt.Sprintf("DNS problem: %s looking up %s for %s", detail, dns.TypeToString[qtype], trimDot(name))
		}
		records = end.Records
	}
	var out []netip.Addr
	for _, rr := range records {
		if a, ok := rrAddr(rr); ok {
			out = append(out, a)
		}
	}
	return out, ""
}
