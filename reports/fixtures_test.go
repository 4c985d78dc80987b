package reports

import "time"

// sampleReport is a finalized report over two names with findings of every
// severity, vantages, a quorum and checks.
func sampleReport() *Report {
	r := &Report{
		Names:     []string{"a.example", "b.example"},
		Challenge: "http-01",
		Vantages:  []VantageResult{{Vantage: Vantage{Name: "local"}, OK: false}, {Vantage: Vantage{Name: "eu-west"}, OK: true}},
		Quorum:    ComputeQuorum([]VantageResult{ext("local", "ARIN", false), ext("eu-west", "RIPE", true), ext("ap", "APNIC", true)}),
		Checks: []Check{
			{Name: "dns.delegation", Target: "a.example", Status: CheckOK, Duration: 3 * time.Millisecond},
			{Name: "dns.caa", Target: "a.example", Status: CheckFail, Duration: 1500 * time.Microsecond, Note: "CAA at example"},
			{Name: "http01.fetch", Target: "a.example", Status: CheckSkipped},
		},
		Duration: 41 * time.Millisecond,
	}
	r.Add(
		New(CodeHTTP01ConnectTimeout, "a.example", "203.0.113.7:80: dial tcp: i/o timeout after 10s (IPv4)").
			WithProblem(ProblemConnection, "203.0.113.7: Fetching http://a.example/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"),
		New(CodeCAAForbidden, "a.example", "CAA set at example:\n0 issue \"digicert.com\"\n0 iodef \"mailto:sec@example\"").
			WithProblem(ProblemCAA, "While processing CAA for a.example: CAA record for example prevents issuance").
			With("zone", "example").With("records", []any{"0 issue \"digicert.com\""}),
		New(CodeDNSNSUnreachable, "a.example", "ns2.example (192.0.2.53) did not answer over UDP or TCP within 2s"),
		New(CodeMPICPartial, "a.example", "1 of 3 external perspectives failed: local"),
		func() Finding {
			f := New(CodeHTTP01SlowResponse, "a.example", "first byte after 4.2s")
			f.Vantage = "eu-west"
			return f
		}(),
		New(CodeDNSNegativeTTLHigh, "b.example", "SOA minimum 86400 s at example"),
		Finding{Code: "dns.info_only", Severity: Info, Name: "b.example", Summary: "just so you know", Detail: "x"},
	)
	r.Finalize()
	return r
}

// hostileDetail is what a zone owner could put in a TXT record: terminal
// escapes (clear screen, colour, window title), a carriage return to
// overwrite the line, a bidi override, a C1 CSI, NUL and a tab.
const hostileDetail = "TXT \"\x1b[2J\x1b[31mRED\x1b[0m\" \x1b]0;pwned title\x07at ns1\rOVERWRITE \u202eesrever\u009b31mC1\x00nul\ttab"

// hostileDetailClean is hostileDetail as the text renderer must show it.
var hostileDetailClean = []string{`TXT "RED" at ns1`, "OVERWRITE esreverC1nul tab"}

func hostileReport() *Report {
	r := &Report{Names: []string{"evil.example"}, Challenge: "dns-01"}
	r.Add(New(CodeDNS01TXTWrongValue, "evil.example", hostileDetail).
		WithProblem(ProblemUnauthorized, "Incorrect TXT record \"\x1b[5mblink\x1b[0m\" found at _acme-challenge.evil.example"))
	r.Finalize()
	return r
}
