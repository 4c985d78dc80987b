package renewals

import (
	"net/netip"
	"strings"
	"testing"

	acmev1 "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"

	"github.com/acmediag/acmediag/reports"
)

func dnsChallenge(solver acmev1.ACMEChallengeSolverDNS01) *acmev1.Challenge {
	return &acmev1.Challenge{ObjectMeta: meta("www-1-1-0", "ch", 0, "o"),
		Spec: acmev1.ChallengeSpec{DNSName: "example.com", Wildcard: true, Type: acmev1.ACMEChallengeTypeDNS01, Token: "tok", Key: "txtvalue",
			Solver: acmev1.ACMEChallengeSolver{DNS01: &solver}},
		Status: acmev1.ChallengeStatus{State: acmev1.Pending, Presented: true,
			Reason: `Waiting for DNS-01 challenge propagation: DNS record for "example.com" not yet propagated`}}
}

func TestCheckFor(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc   string
		solver acmev1.ACMEChallengeSolverDNS01
		want   Solver
	}{
		{desc: "rfc2136 with a port", solver: acmev1.ACMEChallengeSolverDNS01{RFC2136: &acmev1.ACMEIssuerDNS01ProviderRFC2136{Nameserver: "192.0.2.1:5353"}},
			want: Solver{Provider: "rfc2136", Server: netip.MustParseAddrPort("192.0.2.1:5353"), Description: "rfc2136 at 192.0.2.1:5353"}},
		{desc: "rfc2136 without a port: 53", solver: acmev1.ACMEChallengeSolverDNS01{RFC2136: &acmev1.ACMEIssuerDNS01ProviderRFC2136{Nameserver: "2001:db8::1"}},
			want: Solver{Provider: "rfc2136", Server: netip.MustParseAddrPort("[2001:db8::1]:53"), Description: "rfc2136 at 2001:db8::1"}},
		{desc: "rfc2136 by host name: nothing to ask directly", solver: acmev1.ACMEChallengeSolverDNS01{RFC2136: &acmev1.ACMEIssuerDNS01ProviderRFC2136{Nameserver: "primary.example.net:53"}},
			want: Solver{Provider: "rfc2136", Description: "rfc2136 at primary.example.net:53"}},
		{desc: "azureDNS names its zone", solver: acmev1.ACMEChallengeSolverDNS01{AzureDNS: &acmev1.ACMEIssuerDNS01ProviderAzureDNS{HostedZoneName: "example.com"}},
			want: Solver{Provider: "azureDNS", Zone: "example.com", Description: "azureDNS, hosted zone example.com"}},
		{desc: "route53 names an ID", solver: acmev1.ACMEChallengeSolverDNS01{Route53: &acmev1.ACMEIssuerDNS01ProviderRoute53{HostedZoneID: "Z123"}},
			want: Solver{Provider: "route53", ZoneID: "Z123", Description: "route53, hosted zone ID Z123"}},
	}
	for _, tc := range cases {
		c := CheckFor(dnsChallenge(tc.solver))
		if c.Solver != tc.want {
			t.Errorf("%s: solver %+v, want %+v", tc.desc, c.Solver, tc.want)
		}
		if c.Name != "*.example.com" || c.Type != reports.DNS01 || c.Key != "txtvalue" || !c.Open() {
			t.Errorf("%s: check %+v", tc.desc, c)
		}
	}
}

