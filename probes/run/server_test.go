package run

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// blockingStore holds every Latest until block is closed (to fill the
// API's concurrency slots).
type blockingStore struct {
	*probes.Store
	block chan struct{}
}

func (b blockingStore) Latest(name string) []reports.Observation {
	<-b.block
	return b.Store.Latest(name)
}

// testPlan is a plan of three targets (two http-01, one dns-01) from one
// vantage, built as the daemon builds it; tweak changes the settings.
func testPlan(t *testing.T, tweak func(*probes.Settings)) *probes.Plan {
	t.Helper()
	s := probes.DefaultSettings()
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Vantages = []probes.VantageSettings{{Name: "us", Kind: "external", RIR: "ARIN"}}
	s.Targets = []probes.Target{{Name: "ok.example.com", Challenge: "http-01"}, {Name: "bad.example.com", Challenge: "http-01"},
		{Name: "new.example.com", Challenge: "dns-01"}}
	s.API.MaxConcurrent, s.API.MaxObservations = 2, 3
	if tweak != nil {
		tweak(&s)
	}
	p, err := probes.Build(s, probes.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var us = reports.Vantage{Name: "us", Kind: reports.External, RIR: "ARIN"}

func testStore(t0 time.Time) *probes.Store {
	store := probes.NewStore(probes.StoreLimits{})
	for i := range 4 {
		store.Add(reports.Observation{Name: "ok.example.com", Challenge: "http-01", Vantage: us, Kind: "dns",
			Start: t0.Add(time.Duration(i) * time.Minute), OK: true,
			Checks: []reports.Check{{Name: "dns.delegation", Target: "ok.example.com", Status: reports.CheckOK}}})
	}
	store.Add(reports.Observation{Name: "bad.example.com", Challenge: "http-01", Vantage: us, Kind: "dns", Start: t0, OK: false,
		Findings: []reports.Finding{reports.New(reports.CodeDNSNXDomain, "bad.example.com", "NXDOMAIN from ns1")}})
	return store
}

func newTestServer(t *testing.T, p *probes.Plan, src observationSource, ready func() bool) *apiServer {
	return newAPIServer(zaptest.NewLogger(t), prometheus.NewRegistry(), src, ready, func() *probes.Plan { return p }, "test",
		p.Settings.API)
}

func TestAPIServer(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ready := false
	var mu sync.Mutex
	s := newTestServer(t, testPlan(t, nil), testStore(t0), func() bool { mu.Lock(); defer mu.Unlock(); return ready })
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	get := func(path string) (int, string, http.Header) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	if code, _, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d", code)
	}
	mu.Lock()
	ready = true
	mu.Unlock()

	cases := []struct {
		desc     string
		path     string
		wantCode int
		check    func(t *testing.T, body string, h http.Header)
	}{
		{desc: "healthz", path: "/healthz", wantCode: 200},
		{desc: "readyz once ready", path: "/readyz", wantCode: 200},
		{desc: "metrics", path: "/metrics", wantCode: 200},
		{desc: "unknown path", path: "/nope", wantCode: 404},
		{desc: "observations are bounded to the newest", path: "/api/v1/observations?name=ok.example.com", wantCode: 200,
			check: func(t *testing.T, body string, h http.Header) {
				var obs []reports.Observation
				if err := json.Unmarshal([]byte(body), &obs); err != nil {
					t.Fatal(err)
				}
				if len(obs) != 3 || !obs[2].Start.Equal(t0.Add(3*time.Minute)) || h.Get("X-Acmediag-Truncated") != "true" {
					t.Errorf("%d observations, last %v, truncated %q", len(obs), obs[len(obs)-1].Start, h.Get("X-Acmediag-Truncated"))
				}
				for _, o := range obs {
					if o.Kind != "dns" || o.Findings == nil {
						t.Errorf("observation %+v", o)
					}
				}
			}},
		{desc: "since filters", path: "/api/v1/observations?name=OK.example.com&since=2026-03-01T12:02:30Z", wantCode: 200,
			check: func(t *testing.T, body string, h http.Header) {
				if n := strings.Count(body, `"kind"`); n != 1 || h.Get("X-Acmediag-Truncated") != "false" {
					t.Errorf("%d observations since 12:02:30, want 1", n)
				}
			}},
		{desc: "bad since", path: "/api/v1/observations?since=12:00", wantCode: 400},
		{desc: "bad limit", path: "/api/v1/observations?limit=-1", wantCode: 400},
		{desc: "unknown name", path: "/api/v1/report?name=other.example.com", wantCode: 404},
		{desc: "report of a failing name", path: "/api/v1/report?name=bad.example.com", wantCode: 200,
			check: func(t *testing.T, body string, _ http.Header) {
				var r reports.Report
				if err := json.Unmarshal([]byte(body), &r); err != nil {
					t.Fatal(err)
				}
				if r.Verdict != reports.VerdictFail || len(r.Findings) != 1 || r.Findings[0].Code != reports.CodeDNSNXDomain {
					t.Errorf("report %+v", r)
				}
			}},
		{desc: "a name not probed yet is pending, not passing by omission", path: "/api/v1/report?name=new.example.com", wantCode: 200,
			check: func(t *testing.T, body string, _ http.Header) {
				if !strings.Contains(body, `"probe.pending"`) {
					t.Errorf("no probe.pending check: %s", body)
				}
			}},
		{desc: "page", path: "/", wantCode: 200, check: func(t *testing.T, body string, h http.Header) {
			// No script at all; forms post only back here (the re-probe button).
			if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self'") {
				t.Errorf("CSP %q", h.Get("Content-Security-Policy"))
			}
			for _, want := range []string{"ok.example.com", "bad.example.com", "dns.nxdomain", `<td class="pending">pending</td>`} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			code, body, h := get(tc.path)
			if code != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", code, tc.wantCode, body)
			}
			if tc.check != nil {
				tc.check(t, body, h)
			}
		})
	}
}

