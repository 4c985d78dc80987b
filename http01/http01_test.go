package http01

import (
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
)

const (
	tok = "tok_abcdefghijklmnop"
	ka  = "tok_abcdefghijklmnop.thumbprint"
)

var addrSeq atomic.Uint32

// staticResolver maps names to addresses.
type staticResolver map[string][]netip.Addr

func (r staticResolver) LookupHost(_ context.Context, host string) (v6, v4 []netip.Addr, err error) {
	for _, a := range r[host] {
		if a.Is6() {
			v6 = append(v6, a)
		} else {
			v4 = append(v4, a)
		}
	}
	if len(v6)+len(v4) == 0 {
		return nil, nil, fmt.Errorf("DNS problem: NXDOMAIN looking up A for %s - check that a DNS record exists for this domain", host)
	}
	return v6, v4, nil
}

// env is one case's universe: its own 127.x address, shared HTTP/HTTPS ports.
type env struct {
	t                   *testing.T
	ip                  netip.Addr
	httpLn, httpsLn     net.Listener
	httpPort, httpsPort int
	res                 staticResolver
}

func newEnv(t *testing.T) *env {
	t.Helper()
	n := addrSeq.Add(1)
	ip := netip.AddrFrom4([4]byte{127, 91, byte(n >> 8), byte(n)})
	e := &env{t: t, ip: ip, res: staticResolver{}}
	var err error
	if e.httpLn, err = net.Listen("tcp", netip.AddrPortFrom(ip, 0).String()); err != nil {
		t.Fatal(err)
	}
	if e.httpsLn, err = net.Listen("tcp", netip.AddrPortFrom(ip, 0).String()); err != nil {
		t.Fatal(err)
	}
	e.httpPort = e.httpLn.Addr().(*net.TCPAddr).Port
	e.httpsPort = e.httpsLn.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { e.httpLn.Close(); e.httpsLn.Close() })
	return e
}

func (e *env) serveHTTP(h http.Handler) {
	srv := &http.Server{Handler: h}
	go srv.Serve(e.httpLn)
	e.t.Cleanup(func() { srv.Close() })
}

func (e *env) serveHTTPS(h http.Handler, cfg *tls.Config) {
	srv := &http.Server{Handler: h}
	go srv.Serve(tls.NewListener(e.httpsLn, cfg))
	e.t.Cleanup(func() { srv.Close() })
}

// serveRaw answers every connection on ln with fn.
func (e *env) serveRaw(ln net.Listener, fn func(net.Conn)) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); fn(c) }()
		}
	}()
}

func (e *env) validator() *Validator {
	return &Validator{
		Resolver: e.res, HTTPPort: e.httpPort, HTTPSPort: e.httpsPort,
		Allow:       []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		DialTimeout: 500 * time.Millisecond, Timeout: 3 * time.Second,
		Logger: zaptest.NewLogger(e.t),
	}
}

func selfSigned(t testing.TB, names []string, exts []pkix.Extension) tls.Certificate {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "acme"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: names, ExtraExtensions: exts}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func acmeExt(t testing.TB, keyAuth string, critical bool) pkix.Extension {
	h := sha256.Sum256([]byte(keyAuth))
	v, err := asn1.Marshal(h[:])
	if err != nil {
		t.Fatal(err)
	}
	return pkix.Extension{Id: oidACMEIdentifier, Critical: critical, Value: v}
}

func codes(fs []reports.Finding) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf("%s/%s", f.Code, f.Severity))
	}
	return strings.Join(s, ",")
}

func hasCode(fs []reports.Finding, c reports.Code, sev reports.Severity) bool {
	for _, f := range fs {
		if f.Code == c && f.Severity == sev {
			return true
		}
	}
	return false
}

