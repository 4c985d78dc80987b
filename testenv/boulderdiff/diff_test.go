package boulderdiff

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmhodges/clock"
	"github.com/prometheus/client_golang/prometheus"

	corepb "github.com/letsencrypt/boulder/core/proto"
	blog "github.com/letsencrypt/boulder/log"
	"github.com/letsencrypt/boulder/va"
	vapb "github.com/letsencrypt/boulder/va/proto"

	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/reports"
)

const (
	token   = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	keyAuth = token + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
	chPath  = "/.well-known/acme-challenge/" + token
	// timeout bounds one validation on both sides. Everything here is on
	// loopback, so only the deliberate "no answer" case comes near it.
	timeout = 3 * time.Second
	// acmeURN is the prefix the WFE puts before Boulder's short problem types.
	acmeURN = "urn:ietf:params:acme:error:"
)

var v6loop = netip.MustParseAddr("::1")

// diffCase is one validation run through both validators.
type diffCase struct {
	desc string
	alpn bool // TLS-ALPN-01 instead of HTTP-01
	// setup starts the case's servers and returns the identifier.
	setup func(e *env) string
	// want is Boulder's short problem type ("connection", ...), "" for valid.
	// It pins what the case exercises: a case whose servers do not behave as
	// intended fails here instead of silently agreeing on something else.
	want string
	// detailWhy, when set, explains why the two detail texts may differ; the
	// verdict and problem type must still agree.
	detailWhy string
}

// body serves s at the challenge path and 404 elsewhere.
func body(s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != chPath {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, s)
	})
}

// status answers every request with code and a short body.
func status(code int, s string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(code)
		_, _ = io.WriteString(w, s)
	})
}

// redirect answers the challenge path with code and Location loc, and serves
// the key authorization at finalPath (when non-empty).
func redirect(code int, loc, finalPath string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case chPath:
			if loc != "" {
				w.Header().Set("Location", loc)
			}
			w.WriteHeader(code)
		case finalPath:
			_, _ = io.WriteString(w, keyAuth)
		default:
			http.NotFound(w, r)
		}
	})
}

// rawReply reads the request head, writes reply, and waits for the peer to close.
func rawReply(reply string) func(net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = io.WriteString(c, reply)
		if cw, ok := c.(*net.TCPConn); ok {
			_ = cw.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	}
}

func tlsCert(e *env, names ...string) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{makeCert(e.t, certSpec{dnsNames: names})}}
}

// requireClosed skips the case when someone else listens where the case
// needs nothing to listen ([::1] is shared by the whole machine).
func (e *env) requireClosed(addr netip.Addr, port int) {
	e.t.Helper()
	c, err := net.DialTimeout("tcp", netip.AddrPortFrom(addr, uint16(port)).String(), time.Second)
	if err == nil {
		_ = c.Close()
		e.t.Skipf("something listens on %s port %d; this case needs it closed", addr, port)
	}
}

func alpnCfg(e *env, spec certSpec) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{makeCert(e.t, spec)},
		NextProtos:   []string{"acme-tls/1"},
	}
}

func goodALPN(name string) certSpec {
	return certSpec{dnsNames: []string{name}, acmeExt: true, keyAuth: keyAuth}
}