// With every slot taken, API requests are refused at once with 429 while
// health checks still answer.
func TestAPIServerLimit(t *testing.T) {
	t.Parallel()
	src := blockingStore{Store: testStore(time.Now()), block: make(chan struct{})}
	s := newTestServer(t, testPlan(t, nil), src, func() bool { return true })
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			// One name's report: a report of every name is limited further.
			if resp, err := http.Get(srv.URL + "/api/v1/report?name=ok.example.com"); err == nil {
				resp.Body.Close()
			}
		})
	}
	// Wait until both slots are held.
	deadline := time.Now().Add(10 * time.Second)
	for len(s.sem) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cases := []struct {
		desc     string
		path     string
		wantCode int
	}{
		{desc: "report refused", path: "/api/v1/report", wantCode: http.StatusTooManyRequests},
		{desc: "page refused", path: "/", wantCode: http.StatusTooManyRequests},
		{desc: "healthz still answers", path: "/healthz", wantCode: http.StatusOK},
		{desc: "readyz still answers", path: "/readyz", wantCode: http.StatusOK},
	}
	for _, tc := range cases {
		resp, err := http.Get(srv.URL + tc.path)
		if err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.wantCode {
			t.Errorf("%s: %d, want %d", tc.desc, resp.StatusCode, tc.wantCode)
		}
		if tc.wantCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", tc.desc)
		}
	}
	close(src.block)
	wg.Wait()
}

