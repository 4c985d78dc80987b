package tlscheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/pki"
)

// behaviour is what one test server does with a connection.
type behaviour func(net.Conn)

// serveCert completes a TLS handshake with cert, then closes.
func serveCert(cert tls.Certificate) behaviour {
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}}
	return func(c net.Conn) {
		tc := tls.Server(c, cfg)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tc.Handshake()
		buf := make([]byte, 1)
		_, _ = tc.Read(buf) // until the client closes
	}
}

// hang accepts and never says anything (until the client gives up).
func hang(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

// reply reads the ClientHello and answers with raw bytes.
func reply(b string) behaviour {
	return func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte(b))
	}
}

// servers listens on 127.0.0.<first>…, one address per behaviour, all on
// the same port (the kernel's choice for the first), and serves until the
// test ends.
func servers(t *testing.T, bs ...behaviour) (port int, addrs []netip.Addr) {
	t.Helper()
	for try := range 20 {
		var ls []net.Listener
		ok := true
		for i := range bs {
			a := netip.AddrFrom4([4]byte{127, 0, 0, byte(1 + i)})
			p := 0
			if i > 0 {
				p = port
			}
			l, err := net.Listen("tcp", netip.AddrPortFrom(a, uint16(p)).String())
			if err != nil {
				ok = false
				break
			}
			if i == 0 {
				port = l.Addr().(*net.TCPAddr).Port
			}
			ls = append(ls, l)
		}
		if !ok {
			for _, l := range ls {
				l.Close()
			}
			if try == 19 {
				t.Fatal("no port free on every test address")
			}
			continue
		}
		var wg sync.WaitGroup
		for i, l := range ls {
			addrs = append(addrs, netip.MustParseAddrPort(l.Addr().String()).Addr())
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						defer c.Close()
						bs[i](c)
					}()
				}
			}()
		}
		t.Cleanup(func() {
			for _, l := range ls {
				l.Close()
			}
			wg.Wait()
		})
		return port, addrs
	}
	return 0, nil
}

// fixtures are the certificates the tests serve.
type fixtures struct {
	root, inter, other *pki.Authority
}

func newFixtures(t *testing.T) fixtures {
	t.Helper()
	root, err := pki.NewRoot("Test Root")
	if err != nil {
		t.Fatal(err)
	}
	inter, err := root.Intermediate("Test Intermediate")
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewRoot("Other Root")
	if err != nil {
		t.Fatal(err)
	}
	return fixtures{root: root, inter: inter, other: other}
}

func must(t *testing.T, c tls.Certificate, err error) tls.Certificate {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func codesOf(fs []reports.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, string(f.Code)+"/"+f.Severity.String())
	}
	slices.Sort(out)
	return out
}

const name = "www.example.com"

