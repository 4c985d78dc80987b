package reports

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// CertFacts are the facts of one served certificate, plain data that can be
// stored, sent between daemons and compared.
type CertFacts struct {
	Subject    string    `json:"subject"`
	Issuer     string    `json:"issuer"`
	Serial     string    `json:"serial"` // hex, as browsers and crt.sh show it
	NotBefore  time.Time `json:"not_before"`
	NotAfter   time.Time `json:"not_after"`
	DNSNames   []string  `json:"dns_names,omitempty"`
	IPs        []string  `json:"ips,omitempty"`
	KeyType    string    `json:"key_type"` // "ECDSA P-256", "RSA 2048", "Ed25519"
	SHA256     string    `json:"sha256"`   // fingerprint of the DER
	MustStaple bool      `json:"must_staple,omitempty"`
	IsCA       bool      `json:"is_ca,omitempty"`
	SelfSigned bool      `json:"self_signed,omitempty"`
	AKI        string    `json:"aki,omitempty"` // authority key identifier, hex
}

// ServedCert is one leaf as seen at one address from one vantage.
type ServedCert struct {
	Vantage    string     `json:"vantage,omitempty"`
	Addr       netip.Addr `json:"addr"`
	Port       int        `json:"port,omitempty"`
	Leaf       CertFacts  `json:"leaf"`
	CoversName bool       `json:"covers_name"`
}

// TLSFacts are what one tls run saw of a name from one vantage: each
// address's leaf, and the CA's renewal window (ARI) for the newest leaf
// when the CA was asked.
type TLSFacts struct {
	Served []ServedCert `json:"served"`
	// ARI is the CA's window for the certificate of serial ARISerial.
	ARI       *ARIWindow `json:"ari,omitempty"`
	ARISerial string     `json:"ari_serial,omitempty"`
}

// Newest is the most recently issued leaf served that covers the name: the
// certificate a renewal replaces.
func (t *TLSFacts) Newest() (CertFacts, bool) {
	var best CertFacts
	found := false
	if t == nil {
		return best, false
	}
	for _, s := range t.Served {
		if s.CoversName && (!found || s.Leaf.NotBefore.After(best.NotBefore)) {
			best, found = s.Leaf, true
		}
	}
	return best, found
}

// RenewalStatus is the renewal rule's reading of one name: the certificate
// served now, its window, and whether the challenge path its renewal will
// use passes now.
type RenewalStatus struct {
	Certificate  CertFacts      `json:"certificate"`
	Window       *RenewalWindow `json:"window,omitempty"`
	PathFailing  bool           `json:"path_failing"`
	FailingCodes []Code         `json:"failing_codes,omitempty"`
}

// Summary is the one line a person reads first about a name's renewal:
// "expires in 21 d; the renewal window opens in 3 d (ARI); the challenge
// path fails now (http01.connect_timeout) → AT RISK".
func (rs *RenewalStatus) Summary(now time.Time) string {
	var b strings.Builder
	c := rs.Certificate
	b.WriteString("certificate")
	if c.Serial != "" {
		b.WriteString(" " + c.Serial)
	}
	if now.Before(c.NotAfter) {
		fmt.Fprintf(&b, " expires in %s", human(c.NotAfter.Sub(now)))
	} else {
		fmt.Fprintf(&b, " EXPIRED %s ago", human(now.Sub(c.NotAfter)))
	}
	w := rs.Window
	if w != nil {
		switch {
		case now.Before(w.Start):
			fmt.Fprintf(&b, "; the renewal window opens in %s (%s)", human(w.Start.Sub(now)), sourceText(w.Source))
		case now.Before(w.Deadline):
			fmt.Fprintf(&b, "; the renewal window (%s) is open, deadline in %s", sourceText(w.Source), human(w.Deadline.Sub(now)))
		default:
			fmt.Fprintf(&b, "; the renewal deadline (%s) passed %s ago", sourceText(w.Source), human(now.Sub(w.Deadline)))
		}
	}
	if rs.PathFailing {
		b.WriteString("; the challenge path fails now" + codesText(rs.FailingCodes))
	} else {
		b.WriteString("; the challenge path passes now")
	}
	switch {
	case w != nil && !now.Before(w.Deadline):
		b.WriteString(" → OVERDUE")
	case w != nil && rs.PathFailing && !w.Start.After(now.Add(w.Horizon)):
		b.WriteString(" → AT RISK")
	}
	return b.String()
}
