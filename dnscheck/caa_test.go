package dnscheck

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

func caaRR(flag uint8, tag, value string) *dns.CAA {
	return &dns.CAA{Hdr: dns.RR_Header{Rrtype: dns.TypeCAA, Class: dns.ClassINET, Ttl: 300}, Flag: flag, Tag: tag, Value: value}
}

// caaChain builds the lookups Boulder would make for name: every label up to
// the TLD, closest first, empty unless at names it.
func caaChain(name string, at map[string]CAALookup) []CAALookup {
	labels := strings.Split(strings.TrimSuffix(name, "."), ".")
	out := make([]CAALookup, 0, len(labels))
	for i := range labels {
		label := strings.Join(labels[i:], ".") + "."
		l := at[label]
		l.Label = label
		out = append(out, l)
	}
	return out
}

func caaAt(rrs ...*dns.CAA) CAALookup { return CAALookup{Records: rrs} }

const (
	acctProd    = "https://acme-v02.api.letsencrypt.org/acme/acct/12345"
	acctOther   = "https://acme-v02.api.letsencrypt.org/acme/acct/99999"
	acctStaging = "https://acme-staging-v02.api.letsencrypt.org/acme/acct/12345"
)

func TestEvaluateCAA(t *testing.T) {
	t.Parallel()
	le := caaRR(0, "issue", "letsencrypt.org")
	other := caaRR(0, "issue", "pki.goog")
	http01 := CAAPolicy{Identities: []string{"letsencrypt.org"}, Method: "http-01", AccountURI: acctProd}
	servfail := errors.New("SERVFAIL")
	sfProblem := "DNS problem: SERVFAIL looking up CAA for www.example.com - the domain's nameservers may be malfunctioning"

	cases := []struct {
		desc          string
		name          string
		wildcard      bool
		lookups       []CAALookup
		policy        CAAPolicy
		wantAllowed   bool
		wantCode      reports.Code // the fatal finding, "" when allowed
		wantFoundAt   string
		wantMalformed int
		wantProblem   string   // exact problem detail of the fatal finding, when set
		wantDetail    []string // substrings of the fatal finding's detail
		wantEvidence  map[string]any
	}{
		{
			desc: "no CAA anywhere", name: "www.example.com",
			lookups: caaChain("www.example.com", nil), policy: http01,
			wantAllowed: true,
		},
		{
			desc: "issue for LE at the parent", name: "www.example.com",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"example.com.": caaAt(le)}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "issue for another CA at the parent", name: "www.example.com",
			lookups:  caaChain("www.example.com", map[string]CAALookup{"example.com.": caaAt(other)}),
			policy:   http01,
			wantCode: reports.CodeCAAForbidden, wantFoundAt: "example.com",
			wantProblem:  "While processing CAA for www.example.com: CAA record for example.com prevents issuance",
			wantDetail:   []string{"example.com. CAA 0 issue \"pki.goog\"", "names another CA, \"pki.goog\""},
			wantEvidence: map[string]any{"found_at": "example.com", "relevant_tag": "issue"},
		},
		{
			desc: "a closer empty set does not stop the climb", name: "a.b.example.com",
			lookups:  caaChain("a.b.example.com", map[string]CAALookup{"example.com.": caaAt(other), "com.": caaAt(le)}),
			policy:   http01,
			wantCode: reports.CodeCAAForbidden, wantFoundAt: "example.com",
		},
		{
			desc: "the closest non-empty set wins over a forbidding parent", name: "www.example.com",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"www.example.com.": caaAt(le), "example.com.": caaAt(other)}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "www.example.com",
		},
		{
			desc: "the closest set forbids although the parent allows", name: "www.example.com",
			lookups:  caaChain("www.example.com", map[string]CAALookup{"www.example.com.": caaAt(other), "example.com.": caaAt(le)}),
			policy:   http01,
			wantCode: reports.CodeCAAForbidden, wantFoundAt: "www.example.com",
		},
		{
			desc: "an error above the hit is ignored", name: "www.example.com",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"example.com.": caaAt(le), "com.": {Err: servfail, Problem: "DNS problem: SERVFAIL looking up CAA for com"}}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "an error below the hit forbids", name: "www.example.com",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"www.example.com.": {Err: servfail, Problem: sfProblem}, "example.com.": caaAt(le)}),
			policy:      http01,
			wantCode:    reports.CodeCAALookupFailed,
			wantProblem: "While processing CAA for www.example.com: " + sfProblem,
			wantDetail:  []string{"Looking up CAA for www.example.com failed (SERVFAIL)", "never taken as permission"},
			wantEvidence: map[string]any{
				"label": "www.example.com", "error": "SERVFAIL",
			},
		},
		{
			desc: "an error with no CAA anywhere forbids", name: "www.example.com",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"com.": {Err: errors.New("query timed out")}}),
			policy:      http01,
			wantCode:    reports.CodeCAALookupFailed,
			wantProblem: "While processing CAA for www.example.com: DNS problem: query timed out looking up CAA for com",
		},
		{
			desc: "lookups handed over out of order are put closest first", name: "www.example.com",
			lookups: []CAALookup{
				{Label: "com.", Records: []*dns.CAA{other}},
				{Label: "www.example.com.", Records: []*dns.CAA{le}},
				{Label: "example.com.", Records: []*dns.CAA{other}},
			},
			policy:      http01,
			wantAllowed: true, wantFoundAt: "www.example.com",
		},
		{
			desc: `issue ";" forbids every CA`, name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", ";"))}),
			policy:   http01,
			wantCode: reports.CodeCAAForbidden, wantFoundAt: "example.com",
			wantDetail: []string{"forbids issuance by every CA"},
		},
		{
			desc: "issuer with a trailing dot is another CA to Boulder", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org."))}),
			policy:     http01,
			wantCode:   reports.CodeCAAForbidden,
			wantDetail: []string{`names "letsencrypt.org."`, "compares issuer domains exactly"},
		},
		{
			desc: "issuer in capitals is another CA to Boulder", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "LetsEncrypt.org"))}),
			policy:     http01,
			wantCode:   reports.CodeCAAForbidden,
			wantDetail: []string{"compares issuer domains exactly"},
		},
		{
			desc: "spaces and tabs around the issuer are trimmed", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", " \tletsencrypt.org ; "))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "upper-case tag is still issue (allows)", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "ISSUE", "letsencrypt.org"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "upper-case tag is still issue (forbids)", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "Issue", "pki.goog"))}),
			policy:   http01,
			wantCode: reports.CodeCAAForbidden,
		},
		{
			desc: "issuewild only, non-wildcard name: nothing relevant, allowed", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issuewild", "pki.goog"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "iodef only: allowed", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(128, "iodef", "mailto:sec@example.com"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "wildcard with only issuewild for another CA", name: "example.com", wildcard: true,
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issuewild", "pki.goog"))}),
			policy:   CAAPolicy{Method: "dns-01"},
			wantCode: reports.CodeCAAIssueWildForbidden, wantFoundAt: "example.com",
			wantProblem:  "While processing CAA for *.example.com: CAA record for example.com prevents issuance",
			wantDetail:   []string{"only those count"},
			wantEvidence: map[string]any{"relevant_tag": "issuewild", "wildcard": true},
		},
		{
			desc: "wildcard: issuewild replaces an issue that allows", name: "*.example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le, caaRR(0, "issuewild", ";"))}),
			policy:   CAAPolicy{Method: "dns-01"},
			wantCode: reports.CodeCAAIssueWildForbidden,
		},
		{
			desc: "wildcard with issue for LE and no issuewild", name: "*.example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le)}),
			policy:      CAAPolicy{Method: "dns-01"},
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "wildcard with issue for another CA and issuewild for LE", name: "*.example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(other, caaRR(0, "issuewild", "letsencrypt.org"))}),
			policy:      CAAPolicy{Method: "dns-01"},
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "wildcard without issuewild, issue for another CA", name: "*.example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(other)}),
			policy:     CAAPolicy{Method: "dns-01"},
			wantCode:   reports.CodeCAAForbidden,
			wantDetail: []string{"no issuewild record, so its issue records count"},
		},
		{
			desc: "unknown tag with flag 1 is critical to Boulder", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le, caaRR(1, "tbs", "unknown"))}),
			policy:   http01,
			wantCode: reports.CodeCAACriticalUnknown, wantFoundAt: "example.com",
			wantProblem: "While processing CAA for example.com: CAA record for example.com prevents issuance",
			wantDetail:  []string{"example.com. CAA 1 tbs \"unknown\"", "flagged critical"},
		},
		{
			desc: "unknown tag with flag 128", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(128, "future", "x"))}),
			policy:   http01,
			wantCode: reports.CodeCAACriticalUnknown,
		},
		{
			desc: "contactemail is unknown to Boulder, so critical forbids", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le, caaRR(128, "contactemail", "a@example.com"))}),
			policy:   http01,
			wantCode: reports.CodeCAACriticalUnknown,
		},
		{
			desc: "unknown tag with flag 2 is not critical", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le, caaRR(2, "future", "x"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "iodef, issuemail and issuevmc flagged 128 are fine", name: "example.com",
			lookups: caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le,
				caaRR(128, "iodef", "mailto:a@example.com"), caaRR(128, "issuemail", "ca.example"), caaRR(129, "IssueVMC", "ca.example"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "accounturi equal to ours", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctProd))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "accounturi for another account", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctOther))}),
			policy:     http01,
			wantCode:   reports.CodeCAAAccountURIMismatch,
			wantDetail: []string{"is limited to the account \"" + acctOther + "\", not \"" + acctProd + "\""},
		},
		{
			desc: "accounturi of the staging account while issuing in production", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctStaging))}),
			policy:     http01,
			wantCode:   reports.CodeCAAAccountURIMismatch,
			wantDetail: []string{"staging and production accounts differ"},
		},
		{
			desc: "accounturi while our account is unknown", name: "example.com",
			lookups:      caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctProd))}),
			policy:       CAAPolicy{Method: "http-01"},
			wantCode:     reports.CodeCAAAccountURIMismatch,
			wantDetail:   []string{"cannot tell", "--account-uri"},
			wantEvidence: map[string]any{"account_uri_unknown": true},
		},
		{
			desc: "two accounturi parameters, even both ours", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctProd+"; accounturi="+acctProd))}),
			policy:     http01,
			wantCode:   reports.CodeCAAAccountURIMismatch,
			wantDetail: []string{"has 2 accounturi parameters"},
		},
		{
			desc: "a record per account is additive", name: "example.com",
			lookups: caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(
				caaRR(0, "issue", "letsencrypt.org; accounturi="+acctOther), caaRR(0, "issue", "letsencrypt.org; accounturi="+acctProd))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "accounturi tag is case-sensitive: AccountURI is an unknown parameter", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; AccountURI="+acctOther))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "validationmethods without our method", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=dns-01"))}),
			policy:     http01,
			wantCode:   reports.CodeCAAValidationMethodsMismatch,
			wantDetail: []string{`validationmethods="dns-01", which does not list http-01`},
		},
		{
			desc: "validationmethods listing our method among others", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=dns-01,http-01"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "validationmethods in upper case does not match", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=HTTP-01"))}),
			policy:     http01,
			wantCode:   reports.CodeCAAValidationMethodsMismatch,
			wantDetail: []string{`"HTTP-01" is not "http-01"`},
		},
		{
			desc: "a bad method label fails the record although our method is listed", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=http-01,dns_01"))}),
			policy:     http01,
			wantCode:   reports.CodeCAAValidationMethodsMismatch,
			wantDetail: []string{`holds "dns_01"`, "the whole record fails"},
		},
		{
			desc: "an empty method label fails the record", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=http-01,"))}),
			policy:   http01,
			wantCode: reports.CodeCAAValidationMethodsMismatch,
		},
		{
			desc: "unknown method names are skipped", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=ca-custom-7,tls-alpn-01"))}),
			policy:      CAAPolicy{Method: "tls-alpn-01", AccountURI: acctProd},
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "two validationmethods parameters", name: "example.com",
			lookups:    caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=http-01; validationmethods=http-01"))}),
			policy:     http01,
			wantCode:   reports.CodeCAAValidationMethodsMismatch,
			wantDetail: []string{"has 2 validationmethods parameters"},
		},
		{
			desc: "unknown account but the method already fails: methods are the finding", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctProd+"; validationmethods=dns-01"))}),
			policy:   CAAPolicy{Method: "http-01"},
			wantCode: reports.CodeCAAValidationMethodsMismatch,
		},
		{
			desc: "account mismatch is reported before methods, in Boulder's order", name: "example.com",
			lookups:  caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; accounturi="+acctOther+"; validationmethods=dns-01"))}),
			policy:   http01,
			wantCode: reports.CodeCAAAccountURIMismatch,
		},
		{
			desc: "malformed parameter skipped, another record allows", name: "example.com",
			lookups: caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(
				caaRR(0, "issue", "letsencrypt.org; accounturi"), le)}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
			wantMalformed: 1,
		},
		{
			desc: "the only LE record is malformed: forbidden, and the skip is named", name: "example.com",
			lookups:       caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=http-01 dns-01"))}),
			policy:        http01,
			wantCode:      reports.CodeCAAForbidden,
			wantMalformed: 1,
			wantDetail:    []string{"malformed, skipped", "printable ASCII without spaces"},
		},
		{
			desc: "a trailing semicolon after a parameter is malformed to Boulder", name: "example.com",
			lookups:       caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; validationmethods=http-01;"))}),
			policy:        http01,
			wantCode:      reports.CodeCAAForbidden,
			wantMalformed: 1,
			wantDetail:    []string{"is not tag=value"},
		},
		{
			desc: "a hyphen in a parameter tag is malformed to Boulder", name: "example.com",
			lookups:       caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "letsencrypt.org; account-uri=x"))}),
			policy:        http01,
			wantCode:      reports.CodeCAAForbidden,
			wantMalformed: 1,
			wantDetail:    []string{"only ASCII letters and digits"},
		},
		{
			desc: "a malformed issuewild record is not parsed for a non-wildcard name", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le, caaRR(0, "issuewild", "x; =;;"))}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "several identities: any one matches", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(caaRR(0, "issue", "ca.example.net"))}),
			policy:      CAAPolicy{Identities: []string{"letsencrypt.org", "ca.example.net"}, Method: "http-01"},
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "no identities means letsencrypt.org", name: "example.com",
			lookups:     caaChain("example.com", map[string]CAALookup{"example.com.": caaAt(le)}),
			policy:      CAAPolicy{Method: "http-01"},
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "nil records count as none", name: "www.example.com",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"www.example.com.": {Records: []*dns.CAA{nil}}, "example.com.": caaAt(le)}),
			policy:      http01,
			wantAllowed: true, wantFoundAt: "example.com",
		},
		{
			desc: "name given with a trailing dot and capitals", name: "WWW.Example.COM.",
			lookups:     caaChain("www.example.com", map[string]CAALookup{"example.com.": caaAt(other)}),
			policy:      http01,
			wantCode:    reports.CodeCAAForbidden,
			wantProblem: "While processing CAA for www.example.com: CAA record for example.com prevents issuance",
		},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			res := EvaluateCAA(tc.name, tc.wildcard, tc.lookups, tc.policy)
			wantAllowed := tc.wantCode == ""
			if wantAllowed != tc.wantAllowed {
				t.Fatalf("test case inconsistent: wantAllowed %v with wantCode %q", tc.wantAllowed, tc.wantCode)
			}
			if res.Allowed != tc.wantAllowed {
				t.Errorf("Allowed = %v, want %v; findings %+v", res.Allowed, tc.wantAllowed, res.Findings)
			}
			if tc.wantCode != reports.CodeCAALookupFailed && res.FoundAt != tc.wantFoundAt && tc.wantFoundAt != "" {
				t.Errorf("FoundAt = %q, want %q", res.FoundAt, tc.wantFoundAt)
			}
			if tc.wantFoundAt == "" && tc.wantAllowed && res.FoundAt != "" {
				t.Errorf("FoundAt = %q, want none", res.FoundAt)
			}
			if res.FoundAt != "" && len(res.Relevant) == 0 {
				t.Errorf("FoundAt %q without a relevant set", res.FoundAt)
			}

			var fatal []reports.Finding
			malformed := 0
			for _, f := range res.Findings {
				switch {
				case f.Severity == reports.Fatal:
					fatal = append(fatal, f)
				case f.Code == reports.CodeCAAMalformed:
					malformed++
					if f.Severity != reports.Warning || !strings.Contains(f.Detail, "ignores it") {
						t.Errorf("malformed finding %+v", f)
					}
				default:
					t.Errorf("unexpected finding %+v", f)
				}
			}
			if malformed != tc.wantMalformed {
				t.Errorf("%d caa.malformed findings, want %d", malformed, tc.wantMalformed)
			}
			if tc.wantAllowed {
				if len(fatal) != 0 {
					t.Errorf("allowed, yet fatal findings %+v", fatal)
				}
				return
			}
			if len(fatal) != 1 {
				t.Fatalf("%d fatal findings, want exactly one: %+v", len(fatal), res.Findings)
			}
			f := fatal[0]
			if f.Code != tc.wantCode {
				t.Errorf("code %q, want %q; detail:\n%s", f.Code, tc.wantCode, f.Detail)
			}
			wantType := reports.ProblemCAA
			if tc.wantCode == reports.CodeCAALookupFailed {
				wantType = reports.ProblemDNS
			}
			if f.Problem == nil || f.Problem.Type != wantType {
				t.Fatalf("problem %+v, want type %s", f.Problem, wantType)
			}
			if tc.wantProblem != "" && f.Problem.Detail != tc.wantProblem {
				t.Errorf("problem detail\n %q, want\n %q", f.Problem.Detail, tc.wantProblem)
			}
			for _, s := range tc.wantDetail {
				if !strings.Contains(f.Detail, s) {
					t.Errorf("detail does not contain %q:\n%s", s, f.Detail)
				}
			}
			for k, v := range tc.wantEvidence {
				if f.Evidence[k] != v {
					t.Errorf("evidence[%q] = %v, want %v", k, f.Evidence[k], v)
				}
			}
			if tc.wantCode != reports.CodeCAALookupFailed {
				if f.Evidence["found_at"] != res.FoundAt {
					t.Errorf("evidence found_at %v, want %q", f.Evidence["found_at"], res.FoundAt)
				}
				if rs, ok := f.Evidence["records"].([]string); !ok || len(rs) == 0 {
					t.Errorf("evidence records %v, want the relevant set", f.Evidence["records"])
				}
			}
		})
	}
}

