package pebble

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/pki"
	"github.com/go-acme/lego/v5/acme/api"
	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"
)

// loopbackDNS answers A 127.0.0.1 for every name, over UDP and TCP.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(r)
		m.Authoritative = true
		if len(r.Question) == 1 && r.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 5}, A: net.IPv4(127, 0, 0, 1)})
		}
		_ = w.WriteMsg(m)
	})
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		for _, s := range []*dns.Server{{PacketConn: pc, Handler: h}, {Listener: l, Handler: h}} {
			go func() { _ = s.ActivateAndServe() }()
			t.Cleanup(func() { _ = s.Shutdown() })
		}
		return pc.LocalAddr().String()
	}
	t.Fatal("no port free for both UDP and TCP")
	return ""
}

// TestIssueAndRenewalInfo orders a real certificate from Pebble, then sets
// its renewal info through the management endpoint and reads it back from
// the ACME renewalInfo endpoint.
func TestIssueAndRenewalInfo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := Build(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// The HTTP-01 responder: tokens presented by Issue.
	var mu sync.Mutex
	tokens := map[string]string{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ka, ok := tokens[strings.TrimPrefix(r.URL.Path, "/.well-known/acme-challenge/")]
		mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = io.WriteString(w, ka)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	present := func(token, keyAuth string) (func(), error) {
		mu.Lock()
		tokens[token] = keyAuth
		mu.Unlock()
		return func() { mu.Lock(); delete(tokens, token); mu.Unlock() }, nil
	}

	p, err := Start(ctx, Config{Bin: bin, HTTPPort: l.Addr().(*net.TCPAddr).Port, WorkDir: t.TempDir(), DNSServer: loopbackDNS(t), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	is, err := p.Issue(ctx, []string{"www.issue-test.com", "api.issue-test.com"}, present)
	if err != nil {
		t.Fatal(err)
	}
	leaf := is.Leaf()
	if err := leaf.VerifyHostname("api.issue-test.com"); err != nil || len(is.Chain) < 2 {
		t.Fatalf("leaf %v for %v, chain of %d", leaf.Subject, leaf.DNSNames, len(is.Chain))
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 89*24*time.Hour || d > 91*24*time.Hour {
		t.Errorf("lifetime %s, want Pebble's default 90 days", d)
	}
	if _, err := tls.X509KeyPair(is.PEM, nil); err == nil {
		t.Error("PEM holds a key")
	}
	if len(mustTLS(t, is).Certificate) != len(is.Chain) {
		t.Error("TLS() lost certificates")
	}
	// The chain verifies against the issuing root Pebble reported.
	pool := x509.NewCertPool()
	rootPEM := readFile(t, p.RootCAFile())
	pool.AppendCertsFromPEM(rootPEM)
	inters := x509.NewCertPool()
	for _, c := range is.Chain[1:] {
		inters.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inters}); err != nil {
		t.Errorf("chain does not verify against Pebble's root: %v", err)
	}

	body := RenewalWindow(time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour), "https://ca.example/why")
	if err := p.SetRenewalInfo(ctx, leaf, body); err != nil {
		t.Fatal(err)
	}
	id, err := api.MakeARICertID(leaf)
	if err != nil {
		t.Fatal(err)
	}
	hc, err := p.client()
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Get("https://" + p.Addr() + "/draft-ietf-acme-ari-03/renewalInfo/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != body {
		t.Errorf("renewalInfo: %d %s, want %s", resp.StatusCode, got, body)
	}
	if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra <= 0 {
		t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	// A certificate Pebble never issued is refused.
	other, err := pki.SelfSigned(pki.Leaf{Names: []string{"www.issue-test.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.SetRenewalInfo(ctx, other.Leaf, body); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("renewal info for a certificate Pebble did not issue: %v", err)
	}
}

func mustTLS(t *testing.T, is *Issued) tls.Certificate {
	t.Helper()
	tc := is.TLS()
	if tc.Leaf == nil || tc.PrivateKey == nil {
		t.Fatal("TLS() without leaf or key")
	}
	return tc
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