func TestHTTP01(t *testing.T) {
	t.Parallel()
	const name = "www.example.com"
	redirectTo := func(status int, loc string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Location", loc)
			w.WriteHeader(status)
		}
	}
	serveKA := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/.well-known/acme-challenge/"+tok {
				http.NotFound(w, r)
				return
			}
			if r.Header.Get("User-Agent") != DefaultUserAgent || r.Header.Get("Accept") != "*/*" {
				http.Error(w, "bad headers", 400)
				return
			}
			fmt.Fprint(w, body)
		}
	}
	chain := func(n int) http.HandlerFunc { // /r/0 → /r/1 → ... → /r/n → key auth
		return func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/.well-known/acme-challenge/"+tok {
				http.Redirect(w, r, "/r/1", http.StatusFound)
				return
			}
			i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/r/"))
			if i >= n {
				fmt.Fprint(w, ka)
				return
			}
			http.Redirect(w, r, "/r/"+strconv.Itoa(i+1), http.StatusFound)
		}
	}
	url0 := "http://" + name + "/.well-known/acme-challenge/" + tok
	cases := []struct {
		desc     string
		setup    func(e *env) Request
		ok       bool
		probType string
		detail   string // exact problem detail; "%a" is replaced with the case address
		code     reports.Code
		sev      reports.Severity
		hops     int // 0: not checked
	}{
		{desc: "key authorization served", setup: func(e *env) Request { e.serveHTTP(serveKA(ka)); return Request{} }, ok: true, hops: 1},
		{desc: "trailing newline trimmed", setup: func(e *env) Request { e.serveHTTP(serveKA(ka + "\r\n\t ")); return Request{} }, ok: true},
		{desc: "404 for the token", setup: func(e *env) Request { e.serveHTTP(http.NotFoundHandler()); return Request{} },
			probType: reports.ProblemUnauthorized, detail: "%a: Invalid response from " + url0 + ": 404", code: reports.CodeHTTP01NotRouted, sev: reports.Error},
		{desc: "ingress-nginx default backend", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(404)
				fmt.Fprint(w, "default backend - 404")
			}))
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Invalid response from " + url0 + ": 404", code: reports.CodeHTTP01NotRouted, sev: reports.Error},
		{desc: "503 bad status", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Invalid response from " + url0 + ": 503", code: reports.CodeHTTP01BadStatus, sev: reports.Error},
		{desc: "cloudflare 403 earns waf_or_auth", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Server", "cloudflare")
				w.Header().Set("CF-RAY", "8abc")
				w.WriteHeader(403)
				fmt.Fprint(w, "<html><title>Attention Required! | Cloudflare</title></html>")
			}))
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Invalid response from " + url0 + ": 403", code: reports.CodeHTTP01WAFOrAuth, sev: reports.Warning},
		{desc: "wrong body", setup: func(e *env) Request { e.serveHTTP(serveKA("other.thumb")); return Request{} },
			probType: reports.ProblemUnauthorized, detail: `The key authorization file from the server did not match this challenge. Expected "` + ka + `" (got "other.thumb")`, code: reports.CodeHTTP01WrongBody, sev: reports.Error},
		{desc: "BOM before key authorization", setup: func(e *env) Request { e.serveHTTP(serveKA("\ufeff" + ka)); return Request{} },
			probType: reports.ProblemUnauthorized, detail: `The key authorization file from the server did not match this challenge. Expected "` + ka + `" (got "\ufeff` + ka + `")`, code: reports.CodeHTTP01WrongBody, sev: reports.Error},
		{desc: "128-byte body is read whole and compared", setup: func(e *env) Request { e.serveHTTP(serveKA(strings.Repeat("a", 128))); return Request{} },
			probType: reports.ProblemUnauthorized, detail: `The key authorization file from the server did not match this challenge. Expected "` + ka + `" (got "` + strings.Repeat("a", 128) + `")`, code: reports.CodeHTTP01WrongBody, sev: reports.Error},
		{desc: "key authorization padded to exactly 128 bytes passes", setup: func(e *env) Request {
			e.serveHTTP(serveKA(ka + strings.Repeat(" ", 128-len(ka))))
			return Request{}
		}, ok: true, hops: 1},
		{desc: "129-byte body exceeds the reader limit", setup: func(e *env) Request { e.serveHTTP(serveKA(ka + strings.Repeat(" ", 129-len(ka)))); return Request{} },
			probType: reports.ProblemUnauthorized, detail: "%a: Error reading HTTP response body: reader size limit exceeded", code: reports.CodeHTTP01WrongBody, sev: reports.Error},
		{desc: "gzip-encoded body is decoded as net/http does", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Accept-Encoding") != "gzip" || r.Header.Get("Connection") != "close" {
					http.Error(w, "not Go's transport headers", 400)
					return
				}
				w.Header().Set("Content-Encoding", "gzip")
				zw := gzip.NewWriter(w)
				fmt.Fprint(zw, ka)
				zw.Close()
			}))
			return Request{}
		}, ok: true, hops: 1},
		{desc: "broken gzip body", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Encoding", "gzip")
				fmt.Fprint(w, ka)
			}))
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Error reading HTTP response body: gzip: invalid header", code: reports.CodeHTTP01ConnectionReset, sev: reports.Error},
		{desc: "body shorter than Content-Length", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1024))
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + ka))
			})
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Error reading HTTP response body: unexpected EOF", code: reports.CodeHTTP01ConnectionReset, sev: reports.Error},
		{desc: "100 Continue before the answer is skipped", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1024))
				_, _ = c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: " + strconv.Itoa(len(ka)) + "\r\n\r\n" + ka))
			})
			return Request{}
		}, ok: true, hops: 1},
		{desc: "infinite body is bounded", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				buf := []byte(strings.Repeat("x", 4096))
				for {
					if _, err := w.Write(buf); err != nil {
						return
					}
				}
			}))
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Error reading HTTP response body: reader size limit exceeded", code: reports.CodeHTTP01WrongBody, sev: reports.Error},
		{desc: "connection refused", setup: func(e *env) Request { e.httpLn.Close(); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Connection refused", code: reports.CodeHTTP01ConnectionRefused, sev: reports.Error},
		{desc: "IPv6 refused, IPv4 serves: warning", setup: func(e *env) Request {
			e.serveHTTP(serveKA(ka))
			return Request{V6: []netip.Addr{netip.MustParseAddr("::1")}}
		}, ok: true, code: reports.CodeHTTP01IPv6Unreachable, sev: reports.Warning, hops: 2},
		{desc: "IPv6 refused on a redirect hop: that request falls back to IPv4", setup: func(e *env) Request {
			e.res["dual.example.com"] = []netip.Addr{netip.MustParseAddr("::1"), e.ip}
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/x" {
					if r.Header.Get("Referer") != url0 {
						http.Error(w, "want the first URL as Referer", 400)
						return
					}
					fmt.Fprint(w, ka)
					return
				}
				http.Redirect(w, r, "http://dual.example.com/x", http.StatusFound)
			}))
			return Request{}
		}, ok: true, code: reports.CodeHTTP01IPv6Unreachable, sev: reports.Warning, hops: 3},
		{desc: "IPv6-only redirect target refused: no fallback", setup: func(e *env) Request {
			e.res["v6only.example.com"] = []netip.Addr{netip.MustParseAddr("::1")}
			e.serveHTTP(redirectTo(302, "http://v6only.example.com/x"))
			return Request{}
		}, probType: reports.ProblemConnection, detail: "::1: Fetching http://v6only.example.com/x: Connection refused", code: reports.CodeHTTP01IPv6Unreachable, sev: reports.Error, hops: 2},
		{desc: "redirect to an NXDOMAIN name is a dns problem", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "http://missing.example.com/x")); return Request{} },
			probType: reports.ProblemDNS, detail: "%a: Fetching http://missing.example.com/x: DNS problem: NXDOMAIN looking up A for missing.example.com - check that a DNS record exists for this domain", code: reports.CodeHTTP01RedirectBadHost, sev: reports.Error},
		{desc: "9 redirects followed (10 requests)", setup: func(e *env) Request { e.serveHTTP(chain(9)); return Request{} }, ok: true, hops: 10},
		{desc: "10 redirects: too many hops", setup: func(e *env) Request { e.serveHTTP(chain(10)); return Request{} },
			probType: reports.ProblemConnection, detail: "Too many hops", code: reports.CodeHTTP01TooManyRedirects, sev: reports.Error, hops: 10},
		{desc: "endless redirects stop at 10 requests", setup: func(e *env) Request { e.serveHTTP(chain(10000)); return Request{} },
			probType: reports.ProblemConnection, detail: "Too many hops", code: reports.CodeHTTP01TooManyRedirects, sev: reports.Error, hops: 10},
		{desc: "redirect loop", setup: func(e *env) Request { e.serveHTTP(redirectTo(301, url0)); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": redirect loop detected", code: reports.CodeHTTP01RedirectLoop, sev: reports.Error},
		{desc: "303 refused", setup: func(e *env) Request { e.serveHTTP(redirectTo(303, "http://a.example.com/x")); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Received disallowed redirect status code 303", code: reports.CodeHTTP01RedirectBadStatus, sev: reports.Error},
		{desc: "304 refused", setup: func(e *env) Request { e.serveHTTP(redirectTo(304, "")); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Received disallowed redirect status code 304", code: reports.CodeHTTP01RedirectBadStatus, sev: reports.Error},
		{desc: "302 without Location", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "")); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Invalid Location header in 302 redirect", code: reports.CodeHTTP01RedirectBadStatus, sev: reports.Error},
		{desc: "unparsable Location", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "http://a.example.com:http/x")); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Error getting validation data", code: reports.CodeHTTP01ConnectionReset, sev: reports.Error},
		{desc: "path over 2000 bytes", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "/"+strings.Repeat("p", 2000))); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching http://www.example.com/" + strings.Repeat("p", 2000) + ": invalid url: path component too long", code: reports.CodeHTTP01RedirectBadHost, sev: reports.Error},
		{desc: "port 8443", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "https://a.example.com:8443/x")); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching https://a.example.com:8443/x: invalid port 8443: must be %p or %s", code: reports.CodeHTTP01RedirectBadPort, sev: reports.Error},
		{desc: "ftp scheme", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "ftp://a.example.com/x")); return Request{} },
			probType: reports.ProblemConnection, detail: `%a: Fetching ftp://a.example.com/x: invalid protocol scheme: only "http" and "https" are supported, not "ftp"`, code: reports.CodeHTTP01RedirectBadScheme, sev: reports.Error},
		{desc: "reserved IP literal", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "http://10.1.2.3/x")); return Request{} },
			probType: reports.ProblemConnection, code: reports.CodeHTTP01RedirectBadHost, sev: reports.Error},
		{desc: "non-IANA TLD", setup: func(e *env) Request { e.serveHTTP(redirectTo(302, "http://my.tld.is.cpu/x")); return Request{} },
			probType: reports.ProblemConnection, detail: "%a: Fetching http://my.tld.is.cpu/x: invalid host: must end in IANA registered TLD", code: reports.CodeHTTP01RedirectBadHost, sev: reports.Error},
		{desc: ".well-known host", setup: func(e *env) Request {
			e.serveHTTP(redirectTo(302, "http://www.example.com.well-known/acme-challenge/x"))
			return Request{}
		}, probType: reports.ProblemConnection, detail: `%a: Fetching http://www.example.com.well-known/acme-challenge/x: invalid host in redirect target "www.example.com.well-known": check webserver config for missing '/' in redirect target`, code: reports.CodeHTTP01RedirectBadHost, sev: reports.Error},
		{desc: "redirect to https with a self-signed cert", setup: func(e *env) Request {
			e.serveHTTP(redirectTo(302, "https://"+name+"/.well-known/acme-challenge/"+tok))
			e.serveHTTPS(serveKA(ka), &tls.Config{Certificates: []tls.Certificate{selfSigned(t, []string{"other.example"}, nil)}})
			return Request{}
		}, ok: true, hops: 2},
		{desc: "redirect to a TLS 1.1-only server", setup: func(e *env) Request {
			e.serveHTTP(redirectTo(302, "https://"+name+"/x"))
			e.serveHTTPS(serveKA(ka), &tls.Config{MaxVersion: tls.VersionTLS11, Certificates: []tls.Certificate{selfSigned(t, []string{name}, nil)}})
			return Request{}
		}, probType: reports.ProblemTLS, code: reports.CodeHTTP01RedirectTLSError, sev: reports.Error},
		{desc: "redirect to a TLS server that never finishes the handshake", setup: func(e *env) Request {
			e.serveHTTP(redirectTo(302, "https://"+name+"/x"))
			e.serveRaw(e.httpsLn, func(c net.Conn) { _, _ = c.Read(make([]byte, 512)); time.Sleep(5 * time.Second) })
			return Request{}
		}, probType: reports.ProblemConnection, code: reports.CodeHTTP01RedirectTLSError, sev: reports.Error},
		{desc: "h2c on the HTTP port", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1024))
				_, _ = c.Write([]byte{0, 0, 0x12, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0x64, 0, 4, 0, 1, 0, 0, 0, 5, 0, 0xff, 0xff})
			})
			return Request{}
		}, probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Server is speaking HTTP/2 over HTTP", code: reports.CodeHTTP01H2C, sev: reports.Error},
		{desc: "TLS alert on the HTTP port", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) { _, _ = c.Read(make([]byte, 1024)); _, _ = c.Write([]byte{0x15, 3, 1, 0, 2, 2, 0x46}) })
			return Request{}
		}, probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Error getting validation data", code: reports.CodeHTTP01TLSOnHTTPPort, sev: reports.Error},
		{desc: "nginx HTTPS port answering HTTP", setup: func(e *env) Request {
			e.serveHTTP(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(400)
				fmt.Fprint(w, "<html><center>The plain HTTP request was sent to HTTPS port</center></html>")
			}))
			return Request{}
		}, probType: reports.ProblemUnauthorized, detail: "%a: Invalid response from " + url0 + ": 400", code: reports.CodeHTTP01TLSOnHTTPPort, sev: reports.Error},
		{desc: "slowloris headers hit the deadline", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1024))
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n"))
				for i := 0; i < 100; i++ {
					if _, err := c.Write([]byte("X-A: b\r\n")); err != nil {
						return
					}
					time.Sleep(100 * time.Millisecond)
				}
			})
			return Request{}
		}, probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Timeout after connect (your server may be slow or overloaded)", code: reports.CodeHTTP01SlowResponse, sev: reports.Error},
		{desc: "huge headers are bounded", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1024))
				_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n"))
				line := []byte("X-Big: " + strings.Repeat("y", 8000) + "\r\n")
				for i := 0; i < 1000; i++ {
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			})
			return Request{}
		}, probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Error getting validation data"},
		{desc: "connection reset", setup: func(e *env) Request {
			e.serveRaw(e.httpLn, func(c net.Conn) {
				_, _ = c.Read(make([]byte, 1024))
				c.(*net.TCPConn).SetLinger(0)
			})
			return Request{}
		}, probType: reports.ProblemConnection, detail: "%a: Fetching " + url0 + ": Connection reset by peer", code: reports.CodeHTTP01ConnectionReset, sev: reports.Error},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			req := tc.setup(e)
			req.Name, req.Token, req.KeyAuth = name, tok, ka
			req.V4 = []netip.Addr{e.ip}
			e.res[name] = append(append([]netip.Addr{}, req.V6...), e.ip)
			e.res["a.example.com"] = []netip.Addr{e.ip}
			res := e.validator().HTTP01(context.Background(), req)
			if res.OK != tc.ok {
				t.Fatalf("OK = %v, want %v; problem %+v; findings %s; trace %+v", res.OK, tc.ok, res.Problem, codes(res.Findings), res.Trace)
			}
			if tc.ok != (res.Problem == nil) {
				t.Errorf("problem %+v with OK %v", res.Problem, res.OK)
			}
			if tc.probType != "" && res.Problem.Type != tc.probType {
				t.Errorf("problem type %q, want %q (%s)", res.Problem.Type, tc.probType, res.Problem.Detail)
			}
			want := strings.NewReplacer("%a", e.ip.String(), "%p", strconv.Itoa(e.httpPort), "%s", strconv.Itoa(e.httpsPort)).Replace(tc.detail)
			if tc.detail != "" && res.Problem.Detail != want {
				t.Errorf("detail\n got %q\nwant %q", res.Problem.Detail, want)
			}
			if tc.code != "" && !hasCode(res.Findings, tc.code, tc.sev) {
				t.Errorf("findings %s lack %s/%s", codes(res.Findings), tc.code, tc.sev)
			}
			if tc.hops != 0 && len(res.Trace) != tc.hops {
				t.Errorf("%d hops, want %d: %+v", len(res.Trace), tc.hops, res.Trace)
			}
			errs := 0
			for _, f := range res.Findings {
				if f.Severity >= reports.Error {
					errs++
					if f.Problem == nil || !strings.Contains(f.Detail, "GET") && !strings.Contains(f.Detail, "hop") {
						t.Errorf("error finding without problem or hop: %+v", f)
					}
				}
			}
			if !tc.ok && errs != 1 {
				t.Errorf("%d Error findings, want exactly 1: %s", errs, codes(res.Findings))
			}
		})
	}
}

