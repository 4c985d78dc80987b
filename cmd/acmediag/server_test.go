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
			if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'none'") {
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
			if resp, err := http.Get(srv.URL + "/api/v1/report"); err == nil {
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
