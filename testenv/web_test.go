package testenv

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
	"github.com/miekg/dns"
)

// webTarget says where a test request goes.
type webTarget struct {
	scenario string
	v6       bool   // to ::1 instead of the scenario's first A address
	addrIdx  int    // which A address
	vantage  string // source address of this vantage; "" → the kernel's choice
	// plainHTTPS asks plain HTTP on the HTTPS port (Scenario.HTTPOnHTTPSPort).
	plainHTTPS bool
}

func (u *Universe) targetAddr(t *testing.T, wt webTarget) string {
	t.Helper()
	if wt.v6 {
		return WebAddr6
	}
	addrs := u.WebAddrs(wt.scenario)
	if wt.scenario == "" {
		return WebAddr
	}
	if wt.addrIdx >= len(addrs) {
		t.Fatalf("scenario %s has addresses %v", wt.scenario, addrs)
	}
	return addrs[wt.addrIdx]
}

func domainOf(t *testing.T, scenario string) string {
	t.Helper()
	for _, s := range buildCatalogue().entries {
		if s.s.Name == scenario {
			return s.s.Domain
		}
	}
	t.Fatalf("no scenario %s", scenario)
	return ""
}

// dialer connects to addr whatever the URL says, from the vantage's
// address (IPv4 destinations only).
func dialer(addr, vantage string, timeout time.Duration) func(ctx context.Context, network, hostport string) (net.Conn, error) {
	return func(ctx context.Context, network, hostport string) (net.Conn, error) {
		_, port, err := net.SplitHostPort(hostport)
		if err != nil {
			return nil, err
		}
		d := net.Dialer{Timeout: timeout}
		if va := vantageAddr(vantage); va != "" && !strings.Contains(addr, ":") {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(va)}
		}
		return d.DialContext(ctx, network, net.JoinHostPort(addr, port))
	}
}

type webResult struct {
	resp *http.Response
	body []byte
	err  error
}

