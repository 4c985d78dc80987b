package http01

import (
	"bytes"
	"net/http"
	"strings"
)

// signature is a fingerprint of a component answering in place of the solver.
type signature struct {
	what   string // what it means, for the finding detail
	header string // header name that must be present ("" = none)
	value  string // substring of that header's value ("" = any)
	body   string // substring of the body (case-insensitive; "" = none)
	status int    // required status (0 = any)
}

// wafSignatures are CDN, WAF, auth-proxy and IPS fingerprints (F08, F20, F21).
var wafSignatures = []signature{
	{what: "Cloudflare proxy (cf-ray)", header: "Cf-Ray"},
	{what: "Cloudflare proxy (Server: cloudflare)", header: "Server", value: "cloudflare"},
	{what: "Cloudflare block page", body: "attention required!"},
	{what: "Cloudflare challenge page", body: "cf-chl-"},
	{what: "CloudFront refusal", header: "X-Amz-Cf-Id", status: 403},
	{what: "HTTP authentication (WWW-Authenticate)", header: "Www-Authenticate"},
	{what: "oauth2-proxy sign-in page", body: "oauth2-proxy"},
	{what: "oauth2-proxy sign-in page", header: "Set-Cookie", value: "_oauth2_proxy"},
	{what: "Imperva Incapsula", body: "_incapsula_resource"},
	{what: "Sucuri WAF", header: "X-Sucuri-Id"},
	{what: "ModSecurity", body: "mod_security"},
	{what: "firewall App-ID block (acme-protocol)", body: "acme-protocol"},
	{what: "nginx testcookie bot protection", body: "testcookie"},
}

// catchAllSignatures are default backends and catch-all apps answering a
// path no solver serves (F19, F22).
var catchAllSignatures = []signature{
	{what: "ingress-nginx default backend", body: "default backend - 404"},
	{what: "Traefik / Go default 404", body: "404 page not found"},
	{what: "Envoy with no healthy upstream", body: "no healthy upstream"},
	{what: "an HTML page (application catch-all or error page)", body: "<html"},
	{what: "an HTML page (application catch-all or error page)", body: "<!doctype html"},
}

// tlsPortSignatures are the answers of a TLS listener to plain HTTP (F17).
var tlsPortSignatures = []signature{
	{what: "nginx: The plain HTTP request was sent to HTTPS port", body: "the plain http request was sent to https port"},
	{what: "Go: Client sent an HTTP request to an HTTPS server", body: "client sent an http request to an https server"},
	{what: "Apache: speaking plain HTTP to an SSL-enabled server port", body: "speaking plain http to an ssl-enabled server port"},
}

// match returns what the first matching signature means, or "".
func match(sigs []signature, status int, h http.Header, body []byte) string {
	lower := bytes.ToLower(body)
	for _, s := range sigs {
		if s.status != 0 && s.status != status {
			continue
		}
		if s.header != "" {
			vals := h.Values(s.header)
			if len(vals) == 0 {
				continue
			}
			if s.value != "" && !strings.Contains(strings.ToLower(strings.Join(vals, " ")), s.value) {
				continue
			}
		}
		if s.body != "" && !bytes.Contains(lower, []byte(s.body)) {
			continue
		}
		return s.what
	}
	return ""
}

// bodyHint says what is odd about a body that did not match the key
// authorization (F22, F23).
func bodyHint(body []byte, keyAuth string) string {
	p := payloadOf(body)
	switch {
	case bytes.HasPrefix(body, []byte("\xef\xbb\xbf")):
		return "the body starts with a UTF-8 byte order mark; Let's Encrypt trims only trailing whitespace"
	case len(p) > 0 && strings.TrimLeft(p, " \t\r\n") != p:
		return "the body starts with whitespace; Let's Encrypt trims only trailing whitespace"
	case strings.Contains(p, keyAuth) && keyAuth != "":
		return "the key authorization is there but wrapped in other content"
	case match(catchAllSignatures, 200, nil, body) != "":
		return "the body is HTML: an application or catch-all route answered instead of the solver"
	case len(body) >= maxResponseSize:
		return "the body is 128 bytes or longer, more than a key authorization"
	case strings.Count(p, ".") == 1 && strings.Contains(keyAuth, ".") && strings.SplitN(p, ".", 2)[0] != strings.SplitN(keyAuth, ".", 2)[0]:
		return "the body is a key authorization for another token (a stale or different challenge)"
	case strings.Count(p, ".") == 1 && strings.Contains(keyAuth, "."):
		return "the token matches but the account thumbprint differs (another ACME account key)"
	}
	return "the body differs from the key authorization"
}
