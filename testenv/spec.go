package testenv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/acmediag/acmediag/testenv/dnsserver"
	"github.com/miekg/dns"
)

// zoneSpec declares one zone of the universe. Authors write only the zone's
// own data: the SOA and apex NS are generated when absent, the addresses of
// the universe's servers are added to the zone that holds their host names,
// and the parent's delegation (NS, glue, DS) is generated from this.
type zoneSpec struct {
	origin     string
	text       string // zone-file text, relative to origin
	signed     bool
	parentNS   []string // NS hosts the parent lists; nil → the hosts of the servers serving the zone
	sigFaults  []dnsserver.SigFault
	dsMismatch bool // the parent publishes a DS that matches no DNSKEY
	allowAXFR  bool
}

// serverSpec declares one authoritative server.
type serverSpec struct {
	name   string // short id, unique
	host   string // NS host name (FQDN)
	addrs  []string
	zones  []string
	faults []dnsserver.Fault
	// stale maps an origin to the zone text this server serves instead of
	// the current version: a secondary that lags (lower serial, missing
	// records). Generated records are added to it as to the main text.
	stale map[string]string
}

// spec is the whole universe's description.
type spec struct {
	zones   []zoneSpec
	servers []serverSpec
	// clusterData are Unbound local-data lines for the split-horizon
	// (cluster) resolver, e.g. "www.split.com. 60 IN A 127.80.0.99".
	clusterData []string
	// sites are the web addresses and their behaviours; drops the
	// packet-drop faults (nftables).
	sites []siteSpec
	drops []dropSpec
	// webAddrs maps a scenario name to its web addresses (for tests);
	// scenarioNames are every scenario's name (the solver's tokens).
	webAddrs      map[string][]string
	scenarioNames []string
}

func (s *spec) zone(origin string) *zoneSpec {
	for i := range s.zones {
		if s.zones[i].origin == origin {
			return &s.zones[i]
		}
	}
	return nil
}

// parentOf returns the deepest other zone of the universe containing name.
func (s *spec) parentOf(name string) string {
	best := ""
	for _, z := range s.zones {
		if z.origin == name || !dns.IsSubDomain(z.origin, name) {
			continue
		}
		if best == "" || dns.CountLabel(z.origin) > dns.CountLabel(best) {
			best = z.origin
		}
	}
	return best
}

// zoneOf returns the deepest zone containing name (name's own zone when it
// is an apex).
func (s *spec) zoneOf(name string) string {
	if s.zone(name) != nil {
		return name
	}
	return s.parentOf(name)
}

// servingHosts lists the hosts of the servers that serve origin.
func (s *spec) servingHosts(origin string) []string {
	var out []string
	for _, sv := range s.servers {
		if slices.Contains(sv.zones, origin) && !slices.Contains(out, sv.host) {
			out = append(out, sv.host)
		}
	}
	return out
}

// parentNSOf is the NS set the parent publishes for origin.
func (s *spec) parentNSOf(origin string) []string {
	if z := s.zone(origin); z != nil && z.parentNS != nil {
		return z.parentNS
	}
	return s.servingHosts(origin)
}

// normalize lower-cases and qualifies every name in the spec.
func (s *spec) normalize() {
	for i := range s.zones {
		z := &s.zones[i]
		z.origin = dns.CanonicalName(z.origin)
		for j := range z.parentNS {
			z.parentNS[j] = dns.CanonicalName(z.parentNS[j])
		}
	}
	for i := range s.servers {
		sv := &s.servers[i]
		sv.host = dns.CanonicalName(sv.host)
		for j := range sv.zones {
			sv.zones[j] = dns.CanonicalName(sv.zones[j])
		}
		st := map[string]string{}
		for o, t := range sv.stale {
			st[dns.CanonicalName(o)] = t
		}
		sv.stale = st
	}
}

func (s *spec) validate() error {
	seenZone := map[string]bool{}
	for _, z := range s.zones {
		if seenZone[z.origin] {
			return fmt.Errorf("zone %s declared twice", z.origin)
		}
		seenZone[z.origin] = true
	}
	if !seenZone["."] {
		return fmt.Errorf("the universe has no root zone")
	}
	seenName, seenAddr := map[string]bool{}, map[string]string{}
	for _, sv := range s.servers {
		if seenName[sv.name] {
			return fmt.Errorf("server %s declared twice", sv.name)
		}
		seenName[sv.name] = true
		for _, a := range sv.addrs {
			if other, ok := seenAddr[a]; ok {
				return fmt.Errorf("address %s used by servers %s and %s", a, other, sv.name)
			}
			seenAddr[a] = sv.name
		}
		for _, o := range sv.zones {
			if !seenZone[o] {
				return fmt.Errorf("server %s serves undeclared zone %s", sv.name, o)
			}
		}
		if s.zoneOf(sv.host) == "" {
			return fmt.Errorf("server %s: host %s is in no zone of the universe", sv.name, sv.host)
		}
	}
	seenSite := map[string]bool{}
	for _, st := range s.sites {
		if seenSite[st.addr] {
			return fmt.Errorf("web address %s declared twice (one site per address)", st.addr)
		}
		seenSite[st.addr] = true
	}
	for _, z := range s.zones {
		if len(s.servingHosts(z.origin)) == 0 {
			return fmt.Errorf("zone %s has no server", z.origin)
		}
	}
	return nil
}