// fetch GETs path from the scenario's address with redirects not followed.
func (u *Universe) fetch(t *testing.T, wt webTarget, https bool, path string, tlsCfg *tls.Config, timeout time.Duration) webResult {
	t.Helper()
	addr := u.targetAddr(t, wt)
	host := WebAddr
	if wt.scenario != "" {
		host = domainOf(t, wt.scenario)
	}
	scheme, port := "http", u.HTTPPort()
	switch {
	case https:
		scheme, port = "https", u.HTTPSPort()
	case wt.plainHTTPS:
		port = u.HTTPSPort()
	}
	if tlsCfg == nil {
		tlsCfg = &tls.Config{InsecureSkipVerify: true}
	}
	c := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:       dialer(addr, wt.vantage, timeout),
			TLSClientConfig:   tlsCfg,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	url := scheme + "://" + net.JoinHostPort(host, strconv.Itoa(port)) + path
	resp, err := c.Get(url)
	if err != nil {
		return webResult{err: err}
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return webResult{resp: resp, body: body, err: err}
}

func tokenPath(scenario string) string { return challengePrefix + Token(scenario) }

func testWeb(t *testing.T, u *Universe) {
	cases := []struct {
		desc       string
		target     webTarget
		https      bool
		path       string // "" → the scenario's token path
		tlsCfg     *tls.Config
		timeout    time.Duration // 0 → 5 s
		wantErr    string        // substring of the error; "" → no error
		wantStatus int
		wantBody   string // exact, when non-empty
		wantPrefix string // body prefix
		minBody    int
		wantHeader [2]string
		wantLoc    string // Location; {host} and {path} replaced
		wantTLS    uint16
	}{
		{desc: "healthy DNS scenario's address serves its key authorization", target: webTarget{}, path: tokenPath("healthy-unsigned"),
			wantStatus: 200, wantBody: KeyAuth("healthy-unsigned")},
		{desc: "IPv4-only: key authorization", target: webTarget{scenario: "web-ipv4-only", vantage: "us-east"}, wantStatus: 200, wantBody: KeyAuth("web-ipv4-only")},
		{desc: "IPv4-only: unknown token is 404", target: webTarget{scenario: "web-ipv4-only"}, path: challengePrefix + "nope", wantStatus: 404},
		{desc: "dual-stack over IPv6", target: webTarget{scenario: "web-dual-stack", v6: true}, wantStatus: 200, wantBody: KeyAuth("web-dual-stack")},
		{desc: "IPv6 serves another site", target: webTarget{scenario: "web-ipv6-different", v6: true}, wantStatus: 200, wantBody: "<html>old server</html>\n"},
		{desc: "IPv4 of the IPv6-different name serves the token", target: webTarget{scenario: "web-ipv6-different"}, wantStatus: 200, wantBody: KeyAuth("web-ipv6-different")},
		{desc: "IPv6 port 80 redirects to https", target: webTarget{scenario: "web-ipv6-redirect-unreachable", v6: true}, wantStatus: 301, wantLoc: "https://{host}{path}"},
		{desc: "nothing on IPv6 port 443", target: webTarget{scenario: "web-ipv6-redirect-unreachable", v6: true}, https: true, wantErr: "connection refused"},
		{desc: "HTTP-01 on the HTTPS port: IPv4 serves the token", target: webTarget{scenario: "web-ipv6-refused", plainHTTPS: true},
			wantStatus: 200, wantBody: KeyAuth("web-ipv6-refused")},
		{desc: "HTTP-01 on the HTTPS port: IPv6 refuses", target: webTarget{scenario: "web-ipv6-refused", v6: true, plainHTTPS: true}, wantErr: "connection refused"},
		{desc: "IPv4 port 80 serves the token while IPv6 redirects", target: webTarget{scenario: "web-ipv6-redirect-refused-v4-direct"},
			wantStatus: 200, wantBody: KeyAuth("web-ipv6-redirect-refused-v4-direct")},
		{desc: "second backend serves a stale key authorization", target: webTarget{scenario: "web-inconsistent-backends", addrIdx: 1, vantage: "eu-west"}, wantStatus: 200, wantBody: KeyAuth("stale-token")},
		{desc: "first backend serves the right one", target: webTarget{scenario: "web-inconsistent-backends"}, wantStatus: 200, wantBody: KeyAuth("web-inconsistent-backends")},
		{desc: "trailing newline", target: webTarget{scenario: "web-trailing-newline"}, wantStatus: 200, wantBody: KeyAuth("web-trailing-newline") + "\n"},
		{desc: "byte-order mark", target: webTarget{scenario: "web-bom"}, wantStatus: 200, wantBody: "\ufeff" + KeyAuth("web-bom")},
		{desc: "128 bytes or more", target: webTarget{scenario: "web-big-body"}, wantStatus: 200, wantPrefix: KeyAuth("web-big-body"), minBody: 128},
		{desc: "catch-all HTML for a random token", target: webTarget{scenario: "web-not-routed"}, path: challengePrefix + "random", wantStatus: 200, wantPrefix: "<!DOCTYPE html>", minBody: 128},
		{desc: "WAF 403 with Cloudflare signature", target: webTarget{scenario: "web-waf-403", vantage: "ap-south"}, wantStatus: 403, wantHeader: [2]string{"Cf-Ray", "8d1c2f3a4b5c6d7e-FRA"}},
		{desc: "WAF Server header", target: webTarget{scenario: "web-waf-403"}, wantStatus: 403, wantHeader: [2]string{"Server", "cloudflare"}},
		{desc: "basic auth", target: webTarget{scenario: "web-basic-auth"}, wantStatus: 401, wantHeader: [2]string{"Www-Authenticate", `Basic realm="staging"`}},
		{desc: "500", target: webTarget{scenario: "web-500"}, wantStatus: 500},
		{desc: "404", target: webTarget{scenario: "web-404"}, wantStatus: 404},
		{desc: "redirect to https", target: webTarget{scenario: "web-redirect-https"}, wantStatus: 301, wantLoc: "https://{host}{path}"},
		{desc: "https target serves the token over TLS 1.3", target: webTarget{scenario: "web-redirect-https"}, https: true, wantStatus: 200,
			wantBody: KeyAuth("web-redirect-https"), wantTLS: tls.VersionTLS13},
		{desc: "302 to another http path", target: webTarget{scenario: "web-redirect-302-http"}, wantStatus: 302, wantLoc: "http://{host}/moved{path}"},
		{desc: "the moved path serves the token", target: webTarget{scenario: "web-redirect-302-http"}, path: "/moved" + tokenPath("web-redirect-302-http"),
			wantStatus: 200, wantBody: KeyAuth("web-redirect-302-http")},
		{desc: "307", target: webTarget{scenario: "web-redirect-307-https"}, wantStatus: 307, wantLoc: "https://{host}{path}"},
		{desc: "308", target: webTarget{scenario: "web-redirect-308-https"}, wantStatus: 308, wantLoc: "https://{host}{path}"},
		{desc: "303", target: webTarget{scenario: "web-redirect-303"}, wantStatus: 303, wantLoc: "http://{host}/moved{path}"},
		{desc: "redirect to port 8443", target: webTarget{scenario: "web-redirect-port"}, wantStatus: 302, wantLoc: "http://{host}:8443{path}"},
		{desc: "redirect to ftp", target: webTarget{scenario: "web-redirect-scheme"}, wantStatus: 302, wantLoc: "ftp://{host}{path}"},
		{desc: "redirect to an IP literal", target: webTarget{scenario: "web-redirect-ip"}, wantStatus: 302, wantLoc: "http://0.0.0.0{path}"},
		{desc: "redirect to a non-IANA TLD", target: webTarget{scenario: "web-redirect-tld"}, wantStatus: 302, wantLoc: "http://www.acmediag.notatld{path}"},
		{desc: "redirect missing its slash", target: webTarget{scenario: "web-redirect-missing-slash"}, wantStatus: 301,
			wantLoc: "http://{host}.well-known/acme-challenge/" + Token("web-redirect-missing-slash")},
		{desc: "redirect to itself", target: webTarget{scenario: "web-redirect-loop"}, wantStatus: 302, wantLoc: "http://{host}{path}"},
		{desc: "chain step 1", target: webTarget{scenario: "web-redirect-chain-12"}, wantStatus: 302, wantLoc: "http://{host}/c1{path}"},
		{desc: "chain step 12 is the last redirect", target: webTarget{scenario: "web-redirect-chain-12"}, path: "/c11" + tokenPath("web-redirect-chain-12"),
			wantStatus: 302, wantLoc: "http://{host}/c12" + tokenPath("web-redirect-chain-12")},
		{desc: "chain of 11 ends at /c11", target: webTarget{scenario: "web-redirect-chain-11"}, path: "/c11" + tokenPath("web-redirect-chain-11"),
			wantStatus: 200, wantBody: KeyAuth("web-redirect-chain-11")},
		{desc: "TLS 1.1 target refuses a TLS 1.2+ client", target: webTarget{scenario: "web-redirect-tls11"}, https: true, wantErr: "protocol version"},
		{desc: "TLS 1.1 target speaks TLS 1.1", target: webTarget{scenario: "web-redirect-tls11"}, https: true,
			tlsCfg: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, wantStatus: 200, wantTLS: tls.VersionTLS11},
		{desc: "slow answer", target: webTarget{scenario: "web-slow"}, timeout: time.Second, wantErr: "Timeout"},
		{desc: "connection reset", target: webTarget{scenario: "web-reset"}, wantErr: "reset"},
		{desc: "TLS on the HTTP port answers plain HTTP with 400", target: webTarget{scenario: "web-tls-on-http-port"}, wantStatus: 400, wantPrefix: "Client sent an HTTP request to an HTTPS server"},
		{desc: "h2c SETTINGS frame", target: webTarget{scenario: "web-h2c"}, wantErr: `malformed HTTP response "\x00\x00\x06\x04\x00\x00\x00\x00\x00`},
		{desc: "infinite body", target: webTarget{scenario: "web-infinite-body"}, wantStatus: 200, minBody: 1 << 20},
		{desc: "refused", target: webTarget{scenario: "web-refused"}, wantErr: "connection refused"},
		{desc: "plain HTTP on the HTTPS port", target: webTarget{scenario: "alpn-plain-http"}, https: true, wantErr: "server gave HTTP response"},
		{desc: "nothing on the HTTPS port", target: webTarget{scenario: "alpn-refused"}, https: true, wantErr: "connection refused"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			path := c.path
			if path == "" {
				path = tokenPath(c.target.scenario)
			}
			timeout := c.timeout
			if timeout == 0 {
				timeout = 5 * time.Second
			}
			r := u.fetch(t, c.target, c.https, path, c.tlsCfg, timeout)
			if c.wantErr != "" {
				if r.err == nil || !strings.Contains(r.err.Error(), c.wantErr) {
					t.Fatalf("error %v, want one containing %q", r.err, c.wantErr)
				}
				return
			}
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.resp.StatusCode != c.wantStatus {
				t.Errorf("status %d, want %d", r.resp.StatusCode, c.wantStatus)
			}
			if c.wantBody != "" && string(r.body) != c.wantBody {
				t.Errorf("body %q, want %q", r.body, c.wantBody)
			}
			if !bytes.HasPrefix(r.body, []byte(c.wantPrefix)) {
				t.Errorf("body %.80q, want prefix %q", r.body, c.wantPrefix)
			}
			if len(r.body) < c.minBody {
				t.Errorf("body of %d bytes, want ≥ %d", len(r.body), c.minBody)
			}
			if c.wantHeader[0] != "" && r.resp.Header.Get(c.wantHeader[0]) != c.wantHeader[1] {
				t.Errorf("%s: %q, want %q", c.wantHeader[0], r.resp.Header.Get(c.wantHeader[0]), c.wantHeader[1])
			}
			if c.wantLoc != "" {
				want := strings.NewReplacer("{host}", domainOf(t, c.target.scenario), "{path}", path).Replace(c.wantLoc)
				if got := r.resp.Header.Get("Location"); got != want {
					t.Errorf("Location %q, want %q", got, want)
				}
			}
			if c.wantTLS != 0 && (r.resp.TLS == nil || r.resp.TLS.Version != c.wantTLS) {
				t.Errorf("TLS state %v, want version %x", r.resp.TLS, c.wantTLS)
			}
		})
	}
}