// POST /api/v1/reprobe: the method, the name, cross-site requests and
// repeats are judged before the scheduler is asked.
func TestAPIServerReprobe(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newTestServer(t, testPlan(t, nil), probes.NewStore(probes.StoreLimits{}), func() bool { return true })
	s.reprobe = func(name string) bool {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, name)
		return name == "new.example.com"
	}
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		desc      string
		method    string
		query     string
		header    map[string]string
		advance   time.Duration
		wantCode  int
		wantCall  string // "" → the scheduler is not asked
		wantWatch bool
	}{
		{desc: "GET is not allowed", method: "GET", query: "?name=ok.example.com", wantCode: 405},
		{desc: "missing name", method: "POST", wantCode: 400},
		{desc: "unknown name", method: "POST", query: "?name=other.example.com", wantCode: 404},
		{desc: "cross-site browser request", method: "POST", query: "?name=ok.example.com",
			header: map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}, wantCode: 403},
		{desc: "a client that is not a browser", method: "POST", query: "?name=OK.example.com", wantCode: 202, wantCall: "ok.example.com"},
		{desc: "again at once", method: "POST", query: "?name=ok.example.com", wantCode: 429},
		{desc: "after the gap", method: "POST", query: "?name=ok.example.com", advance: reprobeMinGap, wantCode: 202, wantCall: "ok.example.com"},
		{desc: "a dns-01 name's watch runs too", method: "POST", query: "?name=new.example.com", wantCode: 202,
			wantCall: "new.example.com", wantWatch: true},
		{desc: "a form on the page goes back to it", method: "POST", query: "?name=bad.example.com",
			header: map[string]string{"Sec-Fetch-Site": "same-origin", "Accept": "text/html,*/*"}, wantCode: 303, wantCall: "bad.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			mu.Lock()
			now = now.Add(tc.advance)
			before := len(calls)
			mu.Unlock()
			req, err := http.NewRequest(tc.method, srv.URL+"/api/v1/reprobe"+tc.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantCode, body)
			}
			mu.Lock()
			got := calls[before:]
			mu.Unlock()
			switch {
			case tc.wantCall == "" && len(got) > 0:
				t.Errorf("the scheduler was asked: %v", got)
			case tc.wantCall != "" && (len(got) != 1 || got[0] != tc.wantCall):
				t.Errorf("re-probed %v, want [%s]", got, tc.wantCall)
			}
			switch tc.wantCode {
			case 202:
				var r reprobeJSON
				if err := json.Unmarshal(body, &r); err != nil || r.Name != tc.wantCall || r.Propagation != tc.wantWatch {
					t.Errorf("body %s (%v)", body, err)
				}
			case 303:
				if loc := resp.Header.Get("Location"); loc != "/#name-"+tc.wantCall {
					t.Errorf("Location %q", loc)
				}
			case 405:
				if resp.Header.Get("Allow") != "POST" {
					t.Errorf("Allow %q", resp.Header.Get("Allow"))
				}
			default:
				var e apiError
				if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
					t.Errorf("error body %q", body)
				}
			}
		})
	}
}

