package reports

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func sighting(vantage string, kind Kind, at time.Time, fs ...Finding) Observation {
	return Observation{Name: "www.example.com", Vantage: Vantage{Name: vantage, Kind: External}, Kind: kind, Start: at, Duration: 2 * time.Second, Findings: fs}
}

func finding(code Code, sev Severity, detail string) Finding {
	return Finding{Code: code, Severity: sev, Name: "www.example.com", Detail: detail}
}

func TestCorrelate(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	attempt := func(typ string) Attempt {
		a := Attempt{Name: "www.example.com", Start: t0, End: t0.Add(5 * time.Second)}
		if typ != "" {
			a.Problem = &Problem{Type: typ, Detail: "the CA's detail"}
		}
		return a
	}
	timeout := finding(CodeHTTP01ConnectTimeout, Error, "127.80.0.1:80: Timeout during connect (likely firewall problem)")
	refused := finding(CodeHTTP01ConnectionRefused, Error, "127.80.0.1:80: Connection refused")
	badStatus := finding(CodeHTTP01BadStatus, Error, "Invalid response from http://www.example.com/.well-known/acme-challenge/x: 404")
	caaMalformed := finding(CodeCAAMalformed, Warning, "CAA 0 issue \";;\" at example.com")
	servfail := finding(CodeDNSServFail, Fatal, "ns1.example.com (127.53.0.1): SERVFAIL for www.example.com A")
	notPropagated := finding(CodeDNS01TXTNotPropagated, Error, "ns2.example.com (127.53.0.2) does not serve the value")
	nsUnreachable := finding(CodeDNSNSUnreachable, Warning, "ns3.example.com (127.53.0.3) does not answer")
	withProblem := finding(CodeDNSSplitHorizon, Warning, "the cluster resolver answers 10.0.0.1").WithProblem(ProblemUnauthorized, "x")

	cases := []struct {
		desc       string
		attempt    Attempt
		sightings  []Observation
		opt        CorrelateOptions
		wantCodes  []Code // ranked prefix of the result; nil: no causes
		wantMatch  bool   // the top cause matches the problem
		wantVant   []string
		wantInEvid string // a substring of the top cause's evidence
	}{
		{
			desc:    "a connection problem is explained by the timeout two vantages saw, not by a malformed CAA all saw",
			attempt: attempt(ProblemConnection),
			sightings: []Observation{
				sighting("us-east", "http-01", t0.Add(-10*time.Second), timeout),
				sighting("eu-west", "http-01", t0.Add(time.Second), timeout),
				sighting("ap-south", "http-01", t0.Add(-5*time.Second)),
				sighting("us-east", "dns", t0.Add(-3*time.Second), caaMalformed),
				sighting("eu-west", "dns", t0.Add(-3*time.Second), caaMalformed),
				sighting("ap-south", "dns", t0.Add(-3*time.Second), caaMalformed),
			},
			wantCodes: []Code{CodeHTTP01ConnectTimeout, CodeCAAMalformed}, wantMatch: true,
			wantVant: []string{"eu-west", "us-east"}, wantInEvid: "eu-west (http-01 probe, during the attempt): 127.80.0.1:80: Timeout during connect",
		},
		{
			desc:    "a dns problem puts one vantage's SERVFAIL above a 404 every vantage saw",
			attempt: attempt(ProblemDNS),
			sightings: []Observation{
				sighting("us-east", "http-01", t0, badStatus),
				sighting("eu-west", "http-01", t0, badStatus),
				sighting("ap-south", "http-01", t0, badStatus),
				sighting("ap-south", "dns", t0.Add(-30*time.Second), servfail),
			},
			wantCodes: []Code{CodeDNSServFail, CodeHTTP01BadStatus}, wantMatch: true,
			wantVant: []string{"ap-south"}, wantInEvid: "ap-south (dns probe, 28s before the attempt): ns1.example.com",
		},
		{
			desc:    "unauthorized: the TXT not on every server ranks above a silent name server",
			attempt: attempt(ProblemUnauthorized),
			sightings: []Observation{
				sighting("us-east", "dns", t0.Add(-time.Second), nsUnreachable, notPropagated),
				sighting("eu-west", "dns", t0.Add(-time.Second), nsUnreachable),
			},
			wantCodes: []Code{CodeDNS01TXTNotPropagated, CodeDNSNSUnreachable}, wantMatch: true, wantVant: []string{"us-east"},
		},
		{
			desc:    "a finding's own problem decides the match: dns.split_horizon carrying unauthorized",
			attempt: attempt(ProblemUnauthorized),
			sightings: []Observation{
				sighting("cluster", "dns", t0, withProblem),
				sighting("us-east", "dns", t0, nsUnreachable),
			},
			wantCodes: []Code{CodeDNSSplitHorizon, CodeDNSNSUnreachable}, wantMatch: true,
			wantInEvid: "cluster (dns probe, during the attempt): x", // the problem's short wording, not the detail
		},
		{
			desc:    "time proximity: the refusal during the attempt ranks above a timeout seen half an hour before",
			attempt: attempt(ProblemConnection),
			sightings: []Observation{
				sighting("us-east", "http-01", t0.Add(-30*time.Minute), timeout),
				sighting("us-east", "tls-alpn-01", t0.Add(2*time.Second), refused),
			},
			wantCodes: []Code{CodeHTTP01ConnectionRefused, CodeHTTP01ConnectTimeout}, wantMatch: true,
		},
		{
			desc:    "the lookback stands in for a vantage with no run in the window, only its newest",
			attempt: attempt(ProblemConnection),
			sightings: []Observation{
				sighting("us-east", "http-01", t0.Add(-50*time.Minute), refused),
				sighting("us-east", "http-01", t0.Add(-40*time.Minute), timeout),
			},
			wantCodes: []Code{CodeHTTP01ConnectTimeout}, wantMatch: true, wantInEvid: "39m58s before the attempt",
		},
		{
			desc:    "no lookback: runs long before the attempt do not count",
			attempt: attempt(ProblemConnection),
			opt:     CorrelateOptions{Lookback: -1},
			sightings: []Observation{
				sighting("us-east", "http-01", t0.Add(-40*time.Minute), timeout),
			},
		},
		{
			desc:    "runs after the window never count, and clean runs give no cause",
			attempt: attempt(ProblemConnection),
			sightings: []Observation{
				sighting("us-east", "http-01", t0.Add(10*time.Minute), timeout),
				sighting("eu-west", "http-01", t0),
			},
		},
		{
			desc:    "the attempt's own codes, other canary runs and quorum verdicts are consequences, not causes",
			attempt: attempt(ProblemConnection),
			sightings: []Observation{
				sighting("", "acme", t0, finding(CodeHTTP01ConnectTimeout, Error, "from the canary")),
				sighting("us-east", "http-01", t0, finding(CodeACMEOrderFailed, Error, ""), finding(CodeMPICQuorumFailed, Fatal, ""),
					finding(CodeRenewalFailed, Error, ""), refused),
			},
			wantCodes: []Code{CodeHTTP01ConnectionRefused}, wantMatch: true,
		},
		{
			desc:    "without a problem from the CA every code is judged on severity, spread and time alone",
			attempt: attempt(""),
			sightings: []Observation{
				sighting("us-east", "dns", t0, caaMalformed, servfail),
			},
			wantCodes: []Code{CodeDNSServFail, CodeCAAMalformed}, wantMatch: false,
		},
		{
			desc:    "a finding seen in one of several runs of a vantage ranks below one seen in all",
			attempt: Attempt{Name: "www.example.com", Start: t0, End: t0.Add(time.Minute), Problem: &Problem{Type: ProblemConnection}},
			sightings: []Observation{
				sighting("us-east", "http-01", t0, refused),
				sighting("us-east", "http-01", t0.Add(20*time.Second), timeout),
				sighting("us-east", "http-01", t0.Add(40*time.Second), timeout),
			},
			wantCodes: []Code{CodeHTTP01ConnectTimeout, CodeHTTP01ConnectionRefused}, wantMatch: true, wantInEvid: "seen in 2 of 3 runs",
		},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			got := Correlate(tc.attempt, tc.sightings, tc.opt)
			if tc.wantCodes == nil {
				if len(got) != 0 {
					t.Fatalf("causes %+v, want none", got)
				}
				return
			}
			if len(got) < len(tc.wantCodes) {
				t.Fatalf("%d causes %+v, want at least %v", len(got), got, tc.wantCodes)
			}
			for i, c := range tc.wantCodes {
				if got[i].Code != c {
					t.Errorf("cause %d: %s (score %.3f), want %s; all: %+v", i, got[i].Code, got[i].Score, c, got)
				}
			}
			for i := 1; i < len(got); i++ {
				if got[i].Score > got[i-1].Score {
					t.Errorf("not ranked: %s %.3f after %s %.3f", got[i].Code, got[i].Score, got[i-1].Code, got[i-1].Score)
				}
			}
			top := got[0]
			if top.Score <= 0 || top.Score > 1 {
				t.Errorf("top score %v, want in (0, 1]", top.Score)
			}
			if top.MatchesProblem != tc.wantMatch {
				t.Errorf("top MatchesProblem %v, want %v", top.MatchesProblem, tc.wantMatch)
			}
			if tc.wantVant != nil && strings.Join(top.Vantages, ",") != strings.Join(tc.wantVant, ",") {
				t.Errorf("top vantages %v, want %v", top.Vantages, tc.wantVant)
			}
			if tc.wantInEvid != "" && !strings.Contains(strings.Join(top.Evidence, "\n"), tc.wantInEvid) {
				t.Errorf("top evidence %q lacks %q", top.Evidence, tc.wantInEvid)
			}
		})
	}
}