func TestHTTP01RandomToken(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc    string
		handler http.HandlerFunc
		ok      bool
		code    reports.Code
	}{
		{desc: "404 for a random token is reachable", handler: http.NotFound, ok: true},
		{desc: "403 for a random token is a warning", handler: func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(403) }, code: reports.CodeHTTP01BadStatus},
		{desc: "catch-all HTML 200 shadows the solver", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<!DOCTYPE html><html>app</html>") }, ok: true, code: reports.CodeHTTP01NotRouted},
		{desc: "catch-all 200 over 128 bytes shadows the solver", handler: func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("app ", 100)) }, ok: true, code: reports.CodeHTTP01NotRouted},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.serveHTTP(tc.handler)
			res := e.validator().HTTP01(context.Background(), Request{Name: "www.example.com", V4: []netip.Addr{e.ip}})
			if res.OK != tc.ok {
				t.Fatalf("OK %v, want %v: %+v %s", res.OK, tc.ok, res.Problem, codes(res.Findings))
			}
			if tc.code != "" && !hasCode(res.Findings, tc.code, reports.Warning) {
				t.Errorf("findings %s lack %s warning", codes(res.Findings), tc.code)
			}
			for _, f := range res.Findings {
				if f.Severity >= reports.Error {
					t.Errorf("random token earned an error: %+v", f)
				}
			}
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A socket listening with backlog 0 that never accepts: once its queue
	// is full further SYNs are dropped, like a firewall DROP rule.
	e.httpLn.Close()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Port: e.httpPort, Addr: e.ip.As4()}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		c, err := net.DialTimeout("tcp", netip.AddrPortFrom(e.ip, uint16(e.httpPort)).String(), 100*time.Millisecond)
		if err != nil {
			break
		}
		t.Cleanup(func() { c.Close() })
	}
	v := e.validator()
	v.DialTimeout = 200 * time.Millisecond
	res := v.HTTP01(context.Background(), Request{Name: "www.example.com", Token: tok, KeyAuth: ka, V4: []netip.Addr{e.ip}})
	want := e.ip.String() + ": Fetching http://www.example.com/.well-known/acme-challenge/" + tok + ": Timeout during connect (likely firewall problem)"
	if res.Problem == nil || res.Problem.Detail != want || !hasCode(res.Findings, reports.CodeHTTP01ConnectTimeout, reports.Error) {
		t.Fatalf("problem %+v findings %s", res.Problem, codes(res.Findings))
	}
}

