package canary

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

// This file asks a CA for its renewal window of a served certificate: ACME
// Renewal Information (RFC 9773). It uses lego's certificate identifier
// (api.MakeARICertID) and its RenewalInfo type, but not lego's
// GetRenewalInfo: that needs an account key and an api.Core (whose
// directory fetch ignores the context), reads bodies without a bound, keeps
// Retry-After only for rateLimited problems, and turns an invalid window
// into ErrNoARI, which a report must tell apart. The GETs are
// unauthenticated and read-only; the directory is whatever the caller
// configures (usually the CA that issued the served certificates, not the
// canary's staging directory).

const (
	// maxARIBody bounds a renewalInfo or directory response; a window is
	// about 150 bytes.
	maxARIBody = 64 << 10
	// defaultARIRetry is when to ask again when the CA sends no
	// Retry-After (RFC 9773 §4.3 suggests polling a few times a day).
	defaultARIRetry = 6 * time.Hour
	// rateLimitedRetry is the wait after a 429 without Retry-After.
	rateLimitedRetry = 10 * time.Minute
	// maxARIRetry caps any wait the CA asks for.
	maxARIRetry = 24 * time.Hour
)

// ARI error kinds; RenewalInfo's errors wrap one of them (errors.Is).
var (
	ErrNoARI          = errors.New("the ACME directory advertises no renewalInfo endpoint")
	ErrARINotFound    = errors.New("the CA does not know this certificate (not issued by it)")
	ErrARIRateLimited = errors.New("the CA rate-limits renewalInfo requests")
	ErrARIMalformed   = errors.New("malformed renewalInfo response")
	ErrARITooLarge    = errors.New("renewalInfo response too large")
	ErrARIUnavailable = errors.New("renewalInfo request failed")
	ErrARINoCertID    = errors.New("the certificate has no authority key identifier and no issuer was given")
)

// ARIError is a failed renewalInfo request.
type ARIError struct {
	Kind       error  // one of the Err* kinds above
	URL        string // what was asked
	Status     int    // HTTP status, 0 when there was no answer
	RetryAfter time.Duration
	Detail     string // what was observed (truncated)
	Err        error  // the underlying error, when one
}

func (e *ARIError) Error() string {
	s := e.Kind.Error()
	if e.URL != "" {
		s += ": " + e.URL
	}
	if e.Status != 0 {
		s += fmt.Sprintf(": status %d", e.Status)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (Retry-After %s)", e.RetryAfter)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrARIRateLimited) and friends work.
func (e *ARIError) Is(target error) bool { return target == e.Kind }

func (e *ARIError) Unwrap() error { return e.Err }

// Window is the CA's suggested renewal window for one certificate.
type Window struct {
	Start, End     time.Time
	ExplanationURL string
	// RetryAfter is what the CA asked for (capped at a day); NextFetch is
	// when to ask again: after RetryAfter, or six hours without one.
	RetryAfter time.Duration
	NextFetch  time.Time
	CertID     string // RFC 9773 §4.1
	URL        string // the renewalInfo URL asked
}

// ARI is the window as the renewal rule takes it.
func (w Window) ARI() *reports.ARIWindow {
	return &reports.ARIWindow{Start: w.Start, End: w.End, ExplanationURL: w.ExplanationURL}
}

// RenewalInfo asks cfg's CA for its renewal window of cert. issuer is
// optional: its key identifier stands in when cert carries no authority
// key identifier. Errors are *ARIError (errors.Is with ErrNoARI,
// ErrARINotFound, ErrARIRateLimited with its RetryAfter, ErrARIMalformed,
// ErrARITooLarge, ErrARIUnavailable).
func RenewalInfo(ctx context.Context, cfg Config, cert, issuer *x509.Certificate) (Window, error) {
	id, err := ARICertID(cert, issuer)
	if err != nil {
		return Window{}, err
	}
	return RenewalInfoByID(ctx, cfg, id)
}

// RenewalInfoByID is RenewalInfo for a certificate identifier
// (ARICertID, or ARICertIDFromFacts when only a served certificate's facts
// are at hand, e.g. from another vantage's observation).
func RenewalInfoByID(ctx context.Context, cfg Config, id string) (Window, error) {
	ctx, cancel := ariDeadline(ctx)
	defer cancel()
	hc, err := ariClient(ctx, cfg)
	if err != nil {
		return Window{}, err
	}
	base, err := renewalInfoURL(ctx, hc, cfg.DirectoryURL)
	if err != nil {
		return Window{}, err
	}
	return fetchWindow(ctx, cfg, hc, base, id)
}

func ariDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, requestTimeout)
}

