package tlscheck

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// oidTLSFeature is the TLS Feature extension (RFC 7633); status_request (5)
// in it is OCSP must-staple.
var oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}

// Chain is what one address served and how it judges.
type Chain struct {
	Leaf reports.CertFacts `json:"leaf"`
	// Intermediates are the certificates served after the leaf, in the
	// order served (at most maxChain of them).
	Intermediates []reports.CertFacts `json:"intermediates,omitempty"`
	// Served is how many certificates the server sent.
	Served int `json:"served"`
	// CoversName: the leaf is valid for the name (wildcards included).
	CoversName bool `json:"covers_name"`
	// Complete: the served certificates lead from the leaf to a root, or
	// to a CA certificate a root issues; false when the leaf (or the last
	// served certificate) is not a CA and its issuer was not sent.
	Complete bool `json:"complete"`
	// Trusted: the chain verifies against the roots (ignoring the leaf's
	// validity dates and the name, judged on their own).
	Trusted bool `json:"trusted"`
	// TrustError is why it does not, when it does not.
	TrustError string `json:"trust_error,omitempty"`
	// Path names the certificates from the leaf along the issuers (the
	// verified chain, or the served certificates as far as they lead).
	Path []string `json:"path,omitempty"`
	// Loop: the served certificates' issuer links form a loop.
	Loop bool `json:"loop,omitempty"`
	// Leaf raw certificate and issuer (the next certificate on the path,
	// served or from the roots), kept for ARI and never serialised.
	LeafCert   *x509.Certificate `json:"-"`
	IssuerCert *x509.Certificate `json:"-"`
}

// facts describes one certificate.
func facts(c *x509.Certificate) reports.CertFacts {
	sum := sha256.Sum256(c.Raw)
	f := reports.CertFacts{
		Subject:    c.Subject.String(),
		Issuer:     c.Issuer.String(),
		Serial:     hex.EncodeToString(c.SerialNumber.Bytes()),
		NotBefore:  c.NotBefore.UTC(),
		NotAfter:   c.NotAfter.UTC(),
		DNSNames:   c.DNSNames,
		KeyType:    keyType(c),
		SHA256:     hex.EncodeToString(sum[:]),
		MustStaple: mustStaple(c),
		IsCA:       c.IsCA,
		SelfSigned: selfSigned(c),
		AKI:        hex.EncodeToString(c.AuthorityKeyId),
	}
	for _, ip := range c.IPAddresses {
		f.IPs = append(f.IPs, ip.String())
	}
	return f
}

func keyType(c *x509.Certificate) string {
	switch k := c.PublicKey.(type) {
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case *rsa.PublicKey:
		return fmt.Sprintf("RSA %d", k.N.BitLen())
	case ed25519.PublicKey:
		return "Ed25519"
	default:
		return c.PublicKeyAlgorithm.String()
	}
}

// mustStaple reads the TLS Feature extension for status_request.
func mustStaple(c *x509.Certificate) bool {
	for _, e := range c.Extensions {
		if !e.Id.Equal(oidTLSFeature) {
			continue
		}
		var features []int
		if _, err := asn1.Unmarshal(e.Value, &features); err != nil {
			return false
		}
		for _, f := range features {
			if f == 5 {
				return true
			}
		}
	}
	return false
}

