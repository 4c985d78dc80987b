package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// demoUniversePort keeps the demo's universe apart from the diagnose
// tests' (53 or 10053) and the daemon tests' (10653).
const demoUniversePort = 11153

// `acmediag testenv demo` as `make demo` runs it, shortened to 25 s: the
// URLs, a progress line, every name's report, and the failing name's
// canary explained by the vantages' observations. 25 s rather than 60: long
// enough on a loaded machine for the dropped vantage's 10 s connect timeout
// and the lagging secondary (half the run) to show.
func TestDemo(t *testing.T) {
	needBinary(t)
	needUniverse(t) // the same prerequisites: Unbound, Pebble's build
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "testenv", "demo", "--seconds", "25", "--port", strconv.Itoa(demoUniversePort))
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	cases := []struct {
		desc string
		re   string
	}{
		{"the page URL", `(?m)^  report page   http://127\.0\.0\.1:\d+/$`},
		{"the metrics URL", `(?m)^  metrics       http://127\.0\.0\.1:\d+/metrics$`},
		{"the API URL", `(?m)^  report API    http://127\.0\.0\.1:\d+/api/v1/report\?name=NAME$`},
		{"a progress line at 10 s with runs done", `(?m)^\[ 10s/25s\] [1-9]\d* probe runs \(.*dns [1-9].*\), \d+ failed · healthy `},
		{"the final progress line", `(?m)^\[ 2[5-9]s/25s\] [1-9]\d* probe runs`},
		{"the healthy name's report, passing", `(?s)━━ 1/5 healthy: web-ipv4-only\.acmeweb\.com \(http-01\).*?\nPASS — no problems found`},
		{"the lagging dns-01 name's report and its propagation", `(?s)━━ 2/5 lag: www\.dns01-ok\.com \(dns-01\).*?propagation of the UPDATE .*\n  us-east   `},
		{"the wildcard's dns-01 canary order, which waited for the lagging secondary", `(?s)━━ 3/5 wildcard: \*\.dns01-ok\.com \(dns-01\).*?\nlast canary order at Pebble \([0-9:]+\): pass — its TXT record reached every authoritative server after ([5-9]|[1-5]\d)\.\ds\n`},
		{"the one-vantage name: a warning, the quorum holds", `(?s)━━ 4/5 partial: (www\.)?mpic-(dns-)?partial\.(acmeweb\.com|net) \(http-01\).*?mpic\.partial.*?MPIC quorum: ok`},
		{"the failing name's report", `(?s)━━ 5/5 failing: web-refused\.acmeweb\.com \(http-01\).*?http01\.connection_refused.*?\nFAIL — `},
		{"its failed canary order", `(?m)^last canary order at Pebble \([0-9:]+\): FAILED — urn:ietf:params:acme:error:connection: `},
		{"its ranked root cause", `(?m)^  1\. http01\.connection_refused +score 0\.\d+  seen from ap-south, eu-west, us-east  \(matches the CA's problem\)$`},
		{"the root cause in acme.order_failed's detail", `Most likely root cause: http01\.connection_refused`},
		{"the summary", `(?m)^demo: 5 names, 4 would pass and 1 would fail at Let's Encrypt now; \d+ probe runs`},
	}
	for _, tc := range cases {
		if !regexp.MustCompile(tc.re).MatchString(out) {
			t.Errorf("%s: no match for %s", tc.desc, tc.re)
		}
	}
	if t.Failed() {
		t.Logf("stdout:\n%s\nstderr:\n%s", out, stderr.String())
	}
}