func ariClient(ctx context.Context, cfg Config) (*http.Client, error) {
	u, err := url.Parse(cfg.DirectoryURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, &ARIError{Kind: ErrARIUnavailable, URL: cfg.DirectoryURL, Detail: "the directory URL must be an https URL"}
	}
	hc, _, err := newHTTPClient(ctx, cfg.CACertFile, cfg.wrapTransport)
	if err != nil {
		return nil, &ARIError{Kind: ErrARIUnavailable, URL: cfg.DirectoryURL, Err: err}
	}
	return hc, nil
}

// ARICertID is the certificate's RFC 9773 identifier (lego's
// api.MakeARICertID), with the issuer's key identifier when the
// certificate lacks an authority key identifier (issuer may be nil).
func ARICertID(cert, issuer *x509.Certificate) (string, error) {
	if cert == nil {
		return "", &ARIError{Kind: ErrARINoCertID, Detail: "no certificate"}
	}
	if len(cert.AuthorityKeyId) == 0 {
		if issuer == nil || len(issuer.SubjectKeyId) == 0 {
			return "", &ARIError{Kind: ErrARINoCertID}
		}
		c := *cert
		c.AuthorityKeyId = issuer.SubjectKeyId
		cert = &c
	}
	id, err := api.MakeARICertID(cert)
	if err != nil {
		return "", &ARIError{Kind: ErrARINoCertID, Err: err}
	}
	return id, nil
}

// ARICertIDFromFacts is ARICertID from a certificate's authority key
// identifier and serial number in hex (tlscheck.CertFacts' AKI and Serial).
func ARICertIDFromFacts(akiHex, serialHex string) (string, error) {
	aki, err1 := hex.DecodeString(akiHex)
	serial, err2 := hex.DecodeString(serialHex)
	if err1 != nil || err2 != nil || len(aki) == 0 || len(serial) == 0 {
		return "", &ARIError{Kind: ErrARINoCertID, Detail: fmt.Sprintf("authority key identifier %q, serial %q", truncate(akiHex), truncate(serialHex))}
	}
	id, err := api.MakeARICertID(&x509.Certificate{AuthorityKeyId: aki, SerialNumber: new(big.Int).SetBytes(serial)})
	if err != nil {
		return "", &ARIError{Kind: ErrARINoCertID, Err: err}
	}
	return id, nil
}

// ariGet GETs u and reads at most maxARIBody bytes of the answer.
func ariGet(ctx context.Context, hc *http.Client, u string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, &ARIError{Kind: ErrARIUnavailable, URL: u, Err: err}
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, &ARIError{Kind: ErrARIUnavailable, URL: u, Err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxARIBody+1))
	if err != nil {
		return resp, nil, &ARIError{Kind: ErrARIUnavailable, URL: u, Status: resp.StatusCode, Detail: "reading the body", Err: err}
	}
	if len(body) > maxARIBody {
		return resp, nil, &ARIError{Kind: ErrARITooLarge, URL: u, Status: resp.StatusCode,
			Detail: fmt.Sprintf("more than %d KiB (%s)", maxARIBody>>10, quote(body))}
	}
	return resp, body, nil
}

// renewalInfoURL reads the directory's renewalInfo URL.
func renewalInfoURL(ctx context.Context, hc *http.Client, dirURL string) (string, error) {
	resp, body, err := ariGet(ctx, hc, dirURL)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &ARIError{Kind: ErrARIUnavailable, URL: dirURL, Status: resp.StatusCode, Detail: "directory: " + quote(body)}
	}
	var dir acme.Directory
	if err := json.Unmarshal(body, &dir); err != nil {
		return "", &ARIError{Kind: ErrARIUnavailable, URL: dirURL, Detail: "directory is not a JSON object: " + quote(body)}
	}
	if dir.RenewalInfo == "" {
		return "", &ARIError{Kind: ErrNoARI, URL: dirURL}
	}
	if u, err := url.Parse(dir.RenewalInfo); err != nil || u.Scheme != "https" || u.Host == "" {
		return "", &ARIError{Kind: ErrARIMalformed, URL: dirURL, Detail: "renewalInfo is not an https URL: " + quote([]byte(dir.RenewalInfo))}
	}
	return strings.TrimSuffix(dir.RenewalInfo, "/"), nil
}