func TestTLSALPN01(t *testing.T) {
	t.Parallel()
	const name = "alpn.example.com"
	cases := []struct {
		desc   string
		cert   func(t *testing.T) tls.Certificate
		protos []string
		ok     bool
		code   reports.Code
		detail string
	}{
		{desc: "good challenge certificate", cert: func(t *testing.T) tls.Certificate {
			return selfSigned(t, []string{name}, []pkix.Extension{acmeExt(t, ka, true)})
		}, protos: []string{acmeTLS1}, ok: true},
		{desc: "no ALPN", cert: func(t *testing.T) tls.Certificate { return selfSigned(t, []string{name}, nil) },
			code: reports.CodeTLSALPNNoALPN, detail: `Cannot negotiate ALPN protocol "acme-tls/1" for tls-alpn-01 challenge`},
		{desc: "wrong SAN", cert: func(t *testing.T) tls.Certificate {
			return selfSigned(t, []string{name, "extra.example.com"}, []pkix.Extension{acmeExt(t, ka, true)})
		}, protos: []string{acmeTLS1}, code: reports.CodeTLSALPNWrongCertificate, detail: `Incorrect validation certificate for tls-alpn-01 challenge. Requested alpn.example.com from %a. Received certificate with unexpected identifiers ("acme, alpn.example.com, extra.example.com"): "wrong number of identifiers"`},
		{desc: "acmeIdentifier not critical", cert: func(t *testing.T) tls.Certificate {
			return selfSigned(t, []string{name}, []pkix.Extension{acmeExt(t, ka, false)})
		}, protos: []string{acmeTLS1}, code: reports.CodeTLSALPNWrongCertificate, detail: "Incorrect validation certificate for tls-alpn-01 challenge. Requested alpn.example.com from %a. Received certificate with acmeValidationV1 extension that is not Critical."},
		{desc: "wrong digest", cert: func(t *testing.T) tls.Certificate {
			return selfSigned(t, []string{name}, []pkix.Extension{acmeExt(t, "stale", true)})
		}, protos: []string{acmeTLS1}, code: reports.CodeTLSALPNWrongCertificate},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			cert := tc.cert(t)
			e.serveRaw(tls.NewListener(e.httpsLn, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: tc.protos}), func(c net.Conn) {
				_ = c.(*tls.Conn).Handshake()
			})
			res := e.validator().TLSALPN01(context.Background(), Request{Name: name, Token: tok, KeyAuth: ka, V4: []netip.Addr{e.ip}})
			if res.OK != tc.ok {
				t.Fatalf("OK %v want %v: %+v %s", res.OK, tc.ok, res.Problem, codes(res.Findings))
			}
			if tc.ok {
				return
			}
			if res.Problem.Type != reports.ProblemUnauthorized || !hasCode(res.Findings, tc.code, reports.Error) {
				t.Errorf("problem %+v findings %s", res.Problem, codes(res.Findings))
			}
			hp := net.JoinHostPort(e.ip.String(), strconv.Itoa(e.httpsPort))
			if want := strings.ReplaceAll(tc.detail, "%a", hp); tc.detail != "" && res.Problem.Detail != want {
				t.Errorf("detail\n got %q\nwant %q", res.Problem.Detail, want)
			}
		})
	}
}

