package testenv

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/dnsserver"
	"github.com/miekg/dns"
)

// Addresses the catalogue's names point at. Nothing in the DNS half listens
// there; the web half of the universe serves HTTP-01 on them.
const (
	WebAddr  = "127.80.0.1" // A of every name meant to be reachable
	WebAddr6 = "::1"        // AAAA of the dual-stack healthy name
	// SplitAddr is what the cluster resolver answers for the split-horizon
	// name instead of WebAddr.
	SplitAddr = "127.80.0.99"
)

// Scenario is one situation of the catalogue: a name to diagnose in the
// universe and what a correct diagnosis reports.
type Scenario struct {
	Name        string   // short id, e.g. "dnssec-expired"
	Domain      string   // the name to diagnose
	Description string   // one line for the demo
	Args        []string // extra diagnose flags: --challenge dns-01, --expect-txt V, --account-uri U, ...
	Healthy     bool     // no Error/Fatal finding expected
	Expect      []Expectation
	// UseClusterResolver adds the cluster (split-horizon) resolver as a
	// second --resolver.
	UseClusterResolver bool
	// Tentative marks expectations testenv chose for hostile servers where
	// another classification is defensible; dnscheck may settle it.
	Tentative bool
	// Vantages adds the universe's vantages (Universe.Vantages) as
	// --vantage flags: the scenario's faults differ per vantage.
	Vantages bool
	// TLS turns on the tls kind (--tls, with the universe's TLS roots):
	// the scenario stages what its names serve on the HTTPS port.
	TLS bool
	// Absent are codes a correct diagnosis must not report, at any
	// severity or vantage: a finding that would send the user the wrong
	// way (mpic.quorum_failed when every perspective fails alike).
	Absent []reports.Code
	// HTTPOnHTTPSPort validates HTTP-01 on the universe's HTTPS port
	// (--http-port), where the scenario's address speaks plain HTTP and the
	// one IPv6 server (::1, HTTP port only) has no listener: the way to
	// stage an AAAA that refuses the first request while IPv4 answers.
	HTTPOnHTTPSPort bool
}

// Expectation is one finding a correct diagnosis must contain.
type Expectation struct {
	Code           reports.Code
	Severity       reports.Severity
	DetailContains string // e.g. the server host or address that misbehaves
	// Vantage, when set, is the vantage the finding must name
	// (reports.Finding.Vantage); "" matches any.
	Vantage string
}