// fetchWindow GETs base/certID and reads the window.
func fetchWindow(ctx context.Context, cfg Config, hc *http.Client, base, id string) (Window, error) {
	now := time.Now
	if cfg.Clock != nil {
		now = cfg.Clock
	}
	u := base + "/" + id
	resp, body, err := ariGet(ctx, hc, u)
	if err != nil {
		return Window{}, err
	}
	ra, hasRA := parseRetryAfter(resp.Header.Get("Retry-After"), now())
	ra = min(ra, maxARIRetry)
	switch {
	case resp.StatusCode == http.StatusNotFound,
		// Pebble answers a certificate of an issuer it does not know with
		// 400 "no known issuer matches the provided Authority Key
		// Identifier" (Boulder with 404): not this CA's certificate either.
		resp.StatusCode == http.StatusBadRequest && strings.Contains(strings.ToLower(problemText(body)), "issuer"):
		return Window{}, &ARIError{Kind: ErrARINotFound, URL: u, Status: resp.StatusCode, Detail: problemText(body)}
	case resp.StatusCode == http.StatusTooManyRequests:
		if !hasRA {
			ra = rateLimitedRetry
		}
		return Window{}, &ARIError{Kind: ErrARIRateLimited, URL: u, Status: resp.StatusCode, RetryAfter: ra, Detail: problemText(body)}
	case resp.StatusCode != http.StatusOK:
		return Window{}, &ARIError{Kind: ErrARIUnavailable, URL: u, Status: resp.StatusCode, RetryAfter: ra, Detail: problemText(body)}
	}
	var ri acme.RenewalInfo
	if err := json.Unmarshal(body, &ri); err != nil {
		return Window{}, &ARIError{Kind: ErrARIMalformed, URL: u, Status: resp.StatusCode, Detail: "not a renewalInfo object: " + quote(body)}
	}
	w := ri.SuggestedWindow
	// RFC 9773 §4.2: a window whose end does not follow its start is to
	// be treated as no answer.
	if w.Start.IsZero() || w.End.IsZero() || !w.End.After(w.Start) {
		return Window{}, &ARIError{Kind: ErrARIMalformed, URL: u, Status: resp.StatusCode,
			Detail: fmt.Sprintf("suggestedWindow start %s, end %s: the end must follow the start", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))}
	}
	win := Window{Start: w.Start.UTC(), End: w.End.UTC(), CertID: id, URL: u, RetryAfter: ra}
	if e := ri.ExplanationURL; e != "" {
		// Shown to users and put in evidence: only a plausible URL, bounded.
		if pu, err := url.Parse(e); err == nil && (pu.Scheme == "https" || pu.Scheme == "http") && pu.Host != "" && len(e) <= maxDetail {
			win.ExplanationURL = e
		}
	}
	next := defaultARIRetry
	if hasRA {
		next = ra
	}
	win.NextFetch = now().Add(next)
	return win, nil
}

// problemText is the CA's problem detail, or the start of the body.
func problemText(body []byte) string {
	var p acme.ProblemDetails
	if json.Unmarshal(body, &p) == nil && (p.Type != "" || p.Detail != "") {
		return truncate(strings.TrimSpace(p.Type + " " + p.Detail))
	}
	if len(body) == 0 {
		return ""
	}
	return quote(body)
}

// ARICache remembers windows and refusals per certificate until the CA's
// Retry-After (or six hours) has passed, and the directory's renewalInfo
// URL for an hour, so that a prober running every minute asks the CA only
// as often as it wants to be asked. Safe for concurrent use.
type ARICache struct {
	// Max bounds the certificates remembered; 0 → 10,000. When full,
	// entries due for a fetch go first, then the oldest.
	Max int

	mu      sync.Mutex
	entries map[string]ariEntry
	dirs    map[string]dirEntry
}

type ariEntry struct {
	w     Window
	err   error
	until time.Time
	added time.Time
}

type dirEntry struct {
	url   string
	until time.Time
}

// dirTTL is how long a directory's renewalInfo URL is reused.
const dirTTL = time.Hour

// RenewalInfo is RenewalInfo through the cache: a window is reused until
// its NextFetch, a 429 is answered from memory (ErrARIRateLimited, with the
// Retry-After left) until it has passed.
func (c *ARICache) RenewalInfo(ctx context.Context, cfg Config, cert, issuer *x509.Certificate) (Window, error) {
	id, err := ARICertID(cert, issuer)
	if err != nil {
		return Window{}, err
	}
	return c.RenewalInfoByID(ctx, cfg, id)
}

