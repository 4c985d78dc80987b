package http01

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/internal/special"
	"github.com/acmediag/acmediag/reports"
)

// Boulder's constants (va/http.go, va/va.go).
const (
	// DefaultUserAgent is the User-Agent Let's Encrypt's VA sends in production.
	DefaultUserAgent = "Mozilla/5.0 (compatible; Let's Encrypt validation server; +https://www.letsencrypt.org)"

	maxRequests     = 10   // requests per validation, redirects and IPv4 fallbacks included ("Too many hops")
	maxResponseSize = 128  // core.ErrOnLimitReader limit for the challenge body
	maxPathSize     = 2000 // "invalid url: path component too long"
	peekLimit       = 4096 // diagnostic peek, never used for the verdict
	peekTimeout     = time.Second
	maxHeaderBytes  = 1 << 20 // Go's default is 10 MiB; 1 MiB bounds memory, only 1–10 MiB headers differ
	rpcShave        = 200 * time.Millisecond
	dialShave       = 10 * time.Millisecond
	acmeTLS1        = "acme-tls/1"
)

// Resolver gives the addresses the CA's resolver returns for a host name.
// dnscheck implements it (through the CA-view recursive resolver); tests may
// use a static map. err, when non-nil, carries Boulder's DNS problem text
// (e.g. "DNS problem: NXDOMAIN looking up A for x - check that a DNS record
// exists for this domain") as its Error().
type Resolver interface {
	LookupHost(ctx context.Context, host string) (v6, v4 []netip.Addr, err error)
}

// Validator emulates Boulder's VA for HTTP-01 and TLS-ALPN-01 from one vantage.
// The zero value plus a Resolver is usable; it holds no state between calls,
// so one Validator may run many validations concurrently.
type Validator struct {
	Resolver    Resolver
	HTTPPort    int            // 0 → 80; replaces 80 everywhere, redirect rules included
	HTTPSPort   int            // 0 → 443; replaces 443 everywhere (redirects, TLS-ALPN-01)
	LocalAddr   netip.Addr     // source address of every connection (the vantage); invalid = any
	Allow       []netip.Prefix // special-purpose ranges treated as public (test universes on loopback)
	DialTimeout time.Duration  // 0 → 10 s (Boulder singleDialTimeout)
	Timeout     time.Duration  // whole validation, 0 → 20 s (Boulder's RPC deadline)
	SlowAfter   time.Duration  // a response slower than this earns http01.slow_response; 0 → 5 s
	UserAgent   string         // "" → Boulder's production UA
	Logger      *zap.Logger
}

// Request names one validation. V6/V4 are the name's addresses as the
// CA's resolver returned them (dnscheck.Result.IPv6/IPv4); redirect targets
// are resolved through Resolver.
type Request struct {
	Name    string // the identifier, e.g. "www.example.com"
	Token   string // "" → a random token: judge reachability only (a 404 from the server is fine)
	KeyAuth string // expected body; "" when Token is ""
	V6, V4  []netip.Addr
}

// Hop is one HTTP request of the validation, as Boulder's validation record has it.
type Hop struct {
	URL      string
	Hostname string
	Port     int
	Resolved []netip.Addr // addressesResolved
	Used     netip.Addr   // addressUsed
	Status   int          // 0 when no response
	Proto    string       // "HTTP/1.1", ...
	TLS      string       // "", or "TLS 1.3" for https hops
	Location string       // redirect target, when one
	Duration time.Duration
	Err      string // transport error text, when any
	Body     string // first bytes of the body (≤ 128, sanitized by the renderer, not here)
}

// String is the hop in one line: what was asked, of which address, and
// what came back.
func (h Hop) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s", h.URL)
	if h.Used.IsValid() {
		fmt.Fprintf(&b, " at %s", h.Used)
	}
	switch {
	case h.Err != "":
		fmt.Fprintf(&b, ": %s", h.Err)
	case h.Status != 0:
		fmt.Fprintf(&b, " → %d", h.Status)
		if h.Location != "" {
			fmt.Fprintf(&b, " %s", h.Location)
		}
	}
	fmt.Fprintf(&b, " (%s)", h.Duration.Round(time.Millisecond))
	return b.String()
}

// Result is one validation: what Let's Encrypt would conclude, and why.
type Result struct {
	OK       bool             // the CA would accept it (or, without a token, the path is reachable)
	Problem  *reports.Problem // the ACME problem LE would return (type + Boulder detail), nil when OK
	Trace    []Hop
	Findings []reports.Finding // FINDINGS.md codes, Detail naming the address, hop and answer
	Duration time.Duration
}

func (v *Validator) log() *zap.Logger {
	if v.Logger == nil {
		return zap.NewNop()
	}
	return v.Logger.Named("http01")
}

func (v *Validator) httpPort() int {
	if v.HTTPPort > 0 {
		return v.HTTPPort
	}
	return 80
}

func (v *Validator) httpsPort() int {
	if v.HTTPSPort > 0 {
		return v.HTTPSPort
	}
	return 443
}

func (v *Validator) dialTimeout() time.Duration {
	if v.DialTimeout > 0 {
		return v.DialTimeout
	}
	return 10 * time.Second
}

func (v *Validator) timeout() time.Duration {
	if v.Timeout > 0 {
		return v.Timeout
	}
	return 20 * time.Second
}

func (v *Validator) slowAfter() time.Duration {
	if v.SlowAfter > 0 {
		return v.SlowAfter
	}
	return 5 * time.Second
}

func (v *Validator) userAgent() string {
	if v.UserAgent != "" {
		return v.UserAgent
	}
	return DefaultUserAgent
}

// usable drops the addresses Boulder would never connect to (the IANA
// special-purpose registries), unless the user declared them public.
func (v *Validator) usable(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a.IsValid() && special.ReservedReason(a.Unmap(), v.Allow) == "" {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// reservedReason is "" for an address Boulder accepts.
func (v *Validator) reservedReason(a netip.Addr) string {
	return special.ReservedReason(a, v.Allow)
}

// family names an address family for finding details.
func family(a netip.Addr) string {
	if a.Is4() || a.Is4In6() {
		return "IPv4"
	}
	return "IPv6"
}

// randomToken is a fresh 43-character base64url token, like a real challenge's.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// payloadOf is the key authorization Boulder compares: only trailing
// whitespace is trimmed.
func payloadOf(body []byte) string {
	return strings.TrimRightFunc(string(body), unicode.IsSpace)
}

// noAddressText is Boulder's getAddrs failure when both lookups came back
// empty (or only with reserved addresses).
func noAddressText(host string) string {
	return fmt.Sprintf("no valid A records found for %s; no valid AAAA records found for %s", host, host)
}

// deadlineCtx applies the whole-validation timeout (or the caller's earlier
// deadline) less Boulder's 200 ms shave off the RPC deadline, in one context.
func (v *Validator) deadlineCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	dl := time.Now().Add(v.timeout())
	if pdl, ok := ctx.Deadline(); ok && pdl.Before(dl) {
		dl = pdl
	}
	return context.WithDeadline(ctx, dl.Add(-rpcShave))
}