// TestSurvey fetches from every address and compares what they serve. A
// refused IPv6 connection is not different content: Let's Encrypt falls
// back to IPv4 on that request (the first one or a redirected one) and
// passes when IPv4 serves the right content.
func TestSurvey(t *testing.T) {
	t.Parallel()
	token := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, ka) })
	toHTTPS := func(e *env) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, fmt.Sprintf("https://www.example.com:%d%s", e.httpsPort, r.URL.Path), http.StatusMovedPermanently)
		})
	}
	cases := []struct {
		desc string
		v4   func(e *env) http.Handler // the IPv4 address's HTTP port (nil: refused); its HTTPS port serves the token
		v6   func(e *env) http.Handler // ::1 on the HTTP port; nil: nothing listens (refused)
		ok   bool
		want []reports.Code // with their severities in sev
		sev  []reports.Severity
		not  []reports.Code
	}{
		{desc: "IPv6 serves other content: no fallback", v4: func(*env) http.Handler { return token },
			v6:   func(*env) http.Handler { return http.NotFoundHandler() },
			want: []reports.Code{reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01NotRouted}, sev: []reports.Severity{reports.Error, reports.Error}},
		{desc: "IPv6 refuses the first request, IPv4 serves the token", ok: true, v4: func(*env) http.Handler { return token },
			want: []reports.Code{reports.CodeHTTP01IPv6Unreachable}, sev: []reports.Severity{reports.Warning},
			not: []reports.Code{reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01InconsistentBackends}},
		{desc: "IPv6 refuses the first request, IPv4 serves another key authorization", v4: func(*env) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "stale.thumbprint") })
		},
			want: []reports.Code{reports.CodeHTTP01IPv6Unreachable, reports.CodeHTTP01WrongBody}, sev: []reports.Severity{reports.Warning, reports.Error},
			not: []reports.Code{reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01InconsistentBackends}},
		{desc: "IPv6 redirects to https and refuses it, IPv4 serves the token directly", ok: true, v4: func(*env) http.Handler { return token },
			v6:   toHTTPS,
			want: []reports.Code{reports.CodeHTTP01IPv6Unreachable}, sev: []reports.Severity{reports.Warning},
			not: []reports.Code{reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01InconsistentBackends}},
		{desc: "IPv6 serves the token, IPv4 refuses: Let's Encrypt never tries IPv4", ok: true, v6: func(*env) http.Handler { return token },
			want: []reports.Code{reports.CodeHTTP01ConnectionRefused}, sev: []reports.Severity{reports.Warning},
			not: []reports.Code{reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01InconsistentBackends}},
		{desc: "both redirect to https, IPv6 refuses it", ok: true, v4: toHTTPS, v6: toHTTPS,
			want: []reports.Code{reports.CodeHTTP01IPv6Unreachable}, sev: []reports.Severity{reports.Warning},
			not: []reports.Code{reports.CodeHTTP01IPv6DifferentContent, reports.CodeHTTP01InconsistentBackends}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			if tc.v4 != nil {
				e.serveHTTP(tc.v4(e))
			} else {
				e.httpLn.Close()
			}
			e.serveHTTPS(token, &tls.Config{Certificates: []tls.Certificate{selfSigned(t, []string{"www.example.com"}, nil)}})
			if c, err := net.Dial("tcp", net.JoinHostPort("::1", strconv.Itoa(e.httpsPort))); err == nil {
				c.Close()
				t.Skipf("something listens on ::1 port %d", e.httpsPort)
			}
			if tc.v6 != nil {
				ln6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(e.httpPort)))
				if err != nil {
					t.Skipf("::1 port %d: %v", e.httpPort, err)
				}
				srv := &http.Server{Handler: tc.v6(e)}
				go srv.Serve(ln6)
				t.Cleanup(func() { srv.Close() })
			} else if c, err := net.Dial("tcp", net.JoinHostPort("::1", strconv.Itoa(e.httpPort))); err == nil {
				c.Close()
				t.Skipf("something listens on ::1 port %d", e.httpPort)
			}
			e.res["www.example.com"] = []netip.Addr{netip.MustParseAddr("::1"), e.ip}
			res := e.validator().Survey(context.Background(), Request{Name: "www.example.com", Token: tok, KeyAuth: ka,
				V6: []netip.Addr{netip.MustParseAddr("::1")}, V4: []netip.Addr{e.ip}})
			if res.OK != tc.ok {
				t.Errorf("OK %v, want %v (problem %+v)", res.OK, tc.ok, res.Problem)
			}
			for i, c := range tc.want {
				if !hasCode(res.Findings, c, tc.sev[i]) {
					t.Errorf("no %s %s: %s", tc.sev[i], c, codes(res.Findings))
				}
			}
			for _, f := range res.Findings {
				if slices.Contains(tc.not, f.Code) {
					t.Errorf("%s %s: %s", f.Severity, f.Code, f.Detail)
				}
				if tc.ok && f.Severity >= reports.Error {
					t.Errorf("Let's Encrypt passes, but %s %s: %s", f.Severity, f.Code, f.Detail)
				}
			}
		})
	}
}

func BenchmarkHTTP01(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, ka) })}
	go srv.Serve(ln)
	defer srv.Close()
	v := &Validator{HTTPPort: ln.Addr().(*net.TCPAddr).Port, Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}
	req := Request{Name: "www.example.com", Token: tok, KeyAuth: ka, V4: []netip.Addr{netip.MustParseAddr("127.0.0.1")}}
	b.ReportAllocs()
	for b.Loop() {
		if res := v.HTTP01(context.Background(), req); !res.OK {
			b.Fatalf("%+v", res.Problem)
		}
	}
}
