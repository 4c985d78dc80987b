package testenv

import (
	"slices"
	"strings"
	"testing"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/dnsserver"
	"github.com/miekg/dns"
)

var dnsserverCompare = dnsserver.CanonicalCompare

func TestCatalogue(t *testing.T) {
	sp := catalogueSpec()
	sp.normalize()
	if err := sp.validate(); err != nil {
		t.Fatalf("universe description: %v", err)
	}
	scenarios := Catalogue()
	seen := map[string]bool{}
	covered := map[reports.Code]bool{}
	for _, s := range scenarios {
		t.Run(s.Name, func(t *testing.T) {
			if seen[s.Name] {
				t.Errorf("duplicate scenario name")
			}
			seen[s.Name] = true
			if s.Description == "" || s.Domain == "" {
				t.Errorf("missing description or domain")
			}
			if !s.Healthy && len(s.Expect) == 0 {
				t.Errorf("a failing scenario with no expectation")
			}
			for _, e := range s.Expect {
				if slices.Contains(s.Absent, e.Code) {
					t.Errorf("%s both expected and absent", e.Code)
				}
				covered[e.Code] = true
				if s.Healthy && e.Severity >= reports.Error {
					t.Errorf("healthy scenario expects %s at %s", e.Code, e.Severity)
				}
			}
			name := dns.CanonicalName(strings.TrimPrefix(s.Domain, "*."))
			zone := sp.zoneOf(name)
			if zone == "" || zone == "com." || zone == "net." || zone == "org." {
				t.Errorf("domain %s has no zone of its own (got %q)", s.Domain, zone)
			}
		})
	}
	// One scenario (at least) per DNS, DNS-01 and CAA code of FINDINGS.md
	// that a loopback universe can stage.
	want := []reports.Code{
		reports.CodeNameWildcardNeedsDNS01, reports.CodeDNSNXDomain, reports.CodeDNSServFail, reports.CodeDNSTimeout,
		reports.CodeDNSLameDelegation, reports.CodeDNSNSUnreachable, reports.CodeDNSSerialMismatch, reports.CodeDNSDNSSECBogus,
		reports.CodeDNSNoAddress, reports.CodeDNSReservedAddress, reports.CodeDNSTransport, reports.CodeDNSSplitHorizon,
		reports.CodeDNSNegativeTTLHigh, reports.CodeDNS01TXTMissing, reports.CodeDNS01TXTNotPropagated,
		reports.CodeDNS01TXTWrongValue, reports.CodeDNS01CNAMEDangling, reports.CodeDNS01WrongZone,
		reports.CodeDNS01DoubledLabel, reports.CodeDNS01TooManyTXT, reports.CodeCAAForbidden,
		reports.CodeCAAIssueWildForbidden, reports.CodeCAAAccountURIMismatch, reports.CodeCAAValidationMethodsMismatch,
		reports.CodeCAACriticalUnknown, reports.CodeCAALookupFailed, reports.CodeCAAMalformed,
	}
	for _, c := range want {
		if !covered[c] {
			t.Errorf("no scenario expects %s", c)
		}
	}
	if n := slices.IndexFunc(sp.servers, func(s serverSpec) bool { return slices.Contains(s.addrs, "::1") }); n < 0 {
		t.Errorf("no server on ::1")
	}
}