// TestEvaluateCAABounded feeds a hostile RRset: many records with huge
// values. The finding must stay small and the evaluation must not choke.
func TestEvaluateCAABounded(t *testing.T) {
	t.Parallel()
	var rrs []*dns.CAA
	huge := strings.Repeat("x", 60000) + "; a"
	for range 2000 {
		rrs = append(rrs, caaRR(0, "issue", huge))
	}
	rrs = append(rrs, caaRR(128, strings.Repeat("\x00", 300), "boom\n"))
	res := EvaluateCAA("example.com", false, caaChain("example.com", map[string]CAALookup{"example.com.": {Records: rrs}}), CAAPolicy{Method: "http-01"})
	if res.Allowed {
		t.Fatal("allowed, want forbidden")
	}
	var fatal, malformed int
	for _, f := range res.Findings {
		if len(f.Detail) > 64<<10 {
			t.Errorf("finding %s detail is %d bytes", f.Code, len(f.Detail))
		}
		if strings.Contains(f.Detail, "boom\n") {
			t.Errorf("finding %s prints a raw newline from the record", f.Code)
		}
		switch f.Code {
		case reports.CodeCAACriticalUnknown:
			fatal++
		case reports.CodeCAAMalformed:
			malformed++
		default:
			t.Errorf("unexpected finding %s", f.Code)
		}
	}
	if fatal != 1 || malformed != caaMaxMalformed {
		t.Errorf("%d fatal and %d malformed findings, want 1 and %d", fatal, malformed, caaMaxMalformed)
	}
}

