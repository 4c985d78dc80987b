package testenv

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Thumbprint is the JWK thumbprint of the catalogue's (imaginary) ACME
// account: every key authorization of the universe is Token + "." +
// Thumbprint.
var Thumbprint = func() string {
	sum := sha256.Sum256([]byte("acmediag-testenv/account-key"))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}()

// KeyAuth is the HTTP-01 / TLS-ALPN-01 key authorization the universe's web
// servers serve for a scenario: Token(scenario) + "." + Thumbprint.
func KeyAuth(scenario string) string { return Token(scenario) + "." + Thumbprint }

// challengePrefix is where HTTP-01 tokens live.
const challengePrefix = "/.well-known/acme-challenge/"

// webKind is what a web address does on the HTTP port (and, for the
// HTTPS-side servers that speak HTTP, what they answer).
type webKind int

const (
	webNone     webKind = iota // no listener: connection refused
	webSolver                  // the key authorization for every catalogue token, 404 elsewhere
	webStatus                  // a fixed status, headers and body for every path
	webBody                    // 200 with a fixed body ({keyauth} replaced) for every path
	webRedirect                // status + Location for /.well-known/ paths, solver elsewhere
	webChain                   // n redirects, then the key authorization
	webSlow                    // the key authorization after delay
	webReset                   // read the request, then RST (SO_LINGER 0)
	webTLS                     // TLS spoken on the HTTP port
	webH2C                     // an HTTP/2 SETTINGS frame (prior knowledge) instead of HTTP/1.1
	webInfinite                // 200 with a body that never ends (bounded at maxInfinite)
	webByHost                  // behaviour chosen by the Host header (the one IPv6 server)
)

// webBehaviour describes one HTTP behaviour.
type webBehaviour struct {
	kind   webKind
	status int
	header [][2]string
	// body is served for webStatus/webBody; "{keyauth}" is replaced by the
	// key authorization of the token in the path (404 when there is none).
	body string
	// location is a template: {host} (Host header without port), {path},
	// {pathnoslash} (path without its leading "/").
	location string
	n        int           // webChain: redirects before the answer
	delay    time.Duration // webSlow
	byHost   map[string]webBehaviour
}

// tlsKind is what a web address does on the HTTPS port.
type tlsKind int

const (
	tlsNone         tlsKind = iota // no listener
	tlsServe                       // self-signed TLS ≥ 1.2, HTTP behaviour https
	tlsOld                         // TLS 1.0–1.1 only, HTTP behaviour https
	tlsALPN                        // RFC 8737 responder for the site's name and key authorization
	tlsALPNNoALPN                  // an ordinary certificate, no acme-tls/1 (http/1.1 only)
	tlsALPNWrongSAN                // RFC 8737 certificate for another name
	tlsPlainHTTP                   // plain HTTP on the HTTPS port
	tlsCert                        // the site's certificate (siteSpec.cert; Pebble's when it runs), HTTP behaviour https
	tlsHang                        // accepts, reads the ClientHello and never answers
	tlsGarbage                     // answers the ClientHello with bytes that are not TLS, then closes
)

// siteSpec is one web address of the universe and what it does on the
// HTTP and HTTPS ports.
type siteSpec struct {
	addr    string
	http    webBehaviour
	tls     tlsKind
	https   webBehaviour // HTTP behaviour behind tlsServe/tlsOld/tlsPlainHTTP; zero → solver
	name    string       // tlsALPN*, tlsCert: the identifier
	keyAuth string       // tlsALPN*: the key authorization
	cert    certSpec     // tlsCert: the certificate served
}

// maxInfinite bounds the "infinite" body so a client that never stops
// reading cannot keep a test process busy forever.
const maxInfinite = 64 << 20

// id-pe-acmeIdentifier (RFC 8737).
var oidACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

// webServer runs every site's listeners.
type webServer struct {
	log       *zap.Logger
	httpPort  int
	httpsPort int
	tokens    map[string]bool // tokens the solver knows
	selfCert  tls.Certificate
	// certs holds what each tlsCert address serves, swappable while it
	// runs (Pebble's certificates replace the fixtures once issued).
	certs map[string]*atomic.Pointer[tls.Certificate]
	// acme are the key authorizations of real orders (Pebble's tokens),
	// answered by every solver next to the catalogue's.
	acmeMu sync.Mutex
	acme   map[string]string

	mu      sync.Mutex
	servers []*http.Server
	raw     []net.Listener // serveRaw's listeners
	wg      sync.WaitGroup
	done    chan struct{}
}

