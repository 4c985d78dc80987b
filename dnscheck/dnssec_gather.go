package dnscheck

import (
	"context"
	"fmt"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

type chainCall struct {
	done chan struct{}
	keys ChainKeys
	v    Validation
}

// chainFor gathers DS and DNSKEY along the path (DS from a parent server,
// DNSKEY from the zone's own) and validates from the trust anchor down,
// once per zone per run.
func (r *run) chainFor(ctx context.Context, path *Path) (ChainKeys, Validation) {
	key := path.Zone().Name
	r.mu.Lock()
	if c, ok := r.chains[key]; ok {
		r.mu.Unlock()
		<-c.done
		return c.keys, c.v
	}
	c := &chainCall{done: make(chan struct{})}
	r.chains[key] = c
	r.mu.Unlock()
	defer close(c.done)

	links := make([]ZoneLink, len(path.Zones))
	done := make(chan struct{}, len(path.Zones))
	for i, z := range path.Zones {
		go func() {
			defer func() { done <- struct{}{} }()
			link := ZoneLink{Zone: z.Name, Parent: z.Parent}
			if i > 0 {
				if resp, _ := r.w.ask(ctx, path.Zones[i-1], z.Name, dns.TypeDS); resp != nil {
					link.Server = resp.Server.String()
					if hasType(resp.Msg.Answer, dns.TypeDS) {
						link.DS = resp.Msg.Answer
					} else {
						link.NoDS = resp.Msg.Ns
					}
				}
			}
			if resp, _ := r.w.ask(ctx, z, z.Name, dns.TypeDNSKEY); resp != nil {
				link.DNSKEY = resp.Msg.Answer
				link.KeyServer = resp.Server.String()
			}
			links[i] = link
		}()
	}
	for range path.Zones {
		<-done
	}
	c.keys, c.v = ValidateChain(r.c.TrustAnchors, links, r.now)
	return c.keys, c.v
}

// expectsSignatures says whether a validating resolver expects zone to be
// signed: the chain of trust reaches it (its keys validated), or breaks at
// the zone itself, below a parent that published its DS.
func expectsSignatures(keys ChainKeys, chain Validation, zone string) bool {
	zone = canonName(zone)
	return keys[zone] != nil || chain.Security == SecurityBogus && canonName(chain.Zone) == zone
}

func hasType(rrs []dns.RR, t uint16) bool {
	for _, rr := range rrs {
		if rr.Header().Rrtype == t {
			return true
		}
	}
	return false
}

// dnssecFindings validates the chain to each hop's zone and the answer the
// hop's servers gave, and says which link breaks.
func (n *nameRun) dnssecFindings(ctx context.Context, hops []*Hop) []reports.Finding {
	if len(n.c.TrustAnchors) == 0 {
		return nil
	}
	var fs []reports.Finding
	for _, h := range hops {
		keys, v := n.chainFor(ctx, h.Path)
		if v.Security == SecurityBogus {
			fs = append(fs, bogusFinding(v, fmt.Sprintf("chain of trust to zone %s", trimDot(h.Path.Zone().Name))))
			continue
		}
		first := h.Answers.First()
		if first == nil || v.Security != SecuritySecure {
			continue
		}
		av := ValidateAnswer(keys, h.Path.Zone().Name, h.Name, h.Answers.Type, first.Msg, n.now)
		if av.Security == SecurityBogus {
			fs = append(fs, bogusFinding(av, fmt.Sprintf("answer for %s %s from %s", trimDot(h.Name),
				dns.TypeToString[h.Answers.Type], first.Server.Addr())))
		}
	}
	return fs
}

func bogusFinding(v Validation, what string) reports.Finding {
	zone := trimDot(v.Zone)
	if zone == "" {
		zone = "."
	}
	return reports.New(reports.CodeDNSDNSSECBogus, "", fmt.Sprintf("%s is bogus at zone %s (%s): %s", what, zone, v.Reason, v.Detail)).
		With("zone", zone).With("reason", string(v.Reason))
}
