package testenv

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/testenv/pebble"
	"github.com/acmediag/acmediag/testenv/pki"
)

// The TLS side of the web servers: every tlsCert site serves a certificate
// made for it at start — from the universe's own CA (a root and an
// intermediate, like a public CA's) with the validity, names and chain
// gaps its scenario stages — and, when Pebble runs, the sites whose
// scenario asks for it serve certificates Pebble really issued for their
// names, validated over HTTP-01 against the universe's own web servers.

// certKind is the shape of a site's served chain.
type certKind int

const (
	certChain      certKind = iota // the leaf and the intermediate
	certLeafOnly                   // the leaf without its intermediate
	certSelfSigned                 // a self-signed leaf
	certLoop                       // the leaf, then two CAs that issue each other
	certHuge                       // the leaf, then the intermediate repeated past 1 MiB
)

// certSpec is a site's certificate.
type certSpec struct {
	kind certKind
	// otherName: issued for "other-" + the site's name, which it does not cover.
	otherName bool
	age       time.Duration // notBefore = now - age; 0 → an hour ago
	lifetime  time.Duration // 0 → 90 days
	// pebble names the order group whose Pebble certificate replaces the
	// fixture when Pebble runs: one order per group, for the names of its
	// sites (except otherName ones, which serve it for a name it lacks).
	pebble string
}

// hugeChain is how big certHuge's chain grows.
const hugeChain = 1 << 20

// tlsCA is the universe's own certificate authority and the loop pair.
type tlsCA struct {
	root, inter  *pki.Authority
	loopX, loopY *pki.Authority
	xByY, yByX   *x509.Certificate
}

func newTLSCA() (*tlsCA, error) {
	root, err := pki.NewRoot("acmediag testenv Root X1")
	if err != nil {
		return nil, err
	}
	inter, err := root.Intermediate("acmediag testenv R1")
	if err != nil {
		return nil, err
	}
	x, err := pki.NewRoot("acmediag testenv Loop X")
	if err != nil {
		return nil, err
	}
	y, err := pki.NewRoot("acmediag testenv Loop Y")
	if err != nil {
		return nil, err
	}
	xByY, err := y.CrossSign(x)
	if err != nil {
		return nil, err
	}
	yByX, err := x.CrossSign(y)
	if err != nil {
		return nil, err
	}
	return &tlsCA{root: root, inter: inter, loopX: x, loopY: y, xByY: xByY, yByX: yByX}, nil
}

// fixture makes the certificate cs describes for name.
func (ca *tlsCA) fixture(name string, cs certSpec, now time.Time) (tls.Certificate, error) {
	if cs.otherName {
		name = "other-" + name
	}
	age := cs.age
	if age == 0 {
		age = time.Hour
	}
	lifetime := cs.lifetime
	if lifetime == 0 {
		lifetime = 90 * 24 * time.Hour
	}
	leaf := pki.Leaf{Names: []string{name}, NotBefore: now.Add(-age), NotAfter: now.Add(-age).Add(lifetime - time.Second)}
	switch cs.kind {
	case certSelfSigned:
		return pki.SelfSigned(leaf)
	case certLoop:
		tc, err := ca.loopX.Issue(leaf)
		if err != nil {
			return tc, err
		}
		tc.Certificate = append(tc.Certificate, ca.xByY.Raw, ca.yByX.Raw)
		return tc, nil
	}
	tc, err := ca.inter.Issue(leaf)
	if err != nil {
		return tc, err
	}
	switch cs.kind {
	case certLeafOnly:
		tc.Certificate = tc.Certificate[:1]
	case certHuge:
		// Copies share one backing array: 1 MiB on the wire, not in memory.
		for n := len(tc.Certificate[0]); n < hugeChain; n += len(ca.inter.Cert.Raw) {
			tc.Certificate = append(tc.Certificate, ca.inter.Cert.Raw)
		}
	}
	return tc, nil
}

// startTLS makes every tlsCert site's fixture and the roots file; it runs
// before the web servers start.
func (u *Universe) startTLS() error {
	ca, err := newTLSCA()
	if err != nil {
		return fmt.Errorf("tls fixtures: %w", err)
	}
	u.tlsCA = ca
	now := time.Now()
	for _, s := range u.spec.sites {
		if s.tls != tlsCert {
			continue
		}
		tc, err := ca.fixture(s.name, s.cert, now)
		if err != nil {
			return fmt.Errorf("tls fixture for %s: %w", s.addr, err)
		}
		slot := new(atomic.Pointer[tls.Certificate])
		slot.Store(&tc)
		u.web.certs[s.addr] = slot
	}
	return u.writeTLSRoots()
}

// writeTLSRoots writes the roots a client of the universe trusts: its own
// CA and, when Pebble runs, Pebble's issuing root.
func (u *Universe) writeTLSRoots() error {
	pemRoots := pki.PEM(u.tlsCA.root.Cert)
	if u.pebble != nil {
		b, err := os.ReadFile(u.pebble.RootCAFile())
		if err != nil {
			return fmt.Errorf("tls roots: %w", err)
		}
		pemRoots = append(pemRoots, b...)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemRoots) {
		return errors.New("tls roots: no certificate")
	}
	u.tlsRoots = pool
	u.tlsRootsFile = filepath.Join(u.workDir, "tls-roots.pem")
	return os.WriteFile(u.tlsRootsFile, pemRoots, 0o644)
}

