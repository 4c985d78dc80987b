package http01

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
)

var (
	oidACMEIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}
	oidSAN            = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// TLSALPN01 validates req over TLS-ALPN-01 (RFC 8737) as Boulder does: the
// first AAAA, then on any error the first A, on HTTPSPort, offering only
// acme-tls/1 with SNI = name and TLS ≥ 1.2. Without a KeyAuth it judges
// reachability: the handshake must succeed; a missing acme-tls/1 is a
// Warning (nothing may be provisioned yet) and the certificate is not judged.
func (v *Validator) TLSALPN01(ctx context.Context, req Request) (res Result) {
	start := time.Now()
	ctx, cancel := v.deadlineCtx(ctx)
	defer cancel()
	defer func() { res.Duration = time.Since(start) }()
	v6, v4 := v.usable(req.V6), v.usable(req.V4)
	resolved := append(append([]netip.Addr{}, v6...), v4...)
	port := v.httpsPort()
	hop := func(a netip.Addr) Hop {
		return Hop{URL: net.JoinHostPort(req.Name, strconv.Itoa(port)), Hostname: req.Name, Port: port, Resolved: resolved, Used: a}
	}
	if len(resolved) == 0 {
		res.Problem = &reports.Problem{Type: reports.ProblemDNS, Detail: noAddressText(req.Name)}
		res.Findings = []reports.Finding{reports.New(reports.CodeDNSNoAddress, req.Name,
			fmt.Sprintf("no usable address for %s: AAAA %v, A %v", req.Name, req.V6, req.V4)).WithProblem(res.Problem.Type, res.Problem.Detail)}
		return res
	}
	var cs *tls.ConnectionState
	var err error
	var h Hop
	if len(v6) > 0 {
		h = hop(v6[0])
		cs, err = v.handshake(ctx, &h, req.Name)
		res.Trace = append(res.Trace, h)
		if err != nil {
			p := detailed(err, true)
			sev, note := reports.Warning, "Let's Encrypt falls back to the first IPv4 address for TLS-ALPN-01 after any IPv6 error"
			if len(v4) == 0 {
				sev, note = reports.Error, "there is no IPv4 address to fall back to"
				res.Problem = &reports.Problem{Type: reports.ProblemMalformed, Detail: fmt.Sprintf("Unable to contact %q at %q, no IPv4 addresses to try as fallback", req.Name, v6[0])}
			}
			res.Findings = append(res.Findings, reports.New(reports.CodeHTTP01IPv6Unreachable, req.Name,
				fmt.Sprintf("%s (IPv6) TLS to %s: %s; %s", h.Used, h.URL, p.text, note)).With("address", h.Used.String()).WithSeverity(sev))
			if res.Problem != nil {
				res.Findings[len(res.Findings)-1] = res.Findings[len(res.Findings)-1].WithProblem(res.Problem.Type, res.Problem.Detail)
				return res
			}
		}
	}
	if cs == nil {
		h = hop(v4[0])
		cs, err = v.handshake(ctx, &h, req.Name)
		res.Trace = append(res.Trace, h)
	}
	if err != nil {
		p := detailed(err, true)
		code := reports.CodeTLSALPNUnreachable
		what := "the TLS connection failed"
		if strings.Contains(p.text, "no application protocol") {
			code, what = reports.CodeTLSALPNNoALPN, "the server refused acme-tls/1 with a no_application_protocol alert"
		}
		res.Problem = &reports.Problem{Type: p.typ, Detail: fmt.Sprintf("%s: %s", h.Used, p.text)}
		res.Findings = append(res.Findings, reports.New(code, req.Name,
			fmt.Sprintf("%s (%s) TLS to %s: %s; %s", h.Used, family(h.Used), h.URL, h.Err, what)).
			With("address", h.Used.String()).WithProblem(res.Problem.Type, res.Problem.Detail))
		return res
	}
	where := fmt.Sprintf("%s (%s) TLS to %s, SNI %s", h.Used, family(h.Used), h.URL, req.Name)
	if cs.NegotiatedProtocol != acmeTLS1 {
		prob := &reports.Problem{Type: reports.ProblemUnauthorized, Detail: fmt.Sprintf("Cannot negotiate ALPN protocol %q for tls-alpn-01 challenge", acmeTLS1)}
		f := reports.New(reports.CodeTLSALPNNoALPN, req.Name, fmt.Sprintf("%s: negotiated ALPN %q, not %q; TLS is terminated by something that does not route acme-tls/1 to the ACME responder", where, cs.NegotiatedProtocol, acmeTLS1)).
			With("address", h.Used.String()).WithProblem(prob.Type, prob.Detail)
		if req.KeyAuth == "" {
			res.OK = true
			res.Findings = append(res.Findings, f.WithSeverity(reports.Warning))
			return res
		}
		res.Problem = prob
		res.Findings = append(res.Findings, f)
		return res
	}
	if req.KeyAuth == "" {
		res.OK = true
		return res
	}
	if len(cs.PeerCertificates) == 0 {
		res.Problem = &reports.Problem{Type: reports.ProblemUnauthorized, Detail: "No certs presented for tls-alpn-01 challenge"}
		res.Findings = append(res.Findings, reports.New(reports.CodeTLSALPNWrongCertificate, req.Name, where+": no certificate presented").WithProblem(res.Problem.Type, res.Problem.Detail))
		return res
	}
	if reason, check := checkChallengeCert(cs.PeerCertificates[0], req.Name, req.KeyAuth); reason != "" {
		hostPort := net.JoinHostPort(h.Used.String(), strconv.Itoa(port))
		res.Problem = &reports.Problem{Type: reports.ProblemUnauthorized, Detail: fmt.Sprintf("Incorrect validation certificate for tls-alpn-01 challenge. Requested %s from %s. %s", req.Name, hostPort, reason)}
		res.Findings = append(res.Findings, reports.New(reports.CodeTLSALPNWrongCertificate, req.Name,
			fmt.Sprintf("%s: the %s check failed: %s (certificate names %q)", where, check, reason, certAltNames(cs.PeerCertificates[0]))).
			With("address", h.Used.String()).With("check", check).WithProblem(res.Problem.Type, res.Problem.Detail))
		return res
	}
	res.OK = true
	return res
}

