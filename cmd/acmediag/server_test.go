package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// fakeSource is a fixed set of observations; block, when set, holds every
// Latest call until closed (to fill the API's concurrency slots).
type fakeSource struct {
	obs   []probes.Observation
	block chan struct{}
}

func (f *fakeSource) Query(name string, since time.Time) []probes.Observation {
	var out []probes.Observation
	for _, o := range f.obs {
		if (name == "" || o.Target.Name == name) && !o.Start.Before(since) {
			out = append(out, o)
		}
	}
	return out
}

func (f *fakeSource) Latest() []probes.Observation {
	if f.block != nil {
		<-f.block
	}
	return f.obs
}

func testState() *daemonState {
	return &daemonState{
		targets:  []probes.Target{{Name: "ok.example.com", Challenge: "http-01"}, {Name: "bad.example.com", Challenge: "http-01"}, {Name: "new.example.com", Challenge: "dns-01"}},
		vantages: []probes.Vantage{{Name: "us", Kind: probes.KindExternal, RIR: "ARIN"}},
		api:      apiSettings{MaxConcurrent: 2, MaxObservations: 3},
	}
}

func testObservations(t0 time.Time) []probes.Observation {
	us := probes.Vantage{Name: "us", Kind: probes.KindExternal}
	ok := probes.Target{Name: "ok.example.com", Challenge: "http-01"}
	bad := probes.Target{Name: "bad.example.com", Challenge: "http-01"}
	var obs []probes.Observation
	for i := range 4 {
		obs = append(obs, probes.Observation{Target: ok, Vantage: us, Kind: "dns", Start: t0.Add(time.Duration(i) * time.Minute), OK: true,
			Checks: []reports.Check{{Name: "dns.delegation", Target: ok.Name, Status: reports.CheckOK}}})
	}
	obs = append(obs,
		probes.Observation{Target: bad, Vantage: us, Kind: "dns", Start: t0, OK: false,
			Findings: []reports.Finding{reports.New(reports.CodeDNSNXDomain, bad.Name, "NXDOMAIN from ns1")}},
		// A challenge probe's empty run for a target of another challenge: never shown.
		probes.Observation{Target: ok, Vantage: us, Kind: "tls-alpn-01", Start: t0, OK: true},
	)
	return obs
}

