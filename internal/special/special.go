// Package special knows the IANA special-purpose address registries as
// Let's Encrypt applies them: which addresses the CA refuses to validate
// (private, loopback, CGNAT, ULA, documentation, ...) and why. dnscheck (an
// address in public DNS) and http01 (a connection or redirect target) both
// ask it. It holds data and a lookup only: no I/O, no findings.
package special

import (
	"fmt"
	"net/netip"
)

// specialPurpose is one entry of the IANA special-purpose address registries.
type specialPurpose struct {
	prefix netip.Prefix
	name   string
	rfc    string
	// global marks entries IANA lists as globally reachable. Let's Encrypt
	// refuses them all the same (Boulder's iana.IsReservedAddr treats every
	// registry entry as reserved), which is worth saying when it surprises.
	global bool
}

// specialPurposeRegistry holds the IANA IPv4 and IPv6 Special-Purpose Address
// Registries as Boulder embeds them in iana/data (the IPv4 registry with
// entries allocated up to 2017-02, RFC 8155; the IPv6 registry with entries
// up to 2025-04, 100:0:0:1::/64 of RFC 9780), plus the two multicast blocks
// Boulder adds because the registries leave them out.
// Boulder checks membership in any entry, so a block nested in a larger one
// (192.0.0.9/32 inside 192.0.0.0/24, 2001:1::1/128 inside 2001::/23) is refused
// even where IANA marks it globally reachable; there are no exceptions.
// 6to4 (2002::/16) is refused too. Kept in registry order; lookups pick the
// most specific entry for the reason text.
var specialPurposeRegistry = []specialPurpose{
	// IPv4, https://www.iana.org/assignments/iana-ipv4-special-registry/
	{netip.MustParsePrefix("0.0.0.0/8"), `"This network"`, "RFC 791, Section 3.2", false},
	{netip.MustParsePrefix("0.0.0.0/32"), `"This host on this network"`, "RFC 1122, Section 3.2.1.3", false},
	{netip.MustParsePrefix("10.0.0.0/8"), "Private-Use", "RFC 1918", false},
	{netip.MustParsePrefix("100.64.0.0/10"), "Shared Address Space", "RFC 6598", false},
	{netip.MustParsePrefix("127.0.0.0/8"), "Loopback", "RFC 1122, Section 3.2.1.3", false},
	{netip.MustParsePrefix("169.254.0.0/16"), "Link Local", "RFC 3927", false},
	{netip.MustParsePrefix("172.16.0.0/12"), "Private-Use", "RFC 1918", false},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF Protocol Assignments", "RFC 6890, Section 2.1", false},
	{netip.MustParsePrefix("192.0.0.0/29"), "IPv4 Service Continuity Prefix", "RFC 7335", false},
	{netip.MustParsePrefix("192.0.0.8/32"), "IPv4 dummy address", "RFC 7600", false},
	{netip.MustParsePrefix("192.0.0.9/32"), "Port Control Protocol Anycast", "RFC 7723", true},
	{netip.MustParsePrefix("192.0.0.10/32"), "Traversal Using Relays around NAT Anycast", "RFC 8155", true},
	{netip.MustParsePrefix("192.0.0.170/32"), "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 Section 2.2", false},
	{netip.MustParsePrefix("192.0.0.171/32"), "NAT64/DNS64 Discovery", "RFC 8880, RFC 7050 Section 2.2", false},
	{netip.MustParsePrefix("192.0.2.0/24"), "Documentation (TEST-NET-1)", "RFC 5737", false},
	{netip.MustParsePrefix("192.31.196.0/24"), "AS112-v4", "RFC 7535", true},
	{netip.MustParsePrefix("192.52.193.0/24"), "AMT", "RFC 7450", true},
	{netip.MustParsePrefix("192.88.99.0/24"), "Deprecated (6to4 Relay Anycast)", "RFC 7526", false},
	{netip.MustParsePrefix("192.168.0.0/16"), "Private-Use", "RFC 1918", false},
	{netip.MustParsePrefix("192.175.48.0/24"), "Direct Delegation AS112 Service", "RFC 7534", true},
	{netip.MustParsePrefix("198.18.0.0/15"), "Benchmarking", "RFC 2544", false},
	{netip.MustParsePrefix("198.51.100.0/24"), "Documentation (TEST-NET-2)", "RFC 5737", false},
	{netip.MustParsePrefix("203.0.113.0/24"), "Documentation (TEST-NET-3)", "RFC 5737", false},
	{netip.MustParsePrefix("240.0.0.0/4"), "Reserved", "RFC 1112, Section 4", false},
	{netip.MustParsePrefix("255.255.255.255/32"), "Limited Broadcast", "RFC 8190, RFC 919 Section 7", false},
	// Not in the registry; Boulder adds it.
	{netip.MustParsePrefix("224.0.0.0/4"), "Multicast", "RFC 3171", false},

	// IPv6, https://www.iana.org/assignments/iana-ipv6-special-registry/
	{netip.MustParsePrefix("::1/128"), "Loopback Address", "RFC 4291", false},
	{netip.MustParsePrefix("::/128"), "Unspecified Address", "RFC 4291", false},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped Address", "RFC 4291", false},
	{netip.MustParsePrefix("64:ff9b::/96"), "IPv4-IPv6 Translation", "RFC 6052", true},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "IPv4-IPv6 Translation (local use)", "RFC 8215", false},
	{netip.MustParsePrefix("100::/64"), "Discard-Only Address Block", "RFC 6666", false},
	{netip.MustParsePrefix("100:0:0:1::/64"), "Dummy IPv6 Prefix", "RFC 9780", false},
	{netip.MustParsePrefix("2001::/23"), "IETF Protocol Assignments", "RFC 2928", false},
	{netip.MustParsePrefix("2001::/32"), "TEREDO", "RFC 4380, RFC 8190", false},
	{netip.MustParsePrefix("2001:1::1/128"), "Port Control Protocol Anycast", "RFC 7723", true},
	{netip.MustParsePrefix("2001:1::2/128"), "Traversal Using Relays around NAT Anycast", "RFC 8155", true},
	{netip.MustParsePrefix("2001:1::3/128"), "DNS-SD Service Registration Protocol Anycast", "RFC 9665", true},
	{netip.MustParsePrefix("2001:2::/48"), "Benchmarking", "RFC 5180, RFC Errata 1752", false},
	{netip.MustParsePrefix("2001:3::/32"), "AMT", "RFC 7450", true},
	{netip.MustParsePrefix("2001:4:112::/48"), "AS112-v6", "RFC 7535", true},
	{netip.MustParsePrefix("2001:10::/28"), "Deprecated (previously ORCHID)", "RFC 4843", false},
	{netip.MustParsePrefix("2001:20::/28"), "ORCHIDv2", "RFC 7343", true},
	{netip.MustParsePrefix("2001:30::/28"), "Drone Remote ID Protocol Entity Tags (DETs) Prefix", "RFC 9374", true},
	{netip.MustParsePrefix("2001:db8::/32"), "Documentation", "RFC 3849", false},
	{netip.MustParsePrefix("2002::/16"), "6to4", "RFC 3056", false},
	{netip.MustParsePrefix("2620:4f:8000::/48"), "Direct Delegation AS112 Service", "RFC 7534", true},
	{netip.MustParsePrefix("3fff::/20"), "Documentation", "RFC 9637", false},
	{netip.MustParsePrefix("5f00::/16"), "Segment Routing (SRv6) SIDs", "RFC 9602", false},
	{netip.MustParsePrefix("fc00::/7"), "Unique-Local", "RFC 4193, RFC 8190", false},
	{netip.MustParsePrefix("fe80::/10"), "Link-Local Unicast", "RFC 4291", false},
	// Not in the registry; Boulder adds it.
	{netip.MustParsePrefix("ff00::/8"), "Multicast", "RFC 4291", false},
}