func TestInspect(t *testing.T) {
	t.Parallel()
	fx := newFixtures(t)
	now := time.Now()
	day := 24 * time.Hour
	leaf := func(l pki.Leaf) tls.Certificate {
		if l.Names == nil {
			l.Names = []string{name}
		}
		c, err := fx.inter.Issue(l)
		return must(t, c, err)
	}
	healthy := leaf(pki.Leaf{})
	leafOnly := healthy
	leafOnly.Certificate = leafOnly.Certificate[:1]
	selfSigned, err := pki.SelfSigned(pki.Leaf{Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	// An issuer loop: X and Y issue each other; the leaf comes from X.
	x, err := pki.NewRoot("Loop X")
	if err != nil {
		t.Fatal(err)
	}
	y, err := pki.NewRoot("Loop Y")
	if err != nil {
		t.Fatal(err)
	}
	xByY, err := y.CrossSign(x)
	if err != nil {
		t.Fatal(err)
	}
	yByX, err := x.CrossSign(y)
	if err != nil {
		t.Fatal(err)
	}
	loop, err := x.Issue(pki.Leaf{Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	loop.Certificate = append(loop.Certificate, xByY.Raw, yByX.Raw)

	for _, tc := range []struct {
		desc   string
		certs  []tls.Certificate // one address each
		roots  *x509.CertPool    // nil → fx.root's
		want   []string          // code/severity, sorted
		detail []string          // substrings of the joined details
		check  func(t *testing.T, r Result)
	}{
		{desc: "healthy chain", certs: []tls.Certificate{healthy}, check: func(t *testing.T, r Result) {
			ch := r.Addrs[0].Chain
			if !ch.CoversName || !ch.Complete || !ch.Trusted || ch.Leaf.KeyType != "ECDSA P-256" || len(ch.Path) != 3 || ch.Served != 2 {
				t.Errorf("facts = %+v", ch)
			}
			if ch.Leaf.Serial == "" || ch.Leaf.Issuer != "CN=Test Intermediate" || ch.IssuerCert == nil || ch.IssuerCert.Subject.CommonName != "Test Intermediate" {
				t.Errorf("leaf facts = %+v, issuer %v", ch.Leaf, ch.IssuerCert)
			}
			if r.Addrs[0].TLSVersion != "TLS 1.3" || r.Addrs[0].BytesRead == 0 || r.Addrs[0].BytesRead > DefaultMaxPeerBytes {
				t.Errorf("version %q, bytes read %d", r.Addrs[0].TLSVersion, r.Addrs[0].BytesRead)
			}
		}},
		{desc: "RSA key with must-staple", certs: []tls.Certificate{leaf(pki.Leaf{RSA: true, MustStaple: true})}, check: func(t *testing.T, r Result) {
			if l := r.Addrs[0].Chain.Leaf; l.KeyType != "RSA 2048" || !l.MustStaple {
				t.Errorf("leaf = %+v", l)
			}
		}},
		{desc: "a wildcard covers the name", certs: []tls.Certificate{leaf(pki.Leaf{Names: []string{"*.example.com"}})}},
		{desc: "20 days of 90 left: warning", certs: []tls.Certificate{leaf(pki.Leaf{NotBefore: now.Add(-70 * day)})},
			want: []string{"tls.expiring/warning"}, detail: []string{"expires in 20 days", "22 % of its 90 days lifetime left"}},
		{desc: "5 days of 90 left: error", certs: []tls.Certificate{leaf(pki.Leaf{NotBefore: now.Add(-85 * day)})},
			want: []string{"tls.expiring/error"}, detail: []string{"expires in 5.0 days"}},
		{desc: "expired: fatal", certs: []tls.Certificate{leaf(pki.Leaf{NotBefore: now.Add(-100 * day)})},
			want: []string{"tls.expiring/fatal"}, detail: []string{"expired 10 days ago"}},
		{desc: "6-day certificate, 1.5 days left: warning", certs: []tls.Certificate{leaf(pki.Leaf{NotBefore: now.Add(-108 * time.Hour), NotAfter: now.Add(36 * time.Hour)})},
			want: []string{"tls.expiring/warning"}},
		{desc: "6-day certificate, 12 h left: error", certs: []tls.Certificate{leaf(pki.Leaf{NotBefore: now.Add(-132 * time.Hour), NotAfter: now.Add(12 * time.Hour)})},
			want: []string{"tls.expiring/error"}},
		{desc: "a certificate for another name", certs: []tls.Certificate{leaf(pki.Leaf{Names: []string{"other.example.net"}})},
			want: []string{"tls.name_mismatch/error"}, detail: []string{"for other.example.net", "does not cover www.example.com"}},
		{desc: "leaf without its intermediate", certs: []tls.Certificate{leafOnly},
			want: []string{"tls.chain_incomplete/warning"}, detail: []string{"sends the leaf without the intermediate", "CN=Test Intermediate"},
			check: func(t *testing.T, r Result) {
				if ch := r.Addrs[0].Chain; ch.Complete || ch.Trusted {
					t.Errorf("complete/trusted = %v/%v", ch.Complete, ch.Trusted)
				}
			}},
		{desc: "self-signed", certs: []tls.Certificate{selfSigned},
			want: []string{"tls.untrusted/warning"}, detail: []string{"self-signed", "`tls.roots` in the daemon's configuration"},
			check: func(t *testing.T, r Result) {
				if ch := r.Addrs[0].Chain; !ch.Complete || ch.Trusted || !ch.Leaf.SelfSigned {
					t.Errorf("chain = %+v", ch)
				}
			}},
		{desc: "a sound chain to a root not trusted", certs: []tls.Certificate{healthy}, roots: fx.other.Pool(),
			want: []string{"tls.untrusted/warning"}, detail: []string{"CN=Test Intermediate", "unknown authority"}},
		{desc: "issuer loop", certs: []tls.Certificate{loop},
			want: []string{"tls.untrusted/warning"}, detail: []string{"form a loop"},
			check: func(t *testing.T, r Result) {
				if ch := r.Addrs[0].Chain; !ch.Loop || len(ch.Path) != 3 {
					t.Errorf("loop %v, path %v", ch.Loop, ch.Path)
				}
			}},
		{desc: "one address still serves the certificate from before the renewal",
			certs: []tls.Certificate{healthy, leaf(pki.Leaf{NotBefore: now.Add(-61 * day)})},
			want:  []string{"tls.expiring/warning", "tls.stale_backend/error"}, detail: []string{"127.0.0.2:", "still serve(s)", "61 days older than"},
			check: func(t *testing.T, r Result) {
				for _, f := range r.Findings {
					if f.Code == reports.CodeTLSStaleBackend && !strings.HasPrefix(f.Detail, "127.0.0.2:") {
						t.Errorf("stale detail names the wrong address first: %s", f.Detail)
					}
				}
			}},
		{desc: "two addresses, two certificates of the same age: not stale", certs: []tls.Certificate{healthy, leaf(pki.Leaf{})}},
		{desc: "two addresses, the same certificate, one without the intermediate",
			certs: []tls.Certificate{healthy, leafOnly}, want: []string{"tls.chain_incomplete/warning"}, detail: []string{"127.0.0.2:"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			var bs []behaviour
			for _, c := range tc.certs {
				bs = append(bs, serveCert(c))
			}
			port, addrs := servers(t, bs...)
			roots := tc.roots
			if roots == nil {
				roots = fx.root.Pool()
			}
			c := &Checker{Logger: zaptest.NewLogger(t)}
			r := c.Inspect(context.Background(), Request{Name: name, Addrs: addrs, Port: port, Roots: roots, Now: now})
			got := codesOf(r.Findings)
			want := tc.want
			if !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Errorf("findings = %v, want %v", got, want)
			}
			var details []string
			for _, f := range r.Findings {
				details = append(details, f.Detail)
				if f.Evidence == nil {
					t.Errorf("%s has no evidence", f.Code)
				}
			}
			all := strings.Join(details, "\n")
			for _, s := range tc.detail {
				if !strings.Contains(all, s) {
					t.Errorf("details lack %q:\n%s", s, all)
				}
			}
			for _, a := range r.Addrs {
				if a.Chain == nil {
					t.Errorf("%s: no chain: %s %s", a.Addr, a.ErrKind, a.Err)
				}
			}
			if tc.check != nil && !t.Failed() {
				tc.check(t, r)
			}
		})
	}
}

// TestHostile: every hostile server is one clear tls.handshake_failed,
// within the deadline, reading no more than the cap, and a healthy address
// of the same name is inspected meanwhile.
func TestHostile(t *testing.T) {
	t.Parallel()
	fx := newFixtures(t)
	healthy, err := fx.inter.Issue(pki.Leaf{Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	// A 1 MiB chain: the leaf followed by copies of the intermediate.
	huge := healthy
	for len(huge.Certificate) < 4000 {
		huge.Certificate = append(huge.Certificate, fx.inter.Cert.Raw)
	}
	// 200 KiB: under crypto/tls's own limit (256 KiB), over our cap.
	big := healthy
	for len(big.Certificate) < 600 {
		big.Certificate = append(big.Certificate, fx.inter.Cert.Raw)
	}
	alert := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return nil, errors.New("no certificate for this name")
	}}
	for _, tc := range []struct {
		desc   string
		b      behaviour
		kind   ErrKind
		detail string
	}{
		{desc: "handshake never finishes", b: hang, kind: ErrHandshakeTimeout, detail: "did not finish"},
		{desc: "garbage instead of TLS", b: reply("\x00\x01garbage, not a TLS record\r\n"), kind: ErrNotTLS, detail: "not TLS"},
		{desc: "plain HTTP on the TLS port", b: reply("HTTP/1.1 400 Bad Request\r\n\r\n"), kind: ErrNotTLS, detail: "plain HTTP"},
		{desc: "closed after the ClientHello", b: reply(""), kind: ErrClosed, detail: "closed the connection"},
		{desc: "1 MiB chain", b: serveCert(huge), kind: ErrTooLarge, detail: "too large"},
		{desc: "200 KiB chain", b: serveCert(big), kind: ErrTooLarge, detail: "more than 64 KiB"},
		{desc: "TLS alert", b: func(c net.Conn) { _ = tls.Server(c, alert).Handshake() }, kind: ErrAlert, detail: "internal error"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			port, addrs := servers(t, tc.b, serveCert(healthy))
			// 2 s: under -race the test server takes half a second to
			// send a 1 MiB chain.
			c := &Checker{HandshakeTimeout: 2 * time.Second}
			start := time.Now()
			r := c.Inspect(context.Background(), Request{Name: name, Addrs: addrs, Port: port, Roots: fx.root.Pool()})
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			bad, good := r.Addrs[0], r.Addrs[1]
			if bad.ErrKind != tc.kind || !strings.Contains(bad.Err, tc.detail) {
				t.Errorf("kind %q err %q, want %q containing %q", bad.ErrKind, bad.Err, tc.kind, tc.detail)
			}
			if bad.BytesRead > DefaultMaxPeerBytes {
				t.Errorf("read %d bytes, cap %d", bad.BytesRead, DefaultMaxPeerBytes)
			}
			if good.Chain == nil || good.Duration > time.Second {
				t.Errorf("the healthy address: chain %v after %s (%s)", good.Chain != nil, good.Duration, good.Err)
			}
			if got := codesOf(r.Findings); !slices.Equal(got, []string{"tls.handshake_failed/error"}) {
				t.Errorf("findings = %v", got)
			}
			f := r.Findings[0]
			if !strings.HasPrefix(f.Detail, addrs[0].String()+":"+strconv.Itoa(port)) || f.Evidence["error_kind"] != string(tc.kind) {
				t.Errorf("finding = %+v", f)
			}
		})
	}
}

func TestConnectErrors(t *testing.T) {
	t.Parallel()
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	r := Inspect(context.Background(), Request{Name: name, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: port})
	if a := r.Addrs[0]; a.ErrKind != ErrRefused {
		t.Errorf("kind = %q (%s)", a.ErrKind, a.Err)
	}
	// A cancelled run says so, at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r = Inspect(ctx, Request{Name: name, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: port})
	if a := r.Addrs[0]; a.ErrKind != ErrCanceled {
		t.Errorf("kind = %q (%s)", a.ErrKind, a.Err)
	}
}

func TestStaleBackendsAcrossVantages(t *testing.T) {
	t.Parallel()
	now := time.Now()
	cur := reports.CertFacts{Serial: "02", SHA256: "bb", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(89 * 24 * time.Hour)}
	old := reports.CertFacts{Serial: "01", SHA256: "aa", NotBefore: now.Add(-61 * 24 * time.Hour), NotAfter: now.Add(29 * 24 * time.Hour)}
	near := reports.CertFacts{Serial: "03", SHA256: "cc", NotBefore: now.Add(-90*time.Minute + 31*time.Minute), NotAfter: now.Add(89 * 24 * time.Hour)}
	a1, a2 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for _, tc := range []struct {
		desc    string
		served  []reports.ServedCert
		want    int
		contain []string
	}{
		{desc: "one vantage reaches a backend that was not reloaded", served: []reports.ServedCert{
			{Vantage: "us-east", Addr: a1, Leaf: cur, CoversName: true},
			{Vantage: "eu-west", Addr: a1, Leaf: old, CoversName: true},
			{Vantage: "ap-south", Addr: a1, Leaf: cur, CoversName: true},
		}, want: 1, contain: []string{"192.0.2.1 (from eu-west) still serve(s) serial 01", "serial 02"}},
		{desc: "everyone sees the same", served: []reports.ServedCert{{Vantage: "a", Addr: a1, Leaf: cur, CoversName: true}, {Vantage: "b", Addr: a2, Leaf: cur, CoversName: true}}},
		{desc: "issued within the hour: different, not stale", served: []reports.ServedCert{{Addr: a1, Leaf: cur, CoversName: true}, {Addr: a2, Leaf: near, CoversName: true}}},
		{desc: "a certificate for other names is not compared", served: []reports.ServedCert{{Addr: a1, Leaf: cur, CoversName: true}, {Addr: a2, Leaf: old}}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fs := StaleBackends(name, tc.served)
			if len(fs) != tc.want {
				t.Fatalf("%d findings, want %d: %+v", len(fs), tc.want, fs)
			}
			for _, s := range tc.contain {
				if !strings.Contains(fs[0].Detail, s) {
					t.Errorf("detail lacks %q: %s", s, fs[0].Detail)
				}
			}
			if tc.want > 0 && !slices.Equal(fs[0].Evidence["vantages"].([]string), []string{"eu-west"}) {
				t.Errorf("evidence = %v", fs[0].Evidence)
			}
		})
	}
}

// A Checker reuses the judgement of a chain it has seen: per roots, with the
// name's coverage judged afresh.
func TestChainCache(t *testing.T) {
	t.Parallel()
	fx := newFixtures(t)
	cert, err := fx.inter.Issue(pki.Leaf{Names: []string{name}})
	if err != nil {
		t.Fatal(err)
	}
	port, addrs := servers(t, serveCert(cert))
	c := &Checker{}
	inspect := func(n string, roots *x509.CertPool) *Chain {
		r := c.Inspect(context.Background(), Request{Name: n, Addrs: addrs, Port: port, Roots: roots})
		if r.Addrs[0].Chain == nil {
			t.Fatalf("no chain: %s", r.Addrs[0].Err)
		}
		return r.Addrs[0].Chain
	}
	trusted := fx.root.Pool()
	first := inspect(name, trusted)
	if len(c.chains.m) != 1 {
		t.Fatalf("%d cached judgements, want 1", len(c.chains.m))
	}
	again := inspect(name, trusted)
	if again.LeafCert != first.LeafCert || !again.Trusted || !again.CoversName {
		t.Errorf("second inspection: %+v", again)
	}
	if other := inspect("other.example.com", trusted); other.CoversName {
		t.Error("coverage came from the cache, not from the name")
	}
	if untrusted := inspect(name, fx.other.Pool()); untrusted.Trusted || len(c.chains.m) != 2 {
		t.Errorf("other roots: trusted %v, %d cached", untrusted.Trusted, len(c.chains.m))
	}
	nc := &Checker{NoCache: true}
	nc.Inspect(context.Background(), Request{Name: name, Addrs: addrs, Port: port, Roots: trusted})
	if len(nc.chains.m) != 0 {
		t.Error("NoCache cached")
	}
}