// handshake dials addr on HTTPSPort and completes a TLS handshake offering
// only acme-tls/1; the dial timeout covers the handshake, as in Boulder.
func (v *Validator) handshake(ctx context.Context, h *Hop, name string) (*tls.ConnectionState, error) {
	start := time.Now()
	defer func() { h.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, v.dialTimeout())
	defer cancel()
	nd := &net.Dialer{}
	if v.LocalAddr.IsValid() && v.LocalAddr.Is4() == h.Used.Is4() {
		nd.LocalAddr = &net.TCPAddr{IP: v.LocalAddr.AsSlice()}
	}
	d := &tls.Dialer{NetDialer: nd, Config: &tls.Config{
		MinVersion:         tls.VersionTLS12,
		NextProtos:         []string{acmeTLS1},
		ServerName:         name,
		InsecureSkipVerify: true, //nolint:gosec // the challenge certificate is self-signed by design
	}}
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(h.Used, uint16(h.Port)).String())
	if err != nil {
		h.Err = err.Error()
		return nil, err
	}
	defer conn.Close()
	tc, ok := conn.(*tls.Conn)
	if !ok {
		return nil, errors.New("tls dialer returned a non-TLS connection")
	}
	cs := tc.ConnectionState()
	h.TLS = tls.VersionName(cs.Version)
	return &cs, nil
}

// checkChallengeCert applies Boulder's certificate checks in Boulder's order
// and returns its reason text and which check failed ("" when it passes).
func checkChallengeCert(cert *x509.Certificate, name, keyAuth string) (reason, check string) {
	if err := cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature); err != nil || !bytes.Equal(cert.RawSubject, cert.RawIssuer) {
		return "Received certificate which is not self-signed.", "self-signed"
	}
	seen := map[string]bool{}
	for _, e := range cert.Extensions {
		if seen[e.Id.String()] {
			return fmt.Sprintf("Received certificate with unexpected extensions: %q", fmt.Sprintf("Extension OID %s seen twice", e.Id)), "extensions"
		}
		seen[e.Id.String()] = true
	}
	for _, req := range []asn1.ObjectIdentifier{oidACMEIdentifier, oidSAN} {
		if !seen[req.String()] {
			return fmt.Sprintf("Received certificate with unexpected extensions: %q", fmt.Sprintf("Required extension OID %s is not present", req)), "extensions"
		}
	}
	if err := checkSAN(cert, name); err != nil {
		return fmt.Sprintf("Received certificate with unexpected identifiers (%q): %q", strings.Join(certAltNames(cert), ", "), err.Error()), "SAN"
	}
	h := sha256.Sum256([]byte(keyAuth))
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidACMEIdentifier) {
			continue
		}
		if !e.Critical {
			return "Received certificate with acmeValidationV1 extension that is not Critical.", "acmeIdentifier critical"
		}
		var val []byte
		rest, err := asn1.Unmarshal(e.Value, &val)
		if err != nil || len(rest) > 0 || len(val) != len(h) {
			return "Received certificate with malformed acmeValidationV1 extension value.", "acmeIdentifier value"
		}
		if subtle.ConstantTimeCompare(h[:], val) != 1 {
			return fmt.Sprintf("Received certificate with acmeValidationV1 extension value %s but expected %s.", hex.EncodeToString(val), hex.EncodeToString(h[:])), "acmeIdentifier value"
		}
		return "", ""
	}
	return "Received certificate with no acmeValidationV1 extension.", "acmeIdentifier"
}

// checkSAN is Boulder's checkExpectedSAN for a DNS identifier: exactly one
// dNSName, equal to name, no IPs, and the SAN extension bytes exactly that.
func checkSAN(cert *x509.Certificate, name string) error {
	if len(cert.DNSNames) != 1 || len(cert.IPAddresses) != 0 {
		return errors.New("wrong number of identifiers")
	}
	if !strings.EqualFold(cert.DNSNames[0], name) {
		return errors.New("identifier does not match expected identifier")
	}
	want, err := asn1.Marshal([]asn1.RawValue{{Tag: 2, Class: 2, Bytes: []byte(name)}})
	if err != nil {
		return fmt.Errorf("composing SAN extension: %w", err)
	}
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSAN) && !bytes.Equal(e.Value, want) {
			return errors.New("SAN extension does not match expected bytes")
		}
	}
	return nil
}

// certAltNames is Boulder's list of a certificate's names for its problem
// text: the CN, DNS names, e-mail addresses, IPs and URIs, lower-cased,
// de-duplicated and sorted (core.UniqueLowerNames).
func certAltNames(c *x509.Certificate) []string {
	var names []string
	if c.Subject.CommonName != "" {
		names = append(names, c.Subject.CommonName)
	}
	names = append(names, c.DNSNames...)
	names = append(names, c.EmailAddresses...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	for _, u := range c.URIs {
		names = append(names, u.String())
	}
	for i, n := range names {
		names[i] = strings.ToLower(n)
	}
	slices.Sort(names)
	return slices.Compact(names)
}