// issueTLS orders one Pebble certificate per order group and serves it at
// the group's sites (leaf only where the scenario leaves the intermediate
// out). It runs once Pebble is ready.
func (u *Universe) issueTLS(ctx context.Context) error {
	groups := map[string][]string{}
	var order []string
	for _, s := range u.spec.sites {
		if s.tls != tlsCert || s.cert.pebble == "" {
			continue
		}
		g := s.cert.pebble
		if _, ok := groups[g]; !ok {
			order = append(order, g)
			groups[g] = nil
		}
		if !s.cert.otherName && !slices.Contains(groups[g], s.name) {
			groups[g] = append(groups[g], s.name)
		}
	}
	u.issued = map[string]*pebble.Issued{}
	for _, g := range order {
		start := time.Now()
		is, err := u.IssueCertificate(ctx, groups[g]...)
		if err != nil {
			return fmt.Errorf("tls: pebble order %q: %w", g, err)
		}
		u.issued[g] = is
		u.log.Info("pebble issued", zap.String("group", g), zap.Strings("names", groups[g]),
			zap.String("serial", fmt.Sprintf("%x", is.Leaf().SerialNumber)), zap.Duration("took", time.Since(start)))
		for _, s := range u.spec.sites {
			if s.tls != tlsCert || s.cert.pebble != g {
				continue
			}
			tc := is.TLS()
			if s.cert.kind == certLeafOnly {
				tc.Certificate = tc.Certificate[:1]
			}
			u.web.certs[s.addr].Store(&tc)
		}
	}
	return u.writeTLSRoots()
}

// TLSRoots are the roots the universe's served certificates chain to: its
// own CA and, when Pebble runs, Pebble's issuing root.
func (u *Universe) TLSRoots() *x509.CertPool { return u.tlsRoots }

// TLSRootsFile is TLSRoots as a PEM file (for --tls-roots or tls.roots).
func (u *Universe) TLSRootsFile() string { return u.tlsRootsFile }

// slot is the certificate holder of a scenario's i-th web address.
func (u *Universe) slot(scenario string, i int) (*atomic.Pointer[tls.Certificate], string, error) {
	addrs := u.spec.webAddrs[scenario]
	if i < 0 || i >= len(addrs) {
		return nil, "", fmt.Errorf("testenv: scenario %q has no web address #%d (addresses %v)", scenario, i, addrs)
	}
	s := u.web.certs[addrs[i]]
	if s == nil {
		return nil, "", fmt.Errorf("testenv: %s (scenario %q) does not serve a certificate of its own", addrs[i], scenario)
	}
	return s, addrs[i], nil
}

// ServedCertificate is what the i-th web address of a TLS scenario serves now.
func (u *Universe) ServedCertificate(scenario string, i int) (tls.Certificate, error) {
	s, _, err := u.slot(scenario, i)
	if err != nil {
		return tls.Certificate{}, err
	}
	return *s.Load(), nil
}

// ServeCertificate makes the i-th web address of a TLS scenario serve c
// from the next handshake on: a renewal, or a backend left behind.
func (u *Universe) ServeCertificate(scenario string, i int, c tls.Certificate) error {
	s, addr, err := u.slot(scenario, i)
	if err != nil {
		return err
	}
	s.Store(&c)
	u.log.Debug("serving a new certificate", zap.String("scenario", scenario), zap.String("addr", addr))
	return nil
}

// IssueCertificate orders a certificate for names from Pebble, answering
// HTTP-01 through the universe's web servers (the names must point at a
// solver, as every TLS scenario's do).
func (u *Universe) IssueCertificate(ctx context.Context, names ...string) (*pebble.Issued, error) {
	if u.pebble == nil {
		return nil, errors.New("testenv: the universe runs without Pebble (Options.ACME)")
	}
	return u.pebble.Issue(ctx, names, func(token, keyAuth string) (func(), error) {
		return u.web.present(token, keyAuth), nil
	})
}

// PebbleCertificate is the certificate Pebble issued at start for a TLS
// scenario (nil without Pebble, or when the scenario serves a fixture).
func (u *Universe) PebbleCertificate(scenario string) *pebble.Issued {
	for _, s := range u.spec.sites {
		if s.tls == tlsCert && s.cert.pebble != "" && slices.Contains(u.spec.webAddrs[scenario], s.addr) {
			return u.issued[s.cert.pebble]
		}
	}
	return nil
}

// SetRenewalInfo makes Pebble's renewalInfo endpoint answer ariResponse
// for cert (pebble.RenewalWindow builds a window).
func (u *Universe) SetRenewalInfo(ctx context.Context, cert *x509.Certificate, ariResponse string) error {
	if u.pebble == nil {
		return errors.New("testenv: the universe runs without Pebble (Options.ACME)")
	}
	return u.pebble.SetRenewalInfo(ctx, cert, ariResponse)
}

// garbage is what a tlsGarbage site answers a ClientHello with: an SSH
// server's banner (sshd on 443, a classic).
const garbage = "SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n"

// serveRaw serves a hostile TLS site: connections that hang or answer
// garbage, each cut off when the universe closes (or after a minute).
func (w *webServer) serveRaw(l net.Listener, kind tlsKind) {
	w.mu.Lock()
	w.raw = append(w.raw, l)
	w.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			w.wg.Add(1)
			go func() {
				defer w.wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				finished := make(chan struct{})
				defer close(finished)
				go func() {
					select {
					case <-w.done:
						_ = c.SetDeadline(time.Unix(1, 0))
					case <-finished:
					}
				}()
				buf := make([]byte, 4096)
				switch kind {
				case tlsHang:
					for {
						if _, err := c.Read(buf); err != nil {
							return
						}
					}
				case tlsGarbage:
					_, _ = c.Read(buf)
					_, _ = c.Write([]byte(garbage))
				}
			}()
		}
	}()
}