// The ideal cause — fatal, every vantage, every run, during the attempt,
// matching — scores exactly 1; the score is a bounded ranking, not a count.
func TestCorrelateScoreBounds(t *testing.T) {
	t0 := time.Now()
	a := Attempt{Name: "a.example", Start: t0, End: t0.Add(time.Second), Problem: &Problem{Type: ProblemDNS}}
	var ss []Observation
	for _, v := range []string{"a", "b", "c"} {
		ss = append(ss, sighting(v, "dns", t0, finding(CodeDNSNXDomain, Fatal, "NXDOMAIN")))
	}
	got := Correlate(a, ss, CorrelateOptions{})
	if len(got) != 1 || got[0].Score != 1 {
		t.Fatalf("got %+v, want one cause scoring 1", got)
	}
}

// Hostile input: many sightings with long, control-laden details. The
// result stays bounded and clean.
func TestCorrelateBounded(t *testing.T) {
	t0 := time.Now()
	a := Attempt{Name: "a.example", Start: t0, End: t0.Add(time.Second), Problem: &Problem{Type: ProblemConnection}}
	long := "\x1b[31m" + strings.Repeat("evil\u202e", 2000)
	var ss []Observation
	for i := range 12_000 {
		fs := []Finding{finding(Code(fmt.Sprintf("x.code_%d", i%50)), Error, long)}
		ss = append(ss, sighting(fmt.Sprintf("v%d", i%100), "http-01", t0.Add(time.Duration(i)*time.Millisecond), fs...))
	}
	got := Correlate(a, ss, CorrelateOptions{})
	if len(got) != maxCauses {
		t.Fatalf("%d causes, want %d", len(got), maxCauses)
	}
	for _, c := range got {
		if len(c.Evidence) > maxCauseEvidence+2 {
			t.Errorf("%s: %d evidence lines", c.Code, len(c.Evidence))
		}
		for _, e := range c.Evidence {
			if utf8.RuneCountInString(e) > maxEvidenceLine {
				t.Errorf("evidence line of %d runes", utf8.RuneCountInString(e))
			}
			if strings.ContainsAny(e, "\x1b\u202e") {
				t.Errorf("evidence keeps control characters: %q", e[:40])
			}
		}
	}
}

