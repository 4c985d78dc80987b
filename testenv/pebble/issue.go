package pebble

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-acme/lego/v5/acme"
	"github.com/go-acme/lego/v5/acme/api"
)

// Issued is a certificate Pebble issued, with its key.
type Issued struct {
	// Chain is the leaf, then the intermediate(s), as Pebble delivered them.
	Chain []*x509.Certificate
	Key   crypto.Signer
	// PEM is the chain as Pebble delivered it.
	PEM []byte
}

// Leaf is the issued certificate.
func (i *Issued) Leaf() *x509.Certificate { return i.Chain[0] }

// TLS is the certificate as a server serves it: the leaf and the
// intermediates.
func (i *Issued) TLS() tls.Certificate {
	tc := tls.Certificate{PrivateKey: i.Key, Leaf: i.Chain[0]}
	for _, c := range i.Chain {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return tc
}

// Presenter makes the HTTP-01 key authorization for token answerable at
// every name's address and returns how to withdraw it.
type Presenter func(token, keyAuth string) (withdraw func(), err error)

// poll bounds the polls of one challenge or order (50 ms doubling to 1 s).
const (
	maxPolls  = 100
	firstPoll = 50 * time.Millisecond
	maxPoll   = time.Second
)

// Issue orders one certificate for names with a fresh account, answering
// every HTTP-01 challenge through present, and returns the chain Pebble
// issued. Pebble's VA really validates: the names must resolve (through
// Config.DNSServer) to where present makes the token answerable.
func (p *Pebble) Issue(ctx context.Context, names []string, present Presenter) (*Issued, error) {
	if len(names) == 0 {
		return nil, errors.New("pebble issue: no names")
	}
	hc, err := p.client()
	if err != nil {
		return nil, fmt.Errorf("pebble issue: %w", err)
	}
	hc.Timeout = 10 * time.Second
	acctKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pebble issue: %w", err)
	}
	core, err := api.New(hc, "acmediag-testenv", p.DirectoryURL(), "", acctKey)
	if err != nil {
		return nil, fmt.Errorf("pebble issue: directory: %w", err)
	}
	if _, err := core.Accounts.New(ctx, acme.Account{TermsOfServiceAgreed: true}); err != nil {
		return nil, fmt.Errorf("pebble issue: account: %w", err)
	}
	ord, err := core.Orders.New(ctx, names, nil)
	if err != nil {
		return nil, fmt.Errorf("pebble issue %v: order: %w", names, err)
	}
	for _, az := range ord.Authorizations {
		if err := p.authorize(ctx, core, az, present); err != nil {
			return nil, fmt.Errorf("pebble issue %v: %w", names, err)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("pebble issue: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: names}, key)
	if err != nil {
		return nil, fmt.Errorf("pebble issue: CSR: %w", err)
	}
	done, err := core.Orders.UpdateForCSR(ctx, ord.Finalize, csr)
	if err != nil {
		return nil, fmt.Errorf("pebble issue %v: finalize: %w", names, err)
	}
	for i, wait := 0, firstPoll; done.Status != acme.StatusValid; i, wait = i+1, min(wait*2, maxPoll) {
		if done.Status == acme.StatusInvalid || i == maxPolls {
			return nil, fmt.Errorf("pebble issue %v: order %s after finalize", names, done.Status)
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("pebble issue %v: %w", names, err)
		}
		if done, err = core.Orders.Get(ctx, ord.Location); err != nil {
			return nil, fmt.Errorf("pebble issue %v: order: %w", names, err)
		}
	}
	raw, err := core.Certificates.Get(ctx, done.Certificate, true)
	if err != nil {
		return nil, fmt.Errorf("pebble issue %v: download: %w", names, err)
	}
	is := &Issued{Key: key, PEM: raw.Cert}
	for rest := raw.Cert; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pebble issue %v: %w", names, err)
		}
		is.Chain = append(is.Chain, c)
	}
	if len(is.Chain) == 0 {
		return nil, fmt.Errorf("pebble issue %v: no certificate in the download", names)
	}
	return is, nil
}

// authorize answers one authorization's HTTP-01 challenge and waits until
// it is valid.
func (p *Pebble) authorize(ctx context.Context, core *api.Core, azURL string, present Presenter) error {
	az, err := core.Authorizations.Get(ctx, azURL)
	if err != nil {
		return fmt.Errorf("authorization: %w", err)
	}
	if az.Status == acme.StatusValid { // reused (Pebble does now and then)
		return nil
	}
	var chal acme.Challenge
	for _, c := range az.Challenges {
		if c.Type == "http-01" {
			chal = c
		}
	}
	if chal.URL == "" {
		return fmt.Errorf("authorization for %s offers no http-01 challenge", az.Identifier.Value)
	}
	keyAuth, err := core.GetKeyAuthorization(chal.Token)
	if err != nil {
		return err
	}
	withdraw, err := present(chal.Token, keyAuth)
	if err != nil {
		return fmt.Errorf("present %s: %w", az.Identifier.Value, err)
	}
	defer withdraw()
	if _, err := core.Challenges.New(ctx, chal.URL); err != nil {
		return fmt.Errorf("challenge %s: %w", az.Identifier.Value, err)
	}
	for i, wait := 0, firstPoll; i < maxPolls; i, wait = i+1, min(wait*2, maxPoll) {
		c, err := core.Challenges.Get(ctx, chal.URL)
		if err != nil {
			return fmt.Errorf("challenge %s: %w", az.Identifier.Value, err)
		}
		switch c.Status {
		case acme.StatusValid:
			return nil
		case acme.StatusInvalid:
			detail := ""
			if c.Error != nil {
				detail = c.Error.Error()
			}
			return fmt.Errorf("challenge %s invalid: %s", az.Identifier.Value, detail)
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	return fmt.Errorf("challenge %s still not done after %d polls", az.Identifier.Value, maxPolls)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SetRenewalInfo makes Pebble answer renewalInfo requests for cert with
// ariResponse, verbatim, from now on (its management endpoint
// POST /set-renewal-info/): a window in the past, an early one, or
// anything malformed.
func (p *Pebble) SetRenewalInfo(ctx context.Context, cert *x509.Certificate, ariResponse string) error {
	hc, err := p.client()
	if err != nil {
		return fmt.Errorf("pebble set renewal info: %w", err)
	}
	body, err := json.Marshal(struct {
		Certificate string
		ARIResponse string
	}{string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})), ariResponse})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.MgmtURL()+"/set-renewal-info/", bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("pebble set renewal info: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("pebble set renewal info: status %d: %s", resp.StatusCode, b)
	}
	return nil
}

// RenewalWindow is an RFC 9773 renewalInfo body for SetRenewalInfo.
func RenewalWindow(start, end time.Time, explanationURL string) string {
	type window struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	}
	b, _ := json.Marshal(struct {
		SuggestedWindow window `json:"suggestedWindow"`
		ExplanationURL  string `json:"explanationURL,omitempty"`
	}{window{start.UTC(), end.UTC()}, explanationURL})
	return string(b)
}