// The API and page explain a failed canary order with the observations
// around it; a canary that failed for another reason (the directory was
// down) is not correlated.
func TestServerCorrelatesCanary(t *testing.T) {
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	us := probes.Vantage{Name: "us", Kind: probes.KindExternal, RIR: "ARIN"}
	eu := probes.Vantage{Name: "eu", Kind: probes.KindExternal, RIR: "RIPE"}
	bad := probes.Target{Name: "bad.example.com", Challenge: "http-01"}
	down := probes.Target{Name: "down.example.com", Challenge: "http-01"}
	refused := reports.New(reports.CodeHTTP01ConnectionRefused, bad.Name, "192.0.2.1:80 refused").
		WithProblem(reports.ProblemConnection, "192.0.2.1: Fetching http://bad.example.com/x: Connection refused")
	caa := reports.New(reports.CodeCAAMalformed, bad.Name, "CAA 0 issue \";\"")
	problem := &reports.Problem{Type: reports.ProblemConnection, Detail: "Connection refused"}
	orderFailed := reports.New(reports.CodeACMEOrderFailed, bad.Name, problem.Type+": "+problem.Detail).WithProblem(problem.Type, problem.Detail)
	obs := []probes.Observation{
		{Target: bad, Vantage: us, Kind: "http-01", Start: t0.Add(-3 * time.Second), Duration: time.Second, Findings: []reports.Finding{refused}},
		{Target: bad, Vantage: eu, Kind: "http-01", Start: t0.Add(-2 * time.Second), Duration: time.Second, Findings: []reports.Finding{refused}},
		{Target: bad, Vantage: us, Kind: "dns", Start: t0.Add(-2 * time.Second), Duration: time.Second, Findings: []reports.Finding{caa}, OK: true},
		{Target: bad, Vantage: probes.Vantage{Kind: probes.KindExternal}, Kind: "acme", Start: t0, Duration: 2 * time.Second,
			Findings: []reports.Finding{orderFailed}, Trace: canary.Outcome{Problem: problem}},
		{Target: down, Vantage: probes.Vantage{Kind: probes.KindExternal}, Kind: "acme", Start: t0, Duration: time.Second,
			Findings: []reports.Finding{reports.New(reports.CodeACMEDirectoryUnreachable, down.Name, "connection refused")}},
	}
	st := &daemonState{
		targets:  []probes.Target{bad, down},
		vantages: []probes.Vantage{us, eu},
		canary:   &canarySettings{Interval: time.Hour, Names: []string{bad.Name, down.Name}},
		api:      apiSettings{MaxConcurrent: 2, MaxObservations: 100},
	}
	s := newAPIServer(zaptest.NewLogger(t), prometheus.NewRegistry(), &fakeSource{obs: obs}, func() bool { return true },
		func() *daemonState { return st }, "test", 2)
	srv := httptest.NewServer(s.handler())
	defer srv.Close()

	var rep reports.Report
	if err := json.Unmarshal([]byte(getOK(t, srv.URL+"/api/v1/report")), &rep); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc       string
		name       string
		code       reports.Code
		wantDetail string // "" : the finding must carry no correlation
		wantTop    string
	}{
		{desc: "a refused validation is explained by the refusals both vantages saw", name: bad.Name, code: reports.CodeACMEOrderFailed,
			wantDetail: "Most likely root cause: http01.connection_refused (score ", wantTop: "http01.connection_refused"},
		{desc: "a directory that is down is not correlated", name: down.Name, code: reports.CodeACMEDirectoryUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var f *reports.Finding
			for i := range rep.Findings {
				if rep.Findings[i].Name == tc.name && rep.Findings[i].Code == tc.code {
					f = &rep.Findings[i]
				}
			}
			if f == nil {
				t.Fatalf("no %s finding for %s in %+v", tc.code, tc.name, rep.Findings)
			}
			if tc.wantDetail == "" {
				if strings.Contains(f.Detail, "root cause") || f.Evidence["root_causes"] != nil {
					t.Errorf("correlated: %+v", f)
				}
				return
			}
			if !strings.Contains(f.Detail, tc.wantDetail) {
				t.Errorf("detail %q lacks %q", f.Detail, tc.wantDetail)
			}
			causes, _ := f.Evidence["root_causes"].([]any)
			if len(causes) < 2 {
				t.Fatalf("evidence.root_causes %v, want the refusal and the CAA warning", f.Evidence["root_causes"])
			}
			if top, _ := causes[0].(map[string]any); top["code"] != tc.wantTop || top["matches_problem"] != true {
				t.Errorf("top cause %v, want %s matching the problem", top, tc.wantTop)
			}
		})
	}

	page := getOK(t, srv.URL+"/")
	sec, canaryAt := strings.Index(page, "Last canary: likely root causes"), strings.Index(page, "<h2>Canary orders</h2>")
	if sec < 0 || canaryAt < 0 || sec > canaryAt {
		t.Errorf("the page has no correlation section before the canary table (at %d, canary at %d)", sec, canaryAt)
	}
	for _, want := range []string{`id="correlation-bad.example.com"`, "http01.connection_refused</span> ✓ matches the CA's problem"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, `id="correlation-down.example.com"`) {
		t.Error("the page correlates a canary that never reached validation")
	}
}

// Every acmediag_* metric the daemon exports has a row in the README's
// Metrics table, with its type.
func TestMetricsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := parseConfig("config.yaml", []byte("dns: {resolvers: [127.0.0.1]}\nvantages: [{name: a, rir: ARIN}, {name: b, rir: RIPE}]\ntargets: [{name: a.example.com}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	d := newDaemon(cfg, zaptest.NewLogger(t))
	// One observation, so every labelled series exists.
	for _, v := range cfg.Vantages {
		o := probes.Observation{Target: cfg.Targets[0], Vantage: v, Kind: "dns", Start: time.Now(), Duration: time.Millisecond,
			Findings: []reports.Finding{reports.New(reports.CodeDNSSerialMismatch, "a.example.com", "ns2 serves 1000")}, OK: true}
		d.store.Add(o)
		d.metrics.Observe(o)
	}
	mfs, err := d.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]string{"COUNTER": "counter", "GAUGE": "gauge", "HISTOGRAM": "histogram"}
	var n int
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "acmediag_") {
			continue
		}
		n++
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(name) + "` \\| (\\w+) \\|")
		m := row.FindSubmatch(readme)
		switch {
		case m == nil:
			t.Errorf("%s is not documented in the README's Metrics table", name)
		case string(m[1]) != types[mf.GetType().String()]:
			t.Errorf("%s: the README says %s, it is a %s", name, m[1], mf.GetType())
		}
	}
	if n < 10 {
		t.Errorf("only %d acmediag_ metrics gathered; the test no longer sees them all", n)
	}
}