func newWebServer(log *zap.Logger, httpPort, httpsPort int, tokens map[string]bool) (*webServer, error) {
	cert, err := selfSigned("testenv web server", []string{"testenv.invalid"}, nil)
	if err != nil {
		return nil, err
	}
	return &webServer{log: log.Named("web"), httpPort: httpPort, httpsPort: httpsPort, tokens: tokens,
		selfCert: cert, done: make(chan struct{}), certs: map[string]*atomic.Pointer[tls.Certificate]{}, acme: map[string]string{}}, nil
}

// selfSigned makes a self-signed ECDSA certificate for names, with extra
// extensions.
func selfSigned(cn string, names []string, extra []pkix.Extension) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(30 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     names,
	}
	tmpl.ExtraExtensions = extra
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// acmeCert is the RFC 8737 validation certificate for name: one dNSName,
// and the critical acmeIdentifier holding SHA-256(keyAuth).
func acmeCert(name, keyAuth string) (tls.Certificate, error) {
	sum := sha256.Sum256([]byte(keyAuth))
	val, err := asn1.Marshal(sum[:])
	if err != nil {
		return tls.Certificate{}, err
	}
	return selfSigned(name, []string{name}, []pkix.Extension{{Id: oidACMEIdentifier, Critical: true, Value: val}})
}

// start listens on every site's addresses; it fails when any address
// cannot be bound.
func (w *webServer) start(ctx context.Context, sites []siteSpec) error {
	lc := net.ListenConfig{}
	for _, s := range sites {
		if s.http.kind != webNone {
			l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(s.addr, strconv.Itoa(w.httpPort)))
			if err != nil {
				return fmt.Errorf("web %s: %w", s.addr, err)
			}
			if s.http.kind == webTLS {
				l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{w.selfCert}, NextProtos: []string{"http/1.1"}})
			}
			w.serve(l, w.handler(s.http))
		}
		if s.tls == tlsNone {
			continue
		}
		l, err := lc.Listen(ctx, "tcp", net.JoinHostPort(s.addr, strconv.Itoa(w.httpsPort)))
		if err != nil {
			return fmt.Errorf("web %s: %w", s.addr, err)
		}
		https := s.https
		if https.kind == webNone {
			https = webBehaviour{kind: webSolver}
		}
		switch s.tls {
		case tlsServe:
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{w.selfCert}, NextProtos: []string{"http/1.1"}})
		case tlsOld:
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{w.selfCert}, NextProtos: []string{"http/1.1"},
				MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
		case tlsALPN, tlsALPNWrongSAN:
			name := s.name
			if s.tls == tlsALPNWrongSAN {
				name = "other-" + s.name
			}
			cert, err := acmeCert(name, s.keyAuth)
			if err != nil {
				_ = l.Close()
				return fmt.Errorf("web %s: %w", s.addr, err)
			}
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"acme-tls/1"}})
		case tlsALPNNoALPN:
			l = tls.NewListener(l, &tls.Config{Certificates: []tls.Certificate{w.selfCert}, NextProtos: []string{"http/1.1"}})
		case tlsPlainHTTP:
		case tlsCert:
			slot := w.certs[s.addr]
			if slot == nil || slot.Load() == nil {
				_ = l.Close()
				return fmt.Errorf("web %s: no certificate for the site", s.addr)
			}
			l = tls.NewListener(l, &tls.Config{NextProtos: []string{"http/1.1"},
				GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return slot.Load(), nil }})
		case tlsHang, tlsGarbage:
			w.serveRaw(l, s.tls)
			continue
		}
		w.serve(l, w.handler(https))
	}
	return nil
}

func (w *webServer) serve(l net.Listener, h http.Handler) {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(w.log.Named("http")),
	}
	w.mu.Lock()
	w.servers = append(w.servers, srv)
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Warn("web listener stopped", zap.String("addr", l.Addr().String()), zap.Error(err))
		}
	}()
}

// close stops every listener and open connection.
func (w *webServer) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	select {
	case <-w.done:
	default:
		close(w.done)
	}
	servers, raw := w.servers, w.raw
	w.servers, w.raw = nil, nil
	w.mu.Unlock()
	for _, s := range servers {
		_ = s.Close()
	}
	for _, l := range raw {
		_ = l.Close()
	}
	w.wg.Wait()
}

// tokenOf returns the token after /.well-known/acme-challenge/ in path
// (the prefix may come after redirect steps such as /c3), when the solver
// knows it.
func (w *webServer) tokenOf(path string) (string, bool) {
	i := strings.Index(path, challengePrefix)
	if i < 0 {
		return "", false
	}
	tok := path[i+len(challengePrefix):]
	return tok, w.tokens[tok]
}

