package reports

import (
	"strings"
	"testing"
	"time"
)

func TestAssemble(t *testing.T) {
	t.Parallel()
	us := VantageInfo{Name: "us", RIR: "ARIN", External: true}
	eu := VantageInfo{Name: "eu", RIR: "RIPE", External: true}
	ap := VantageInfo{Name: "ap", RIR: "APNIC", External: true}
	k8s := VantageInfo{Name: "k8s", External: false}
	timeoutAt := func(name, detail string) Finding {
		return New(CodeHTTP01ConnectTimeout, name, detail).WithProblem(ProblemConnection, "192.0.2.1: Timeout during connect (likely firewall problem)")
	}
	timeout := func(detail string) Finding { return timeoutAt("a.com", detail) }
	refused := New(CodeHTTP01ConnectionRefused, "a.com", "x").WithProblem(ProblemConnection, "192.0.2.1: Connection refused")
	notPropagated := New(CodeDNS01TXTNotPropagated, "a.com", "missing at ns2.a.com (192.0.2.53)")
	txtMissing := New(CodeDNS01TXTMissing, "a.com", "resolver: NXDOMAIN").WithProblem(ProblemDNS, "DNS problem: NXDOMAIN looking up TXT for _acme-challenge.a.com")
	type want struct {
		code     Code
		vantage  string
		severity Severity
		name     string // "" → a.com
	}
	cases := []struct {
		desc     string
		names    []string // nil → a.com
		vantages []VantageInfo
		outcomes []Outcome
		want     []want
		verdict  Verdict
		quorum   bool // a quorum is reported
		quorumOK bool
	}{
		{desc: "one vantage: no vantage labels, no quorum",
			vantages: []VantageInfo{{Name: "local", External: true}},
			outcomes: []Outcome{{Vantage: "local", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:     []want{{CodeHTTP01ConnectTimeout, "", Error, ""}}, verdict: VerdictFail},
		// Every perspective failing alike is the cause's finding, not the
		// quorum's (whose fix is about geo-blocking); the quorum stays in
		// the report.
		{desc: "seen from every vantage: reported once, the cause leads without a quorum finding",
			vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "the same problem seen from every vantage, details naming each source: reported once",
			vantages: []VantageInfo{us, eu},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("dial tcp 127.10.0.1:0->192.0.2.1:80: i/o timeout")}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("dial tcp 127.10.0.2:0->192.0.2.1:80: i/o timeout")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "nothing listens: refused from every vantage, the cause leads",
			vantages: []VantageInfo{us, eu, ap, k8s},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{refused}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{refused}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{refused}}, {Vantage: "k8s", Name: "a.com", Findings: []Finding{refused}}},
			want:    []want{{CodeHTTP01ConnectionRefused, "", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "a secondary lacks the TXT: every vantage fails on it, some resolvers also miss it: the shared cause leads",
			vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{notPropagated, txtMissing}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{notPropagated}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{notPropagated, txtMissing}}},
			want:    []want{{CodeDNS01TXTNotPropagated, "", Error, ""}, {CodeDNS01TXTMissing, "us", Error, ""}, {CodeDNS01TXTMissing, "ap", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "every external vantage fails alike, the cluster passes: per vantage, no quorum finding",
			vantages: []VantageInfo{us, eu, k8s},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "k8s", Name: "a.com"}},
			want:    []want{{CodeHTTP01ConnectTimeout, "us", Error, ""}, {CodeHTTP01ConnectTimeout, "eu", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "every vantage fails, each for a reason of its own: the quorum finding stays",
			vantages: []VantageInfo{us, eu},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{refused}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "us", Error, ""}, {CodeHTTP01ConnectionRefused, "eu", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "every vantage fails, one without a finding of its own (agent down): the quorum finding stays",
			vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "ap", Name: "a.com", Failed: true}},
			want:    []want{{CodeHTTP01ConnectTimeout, "us", Error, ""}, {CodeHTTP01ConnectTimeout, "eu", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "one of three fails: quorum holds, a warning",
			vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "ap", Name: "a.com"}},
			want:    []want{{CodeHTTP01ConnectTimeout, "eu", Warning, ""}, {CodeMPICPartial, "", Warning, ""}},
			verdict: VerdictWarn, quorum: true, quorumOK: true},
		{desc: "two of three fail: quorum fails",
			vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "eu", Error, ""}, {CodeHTTP01ConnectTimeout, "ap", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "passing perspectives in one RIR only: quorum fails",
			vantages: []VantageInfo{us, {Name: "us2", RIR: "ARIN", External: true}, eu},
			outcomes: []Outcome{{Vantage: "us", Name: "a.com"}, {Vantage: "us2", Name: "a.com"},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "eu", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "a vantage that could not judge (agent down) fails without a finding",
			vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com", Failed: true},
				{Vantage: "ap", Name: "a.com", Failed: true}},
			want:    []want{{CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "only the cluster vantage fails: self-check",
			vantages: []VantageInfo{us, eu, k8s},
			outcomes: []Outcome{{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com"},
				{Vantage: "k8s", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "k8s", Warning, ""}, {CodeVantageSelfCheckOnly, "", Warning, ""}},
			verdict: VerdictWarn, quorum: true, quorumOK: true},
		// The CA judges each authorization's quorum on its own.
		{desc: "two names, each failing from another vantage: each name's quorum holds",
			names: []string{"a.com", "b.com"}, vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "us", Name: "b.com"},
				{Vantage: "eu", Name: "a.com"}, {Vantage: "eu", Name: "b.com", Findings: []Finding{timeoutAt("b.com", "x")}},
				{Vantage: "ap", Name: "a.com"}, {Vantage: "ap", Name: "b.com"}},
			want: []want{{CodeHTTP01ConnectTimeout, "us", Warning, ""}, {CodeHTTP01ConnectTimeout, "eu", Warning, "b.com"},
				{CodeMPICPartial, "", Warning, ""}, {CodeMPICPartial, "", Warning, "b.com"}},
			verdict: VerdictWarn, quorum: true, quorumOK: true},
		{desc: "one name fails everywhere, another from one vantage: only the first fails its quorum",
			names: []string{"a.com", "b.com"}, vantages: []VantageInfo{us, eu, ap},
			outcomes: []Outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "us", Name: "b.com", Findings: []Finding{timeoutAt("b.com", "x")}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "b.com"},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "ap", Name: "b.com"}},
			want: []want{{CodeHTTP01ConnectTimeout, "", Error, ""},
				{CodeHTTP01ConnectTimeout, "us", Warning, "b.com"}, {CodeMPICPartial, "", Warning, "b.com"}},
			verdict: VerdictFail, quorum: true},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			names := tc.names
			if names == nil {
				names = []string{"a.com"}
			}
			r := Assemble(names, "http-01", tc.vantages, tc.outcomes, time.Millisecond)
			if r.Verdict != tc.verdict {
				t.Errorf("verdict %s, want %s", r.Verdict, tc.verdict)
			}
			if (r.Quorum != nil) != tc.quorum || r.Quorum != nil && r.Quorum.OK != tc.quorumOK {
				t.Errorf("quorum %+v, want present=%v ok=%v", r.Quorum, tc.quorum, tc.quorumOK)
			}
			// Several names: the quorum shown is the one closest to failing,
			// named (a.com in both cases); one name: no name.
			if r.Quorum != nil && (len(names) > 1) != (r.Quorum.Name == "a.com") {
				t.Errorf("quorum of %q, want a.com for several names, none for one", r.Quorum.Name)
			}
			if len(r.Findings) != len(tc.want) {
				t.Fatalf("findings %+v, want %d", r.Findings, len(tc.want))
			}
			for _, w := range tc.want {
				name := w.name
				if name == "" {
					name = "a.com"
				}
				found := false
				for _, f := range r.Findings {
					found = found || f.Code == w.code && f.Vantage == w.vantage && f.Severity == w.severity && f.Name == name
				}
				if !found {
					t.Errorf("no %s %s for %s from vantage %q in %+v", w.severity, w.code, name, w.vantage, r.Findings)
				}
			}
			for _, f := range r.Findings {
				if f.Problem != nil && f.Vantage != "" && f.Vantage != "k8s" && !strings.HasPrefix(f.Problem.Detail, "During secondary validation: ") {
					t.Errorf("vantage-specific problem %q lacks Boulder's secondary-validation prefix", f.Problem.Detail)
				}
			}
			if len(r.Vantages) != len(tc.vantages) {
				t.Errorf("vantages %+v", r.Vantages)
			}
		})
	}
}