func TestParseCAAValue(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc       string
		value      string
		wantIssuer string
		wantParams []caaParam
		wantErr    bool
	}{
		{desc: "bare issuer", value: "letsencrypt.org", wantIssuer: "letsencrypt.org"},
		{desc: "empty", value: "", wantIssuer: ""},
		{desc: "semicolon only", value: ";", wantIssuer: ""},
		{desc: "issuer and empty parameter list", value: "letsencrypt.org; \t", wantIssuer: "letsencrypt.org"},
		{desc: "parameters keep order and repeats", value: "ca; a=1; b=x=y ;a=2", wantIssuer: "ca", wantParams: []caaParam{{"a", "1"}, {"b", "x=y"}, {"a", "2"}}},
		{desc: "empty value is allowed", value: "ca; a=", wantIssuer: "ca", wantParams: []caaParam{{"a", ""}}},
		{desc: "empty tag is allowed by Boulder", value: "ca; =v", wantIssuer: "ca", wantParams: []caaParam{{"", "v"}}},
		{desc: "no equals sign", value: "ca; a", wantErr: true},
		{desc: "two empty parameters", value: "ca;;", wantErr: true},
		{desc: "space inside a value", value: "ca; a=b c", wantErr: true},
		{desc: "non-ASCII value", value: "ca; a=é", wantErr: true},
		{desc: "underscore in a tag", value: "ca; a_b=c", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			issuer, params, err := parseCAAValue(tc.value)
			if (err != nil) != tc.wantErr {
				t.Fatalf("parseCAAValue(%q) error %v, want error: %v", tc.value, err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if issuer != tc.wantIssuer || len(params) != len(tc.wantParams) {
				t.Fatalf("parseCAAValue(%q) = %q %v, want %q %v", tc.value, issuer, params, tc.wantIssuer, tc.wantParams)
			}
			for i := range params {
				if params[i] != tc.wantParams[i] {
					t.Errorf("param %d = %v, want %v", i, params[i], tc.wantParams[i])
				}
			}
		})
	}
}