func cases() []diffCase {
	www := func(e *env, addrs ...netip.Addr) string { return e.host("www", addrs...) }
	return []diffCase{
		// ---- HTTP-01: the final response ----
		{desc: "200 with the key authorization", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth))
			return www(e, e.ip(1))
		}},
		{desc: "key authorization with a trailing newline", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth+"\n"))
			return www(e, e.ip(1))
		}},
		{desc: "trailing CRLF, tab and spaces", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth+" \t\r\n  "))
			return www(e, e.ip(1))
		}},
		{desc: "leading whitespace is not trimmed", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(" "+keyAuth))
			return www(e, e.ip(1))
		}},
		{desc: "wrong key authorization", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(token+".otherthumbprint"))
			return www(e, e.ip(1))
		}},
		{desc: "empty 200 body", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(""))
			return www(e, e.ip(1))
		}},
		{desc: "exactly 128 bytes with padding", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth+strings.Repeat(" ", 128-len(keyAuth))))
			return www(e, e.ip(1))
		}},
		{desc: "129 bytes with padding", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth+strings.Repeat(" ", 129-len(keyAuth))))
			return www(e, e.ip(1))
		}},
		{desc: "HTML page instead of the token", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body("<!DOCTYPE html><html><head><title>Welcome</title></head><body>"+strings.Repeat("<p>hello</p>", 40)+"</body></html>"))
			return www(e, e.ip(1))
		}},
		{desc: "non-UTF-8 body", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, body("\xff\xfe"+keyAuth[:10]+"\x00\x01"))
			return www(e, e.ip(1))
		}},
		{desc: "404", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, status(404, "not found"))
			return www(e, e.ip(1))
		}},
		{desc: "403", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, status(403, "forbidden"))
			return www(e, e.ip(1))
		}},
		{desc: "500", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, status(500, "oops"))
			return www(e, e.ip(1))
		}},
		{desc: "204 no content", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, status(204, ""))
			return www(e, e.ip(1))
		}},
		{desc: "body shorter than Content-Length", want: "unauthorized", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 80, rawReply("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n"+keyAuth[:20]))
			return www(e, e.ip(1))
		}},
		{desc: "HTTP/1.0 response without Content-Length", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 80, rawReply("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n"+keyAuth))
			return www(e, e.ip(1))
		}},

		// ---- HTTP-01: transport failures on port 80 ----
		{desc: "connection refused on port 80", want: "connection", setup: func(e *env) string {
			return www(e, e.ip(1))
		}},
		{desc: "connection reset after the request", want: "connection", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 80, func(c net.Conn) {
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetLinger(0) // close with RST
				}
			})
			return www(e, e.ip(1))
		}},
		{desc: "closed without a response", want: "connection", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 80, func(c net.Conn) {
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
			})
			return www(e, e.ip(1))
		}},
		{desc: "garbage instead of an HTTP response", want: "connection", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 80, rawReply("SSH-2.0-OpenSSH_9.6\r\n"))
			return www(e, e.ip(1))
		}},
		{desc: "HTTP/2 frames over cleartext", want: "connection", setup: func(e *env) string {
			// A SETTINGS frame (length 0x12) is what an h2c-only server sends first.
			e.serveRaw(e.ip(1), 80, rawReply("\x00\x00\x12\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64\x00\x04\x00\x10\x00\x00\x00\x06\x00\x00\x40\x00"))
			return www(e, e.ip(1))
		}},
		{desc: "TLS-only server on port 80", want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, tlsCert(e, n), body(keyAuth))
			return n
		}},
		{desc: "no response: timeout after connect", want: "connection", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 80, func(c net.Conn) {
				_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
			})
			return www(e, e.ip(1))
		}},

		// ---- HTTP-01: IPv6 first, IPv4 fallback ----
		{desc: "IPv6 refuses, IPv4 serves: fallback", setup: func(e *env) string {
			e.requireClosed(v6loop, 80)
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth))
			return www(e, v6loop, e.ip(1))
		}},
		{desc: "IPv6 serves the wrong content: no fallback", want: "unauthorized", setup: func(e *env) string {
			e.serveHTTP(v6loop, 80, nil, body("wrong"))
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth))
			return www(e, v6loop, e.ip(1))
		}},
		{desc: "IPv6 only and refused", want: "connection", setup: func(e *env) string {
			e.requireClosed(v6loop, 80)
			return www(e, v6loop)
		}},
		{desc: "IPv6 serves, IPv4 refuses", setup: func(e *env) string {
			e.serveHTTP(v6loop, 80, nil, body(keyAuth))
			return www(e, v6loop, e.ip(1))
		}},
		{desc: "IPv6 refuses, IPv4 serves another key authorization", want: "unauthorized", setup: func(e *env) string {
			e.requireClosed(v6loop, 80)
			e.serveHTTP(e.ip(1), 80, nil, body("stale.thumbprint"))
			return www(e, v6loop, e.ip(1))
		}},
		{desc: "IPv6 redirects to https and refuses it, IPv4 serves directly: fallback on the redirected hop", setup: func(e *env) string {
			e.requireClosed(v6loop, 443)
			n := www(e, v6loop, e.ip(1))
			e.serveHTTP(v6loop, 80, nil, redirect(301, "https://"+n+chPath, ""))
			e.serveHTTP(e.ip(1), 80, nil, body(keyAuth))
			e.serveHTTP(e.ip(1), 443, tlsCert(e, n), body(keyAuth))
			return n
		}},
		{desc: "both redirect to https, IPv6 refuses it: fallback on the redirected hop", setup: func(e *env) string {
			e.requireClosed(v6loop, 443)
			n := www(e, v6loop, e.ip(1))
			e.serveHTTP(v6loop, 80, nil, redirect(301, "https://"+n+"/final", ""))
			e.serveHTTP(e.ip(1), 80, nil, redirect(301, "https://"+n+"/final", ""))
			e.serveHTTP(e.ip(1), 443, tlsCert(e, n), redirect(404, "", "/final"))
			return n
		}},
		{desc: "first IPv4 address used, second ignored", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(2), 80, nil, body(keyAuth))
			return www(e, e.ip(1), e.ip(2))
		}},

		// ---- HTTP-01: redirects ----
		{desc: "301 to a relative path", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(301, "/final", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "302 to an absolute URL on the same host", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+n+"/final", "/final"))
			return n
		}},
		{desc: "307 to another name", setup: func(e *env) string {
			other := e.host("other", e.ip(2))
			e.serveHTTP(e.ip(1), 80, nil, redirect(307, "http://"+other+"/final", ""))
			e.serveHTTP(e.ip(2), 80, nil, redirect(404, "", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "308 to an upper-case host name", setup: func(e *env) string {
			other := e.host("other", e.ip(2))
			e.serveHTTP(e.ip(1), 80, nil, redirect(308, "http://"+strings.ToUpper(other)+"/final", ""))
			e.serveHTTP(e.ip(2), 80, nil, redirect(404, "", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "302 to http with explicit :80", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+n+":80/final", "/final"))
			return n
		}},
		{desc: "302 to an IPv4 literal", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+e.ip(2).String()+"/final", ""))
			e.serveHTTP(e.ip(2), 80, nil, redirect(404, "", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "302 to https:443 with a self-signed certificate", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+"/final", ""))
			e.serveHTTP(e.ip(1), 443, tlsCert(e, "unrelated.example.net"), redirect(404, "", "/final"))
			return n
		}},
		{desc: "302 to https serving the wrong content", want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+"/final", ""))
			e.serveHTTP(e.ip(1), 443, tlsCert(e, n), status(200, "nope"))
			return n
		}},
		{desc: "302 to https with nothing on 443", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+"/final", ""))
			return n
		}},
		{desc: "302 to https on a TLS 1.1-only server", want: "tls", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+"/final", ""))
			cfg := tlsCert(e, n)
			cfg.MaxVersion = tls.VersionTLS11
			e.serveHTTP(e.ip(1), 443, cfg, body(keyAuth))
			return n
		}},
		// Go's transport reports "server gave HTTP response to HTTPS client",
		// which Boulder does not map: unlike TLS-ALPN-01 below, no "only speaks HTTP".
		{desc: "302 to https on a plain-HTTP port 443", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+"/final", ""))
			e.serveRaw(e.ip(1), 443, func(c net.Conn) {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
			})
			return n
		}},
		{desc: "302 to http on port 443 (TLS server answers 400)", want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+n+":443/final", ""))
			e.serveHTTP(e.ip(1), 443, tlsCert(e, n), redirect(404, "", "/final"))
			return n
		}},
		{desc: "302 to port 8443", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+":8443/final", ""))
			return n
		}},
		{desc: "302 to a non-numeric port (Location unparseable)", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+n+":http/final", ""))
			return n
		}},
		{desc: "302 to an ftp URL", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "ftp://"+n+"/final", ""))
			return n
		}},
		{desc: "302 missing the slash before .well-known", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "https://"+n+".well-known/acme-challenge/"+token, ""))
			return n
		}},
		{desc: "302 to a name under a non-IANA TLD", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://intranet.corp.internal/final", ""))
			return www(e, e.ip(1))
		}},
		{desc: "302 to an IPv6 literal with a zone", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://[fe80::1%25eth0]/final", ""))
			return www(e, e.ip(1))
		}},
		{desc: "302 to an NXDOMAIN name", want: "dns", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+e.name("missing")+"/final", ""))
			return www(e, e.ip(1))
		}},
		{desc: "302 to a name without addresses", want: "dns", setup: func(e *env) string {
			empty := e.host("empty")
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+empty+"/final", ""))
			return www(e, e.ip(1))
		}},
		{desc: "302 without a Location header", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "", ""))
			return www(e, e.ip(1))
		}},
		{desc: "302 to a path over 2000 bytes", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "/"+strings.Repeat("a", 2001), ""))
			return www(e, e.ip(1))
		}},
		{desc: "303 See Other", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(303, "/final", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "300 Multiple Choices", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, redirect(300, "/final", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "304 Not Modified", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, status(304, ""))
			return www(e, e.ip(1))
		}},
		{desc: "redirect loop between two names", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			other := e.host("other", e.ip(2))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+other+chPath, ""))
			e.serveHTTP(e.ip(2), 80, nil, redirect(302, "http://"+n+chPath, ""))
			return n
		}},
		{desc: "redirect to itself", want: "connection", setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveHTTP(e.ip(1), 80, nil, redirect(301, "http://"+n+chPath, ""))
			return n
		}},
		{desc: "9 redirects then the token (10 requests)", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, hops(9))
			return www(e, e.ip(1))
		}},
		{desc: "10 redirects: too many hops", want: "connection", setup: func(e *env) string {
			e.serveHTTP(e.ip(1), 80, nil, hops(10))
			return www(e, e.ip(1))
		}},
		{desc: "redirect to a name whose IPv6 refuses: fallback", setup: func(e *env) string {
			e.requireClosed(v6loop, 80)
			other := e.host("other", v6loop, e.ip(2))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+other+"/final", ""))
			e.serveHTTP(e.ip(2), 80, nil, redirect(404, "", "/final"))
			return www(e, e.ip(1))
		}},
		{desc: "redirect to a refused name", want: "connection", setup: func(e *env) string {
			other := e.host("other", e.ip(2))
			e.serveHTTP(e.ip(1), 80, nil, redirect(302, "http://"+other+"/final", ""))
			return www(e, e.ip(1))
		}},

		// ---- TLS-ALPN-01 ----
		{desc: "alpn: valid challenge certificate", alpn: true, setup: func(e *env) string {
			n := www(e, e.ip(1))
			e.serveALPN(e.ip(1), alpnCfg(e, goodALPN(n)))
			return n
		}},
		{desc: "alpn: extra key-usage extension is accepted", alpn: true, setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.extraKeyUsag = true
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: no acmeIdentifier extension", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.acmeExt = false
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: acmeIdentifier not critical", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.nonCritical = true
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: digest of another key authorization", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.keyAuth = token + ".otherthumbprint"
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: raw digest, not an OCTET STRING", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.extValue = []byte("0123456789abcdef0123456789abcdef")
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: certificate for another name", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(e.name("other"))
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: two names in the certificate", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.dnsNames = append(s.dnsNames, e.name("other"))
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: SAN in upper case", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(strings.ToUpper(n))
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: certificate issued by a CA, not self-signed", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			s := goodALPN(n)
			s.issuedByCA = true
			e.serveALPN(e.ip(1), alpnCfg(e, s))
			return n
		}},
		{desc: "alpn: server negotiates no protocol", alpn: true, want: "unauthorized", setup: func(e *env) string {
			n := www(e, e.ip(1))
			cfg := alpnCfg(e, goodALPN(n))
			cfg.NextProtos = nil
			e.serveALPN(e.ip(1), cfg)
			return n
		}},
		{desc: "alpn: server offers only h2", alpn: true, want: "tls", setup: func(e *env) string {
			n := www(e, e.ip(1))
			cfg := alpnCfg(e, goodALPN(n))
			cfg.NextProtos = []string{"h2", "http/1.1"}
			e.serveALPN(e.ip(1), cfg)
			return n
		}},
		{desc: "alpn: TLS 1.1-only server", alpn: true, want: "tls", setup: func(e *env) string {
			n := www(e, e.ip(1))
			cfg := alpnCfg(e, goodALPN(n))
			cfg.MaxVersion = tls.VersionTLS11
			e.serveALPN(e.ip(1), cfg)
			return n
		}},
		{desc: "alpn: nothing on 443", alpn: true, want: "connection", setup: func(e *env) string {
			return www(e, e.ip(1))
		}},
		{desc: "alpn: plain HTTP on 443", alpn: true, want: "malformed", setup: func(e *env) string {
			e.serveRaw(e.ip(1), 443, func(c net.Conn) {
				_, _ = io.WriteString(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
				_, _ = io.Copy(io.Discard, io.LimitReader(c, 1<<20))
			})
			return www(e, e.ip(1))
		}},
		{desc: "alpn: IPv6 refuses, IPv4 answers: fallback", alpn: true, setup: func(e *env) string {
			e.requireClosed(v6loop, 443)
			n := www(e, v6loop, e.ip(1))
			e.serveALPN(e.ip(1), alpnCfg(e, goodALPN(n)))
			return n
		}},
		{desc: "alpn: IPv6 only and refused", alpn: true, want: "malformed", setup: func(e *env) string {
			e.requireClosed(v6loop, 443)
			return www(e, v6loop)
		}},
	}
}