func TestExplainFinding(t *testing.T) {
	causes := []Cause{
		{Code: CodeHTTP01ConnectTimeout, Score: 0.91, Severity: Error, Vantages: []string{"eu-west", "us-east"}, MatchesProblem: true,
			Evidence: []string{"eu-west (http-01 probe, during the attempt): Timeout during connect"}},
		{Code: CodeCAAMalformed, Score: 0.2, Severity: Warning, Vantages: []string{"us-east"}},
	}
	cases := []struct {
		desc   string
		causes []Cause
		want   []string
	}{
		{desc: "names the top cause, its vantages and evidence, then the others", causes: causes, want: []string{
			"orig detail\nMost likely root cause: http01.connect_timeout (score 0.91, seen from eu-west, us-east, the kind of problem the CA returned): eu-west (http-01 probe, during the attempt): Timeout during connect.",
			"Also seen: caa.malformed (0.20).",
		}},
		{desc: "no cause says the CA saw what no vantage did", causes: nil, want: []string{"No vantage observed a problem"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			f := ExplainFinding(New(CodeACMEOrderFailed, "www.example.com", "orig detail"), tc.causes)
			for _, w := range tc.want {
				if !strings.Contains(f.Detail, w) {
					t.Errorf("detail %q lacks %q", f.Detail, w)
				}
			}
			b, err := json.Marshal(f)
			if err != nil {
				t.Fatal(err)
			}
			var back struct {
				Evidence struct {
					RootCauses []Cause `json:"root_causes"`
				} `json:"evidence"`
			}
			if err := json.Unmarshal(b, &back); err != nil {
				t.Fatal(err)
			}
			if len(back.Evidence.RootCauses) != len(tc.causes) {
				t.Errorf("evidence.root_causes has %d, want %d: %s", len(back.Evidence.RootCauses), len(tc.causes), b)
			}
			if !strings.Contains(string(b), `"root_causes":[`) {
				t.Errorf("root_causes is not a JSON list: %s", b)
			}
		})
	}
}