func TestExplainDNS01(t *testing.T) {
	t.Parallel()
	primary := netip.MustParseAddrPort("127.0.0.9:10053")
	ns := func(host, addr string, vals ...string) TXTAnswer {
		return TXTAnswer{Host: host, Addr: netip.MustParseAddrPort(addr), Values: vals, Answer: "answer"}
	}
	rfc := CheckFor(dnsChallenge(acmev1.ACMEChallengeSolverDNS01{RFC2136: &acmev1.ACMEIssuerDNS01ProviderRFC2136{Nameserver: primary.String()}}))
	azure := CheckFor(dnsChallenge(acmev1.ACMEChallengeSolverDNS01{AzureDNS: &acmev1.ACMEIssuerDNS01ProviderAzureDNS{HostedZoneName: "example.com."}}))
	cases := []struct {
		desc  string
		check Check
		facts DNS01Facts
		code  reports.Code // "" → no finding
		want  []string
	}{
		{desc: "the primary has it, both secondaries lack it", check: rfc,
			facts: DNS01Facts{Owner: "_acme-challenge.example.com.", Zone: "example.com.",
				Servers: []TXTAnswer{ns("ns1.example.com.", "127.0.0.1:10053"), ns("ns2.example.com.", "127.0.0.2:10053", "old")},
				Solver:  &TXTAnswer{Addr: primary, Values: []string{"txtvalue"}}},
			code: reports.CodeCertManagerRecordNotReplicated,
			want: []string{"present at the primary 127.0.0.9:10053, missing at ns1.example.com (127.0.0.1) and ns2.example.com (127.0.0.2): zone transfer or NOTIFY is not reaching the secondaries"}},
		{desc: "every server has it: nothing to explain", check: rfc,
			facts: DNS01Facts{Zone: "example.com.", Servers: []TXTAnswer{ns("ns1.example.com.", "127.0.0.1:10053", "txtvalue")},
				Solver: &TXTAnswer{Addr: primary, Values: []string{"txtvalue"}}}},
		{desc: "the primary lacks it too: the probes' dns01.txt_missing says it", check: rfc,
			facts: DNS01Facts{Zone: "example.com.", Servers: []TXTAnswer{ns("ns1.example.com.", "127.0.0.1:10053")}, Solver: &TXTAnswer{Addr: primary}}},
		{desc: "the hosted zone is the parent of the zone cut", check: azure,
			facts: DNS01Facts{Owner: "_acme-challenge.example.com.", Zone: "_acme-challenge.example.com."},
			code:  reports.CodeCertManagerWrongZone, want: []string{"writes to hosted zone example.com, but _acme-challenge.example.com belongs to zone _acme-challenge.example.com"}},
		{desc: "the hosted zone is the zone cut", check: azure, facts: DNS01Facts{Owner: "_acme-challenge.example.com.", Zone: "Example.com."}},
	}
	for _, tc := range cases {
		fs := tc.check.ExplainDNS01(tc.facts)
		if tc.code == "" {
			if len(fs) > 0 {
				t.Errorf("%s: unexpected %+v", tc.desc, fs)
			}
			continue
		}
		if len(fs) != 1 || fs[0].Code != tc.code || fs[0].Name != "*.example.com" {
			t.Errorf("%s: %+v, want one %s", tc.desc, fs, tc.code)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(fs[0].Detail, w) {
				t.Errorf("%s: detail lacks %q:\n%s", tc.desc, w, fs[0].Detail)
			}
		}
	}
}

func TestAnnotateHTTP01(t *testing.T) {
	t.Parallel()
	ch := &acmev1.Challenge{ObjectMeta: meta("www-1-1-0", "ch", 0, "o"),
		Spec: acmev1.ChallengeSpec{DNSName: "www.example.com", Type: acmev1.ACMEChallengeTypeHTTP01, Token: "tok",
			Solver: acmev1.ACMEChallengeSolver{HTTP01: &acmev1.ACMEChallengeSolverHTTP01{Ingress: &acmev1.ACMEChallengeSolverHTTP01Ingress{Class: ptr("nginx"), Name: "web"}}}}}
	c := CheckFor(ch)
	fs := []reports.Finding{
		reports.New(reports.CodeHTTP01BadStatus, "www.example.com", "404"),
		reports.New(reports.CodeHTTP01WrongBody, "www.example.com", "other body"),
		reports.New(reports.CodeHTTP01ConnectTimeout, "www.example.com", "timeout"),
		reports.New(reports.CodeHTTP01BadStatus, "other.example.com", "404"),
	}
	got := c.AnnotateHTTP01(fs)
	want := []string{"is missing: the solver's ingress class nginx (editing Ingress web)", "answered by another backend than the solver's ingress class nginx", "", ""}
	for i, w := range want {
		added := strings.TrimPrefix(got[i].Detail, fs[i].Detail)
		if w == "" && added != "" || w != "" && !strings.Contains(added, w) {
			t.Errorf("finding %d (%s %s): added %q, want %q", i, fs[i].Code, fs[i].Name, added, w)
		}
	}
	if fs[0].Detail != "404" {
		t.Error("the input findings were changed")
	}
}
