package pki

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
)

// A server certificate verifies against its CA for 127.0.0.1 and the
// extra host; a client certificate is for client auth; another CA's are not
// trusted.
func TestIssue(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca, err := NewCA(dir, "ca")
	if err != nil {
		t.Fatal(err)
	}
	other, err := NewCA(dir, "other-ca")
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	b, _ := os.ReadFile(ca.CertFile)
	if !pool.AppendCertsFromPEM(b) {
		t.Fatal("CA file is not PEM")
	}
	load := func(c *CA, name string, server bool) *x509.Certificate {
		var cf, kf string
		var err error
		if server {
			cf, kf, err = c.Server(name, "127.9.9.9", "agent.test")
		} else {
			cf, kf, err = c.Client(name)
		}
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.LoadX509KeyPair(cf, kf)
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := x509.ParseCertificate(pair.Certificate[0])
		return cert
	}
	srv := load(ca, "server", true)
	for _, host := range []string{"127.0.0.1", "127.9.9.9", "agent.test", "localhost"} {
		if _, err := srv.Verify(x509.VerifyOptions{DNSName: host, Roots: pool}); err != nil {
			t.Errorf("server certificate for %s: %v", host, err)
		}
	}
	cli := load(ca, "client", false)
	if _, err := cli.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	stranger := load(other, "stranger", false)
	if _, err := stranger.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err == nil {
		t.Error("another CA's client certificate verifies")
	}
}