// selfSigned: issuer and subject are the same and the certificate's own key
// verifies its signature.
func selfSigned(c *x509.Certificate) bool {
	// CheckSignature, not CheckSignatureFrom: a self-signed server
	// certificate is usually not marked as a CA.
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// issued reports whether parent issued child (names match and parent's key
// verifies child's signature).
func issued(parent, child *x509.Certificate) bool {
	if !bytes.Equal(child.RawIssuer, parent.RawSubject) {
		return false
	}
	if len(child.AuthorityKeyId) > 0 && len(parent.SubjectKeyId) > 0 && !bytes.Equal(child.AuthorityKeyId, parent.SubjectKeyId) {
		return false
	}
	return child.CheckSignatureFrom(parent) == nil
}

// analyse judges a served chain against roots at now. Validity dates are
// left to tls.expiring: trust is judged at a moment inside the leaf's
// validity, so that an expired leaf still shows whether its chain is sound.
func analyse(name string, served []*x509.Certificate, roots *x509.CertPool, now time.Time) Chain {
	ch := Chain{Served: len(served)}
	if len(served) == 0 {
		ch.TrustError = "the server sent no certificate"
		return ch
	}
	if len(served) > maxChain+1 {
		served = served[:maxChain+1]
	}
	leaf := served[0]
	ch.LeafCert = leaf
	ch.Leaf = facts(leaf)
	for _, c := range served[1:] {
		ch.Intermediates = append(ch.Intermediates, facts(c))
	}
	ch.CoversName = leaf.VerifyHostname(name) == nil

	inters := x509.NewCertPool()
	for _, c := range served[1:] {
		inters.AddCert(c)
	}
	at := now
	if at.Before(leaf.NotBefore) {
		at = leaf.NotBefore
	}
	if at.After(leaf.NotAfter) {
		at = leaf.NotAfter
	}
	// Verification first: on the common path (a sound chain) it is the
	// only signature work besides the handshake's.
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, CurrentTime: at,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err == nil && len(chains) > 0 {
		ch.Trusted, ch.Complete = true, true
		for _, c := range chains[0] {
			ch.Path = append(ch.Path, label(c))
		}
		if len(chains[0]) > 1 {
			ch.IssuerCert = chains[0][1]
		}
		return ch
	}
	ch.TrustError = trustText(err)

	// Follow issuers among the served certificates from the leaf, each
	// certificate at most once: a loop ends the walk.
	used := make([]bool, len(served))
	used[0] = true
	path := []*x509.Certificate{leaf}
	cur := leaf
	for !selfSigned(cur) {
		next := -1
		for i, c := range served {
			if i != 0 && issued(c, cur) {
				if used[i] {
					ch.Loop = true
					continue
				}
				next = i
				break
			}
		}
		if next < 0 {
			break
		}
		used[next] = true
		cur = served[next]
		path = append(path, cur)
	}
	for _, c := range path {
		ch.Path = append(ch.Path, label(c))
	}
	if len(path) > 1 {
		ch.IssuerCert = path[1]
	}
	// The walk stopped at cur. The served chain is complete when cur is
	// a root, a CA certificate (its issuer is a root the client must
	// have: a matter of trust, not completeness), or issued by one of the
	// roots.
	ch.Complete = selfSigned(cur) || cur.IsCA
	if !ch.Complete {
		if _, err := cur.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: at, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err == nil {
			ch.Complete = true
		}
	}
	return ch
}

// label names a certificate in a path: its subject, or (for leaves with an
// empty subject, as Let's Encrypt and Pebble issue them) its first name.
func label(c *x509.Certificate) string {
	if s := c.Subject.String(); s != "" {
		return s
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return "serial " + hex.EncodeToString(c.SerialNumber.Bytes())
}

// trustText says why verification failed, in words.
func trustText(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		if ua.Cert != nil && selfSigned(ua.Cert) {
			return "self-signed certificate (" + ua.Cert.Subject.String() + ") not among the trusted roots"
		}
		return "no path to a trusted root: " + err.Error()
	}
	var ci x509.CertificateInvalidError
	if errors.As(err, &ci) {
		return "invalid certificate on the path: " + err.Error()
	}
	return err.Error()
}

// human is a byte count for texts.
func human(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// names lists a certificate's DNS names and IPs for a detail.
func certNames(f reports.CertFacts) string {
	all := append(append([]string{}, f.DNSNames...), f.IPs...)
	if len(all) == 0 {
		return "no names (subject " + f.Subject + ")"
	}
	if len(all) > 8 {
		return strings.Join(all[:8], ", ") + fmt.Sprintf(" and %d more", len(all)-8)
	}
	return strings.Join(all, ", ")
}
