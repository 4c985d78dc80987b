package special

import (
	"net/netip"
	"strings"
	"testing"
)

func TestReservedReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc  string
		addr  string
		allow []string
		want  string // prefix of the reason; "" = public
	}{
		// IPv4, each block's first and last address and its neighbours.
		{desc: "0.0.0.0 is this host", addr: "0.0.0.0", want: "0.0.0.0/32 \"This host on this network\""},
		{desc: "0.0.0.1 is this network", addr: "0.0.0.1", want: "0.0.0.0/8 \"This network\" (RFC 791"},
		{desc: "last of 0/8", addr: "0.255.255.255", want: "0.0.0.0/8"},
		{desc: "after 0/8", addr: "1.0.0.0"},
		{desc: "before 10/8", addr: "9.255.255.255"},
		{desc: "first of 10/8", addr: "10.0.0.0", want: "10.0.0.0/8 Private-Use (RFC 1918)"},
		{desc: "last of 10/8", addr: "10.255.255.255", want: "10.0.0.0/8 Private-Use"},
		{desc: "after 10/8", addr: "11.0.0.0"},
		{desc: "before CGNAT", addr: "100.63.255.255"},
		{desc: "first of CGNAT", addr: "100.64.0.0", want: "100.64.0.0/10 Shared Address Space (RFC 6598)"},
		{desc: "last of CGNAT", addr: "100.127.255.255", want: "100.64.0.0/10"},
		{desc: "after CGNAT", addr: "100.128.0.0"},
		{desc: "before loopback", addr: "126.255.255.255"},
		{desc: "first of loopback", addr: "127.0.0.0", want: "127.0.0.0/8 Loopback (RFC 1122"},
		{desc: "last of loopback", addr: "127.255.255.255", want: "127.0.0.0/8 Loopback"},
		{desc: "after loopback", addr: "128.0.0.0"},
		{desc: "before link local", addr: "169.253.255.255"},
		{desc: "first of link local", addr: "169.254.0.0", want: "169.254.0.0/16 Link Local (RFC 3927)"},
		{desc: "last of link local", addr: "169.254.255.255", want: "169.254.0.0/16"},
		{desc: "after link local", addr: "169.255.0.0"},
		{desc: "before 172.16/12", addr: "172.15.255.255"},
		{desc: "first of 172.16/12", addr: "172.16.0.0", want: "172.16.0.0/12 Private-Use"},
		{desc: "last of 172.16/12", addr: "172.31.255.255", want: "172.16.0.0/12"},
		{desc: "after 172.16/12", addr: "172.32.0.0"},
		{desc: "before 192.0.0/24", addr: "191.255.255.255"},
		{desc: "first of 192.0.0/24 is in the /29", addr: "192.0.0.0", want: "192.0.0.0/29 IPv4 Service Continuity Prefix"},
		{desc: "last of the /29", addr: "192.0.0.7", want: "192.0.0.0/29"},
		{desc: "dummy address", addr: "192.0.0.8", want: "192.0.0.8/32 IPv4 dummy address (RFC 7600)"},
		{desc: "PCP anycast is globally reachable yet refused", addr: "192.0.0.9", want: "192.0.0.9/32 Port Control Protocol Anycast (RFC 7723); IANA lists it as globally reachable"},
		{desc: "TURN anycast", addr: "192.0.0.10", want: "192.0.0.10/32 Traversal Using Relays"},
		{desc: "rest of 192.0.0/24", addr: "192.0.0.11", want: "192.0.0.0/24 IETF Protocol Assignments"},
		{desc: "NAT64 discovery .170", addr: "192.0.0.170", want: "192.0.0.170/32 NAT64/DNS64 Discovery"},
		{desc: "NAT64 discovery .171", addr: "192.0.0.171", want: "192.0.0.171/32 NAT64/DNS64 Discovery"},
		{desc: "last of 192.0.0/24", addr: "192.0.0.255", want: "192.0.0.0/24"},
		{desc: "after 192.0.0/24", addr: "192.0.1.0"},
		{desc: "TEST-NET-1 first", addr: "192.0.2.0", want: "192.0.2.0/24 Documentation (TEST-NET-1)"},
		{desc: "TEST-NET-1 last", addr: "192.0.2.255", want: "192.0.2.0/24"},
		{desc: "after TEST-NET-1", addr: "192.0.3.0"},
		{desc: "AS112-v4", addr: "192.31.196.1", want: "192.31.196.0/24 AS112-v4"},
		{desc: "AMT", addr: "192.52.193.255", want: "192.52.193.0/24 AMT"},
		{desc: "before 6to4 relay", addr: "192.88.98.255"},
		{desc: "6to4 relay anycast first", addr: "192.88.99.0", want: "192.88.99.0/24 Deprecated (6to4 Relay Anycast)"},
		{desc: "6to4 relay anycast last", addr: "192.88.99.255", want: "192.88.99.0/24"},
		{desc: "after 6to4 relay", addr: "192.88.100.0"},
		{desc: "before 192.168/16", addr: "192.167.255.255"},
		{desc: "first of 192.168/16", addr: "192.168.0.0", want: "192.168.0.0/16 Private-Use"},
		{desc: "last of 192.168/16", addr: "192.168.255.255", want: "192.168.0.0/16"},
		{desc: "after 192.168/16", addr: "192.169.0.0"},
		{desc: "AS112 direct delegation", addr: "192.175.48.53", want: "192.175.48.0/24 Direct Delegation AS112 Service"},
		{desc: "before benchmarking", addr: "198.17.255.255"},
		{desc: "first of benchmarking", addr: "198.18.0.0", want: "198.18.0.0/15 Benchmarking (RFC 2544)"},
		{desc: "last of benchmarking", addr: "198.19.255.255", want: "198.18.0.0/15"},
		{desc: "after benchmarking", addr: "198.20.0.0"},
		{desc: "before TEST-NET-2", addr: "198.51.99.255"},
		{desc: "TEST-NET-2", addr: "198.51.100.0", want: "198.51.100.0/24 Documentation (TEST-NET-2)"},
		{desc: "after TEST-NET-2", addr: "198.51.101.0"},
		{desc: "before TEST-NET-3", addr: "203.0.112.255"},
		{desc: "TEST-NET-3", addr: "203.0.113.255", want: "203.0.113.0/24 Documentation (TEST-NET-3)"},
		{desc: "after TEST-NET-3", addr: "203.0.114.0"},
		{desc: "before multicast", addr: "223.255.255.255"},
		{desc: "first multicast", addr: "224.0.0.0", want: "224.0.0.0/4 Multicast"},
		{desc: "last multicast", addr: "239.255.255.255", want: "224.0.0.0/4 Multicast"},
		{desc: "first of 240/4", addr: "240.0.0.0", want: "240.0.0.0/4 Reserved"},
		{desc: "last but one of 240/4", addr: "255.255.255.254", want: "240.0.0.0/4 Reserved"},
		{desc: "limited broadcast", addr: "255.255.255.255", want: "255.255.255.255/32 Limited Broadcast"},
		{desc: "public v4", addr: "8.8.8.8"},
		{desc: "Let's Encrypt's own address range is public", addr: "64.112.117.254"},

		// IPv6.
		{desc: "unspecified", addr: "::", want: "::/128 Unspecified Address"},
		{desc: "loopback", addr: "::1", want: "::1/128 Loopback Address (RFC 4291)"},
		{desc: "::2 is in no registry entry", addr: "::2"},
		{desc: "before v4-mapped", addr: "::fffe:ffff:ffff"},
		{desc: "v4-mapped public v4 is still refused", addr: "::ffff:8.8.8.8", want: "::ffff:0.0.0.0/96 IPv4-mapped Address (RFC 4291); publish the IPv4 address 8.8.8.8"},
		{desc: "v4-mapped private v4 names both", addr: "::ffff:10.1.2.3", want: "::ffff:0.0.0.0/96 IPv4-mapped Address (RFC 4291); the embedded IPv4 address is in 10.0.0.0/8 Private-Use"},
		{desc: "NAT64 well-known prefix", addr: "64:ff9b::808:808", want: "64:ff9b::/96 IPv4-IPv6 Translation (RFC 6052)"},
		{desc: "just past the NAT64 /96", addr: "64:ff9b::1:0:0:0"},
		{desc: "local-use NAT64 first", addr: "64:ff9b:1::", want: "64:ff9b:1::/48 IPv4-IPv6 Translation (local use)"},
		{desc: "local-use NAT64 last", addr: "64:ff9b:1:ffff:ffff:ffff:ffff:ffff", want: "64:ff9b:1::/48"},
		{desc: "after local-use NAT64", addr: "64:ff9b:2::"},
		{desc: "discard-only", addr: "100::", want: "100::/64 Discard-Only Address Block (RFC 6666)"},
		{desc: "discard-only last", addr: "100::ffff:ffff:ffff:ffff", want: "100::/64"},
		{desc: "dummy IPv6 prefix", addr: "100:0:0:1::1", want: "100:0:0:1::/64 Dummy IPv6 Prefix (RFC 9780)"},
		{desc: "after dummy prefix", addr: "100:0:0:2::"},
		{desc: "Teredo", addr: "2001::1", want: "2001::/32 TEREDO"},
		{desc: "PCP anycast v6", addr: "2001:1::1", want: "2001:1::1/128 Port Control Protocol Anycast"},
		{desc: "TURN anycast v6", addr: "2001:1::2", want: "2001:1::2/128 Traversal Using Relays"},
		{desc: "SRP anycast", addr: "2001:1::3", want: "2001:1::3/128 DNS-SD Service Registration Protocol Anycast"},
		{desc: "unlisted address inside 2001::/23 is refused", addr: "2001:1::4", want: "2001::/23 IETF Protocol Assignments (RFC 2928)"},
		{desc: "benchmarking v6", addr: "2001:2::1", want: "2001:2::/48 Benchmarking"},
		{desc: "AMT v6", addr: "2001:3::1", want: "2001:3::/32 AMT"},
		{desc: "AS112-v6", addr: "2001:4:112::1", want: "2001:4:112::/48 AS112-v6"},
		{desc: "ORCHID deprecated", addr: "2001:10::1", want: "2001:10::/28 Deprecated (previously ORCHID)"},
		{desc: "ORCHIDv2", addr: "2001:20::1", want: "2001:20::/28 ORCHIDv2"},
		{desc: "DETs", addr: "2001:30::1", want: "2001:30::/28 Drone Remote ID"},
		{desc: "last of 2001::/23", addr: "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", want: "2001::/23"},
		{desc: "after 2001::/23", addr: "2001:200::1"},
		{desc: "before documentation", addr: "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"},
		{desc: "documentation", addr: "2001:db8::1", want: "2001:db8::/32 Documentation (RFC 3849)"},
		{desc: "after documentation", addr: "2001:db9::"},
		{desc: "6to4 is refused, as Boulder does", addr: "2002:c000:204::1", want: "2002::/16 6to4 (RFC 3056)"},
		{desc: "last of 6to4", addr: "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "2002::/16"},
		{desc: "after 6to4", addr: "2003::1"},
		{desc: "AS112 direct delegation v6", addr: "2620:4f:8000::53", want: "2620:4f:8000::/48 Direct Delegation AS112 Service"},
		{desc: "documentation 3fff::/20 first", addr: "3fff::", want: "3fff::/20 Documentation (RFC 9637)"},
		{desc: "documentation 3fff::/20 last", addr: "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", want: "3fff::/20"},
		{desc: "after 3fff::/20", addr: "3fff:1000::"},
		{desc: "before SRv6", addr: "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{desc: "SRv6 SIDs", addr: "5f00::1", want: "5f00::/16 Segment Routing (SRv6) SIDs (RFC 9602)"},
		{desc: "after SRv6", addr: "5f01::"},
		{desc: "before ULA", addr: "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"},
		{desc: "ULA first", addr: "fc00::", want: "fc00::/7 Unique-Local"},
		{desc: "ULA last", addr: "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "fc00::/7"},
		{desc: "fe00:: is in no registry entry", addr: "fe00::"},
		{desc: "link-local first", addr: "fe80::", want: "fe80::/10 Link-Local Unicast"},
		{desc: "link-local with a zone", addr: "fe80::1%eth0", want: "fe80::/10 Link-Local Unicast"},
		{desc: "link-local last", addr: "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "fe80::/10"},
		{desc: "deprecated site-local fec0::/10 is in no registry entry", addr: "fec0::1"},
		{desc: "multicast v6 first", addr: "ff00::", want: "ff00::/8 Multicast"},
		{desc: "multicast v6 last", addr: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", want: "ff00::/8 Multicast"},
		{desc: "public v6", addr: "2606:4700:4700::1111"},

		// The allow list.
		{desc: "loopback allowed for a hermetic universe", addr: "127.0.0.53", allow: []string{"127.0.0.0/8"}},
		{desc: "allow list that does not cover it", addr: "127.0.0.53", allow: []string{"10.0.0.0/8"}, want: "127.0.0.0/8 Loopback"},
		{desc: "v6 loopback allowed", addr: "::1", allow: []string{"127.0.0.0/8", "::1/128"}},
		{desc: "v4-mapped form of an allowed v4", addr: "::ffff:127.0.0.1", allow: []string{"127.0.0.0/8"}},
		{desc: "allow prefix of the other family does not match", addr: "::1", allow: []string{"127.0.0.0/8"}, want: "::1/128"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			a := netip.MustParseAddr(tc.addr)
			var allow []netip.Prefix
			for _, p := range tc.allow {
				allow = append(allow, netip.MustParsePrefix(p))
			}
			got := ReservedReason(a, allow)
			if tc.want == "" {
				if got != "" {
					t.Fatalf("ReservedReason(%s) = %q, want public", tc.addr, got)
				}
				return
			}
			if !strings.HasPrefix(got, tc.want) {
				t.Fatalf("ReservedReason(%s) = %q, want it to start with %q", tc.addr, got, tc.want)
			}
		})
	}
}

func TestReservedReasonInvalid(t *testing.T) {
	t.Parallel()
	if got := ReservedReason(netip.Addr{}, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}); got == "" {
		t.Fatal("ReservedReason(zero Addr) is empty, want it called invalid")
	}
}

// TestReservedRegistryConsistent guards the table: every prefix is in
// canonical form (a typo such as 10.0.0.1/8 would silently widen or move a
// block) and every entry names its RFC.
func TestReservedRegistryConsistent(t *testing.T) {
	t.Parallel()
	seen := map[netip.Prefix]bool{}
	for _, e := range specialPurposeRegistry {
		if e.prefix != e.prefix.Masked() {
			t.Errorf("%s is not canonical (want %s)", e.prefix, e.prefix.Masked())
		}
		if seen[e.prefix] {
			t.Errorf("%s is listed twice", e.prefix)
		}
		seen[e.prefix] = true
		if e.name == "" || !strings.HasPrefix(e.rfc, "RFC ") {
			t.Errorf("%s: name %q rfc %q", e.prefix, e.name, e.rfc)
		}
		if got := ReservedReason(e.prefix.Addr(), nil); got == "" {
			t.Errorf("first address of %s is not reserved", e.prefix)
		}
	}
}