func TestAPIServer(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := &fakeSource{obs: testObservations(t0)}
	ready := false
	var mu sync.Mutex
	s := newAPIServer(zaptest.NewLogger(t), prometheus.NewRegistry(), src, func() bool { mu.Lock(); defer mu.Unlock(); return ready },
		testState, "test", 2)
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
				var obs []observationJSON
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
			if strings.Contains(body, "tls-alpn-01") {
				t.Error("the page shows a challenge probe's run for a target of another challenge")
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
	src := &fakeSource{obs: testObservations(time.Now()), block: make(chan struct{})}
	s := newAPIServer(zaptest.NewLogger(t), prometheus.NewRegistry(), src, func() bool { return true }, testState, "test", 2)
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

// fakePropagation is a fixed set of propagation results.
type fakePropagation map[string]propagationOutcome

func (f fakePropagation) Result(name string) (propagationOutcome, bool) {
	o, ok := f[name]
	return o, ok
}
func (f fakePropagation) Results() map[string]propagationOutcome {
	out := map[string]propagationOutcome{}
	for k, v := range f {
		out[k] = v
	}
	return out
}

// The propagation watches' results reach the report (finding and check)
// and the page (first-seen times), for the value the configuration still
// expects only.
func TestAPIServerPropagation(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	st := testState()
	st.targets = append(st.targets, probes.Target{Name: "lag.example.com", Challenge: "dns-01", ExpectTXT: "v1"},
		probes.Target{Name: "fast.example.com", Challenge: "dns-01", ExpectTXT: "v2"},
		probes.Target{Name: "old.example.com", Challenge: "dns-01", ExpectTXT: "new"})
	lagFinding := reports.New(reports.CodeDNS01TXTNotPropagated, "lag.example.com", "served by 1 of 2").With("source", "propagation watch")
	prop := fakePropagation{
		"lag.example.com": {Value: "v1", Start: t0, Verdict: probes.PropagationPartial, Elapsed: 10 * time.Second,
			Addresses: []propagationAddr{{Server: "ns1.example.com (127.0.0.1)", Served: true, FirstSeen: 1500 * time.Millisecond, Queries: 3},
				{Server: "ns2.example.com (127.0.0.2)", Queries: 9}},
			Findings: []reports.Finding{lagFinding}},
		"fast.example.com": {Value: "v2", Start: t0, Verdict: probes.PropagationEverywhere, Elapsed: 200 * time.Millisecond,
			Addresses: []propagationAddr{{Server: "ns1.fast.com (127.0.0.3)", Served: true, FirstSeen: 200 * time.Millisecond, Queries: 1}}},
		// A result for a value the configuration no longer expects.
		"old.example.com": {Value: "old", Start: t0, Verdict: probes.PropagationEverywhere, Elapsed: 7 * time.Second,
			Addresses: []propagationAddr{{Server: "ns1.old.com (127.0.0.4)", Served: true, FirstSeen: 7 * time.Second}}},
	}
	s := newAPIServer(zaptest.NewLogger(t), prometheus.NewRegistry(), &fakeSource{obs: testObservations(t0)}, func() bool { return true },
		func() *daemonState { return st }, "test", 2)
	s.propagation = prop
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	cases := []struct {
		desc        string
		name        string
		wantVerdict reports.Verdict
		wantCheck   reports.CheckStatus // "" → no dns01.propagation check
		wantCode    reports.Code
	}{
		{desc: "not everywhere: the watch's finding and a failed check", name: "lag.example.com", wantVerdict: reports.VerdictFail,
			wantCheck: reports.CheckFail, wantCode: reports.CodeDNS01TXTNotPropagated},
		{desc: "everywhere: a passing check with the time", name: "fast.example.com", wantCheck: reports.CheckOK},
		{desc: "a result for an old value is not shown", name: "old.example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var r reports.Report
			if err := json.Unmarshal([]byte(getOK(t, srv.URL+"/api/v1/report?name="+tc.name)), &r); err != nil {
				t.Fatal(err)
			}
			var check *reports.Check
			for i, c := range r.Checks {
				if c.Name == "dns01.propagation" {
					check = &r.Checks[i]
				}
			}
			switch {
			case tc.wantCheck == "" && check != nil:
				t.Errorf("a dns01.propagation check: %+v", *check)
			case tc.wantCheck != "" && (check == nil || check.Status != tc.wantCheck || !strings.Contains(check.Note, " after ")):
				t.Errorf("dns01.propagation check %+v, want status %s with first-seen times", check, tc.wantCheck)
			}
			if tc.wantVerdict != "" && r.Verdict != tc.wantVerdict {
				t.Errorf("verdict %s, want %s", r.Verdict, tc.wantVerdict)
			}
			found := false
			for _, f := range r.Findings {
				found = found || f.Code == tc.wantCode && f.Name == tc.name && f.Evidence["source"] == "propagation watch"
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
		for _, unwanted := range []string{"ns2.example.com (127.0.0.2)</td><td>", "ns1.old.com", "propagation-none"} {
			if strings.Contains(page, unwanted) {
				t.Errorf("the page shows %q", unwanted)
			}
		}
		// The slowest name first.
		if i, j := strings.Index(page, "ns1.example.com (127.0.0.1)"), strings.Index(page, "ns1.fast.com"); i > j {
			t.Error("the faster name is listed first")
		}
	})
}

// POST /api/v1/reprobe: the method, the name, cross-site requests and
// repeats are judged before the scheduler is asked.
func TestAPIServerReprobe(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var calls []string
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newAPIServer(zaptest.NewLogger(t), prometheus.NewRegistry(), &fakeSource{}, func() bool { return true }, testState, "test", 2)
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
		{desc: "a dns-01 name's watch restarts", method: "POST", query: "?name=new.example.com", wantCode: 202,
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