// testTLSALPN checks the TLS-ALPN-01 responders the way a CA does.
func testTLSALPN(t *testing.T, u *Universe) {
	cases := []struct {
		desc     string
		scenario string
		wantErr  string
		wantSAN  string // "" → the scenario's domain
		acmeID   bool   // a critical acmeIdentifier holding SHA-256(KeyAuth)
	}{
		{desc: "good responder", scenario: "alpn-ok", acmeID: true},
		{desc: "good responder behind a broken AAAA", scenario: "alpn-ipv6-unreachable", acmeID: true},
		{desc: "no acme-tls/1", scenario: "alpn-no-alpn", wantErr: "no application protocol"},
		{desc: "certificate for another name", scenario: "alpn-wrong-san", wantSAN: "other-alpn-wrong-san.acmeweb.com", acmeID: true},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			domain := domainOf(t, c.scenario)
			d := &tls.Dialer{
				NetDialer: &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(vantageAddr("eu-west"))}},
				Config:    &tls.Config{InsecureSkipVerify: true, ServerName: domain, NextProtos: []string{"acme-tls/1"}, MinVersion: tls.VersionTLS12},
			}
			conn, err := d.Dial("tcp", net.JoinHostPort(u.WebAddrs(c.scenario)[0], strconv.Itoa(u.HTTPSPort())))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st := conn.(*tls.Conn).ConnectionState()
			if st.NegotiatedProtocol != "acme-tls/1" {
				t.Errorf("ALPN %q, want acme-tls/1", st.NegotiatedProtocol)
			}
			cert := st.PeerCertificates[0]
			want := c.wantSAN
			if want == "" {
				want = domain
			}
			if !slices.Equal(cert.DNSNames, []string{want}) {
				t.Errorf("SANs %v, want [%s]", cert.DNSNames, want)
			}
			if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil || !bytes.Equal(cert.RawSubject, cert.RawIssuer) {
				t.Errorf("not self-signed: %v", err)
			}
			if got := acmeIdentifier(cert); c.acmeID {
				sum := sha256.Sum256([]byte(KeyAuth(c.scenario)))
				if !bytes.Equal(got, sum[:]) {
					t.Errorf("acmeIdentifier %x, want critical %x", got, sum)
				}
			}
		})
	}
}

