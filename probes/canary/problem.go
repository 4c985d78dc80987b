package canary

import (
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// Verdict is how a CA problem from a probe order is read, the way Let's
// Debug reads its staging order: a real failure, or proof that the path
// reached the server (the token was deliberately not served).
type Verdict int

const (
	// Reached: the CA got an HTTP answer from the right server (404 or a
	// wrong body for the unserved token). The probe passes.
	Reached Verdict = iota
	// Failed: connection, dns, caa, tls, rateLimited, rejectedIdentifier and
	// anything unrecognised: a real finding.
	Failed
)

// rule maps a fragment of a CA problem detail to a specific finding code.
// Details are Boulder's (Let's Encrypt) and Pebble's wording.
type rule struct {
	typ    string // problem type suffix ("" any)
	needle string // lower-case substring of the detail
	code   reports.Code
}

// rules are tried in order; the first match wins. Boulder's wording comes
// from va/http.go and va/va.go detailedError, bdns problem text; Pebble's
// from va/va.go (Go error strings behind a connection problem).
var rules = []rule{
	// DNS-01 (Boulder va/dns.go; Pebble va/va.go validateDNS01).
	{"unauthorized", "no txt record", reports.CodeDNS01TXTMissing},
	{"unauthorized", "incorrect txt record", reports.CodeDNS01TXTWrongValue},
	{"unauthorized", "correct value not found for dns challenge", reports.CodeDNS01TXTWrongValue},
	{"dns", "nxdomain looking up txt", reports.CodeDNS01TXTMissing},
	// Pebble quotes the resolver's rcode: 3 NXDOMAIN, 2 SERVFAIL.
	{"unauthorized", "unsuccessful response: 3", reports.CodeDNS01TXTMissing},
	{"unauthorized", "unsuccessful response: 2", reports.CodeDNSServFail},
	{"dns", "nxdomain", reports.CodeDNSNXDomain},
	{"dns", "servfail looking up caa", reports.CodeCAALookupFailed},
	{"dns", "looking up caa", reports.CodeCAALookupFailed},
	{"dns", "dnssec", reports.CodeDNSDNSSECBogus},
	{"dns", "servfail", reports.CodeDNSServFail},
	{"dns", "timeout", reports.CodeDNSTimeout},
	{"dns", "no valid ip addresses", reports.CodeDNSNoAddress},
	{"dns", "", reports.CodeDNSServFail},
	{"caa", "while processing caa", reports.CodeCAALookupFailed},
	{"caa", "", reports.CodeCAAForbidden},
	// Pebble resolves without checking the rcode: NXDOMAIN and an empty
	// answer both read "could not resolve URL", so only "no address" is sure.
	{"connection", "could not resolve url", reports.CodeDNSNoAddress},
	{"connection", "no such host", reports.CodeDNSNXDomain},
	{"connection", "timeout during connect", reports.CodeHTTP01ConnectTimeout},
	{"connection", "i/o timeout", reports.CodeHTTP01ConnectTimeout},
	{"connection", "connection refused", reports.CodeHTTP01ConnectionRefused},
	{"connection", "connection reset", reports.CodeHTTP01ConnectionReset},
	{"connection", "timeout after connect", reports.CodeHTTP01SlowResponse},
	{"connection", "redirect loop", reports.CodeHTTP01RedirectLoop},
	{"connection", "too many redirects", reports.CodeHTTP01TooManyRedirects},
	{"connection", "stopped after 10 redirects", reports.CodeHTTP01TooManyRedirects},
	{"connection", "disallowed redirect status", reports.CodeHTTP01RedirectBadStatus},
	{"connection", "invalid port in redirect", reports.CodeHTTP01RedirectBadPort},
	{"connection", "must be 80 or 443", reports.CodeHTTP01RedirectBadPort},
	{"connection", "invalid protocol scheme", reports.CodeHTTP01RedirectBadScheme},
	{"connection", "invalid host in redirect", reports.CodeHTTP01RedirectBadHost},
	{"connection", "server is speaking http/2 over http", reports.CodeHTTP01H2C},
	{"connection", "http: server gave http response to https client", reports.CodeHTTP01RedirectTLSError},
	{"tls", "", reports.CodeHTTP01RedirectTLSError},
	{"unauthorized", "reader size limit exceeded", reports.CodeHTTP01WrongBody},
}

// reachedPatterns are unauthorized details that prove the request reached
// an HTTP server: any non-200 status or a body that is not the key
// authorization (Boulder: "Invalid response from URL: 404", "The key
// authorization file from the server did not match this challenge";
// Pebble: "Non-200 status code from HTTP: URL returned 404").
var reachedPatterns = []string{
	"invalid response from",
	"non-200 status code",
	"did not match this challenge",
}

// classify reads the CA's problem for name. It returns the verdict and the
// findings: for Failed, acme.order_failed carrying the problem verbatim plus
// the specific code the detail matches (when one does).
func classify(name string, p reports.Problem) (Verdict, []reports.Finding) {
	typ := strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
	d := strings.ToLower(p.Detail)
	if typ == "unauthorized" {
		for _, pat := range reachedPatterns {
			if strings.Contains(d, pat) {
				return Reached, nil
			}
		}
	}
	return Failed, failed(name, p)
}

// failed is the findings of a problem that is a real failure: the
// specific code its detail matches (when one does), acme.rate_limited for
// a rate limit, and acme.order_failed carrying the problem verbatim.
func failed(name string, p reports.Problem) []reports.Finding {
	typ := strings.TrimPrefix(p.Type, "urn:ietf:params:acme:error:")
	d := strings.ToLower(p.Detail)
	var out []reports.Finding
	if typ == "rateLimited" {
		out = append(out, rateLimited(name, p))
	}
	for _, r := range rules {
		if r.typ == typ && strings.Contains(d, r.needle) {
			out = append(out, reports.New(r.code, name, "the CA said: "+p.Detail).WithProblem(p.Type, p.Detail).With("source", "ca"))
			break
		}
	}
	out = append(out, reports.New(reports.CodeACMEOrderFailed, name, p.Type+": "+p.Detail).WithProblem(p.Type, p.Detail))
	return out
}

// rateLimitRE picks the limit name from Boulder's rateLimited details, e.g.
// "too many new orders (300) from this account in the last 3h0m0s" or
// "too many failed authorizations (5) for \"x\" in the last 1h0m0s".
var rateLimitRE = regexp.MustCompile(`too many ([a-z ]+?)(?: \(\d+\))? (?:from|for|in)`)

// retryAfterRE finds Boulder's "retry after 2026-05-01 12:00:00 UTC" text.
var retryAfterRE = regexp.MustCompile(`retry after (\d{4}-\d{2}-\d{2}[ t]\d{2}:\d{2}:\d{2}(?: ?utc|z)?)`)

// rateLimited builds acme.rate_limited with which limit and, when the
// detail says, when it resets.
func rateLimited(name string, p reports.Problem) reports.Finding {
	f := reports.New(reports.CodeACMERateLimited, name, p.Detail).WithProblem(p.Type, p.Detail)
	d := strings.ToLower(p.Detail)
	if m := rateLimitRE.FindStringSubmatch(d); m != nil {
		f = f.With("limit", strings.ReplaceAll(m[1], " ", "_"))
	}
	if m := retryAfterRE.FindStringSubmatch(d); m != nil {
		s := strings.TrimSuffix(strings.TrimSuffix(m[1], "utc"), "z")
		s = strings.TrimSpace(s[:10]) + " " + strings.TrimSpace(s[11:]) // "t" or " " between date and time
		if t, err := time.Parse("2006-01-02 15:04:05", s); err == nil {
			f = f.With("retry_after", t.UTC().Format(time.RFC3339))
		}
	}
	return f
}

// parseRetryAfter reads an RFC 9110 Retry-After value (seconds or
// HTTP-date) relative to now; ok is false when absent or unparseable.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(365*24*time.Hour/time.Second) {
			n = int64(365 * 24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	for _, layout := range []string{time.RFC1123, time.RFC1123Z, time.RFC850, time.ANSIC} {
		if t, err := time.Parse(layout, v); err == nil {
			d := t.Sub(now)
			if d < 0 {
				d = 0
			}
			return d, true
		}
	}
	return 0, false
}
