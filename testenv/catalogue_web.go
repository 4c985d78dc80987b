package testenv

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/dnsserver"
)

// webZone holds every HTTP-01, TLS-ALPN-01 and MPIC scenario's name:
// <scenario>.acmeweb.com.
const webZone = "acmeweb.com."

// webCase is one web scenario before it becomes a catalogue entry.
type webCase struct {
	s Scenario
	// site is the behaviour of the name's (first) A address; a zero
	// http.kind and tls leave the address without listeners (refused).
	site siteSpec
	// more are further A addresses (several backends).
	more []siteSpec
	// v6, when set, adds AAAA ::1 and is what the one IPv6 server (HTTP
	// port only; nothing listens on ::1 at the HTTPS port) does for this
	// name.
	v6 *webBehaviour
	// drops are packet-drop faults on the name's first address; their
	// scenarios need root (or CI) and are left out of Catalogue() otherwise.
	drops []dropSpec
	// dnsFaultFrom makes the name's own zone (own servers) answer SERVFAIL
	// to queries from these vantages' resolvers: a per-perspective DNS view.
	dnsFaultFrom []string
}

func (c *cat) webAddr() string {
	c.nextWeb++
	return fmt.Sprintf("127.80.%d.%d", 10+(c.nextWeb-1)/250, (c.nextWeb-1)%250+1)
}

// addWeb turns a webCase into an entry: addresses, DNS records, sites.
func (c *cat) addWeb(wc webCase) {
	s := wc.s
	s.Domain = s.Name + "." + strings.TrimSuffix(webZone, ".")
	label := s.Name
	var addrs []string
	var recs strings.Builder
	first := wc.site
	first.addr = c.webAddr()
	if first.name == "" {
		first.name = s.Domain
	}
	if first.keyAuth == "" {
		first.keyAuth = KeyAuth(s.Name)
	}
	e := entry{s: s}
	for i, st := range append([]siteSpec{first}, wc.more...) {
		if i > 0 {
			st.addr = c.webAddr()
			st.name, st.keyAuth = first.name, first.keyAuth
		}
		addrs = append(addrs, st.addr)
		fmt.Fprintf(&recs, "%s A %s\n", label, st.addr)
		if st.http.kind != webNone || st.tls != tlsNone {
			e.sites = append(e.sites, st)
		}
	}
	if wc.v6 != nil {
		addrs = append(addrs, WebAddr6)
		fmt.Fprintf(&recs, "%s AAAA %s\n", label, WebAddr6)
		e.v6 = map[string]webBehaviour{s.Domain: *wc.v6}
	}
	for _, d := range wc.drops {
		d.addr = first.addr
		e.drops = append(e.drops, d)
	}
	e.webAddrs = addrs
	if len(wc.dnsFaultFrom) > 0 {
		// A zone of its own (own servers), so the fault touches this name only.
		zone := s.Name + ".net."
		e.s.Domain = "www." + strings.TrimSuffix(zone, ".")
		var src []string
		for _, v := range wc.dnsFaultFrom {
			src = append(src, vantageAddr(v))
		}
		e.zones = []zoneSpec{{origin: zone, text: strings.ReplaceAll(recs.String(), label+" A", "www A")}}
		e.servers = c.ns(zone, 2, nil)
		for i := range e.servers {
			e.servers[i].faults = []dnsserver.Fault{{Kind: dnsserver.FaultServFail, Sources: src}}
		}
		if wc.v6 != nil {
			e.v6 = map[string]webBehaviour{e.s.Domain: *wc.v6}
		}
		c.add(e)
		return
	}
	c.webRecords.WriteString(recs.String())
	c.add(e)
}

func tokenArgs(challenge, scenario string) []string {
	return []string{"--challenge", challenge, "--token", Token(scenario), "--key-auth", KeyAuth(scenario)}
}

var reachArgs = []string{"--challenge", "http-01"}

