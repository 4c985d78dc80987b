package reports

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// outcome is one vantage's run in a test case, turned into an Observation.
type outcome struct {
	Vantage  string
	Name     string
	Findings []Finding
	Failed   bool // could not judge: not OK without a finding
}

func observationsOf(vantages []Vantage, outs []outcome) []Observation {
	var obs []Observation
	for _, o := range outs {
		v := Vantage{Name: o.Vantage}
		for _, w := range vantages {
			if w.Name == o.Vantage {
				v = w
			}
		}
		ob := Observation{Name: o.Name, Challenge: HTTP01, Vantage: v, Kind: "http-01", Findings: o.Findings}.Finish()
		ob.OK = ob.OK && !o.Failed
		obs = append(obs, ob)
	}
	return obs
}

func subjectsOf(names ...string) []Subject {
	out := make([]Subject, len(names))
	for i, n := range names {
		out[i] = Subject{Name: n, Challenge: HTTP01}
	}
	return out
}

func TestAssemble(t *testing.T) {
	t.Parallel()
	us := Vantage{Name: "us", RIR: "ARIN", Kind: External}
	eu := Vantage{Name: "eu", RIR: "RIPE", Kind: External}
	ap := Vantage{Name: "ap", RIR: "APNIC", Kind: External}
	k8s := Vantage{Name: "k8s", Kind: Cluster}
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
		vantages []Vantage
		outcomes []outcome
		want     []want
		verdict  Verdict
		quorum   bool // a quorum is reported
		quorumOK bool
	}{
		{desc: "one vantage: no vantage labels, no quorum",
			vantages: []Vantage{{Name: "local", Kind: External}},
			outcomes: []outcome{{Vantage: "local", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:     []want{{CodeHTTP01ConnectTimeout, "", Error, ""}}, verdict: VerdictFail},
		// Every perspective failing alike is the cause's finding, not the
		// quorum's (whose fix is about geo-blocking); the quorum stays in
		// the report.
		{desc: "seen from every vantage: reported once, the cause leads without a quorum finding",
			vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "the same problem seen from every vantage, details naming each source: reported once",
			vantages: []Vantage{us, eu},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("dial tcp 127.10.0.1:0->192.0.2.1:80: i/o timeout")}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("dial tcp 127.10.0.2:0->192.0.2.1:80: i/o timeout")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "nothing listens: refused from every vantage, the cause leads",
			vantages: []Vantage{us, eu, ap, k8s},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{refused}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{refused}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{refused}}, {Vantage: "k8s", Name: "a.com", Findings: []Finding{refused}}},
			want:    []want{{CodeHTTP01ConnectionRefused, "", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "a secondary lacks the TXT: every vantage fails on it, some resolvers also miss it: the shared cause leads",
			vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{notPropagated, txtMissing}},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{notPropagated}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{notPropagated, txtMissing}}},
			want:    []want{{CodeDNS01TXTNotPropagated, "", Error, ""}, {CodeDNS01TXTMissing, "us", Error, ""}, {CodeDNS01TXTMissing, "ap", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "every external vantage fails alike, the cluster passes: per vantage, no quorum finding",
			vantages: []Vantage{us, eu, k8s},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "k8s", Name: "a.com"}},
			want:    []want{{CodeHTTP01ConnectTimeout, "us", Error, ""}, {CodeHTTP01ConnectTimeout, "eu", Error, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "every vantage fails, each for a reason of its own: the quorum finding stays",
			vantages: []Vantage{us, eu},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{refused}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "us", Error, ""}, {CodeHTTP01ConnectionRefused, "eu", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "every vantage fails, one without a finding of its own (agent down): the quorum finding stays",
			vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "ap", Name: "a.com", Failed: true}},
			want:    []want{{CodeHTTP01ConnectTimeout, "us", Error, ""}, {CodeHTTP01ConnectTimeout, "eu", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "one of three fails: quorum holds, a warning",
			vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "ap", Name: "a.com"}},
			want:    []want{{CodeHTTP01ConnectTimeout, "eu", Warning, ""}, {CodeMPICPartial, "", Warning, ""}},
			verdict: VerdictWarn, quorum: true, quorumOK: true},
		{desc: "two of three fail: quorum fails",
			vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}},
				{Vantage: "ap", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "eu", Error, ""}, {CodeHTTP01ConnectTimeout, "ap", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "passing perspectives in one RIR only: quorum fails",
			vantages: []Vantage{us, {Name: "us2", RIR: "ARIN", Kind: External}, eu},
			outcomes: []outcome{{Vantage: "us", Name: "a.com"}, {Vantage: "us2", Name: "a.com"},
				{Vantage: "eu", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "eu", Error, ""}, {CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "a vantage that could not judge (agent down) fails without a finding",
			vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com", Failed: true},
				{Vantage: "ap", Name: "a.com", Failed: true}},
			want:    []want{{CodeMPICQuorumFailed, "", Fatal, ""}},
			verdict: VerdictFail, quorum: true},
		{desc: "only the cluster vantage fails: self-check",
			vantages: []Vantage{us, eu, k8s},
			outcomes: []outcome{{Vantage: "us", Name: "a.com"}, {Vantage: "eu", Name: "a.com"},
				{Vantage: "k8s", Name: "a.com", Findings: []Finding{timeout("x")}}},
			want:    []want{{CodeHTTP01ConnectTimeout, "k8s", Warning, ""}, {CodeVantageSelfCheckOnly, "", Warning, ""}},
			verdict: VerdictWarn, quorum: true, quorumOK: true},
		// The CA judges each authorization's quorum on its own.
		{desc: "two names, each failing from another vantage: each name's quorum holds",
			names: []string{"a.com", "b.com"}, vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
				{Vantage: "us", Name: "a.com", Findings: []Finding{timeout("x")}}, {Vantage: "us", Name: "b.com"},
				{Vantage: "eu", Name: "a.com"}, {Vantage: "eu", Name: "b.com", Findings: []Finding{timeoutAt("b.com", "x")}},
				{Vantage: "ap", Name: "a.com"}, {Vantage: "ap", Name: "b.com"}},
			want: []want{{CodeHTTP01ConnectTimeout, "us", Warning, ""}, {CodeHTTP01ConnectTimeout, "eu", Warning, "b.com"},
				{CodeMPICPartial, "", Warning, ""}, {CodeMPICPartial, "", Warning, "b.com"}},
			verdict: VerdictWarn, quorum: true, quorumOK: true},
		{desc: "one name fails everywhere, another from one vantage: only the first fails its quorum",
			names: []string{"a.com", "b.com"}, vantages: []Vantage{us, eu, ap},
			outcomes: []outcome{
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
			r := Assemble(subjectsOf(names...), tc.vantages, observationsOf(tc.vantages, tc.outcomes), time.Millisecond)
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

// When the CA's problem and a probe point to the same finding code for the
// same name, the report holds one finding with both as evidence; a code
// only the CA's order has stays a finding of its own.
func TestAssembleCauseReadsOnce(t *testing.T) {
	t.Parallel()
	us := Vantage{Name: "us", RIR: "ARIN", Kind: External}
	eu := Vantage{Name: "eu", RIR: "RIPE", Kind: External}
	refused := func(detail string) Finding {
		return New(CodeHTTP01ConnectionRefused, "a.com", detail).WithProblem(ProblemConnection, "192.0.2.1: Connection refused")
	}
	ca := Observation{Name: "a.com", Kind: "acme", Findings: []Finding{
		New(CodeACMEOrderFailed, "a.com", "the order failed").WithProblem(ProblemConnection, "the CA's own words"),
		New(CodeHTTP01ConnectionRefused, "a.com", "the CA's problem is a refused connection").WithProblem(ProblemConnection, "the CA's own words"),
	}}.Finish()
	obs := []Observation{
		{Name: "a.com", Vantage: us, Kind: "http-01", Findings: []Finding{refused("dial from us")}},
		{Name: "a.com", Vantage: eu, Kind: "http-01", Findings: []Finding{refused("dial from eu")}},
		ca,
	}
	r := Assemble(subjectsOf("a.com"), []Vantage{us, eu}, obs, time.Millisecond)
	var n int
	for _, f := range r.Findings {
		if f.Code != CodeHTTP01ConnectionRefused {
			continue
		}
		n++
		also, _ := f.Evidence["also_seen_by"].([]string)
		if len(also) != 1 || !strings.Contains(also[0], "the CA's own words") {
			t.Errorf("also_seen_by %v, want the CA's problem", f.Evidence["also_seen_by"])
		}
	}
	if n != 1 {
		t.Errorf("%d http01.connection_refused findings, want the cause once: %+v", n, r.Findings)
	}
	if !slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.Code == CodeACMEOrderFailed }) {
		t.Errorf("acme.order_failed is gone: %+v", r.Findings)
	}
}