// acmeIdentifier returns the value of a critical id-pe-acmeIdentifier
// extension, or nil.
func acmeIdentifier(cert *x509.Certificate) []byte {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidACMEIdentifier) && e.Critical {
			var v []byte
			if _, err := asn1.Unmarshal(e.Value, &v); err == nil {
				return v
			}
		}
	}
	return nil
}

// testDrops checks the nftables faults: a dropped path times out from the
// blocked vantage and connects from the others.
func testDrops(t *testing.T, u *Universe) {
	if !firewallEnabled() {
		t.Skip("not root and not CI: packet-drop faults are not staged")
	}
	cases := []struct {
		desc     string
		scenario string
		vantage  string
		dropped  bool
	}{
		{desc: "mpic-partial: us-east blocked", scenario: "mpic-partial", vantage: "us-east", dropped: true},
		{desc: "mpic-partial: eu-west connects", scenario: "mpic-partial", vantage: "eu-west"},
		{desc: "quorum: eu-west blocked", scenario: "mpic-quorum-failed", vantage: "eu-west", dropped: true},
		{desc: "quorum: ap-south connects", scenario: "mpic-quorum-failed", vantage: "ap-south"},
		{desc: "self-check: cluster blocked", scenario: "vantage-self-check-only", vantage: "cluster", dropped: true},
		{desc: "self-check: us-east connects", scenario: "vantage-self-check-only", vantage: "us-east"},
		{desc: "all blocked: from ap-south", scenario: "mpic-all-blocked", vantage: "ap-south", dropped: true},
		{desc: "dropped: from the default source", scenario: "web-dropped", dropped: true},
		{desc: "other scenarios unaffected from a blocked source", scenario: "web-ipv4-only", vantage: "us-east"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			r := u.fetch(t, webTarget{scenario: c.scenario, vantage: c.vantage}, false, tokenPath(c.scenario), nil, time.Second)
			if c.dropped {
				var ne net.Error
				if r.err == nil || !errors.As(r.err, &ne) || !ne.Timeout() {
					t.Fatalf("error %v, want a connect timeout", r.err)
				}
				return
			}
			if r.err != nil || r.resp.StatusCode != 200 || string(r.body) != KeyAuth(c.scenario) {
				t.Fatalf("got %v %q, want 200 and the key authorization", r.err, r.body)
			}
		})
	}
}

