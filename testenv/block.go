package testenv

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
)

// A universe's address block: every address it uses lies in three /16s
// of 127.0.0.0/8, 127.10/16 (vantage sources), 127.53/16 (DNS servers and
// resolvers) and 127.80/16 (web servers). Block 0 is those; block n (1 to
// MaxBlock) moves each to 127.(10+n), 127.(53+n) and 127.(80+n), so the
// blocks never overlap, and two universes in different blocks share no
// IPv4 address. The one address they cannot split, ::1 (the IPv6-only name
// server and web site), is told apart by port: a universe whose
// Options.Port is 0 listens on its block's default port, 53+n as root and
// 10053+n otherwise.
const MaxBlock = 9

// blockOctets are the second octets of block 0's three /16s.
var blockOctets = []int{10, 53, 80}

// defaultPort is a block's DNS port when Options.Port is 0.
func defaultPort(block int) int {
	if os.Geteuid() == 0 {
		return 53 + block
	}
	return defaultHighPort + block
}

// blockReplacer rewrites block 0's addresses into block's; nil for block 0.
func blockReplacer(block int) *strings.Replacer {
	if block == 0 {
		return nil
	}
	var pairs []string
	for _, o := range blockOctets {
		pairs = append(pairs, fmt.Sprintf("127.%d.", o), fmt.Sprintf("127.%d.", o+block))
	}
	return strings.NewReplacer(pairs...)
}

// InBlock rewrites every block-0 address in s (an address, a zone line, an
// Expectation's DetailContains, …) into this universe's block: what the
// catalogue and the package's constants (WebAddr, SplitAddr) say is in
// block 0.
func (u *Universe) InBlock(s string) string {
	if u == nil || u.block == nil {
		return s
	}
	return u.block.Replace(s)
}

// Block is the universe's address block (0 to MaxBlock).
func (u *Universe) Block() int { return u.blockN }

// rebase moves every address of the spec into the block.
func (sp *spec) rebase(r *strings.Replacer) {
	if r == nil {
		return
	}
	all := func(ss []string) {
		for i := range ss {
			ss[i] = r.Replace(ss[i])
		}
	}
	for i := range sp.zones {
		sp.zones[i].text = r.Replace(sp.zones[i].text)
	}
	for i := range sp.servers {
		sv := &sp.servers[i]
		all(sv.addrs)
		for j := range sv.faults {
			all(sv.faults[j].Sources)
		}
		for o, text := range sv.stale {
			sv.stale[o] = r.Replace(text)
		}
	}
	all(sp.clusterData)
	for i := range sp.sites {
		sp.sites[i].addr = r.Replace(sp.sites[i].addr)
	}
	for i := range sp.drops {
		sp.drops[i].addr = r.Replace(sp.drops[i].addr)
		all(sp.drops[i].sources)
	}
	for _, addrs := range sp.webAddrs {
		all(addrs)
	}
}

// FreeBlock returns the first address block in which a universe with this
// Options.Port (0: the block's default port) can start now: its resolver,
// root server and web addresses and ::1 are free on its ports. Tests that
// may run beside another universe (`make demo` while `make test` runs)
// start in it.
func FreeBlock(port int) (int, error) {
	for b := 0; b <= MaxBlock; b++ {
		p := port
		if p == 0 {
			p = defaultPort(b)
		}
		r := blockReplacer(b)
		re := func(a string) string {
			if r == nil {
				return a
			}
			return r.Replace(a)
		}
		dnsAddrs := map[string]string{"resolver": re(publicResolverAddr), "root": re("127.53.0.1"), "v6": "::1"}
		if bindable(p, dnsAddrs) && bindable(p+27, map[string]string{"web": re(WebAddr)}) {
			return b, nil
		}
	}
	return 0, fmt.Errorf("testenv: every address block (0 to %d) is in use", MaxBlock)
}

// vantageDef in this universe's block.
func (u *Universe) vantageIn(v vantageDef) vantageDef {
	v.addr, v.resolverAddr = u.InBlock(v.addr), u.InBlock(v.resolverAddr)
	return v
}

// resolverAddrPort is a resolver address of block 0 in this universe.
func (u *Universe) resolverAddrPort(addr string) string {
	return net.JoinHostPort(u.InBlock(addr), strconv.Itoa(u.port))
}
