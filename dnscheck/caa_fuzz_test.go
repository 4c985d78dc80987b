package dnscheck

import (
	"errors"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

// FuzzEvaluateCAA builds CAA RRsets from the input and checks that evaluation
// never panics and keeps its promises: allowed means no fatal finding, refused
// means exactly one, and a refusal always carries an ACME problem.
//
// Input format: levels (closest first) separated by "|"; a level "!" is a
// failed lookup; otherwise records separated by "\n", each "<flag byte><tag>
// <value>" (tag and value split at the first space).
func FuzzEvaluateCAA(f *testing.F) {
	f.Add("|\x00issue letsencrypt.org|", false, "http-01", "")
	f.Add("\x00issue letsencrypt.org; accounturi=https://a/1; validationmethods=http-01", false, "http-01", "https://a/1")
	f.Add("\x80tbs x\n\x00issue letsencrypt.org", true, "dns-01", "")
	f.Add("!|\x00issue ;", false, "http-01", "")
	f.Add("|\x00issuewild letsencrypt.org.\n\x00issue letsencrypt.org; a=b;", true, "dns-01", "https://a/1")
	f.Add("\x01ISSUE letsencrypt.org; validationmethods=HTTP-01,dns_01\n\x00iodef", false, "", "")
	f.Fuzz(func(t *testing.T, input string, wildcard bool, method, account string) {
		levels := strings.Split(input, "|")
		if len(levels) > 12 {
			levels = levels[:12]
		}
		lookups := make([]CAALookup, 0, len(levels))
		for i, lv := range levels {
			label := strings.Repeat("x.", len(levels)-1-i) + "com."
			if lv == "!" {
				lookups = append(lookups, CAALookup{Label: label, Err: errors.New("SERVFAIL")})
				continue
			}
			var rrs []*dns.CAA
			for _, line := range strings.Split(lv, "\n") {
				if line == "" {
					continue
				}
				tag, value, _ := strings.Cut(line[1:], " ")
				rrs = append(rrs, &dns.CAA{Flag: line[0], Tag: tag, Value: value})
			}
			lookups = append(lookups, CAALookup{Label: label, Records: rrs})
		}
		name := strings.TrimSuffix(lookups[0].Label, ".")
		res := EvaluateCAA(name, wildcard, lookups, CAAPolicy{Method: reports.Challenge(method), AccountURI: account})

		fatal := 0
		for _, fd := range res.Findings {
			if fd.Severity == reports.Fatal {
				fatal++
				if fd.Problem == nil || !strings.HasPrefix(fd.Problem.Detail, "While processing CAA for ") {
					t.Errorf("fatal finding %s without a Boulder-style problem: %+v", fd.Code, fd.Problem)
				}
			}
		}
		if res.Allowed && fatal != 0 {
			t.Fatalf("allowed with %d fatal findings: %+v", fatal, res.Findings)
		}
		if !res.Allowed && fatal != 1 {
			t.Fatalf("refused with %d fatal findings, want 1: %+v", fatal, res.Findings)
		}
		if res.FoundAt != "" && len(res.Relevant) == 0 {
			t.Fatalf("FoundAt %q with no relevant records", res.FoundAt)
		}
	})
}