// hops serves a chain of n relative redirects before the key authorization.
func hops(n int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := 0
		if r.URL.Path != chPath {
			if _, err := fmt.Sscanf(r.URL.Path, "/hop/%d", &i); err != nil {
				http.NotFound(w, r)
				return
			}
		}
		if i >= n {
			_, _ = io.WriteString(w, keyAuth)
			return
		}
		http.Redirect(w, r, fmt.Sprintf("/hop/%d", i+1), http.StatusFound)
	})
}

// requireRoot skips (or, under CI, fails) when ports 80 and 443 cannot be bound.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("the Boulder differential test binds ports 80 and 443 on 127.90.0.0/16 and must run as root under CI")
	}
	t.Skip("needs root: Boulder's VA validates on ports 80 and 443 only")
}

func newBoulderVA(t *testing.T, s *staticDNS) *va.ValidationAuthorityImpl {
	t.Helper()
	v, err := va.NewValidationAuthorityImpl(
		boulderDNS{s}, nil, "", "letsencrypt.org", prometheus.NewRegistry(), clock.New(), blog.NewMock(),
		[]string{"https://acme-v02.api.letsencrypt.org/acme/acct/"}, "boulderdiff-local", "RIPE",
		func(netip.Addr) error { return nil }, time.Second, true, nil, 0, 0)
	if err != nil {
		t.Fatalf("NewValidationAuthorityImpl: %v", err)
	}
	return v
}