// ReservedReason says why a is not a public unicast address, naming the IANA special-purpose
// registry entry ("127.0.0.0/8 loopback (RFC 1122)"), or "" when it is public. allow lists
// prefixes the user declared public (--allow-address, hermetic test universes on loopback).
//
// The decision is Boulder's (iana.IsReservedAddr): an address inside any
// registry entry is dropped before Let's Encrypt connects to it. The reason
// names the most specific entry. An IPv4-mapped IPv6 address (::ffff:a.b.c.d)
// is reserved as such, the way Boulder sees an AAAA record holding one; an A
// record's address must therefore be passed in its 4-byte form (Unmap it).
// A zone (fe80::1%eth0) is ignored. An invalid (zero) Addr is reported as such.
// allow is matched against a and against a.Unmap().
func ReservedReason(a netip.Addr, allow []netip.Prefix) string {
	if !a.IsValid() {
		return "not a valid IP address"
	}
	a = a.WithZone("")
	for _, p := range allow {
		if p.Contains(a) || p.Contains(a.Unmap()) {
			return ""
		}
	}
	best := -1
	for i, e := range specialPurposeRegistry {
		if e.prefix.Contains(a) && (best < 0 || e.prefix.Bits() > specialPurposeRegistry[best].prefix.Bits()) {
			best = i
		}
	}
	if best < 0 {
		return ""
	}
	e := specialPurposeRegistry[best]
	reason := fmt.Sprintf("%s %s (%s)", e.prefix, e.name, e.rfc)
	if e.global {
		reason += "; IANA lists it as globally reachable, but Let's Encrypt refuses every special-purpose block"
	}
	if a.Is4In6() {
		if inner := ReservedReason(a.Unmap(), nil); inner != "" {
			reason += "; the embedded IPv4 address is in " + inner
		} else {
			reason += fmt.Sprintf("; publish the IPv4 address %s in an A record instead", a.Unmap())
		}
	}
	return reason
}