// Token returns the dns-01 TXT value the catalogue uses for a scenario: a
// base64url SHA-256 like the real thing.
func Token(scenario string) string {
	sum := sha256.Sum256([]byte("acmediag-testenv/" + scenario))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// entry is a scenario with the DNS it needs.
type entry struct {
	s           Scenario
	zones       []zoneSpec
	servers     []serverSpec
	clusterData []string
	sites       []siteSpec
	drops       []dropSpec
	v6          map[string]webBehaviour // Host → what the IPv6 server does for it
	webAddrs    []string
}

// cat builds the catalogue, handing out server addresses in order so the
// universe is the same on every run.
type cat struct {
	next    int
	entries []entry
	// The web half: addresses handed out, the shared web zone's records,
	// and zones/servers that belong to no single scenario.
	nextWeb      int
	webRecords   strings.Builder
	extraZones   []zoneSpec
	extraServers []serverSpec
}

func (c *cat) addr() string {
	c.next++
	return fmt.Sprintf("127.53.%d.%d", 2+c.next/250, c.next%250+1)
}

// ns returns n servers ns1..nsN.<zone> serving zone, faults given per index.
func (c *cat) ns(zone string, n int, faults map[int][]dnsserver.Fault) []serverSpec {
	var out []serverSpec
	for i := 1; i <= n; i++ {
		out = append(out, serverSpec{
			name:   fmt.Sprintf("%s-ns%d", strings.TrimSuffix(zone, "."), i),
			host:   fmt.Sprintf("ns%d.%s", i, zone),
			addrs:  []string{c.addr()},
			zones:  []string{zone},
			faults: faults[i],
		})
	}
	return out
}

func (c *cat) add(e entry) { c.entries = append(c.entries, e) }

// simple adds a scenario with one zone served by two healthy servers.
func (c *cat) simple(s Scenario, z zoneSpec) {
	c.add(entry{s: s, zones: []zoneSpec{z}, servers: c.ns(z.origin, 2, nil)})
}

func exp(code reports.Code, sev reports.Severity, detail string) Expectation {
	return Expectation{Code: code, Severity: sev, DetailContains: detail}
}

var (
	dns01 = []string{"--challenge", "dns-01"}
	web   = "www A " + WebAddr + "\n"
)

func dns01Args(scenario string) []string {
	return append(append([]string{}, dns01...), "--expect-txt", Token(scenario))
}

func txt(owner, value string) string { return fmt.Sprintf("%s 60 TXT %q\n", owner, value) }

func buildCatalogue() *cat {
	c := &cat{}
	all := func(k dnsserver.FaultKind) []dnsserver.Fault { return []dnsserver.Fault{{Kind: k}} }

	// ---- Healthy ----
	c.simple(Scenario{Name: "healthy-unsigned", Domain: "www.healthy-unsigned.com",
		Description: "unsigned zone, two name servers, A and AAAA", Healthy: true},
		zoneSpec{origin: "healthy-unsigned.com.", text: web + "www AAAA " + WebAddr6 + "\n"})
	c.simple(Scenario{Name: "healthy-signed", Domain: "www.healthy-signed.com",
		Description: "DNSSEC-signed zone chained to the root", Healthy: true},
		zoneSpec{origin: "healthy-signed.com.", text: web, signed: true})
	c.add(entry{
		s: Scenario{Name: "healthy-subzone", Domain: "app.sub.delegated.com",
			Description: "name in a delegated, signed sub-zone (three signed cuts)", Healthy: true},
		zones: []zoneSpec{
			{origin: "delegated.com.", text: web, signed: true},
			{origin: "sub.delegated.com.", text: "app A " + WebAddr + "\n", signed: true},
		},
		servers: append(c.ns("delegated.com.", 2, nil), c.ns("sub.delegated.com.", 2, nil)...),
	})
	c.add(entry{
		s: Scenario{Name: "healthy-cname-cross-tld", Domain: "www.cname-src.com",
			Description: "CNAME into a zone under another TLD", Healthy: true},
		zones: []zoneSpec{
			{origin: "cname-src.com.", text: "www CNAME www.cname-dst.org.\n", signed: true},
			{origin: "cname-dst.org.", text: web},
		},
		servers: append(c.ns("cname-src.com.", 2, nil), c.ns("cname-dst.org.", 2, nil)...),
	})
	c.add(entry{
		s: Scenario{Name: "healthy-ipv6-only-ns", Domain: "www.v6only.net",
			Description: "the zone's only name server is reachable over IPv6 only ([::1])", Healthy: true},
		zones: []zoneSpec{{origin: "v6only.net.", text: web}},
		servers: []serverSpec{{name: "v6only.net-ns1", host: "ns1.v6only.net.", addrs: []string{"::1"},
			zones: []string{"v6only.net."}}},
	})
	c.simple(Scenario{Name: "healthy-dns01", Domain: "www.dns01-ok.com",
		Description: "dns-01 record present at every server", Healthy: true, Args: dns01Args("healthy-dns01")},
		zoneSpec{origin: "dns01-ok.com.", signed: true, text: web + txt("_acme-challenge.www", Token("healthy-dns01"))})
	c.add(entry{
		s: Scenario{Name: "healthy-dns01-cname", Domain: "www.dns01-cname.com",
			Description: "_acme-challenge is a CNAME into a validation zone holding the TXT", Healthy: true,
			Args: dns01Args("healthy-dns01-cname")},
		zones: []zoneSpec{
			{origin: "dns01-cname.com.", text: web + "_acme-challenge.www CNAME www-dns01-cname.acme-delegate.net.\n"},
			{origin: "acme-delegate.net.", signed: true, text: txt("www-dns01-cname", Token("healthy-dns01-cname"))},
		},
		servers: append(c.ns("dns01-cname.com.", 2, nil), c.ns("acme-delegate.net.", 2, nil)...),
	})
	c.simple(Scenario{Name: "healthy-caa-parent", Domain: "www.caa-ok.com",
		Description: `CAA 0 issue "letsencrypt.org" on the parent name`, Healthy: true},
		zoneSpec{origin: "caa-ok.com.", text: web + "@ CAA 0 issue \"letsencrypt.org\"\n"})

	// ---- Names ----
	c.simple(Scenario{Name: "wildcard-http01", Domain: "*.wildcard.com",
		Description: "a wildcard name asked for with http-01", Args: []string{"--challenge", "http-01"},
		Expect: []Expectation{exp(reports.CodeNameWildcardNeedsDNS01, reports.Fatal, "")}},
		zoneSpec{origin: "wildcard.com.", text: "* A " + WebAddr + "\n"})

	// ---- DNS ----
	c.simple(Scenario{Name: "nxdomain", Domain: "missing.nxdomain.com",
		Description: "the name does not exist in a signed zone",
		Expect:      []Expectation{exp(reports.CodeDNSNXDomain, reports.Fatal, "")}},
		zoneSpec{origin: "nxdomain.com.", text: web, signed: true})
	c.add(entry{
		s: Scenario{Name: "servfail", Domain: "www.servfail.com", Description: "every name server answers SERVFAIL",
			Expect: []Expectation{exp(reports.CodeDNSServFail, reports.Fatal, "")}},
		zones:   []zoneSpec{{origin: "servfail.com.", text: web}},
		servers: c.ns("servfail.com.", 2, map[int][]dnsserver.Fault{1: all(dnsserver.FaultServFail), 2: all(dnsserver.FaultServFail)}),
	})
	c.add(entry{
		s: Scenario{Name: "timeout", Domain: "www.timeout.com", Description: "every name server drops every query",
			Expect: []Expectation{exp(reports.CodeDNSTimeout, reports.Error, "")}},
		zones:   []zoneSpec{{origin: "timeout.com.", text: web}},
		servers: c.ns("timeout.com.", 2, map[int][]dnsserver.Fault{1: all(dnsserver.FaultDrop), 2: all(dnsserver.FaultDrop)}),
	})
	{
		srv := c.ns("lame-refused.com.", 2, nil)
		srv[1].zones = nil // listed by the parent, knows nothing of the zone: REFUSED
		c.add(entry{
			s: Scenario{Name: "lame-refused", Domain: "www.lame-refused.com",
				Description: "one delegated name server does not serve the zone (REFUSED)",
				Expect:      []Expectation{exp(reports.CodeDNSLameDelegation, reports.Error, "ns2.lame-refused.com")}},
			zones: []zoneSpec{{origin: "lame-refused.com.", text: web,
				parentNS: []string{"ns1.lame-refused.com.", "ns2.lame-refused.com."}}},
			servers: srv,
		})
	}
	c.add(entry{
		s: Scenario{Name: "lame-nsset", Domain: "www.lame-nsset.com",
			Description: "the parent's NS set differs from the zone's own NS set",
			Expect:      []Expectation{exp(reports.CodeDNSLameDelegation, reports.Error, "ns3.lame-nsset.com")}},
		zones: []zoneSpec{{origin: "lame-nsset.com.", parentNS: []string{"ns1.lame-nsset.com.", "ns2.lame-nsset.com."},
			text: web + "@ NS ns1.lame-nsset.com.\n@ NS ns3.lame-nsset.com.\nns3 A 127.53.254.254\n"}},
		servers: c.ns("lame-nsset.com.", 2, nil),
	})
	c.add(entry{
		s: Scenario{Name: "ns-unreachable", Domain: "www.unreach.com", Description: "one of two name servers drops every query",
			Expect: []Expectation{exp(reports.CodeDNSNSUnreachable, reports.Warning, "ns2.unreach.com")}},
		zones:   []zoneSpec{{origin: "unreach.com.", text: web}},
		servers: c.ns("unreach.com.", 2, map[int][]dnsserver.Fault{2: all(dnsserver.FaultDrop)}),
	})
	{
		srv := c.ns("stale.com.", 2, nil)
		srv[1].stale = map[string]string{"stale.com.": "@ SOA ns1.stale.com. hostmaster.stale.com. 1000 3600 900 604800 300\n" + web}
		c.add(entry{
			s: Scenario{Name: "serial-mismatch", Domain: "www.stale.com", Description: "a secondary serves an older serial",
				Expect: []Expectation{exp(reports.CodeDNSSerialMismatch, reports.Warning, "ns2.stale.com")}},
			zones:   []zoneSpec{{origin: "stale.com.", text: "@ SOA ns1.stale.com. hostmaster.stale.com. 1001 3600 900 604800 300\n" + web + "new A " + WebAddr + "\n"}},
			servers: srv,
		})
	}
	c.simple(Scenario{Name: "dnssec-expired", Domain: "www.dnssec-expired.com",
		Description: "the RRSIG over the name's A record has expired",
		Expect:      []Expectation{exp(reports.CodeDNSDNSSECBogus, reports.Fatal, "expired")}},
		zoneSpec{origin: "dnssec-expired.com.", text: web, signed: true,
			sigFaults: []dnsserver.SigFault{{Kind: dnsserver.SigExpired, Name: "www.dnssec-expired.com.", Type: dns.TypeA}}})
	c.simple(Scenario{Name: "dnssec-ds-mismatch", Domain: "www.ds-mismatch.com",
		Description: "the parent's DS matches no DNSKEY of the zone",
		Expect:      []Expectation{exp(reports.CodeDNSDNSSECBogus, reports.Fatal, "ds-mismatch.com")}},
		zoneSpec{origin: "ds-mismatch.com.", text: web, signed: true, dsMismatch: true})
	c.simple(Scenario{Name: "no-address", Domain: "www.noaddr.com", Description: "the name has a TXT but no A or AAAA",
		Expect: []Expectation{exp(reports.CodeDNSNoAddress, reports.Fatal, "")}},
		zoneSpec{origin: "noaddr.com.", text: txt("www", "nothing to see")})
	c.simple(Scenario{Name: "reserved-address", Domain: "www.reserved.com", Description: "the name's A is private (10.0.0.1)",
		Expect: []Expectation{exp(reports.CodeDNSReservedAddress, reports.Fatal, "10.0.0.1")}},
		zoneSpec{origin: "reserved.com.", text: "www A 10.0.0.1\n"})
	{
		var big strings.Builder
		for i := 1; i <= 120; i++ {
			fmt.Fprintf(&big, "www A 127.80.1.%d\n", i)
		}
		c.add(entry{
			s: Scenario{Name: "transport-tcp", Domain: "www.tcpfail.com",
				Description: "a large answer is truncated over UDP and the server refuses TCP",
				Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Error, "ns1.tcpfail.com")}},
			zones:   []zoneSpec{{origin: "tcpfail.com.", text: big.String()}},
			servers: c.ns("tcpfail.com.", 1, map[int][]dnsserver.Fault{1: all(dnsserver.FaultNoTCP)}),
		})
	}
	c.add(entry{
		// Unbound falls back: it asks every server without 0x20 and takes
		// the answer when they agree.
		s: Scenario{Name: "transport-0x20", Domain: "www.caps.com", Healthy: true,
			Description: "one of two name servers does not preserve the query's 0x20 case",
			Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns1.caps.com")}},
		zones:   []zoneSpec{{origin: "caps.com.", text: web}},
		servers: c.ns("caps.com.", 2, map[int][]dnsserver.Fault{1: all(dnsserver.FaultWrong0x20)}),
	})
	c.add(entry{
		// Unbound retries without EDNS; the zone is unsigned, so nothing is lost.
		s: Scenario{Name: "transport-edns", Domain: "www.edns.com", Healthy: true,
			Description: "one of two name servers of an unsigned zone answers FORMERR to EDNS queries",
			Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns1.edns.com")}},
		zones:   []zoneSpec{{origin: "edns.com.", text: web}},
		servers: c.ns("edns.com.", 2, map[int][]dnsserver.Fault{1: all(dnsserver.FaultEDNSIntolerant)}),
	})
	c.add(entry{
		s: Scenario{Name: "split-horizon", Domain: "www.split.com", UseClusterResolver: true,
			Description: "the in-cluster resolver answers a different A than the public view",
			Expect:      []Expectation{exp(reports.CodeDNSSplitHorizon, reports.Warning, SplitAddr)}},
		zones:       []zoneSpec{{origin: "split.com.", text: web}},
		servers:     c.ns("split.com.", 2, nil),
		clusterData: []string{"www.split.com. 60 IN A " + SplitAddr},
	})
	c.simple(Scenario{Name: "negative-ttl-high", Domain: "www.negttl.com", Description: "SOA negative TTL of one day",
		Expect: []Expectation{exp(reports.CodeDNSNegativeTTLHigh, reports.Warning, "86400")}},
		zoneSpec{origin: "negttl.com.", text: "@ 86400 SOA ns1.negttl.com. hostmaster.negttl.com. 1 3600 900 604800 86400\n" + web})

	// ---- DNS-01 ----
	c.simple(Scenario{Name: "dns01-txt-missing", Domain: "www.txtmissing.com", Args: dns01Args("dns01-txt-missing"),
		Description: "no TXT at _acme-challenge",
		Expect:      []Expectation{exp(reports.CodeDNS01TXTMissing, reports.Error, "")}},
		zoneSpec{origin: "txtmissing.com.", text: web})
	{
		srv := c.ns("txtprop.com.", 2, nil)
		srv[1].stale = map[string]string{"txtprop.com.": "@ SOA ns1.txtprop.com. hostmaster.txtprop.com. 1000 3600 900 604800 300\n" + web}
		c.add(entry{
			s: Scenario{Name: "dns01-txt-not-propagated", Domain: "www.txtprop.com", Args: dns01Args("dns01-txt-not-propagated"),
				Description: "a lagging secondary lacks the new TXT",
				Expect:      []Expectation{exp(reports.CodeDNS01TXTNotPropagated, reports.Error, "ns2.txtprop.com")}},
			zones: []zoneSpec{{origin: "txtprop.com.", text: "@ SOA ns1.txtprop.com. hostmaster.txtprop.com. 1001 3600 900 604800 300\n" +
				web + txt("_acme-challenge.www", Token("dns01-txt-not-propagated"))}},
			servers: srv,
		})
	}
	c.simple(Scenario{Name: "dns01-txt-wrong-value", Domain: "www.txtwrong.com", Args: dns01Args("dns01-txt-wrong-value"),
		Description: "the TXT holds a stale token",
		Expect:      []Expectation{exp(reports.CodeDNS01TXTWrongValue, reports.Error, Token("stale-token"))}},
		zoneSpec{origin: "txtwrong.com.", text: web + txt("_acme-challenge.www", Token("stale-token"))})
	c.simple(Scenario{Name: "dns01-cname-dangling", Domain: "www.cnamedangle.com", Args: dns01Args("dns01-cname-dangling"),
		Description: "_acme-challenge is a CNAME to a name that does not exist",
		Expect:      []Expectation{exp(reports.CodeDNS01CNAMEDangling, reports.Fatal, "gone.acme-delegate.net")}},
		zoneSpec{origin: "cnamedangle.com.", text: web + "_acme-challenge.www CNAME gone.acme-delegate.net.\n"})
	c.add(entry{
		s: Scenario{Name: "dns01-wrong-zone", Domain: "app.wrongzone.com", Args: dns01Args("dns01-wrong-zone"),
			Description: "the TXT was written in the parent zone, under the app. zone cut (occluded; parent allows AXFR)",
			Expect:      []Expectation{exp(reports.CodeDNS01WrongZone, reports.Error, "wrongzone.com")}},
		zones: []zoneSpec{
			{origin: "wrongzone.com.", allowAXFR: true, text: web + txt("_acme-challenge.app", Token("dns01-wrong-zone"))},
			{origin: "app.wrongzone.com.", text: "@ A " + WebAddr + "\n"},
		},
		servers: append(c.ns("wrongzone.com.", 2, nil), c.ns("app.wrongzone.com.", 2, nil)...),
	})
	c.simple(Scenario{Name: "dns01-doubled-label", Domain: "www.doubled.com", Args: dns01Args("dns01-doubled-label"),
		Description: "the TXT sits at _acme-challenge.www.doubled.com.doubled.com (relative name entered as absolute)",
		Expect:      []Expectation{exp(reports.CodeDNS01DoubledLabel, reports.Warning, "doubled.com.doubled.com")}},
		zoneSpec{origin: "doubled.com.", text: web + txt("_acme-challenge.www.doubled.com", Token("dns01-doubled-label"))})
	{
		var t strings.Builder
		for i := range 40 {
			t.WriteString(txt("_acme-challenge.www", Token(fmt.Sprintf("old-%d", i))))
		}
		t.WriteString(txt("_acme-challenge.www", Token("dns01-too-many-txt")))
		c.simple(Scenario{Name: "dns01-too-many-txt", Domain: "www.manytxt.com", Args: dns01Args("dns01-too-many-txt"),
			Description: "41 TXT records at _acme-challenge (40 stale, never cleaned up)",
			Expect:      []Expectation{exp(reports.CodeDNS01TooManyTXT, reports.Warning, "")}, Healthy: true},
			zoneSpec{origin: "manytxt.com.", text: web + t.String()})
	}

	// ---- CAA ----
	caa := func(name, domain, desc, records string, args []string, code reports.Code, sev reports.Severity, detail string) {
		zone := strings.TrimPrefix(strings.TrimPrefix(domain, "*."), "www.") + "."
		c.simple(Scenario{Name: name, Domain: domain, Description: desc, Args: args,
			Healthy: sev < reports.Error, Expect: []Expectation{exp(code, sev, detail)}},
			zoneSpec{origin: zone, text: web + records})
	}
	caa("caa-forbidden", "www.caa-forbidden.com", "CAA authorises only another CA",
		"@ CAA 0 issue \"otherca.example\"\n", nil, reports.CodeCAAForbidden, reports.Fatal, "otherca.example")
	caa("caa-issuewild-forbidden", "*.caa-wild.com", "issuewild authorises only another CA",
		"@ CAA 0 issue \"letsencrypt.org\"\n@ CAA 0 issuewild \"otherca.example\"\n"+txt("_acme-challenge", Token("caa-issuewild-forbidden")),
		dns01Args("caa-issuewild-forbidden"), reports.CodeCAAIssueWildForbidden, reports.Fatal, "otherca.example")
	caa("caa-accounturi-mismatch", "www.caa-acct.com", "CAA accounturi names another ACME account",
		"@ CAA 0 issue \"letsencrypt.org; accounturi=https://acme-v02.api.letsencrypt.org/acme/acct/1\"\n",
		[]string{"--account-uri", "https://acme-v02.api.letsencrypt.org/acme/acct/2"},
		reports.CodeCAAAccountURIMismatch, reports.Fatal, "acct/1")
	caa("caa-validationmethods-mismatch", "www.caa-methods.com", "CAA allows dns-01 only, http-01 is used",
		"@ CAA 0 issue \"letsencrypt.org; validationmethods=dns-01\"\n", []string{"--challenge", "http-01"},
		reports.CodeCAAValidationMethodsMismatch, reports.Fatal, "dns-01")
	caa("caa-critical-unknown", "www.caa-critical.com", "a critical CAA tag the CA does not know",
		"@ CAA 0 issue \"letsencrypt.org\"\n@ CAA 128 tbs \"x\"\n", nil, reports.CodeCAACriticalUnknown, reports.Fatal, "tbs")
	caa("caa-malformed", "www.caa-malformed.com", "one good CAA record and one with a malformed parameter (skipped)",
		"@ CAA 0 issue \"letsencrypt.org\"\n@ CAA 0 issue \"letsencrypt.org; accounturi\"\n", nil,
		reports.CodeCAAMalformed, reports.Warning, "accounturi")
	c.add(entry{
		s: Scenario{Name: "caa-lookup-failed", Domain: "www.caa-notimp.com", Description: "the name servers answer NOTIMP to CAA queries",
			Expect: []Expectation{exp(reports.CodeCAALookupFailed, reports.Fatal, "NOTIMP")}},
		zones: []zoneSpec{{origin: "caa-notimp.com.", text: web}},
		servers: c.ns("caa-notimp.com.", 2, map[int][]dnsserver.Fault{
			1: {{Kind: dnsserver.FaultNotImp, QType: dns.TypeCAA}}, 2: {{Kind: dnsserver.FaultNotImp, QType: dns.TypeCAA}}}),
	})

	// ---- Hostile servers: a finding, and no hang ----
	c.add(entry{
		s: Scenario{Name: "hostile-garbage", Domain: "www.garbage.com", Tentative: true,
			Description: "every name server answers with random bytes",
			// No server gives a usable answer: SERVFAIL is what the CA sees;
			// dns.transport would be defensible too.
			Expect: []Expectation{exp(reports.CodeDNSServFail, reports.Fatal, "ns1.garbage.com")}},
		zones:   []zoneSpec{{origin: "garbage.com.", text: web}},
		servers: c.ns("garbage.com.", 2, map[int][]dnsserver.Fault{1: all(dnsserver.FaultGarbage), 2: all(dnsserver.FaultGarbage)}),
	})
	c.add(entry{
		s: Scenario{Name: "hostile-wrong-id", Domain: "www.wrongid.com", Tentative: true,
			Description: "every name server replies with a mismatched message ID (a client that rightly drops them times out)",
			Expect:      []Expectation{exp(reports.CodeDNSTimeout, reports.Error, "")}},
		zones:   []zoneSpec{{origin: "wrongid.com.", text: web}},
		servers: c.ns("wrongid.com.", 2, map[int][]dnsserver.Fault{1: all(dnsserver.FaultWrongID), 2: all(dnsserver.FaultWrongID)}),
	})
	{
		var t strings.Builder
		for i := range 299 {
			t.WriteString(txt("_acme-challenge.www", fmt.Sprintf("junk-%03d-%s", i, Token(fmt.Sprint(i))[:20])))
		}
		t.WriteString(txt("_acme-challenge.www", Token("hostile-big-rrset")))
		c.simple(Scenario{Name: "hostile-big-rrset", Domain: "www.bigrrset.com", Tentative: true, Healthy: true,
			Args:        dns01Args("hostile-big-rrset"),
			Description: "a 300-record TXT RRset (about 12 KB, TCP only)",
			Expect:      []Expectation{exp(reports.CodeDNS01TooManyTXT, reports.Warning, "")}},
			zoneSpec{origin: "bigrrset.com.", text: web + t.String()})
	}
	c.simple(Scenario{Name: "hostile-cname-loop", Domain: "a.cnameloop.com", Tentative: true,
		Description: "a CNAME loop: a → b → a",
		Expect:      []Expectation{exp(reports.CodeDNSServFail, reports.Fatal, "")}},
		zoneSpec{origin: "cnameloop.com.", text: "a CNAME b\nb CNAME a\n"})
	{
		// 200 CNAMEs before an address: every resolver gives up long before
		// (Unbound after a dozen restarts), as on a loop.
		var t strings.Builder
		t.WriteString("www CNAME c1\n")
		for i := 1; i < 200; i++ {
			fmt.Fprintf(&t, "c%d CNAME c%d\n", i, i+1)
		}
		t.WriteString("c200 A " + WebAddr + "\n")
		c.simple(Scenario{Name: "hostile-cname-chain", Domain: "www.cnamechain.com", Tentative: true,
			Description: "an endless CNAME chain: 200 CNAMEs inside the zone before an address",
			Expect:      []Expectation{exp(reports.CodeDNSServFail, reports.Fatal, "more than 8 CNAMEs")}},
			zoneSpec{origin: "cnamechain.com.", text: t.String()})
	}
	{
		// refloop.com is delegated to ns.refloop.net and refloop.net to
		// ns.refloop.com; neither has glue (different TLDs), so no
		// resolver can ever find an address: a delegation loop.
		srv := serverSpec{name: "refloop-ns", host: "ns-refloop.delegated.com.", addrs: []string{c.addr()},
			zones: []string{"refloop.com.", "refloop.net."}}
		c.add(entry{
			s: Scenario{Name: "hostile-referral-loop", Domain: "www.refloop.com", Tentative: true,
				Description: "each of two zones is delegated to a name server inside the other",
				Expect:      []Expectation{exp(reports.CodeDNSLameDelegation, reports.Error, "cycle")}},
			zones: []zoneSpec{
				{origin: "refloop.com.", parentNS: []string{"ns.refloop.net."},
					text: web + "ns A " + srv.addrs[0] + "\n"},
				{origin: "refloop.net.", parentNS: []string{"ns.refloop.com."},
					text: "ns A " + srv.addrs[0] + "\n"},
			},
			servers: []serverSpec{srv},
		})
	}
	// ---- Latency: a healthy signed zone whose servers answer after 10 ms,
	// like a real provider; benchmarks measure how many dependent rounds a
	// diagnosis takes.
	slow := []dnsserver.Fault{{Kind: dnsserver.FaultDelay, Delay: 10 * time.Millisecond}}
	c.add(entry{
		s: Scenario{Name: "healthy-slow-servers", Domain: "www.slow-servers.com", Healthy: true,
			Description: "signed zone whose two name servers answer after 10 ms"},
		zones:   []zoneSpec{{origin: "slow-servers.com.", text: web, signed: true}},
		servers: c.ns("slow-servers.com.", 2, map[int][]dnsserver.Fault{1: slow, 2: slow}),
	})

	c.transportScenarios(all)
	c.denialScenarios(all)

	c.webScenarios()
	c.certManagerScenarios()
	return c
}

// transportScenarios are servers that mishandle EDNS, 0x20 or TCP, each
// judged by what Let's Encrypt's resolver (Unbound) then does: it retries
// without EDNS, falls back from 0x20 by asking every server and comparing,
// and tries another server when one fails over TCP; it fails only when no
// server gives a usable answer.
func (c *cat) transportScenarios(all func(dnsserver.FaultKind) []dnsserver.Fault) {
	edns, caps, noTCP := all(dnsserver.FaultEDNSIntolerant), all(dnsserver.FaultWrong0x20), all(dnsserver.FaultNoTCP)
	both := func(f []dnsserver.Fault) map[int][]dnsserver.Fault { return map[int][]dnsserver.Fault{1: f, 2: f} }
	c.simpleWith(Scenario{Name: "transport-edns-all", Domain: "www.edns-all.com", Healthy: true,
		Description: "every name server of an unsigned zone answers FORMERR to EDNS queries",
		Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns2.edns-all.com")}},
		zoneSpec{origin: "edns-all.com.", text: web}, both(edns))
	// Without EDNS there is no DO bit, so no signatures: a validating
	// resolver cannot prove anything in a signed zone.
	c.simpleWith(Scenario{Name: "transport-edns-signed", Domain: "www.edns-signed.com",
		Description: "every name server of a signed zone answers FORMERR to EDNS queries",
		Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Error, "ns1.edns-signed.com")}},
		zoneSpec{origin: "edns-signed.com.", text: web, signed: true}, both(edns))
	// An answer without signatures from ns1 makes Unbound ask ns2.
	c.simpleWith(Scenario{Name: "transport-edns-signed-one", Domain: "www.edns-signed-one.com", Healthy: true,
		Description: "one of two name servers of a signed zone answers FORMERR to EDNS queries",
		Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns1.edns-signed-one.com")}},
		zoneSpec{origin: "edns-signed-one.com.", text: web, signed: true}, map[int][]dnsserver.Fault{1: edns})
	c.simpleWith(Scenario{Name: "transport-0x20-all", Domain: "www.caps-all.com", Healthy: true,
		Description: "no name server preserves the query's 0x20 case; they all give the same answers",
		Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns2.caps-all.com")}},
		zoneSpec{origin: "caps-all.com.", text: web}, both(caps))
	c.simpleWith(Scenario{Name: "transport-0x20-signed", Domain: "www.caps-signed.com", Healthy: true,
		Description: "no name server of a signed zone preserves the query's 0x20 case",
		Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns1.caps-signed.com")}},
		zoneSpec{origin: "caps-signed.com.", text: web, signed: true}, both(caps))
	{
		// The 0x20 fallback compares the servers' answers: a secondary
		// serving an older address makes it give up (SERVFAIL).
		srv := c.ns("caps-disagree.com.", 2, both(caps))
		srv[1].stale = map[string]string{"caps-disagree.com.": "@ SOA ns1.caps-disagree.com. hostmaster.caps-disagree.com. 1000 3600 900 604800 300\n" +
			"www A 127.80.0.2\n"}
		c.add(entry{
			s: Scenario{Name: "transport-0x20-disagree", Domain: "www.caps-disagree.com",
				Description: "no name server preserves the query's 0x20 case, and a lagging secondary serves another address",
				Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Error, "ns2.caps-disagree.com")}},
			zones:   []zoneSpec{{origin: "caps-disagree.com.", text: "@ SOA ns1.caps-disagree.com. hostmaster.caps-disagree.com. 1001 3600 900 604800 300\n" + web}},
			servers: srv,
		})
	}
	var bigTXT strings.Builder
	for i := range 40 {
		bigTXT.WriteString(txt("_acme-challenge.www", Token(fmt.Sprintf("tcp-%d", i))))
	}
	c.add(entry{
		// Unbound asks the other server over TCP.
		s: Scenario{Name: "transport-tcp-one", Domain: "www.tcpfail-one.com", Healthy: true, Args: dns01Args("transport-tcp-one"),
			Description: "41 TXT records at _acme-challenge: truncated over UDP, and one of two name servers refuses TCP",
			Expect: []Expectation{exp(reports.CodeDNSTransport, reports.Warning, "ns1.tcpfail-one.com"),
				exp(reports.CodeDNS01TooManyTXT, reports.Warning, "")}},
		zones:   []zoneSpec{{origin: "tcpfail-one.com.", text: web + bigTXT.String() + txt("_acme-challenge.www", Token("transport-tcp-one"))}},
		servers: c.ns("tcpfail-one.com.", 2, map[int][]dnsserver.Fault{1: noTCP}),
	})

	// CAA and TXT sets too big for UDP, with and without TCP.
	var caa strings.Builder
	for i := range 60 {
		fmt.Fprintf(&caa, "@ CAA 0 issue \"ca-%02d.example\"\n", i)
	}
	caa.WriteString("@ CAA 0 issue \"letsencrypt.org\"\n")
	c.add(entry{
		s: Scenario{Name: "caa-transport-tcp", Domain: "www.caa-tcpfail.com",
			Description: "61 CAA records at the apex: truncated over UDP, and the name server refuses TCP",
			Expect: []Expectation{exp(reports.CodeCAALookupFailed, reports.Fatal, "ns1.caa-tcpfail.com"),
				exp(reports.CodeDNSTransport, reports.Error, "ns1.caa-tcpfail.com")}},
		zones:   []zoneSpec{{origin: "caa-tcpfail.com.", text: web + caa.String()}},
		servers: c.ns("caa-tcpfail.com.", 1, map[int][]dnsserver.Fault{1: noTCP}),
	})
	c.add(entry{
		s: Scenario{Name: "caa-transport-tcp-dns01", Domain: "www.caa-tcpfail-txt.com", Args: dns01Args("caa-transport-tcp-dns01"),
			Description: "dns-01 with the TXT in place; 61 CAA records at the name itself need TCP, which the name server refuses",
			Expect: []Expectation{exp(reports.CodeCAALookupFailed, reports.Fatal, ""),
				exp(reports.CodeDNSTransport, reports.Error, "ns1.caa-tcpfail-txt.com")}},
		zones: []zoneSpec{{origin: "caa-tcpfail-txt.com.", text: web + txt("_acme-challenge.www", Token("caa-transport-tcp-dns01")) +
			strings.ReplaceAll(caa.String(), "@ CAA", "www CAA")}},
		servers: c.ns("caa-tcpfail-txt.com.", 1, map[int][]dnsserver.Fault{1: noTCP}),
	})
	c.add(entry{
		s: Scenario{Name: "caa-big-tcp", Domain: "www.caa-big.com", Healthy: true,
			Description: "61 CAA records at the apex, one of them for Let's Encrypt, served over TCP"},
		zones:   []zoneSpec{{origin: "caa-big.com.", text: web + caa.String()}},
		servers: c.ns("caa-big.com.", 2, nil),
	})
	c.add(entry{
		s: Scenario{Name: "dns01-transport-tcp", Domain: "www.txt-tcpfail.com", Args: dns01Args("dns01-transport-tcp"),
			Description: "41 TXT records at _acme-challenge: truncated over UDP, and the name server refuses TCP",
			Expect:      []Expectation{exp(reports.CodeDNSTransport, reports.Error, "ns1.txt-tcpfail.com")}},
		zones:   []zoneSpec{{origin: "txt-tcpfail.com.", text: web + bigTXT.String() + txt("_acme-challenge.www", Token("dns01-transport-tcp"))}},
		servers: c.ns("txt-tcpfail.com.", 1, map[int][]dnsserver.Fault{1: noTCP}),
	})
}

// denialScenarios are signed zones whose negative answers (NXDOMAIN,
// NODATA) come without the NSEC records that prove them: a validating
// resolver answers SERVFAIL for every name or type that does not exist —
// the CAA lookups first of all.
func (c *cat) denialScenarios(all func(dnsserver.FaultKind) []dnsserver.Fault) {
	nd := all(dnsserver.FaultNoDenial)
	both := map[int][]dnsserver.Fault{1: nd, 2: nd}
	bogus := func(detail string) []Expectation {
		return []Expectation{exp(reports.CodeDNSDNSSECBogus, reports.Fatal, detail)}
	}
	c.simpleWith(Scenario{Name: "dnssec-no-denial", Domain: "www.nodenial.com",
		Description: "a signed zone whose NODATA answers carry no NSEC proof: CAA and AAAA lookups are bogus",
		Expect:      bogus("denial")},
		zoneSpec{origin: "nodenial.com.", text: web, signed: true}, both)
	c.simpleWith(Scenario{Name: "dnssec-no-denial-dns01", Domain: "www.nodenial-dns01.com", Args: dns01Args("dnssec-no-denial-dns01"),
		Description: "dns-01 with the TXT in place in a signed zone without denial proofs: the CAA lookups are bogus",
		Expect:      bogus("CAA")},
		zoneSpec{origin: "nodenial-dns01.com.", text: web + txt("_acme-challenge.www", Token("dnssec-no-denial-dns01")), signed: true}, both)
	c.simpleWith(Scenario{Name: "dnssec-no-denial-txt", Domain: "www.nodenial-txt.com", Args: dns01Args("dnssec-no-denial-txt"),
		Description: "dns-01 without the TXT in a signed zone without denial proofs: the NXDOMAIN for it is bogus",
		Expect:      bogus("_acme-challenge.www.nodenial-txt.com")},
		zoneSpec{origin: "nodenial-txt.com.", text: web, signed: true}, both)
	c.simpleWith(Scenario{Name: "dnssec-no-denial-nxdomain", Domain: "missing.nodenial-nx.com",
		Description: "a name that does not exist in a signed zone without denial proofs: the NXDOMAIN is bogus",
		Expect:      bogus("missing.nodenial-nx.com")},
		zoneSpec{origin: "nodenial-nx.com.", text: web, signed: true}, both)
	c.simpleWith(Scenario{Name: "dnssec-no-denial-one", Domain: "www.nodenial-one.com", Healthy: true,
		Description: "one of two name servers of a signed zone sends negative answers without NSEC proof",
		Expect:      []Expectation{exp(reports.CodeDNSDNSSECBogus, reports.Warning, "ns1.nodenial-one.com")}},
		zoneSpec{origin: "nodenial-one.com.", text: web, signed: true}, map[int][]dnsserver.Fault{1: nd})
}

// simpleWith is simple with faults on the two servers.
func (c *cat) simpleWith(s Scenario, z zoneSpec, faults map[int][]dnsserver.Fault) {
	c.add(entry{s: s, zones: []zoneSpec{z}, servers: c.ns(z.origin, 2, faults)})
}

// Catalogue lists every scenario of the universe Start builds. Scenarios
// staged with packet-drop (nftables) faults are left out when not root,
// unless CI=true (under CI they must run, and Start fails without nft).
func Catalogue() []Scenario {
	var out []Scenario
	for _, e := range buildCatalogue().entries {
		if len(e.drops) > 0 && !firewallEnabled() {
			continue
		}
		out = append(out, e.s)
	}
	return out
}

// infrastructure is the root and TLD part of the universe: two root
// servers, two servers for com and net, one for org, all signed.
func infrastructure() spec {
	return spec{
		zones: []zoneSpec{
			{origin: ".", signed: true},
			{origin: "com.", signed: true},
			{origin: "net.", signed: true},
			{origin: "org.", signed: true},
		},
		servers: []serverSpec{
			{name: "root-a", host: "a.root-servers.net.", addrs: []string{"127.53.0.1"}, zones: []string{"."}},
			{name: "root-b", host: "b.root-servers.net.", addrs: []string{"127.53.0.2"}, zones: []string{"."}},
			{name: "gtld-a", host: "a.gtld-servers.net.", addrs: []string{"127.53.1.1"}, zones: []string{"com.", "net."}},
			{name: "gtld-b", host: "b.gtld-servers.net.", addrs: []string{"127.53.1.2"}, zones: []string{"com.", "net."}},
			{name: "org-a", host: "a0.org-servers.org.", addrs: []string{"127.53.1.3"}, zones: []string{"org."}},
		},
	}
}

// catalogueSpec is the full universe: infrastructure plus every scenario.
func catalogueSpec() spec {
	sp := infrastructure()
	c := buildCatalogue()
	sp.zones = append(sp.zones, c.extraZones...)
	sp.servers = append(sp.servers, c.extraServers...)
	sp.webAddrs = map[string][]string{}
	// The addresses every DNS scenario points at serve HTTP-01 for every
	// catalogue token; the one IPv6 server (HTTP port only) does too,
	// unless a scenario stages something else for its name.
	sp.sites = []siteSpec{
		{addr: WebAddr, http: webBehaviour{kind: webSolver}, tls: tlsServe},
		{addr: SplitAddr, http: webBehaviour{kind: webSolver}, tls: tlsServe},
	}
	v6 := webBehaviour{kind: webByHost, byHost: map[string]webBehaviour{}}
	for _, e := range c.entries {
		sp.zones = append(sp.zones, e.zones...)
		sp.servers = append(sp.servers, e.servers...)
		sp.clusterData = append(sp.clusterData, e.clusterData...)
		sp.sites = append(sp.sites, e.sites...)
		sp.drops = append(sp.drops, e.drops...)
		for h, b := range e.v6 {
			v6.byHost[h] = b
		}
		sp.scenarioNames = append(sp.scenarioNames, e.s.Name)
		if len(e.webAddrs) > 0 {
			sp.webAddrs[e.s.Name] = e.webAddrs
		}
	}
	sp.sites = append(sp.sites, siteSpec{addr: WebAddr6, http: v6})
	return sp
}

// scenarioTimeout is a generous bound on one diagnosis in this universe,
// for callers that run the catalogue.
const scenarioTimeout = 30 * time.Second

// ScenarioTimeout is how long a diagnosis of one scenario may reasonably
// take in this universe (dropping servers make some scenarios slow).
func ScenarioTimeout() time.Duration { return scenarioTimeout }