// outcome is one validator's conclusion in comparable form.
type outcome struct {
	valid  bool
	typ    string // full URN, "" when valid
	detail string
}

func (o outcome) String() string {
	if o.valid {
		return "valid"
	}
	return fmt.Sprintf("%s: %s", strings.TrimPrefix(o.typ, acmeURN), o.detail)
}

func runBoulder(t *testing.T, v *va.ValidationAuthorityImpl, alpn bool, name string) outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	typ := "http-01"
	if alpn {
		typ = "tls-alpn-01"
	}
	res, err := v.DoDCV(ctx, &vapb.PerformValidationRequest{
		Identifier:               &corepb.Identifier{Type: "dns", Value: name},
		Challenge:                &corepb.Challenge{Type: typ, Status: "pending", Token: token},
		Authz:                    &vapb.AuthzMeta{Id: 1, RegID: 1},
		ExpectedKeyAuthorization: keyAuth,
	})
	if err != nil {
		t.Fatalf("Boulder DoDCV: %v", err)
	}
	if res.Problem == nil {
		return outcome{valid: true}
	}
	return outcome{typ: acmeURN + res.Problem.ProblemType, detail: res.Problem.Detail}
}

func runOurs(t *testing.T, v *http01.Validator, alpn bool, s *staticDNS, name string) (outcome, http01.Result) {
	t.Helper()
	// Our validator's own Timeout governs; the context only backstops it.
	ctx, cancel := context.WithTimeout(t.Context(), timeout+5*time.Second)
	defer cancel()
	h, _ := s.get(name)
	req := http01.Request{Name: name, Token: token, KeyAuth: keyAuth, V6: h.v6, V4: h.v4}
	var res http01.Result
	if alpn {
		res = v.TLSALPN01(ctx, req)
	} else {
		// What diagnose and the daemon run: the validation, plus a fetch
		// from every address compared with the others.
		res = v.Survey(ctx, req)
	}
	if res.OK {
		if res.Problem != nil {
			t.Errorf("acmediag: OK with a problem %+v", *res.Problem)
		}
		return outcome{valid: true}, res
	}
	if res.Problem == nil {
		t.Errorf("acmediag: not OK and no problem")
		return outcome{typ: "(none)"}, res
	}
	return outcome{typ: res.Problem.Type, detail: res.Problem.Detail}, res
}

