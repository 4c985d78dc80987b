package renewals

import (
	"testing"

	cmacme "github.com/cert-manager/cert-manager/pkg/apis/acme/v1"

	"github.com/acmediag/acmediag/reports"
)

// cert-manager's solver selection, case by case as its documentation and
// pkg/util/solverpicker order them: the solver a name gets and the
// challenge that solver answers.
func TestPickSolver(t *testing.T) {
	http := func(name string, sel *cmacme.CertificateDNSNameSelector) cmacme.ACMEChallengeSolver {
		return cmacme.ACMEChallengeSolver{Selector: sel, HTTP01: &cmacme.ACMEChallengeSolverHTTP01{
			Ingress: &cmacme.ACMEChallengeSolverHTTP01Ingress{Name: name}}}
	}
	dns := func(server string, sel *cmacme.CertificateDNSNameSelector) cmacme.ACMEChallengeSolver {
		return cmacme.ACMEChallengeSolver{Selector: sel, DNS01: &cmacme.ACMEChallengeSolverDNS01{
			RFC2136: &cmacme.ACMEIssuerDNS01ProviderRFC2136{Nameserver: server}}}
	}
	zones := func(z ...string) *cmacme.CertificateDNSNameSelector {
		return &cmacme.CertificateDNSNameSelector{DNSZones: z}
	}
	names := func(n ...string) *cmacme.CertificateDNSNameSelector {
		return &cmacme.CertificateDNSNameSelector{DNSNames: n}
	}
	cases := []struct {
		desc    string
		name    string
		labels  map[string]string
		solvers []cmacme.ACMEChallengeSolver
		want    string // describeSolver of the pick, "" none
		ch      reports.Challenge
	}{
		{desc: "one solver without a selector takes every name", name: "www.example.com",
			solvers: []cmacme.ACMEChallengeSolver{http("a", nil)}, want: "http01 (ingress a)", ch: reports.HTTP01},
		{desc: "a wildcard cannot use an http-01 solver: none, dns-01", name: "*.example.com",
			solvers: []cmacme.ACMEChallengeSolver{http("a", nil)}, want: "", ch: reports.DNS01},
		{desc: "a wildcard takes the dns-01 solver", name: "*.example.com",
			solvers: []cmacme.ACMEChallengeSolver{http("a", nil), dns("192.0.2.1", nil)}, want: "dns01 (rfc2136 at 192.0.2.1)", ch: reports.DNS01},
		{desc: "the first of two catch-alls wins", name: "www.example.com",
			solvers: []cmacme.ACMEChallengeSolver{dns("192.0.2.1", nil), http("a", nil)}, want: "dns01 (rfc2136 at 192.0.2.1)", ch: reports.DNS01},
		{desc: "a matching dnsZones beats a catch-all listed first", name: "www.example.com",
			solvers: []cmacme.ACMEChallengeSolver{http("a", nil), dns("192.0.2.1", zones("example.com"))},
			want:    "dns01 (rfc2136 at 192.0.2.1), selector dnsZones [example.com]", ch: reports.DNS01},
		{desc: "the longer zone wins", name: "www.sub.example.com",
			solvers: []cmacme.ACMEChallengeSolver{dns("192.0.2.1", zones("example.com")), dns("192.0.2.2", zones("sub.example.com"))},
			want:    "dns01 (rfc2136 at 192.0.2.2), selector dnsZones [sub.example.com]", ch: reports.DNS01},
		{desc: "a zone that does not hold the name is no match", name: "www.example.org",
			solvers: []cmacme.ACMEChallengeSolver{dns("192.0.2.1", zones("example.com"))}, want: "", ch: reports.HTTP01},
		{desc: "a dnsNames match beats a longer zone", name: "www.sub.example.com",
			solvers: []cmacme.ACMEChallengeSolver{dns("192.0.2.2", zones("sub.example.com")), http("named", names("www.sub.example.com"))},
			want:    "http01 (ingress named), selector dnsNames [www.sub.example.com]", ch: reports.HTTP01},
		{desc: "more matching labels win between equal zones", name: "www.example.com", labels: map[string]string{"team": "shop", "tier": "web"},
			solvers: []cmacme.ACMEChallengeSolver{
				dns("192.0.2.1", zones("example.com")),
				dns("192.0.2.3", &cmacme.CertificateDNSNameSelector{DNSZones: []string{"example.com"}, MatchLabels: map[string]string{"team": "shop"}}),
			},
			want: "dns01 (rfc2136 at 192.0.2.3), selector dnsZones [example.com] matchLabels [team=shop]", ch: reports.DNS01},
		{desc: "labels the Certificate lacks exclude the solver", name: "www.example.com", labels: map[string]string{"team": "blog"},
			solvers: []cmacme.ACMEChallengeSolver{
				http("a", nil),
				dns("192.0.2.3", &cmacme.CertificateDNSNameSelector{MatchLabels: map[string]string{"team": "shop"}}),
			},
			want: "http01 (ingress a)", ch: reports.HTTP01},
		{desc: "equal selectors: the first listed stays", name: "www.example.com",
			solvers: []cmacme.ACMEChallengeSolver{dns("192.0.2.1", zones("example.com")), dns("192.0.2.2", zones("example.com"))},
			want:    "dns01 (rfc2136 at 192.0.2.1), selector dnsZones [example.com]", ch: reports.DNS01},
		{desc: "a dnsNames selector for another name is no match", name: "www.example.com",
			solvers: []cmacme.ACMEChallengeSolver{http("other", names("api.example.com"))}, want: "", ch: reports.HTTP01},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			s, ch := pickSolver(tc.name, tc.labels, tc.solvers)
			if got := describeSolver(s, ch); got != tc.want || ch != tc.ch {
				t.Errorf("picked %q (%s), want %q (%s)", got, ch, tc.want, tc.ch)
			}
		})
	}
}

// The ACME problem cert-manager quotes in a Challenge's reason is the
// CA's problem type the correlation matches findings against.
func TestProblemOf(t *testing.T) {
	cases := []struct{ reason, want string }{
		{`Error accepting authorization: acme: authorization error for www.example.com: 400 urn:ietf:params:acme:error:connection: 192.0.2.1: Fetching http://www.example.com/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)`,
			reports.ProblemConnection},
		{"Waiting for HTTP-01 challenge propagation: wrong status code '404', expected '200'", ""},
		{"urn:ietf:params:acme:error:dns: NXDOMAIN looking up TXT", reports.ProblemDNS},
	}
	for _, tc := range cases {
		p := problemOf(tc.reason)
		got := ""
		if p != nil {
			got = p.Type
		}
		if got != tc.want {
			t.Errorf("problemOf(%q) = %q, want %q", tc.reason, got, tc.want)
		}
	}
}