func TestRenderCorrelationHTML(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		desc    string
		in      []CorrelatedAttempt
		want    []string
		notWant []string
	}{
		{desc: "nothing for no attempts", in: nil},
		{desc: "ranked causes, escaped", in: []CorrelatedAttempt{{
			Attempt: Attempt{Name: "www.example.com", Start: t0, End: t0.Add(1500 * time.Millisecond),
				Problem: &Problem{Type: ProblemConnection, Detail: "<script>alert(1)</script>"}},
			Causes: []Cause{{Code: CodeHTTP01ConnectionRefused, Score: 0.85, Severity: Error, Vantages: []string{"us-east"}, MatchesProblem: true,
				Evidence: []string{"us-east (http-01 probe, during the attempt): refused <b>"}}},
		}}, want: []string{`id="correlation-www.example.com"`, "2026-03-01T12:00:00Z (1.5s)", "http01.connection_refused", "0.85",
			"matches the CA's problem", "&lt;script&gt;", "refused &lt;b&gt;"}, notWant: []string{"<script>", "<b>"}},
		{desc: "an attempt no vantage explains says so", in: []CorrelatedAttempt{{Attempt: Attempt{Name: "a.example", Start: t0}}},
			want: []string{"No vantage observed a problem"}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var buf bytes.Buffer
			if err := RenderCorrelationHTML(&buf, tc.in); err != nil {
				t.Fatal(err)
			}
			out := buf.String()
			if tc.in == nil && out != "" {
				t.Errorf("wrote %q for no attempts", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q:\n%s", w, out)
				}
			}
		})
	}
}