func (c *cat) webScenarios() {
	h01 := func(name string) []string { return tokenArgs("http-01", name) }
	alpn := func(name string) []string { return tokenArgs("tls-alpn-01", name) }
	solver := siteSpec{http: webBehaviour{kind: webSolver}}
	redirect := func(code int, loc string, t tlsKind, https webBehaviour) siteSpec {
		return siteSpec{http: webBehaviour{kind: webRedirect, status: code, location: loc}, tls: t, https: https}
	}
	body := func(b string) siteSpec { return siteSpec{http: webBehaviour{kind: webBody, body: b}} }
	status := func(code int, body string, hdr ...[2]string) siteSpec {
		return siteSpec{http: webBehaviour{kind: webStatus, status: code, body: body, header: hdr}}
	}
	html := "<!DOCTYPE html>\n<html><head><title>Shop</title></head><body><div id=\"app\">Loading the shop&hellip;</div>" +
		"<script src=\"/static/app.js\"></script></body></html>\n"

	// ---- Healthy ----
	c.addWeb(webCase{s: Scenario{Name: "web-ipv4-only", Args: h01("web-ipv4-only"), Healthy: true,
		Description: "HTTP-01 served on the only (IPv4) address"}, site: solver})
	c.addWeb(webCase{s: Scenario{Name: "web-dual-stack", Args: h01("web-dual-stack"), Healthy: true,
		Description: "HTTP-01 served on both the A and the AAAA address"}, site: solver, v6: &webBehaviour{kind: webSolver}})
	c.addWeb(webCase{s: Scenario{Name: "web-reachable", Args: reachArgs, Healthy: true,
		Description: "no token: the challenge path is reachable and a random token gets 404"}, site: solver})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-https", Args: h01("web-redirect-https"), Healthy: true,
		Description: "301 to https on the default port, self-signed certificate (valid for Let's Encrypt)"},
		site: redirect(http.StatusMovedPermanently, "https://{host}{path}", tlsServe, webBehaviour{})})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-302-http", Args: h01("web-redirect-302-http"), Healthy: true,
		Description: "302 to another path over http"},
		site: redirect(http.StatusFound, "http://{host}/moved{path}", tlsNone, webBehaviour{})})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-307-https", Args: h01("web-redirect-307-https"), Healthy: true,
		Description: "307 to https"}, site: redirect(http.StatusTemporaryRedirect, "https://{host}{path}", tlsServe, webBehaviour{})})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-308-https", Args: h01("web-redirect-308-https"), Healthy: true,
		Description: "308 to https"}, site: redirect(http.StatusPermanentRedirect, "https://{host}{path}", tlsServe, webBehaviour{})})
	c.addWeb(webCase{s: Scenario{Name: "web-trailing-newline", Args: h01("web-trailing-newline"), Healthy: true,
		Description: "the key authorization followed by a newline (trailing whitespace is trimmed)"}, site: body("{keyauth}\n")})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-chain-9", Args: h01("web-redirect-chain-9"), Healthy: true,
		Description: "9 redirects (10 requests), the most Boulder v0.20261110.0 follows"}, site: siteSpec{http: webBehaviour{kind: webChain, n: 9}}})
	c.addWeb(webCase{s: Scenario{Name: "web-slow", Args: h01("web-slow"), Healthy: true,
		Description: "the answer comes after 6 s (within the CA's deadline, but slow)",
		Expect:      []Expectation{exp(reports.CodeHTTP01SlowResponse, reports.Warning, "")}},
		site: siteSpec{http: webBehaviour{kind: webSlow, delay: 6 * time.Second}}})

	// ---- Reachability ----
	c.addWeb(webCase{s: Scenario{Name: "web-refused", Args: h01("web-refused"),
		Description: "nothing listens on the A address (connection refused)",
		Expect:      []Expectation{exp(reports.CodeHTTP01ConnectionRefused, reports.Error, "127.80.")}}})
	c.addWeb(webCase{s: Scenario{Name: "web-dropped", Args: h01("web-dropped"),
		Description: "a firewall drops every packet to port 80 (connect timeout)",
		Expect:      []Expectation{exp(reports.CodeHTTP01ConnectTimeout, reports.Error, "127.80.")}},
		site: solver, drops: []dropSpec{{}}})
	c.addWeb(webCase{s: Scenario{Name: "web-reset", Args: h01("web-reset"),
		Description: "the connection is reset after the request (IPS/IDS)",
		Expect:      []Expectation{exp(reports.CodeHTTP01ConnectionReset, reports.Error, "127.80.")}},
		site: siteSpec{http: webBehaviour{kind: webReset}}})
	c.addWeb(webCase{s: Scenario{Name: "web-ipv6-different", Args: h01("web-ipv6-different"),
		Description: "the A address serves the token, the AAAA address (tried first) another site",
		Expect:      []Expectation{exp(reports.CodeHTTP01IPv6DifferentContent, reports.Error, "::1")}},
		site: solver, v6: &webBehaviour{kind: webBody, body: "<html>old server</html>\n"}})
	// Boulder v0.20261110.0 falls back to IPv4 per request, redirects included.
	c.addWeb(webCase{s: Scenario{Name: "web-ipv6-redirect-unreachable", Args: h01("web-ipv6-redirect-unreachable"), Healthy: true,
		Description: "IPv6 port 80 redirects to https, nothing listens on IPv6 port 443: that request falls back to IPv4",
		Expect:      []Expectation{exp(reports.CodeHTTP01IPv6Unreachable, reports.Warning, "::1")}},
		site: redirect(http.StatusMovedPermanently, "https://{host}{path}", tlsServe, webBehaviour{}),
		v6:   &webBehaviour{kind: webRedirect, status: http.StatusMovedPermanently, location: "https://{host}{path}"}})
	// A refused IPv6 connection is not different content: Boulder retries
	// that request on IPv4 (the first one and a redirected one alike).
	plainOnHTTPS := func(b webBehaviour) siteSpec { return siteSpec{tls: tlsPlainHTTP, https: b} }
	c.addWeb(webCase{s: Scenario{Name: "web-ipv6-refused", Args: h01("web-ipv6-refused"), Healthy: true, HTTPOnHTTPSPort: true,
		Description: "the AAAA address refuses the first request; the A address serves the token (Let's Encrypt falls back to IPv4)",
		Expect:      []Expectation{exp(reports.CodeHTTP01IPv6Unreachable, reports.Warning, "::1")}},
		site: plainOnHTTPS(webBehaviour{kind: webSolver}), v6: &webBehaviour{kind: webSolver}})
	c.addWeb(webCase{s: Scenario{Name: "web-ipv6-refused-v4-wrong", Args: h01("web-ipv6-refused-v4-wrong"), HTTPOnHTTPSPort: true,
		Description: "the AAAA address refuses the first request; the A address serves a stale key authorization",
		Expect: []Expectation{exp(reports.CodeHTTP01IPv6Unreachable, reports.Warning, "::1"),
			exp(reports.CodeHTTP01WrongBody, reports.Error, Token("stale-token"))}},
		site: plainOnHTTPS(webBehaviour{kind: webBody, body: KeyAuth("stale-token")}), v6: &webBehaviour{kind: webSolver}})
	c.addWeb(webCase{s: Scenario{Name: "web-ipv6-redirect-refused-v4-direct", Args: h01("web-ipv6-redirect-refused-v4-direct"), Healthy: true,
		Description: "IPv6 port 80 redirects to https, where IPv6 refuses (fallback to IPv4); IPv4 port 80 serves the token itself",
		Expect:      []Expectation{exp(reports.CodeHTTP01IPv6Unreachable, reports.Warning, "::1")}},
		site: siteSpec{http: webBehaviour{kind: webSolver}, tls: tlsServe},
		v6:   &webBehaviour{kind: webRedirect, status: http.StatusMovedPermanently, location: "https://{host}{path}"}})
	c.addWeb(webCase{s: Scenario{Name: "web-inconsistent-backends", Args: h01("web-inconsistent-backends"),
		Description: "two A addresses: one serves the token, the other a stale key authorization",
		Expect:      []Expectation{exp(reports.CodeHTTP01InconsistentBackends, reports.Error, "127.80.")}},
		site: solver, more: []siteSpec{body(KeyAuth("stale-token"))}})

	// ---- Status and body ----
	c.addWeb(webCase{s: Scenario{Name: "web-404", Args: h01("web-404"), Tentative: true,
		// A 404 for the token is the typical unrouted solver: http01 names
		// the server that answered instead of the solver.
		Description: "the token path answers 404",
		Expect:      []Expectation{exp(reports.CodeHTTP01NotRouted, reports.Error, "404")}},
		site: status(http.StatusNotFound, "404 page not found\n")})
	c.addWeb(webCase{s: Scenario{Name: "web-500", Args: h01("web-500"),
		Description: "the token path answers 500",
		Expect:      []Expectation{exp(reports.CodeHTTP01BadStatus, reports.Error, "500")}},
		site: status(http.StatusInternalServerError, "internal error\n")})
	c.addWeb(webCase{s: Scenario{Name: "web-waf-403", Args: h01("web-waf-403"), Tentative: true,
		Description: "a CDN WAF answers 403 (Server: cloudflare, CF-RAY)",
		Expect: []Expectation{exp(reports.CodeHTTP01WAFOrAuth, reports.Warning, "Cloudflare"),
			exp(reports.CodeHTTP01BadStatus, reports.Error, "403")}},
		site: status(http.StatusForbidden, "<html><title>Attention Required! | Cloudflare</title></html>\n",
			[2]string{"Server", "cloudflare"}, [2]string{"CF-RAY", "8d1c2f3a4b5c6d7e-FRA"})})
	c.addWeb(webCase{s: Scenario{Name: "web-basic-auth", Args: h01("web-basic-auth"), Tentative: true,
		Description: "HTTP basic auth in front of the whole site (401)",
		Expect: []Expectation{exp(reports.CodeHTTP01WAFOrAuth, reports.Warning, "401"),
			exp(reports.CodeHTTP01BadStatus, reports.Error, "401")}},
		site: status(http.StatusUnauthorized, "unauthorized\n", [2]string{"WWW-Authenticate", `Basic realm="staging"`})})
	c.addWeb(webCase{s: Scenario{Name: "web-catch-all", Args: h01("web-catch-all"),
		Description: "an application catch-all answers 200 with an HTML page for every path",
		Expect:      []Expectation{exp(reports.CodeHTTP01WrongBody, reports.Error, "")}},
		site: body(html)})
	c.addWeb(webCase{s: Scenario{Name: "web-not-routed", Args: reachArgs, Tentative: true,
		// Without a token acmediag cannot know the solver would not answer
		// the real one: a warning.
		Description: "no token: a random token path answers 200 HTML (the path is not routed to a solver)",
		Expect:      []Expectation{exp(reports.CodeHTTP01NotRouted, reports.Warning, "catch-all")}},
		site: body(html)})
	c.addWeb(webCase{s: Scenario{Name: "web-big-body", Args: h01("web-big-body"),
		Description: "the key authorization followed by more text: 128 bytes or more",
		Expect:      []Expectation{exp(reports.CodeHTTP01WrongBody, reports.Error, "")}},
		site: body("{keyauth}\n<!-- served by the static file handler of the application frontend -->\n")})
	c.addWeb(webCase{s: Scenario{Name: "web-bom", Args: h01("web-bom"),
		Description: "a UTF-8 byte-order mark before the key authorization",
		Expect:      []Expectation{exp(reports.CodeHTTP01WrongBody, reports.Error, "")}},
		site: body("\ufeff{keyauth}")})
	c.addWeb(webCase{s: Scenario{Name: "web-wrong-keyauth", Args: h01("web-wrong-keyauth"),
		Description: "a stale key authorization from an earlier order",
		Expect:      []Expectation{exp(reports.CodeHTTP01WrongBody, reports.Error, Token("stale-token"))}},
		site: body(KeyAuth("stale-token"))})
	c.addWeb(webCase{s: Scenario{Name: "web-infinite-body", Args: h01("web-infinite-body"), Tentative: true,
		Description: "200 with a body that never ends",
		Expect:      []Expectation{exp(reports.CodeHTTP01WrongBody, reports.Error, "")}},
		site: siteSpec{http: webBehaviour{kind: webInfinite}}})
	c.addWeb(webCase{s: Scenario{Name: "web-tls-on-http-port", Args: h01("web-tls-on-http-port"), Tentative: true,
		// Boulder sees the TLS server's "400 Bad Request" answer.
		Description: "the server speaks TLS on port 80",
		Expect:      []Expectation{exp(reports.CodeHTTP01TLSOnHTTPPort, reports.Error, "")}},
		site: siteSpec{http: webBehaviour{kind: webTLS}}})
	c.addWeb(webCase{s: Scenario{Name: "web-h2c", Args: h01("web-h2c"),
		Description: "the server speaks HTTP/2 with prior knowledge (h2c) on port 80",
		Expect:      []Expectation{exp(reports.CodeHTTP01H2C, reports.Error, "")}},
		site: siteSpec{http: webBehaviour{kind: webH2C}}})

	// ---- Redirects ----
	bad := func(name, desc, loc string, code reports.Code, detail string, st int) {
		c.addWeb(webCase{s: Scenario{Name: name, Args: h01(name), Description: desc,
			Expect: []Expectation{exp(code, reports.Error, detail)}},
			site: redirect(st, loc, tlsNone, webBehaviour{})})
	}
	bad("web-redirect-port", "redirect to port 8443", "http://{host}:8443{path}", reports.CodeHTTP01RedirectBadPort, "8443", http.StatusFound)
	bad("web-redirect-scheme", "redirect to an ftp:// URL", "ftp://{host}{path}", reports.CodeHTTP01RedirectBadScheme, "ftp", http.StatusFound)
	bad("web-redirect-303", "303 See Other (not allowed for validation)", "http://{host}/moved{path}", reports.CodeHTTP01RedirectBadStatus, "303", http.StatusSeeOther)
	// A reserved IP literal nothing may connect to; 0.0.0.0 also keeps a
	// buggy client on this machine.
	bad("web-redirect-ip", "redirect to a (reserved) IP literal", "http://0.0.0.0{path}", reports.CodeHTTP01RedirectBadHost, "0.0.0.0", http.StatusFound)
	bad("web-redirect-tld", "redirect to a host under a TLD IANA does not know", "http://www.acmediag.notatld{path}", reports.CodeHTTP01RedirectBadHost, "notatld", http.StatusFound)
	bad("web-redirect-missing-slash", "redirect with the slash missing after the host (Apache `Redirect / https://name`)",
		"http://{host}{pathnoslash}", reports.CodeHTTP01RedirectBadHost, ".well-known", http.StatusMovedPermanently)
	bad("web-redirect-loop", "redirect to the same URL", "http://{host}{path}", reports.CodeHTTP01RedirectLoop, "", http.StatusFound)
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-chain-10", Args: h01("web-redirect-chain-10"),
		Description: "10 redirects: an 11th request, one more than Boulder makes (\"Too many hops\")",
		Expect:      []Expectation{exp(reports.CodeHTTP01TooManyRedirects, reports.Error, "")}},
		site: siteSpec{http: webBehaviour{kind: webChain, n: 10}}})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-chain-11", Args: h01("web-redirect-chain-11"),
		Description: "11 redirects: followed by older Boulders, too many hops for v0.20261110.0",
		Expect:      []Expectation{exp(reports.CodeHTTP01TooManyRedirects, reports.Error, "")}},
		site: siteSpec{http: webBehaviour{kind: webChain, n: 11}}})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-chain-12", Args: h01("web-redirect-chain-12"),
		Description: "12 redirects: too many hops",
		Expect:      []Expectation{exp(reports.CodeHTTP01TooManyRedirects, reports.Error, "")}},
		site: siteSpec{http: webBehaviour{kind: webChain, n: 12}}})
	c.addWeb(webCase{s: Scenario{Name: "web-redirect-tls11", Args: h01("web-redirect-tls11"),
		Description: "redirect to an HTTPS server that speaks only TLS 1.0–1.1",
		Expect:      []Expectation{exp(reports.CodeHTTP01RedirectTLSError, reports.Error, "")}},
		site: redirect(http.StatusMovedPermanently, "https://{host}{path}", tlsOld, webBehaviour{})})

	// ---- TLS-ALPN-01 ----
	c.addWeb(webCase{s: Scenario{Name: "alpn-ok", Args: alpn("alpn-ok"), Healthy: true,
		Description: "TLS-ALPN-01 responder with the RFC 8737 certificate"}, site: siteSpec{tls: tlsALPN}})
	c.addWeb(webCase{s: Scenario{Name: "alpn-ipv6-unreachable", Args: alpn("alpn-ipv6-unreachable"), Healthy: true, Tentative: true,
		// The universe's one IPv6 server listens on the HTTP port only,
		// so "AAAA not listening" with IPv4 fine is staged at 443.
		Description: "the AAAA address does not listen on 443; IPv4 answers (TLS-ALPN-01 falls back)",
		Expect:      []Expectation{exp(reports.CodeHTTP01IPv6Unreachable, reports.Warning, "::1")}},
		site: siteSpec{tls: tlsALPN}, v6: &webBehaviour{kind: webSolver}})
	c.addWeb(webCase{s: Scenario{Name: "alpn-no-alpn", Args: alpn("alpn-no-alpn"),
		Description: "an ordinary HTTPS server: no acme-tls/1 protocol",
		Expect:      []Expectation{exp(reports.CodeTLSALPNNoALPN, reports.Error, "")}},
		site: siteSpec{tls: tlsALPNNoALPN}})
	c.addWeb(webCase{s: Scenario{Name: "alpn-wrong-san", Args: alpn("alpn-wrong-san"),
		Description: "an acme-tls/1 certificate for another name",
		Expect:      []Expectation{exp(reports.CodeTLSALPNWrongCertificate, reports.Error, "")}},
		site: siteSpec{tls: tlsALPNWrongSAN}})
	c.addWeb(webCase{s: Scenario{Name: "alpn-plain-http", Args: alpn("alpn-plain-http"), Tentative: true,
		// Boulder: malformed "Server only speaks HTTP, not TLS".
		Description: "plain HTTP on port 443",
		Expect:      []Expectation{exp(reports.CodeTLSALPNUnreachable, reports.Error, "")}},
		site: siteSpec{tls: tlsPlainHTTP}})
	c.addWeb(webCase{s: Scenario{Name: "alpn-refused", Args: alpn("alpn-refused"),
		Description: "nothing listens on port 443",
		Expect:      []Expectation{exp(reports.CodeTLSALPNUnreachable, reports.Error, "127.80.")}},
		site: solver})

	// ---- Vantages and MPIC ----
	blocked := func(vs ...string) []dropSpec {
		var src []string
		for _, v := range vs {
			src = append(src, vantageAddr(v))
		}
		return []dropSpec{{sources: src}}
	}
	c.addWeb(webCase{s: Scenario{Name: "mpic-partial", Args: h01("mpic-partial"), Vantages: true, Healthy: true,
		Description: "a firewall drops one remote perspective (us-east): still within quorum",
		Expect: []Expectation{exp(reports.CodeMPICPartial, reports.Warning, "us-east"),
			{Code: reports.CodeHTTP01ConnectTimeout, Severity: reports.Warning, Vantage: "us-east"}}},
		site: solver, drops: blocked("us-east")})
	c.addWeb(webCase{s: Scenario{Name: "mpic-quorum-failed", Args: h01("mpic-quorum-failed"), Vantages: true,
		Description: "a firewall drops two of three remote perspectives (us-east, eu-west)",
		Expect: []Expectation{exp(reports.CodeMPICQuorumFailed, reports.Fatal, "eu-west"),
			{Code: reports.CodeHTTP01ConnectTimeout, Severity: reports.Error, Vantage: "eu-west"}}},
		site: solver, drops: blocked("us-east", "eu-west")})
	c.addWeb(webCase{s: Scenario{Name: "vantage-self-check-only", Args: h01("vantage-self-check-only"), Vantages: true, Healthy: true,
		Description: "every remote perspective connects, the in-cluster vantage is dropped (hairpin NAT)",
		Expect: []Expectation{exp(reports.CodeVantageSelfCheckOnly, reports.Warning, "cluster"),
			{Code: reports.CodeHTTP01ConnectTimeout, Severity: reports.Warning, Vantage: "cluster"}}},
		site: solver, drops: blocked("cluster")})
	// Every perspective failing alike is the cause's finding: a quorum
	// finding (fix: remove geo-blocking) above it would mislead.
	c.addWeb(webCase{s: Scenario{Name: "mpic-all-blocked", Args: h01("mpic-all-blocked"), Vantages: true,
		Description: "a firewall drops every vantage",
		Expect:      []Expectation{exp(reports.CodeHTTP01ConnectTimeout, reports.Error, "127.80.")},
		Absent:      []reports.Code{reports.CodeMPICQuorumFailed}},
		site: solver, drops: []dropSpec{{}}})
	c.addWeb(webCase{s: Scenario{Name: "mpic-all-refused", Args: h01("mpic-all-refused"), Vantages: true,
		Description: "nothing listens on port 80: every vantage is refused",
		Expect:      []Expectation{exp(reports.CodeHTTP01ConnectionRefused, reports.Error, "127.80.")},
		Absent:      []reports.Code{reports.CodeMPICQuorumFailed}}})
	c.addWeb(webCase{s: Scenario{Name: "mpic-split-causes", Args: h01("mpic-split-causes"), Vantages: true,
		Description: "every remote perspective fails, each for its own reason: us-east is dropped, eu-west and ap-south get SERVFAIL",
		Expect: []Expectation{exp(reports.CodeMPICQuorumFailed, reports.Fatal, "us-east"),
			{Code: reports.CodeHTTP01ConnectTimeout, Severity: reports.Error, Vantage: "us-east"},
			{Code: reports.CodeDNSServFail, Severity: reports.Fatal, Vantage: "eu-west"}}},
		site: solver, drops: blocked("us-east"), dnsFaultFrom: []string{"eu-west", "ap-south"}})
	{
		zone := "mpic-txtprop.com."
		srv := c.ns(zone, 2, nil)
		srv[1].stale = map[string]string{zone: "@ SOA ns1.mpic-txtprop.com. hostmaster.mpic-txtprop.com. 1000 3600 900 604800 300\nwww A " + WebAddr + "\n"}
		c.add(entry{
			s: Scenario{Name: "mpic-dns01-not-propagated", Domain: "www.mpic-txtprop.com", Args: dns01Args("mpic-dns01-not-propagated"), Vantages: true,
				Description: "dns-01 from every vantage: a lagging secondary lacks the TXT value",
				Expect:      []Expectation{exp(reports.CodeDNS01TXTNotPropagated, reports.Error, "ns2.mpic-txtprop.com")},
				Absent:      []reports.Code{reports.CodeMPICQuorumFailed}},
			zones: []zoneSpec{{origin: zone, text: "@ SOA ns1.mpic-txtprop.com. hostmaster.mpic-txtprop.com. 1001 3600 900 604800 300\nwww A " + WebAddr + "\n" +
				txt("_acme-challenge.www", Token("mpic-dns01-not-propagated"))}},
			servers: srv,
		})
	}
	c.addWeb(webCase{s: Scenario{Name: "mpic-dns-partial", Args: h01("mpic-dns-partial"), Vantages: true, Healthy: true, Tentative: true,
		Description: "the name's servers answer SERVFAIL to one perspective's resolver (ap-south) only",
		Expect: []Expectation{exp(reports.CodeMPICPartial, reports.Warning, "ap-south"),
			{Code: reports.CodeDNSServFail, Severity: reports.Warning, Vantage: "ap-south"}}},
		site: solver, dnsFaultFrom: []string{"ap-south"}})

	c.tlsScenarios()

	c.extraZones = append(c.extraZones, zoneSpec{origin: webZone, text: c.webRecords.String()})
	c.extraServers = append(c.extraServers, c.ns(webZone, 2, nil)...)
}
