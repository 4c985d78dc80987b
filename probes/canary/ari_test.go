package canary

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme/api"
	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/pki"
)

// ariCA is a fake CA: a directory advertising renewalInfo, answered by ari.
func ariCA(t *testing.T, ari http.HandlerFunc) (Config, *atomic.Int64) {
	t.Helper()
	var ariHits atomic.Int64
	dir, ca, _ := tlsDir(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/dir":
			fmt.Fprintf(w, `{"newNonce":"https://%[1]s/n","newAccount":"https://%[1]s/a","newOrder":"https://%[1]s/o","renewalInfo":"https://%[1]s/ari"}`, r.Host)
		case r.URL.Path == "/dir-no-ari":
			fmt.Fprintf(w, `{"newNonce":"https://%[1]s/n","newAccount":"https://%[1]s/a","newOrder":"https://%[1]s/o"}`, r.Host)
		case strings.HasPrefix(r.URL.Path, "/ari/"):
			ariHits.Add(1)
			ari(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	return Config{DirectoryURL: dir, CACertFile: ca, Logger: zaptest.NewLogger(t)}, &ariHits
}

func testLeaf(t *testing.T) (*x509.Certificate, *x509.Certificate) {
	t.Helper()
	root, err := pki.NewRoot("ARI Test Root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.Intermediate("ARI Test Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	tc, err := inter.Issue(pki.Leaf{Names: []string{"www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	return tc.Leaf, inter.Cert
}

func window(start, end time.Time, expl string) string {
	return fmt.Sprintf(`{"suggestedWindow":{"start":%q,"end":%q},"explanationURL":%q}`, start.Format(time.RFC3339), end.Format(time.RFC3339), expl)
}

func TestRenewalInfo(t *testing.T) {
	leaf, issuer := testLeaf(t)
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Second)
	good := window(now.Add(-time.Hour), now.Add(24*time.Hour), "https://ca.example/incident")
	for _, tc := range []struct {
		desc      string
		h         http.HandlerFunc
		dir       string // path of the directory, "" /dir
		wantKind  error
		wantRA    time.Duration
		wantText  string
		wantStart time.Time
	}{
		{desc: "a window, Retry-After honoured", h: func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasSuffix(r.URL.Path, "/"+id) {
				http.Error(w, "wrong cert ID "+r.URL.Path, http.StatusBadRequest)
				return
			}
			w.Header().Set("Retry-After", "3600")
			_, _ = w.Write([]byte(good))
		}, wantRA: time.Hour, wantStart: now.Add(-time.Hour)},
		{desc: "malformed JSON", h: func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{"suggestedWindow": [`)) },
			wantKind: ErrARIMalformed, wantText: "not a renewalInfo object"},
		{desc: "end before start (RFC 9773 §4.2)", h: func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(window(now, now.Add(-time.Hour), "")))
		}, wantKind: ErrARIMalformed, wantText: "the end must follow the start"},
		{desc: "no window at all", h: func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(`{}`)) },
			wantKind: ErrARIMalformed},
		{desc: "huge body", h: func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"suggestedWindow":{"start":"` + strings.Repeat("9", 4<<20) + `"}}`))
		}, wantKind: ErrARITooLarge, wantText: "more than 64 KiB"},
		{desc: "429 with Retry-After seconds", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = w.Write([]byte(`{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down"}`))
		}, wantKind: ErrARIRateLimited, wantRA: 2 * time.Minute, wantText: "slow down"},
		{desc: "429 with an HTTP date", h: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", time.Now().Add(5*time.Minute).UTC().Format(http.TimeFormat))
			w.WriteHeader(http.StatusTooManyRequests)
		}, wantKind: ErrARIRateLimited, wantRA: 5 * time.Minute},
		{desc: "429 without Retry-After", h: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTooManyRequests) },
			wantKind: ErrARIRateLimited, wantRA: rateLimitedRetry},
		{desc: "404: not this CA's certificate", h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"urn:ietf:params:acme:error:malformed","detail":"failed to retrieve existing certificate serial"}`))
		}, wantKind: ErrARINotFound, wantText: "failed to retrieve"},
		{desc: "400 for an unknown issuer (Pebble): not this CA's certificate", h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"type":"urn:ietf:params:acme:error:malformed","detail":"Parsing ARI CertID failed: no known issuer matches the provided Authority Key Identifier"}`))
		}, wantKind: ErrARINotFound},
		{desc: "400 for something else", h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"type":"urn:ietf:params:acme:error:malformed","detail":"bad path"}`))
		}, wantKind: ErrARIUnavailable},
		{desc: "500 HTML", h: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte("<html>oops</html>"))
		}, wantKind: ErrARIUnavailable, wantText: "status 500"},
		{desc: "hangs", h: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			wantKind: ErrARIUnavailable},
		{desc: "directory without renewalInfo", dir: "/dir-no-ari", h: func(w http.ResponseWriter, r *http.Request) {}, wantKind: ErrNoARI},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			cfg, _ := ariCA(t, tc.h)
			if tc.dir != "" {
				cfg.DirectoryURL = strings.TrimSuffix(cfg.DirectoryURL, "/dir") + tc.dir
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			w, err := RenewalInfo(ctx, cfg, leaf, issuer)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %s", el)
			}
			if tc.wantKind == nil {
				if err != nil {
					t.Fatal(err)
				}
				if !w.Start.Equal(tc.wantStart) || w.ExplanationURL != "https://ca.example/incident" || w.RetryAfter != tc.wantRA || w.CertID != id {
					t.Errorf("window = %+v", w)
				}
				if d := time.Until(w.NextFetch); d < 59*time.Minute || d > time.Hour {
					t.Errorf("next fetch in %s, want the Retry-After", d)
				}
				return
			}
			if !errors.Is(err, tc.wantKind) {
				t.Fatalf("err = %v, want %v", err, tc.wantKind)
			}
			if tc.wantText != "" && !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("err %q lacks %q", err, tc.wantText)
			}
			ae, _ := errors.AsType[*ARIError](err)
			if tc.wantRA != 0 && (ae.RetryAfter-tc.wantRA).Abs() > 2*time.Second {
				t.Errorf("RetryAfter = %s, want %s", ae.RetryAfter, tc.wantRA)
			}
			f, ok := ARIErrorFinding("www.example.com", err)
			switch {
			case errors.Is(err, ErrNoARI), errors.Is(err, ErrARINotFound):
				if ok {
					t.Errorf("a finding for %v: %+v", err, f)
				}
			case !ok || f.Severity != reports.Warning:
				t.Errorf("finding = %+v, %v", f, ok)
			case errors.Is(err, ErrARIRateLimited) && (f.Code != reports.CodeACMERateLimited || f.Evidence["retry_after_seconds"] == nil):
				t.Errorf("finding = %+v", f)
			}
		})
	}
}

// A certificate without an authority key identifier is named by its
// issuer's key identifier; without either there is nothing to ask.
func TestRenewalInfoCertID(t *testing.T) {
	ss, err := pki.SelfSigned(pki.Leaf{Names: []string{"www.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	_, issuer := testLeaf(t)
	var got atomic.Value
	cfg, _ := ariCA(t, func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.URL.Path)
		_, _ = w.Write([]byte(window(time.Now(), time.Now().Add(time.Hour), "")))
	})
	if _, err := RenewalInfo(context.Background(), cfg, ss.Leaf, nil); !errors.Is(err, ErrARINoCertID) {
		t.Errorf("err = %v, want ErrARINoCertID", err)
	}
	if _, err := RenewalInfo(context.Background(), cfg, ss.Leaf, issuer); err != nil {
		t.Fatal(err)
	}
	if p, _ := got.Load().(string); !strings.Contains(p, "/ari/"+strings.Split(mustID(t, issuer.SubjectKeyId, ss.Leaf), ".")[0]+".") {
		t.Errorf("asked %s", p)
	}
}

func mustID(t *testing.T, aki []byte, c *x509.Certificate) string {
	t.Helper()
	cp := *c
	cp.AuthorityKeyId = aki
	id, err := api.MakeARICertID(&cp)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// The cache asks the CA only when its Retry-After has passed.
func TestARICache(t *testing.T) {
	leaf, issuer := testLeaf(t)
	var mode atomic.Int32 // 0 window, 1 429
	cfg, hits := ariCA(t, func(w http.ResponseWriter, r *http.Request) {
		if mode.Load() == 1 {
			w.Header().Set("Retry-After", "600")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Retry-After", "3600")
		_, _ = w.Write([]byte(window(time.Now(), time.Now().Add(time.Hour), "")))
	})
	clock := time.Now()
	cfg.Clock = func() time.Time { return clock }
	var c ARICache
	ctx := context.Background()
	if _, err := c.RenewalInfo(ctx, cfg, leaf, issuer); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(30 * time.Minute)
	if _, err := c.RenewalInfo(ctx, cfg, leaf, issuer); err != nil || hits.Load() != 1 {
		t.Fatalf("second call within Retry-After: %v, %d requests", err, hits.Load())
	}
	// Past the window's Retry-After the CA is asked again; it refuses.
	mode.Store(1)
	clock = clock.Add(31 * time.Minute)
	if _, err := c.RenewalInfo(ctx, cfg, leaf, issuer); !errors.Is(err, ErrARIRateLimited) || hits.Load() != 2 {
		t.Fatalf("after Retry-After: %v, %d requests", err, hits.Load())
	}
	// The refusal is remembered for its Retry-After, counting down.
	clock = clock.Add(4 * time.Minute)
	_, err := c.RenewalInfo(ctx, cfg, leaf, issuer)
	ae, _ := errors.AsType[*ARIError](err)
	if !errors.Is(err, ErrARIRateLimited) || hits.Load() != 2 || ae.RetryAfter != 6*time.Minute {
		t.Fatalf("within the 429's Retry-After: %v, %d requests", err, hits.Load())
	}
	mode.Store(0)
	clock = clock.Add(7 * time.Minute)
	if _, err := c.RenewalInfo(ctx, cfg, leaf, issuer); err != nil || hits.Load() != 3 {
		t.Fatalf("after the 429's Retry-After: %v, %d requests", err, hits.Load())
	}
	// Bounded: with Max 1 a second certificate evicts the first.
	c2 := ARICache{Max: 1}
	other, oIssuer := testLeaf(t)
	for _, l := range [][2]*x509.Certificate{{leaf, issuer}, {other, oIssuer}} {
		if _, err := c2.RenewalInfo(ctx, cfg, l[0], l[1]); err != nil {
			t.Fatal(err)
		}
	}
	if len(c2.entries) != 1 {
		t.Errorf("%d entries, want 1", len(c2.entries))
	}
}

func TestARIFindings(t *testing.T) {
	leaf, _ := testLeaf(t) // issued an hour ago, 90 days
	now := time.Now()
	for _, tc := range []struct {
		desc string
		w    Window
		want []reports.Code
	}{
		{desc: "the usual window, two thirds in: nothing yet", w: Window{Start: leaf.NotBefore.Add(59 * 24 * time.Hour), End: leaf.NotBefore.Add(61 * 24 * time.Hour)}},
		{desc: "an early window, open", w: Window{Start: now.Add(-time.Hour), End: now.Add(time.Hour), ExplanationURL: "https://ca.example/x", URL: "https://ca.example/ari/x"},
			want: []reports.Code{reports.CodeRenewalWindowOpen, reports.CodeRenewalARIEarly}},
		{desc: "an early window, passed: only the window findings (overdue is the full rule's)", w: Window{Start: now.Add(-2 * time.Hour), End: now.Add(-time.Hour)},
			want: []reports.Code{reports.CodeRenewalARIEarly}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fs := ARIFindings("www.example.com", leaf, tc.w, now)
			var got []reports.Code
			for _, f := range fs {
				got = append(got, f.Code)
				if f.Code == reports.CodeRenewalARIEarly && tc.w.ExplanationURL != "" && f.Evidence["explanation_url"] != tc.w.ExplanationURL {
					t.Errorf("evidence %v", f.Evidence)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("codes %v, want %v", got, tc.want)
			}
		})
	}
}

// The identifier from a served certificate's facts (hex AKI and serial, as
// tlscheck records them) is the one from the certificate, a serial with
// its high bit set (DER's leading zero) included.
func TestARICertIDFromFacts(t *testing.T) {
	aki := []byte{0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40, 0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0, 0xae, 0x2c, 0xde, 0x01, 0xc8, 0xd4}
	for _, serial := range []string{"87654321abcdef00", "0087654321abcdef", "01", "7f"} {
		n, _ := new(big.Int).SetString(serial, 16)
		c := &x509.Certificate{AuthorityKeyId: aki, SerialNumber: n}
		want, err := ARICertID(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := ARICertIDFromFacts(hex.EncodeToString(aki), hex.EncodeToString(n.Bytes()))
		if err != nil || got != want {
			t.Errorf("serial %s: %q, %v; want %q", serial, got, err, want)
		}
	}
	// RFC 9773 §4.1's example.
	n, _ := new(big.Int).SetString("87654321", 16)
	if got, _ := ARICertIDFromFacts(hex.EncodeToString(aki), hex.EncodeToString(n.Bytes())); got != "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE" {
		t.Errorf("RFC example: %q", got)
	}
	for _, bad := range [][2]string{{"", "01"}, {"zz", "01"}, {"69", ""}} {
		if _, err := ARICertIDFromFacts(bad[0], bad[1]); !errors.Is(err, ErrARINoCertID) {
			t.Errorf("%q: err = %v", bad, err)
		}
	}
}