// TestBoulderDifferential validates every case with Boulder's VA and with
// acmediag's http01.Validator against the same loopback servers, and
// requires the same verdict, problem type and (unless exempted) detail,
// and no error or fatal finding where Boulder validates.
func TestBoulderDifferential(t *testing.T) {
	requireRoot(t)
	all := cases()
	if len(all) < 40 {
		t.Fatalf("only %d cases; the differential test promises at least 40", len(all))
	}
	if len(all) > 250 {
		t.Fatalf("%d cases do not fit in 127.90.1-250.0/24", len(all))
	}
	s := newStaticDNS()
	bva := newBoulderVA(t, s)
	ours := &http01.Validator{
		Resolver: ourDNS{s},
		Allow:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Timeout:  timeout,
	}
	var agreeDetail, differDetail, invalid int
	for i, tc := range all {
		t.Run(tc.desc, func(t *testing.T) {
			e := &env{t: t, idx: i + 1, dns: s}
			name := tc.setup(e)
			b := runBoulder(t, bva, tc.alpn, name)
			o, res := runOurs(t, ours, tc.alpn, s, name)
			t.Logf("boulder:  %s", b)
			t.Logf("acmediag: %s", o)

			wantTyp := ""
			if tc.want != "" {
				wantTyp = acmeURN + tc.want
			}
			if b.typ != wantTyp {
				t.Errorf("Boulder concluded %q, the case expects %q: the case does not exercise what it says", b, tc.want)
			}
			if b.valid != o.valid {
				t.Fatalf("verdicts differ: boulder %s, acmediag %s (trace %+v)", b, o, res.Trace)
			}
			if b.typ != o.typ {
				t.Fatalf("problem types differ: boulder %q, acmediag %q", b.typ, o.typ)
			}
			// Where Let's Encrypt validates, no finding may say it fails.
			for _, f := range res.Findings {
				if b.valid && f.Severity >= reports.Error {
					t.Errorf("boulder valid, acmediag reports %s %s: %s", f.Severity, f.Code, f.Detail)
				}
			}
			if !b.valid {
				invalid++
			}
			switch {
			case b.valid:
			case b.detail == o.detail:
				agreeDetail++
			case tc.detailWhy != "":
				differDetail++
				t.Logf("details differ (allowed: %s)", tc.detailWhy)
			default:
				t.Errorf("details differ:\n boulder:  %q\n acmediag: %q", b.detail, o.detail)
			}
		})
	}
	t.Logf("%d cases, %d invalid: details identical in %d, allowed to differ in %d", len(all), invalid, agreeDetail, differDetail)
}

// Reports is imported for its problem-type constants: the URNs the WFE
// builds must be exactly the ones acmediag uses.
func TestProblemTypesMatchReports(t *testing.T) {
	for short, ours := range map[string]string{
		"connection": reports.ProblemConnection, "unauthorized": reports.ProblemUnauthorized,
		"dns": reports.ProblemDNS, "tls": reports.ProblemTLS, "malformed": reports.ProblemMalformed,
	} {
		if acmeURN+short != ours {
			t.Errorf("%s: Boulder/WFE %q, reports %q", short, acmeURN+short, ours)
		}
	}
}
