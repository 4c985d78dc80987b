package canary

import (
	"context"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
)

// tlsDir starts a TLS server with handler and writes its CA to a file.
func tlsDir(t *testing.T, h http.Handler) (dirURL, caFile string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.URL + "/dir", caFile, hits
}

func TestBadInput(t *testing.T) {
	html := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>Welcome to nginx!</body></html>"))
	})
	hang := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	badJSON := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"newNonce": "https://x/n", "newAccount": 7, "newOrder": "http://x/o"}`))
	})
	down := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"type":"urn:ietf:params:acme:error:serverInternal"`)) // malformed problem
	})
	garbageKey := filepath.Join(t.TempDir(), "garbage.pem")
	if err := os.WriteFile(garbageKey, []byte("not a key at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	certKey := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(certKey, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}), 0o600); err != nil {
		t.Fatal(err)
	}
	spent := NewBudget(Limits{NewOrders: 1})
	if err := spent.ReserveOrder("a.example.com", time.Now()); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		desc     string
		h        http.Handler
		dir      string // overrides the test server's URL
		key      string
		budget   *Budget
		allow    bool
		wantErr  error  // errors.Is
		wantText string // in Err or in the finding detail
		wantCode reports.Code
		noHits   bool
	}{
		{desc: "production directory refused", dir: "https://acme-v02.api.letsencrypt.org/directory", wantErr: ErrProductionRefused, noHits: true},
		{desc: "plain http directory refused", dir: "http://127.0.0.1:1/dir", wantText: "must be an https URL", noHits: true},
		{desc: "directory returns HTML", h: html, wantCode: reports.CodeACMEDirectoryUnreachable, wantText: "not a JSON object (text/html)"},
		{desc: "directory with wrong field types", h: badJSON, wantCode: reports.CodeACMEDirectoryUnreachable, wantText: `"newAccount" is "7"`},
		{desc: "directory down with a malformed problem", h: down, wantCode: reports.CodeACMEDirectoryUnreachable, wantText: "status 503"},
		{desc: "directory hangs", h: hang, wantCode: reports.CodeACMEDirectoryUnreachable, wantText: "Timeout"},
		{desc: "account key file garbage", h: html, key: garbageKey, wantText: garbageKey, noHits: true},
		{desc: "account key file holds a certificate", h: html, key: certKey, wantText: certKey + `: PEM block "CERTIFICATE"`, noHits: true},
		{desc: "budget exhausted: refused without a request", h: html, budget: spent, wantErr: ErrBudgetExhausted, noHits: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			dir, ca, hits := tlsDir(t, tc.h)
			if tc.dir != "" {
				dir = tc.dir
			}
			start := time.Now()
			out := ProbeOrder(ctx, Config{DirectoryURL: dir, CACertFile: ca, AccountKeyFile: tc.key, Budget: tc.budget,
				AllowProduction: tc.allow, Logger: zaptest.NewLogger(t)}, "a.example.com")
			if el := time.Since(start); el > 3*time.Second {
				t.Errorf("took %s, past the deadline", el)
			}
			if tc.wantErr != nil && !errors.Is(out.Err, tc.wantErr) {
				t.Errorf("Err = %v, want %v", out.Err, tc.wantErr)
			}
			text := ""
			if out.Err != nil {
				text = out.Err.Error()
			}
			for _, f := range out.Findings {
				text += "\n" + f.Detail
			}
			if tc.wantText != "" && !strings.Contains(text, tc.wantText) {
				t.Errorf("text %q lacks %q", text, tc.wantText)
			}
			if tc.wantCode != "" {
				if got := codes(out.Findings); len(got) != 1 || got[0] != string(tc.wantCode) {
					t.Errorf("codes = %v, want [%s]", got, tc.wantCode)
				}
			}
			if tc.noHits && hits.Load() != 0 {
				t.Errorf("%d requests reached the directory, want none", hits.Load())
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		desc     string
		p        reports.Problem
		reached  bool
		wantCode reports.Code // besides acme.order_failed; "" none
	}{
		{desc: "Boulder NXDOMAIN", p: reports.Problem{Type: reports.ProblemDNS, Detail: "DNS problem: NXDOMAIN looking up A for nx.example.com - check that a DNS record exists for this domain"}, wantCode: reports.CodeDNSNXDomain},
		{desc: "Boulder CAA SERVFAIL", p: reports.Problem{Type: reports.ProblemDNS, Detail: "DNS problem: SERVFAIL looking up CAA for example.com - the domain's nameservers may be malfunctioning"}, wantCode: reports.CodeCAALookupFailed},
		{desc: "Boulder firewall", p: reports.Problem{Type: reports.ProblemConnection, Detail: "203.0.113.1: Fetching http://a.example.com/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"}, wantCode: reports.CodeHTTP01ConnectTimeout},
		{desc: "Boulder bad redirect port", p: reports.Problem{Type: reports.ProblemConnection, Detail: "127.0.0.1: Fetching https://a.example.com:8443/: invalid port 8443: must be 80 or 443"}, wantCode: reports.CodeHTTP01RedirectBadPort},
		{desc: "Boulder CAA forbids", p: reports.Problem{Type: reports.ProblemCAA, Detail: "CAA record for example.com prevents issuance"}, wantCode: reports.CodeCAAForbidden},
		{desc: "Boulder 404 reached", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: "198.51.100.1: Invalid response from http://a.example.com/.well-known/acme-challenge/x: 404"}, reached: true},
		{desc: "Boulder wrong body reached", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: "The key authorization file from the server did not match this challenge. Expected \"a.b\" (got \"c\")"}, reached: true},
		{desc: "Boulder HTML page too big", p: reports.Problem{Type: reports.ProblemUnauthorized, Detail: "Error reading HTTP response body: reader size limit exceeded"}, wantCode: reports.CodeHTTP01WrongBody},
		{desc: "TLS after redirect", p: reports.Problem{Type: reports.ProblemTLS, Detail: "remote error: tls: protocol version not supported"}, wantCode: reports.CodeHTTP01RedirectTLSError},
		{desc: "rate limited", p: reports.Problem{Type: reports.ProblemRateLimited, Detail: "too many new orders (300) from this account in the last 3h0m0s, retry after 2026-05-01 12:00:00 UTC"}, wantCode: reports.CodeACMERateLimited},
		{desc: "unknown problem type", p: reports.Problem{Type: "urn:x", Detail: "\x00garbage"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			v, fs := classify("a.example.com", tc.p)
			if (v == Reached) != tc.reached {
				t.Fatalf("verdict %v, want reached=%v", v, tc.reached)
			}
			if tc.reached {
				if len(fs) != 0 {
					t.Errorf("findings on a pass: %v", codes(fs))
				}
				return
			}
			got := codes(fs)
			want := []string{string(reports.CodeACMEOrderFailed)}
			if tc.wantCode != "" {
				want = append(want, string(tc.wantCode))
			}
			if strings.Join(got, ",") != strings.Join(sortStrings(want), ",") {
				t.Errorf("codes %v, want %v", got, want)
			}
			for _, f := range fs {
				if f.Code == reports.CodeACMERateLimited && (f.Evidence["limit"] != "new_orders" || f.Evidence["retry_after"] != "2026-05-01T12:00:00Z") {
					t.Errorf("rate limit evidence %v", f.Evidence)
				}
			}
		})
	}
}

