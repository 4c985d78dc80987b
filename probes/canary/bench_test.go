package canary

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/certcrypto"
	"github.com/go-acme/lego/v5/certificate"
	"github.com/go-acme/lego/v5/challenge/http01"
	"github.com/go-acme/lego/v5/lego"
	"github.com/go-acme/lego/v5/registration"
	"go.uber.org/zap"
)

type legoUser struct {
	key crypto.Signer
	reg *acme.ExtendedAccount
}

func (u *legoUser) GetEmail() string                       { return "" }
func (u *legoUser) GetRegistration() *acme.ExtendedAccount { return u.reg }
func (u *legoUser) GetPrivateKey() crypto.Signer           { return u.key }

// legoObtain is the plain lego v5 library run of the same order.
func legoObtain(ctx context.Context, b *testing.B, dirURL, caFile, name string, port int) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		b.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	u := &legoUser{key: key}
	cfg := lego.NewConfig(u)
	cfg.CADirURL = dirURL
	cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	c, err := lego.NewClient(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Challenge.SetHTTP01Provider(http01.NewProviderServer("127.0.0.1", strconv.Itoa(port))); err != nil {
		b.Fatal(err)
	}
	if u.reg, err = c.Registration.Register(ctx, registration.RegisterOptions{TermsOfServiceAgreed: true}); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Certificate.Obtain(ctx, certificate.ObtainRequest{Domains: []string{name}, KeyType: certcrypto.EC256}); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCanaryVsLego runs a full canary order and a plain lego v5 order
// of the same kind against the same Pebble, and reports their ratio.
func BenchmarkCanaryVsLego(b *testing.B) {
	u := startUniverse(b, zap.NewNop())
	dir := b.TempDir()
	cfg := Config{DirectoryURL: u.peb.DirectoryURL(), CACertFile: u.peb.CAFile(), AccountKeyFile: dir + "/key.pem"}
	serve := net.JoinHostPort("127.0.0.1", strconv.Itoa(u.httpPort))
	var canary, plain time.Duration
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t0 := time.Now()
		out := FullOrder(ctx, cfg, "issue.canary-test.com", serve)
		canary += time.Since(t0)
		if !out.Issued {
			cancel()
			b.Fatalf("canary did not issue: %+v %v", out.Findings, out.Err)
		}
		t1 := time.Now()
		legoObtain(ctx, b, u.peb.DirectoryURL(), u.peb.CAFile(), "lego.canary-test.com", u.httpPort)
		plain += time.Since(t1)
		cancel()
	}
	n := float64(b.N)
	b.ReportMetric(canary.Seconds()/n*1000, "canary-ms/op")
	b.ReportMetric(plain.Seconds()/n*1000, "lego-ms/op")
	b.ReportMetric(canary.Seconds()/plain.Seconds(), "canary/lego")
}