// getOK GETs url and returns the body; any status but 200 fails t.
func getOK(t testing.TB, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// The propagation watches are observations like any other: their findings
// and checks reach the report, their first-seen times the page.
func TestAPIServerPropagation(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	p := testPlan(t, func(s *probes.Settings) {
		s.Targets = append(s.Targets, probes.Target{Name: "lag.example.com", Challenge: "dns-01", ExpectTXT: "v1"},
			probes.Target{Name: "fast.example.com", Challenge: "dns-01", ExpectTXT: "v2"})
	})
	store := testStore(t0)
	check := func(name, server string, st reports.CheckStatus, d time.Duration) reports.Check {
		return reports.Check{Name: probes.PropagationCheck, Target: name, Server: server, Status: st, Duration: d, Note: "served after"}
	}
	store.Add(reports.Observation{Name: "lag.example.com", Challenge: "dns-01", Kind: probes.KindPropagation, Start: t0,
		Checks: []reports.Check{check("lag.example.com", "ns1.example.com (127.0.0.1)", reports.CheckOK, 1500*time.Millisecond),
			check("lag.example.com", "ns2.example.com (127.0.0.2)", reports.CheckFail, 0)},
		Findings: []reports.Finding{reports.New(reports.CodeDNS01TXTNotPropagated, "lag.example.com", "served by 1 of 2")}}.Finish())
	store.Add(reports.Observation{Name: "fast.example.com", Challenge: "dns-01", Kind: probes.KindPropagation, Start: t0,
		Checks: []reports.Check{check("fast.example.com", "ns1.fast.com (127.0.0.3)", reports.CheckOK, 200*time.Millisecond)}}.Finish())
	s := newTestServer(t, p, store, func() bool { return true })
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	cases := []struct {
		desc        string
		name        string
		wantVerdict reports.Verdict
		wantChecks  int
		wantCode    reports.Code
	}{
		{desc: "not everywhere: the watch's finding and its checks", name: "lag.example.com", wantVerdict: reports.VerdictFail,
			wantChecks: 2, wantCode: reports.CodeDNS01TXTNotPropagated},
		{desc: "everywhere: a passing check with the time", name: "fast.example.com", wantVerdict: reports.VerdictPass, wantChecks: 1},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var r reports.Report
			if err := json.Unmarshal([]byte(getOK(t, srv.URL+"/api/v1/report?name="+tc.name)), &r); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, c := range r.Checks {
				if c.Name == probes.PropagationCheck && c.Server != "" {
					n++
				}
			}
			if n != tc.wantChecks || r.Verdict != tc.wantVerdict {
				t.Errorf("%d propagation checks, verdict %s; want %d, %s", n, r.Verdict, tc.wantChecks, tc.wantVerdict)
			}
			found := false
			for _, f := range r.Findings {
				found = found || f.Code == tc.wantCode && f.Name == tc.name && f.Vantage == ""
			}
			if tc.wantCode != "" && !found {
				t.Errorf("no %s finding of %s: %+v", tc.wantCode, tc.name, r.Findings)
			}
		})
	}
	t.Run("page", func(t *testing.T) {
		page := getOK(t, srv.URL+"/")
		for _, want := range []string{`id="propagation"`, "ns1.example.com (127.0.0.1)", "<td>1.5</td>", "ns1.fast.com (127.0.0.3)"} {
			if !strings.Contains(page, want) {
				t.Errorf("the page lacks %q", want)
			}
		}
		for _, unwanted := range []string{"ns2.example.com (127.0.0.2)</td><td>", "propagation-none"} {
			if strings.Contains(page, unwanted) {
				t.Errorf("the page shows %q", unwanted)
			}
		}
		// The slowest first.
		if i, j := strings.Index(page, "ns1.example.com (127.0.0.1)"), strings.Index(page, "ns1.fast.com"); i > j {
			t.Error("the faster one is listed first")
		}
	})
}