// testVantages checks each vantage's own Unbound, and that its queries
// leave from the vantage's address: the mpic-dns-partial zone's servers
// answer SERVFAIL to ap-south's source address only.
func testVantages(t *testing.T, u *Universe) {
	vs := u.Vantages()
	if len(vs) < 4 {
		t.Fatalf("%d vantages, want ≥ 4", len(vs))
	}
	resolvers := map[string]bool{u.Resolver(): true, u.ClusterResolver(): true}
	for _, v := range vs {
		if resolvers[v.Resolver] {
			t.Errorf("vantage %s shares resolver %s", v.Name, v.Resolver)
		}
		resolvers[v.Resolver] = true
	}
	dnsPartial := domainOf(t, "mpic-dns-partial")
	type c struct {
		desc    string
		vantage Vantage
		name    string
		rcode   int
		addr    string
	}
	var cases []c
	for _, v := range vs {
		cases = append(cases, c{desc: v.Name + " resolves a healthy name", vantage: v, name: "www.healthy-signed.com.", addr: WebAddr})
		cases = append(cases, c{desc: v.Name + " reaches an IPv6-only name server", vantage: v, name: "www.v6only.net.", addr: WebAddr})
		want := c{desc: v.Name + " resolves the per-source zone", vantage: v, name: dnsPartial + ".", addr: u.WebAddrs("mpic-dns-partial")[0]}
		if v.Name == "ap-south" {
			want = c{desc: "ap-south's queries come from its address: SERVFAIL", vantage: v, name: dnsPartial + ".", rcode: dns.RcodeServerFailure}
		}
		cases = append(cases, want)
		if v.Kind == VantageCluster {
			cases = append(cases, c{desc: "cluster vantage sees the split view", vantage: v, name: "www.split.com.", addr: SplitAddr})
		}
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			m := new(dns.Msg)
			m.SetQuestion(c.name, dns.TypeA)
			m.SetEdns0(1232, true)
			r, _, err := (&dns.Client{Timeout: 8 * time.Second}).Exchange(m, c.vantage.Resolver)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != c.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
			}
			if c.addr != "" && !slices.ContainsFunc(r.Answer, func(rr dns.RR) bool { a, ok := rr.(*dns.A); return ok && a.A.String() == c.addr }) {
				t.Errorf("answer %v lacks %s", r.Answer, c.addr)
			}
		})
	}
}

