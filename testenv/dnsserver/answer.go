package dnsserver

import (
	"sort"
	"strings"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds CNAME chasing inside one zone (loops are detected
// too; this bounds pathological long chains).
const maxCNAMEChain = 8

// Answer is what a zone says to one question: the sections of the reply,
// the rcode and whether it is authoritative (AA=0 for referrals).
type Answer struct {
	Rcode         int
	Authoritative bool
	Answer        []dns.RR
	Ns            []dns.RR
	Extra         []dns.RR
}

// Lookup answers one question from this zone's data as an authoritative
// server does: data with AA=1, referrals at zone cuts (DS answered here, on
// the parent side), CNAME chased within the zone, NXDOMAIN and NODATA with
// the SOA, and with do set the RRSIGs and NSEC proofs. qname's spelling is
// kept on answer owners that equal it, as servers that compress against the
// question do.
func (z *Zone) Lookup(qname string, qtype uint16, do bool) *Answer {
	z.mu.RLock()
	defer z.mu.RUnlock()
	name := dns.CanonicalName(qname)
	a := &Answer{Authoritative: true}
	signed := do && z.keys != nil

	if cut := z.cutAbove(name); cut != "" && (cut != name || qtype != dns.TypeDS) {
		z.referral(a, cut, signed)
		return a
	}
	visited := map[string]bool{}
	for range maxCNAMEChain {
		visited[name] = true
		node := z.data[name]
		if node == nil {
			if z.hasDescendant(name) {
				z.negative(a, name, signed, false)
			} else {
				a.Rcode = dns.RcodeNameError
				z.negative(a, name, signed, true)
			}
			break
		}
		if qtype == dns.TypeANY {
			for _, t := range sortedTypes(node) {
				z.appendSet(a, name, t, signed)
			}
			break
		}
		if _, ok := node[qtype]; ok {
			z.appendSet(a, name, qtype, signed)
			if qtype == dns.TypeNS && name == z.origin {
				z.addGlue(a, node[dns.TypeNS])
			}
			break
		}
		if cn, ok := node[dns.TypeCNAME]; ok && qtype != dns.TypeCNAME {
			z.appendSet(a, name, dns.TypeCNAME, signed)
			target := dns.CanonicalName(cn[0].(*dns.CNAME).Target)
			if visited[target] || !dns.IsSubDomain(z.origin, target) || z.cutAbove(target) != "" {
				break // loops and other zones are the resolver's job
			}
			name = target
			continue
		}
		z.negative(a, name, signed, false)
		break
	}
	// Keep the question's spelling (0x20) on the owners that equal it.
	for _, rr := range a.Answer {
		if strings.EqualFold(rr.Header().Name, qname) {
			rr.Header().Name = qname
		}
	}
	return a
}

func (z *Zone) appendSet(a *Answer, name string, t uint16, signed bool) {
	for _, rr := range z.data[name][t] {
		a.Answer = append(a.Answer, dns.Copy(rr))
	}
	if signed {
		for _, s := range z.sigs[rrKey{name, t}] {
			a.Answer = append(a.Answer, dns.Copy(s))
		}
	}
}

func (z *Zone) referral(a *Answer, cut string, signed bool) {
	a.Authoritative = false
	ns := z.data[cut][dns.TypeNS]
	for _, rr := range ns {
		a.Ns = append(a.Ns, dns.Copy(rr))
	}
	if signed {
		if ds, ok := z.data[cut][dns.TypeDS]; ok {
			for _, rr := range ds {
				a.Ns = append(a.Ns, dns.Copy(rr))
			}
			for _, s := range z.sigs[rrKey{cut, dns.TypeDS}] {
				a.Ns = append(a.Ns, dns.Copy(s))
			}
		} else {
			// Proof that the child is unsigned: the NSEC at the delegation.
			z.appendNSEC(a, z.nsecAt(cut))
		}
	}
	z.addGlue(a, ns)
}

// addGlue puts the addresses of NS targets that this zone holds (glue below
// a cut, or in-zone hosts) in the additional section.
func (z *Zone) addGlue(a *Answer, ns []dns.RR) {
	for _, rr := range ns {
		host := dns.CanonicalName(rr.(*dns.NS).Ns)
		if !dns.IsSubDomain(z.origin, host) {
			continue
		}
		for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
			for _, g := range z.data[host][t] {
				a.Extra = append(a.Extra, dns.Copy(g))
			}
		}
	}
}

// negative fills the authority section of NODATA (nx false) or NXDOMAIN:
// the SOA with the negative TTL, and when signed the NSEC records that prove
// the denial (RFC 4035 §3.1.3).
func (z *Zone) negative(a *Answer, name string, signed, nx bool) {
	soa := dns.Copy(z.soa())
	soa.Header().Ttl = z.negTTL()
	a.Ns = append(a.Ns, soa)
	if !signed {
		return
	}
	for _, s := range z.sigs[rrKey{z.origin, dns.TypeSOA}] {
		s = dns.Copy(s)
		s.Header().Ttl = soa.Header().Ttl
		a.Ns = append(a.Ns, s)
	}
	if !nx {
		if n := z.nsecAt(name); n != nil {
			z.appendNSEC(a, n)
		} else {
			z.appendNSEC(a, z.nsecCovering(name)) // empty non-terminal
		}
		return
	}
	cover := z.nsecCovering(name)
	z.appendNSEC(a, cover)
	wild := "*." + z.closestEncloser(name)
	if wild == "*.." {
		wild = "*." // the root is the closest encloser
	}
	if w := z.nsecCovering(wild); w != nil && (cover == nil || w.Hdr.Name != cover.Hdr.Name) {
		z.appendNSEC(a, w)
	}
}

func (z *Zone) appendNSEC(a *Answer, n *dns.NSEC) {
	if n == nil {
		return
	}
	a.Ns = append(a.Ns, dns.Copy(n))
	for _, s := range z.sigs[rrKey{n.Hdr.Name, dns.TypeNSEC}] {
		a.Ns = append(a.Ns, dns.Copy(s))
	}
}

func (z *Zone) nsecAt(name string) *dns.NSEC {
	i := sort.Search(len(z.nsecs), func(i int) bool { return CanonicalCompare(z.nsecs[i].Hdr.Name, name) >= 0 })
	if i < len(z.nsecs) && z.nsecs[i].Hdr.Name == name {
		return z.nsecs[i]
	}
	return nil
}

// nsecCovering is the NSEC whose owner is the last name before name in
// canonical order (the chain wraps, so the last NSEC covers names past it).
func (z *Zone) nsecCovering(name string) *dns.NSEC {
	if len(z.nsecs) == 0 {
		return nil
	}
	i := sort.Search(len(z.nsecs), func(i int) bool { return CanonicalCompare(z.nsecs[i].Hdr.Name, name) > 0 })
	if i == 0 {
		return z.nsecs[len(z.nsecs)-1]
	}
	return z.nsecs[i-1]
}

// closestEncloser is the longest existing ancestor of name (an owner or an
// empty non-terminal); the apex at worst.
func (z *Zone) closestEncloser(name string) string {
	for cur := name; cur != z.origin; {
		i, end := dns.NextLabel(cur, 0)
		if end {
			break
		}
		cur = cur[i:]
		if _, ok := z.data[cur]; ok || z.hasDescendant(cur) {
			return cur
		}
	}
	return z.origin
}
