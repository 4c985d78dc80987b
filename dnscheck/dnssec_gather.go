package dnscheck

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

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
		if v.Security != SecuritySecure {
			continue
		}
		if f := n.answerFinding(keys, h); f != nil {
			fs = append(fs, *f)
		}
	}
	return fs
}

// answerFinding validates every server's answer of one hop (those given
// only without EDNS carry no signatures; dns.transport covers them). A
// validating resolver that gets a bogus answer asks another server, so
// bogus answers fail the lookup only when no server's answer validates;
// otherwise the finding is a warning naming the servers.
func (n *nameRun) answerFinding(keys ChainKeys, h *Hop) *reports.Finding {
	var bad []string
	var first *Validation
	var firstFrom netip.Addr
	good := 0
	for i, r := range h.Answers.Responses {
		if !authoritative(r) || r.NoEDNS {
			continue
		}
		av := ValidateAnswer(keys, h.Path.Zone().Name, h.Name, h.Answers.Type, r.Msg, n.now)
		switch av.Security {
		case SecurityBogus:
			bad = append(bad, fmt.Sprintf("%s: %s (%s)", h.Answers.Hosts[i], av.Detail, av.Reason))
			if first == nil {
				first, firstFrom = &av, r.Server.Addr()
			}
		case SecuritySecure, SecurityInsecure:
			good++
		}
	}
	if first == nil {
		return nil
	}
	what := fmt.Sprintf("%s %s", trimDot(h.Name), dns.TypeToString[h.Answers.Type])
	if good == 0 {
		f := bogusFinding(*first, fmt.Sprintf("answer for %s from %s", what, firstFrom)).With("question", what)
		return &f
	}
	f := reports.New(reports.CodeDNSDNSSECBogus, "", fmt.Sprintf(
		"the answer for %s from %d of %d servers of zone %s is bogus:\n%s\n"+
			"Let's Encrypt's resolver (Unbound) asks another server when an answer does not validate and takes the one that does: validation passes. "+
			"A validating resolver that reaches only these servers fails.",
		what, len(bad), len(bad)+good, trimDot(h.Path.Zone().Name), strings.Join(bad, "\n"))).
		With("zone", trimDot(first.Zone)).With("reason", string(first.Reason)).With("question", what).WithSeverity(reports.Warning)
	if first.Reason == ReasonBrokenDenial {
		f.Fix = brokenDenialFix
	}
	return &f
}

func bogusFinding(v Validation, what string) reports.Finding {
	zone := trimDot(v.Zone)
	if zone == "" {
		zone = "."
	}
	f := reports.New(reports.CodeDNSDNSSECBogus, "", fmt.Sprintf("%s is bogus at zone %s (%s): %s", what, zone, v.Reason, v.Detail)).
		With("zone", zone).With("reason", string(v.Reason))
	if v.Reason == ReasonBrokenDenial || v.Reason == ReasonMissingDSProof {
		f.Fix = brokenDenialFix
	}
	return f
}

// brokenDenialFix replaces the catalogue's fix when the chain is fine but a
// denial of existence (NXDOMAIN, NODATA, no DS) comes without a valid proof.
const brokenDenialFix = "The zone's servers answer that a name or record type does not exist without the NSEC or NSEC3 records " +
	"(and their signatures) that prove it, so a validating resolver cannot trust the answer: every lookup of something absent fails, " +
	"CAA lookups first of all. Fix or upgrade the signer or name server software so negative answers carry their denial proof " +
	"(some only get it wrong for empty answers), or remove the DS record at the registrar to stop signing. dnsviz.net shows the broken proof."