func testWebDiagnoseArgs(t *testing.T, u *Universe) {
	var sc Scenario
	for _, s := range Catalogue() {
		if s.Name == "mpic-dns-partial" {
			sc = s
		}
	}
	joined := strings.Join(u.DiagnoseArgs(sc), " ")
	wants := []string{
		"--vantage us-east=127.10.0.1,resolver=127.53.255.10:" + strconv.Itoa(u.Port()) + ",rir=ARIN,region=us-east,kind=external",
		"--vantage cluster=127.10.0.9,resolver=127.53.255.13:" + strconv.Itoa(u.Port()) + ",rir=,region=in-cluster,kind=cluster",
		"--challenge http-01 --token " + Token("mpic-dns-partial") + " --key-auth " + KeyAuth("mpic-dns-partial"),
	}
	if u.HTTPPort() != 80 {
		wants = append(wants, "--http-port "+strconv.Itoa(u.HTTPPort()), "--https-port "+strconv.Itoa(u.HTTPSPort()))
	}
	for _, w := range wants {
		if !strings.Contains(joined, w) {
			t.Errorf("args %q lack %q", joined, w)
		}
	}
	if u.HTTPPort() != u.Port()+27 || u.HTTPSPort() != u.Port()+390 {
		t.Errorf("ports %d/%d, want DNS port +27/+390", u.HTTPPort(), u.HTTPSPort())
	}
	var plain, swapped Scenario
	for _, s := range Catalogue() {
		switch s.Name {
		case "healthy-signed":
			plain = s
		case "web-ipv6-refused":
			swapped = s
		}
	}
	if joined := strings.Join(u.DiagnoseArgs(swapped), " "); !strings.Contains(joined, "--http-port "+strconv.Itoa(u.HTTPSPort())) {
		t.Errorf("args %q do not validate HTTP-01 on the HTTPS port", joined)
	}
	if strings.Contains(strings.Join(u.DiagnoseArgs(plain), " "), "--vantage") {
		t.Errorf("a scenario without Vantages got --vantage flags")
	}
}

// TestWebCatalogue checks the web half's description without starting it.
func TestWebCatalogue(t *testing.T) {
	sp := catalogueSpec()
	covered := map[reports.Code]bool{}
	for _, s := range buildCatalogue().entries {
		for _, e := range s.s.Expect {
			covered[e.Code] = true
		}
	}
	for _, c := range []reports.Code{
		reports.CodeHTTP01ConnectTimeout, reports.CodeHTTP01ConnectionRefused, reports.CodeHTTP01IPv6Unreachable,
		reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01InconsistentBackends, reports.CodeHTTP01SlowResponse,
		reports.CodeHTTP01ConnectionReset, reports.CodeHTTP01BadStatus, reports.CodeHTTP01NotRouted, reports.CodeHTTP01WrongBody,
		reports.CodeHTTP01WAFOrAuth, reports.CodeHTTP01RedirectBadPort, reports.CodeHTTP01RedirectBadScheme,
		reports.CodeHTTP01RedirectLoop, reports.CodeHTTP01TooManyRedirects, reports.CodeHTTP01RedirectBadStatus,
		reports.CodeHTTP01RedirectBadHost, reports.CodeHTTP01RedirectTLSError, reports.CodeHTTP01TLSOnHTTPPort,
		reports.CodeHTTP01H2C, reports.CodeTLSALPNUnreachable, reports.CodeTLSALPNNoALPN, reports.CodeTLSALPNWrongCertificate,
		reports.CodeMPICQuorumFailed, reports.CodeMPICPartial, reports.CodeVantageSelfCheckOnly,
	} {
		if !covered[c] {
			t.Errorf("no scenario expects %s", c)
		}
	}
	var v6 []siteSpec
	for _, s := range sp.sites {
		if strings.Contains(s.addr, ":") {
			v6 = append(v6, s)
		}
	}
	// ::1 is the universe's only IPv6 address: one server, HTTP port only,
	// so "AAAA not listening on 443" can be staged.
	if len(v6) != 1 || v6[0].tls != tlsNone || v6[0].http.kind != webByHost {
		t.Errorf("IPv6 sites %+v, want exactly one, HTTP only", v6)
	}
	for _, s := range buildCatalogue().entries {
		if len(s.webAddrs) == 0 {
			continue
		}
		if !slices.Contains(s.s.Args, "--challenge") {
			t.Errorf("%s: web scenario without --challenge", s.s.Name)
		}
		for _, a := range s.webAddrs {
			if a != WebAddr6 && !strings.HasPrefix(a, "127.80.") {
				t.Errorf("%s: web address %s outside 127.80.0.0/16", s.s.Name, a)
			}
		}
	}
}