func sortStrings(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestBudget(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	b := NewBudget(Limits{NewOrders: 2, NewOrdersWindow: time.Hour, FailedAuthz: 1, FailedAuthzWindow: time.Hour, MaxNames: 1})
	for _, tc := range []struct {
		desc string
		do   func()
		name string
		at   time.Duration
		ok   bool
	}{
		{desc: "first order", name: "a", ok: true},
		{desc: "failed authz blocks its name", do: func() { b.FailedAuthz("a", t0) }, name: "a", at: time.Minute},
		{desc: "other name still allowed", name: "b", at: time.Minute, ok: true},
		{desc: "order window full", name: "c", at: 2 * time.Minute},
		{desc: "window slides", name: "c", at: 61 * time.Minute, ok: true},
		{desc: "CA Retry-After pauses all", do: func() { b.Pause(t0.Add(3*time.Hour), "new_orders") }, name: "d", at: 2 * time.Hour},
		{desc: "pause over", name: "d", at: 4 * time.Hour, ok: true},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.do != nil {
				tc.do()
			}
			err := b.ReserveOrder(tc.name, t0.Add(tc.at))
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBudgetExhausted)) {
				t.Fatalf("ReserveOrder = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	// MaxNames bounds memory: recording a second name forgets the first.
	b.FailedAuthz("z", t0.Add(5*time.Hour))
	if len(b.failed) != 1 {
		t.Errorf("tracking %d names, want 1", len(b.failed))
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		desc string
		v    string
		want time.Duration
		ok   bool
	}{
		{desc: "seconds", v: "3", want: 3 * time.Second, ok: true},
		{desc: "http date", v: "Thu, 01 Jan 2026 00:00:05 GMT", want: 5 * time.Second, ok: true},
		{desc: "past date", v: "Wed, 31 Dec 2025 00:00:05 GMT", want: 0, ok: true},
		{desc: "huge is capped", v: "99999999999999", want: 365 * 24 * time.Hour, ok: true},
		{desc: "negative", v: "-5"},
		{desc: "garbage", v: "soon"},
		{desc: "absent", v: ""},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got, ok := parseRetryAfter(tc.v, now)
			if got != tc.want || ok != tc.ok {
				t.Errorf("= %s, %v; want %s, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}