// present makes a real order's key authorization answerable by every
// solver; the returned function withdraws it.
func (w *webServer) present(token, keyAuth string) func() {
	w.acmeMu.Lock()
	w.acme[token] = keyAuth
	w.acmeMu.Unlock()
	return func() {
		w.acmeMu.Lock()
		delete(w.acme, token)
		w.acmeMu.Unlock()
	}
}

// acmeKeyAuth is the key authorization of a real order's token in path.
func (w *webServer) acmeKeyAuth(path string) (string, bool) {
	i := strings.Index(path, challengePrefix)
	if i < 0 {
		return "", false
	}
	w.acmeMu.Lock()
	defer w.acmeMu.Unlock()
	ka, ok := w.acme[path[i+len(challengePrefix):]]
	return ka, ok
}

func (w *webServer) handler(b webBehaviour) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.respond(rw, r, b)
	})
}

// respond acts out b for one request.
func (w *webServer) respond(rw http.ResponseWriter, r *http.Request, b webBehaviour) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	solve := func() {
		if ka, ok := w.acmeKeyAuth(r.URL.Path); ok {
			rw.Header().Set("Content-Type", "application/octet-stream")
			_, _ = rw.Write([]byte(ka))
			return
		}
		tok, ok := w.tokenOf(r.URL.Path)
		if !ok {
			http.NotFound(rw, r)
			return
		}
		rw.Header().Set("Content-Type", "application/octet-stream")
		_, _ = rw.Write([]byte(tok + "." + Thumbprint))
	}
	switch b.kind {
	case webByHost:
		if hb, ok := b.byHost[host]; ok {
			w.respond(rw, r, hb)
			return
		}
		solve()
	case webSolver, webNone:
		solve()
	case webStatus:
		for _, h := range b.header {
			rw.Header().Add(h[0], h[1])
		}
		rw.WriteHeader(b.status)
		_, _ = rw.Write([]byte(b.body))
	case webBody:
		body := b.body
		if strings.Contains(body, "{keyauth}") {
			tok, ok := w.tokenOf(r.URL.Path)
			if !ok {
				http.NotFound(rw, r)
				return
			}
			body = strings.ReplaceAll(body, "{keyauth}", tok+"."+Thumbprint)
		}
		for _, h := range b.header {
			rw.Header().Add(h[0], h[1])
		}
		_, _ = rw.Write([]byte(body))
	case webRedirect:
		if !strings.HasPrefix(r.URL.Path, "/.well-known/") {
			solve()
			return
		}
		loc := strings.NewReplacer("{host}", host, "{pathnoslash}", strings.TrimPrefix(r.URL.Path, "/"), "{path}", r.URL.Path).Replace(b.location)
		rw.Header().Set("Location", loc)
		rw.WriteHeader(b.status)
	case webChain:
		// /.well-known/... → /c1/.well-known/... → … → /cN/.well-known/... (answered)
		step := 0
		rest := r.URL.Path
		if strings.HasPrefix(rest, "/c") {
			if i := strings.Index(rest[2:], "/"); i > 0 {
				if n, err := strconv.Atoi(rest[2 : 2+i]); err == nil {
					step, rest = n, rest[2+i:]
				}
			}
		}
		if step >= b.n {
			solve()
			return
		}
		rw.Header().Set("Location", fmt.Sprintf("http://%s/c%d%s", host, step+1, rest))
		rw.WriteHeader(cmp.Or(b.status, http.StatusFound))
	case webSlow:
		t := time.NewTimer(b.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-w.done:
			return
		}
		solve()
	case webReset:
		hj, ok := rw.(http.Hijacker)
		if !ok {
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // close sends RST, not FIN
		}
		_ = conn.Close()
	case webH2C:
		hj, ok := rw.(http.Hijacker)
		if !ok {
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			return
		}
		// A SETTINGS frame (length 6, type 4, no flags, stream 0) holding
		// SETTINGS_MAX_CONCURRENT_STREAMS = 100: what an h2c-only server
		// sends first.
		_, _ = conn.Write([]byte("\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64"))
		_ = conn.Close()
	case webInfinite:
		rw.Header().Set("Content-Type", "text/plain")
		chunk := []byte(strings.Repeat("all work and no play makes jack a dull boy\n", 512))
		for sent := 0; sent < maxInfinite; sent += len(chunk) {
			if _, err := rw.Write(chunk); err != nil {
				return
			}
			select {
			case <-r.Context().Done():
				return
			case <-w.done:
				return
			default:
			}
		}
	default:
		http.Error(rw, "testenv: unknown behaviour", http.StatusInternalServerError)
	}
}
