package testenv

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/pki"
)

// handshake connects to a scenario's i-th web address on the HTTPS port
// with SNI and returns what was served, without verifying it.
func handshake(t *testing.T, u *Universe, scenario string, i int) ([]*x509.Certificate, error) {
	t.Helper()
	addr := u.WebAddrs(scenario)[i]
	d := &net.Dialer{Timeout: 2 * time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(addr, strconv.Itoa(u.HTTPSPort())), &tls.Config{
		ServerName:         domainOf(t, scenario),
		InsecureSkipVerify: true, //nolint:gosec // the test looks at what is served
	})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates, nil
}

// testTLS checks what the TLS scenarios serve (fixtures: this universe
// runs without Pebble).
func testTLS(t *testing.T, u *Universe) {
	verify := func(chain []*x509.Certificate, name string) error {
		inters := x509.NewCertPool()
		for _, c := range chain[1:] {
			inters.AddCert(c)
		}
		_, err := chain[0].Verify(x509.VerifyOptions{Roots: u.TLSRoots(), Intermediates: inters, DNSName: name})
		return err
	}
	for _, tc := range []struct {
		scenario string
		i        int
		check    func(t *testing.T, chain []*x509.Certificate, err error)
	}{
		{"tls-ok", 0, func(t *testing.T, chain []*x509.Certificate, err error) {
			if err != nil || len(chain) != 2 || verify(chain, domainOf(t, "tls-ok")) != nil {
				t.Errorf("chain of %d (%v), verify: %v", len(chain), err, verify(chain, domainOf(t, "tls-ok")))
			}
		}},
		{"tls-stale-backend", 1, func(t *testing.T, chain []*x509.Certificate, err error) {
			if err != nil || time.Since(chain[0].NotBefore) < 60*24*time.Hour {
				t.Errorf("the stale backend serves a certificate from %v (%v)", chain[0].NotBefore, err)
			}
		}},
		{"tls-wrong-name", 0, func(t *testing.T, chain []*x509.Certificate, err error) {
			if err != nil || chain[0].VerifyHostname(domainOf(t, "tls-wrong-name")) == nil {
				t.Errorf("names %v (%v)", chain[0].DNSNames, err)
			}
		}},
		{"tls-no-intermediate", 0, func(t *testing.T, chain []*x509.Certificate, err error) {
			if err != nil || len(chain) != 1 {
				t.Errorf("chain of %d (%v)", len(chain), err)
			}
		}},
		{"tls-chain-loop", 0, func(t *testing.T, chain []*x509.Certificate, err error) {
			if err != nil || len(chain) != 3 {
				t.Errorf("chain of %d (%v)", len(chain), err)
			}
		}},
		{"tls-expired", 0, func(t *testing.T, chain []*x509.Certificate, err error) {
			if err != nil || time.Now().Before(chain[0].NotAfter) {
				t.Errorf("not after %v (%v)", chain[0].NotAfter, err)
			}
		}},
		{"tls-hang", 0, func(t *testing.T, _ []*x509.Certificate, err error) {
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				t.Errorf("err = %v, want a timeout", err)
			}
		}},
		{"tls-garbage", 0, func(t *testing.T, _ []*x509.Certificate, err error) {
			if _, ok := err.(tls.RecordHeaderError); !ok {
				t.Errorf("err = %v, want a record header error", err)
			}
		}},
		{"tls-huge-chain", 0, func(t *testing.T, _ []*x509.Certificate, err error) {
			if err == nil || !strings.Contains(err.Error(), "exceeds maximum") {
				t.Errorf("err = %v, want crypto/tls's size limit", err)
			}
		}},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			chain, err := handshake(t, u, tc.scenario, tc.i)
			if err == nil && len(chain) == 0 {
				t.Fatal("no certificate")
			}
			tc.check(t, chain, err)
		})
	}

	t.Run("serve-certificate", func(t *testing.T) {
		before, err := u.ServedCertificate("tls-ok", 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = u.ServeCertificate("tls-ok", 0, before) })
		renewed, err := u.tlsCA.inter.Issue(pki.Leaf{Names: []string{domainOf(t, "tls-ok")}})
		if err != nil {
			t.Fatal(err)
		}
		if err := u.ServeCertificate("tls-ok", 0, renewed); err != nil {
			t.Fatal(err)
		}
		chain, err := handshake(t, u, "tls-ok", 0)
		if err != nil || chain[0].SerialNumber.Cmp(renewed.Leaf.SerialNumber) != 0 {
			t.Errorf("serving serial %v after the swap, want %v (%v)", chain[0].SerialNumber, renewed.Leaf.SerialNumber, err)
		}
		if err := u.ServeCertificate("tls-refused", 0, renewed); err == nil {
			t.Error("a site without TLS took a certificate")
		}
		if _, err := u.IssueCertificate(t.Context(), "tls-ok.acmeweb.com"); err == nil {
			t.Error("IssueCertificate without Pebble succeeded")
		}
	})
}