// RenewalInfoByID is RenewalInfoByID through the cache.
func (c *ARICache) RenewalInfoByID(ctx context.Context, cfg Config, id string) (Window, error) {
	now := time.Now
	if cfg.Clock != nil {
		now = cfg.Clock
	}
	key := cfg.DirectoryURL + " " + id
	t := now()
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && t.Before(e.until) {
		c.mu.Unlock()
		if ae, ok := errors.AsType[*ARIError](e.err); ok {
			cp := *ae
			cp.RetryAfter = e.until.Sub(t)
			return Window{}, &cp
		}
		return e.w, e.err
	}
	d, haveDir := c.dirs[cfg.DirectoryURL]
	c.mu.Unlock()

	ctx, cancel := ariDeadline(ctx)
	defer cancel()
	hc, err := ariClient(ctx, cfg)
	if err != nil {
		return Window{}, err
	}
	if !haveDir || !t.Before(d.until) {
		u, err := renewalInfoURL(ctx, hc, cfg.DirectoryURL)
		if err != nil {
			return Window{}, err
		}
		d = dirEntry{url: u, until: t.Add(dirTTL)}
		c.mu.Lock()
		if c.dirs == nil {
			c.dirs = map[string]dirEntry{}
		}
		c.dirs[cfg.DirectoryURL] = d
		c.mu.Unlock()
	}
	w, err := fetchWindow(ctx, cfg, hc, d.url, id)
	e := ariEntry{w: w, err: err, added: t}
	switch {
	case err == nil:
		e.until = w.NextFetch
	case errors.Is(err, ErrARIRateLimited), errors.Is(err, ErrARINotFound):
		// A refusal or "not ours" holds until the CA's Retry-After (a
		// 404 for as long as a window would).
		ra := defaultARIRetry
		if ae, ok := errors.AsType[*ARIError](err); ok && ae.RetryAfter > 0 {
			ra = ae.RetryAfter
		}
		e.until = t.Add(ra)
	default:
		return w, err // transient: ask again next time
	}
	c.store(key, e, t)
	if cfg.Logger != nil {
		cfg.Logger.Named("canary").Debug("renewal info", zap.String("cert_id", w.CertID), zap.Time("next_fetch", e.until), zap.Error(err))
	}
	return w, err
}

func (c *ARICache) store(key string, e ariEntry, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]ariEntry{}
	}
	limit := c.Max
	if limit <= 0 {
		limit = 10000
	}
	if _, ok := c.entries[key]; !ok && len(c.entries) >= limit {
		for k, v := range c.entries {
			if !now.Before(v.until) {
				delete(c.entries, k)
			}
		}
		for len(c.entries) >= limit {
			var oldest string
			var at time.Time
			for k, v := range c.entries {
				if oldest == "" || v.added.Before(at) {
					oldest, at = k, v.added
				}
			}
			delete(c.entries, oldest)
		}
	}
	c.entries[key] = e
}

// ARIFindings are renewal.window_open and renewal.ari_early for a served
// certificate and the CA's window at now — the part of the renewal rule
// (reports.AssessRenewal) that needs nothing but the window. A caller that
// also knows whether the challenge path fails, or cert-manager's
// renewalTime, calls reports.AssessRenewal with w.ARI() instead, which adds
// renewal.at_risk and renewal.overdue.
func ARIFindings(name string, cert *x509.Certificate, w Window, now time.Time) []reports.Finding {
	in := reports.RenewalInput{Name: name, ARI: w.ARI(), Now: now}
	if cert != nil {
		in.Serial = hex.EncodeToString(cert.SerialNumber.Bytes()) // as tlscheck.CertFacts has it
		in.NotBefore, in.NotAfter = cert.NotBefore, cert.NotAfter
	}
	var out []reports.Finding
	for _, f := range reports.AssessRenewal(in).Findings {
		if f.Code == reports.CodeRenewalWindowOpen || f.Code == reports.CodeRenewalARIEarly {
			out = append(out, f.With("renewal_info_url", w.URL))
		}
	}
	return out
}

// ARIErrorFinding says what a failed renewalInfo request means for name:
// a warning (the renewal falls back to the certificate's lifetime), with
// the CA's Retry-After for a rate limit. "Not issued by this CA" and "no
// ARI" are no finding.
func ARIErrorFinding(name string, err error) (reports.Finding, bool) {
	ae, ok := errors.AsType[*ARIError](err)
	if !ok {
		return reports.Finding{}, false
	}
	switch ae.Kind {
	case ErrNoARI, ErrARINotFound, ErrARINoCertID:
		return reports.Finding{}, false
	case ErrARIRateLimited:
		f := reports.New(reports.CodeACMERateLimited, name,
			"the CA refused the renewalInfo request (ARI) with 429: "+ae.Error()+"; acmediag asks again after the Retry-After, the renewal window falls back to the certificate's lifetime meanwhile").
			WithSeverity(reports.Warning).With("url", ae.URL).With("retry_after_seconds", int64(ae.RetryAfter/time.Second)).With("stage", "renewal_info")
		return f, true
	default:
		return reports.New(reports.CodeACMEDirectoryUnreachable, name,
			"the CA's renewal window (ARI) could not be read: "+ae.Error()+"; the renewal window falls back to the certificate's lifetime").
			WithSeverity(reports.Warning).With("url", ae.URL).With("status", ae.Status).With("stage", "renewal_info"), true
	}
}
