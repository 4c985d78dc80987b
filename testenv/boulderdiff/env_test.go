package boulderdiff

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/letsencrypt/boulder/bdns"
)

// staticDNS is the name table of one test run: it is what both validators'
// resolvers answer from, so neither sees anything the other does not.
type staticDNS struct {
	mu    sync.Mutex
	hosts map[string]hostAddrs
}

type hostAddrs struct {
	v6, v4 []netip.Addr
}

func newStaticDNS() *staticDNS { return &staticDNS{hosts: map[string]hostAddrs{}} }

func (s *staticDNS) set(name string, addrs ...netip.Addr) {
	var h hostAddrs
	for _, a := range addrs {
		if a.Is4() {
			h.v4 = append(h.v4, a)
		} else {
			h.v6 = append(h.v6, a)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hosts[strings.ToLower(strings.TrimSuffix(name, "."))] = h
}

func (s *staticDNS) get(name string) (hostAddrs, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h, ok := s.hosts[strings.ToLower(strings.TrimSuffix(name, "."))]
	return h, ok
}

// nxdomainText is Boulder's bdns.Error text for an NXDOMAIN answer (bdns
// keeps the fields of that type unexported, so the oracle's client returns an
// error with the same text instead).
func nxdomainText(qtype, name string) string {
	return fmt.Sprintf("DNS problem: NXDOMAIN looking up %s for %s - check that a DNS record exists for this domain", qtype, name)
}

// boulderDNS is the oracle's bdns.Client over the static table. Names absent
// from the table answer NXDOMAIN; present names answer NOERROR with their
// records of the asked type (possibly none).
type boulderDNS struct{ s *staticDNS }

var _ bdns.Client = boulderDNS{}

const resolverName = "static-table"

func (b boulderDNS) LookupA(_ context.Context, host string) (*bdns.Result[*dns.A], string, error) {
	h, ok := b.s.get(host)
	if !ok {
		return nil, resolverName, errors.New(nxdomainText("A", host))
	}
	res := &bdns.Result[*dns.A]{Msg: new(dns.Msg)}
	for _, a := range h.v4 {
		rr := &dns.A{Hdr: dns.RR_Header{Name: dns.Fqdn(host), Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: a.AsSlice()}
		res.Answer = append(res.Answer, rr)
		res.Final = append(res.Final, rr)
	}
	return res, resolverName, nil
}

func (b boulderDNS) LookupAAAA(_ context.Context, host string) (*bdns.Result[*dns.AAAA], string, error) {
	h, ok := b.s.get(host)
	if !ok {
		return nil, resolverName, errors.New(nxdomainText("AAAA", host))
	}
	res := &bdns.Result[*dns.AAAA]{Msg: new(dns.Msg)}
	for _, a := range h.v6 {
		rr := &dns.AAAA{Hdr: dns.RR_Header{Name: dns.Fqdn(host), Rrtype: dns.TypeAAAA, Class: dns.ClassINET, Ttl: 60}, AAAA: a.AsSlice()}
		res.Answer = append(res.Answer, rr)
		res.Final = append(res.Final, rr)
	}
	return res, resolverName, nil
}

func (b boulderDNS) LookupCAA(_ context.Context, _ string) (*bdns.Result[*dns.CAA], string, error) {
	return &bdns.Result[*dns.CAA]{Msg: new(dns.Msg)}, resolverName, nil
}

func (b boulderDNS) LookupTXT(_ context.Context, _ string) (*bdns.Result[*dns.TXT], string, error) {
	return &bdns.Result[*dns.TXT]{Msg: new(dns.Msg)}, resolverName, nil
}

// ourDNS is acmediag's http01.Resolver over the same table. Its error texts
// are what dnscheck would hand over: the text Boulder's getAddrs builds from
// the two failed lookups, so that detail comparison tests http01's wrapping
// of it, not the table.
type ourDNS struct{ s *staticDNS }

func (o ourDNS) LookupHost(_ context.Context, host string) (v6, v4 []netip.Addr, err error) {
	h, ok := o.s.get(host)
	if !ok {
		return nil, nil, errors.New(nxdomainText("A", host) + "; " + nxdomainText("AAAA", host))
	}
	if len(h.v4) == 0 && len(h.v6) == 0 {
		return nil, nil, fmt.Errorf("no valid A records found for %s; no valid AAAA records found for %s", host, host)
	}
	return h.v6, h.v4, nil
}

// env is one case's servers: every listener is closed when the case ends.
type env struct {
	t   *testing.T
	idx int
	dns *staticDNS
}

// ip returns the case's n-th address, 127.90.<case>.<n>: its own addresses
// keep one case's servers from answering another's requests.
func (e *env) ip(n int) netip.Addr {
	return netip.AddrFrom4([4]byte{127, 90, byte(e.idx), byte(n)})
}

// name returns a case-unique host name under a real TLD (Boulder rejects
// redirect targets outside the IANA suffix list).
func (e *env) name(label string) string {
	return fmt.Sprintf("%s.c%02d.boulderdiff.com", label, e.idx)
}

func (e *env) host(label string, addrs ...netip.Addr) string {
	n := e.name(label)
	e.dns.set(n, addrs...)
	return n
}

func (e *env) listen(addr netip.Addr, port int) net.Listener {
	e.t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		if addr.Is6() {
			e.t.Skipf("cannot listen on %s port %d (in use by someone else?): %v", addr, port, err)
		}
		e.t.Fatalf("listen %s:%d: %v", addr, port, err)
	}
	e.t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// serveHTTP runs h on addr:port, over TLS (a self-signed certificate for the
// case's names) when tlsCfg is non-nil.
func (e *env) serveHTTP(addr netip.Addr, port int, tlsCfg *tls.Config, h http.Handler) {
	ln := e.listen(addr, port)
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	srv.SetKeepAlivesEnabled(false)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	go func() { _ = srv.Serve(ln) }()
	e.t.Cleanup(func() { _ = srv.Close() })
}

// serveRaw runs fn on every connection accepted on addr:port; fn must return
// once the peer closes. Connections are closed when the case ends.
func (e *env) serveRaw(addr netip.Addr, port int, fn func(net.Conn)) {
	ln := e.listen(addr, port)
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	e.t.Cleanup(func() {
		close(done)
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			select {
			case <-done:
				mu.Unlock()
				_ = c.Close()
				return
			default:
			}
			conns = append(conns, c)
			mu.Unlock()
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				fn(c)
			}()
		}
	}()
}

// certSpec describes a TLS-ALPN-01 (or plain https) server certificate.
type certSpec struct {
	dnsNames     []string
	acmeExt      bool   // include id-pe-acmeIdentifier
	nonCritical  bool   // mark it non-critical
	extValue     []byte // raw extension value; nil → OCTET STRING of SHA-256(keyAuth)
	keyAuth      string
	issuedByCA   bool // sign with a separate CA instead of self-signing
	extraKeyUsag bool // add a key-usage extension
}

var idPeAcmeIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

func makeCert(t *testing.T, spec certSpec) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "boulderdiff leaf"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     spec.dnsNames,
	}
	if len(spec.dnsNames) > 0 {
		// A Subject CN would be one more name in Boulder's list of names
		// found; keep it empty like real TLS-ALPN-01 responders.
		tmpl.Subject = pkix.Name{}
	}
	if spec.extraKeyUsag {
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	}
	if spec.acmeExt {
		val := spec.extValue
		if val == nil {
			sum := sha256.Sum256([]byte(spec.keyAuth))
			val, err = asn1.Marshal(sum[:])
			if err != nil {
				t.Fatal(err)
			}
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: idPeAcmeIdentifier, Critical: !spec.nonCritical, Value: val})
	}
	parent, signer := tmpl, any(key)
	if spec.issuedByCA {
		caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		parent = &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "boulderdiff CA"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(time.Hour),
			IsCA:                  true,
			BasicConstraintsValid: true,
			KeyUsage:              x509.KeyUsageCertSign,
		}
		signer = caKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serveALPN runs a TLS server on addr:443 that completes handshakes with cfg
// and then closes; the validators read only the handshake.
func (e *env) serveALPN(addr netip.Addr, cfg *tls.Config) {
	e.serveRaw(addr, 443, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		_ = tc.Handshake()
		// Wait for the client to hang up, so the close is its own.
		buf := make([]byte, 512)
		for {
			if _, err := tc.Read(buf); err != nil {
				return
			}
		}
	})
}
