package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // subject key identifiers, RFC 5280 method 1
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"time"
)

// Authority is an in-memory CA — a root or an intermediate — for
// certificate fixtures: served chains with chosen validity, names, issuers
// and gaps.
type Authority struct {
	Cert   *x509.Certificate
	Key    crypto.Signer
	Parent *Authority // nil for a root
}

// NewRoot makes a self-signed root CA valid from five years ago for ten years.
func NewRoot(cn string) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %s key: %w", cn, err)
	}
	tmpl := caTemplate(cn, &key.PublicKey)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", cn, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", cn, err)
	}
	return &Authority{Cert: cert, Key: key}, nil
}

func caTemplate(cn string, pub crypto.PublicKey) *x509.Certificate {
	return &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn},
		// Long-lived, as real CAs are: leaves backdated by months (expired
		// fixtures) still chain to a CA valid at the time.
		NotBefore: time.Now().Add(-5 * 365 * 24 * time.Hour), NotAfter: time.Now().Add(10 * 365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId: ski(pub)}
}

// Intermediate makes a CA certificate for a fresh key, issued by a.
func (a *Authority) Intermediate(cn string) (*Authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pki: %s key: %w", cn, err)
	}
	cert, err := a.sign(caTemplate(cn, &key.PublicKey), &key.PublicKey)
	if err != nil {
		return nil, err
	}
	return &Authority{Cert: cert, Key: key, Parent: a}, nil
}

// CrossSign issues another CA certificate for other's subject and key,
// signed by a: with two calls in opposite directions, two CAs issue each
// other (an issuer loop).
func (a *Authority) CrossSign(other *Authority) (*x509.Certificate, error) {
	tmpl := caTemplate(other.Cert.Subject.CommonName, other.Key.Public())
	tmpl.Subject = other.Cert.Subject
	return a.sign(tmpl, other.Key.Public())
}

// Leaf describes a server certificate.
type Leaf struct {
	Names      []string
	CommonName string // "" → the first name
	NotBefore  time.Time
	NotAfter   time.Time // zero → NotBefore + 90 days
	MustStaple bool
	RSA        bool // an RSA 2048 key instead of ECDSA P-256
}

// Issue makes a server certificate for l, issued by a. The returned
// tls.Certificate holds the leaf and a's intermediates up to (not
// including) the root — the chain a correct server sends.
func (a *Authority) Issue(l Leaf) (tls.Certificate, error) {
	var key crypto.Signer
	var err error
	if l.RSA {
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	} else {
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	}
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: leaf key: %w", err)
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = l.NotBefore.Add(90*24*time.Hour - time.Second)
	}
	cn := l.CommonName
	if cn == "" && len(l.Names) > 0 {
		cn = l.Names[0]
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, DNSNames: l.Names,
		NotBefore: l.NotBefore, NotAfter: l.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	if l.MustStaple {
		v, err := asn1.Marshal([]int{5}) // status_request
		if err != nil {
			return tls.Certificate{}, err
		}
		tmpl.ExtraExtensions = []pkix.Extension{{Id: asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}, Value: v}}
	}
	cert, err := a.sign(tmpl, key.Public())
	if err != nil {
		return tls.Certificate{}, err
	}
	tc := tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	for p := a; p != nil && p.Parent != nil; p = p.Parent {
		tc.Certificate = append(tc.Certificate, p.Cert.Raw)
	}
	return tc, nil
}

// SelfSigned makes a self-signed server certificate (its own issuer).
func SelfSigned(l Leaf) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: key: %w", err)
	}
	if l.NotBefore.IsZero() {
		l.NotBefore = time.Now().Add(-time.Hour)
	}
	if l.NotAfter.IsZero() {
		l.NotAfter = l.NotBefore.Add(90*24*time.Hour - time.Second)
	}
	cn := l.CommonName
	if cn == "" && len(l.Names) > 0 {
		cn = l.Names[0]
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: cn}, DNSNames: l.Names,
		NotBefore: l.NotBefore, NotAfter: l.NotAfter, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("pki: self-signed: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, nil
}

func (a *Authority) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.Cert, pub, a.Key)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", tmpl.Subject.CommonName, err)
	}
	return x509.ParseCertificate(der)
}

// Pool is a certificate pool holding a's root.
func (a *Authority) Pool() *x509.CertPool {
	root := a
	for root.Parent != nil {
		root = root.Parent
	}
	p := x509.NewCertPool()
	p.AddCert(root.Cert)
	return p
}

// PEM encodes certificates as PEM CERTIFICATE blocks.
func PEM(certs ...*x509.Certificate) []byte {
	var out []byte
	for _, c := range certs {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})...)
	}
	return out
}

// ski is a subject key identifier: SHA-1 of the public key's encoding.
func ski(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		Key       asn1.BitString
	}
	if _, err := asn1.Unmarshal(der, &spki); err != nil {
		return nil
	}
	sum := sha1.Sum(spki.Key.Bytes) //nolint:gosec // not a security use
	return sum[:]
}