// hostAddrRRs are the A/AAAA records of the universe's servers whose host
// lies in origin.
func (s *spec) hostAddrRRs(origin string) []dns.RR {
	var out []dns.RR
	for _, sv := range s.servers {
		if s.zoneOf(sv.host) != origin {
			continue
		}
		for _, a := range sv.addrs {
			out = append(out, addrRR(sv.host, a, 3600))
		}
	}
	return out
}

func addrRR(host, addr string, ttl uint32) dns.RR {
	if strings.Contains(addr, ":") {
		rr, _ := dns.NewRR(fmt.Sprintf("%s %d IN AAAA %s", host, ttl, addr))
		return rr
	}
	rr, _ := dns.NewRR(fmt.Sprintf("%s %d IN A %s", host, ttl, addr))
	return rr
}

// assemble turns one version of a zone's text into its full record list:
// the author's records, a default SOA and apex NS when missing, the
// universe's server addresses, and the delegations (NS, glue, DS) of its
// child zones. keys holds the signing keys of every signed zone.
func (s *spec) assemble(z *zoneSpec, text string, keys map[string]*dnsserver.Keys, base map[string][]dns.RR) ([]dns.RR, error) {
	rrs, err := dnsserver.ParseZone(z.origin, "$TTL 3600\n"+text)
	if err != nil {
		return nil, err
	}
	has := func(name string, t uint16) bool {
		return slices.ContainsFunc(rrs, func(rr dns.RR) bool {
			return rr.Header().Rrtype == t && strings.EqualFold(rr.Header().Name, name)
		})
	}
	apexNS := s.parentNSOf(z.origin)
	if !has(z.origin, dns.TypeSOA) {
		soa, err := dns.NewRR(fmt.Sprintf("%s 3600 IN SOA %s hostmaster.%s 1000 3600 900 604800 300",
			z.origin, apexNS[0], strings.TrimPrefix(z.origin, ".")))
		if err != nil {
			return nil, fmt.Errorf("zone %s: default SOA: %w", z.origin, err)
		}
		rrs = append(rrs, soa)
	}
	if !has(z.origin, dns.TypeNS) {
		for _, h := range apexNS {
			rrs = append(rrs, &dns.NS{Hdr: dns.RR_Header{Name: z.origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: h})
		}
	}
	for _, rr := range s.hostAddrRRs(z.origin) {
		if !has(rr.Header().Name, rr.Header().Rrtype) {
			rrs = append(rrs, rr)
		}
	}
	for _, child := range s.zones {
		if child.origin == z.origin || s.parentOf(child.origin) != z.origin {
			continue
		}
		for _, h := range s.parentNSOf(child.origin) {
			rrs = append(rrs, &dns.NS{Hdr: dns.RR_Header{Name: child.origin, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: h})
			// Glue: addresses of hosts under this zone but held by another
			// zone (below the cut, or a sibling), as registries publish.
			if !dns.IsSubDomain(z.origin, h) || s.zoneOf(h) == z.origin {
				continue
			}
			for _, rr := range base[s.zoneOf(h)] {
				t := rr.Header().Rrtype
				if (t == dns.TypeA || t == dns.TypeAAAA) && strings.EqualFold(rr.Header().Name, h) && !has(h, t) {
					g := dns.Copy(rr)
					g.Header().Name = h
					rrs = append(rrs, g)
				}
			}
		}
		if k := keys[child.origin]; k != nil {
			ds := k.DS()
			if child.dsMismatch {
				// A digest of the right shape that matches no key: what a
				// registrar holding an old DS publishes after a key roll.
				b := []byte(strings.ToUpper(ds.Digest))
				b[0] = "0123456789ABCDEF"[(strings.IndexByte("0123456789ABCDEF", b[0])+1)%16]
				ds.Digest = string(b)
			}
			rrs = append(rrs, ds)
		}
	}
	return rrs, nil
}

// baseRecords parses every zone's own text plus its server addresses, so
// assemble can find glue for any host.
func (s *spec) baseRecords() (map[string][]dns.RR, error) {
	out := map[string][]dns.RR{}
	for i := range s.zones {
		z := &s.zones[i]
		rrs, err := dnsserver.ParseZone(z.origin, "$TTL 3600\n"+z.text)
		if err != nil {
			return nil, err
		}
		out[z.origin] = append(rrs, s.hostAddrRRs(z.origin)...)
	}
	return out, nil
}
