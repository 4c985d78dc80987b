package run

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// Re-probes turned off are a 404 and the page has no button; behind a
// token they are a 401 without it (or with another) and a 202 with it;
// across names at most the bucket's burst at once and its rate after.
func TestAPIServerReprobeGuards(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	const token = "s3cret-token-0123456789"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc     string
		tweak    func(*probes.Settings)
		auth     string
		wantCode int
		wantAuth bool // WWW-Authenticate
		wantPage bool // the page offers the button
	}{
		{desc: "on, no token asked", tweak: nil, wantCode: 202, wantPage: true},
		{desc: "off", tweak: func(s *probes.Settings) { s.API.Reprobe.Enabled = false }, wantCode: 404},
		{desc: "token, none sent", tweak: func(s *probes.Settings) { s.API.Reprobe.TokenFile = tokenFile }, wantCode: 401, wantAuth: true},
		{desc: "token, another sent", tweak: func(s *probes.Settings) { s.API.Reprobe.TokenFile = tokenFile },
			auth: "Bearer " + token + "x", wantCode: 401, wantAuth: true},
		{desc: "token, a basic credential", tweak: func(s *probes.Settings) { s.API.Reprobe.TokenFile = tokenFile },
			auth: "Basic " + token, wantCode: 401, wantAuth: true},
		{desc: "token sent", tweak: func(s *probes.Settings) { s.API.Reprobe.TokenFile = tokenFile }, auth: "Bearer " + token, wantCode: 202},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			var calls []string
			var mu sync.Mutex
			s := newTestServer(t, testPlan(t, tc.tweak), probes.NewStore(probes.StoreLimits{}), func() bool { return true })
			s.reprobe = func(name string) bool { mu.Lock(); defer mu.Unlock(); calls = append(calls, name); return false }
			srv := httptest.NewServer(s.handler())
			defer srv.Close()
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v1/reprobe?name=ok.example.com", nil)
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.wantCode, body)
			}
			if got := resp.Header.Get("WWW-Authenticate") != ""; got != tc.wantAuth {
				t.Errorf("WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if strings.Contains(string(body), token) {
				t.Errorf("the answer carries the token: %s", body)
			}
			mu.Lock()
			if n := len(calls); (tc.wantCode == 202) != (n == 1) {
				t.Errorf("the scheduler was asked %d times", n)
			}
			mu.Unlock()
			page := getOK(t, srv.URL+"/")
			if got := strings.Contains(page, `action="/api/v1/reprobe`); got != tc.wantPage {
				t.Errorf("the page offers a re-probe button: %v, want %v", got, tc.wantPage)
			}
		})
	}
}

// A loop over every name gets at most burst re-probes at once, one more
// per 1/rate after, and each name's own gap still holds.
func TestAPIServerReprobeBudget(t *testing.T) {
	t.Parallel()
	p := testPlan(t, func(s *probes.Settings) {
		s.Targets = nil
		for i := range 20 {
			s.Targets = append(s.Targets, probes.Target{Name: fmt.Sprintf("n%d.example.com", i)})
		}
		s.API.Reprobe.Rate, s.API.Reprobe.Burst = 0.5, 4
	})
	var mu sync.Mutex
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s := newTestServer(t, p, probes.NewStore(probes.StoreLimits{}), func() bool { return true })
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	calls := 0
	s.reprobe = func(string) bool { mu.Lock(); defer mu.Unlock(); calls++; return false }
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	round := func() (accepted int, retry string) {
		for i := range 20 {
			resp, err := http.Post(fmt.Sprintf("%s/api/v1/reprobe?name=n%d.example.com", srv.URL, i), "", nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			switch resp.StatusCode {
			case http.StatusAccepted:
				accepted++
			case http.StatusTooManyRequests:
				var e apiError
				if json.Unmarshal(body, &e) != nil || e.Error == "" {
					t.Errorf("429 body %q", body)
				}
				retry = resp.Header.Get("Retry-After")
			default:
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
		}
		return accepted, retry
	}
	if got, retry := round(); got != 4 || retry != "2" {
		t.Errorf("first round: %d accepted (Retry-After %q), want the burst of 4 (Retry-After 2)", got, retry)
	}
	mu.Lock()
	now = now.Add(2 * time.Second) // one token at 0.5/s
	mu.Unlock()
	if got, _ := round(); got != 1 {
		t.Errorf("after 2s: %d accepted, want 1", got)
	}
	mu.Lock()
	now = now.Add(time.Hour) // a full bucket; the first names' gaps are long over
	mu.Unlock()
	if got, _ := round(); got != 4 {
		t.Errorf("after an hour: %d accepted, want the burst of 4", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if calls != 9 {
		t.Errorf("the scheduler was asked %d times, want 9", calls)
	}
}

// panickingStore panics on every query, as a bug in a handler's path would.
type panickingStore struct{ *probes.Store }

func (panickingStore) Query(string, time.Time) []reports.Observation {
	panic("injected: a nil map somewhere deep")
}

// A handler's panic is a 500 with a short message (no stack), counted,
// and the server keeps serving: the next requests, health included,
// answer as before.
func TestAPIHandlerPanic(t *testing.T) {
	t.Parallel()
	s := newTestServer(t, testPlan(t, nil), panickingStore{probes.NewStore(probes.StoreLimits{})}, func() bool { return true })
	var panics int
	var mu sync.Mutex
	s.onPanic = func() { mu.Lock(); defer mu.Unlock(); panics++ }
	srv := httptest.NewServer(s.handler())
	defer srv.Close()
	for range 3 {
		resp, err := http.Get(srv.URL + "/api/v1/observations?name=ok.example.com")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e apiError
		if resp.StatusCode != http.StatusInternalServerError || json.Unmarshal(body, &e) != nil ||
			strings.Contains(e.Error, "injected") || strings.Contains(string(body), "goroutine") || strings.Contains(string(body), ".go:") {
			t.Errorf("status %d body %q, want a 500 saying only that it failed inside", resp.StatusCode, body)
		}
		if got := getOK(t, srv.URL+"/healthz"); got != "ok\n" {
			t.Errorf("/healthz after a panic: %q", got)
		}
	}
	getOK(t, srv.URL+"/api/v1/report?name=ok.example.com")
	mu.Lock()
	defer mu.Unlock()
	if panics != 3 {
		t.Errorf("%d panics counted, want 3", panics)
	}
}
