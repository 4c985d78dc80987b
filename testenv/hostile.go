package testenv

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/testenv/dnsserver"
)

// Hostile is a small signed DNS tree for the hostile-resolver matrix: a
// root, the TLD com. and the zone hostile.com. (CAA for letsencrypt.org,
// www A, and the dns-01 TXT HostileToken at _acme-challenge.www), each on
// a server of its own, plus a "resolver" that answers from all three
// zones. Every server can be given faults (dnsserver.Fault, scoped by
// type, name and source), so the resolver or any authoritative server
// answers NXDOMAIN, SERVFAIL, nothing, … for chosen questions. It is
// apart from the universe: four addresses of a /24 of its own and a free
// port, so it needs no lock.
type Hostile struct {
	port    int
	addrs   map[string]string // server id → address
	servers map[string]*dnsserver.Server
	anchor  *dns.DS
}

// The Hostile tree's names and server ids.
const (
	HostileName  = "www.hostile.com"
	HostileToken = "hostile-token-value"

	HostileRoot     = "root"
	HostileTLD      = "tld"
	HostileAuth     = "auth"
	HostileResolver = "resolver"
)

// HostileServers are the tree's server ids, the resolver last.
var HostileServers = []string{HostileRoot, HostileTLD, HostileAuth, HostileResolver}

// StartHostile starts the tree on net24's .1 (root), .2 (com.), .3
// (hostile.com.) and .4 (resolver), e.g. net24 "127.77.0", with faults per
// server id. ctx bounds start-up; Close stops it.
func StartHostile(ctx context.Context, net24 string, faults map[string][]dnsserver.Fault, log *zap.Logger) (_ *Hostile, err error) {
	if log == nil {
		log = zap.NewNop()
	}
	h := &Hostile{addrs: map[string]string{}, servers: map[string]*dnsserver.Server{}}
	for i, id := range HostileServers {
		h.addrs[id] = fmt.Sprintf("%s.%d", net24, i+1)
	}
	defer func() {
		if err != nil {
			h.Close()
		}
	}()
	if h.port, err = freePortOn(h.addrs); err != nil {
		return nil, err
	}
	keys := map[string]*dnsserver.Keys{}
	for _, o := range []string{".", "com.", "hostile.com."} {
		if keys[o], err = dnsserver.NewKeys(o); err != nil {
			return nil, err
		}
	}
	h.anchor = keys["."].DS()
	ds := func(o string) string { d := keys[o].DS(); d.Hdr.Ttl = 3600; return d.String() + "\n" }
	root, tld, auth := h.addrs[HostileRoot], h.addrs[HostileTLD], h.addrs[HostileAuth]
	texts := map[string]string{
		".": ". 3600 IN SOA a.ns.com. hostmaster.com. 1 3600 900 604800 300\n. 3600 IN NS a.ns.com.\n" +
			"com. 3600 IN NS b.ns.com.\na.ns.com. 3600 IN A " + root + "\nb.ns.com. 3600 IN A " + tld + "\n" + ds("com."),
		"com.": "com. 3600 IN SOA b.ns.com. hostmaster.com. 1 3600 900 604800 300\ncom. 3600 IN NS b.ns.com.\n" +
			"a.ns.com. 3600 IN A " + root + "\nb.ns.com. 3600 IN A " + tld + "\n" +
			"hostile.com. 3600 IN NS ns.hostile.com.\nns.hostile.com. 3600 IN A " + auth + "\n" + ds("hostile.com."),
		"hostile.com.": "hostile.com. 3600 IN SOA ns.hostile.com. hostmaster.hostile.com. 1 3600 900 604800 300\n" +
			"hostile.com. 3600 IN NS ns.hostile.com.\nhostile.com. 3600 IN CAA 0 issue \"letsencrypt.org\"\n" +
			"ns.hostile.com. 3600 IN A " + auth + "\nwww.hostile.com. 60 IN A 127.77.1.1\n" +
			"_acme-challenge.www.hostile.com. 60 IN TXT \"" + HostileToken + "\"\n",
	}
	serves := map[string][]string{HostileRoot: {"."}, HostileTLD: {"com."}, HostileAuth: {"hostile.com."},
		HostileResolver: {".", "com.", "hostile.com."}}
	hosts := map[string]string{HostileRoot: "a.ns.com.", HostileTLD: "b.ns.com.", HostileAuth: "ns.hostile.com.", HostileResolver: "resolver.invalid."}
	for _, id := range HostileServers {
		s := dnsserver.New(dnsserver.Config{Name: "hostile-" + id, Host: hosts[id], Addrs: []string{h.addrs[id]}, Port: h.port, Faults: faults[id], Logger: log})
		h.servers[id] = s
		for _, o := range serves[id] {
			rrs, err := dnsserver.ParseZone(o, texts[o])
			if err != nil {
				return nil, err
			}
			z, err := dnsserver.NewZone(dnsserver.ZoneConfig{Origin: o, Records: rrs, Keys: keys[o]})
			if err != nil {
				return nil, err
			}
			s.AddZone(z)
		}
		if err := s.Start(ctx); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// freePortOn finds a port free for UDP and TCP on every address.
func freePortOn(addrs map[string]string) (int, error) {
	for range 50 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		_ = pc.Close()
		if bindable(port, addrs) {
			return port, nil
		}
	}
	return 0, fmt.Errorf("testenv: no port free on every address of %v", addrs)
}

// bindable says whether UDP and TCP port are free on every address.
func bindable(port int, addrs map[string]string) bool {
	for _, a := range addrs {
		hp := net.JoinHostPort(a, strconv.Itoa(port))
		pc, err := net.ListenPacket("udp", hp)
		if err != nil {
			return false
		}
		_ = pc.Close()
		l, err := net.Listen("tcp", hp)
		if err != nil {
			return false
		}
		_ = l.Close()
	}
	return true
}

// Close stops every server.
func (h *Hostile) Close() {
	for _, s := range h.servers {
		_ = s.Close()
	}
}

// Port is every server's port.
func (h *Hostile) Port() int { return h.port }

// Root is the root server's address.
func (h *Hostile) Root() netip.Addr { return netip.MustParseAddr(h.addrs[HostileRoot]) }

// Resolver is the resolver's "ADDR:PORT".
func (h *Hostile) Resolver() netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr(h.addrs[HostileResolver]), uint16(h.port))
}

// TrustAnchor is the root's DS.
func (h *Hostile) TrustAnchor() *dns.DS { return h.anchor }

// Server is the server with this id.
func (h *Hostile) Server(id string) *dnsserver.Server { return h.servers[id] }