// The API and page explain a failed canary order with the observations
// around it; a canary that failed for another reason (the directory was
// down) is not correlated.
func TestServerCorrelatesCanary(t *testing.T) {
	t.Parallel()
	t0 := time.Now().Add(-time.Minute).Truncate(time.Second)
	eu := reports.Vantage{Name: "eu", Kind: reports.External, RIR: "RIPE"}
	p := testPlan(t, func(s *probes.Settings) {
		s.Vantages = append(s.Vantages, probes.VantageSettings{Name: "eu", Kind: "external", RIR: "RIPE"})
		s.Targets = []probes.Target{{Name: "bad.example.com"}, {Name: "down.example.com"}}
		s.Canary = &probes.CanarySettings{Directory: "https://ca.example/dir", AccountKey: t.TempDir() + "/acct.key", Interval: probes.Duration(time.Hour)}
	})
	bad, down := "bad.example.com", "down.example.com"
	refused := reports.New(reports.CodeHTTP01ConnectionRefused, bad, "192.0.2.1:80 refused").
		WithProblem(reports.ProblemConnection, "192.0.2.1: Fetching http://bad.example.com/x: Connection refused")
	caa := reports.New(reports.CodeCAAMalformed, bad, "CAA 0 issue \";\"")
	problem := &reports.Problem{Type: reports.ProblemConnection, Detail: "Connection refused"}
	orderFailed := reports.New(reports.CodeACMEOrderFailed, bad, problem.Type+": "+problem.Detail).WithProblem(problem.Type, problem.Detail)
	store := probes.NewStore(probes.StoreLimits{})
	for _, o := range []reports.Observation{
		{Name: bad, Vantage: us, Kind: "http-01", Start: t0.Add(-3 * time.Second), Duration: time.Second, Findings: []reports.Finding{refused}},
		{Name: bad, Vantage: eu, Kind: "http-01", Start: t0.Add(-2 * time.Second), Duration: time.Second, Findings: []reports.Finding{refused}},
		{Name: bad, Vantage: us, Kind: "dns", Start: t0.Add(-2 * time.Second), Duration: time.Second, Findings: []reports.Finding{caa}, OK: true},
		{Name: bad, Kind: probes.KindACME, Start: t0, Duration: 2 * time.Second,
			Findings: []reports.Finding{orderFailed}, Trace: reports.Trace{Problem: problem}},
		{Name: down, Kind: probes.KindACME, Start: t0, Duration: time.Second,
			Findings: []reports.Finding{reports.New(reports.CodeACMEDirectoryUnreachable, down, "connection refused")}},
	} {
		store.Add(o)
	}
	s := newTestServer(t, p, store, func() bool { return true })
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
		{desc: "a refused validation is explained by the refusals both vantages saw", name: bad, code: reports.CodeACMEOrderFailed,
			wantDetail: "Most likely root cause: http01.connection_refused (score ", wantTop: "http01.connection_refused"},
		{desc: "a directory that is down is not correlated", name: down, code: reports.CodeACMEDirectoryUnreachable},
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
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := probes.DefaultSettings()
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Vantages = []probes.VantageSettings{{Name: "a", Kind: "external", RIR: "ARIN"}, {Name: "b", Kind: "external", RIR: "RIPE"}}
	s.Targets = []probes.Target{{Name: "a.example.com"}}
	s.TLS.Enabled = true
	d, err := NewDaemon(s, DaemonOptions{Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	// One observation from each vantage (DNS and the certificate served),
	// a panic and a canary order, so that every labelled series exists.
	now := time.Now()
	leaf := reports.CertFacts{Serial: "01", SHA256: "aa", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(90 * 24 * time.Hour)}
	for _, v := range d.Plan().Vantages {
		d.store.Add(reports.Observation{Name: "a.example.com", Vantage: v.Vantage, Kind: probes.KindTLS, Start: now, OK: true,
			TLS: &reports.TLSFacts{Served: []reports.ServedCert{{Leaf: leaf, CoversName: true}}}})
		o := reports.Observation{Name: "a.example.com", Vantage: v.Vantage, Kind: "dns", Start: time.Now(), Duration: time.Millisecond,
			Findings: []reports.Finding{reports.New(reports.CodeDNSSerialMismatch, "a.example.com", "ns2 serves 1000")}, OK: true}
		d.store.Add(o)
		d.metrics.Observe(o)
	}
	d.metrics.ObservePanic(probes.KindDNS)
	d.metrics.Observe(reports.Observation{Name: "a.example.com", Kind: probes.KindACME, Start: time.Now(), OK: true,
		Checks: []reports.Check{{Name: "acme.order", Status: reports.CheckOK}}})
	d.metrics.ObservePropagation(time.Second)
	d.metrics.ObserveDelay(probes.KindDNS, time.Millisecond)
	d.api.refused("per_client")
	d.api.reprobeResult("accepted")
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
	if n < 12 {
		t.Errorf("only %d acmediag_ metrics gathered; the test no longer sees them all", n)
	}
}
