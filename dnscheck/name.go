package dnscheck

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
	"golang.org/x/text/unicode/norm"

	"github.com/acmediag/acmediag/reports"
)

// The identifier policy below follows Boulder's policy/pa.go (ValidDomain,
// validNonWildcardDomain) and the wording of its errors, which is what a user
// finds in cert-manager's Order status after "Cannot issue for ...". The
// limits are Boulder's: they are hard-coded into its messages too.
const (
	nameMaxLabels      = 10
	nameMaxLabelLength = 63
	nameMaxLength      = 253

	// nameMaxInput bounds the work done on hostile input: nothing longer
	// can become a name of at most 253 bytes, even as a Unicode form.
	nameMaxInput = 4 * nameMaxLength
)

// Boulder's policy texts (policy/pa.go). Kept verbatim so a user can match
// them against what the CA said.
const (
	reasonEmpty             = "Identifier value (name) is empty"
	reasonInvalidCharacter  = "Domain name contains an invalid character"
	reasonTooLong           = "Domain name is longer than 253 bytes"
	reasonIPAddress         = "Identifier type is DNS but value is an IP address"
	reasonEndsInDot         = "Domain name ends in a dot"
	reasonTooManyLabels     = "Domain name has more than 10 labels (parts)"
	reasonTooFewLabels      = "Domain name needs at least one dot"
	reasonLabelTooShort     = "Domain name can not have two dots in a row"
	reasonLabelTooLong      = "Domain has a label (component between dots) longer than 63 bytes"
	reasonMalformedIDN      = "Domain name contains malformed punycode"
	reasonInvalidRLDH       = "Domain name contains an invalid label in a reserved format (R-LDH: '??--')"
	reasonNonPublic         = "Domain name does not end with a valid public suffix (TLD)"
	reasonICANNTLD          = "Domain name is an ICANN TLD"
	reasonTooManyWildcards  = "Domain name has more than one wildcard"
	reasonMalformedWildcard = "Domain name contains an invalid wildcard. A wildcard is only permitted before the first dot in a domain name"
	reasonICANNTLDWildcard  = "Domain name is a wildcard for an ICANN TLD"
)

// Name is a DNS identifier as Let's Encrypt would accept it.
type Name struct {
	// ASCII is the canonical form: lower-case A-labels, no trailing dot,
	// "*." kept for a wildcard. This is what an ACME order must carry.
	ASCII string
	// Wildcard is true for "*.base".
	Wildcard bool
	// Base is ASCII without the "*." of a wildcard: the name DNS is asked about.
	Base string
	// Unicode is ASCII with its A-labels shown as U-labels, for people.
	Unicode string
}

// String returns the canonical ASCII form.
func (n Name) String() string { return n.ASCII }

// NameError says why Let's Encrypt would refuse an identifier.
type NameError struct {
	// Input is the identifier as it was given.
	Input string
	// Reason is Boulder's own text, e.g. "Domain name does not end with a
	// valid public suffix (TLD)".
	Reason string
	// Hint is acmediag's advice beyond Boulder's text ("" when there is none),
	// e.g. the A-label form of a Unicode name.
	Hint string
	// Type is the ACME problem type Boulder attaches to this reason inside
	// the order error (malformed or rejectedIdentifier). The order error
	// itself is always rejectedIdentifier for a single identifier.
	Type string
}

// Error gives the input, Boulder's reason and the hint.
func (e *NameError) Error() string {
	if e.Hint != "" {
		return fmt.Sprintf("identifier %q: %s (%s)", e.Input, e.Reason, e.Hint)
	}
	return fmt.Sprintf("identifier %q: %s", e.Input, e.Reason)
}

// Finding is the name.invalid finding for this error. Its problem is the one
// the new-order request would get back: Boulder wraps a single identifier's
// error as rejectedIdentifier "Cannot issue for %q: <reason>" (policy/pa.go
// combineSubErrors) and the WFE prefixes "Error creating new order :: ".
func (e *NameError) Finding() reports.Finding {
	detail := fmt.Sprintf("Let's Encrypt's identifier policy refuses %q: %s.", e.Input, e.Reason)
	if e.Hint != "" {
		detail += " " + e.Hint
	}
	typ := e.Type
	if typ == "" {
		typ = reports.ProblemMalformed
	}
	return reports.New(reports.CodeNameInvalid, e.Input, detail).
		WithProblem(reports.ProblemRejectedIdentifier,
			fmt.Sprintf("Error creating new order :: Cannot issue for %q: %s", e.Input, e.Reason)).
		With("reason", e.Reason).
		With("subproblem_type", typ)
}

// NormalizeName checks a requested identifier as Let's Encrypt's policy would and returns its
// canonical form: lower-case A-labels, no trailing dot, "*." kept for a wildcard. Unicode input
// is converted to A-labels (users type IDNs) but the finding/err says LE needs punycode.
//
// The error, when not nil, is a *NameError. For Unicode input that converts
// to an acceptable name, NormalizeName returns both the converted Name and a
// *NameError: Let's Encrypt refuses the Unicode form itself, but the A-label
// form can still be checked. Otherwise the Name is zero when err is not nil.
//
// Upper case is folded first, as Boulder's WFE lower-cases identifiers before
// its policy sees them. Boulder's blocklists (high-risk names) are not
// public and are not checked.
func NormalizeName(name string) (Name, error) {
	in := name
	fail := func(reason, hint string) (Name, error) {
		return Name{}, &NameError{Input: in, Reason: reason, Hint: hint, Type: reasonProblemType(reason)}
	}
	if len(name) > nameMaxInput {
		// Boulder would report the first non-LDH byte first; a name this long
		// is refused either way, and the length is the useful fact.
		for i := 0; i < len(name); i++ {
			if !isDNSByte(name[i]) {
				return fail(reasonInvalidCharacter, "")
			}
		}
		return fail(reasonTooLong, "")
	}
	if !isASCII(name) {
		// LE only takes A-labels. Say what the user should have sent when the
		// Unicode converts, and keep checking that form.
		if !utf8.ValidString(name) {
			return fail(reasonInvalidCharacter, "the name is not valid UTF-8")
		}
		lower := strings.ToLower(name)
		wild := strings.HasPrefix(lower, "*.")
		ulabels := strings.TrimPrefix(lower, "*.")
		ascii, err := idna.Lookup.ToASCII(ulabels)
		if err != nil {
			return fail(reasonInvalidCharacter, fmt.Sprintf("Let's Encrypt accepts only ASCII (A-label) names, and this Unicode name does not convert to one: %v", err))
		}
		if wild {
			ascii = "*." + ascii
		}
		n, nerr := normalizeASCII(ascii)
		if nerr != nil {
			return fail(reasonInvalidCharacter, fmt.Sprintf("Let's Encrypt accepts only ASCII (A-label) names; the A-label form %q would be refused too: %s", ascii, nerr.Reason))
		}
		n.Unicode = unicodeForm(n.ASCII)
		return n, &NameError{Input: in, Reason: reasonInvalidCharacter, Type: reports.ProblemMalformed,
			Hint: fmt.Sprintf("Let's Encrypt accepts only ASCII (A-label) names: request %q instead.", n.ASCII)}
	}

	n, nerr := normalizeASCII(strings.ToLower(name))
	if nerr != nil {
		nerr.Input = in
		return Name{}, nerr
	}
	return n, nil
}

// normalizeASCII applies Boulder's ValidDomain to a lower-case ASCII name.
func normalizeASCII(domain string) (Name, *NameError) {
	fail := func(reason, hint string) (Name, *NameError) {
		return Name{}, &NameError{Input: domain, Reason: reason, Hint: hint, Type: reasonProblemType(reason)}
	}
	stars := strings.Count(domain, "*")
	if stars == 0 {
		if reason, hint := validNonWildcard(domain); reason != "" {
			return fail(reason, hint)
		}
		return Name{ASCII: domain, Base: domain, Unicode: unicodeForm(domain)}, nil
	}
	if stars > 1 {
		return fail(reasonTooManyWildcards, "")
	}
	if !strings.HasPrefix(domain, "*.") {
		return fail(reasonMalformedWildcard, "")
	}
	base := strings.TrimPrefix(domain, "*.")
	// Boulder looks at the suffix before anything else for a wildcard.
	suffix, ok := icannSuffix(base)
	if !ok {
		return fail(reasonNonPublic, nonPublicHint(base))
	}
	if base == suffix {
		return fail(reasonICANNTLDWildcard, "")
	}
	if reason, hint := validNonWildcard(base); reason != "" {
		return fail(reason, hint)
	}
	return Name{ASCII: domain, Wildcard: true, Base: base, Unicode: "*." + unicodeForm(base)}, nil
}

// validNonWildcard is Boulder's validNonWildcardDomain, check for check and in
// the same order, so the first reason reported is the one LE would give. It
// returns "" when the name is acceptable.
func validNonWildcard(domain string) (reason, hint string) {
	if domain == "" {
		return reasonEmpty, ""
	}
	for i := 0; i < len(domain); i++ {
		if !isDNSByte(domain[i]) {
			if domain[i] == '_' {
				return reasonInvalidCharacter, "underscores are not allowed in certificate names"
			}
			if _, err := netip.ParseAddr(strings.Trim(domain, "[]")); err == nil {
				return reasonInvalidCharacter, "this is an IPv6 address, not a DNS name"
			}
			return reasonInvalidCharacter, ""
		}
	}
	if len(domain) > nameMaxLength {
		return reasonTooLong, ""
	}
	if _, err := netip.ParseAddr(domain); err == nil {
		return reasonIPAddress, "Let's Encrypt issues for an IP address only as an IP identifier, never as a DNS name"
	}
	if strings.HasSuffix(domain, ".") {
		return reasonEndsInDot, "drop the trailing dot"
	}
	labels := strings.Split(domain, ".")
	if len(labels) > nameMaxLabels {
		return reasonTooManyLabels, ""
	}
	if len(labels) < 2 {
		return reasonTooFewLabels, ""
	}
	for _, label := range labels {
		if label == "" {
			return reasonLabelTooShort, ""
		}
		if len(label) > nameMaxLabelLength {
			return reasonLabelTooLong, ""
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return reasonInvalidCharacter, ""
			}
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return reasonInvalidCharacter, "a label may not start or end with a hyphen"
		}
		// A reserved LDH label ("??--") must be a valid XN-label (RFC 5890
		// 2.3.1): Punycode that decodes, to a string in Unicode NFC.
		if len(label) >= 4 && label[2:4] == "--" {
			if label[0:2] != "xn" {
				return reasonInvalidRLDH, ""
			}
			ulabel, err := idna.ToUnicode(label)
			if err != nil {
				return reasonMalformedIDN, fmt.Sprintf("label %q: %v", label, err)
			}
			if !norm.NFC.IsNormalString(ulabel) {
				return reasonMalformedIDN, fmt.Sprintf("label %q decodes to a string that is not in Unicode NFC", label)
			}
		}
	}
	suffix, ok := icannSuffix(domain)
	if !ok {
		return reasonNonPublic, nonPublicHint(domain)
	}
	if suffix == domain {
		return reasonICANNTLD, ""
	}
	return "", ""
}

// icannSuffix returns the public suffix of name under the ICANN section of
// the Public Suffix List, ignoring the private section as Boulder does
// (iana.ExtractSuffix, IgnorePrivate). ok is false when the name does not end
// in an ICANN suffix at all (.local, .internal, .lan, an unlisted TLD).
//
// golang.org/x/net/publicsuffix has no switch to ignore private rules, so a
// private suffix (github.io, blogspot.com) is peeled off a label at a time
// until an ICANN one answers. The embedded list is x/net's, which may be a few
// weeks apart from the one in Boulder's build.
func icannSuffix(name string) (string, bool) {
	d := name
	for range nameMaxLabels + 2 {
		suffix, icann := publicsuffix.PublicSuffix(d)
		if icann {
			return suffix, true
		}
		_, rest, found := strings.Cut(suffix, ".")
		if !found {
			return "", false
		}
		d = rest
	}
	return "", false
}

// nonPublicHint names the suffix a non-public name ends in, because the fix
// depends on it (.local/.internal/.lan names need a public domain, or an
// internal CA).
func nonPublicHint(name string) string {
	if strings.HasSuffix(name, ".") {
		return "drop the trailing dot"
	}
	i := strings.LastIndexByte(name, '.')
	tld := name[i+1:]
	return fmt.Sprintf(".%s is not a public top-level domain; Let's Encrypt only issues for names in the public DNS", tld)
}

// reasonProblemType is the problem type Boulder's policy error carries for a
// reason (policy/pa.go: errInvalidRLDH is rejectedIdentifier, the rest are
// malformed).
func reasonProblemType(reason string) string {
	if reason == reasonInvalidRLDH {
		return reports.ProblemRejectedIdentifier
	}
	return reports.ProblemMalformed
}

// isDNSByte is Boulder's isDNSCharacter: the bytes a DNS identifier may hold
// before it is split into labels.
func isDNSByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// unicodeForm renders A-labels as U-labels for display; a label that does
// not decode is shown as it is.
func unicodeForm(ascii string) string {
	if !strings.Contains(ascii, "xn--") {
		return ascii
	}
	u, err := idna.ToUnicode(ascii)
	if err != nil {
		return ascii
	}
	return u
}

// ChallengeFinding returns name.wildcard_needs_dns01 when n is a wildcard and
// challenge is set to anything but dns-01, else nil. Let's Encrypt offers only
// dns-01 for a wildcard (policy/pa.go ChallengeTypesFor, BR 3.2.2.4.19 and
// .20), so there is no ACME problem to quote: the authorization simply has no
// other challenge, and the client finds nothing to solve. An empty challenge
// means "not chosen yet" and yields nil.
func ChallengeFinding(n Name, challenge reports.Challenge) *reports.Finding {
	if !n.Wildcard || challenge == "" || challenge == "dns-01" {
		return nil
	}
	detail := fmt.Sprintf("%s is a wildcard name: Let's Encrypt offers only the dns-01 challenge for it, never %s. "+
		"The authorization will contain no %s challenge, so a solver for it has nothing to answer "+
		"(cert-manager reports \"no configured challenge solvers can be used for this challenge\").",
		n.ASCII, challenge, challenge)
	f := reports.New(reports.CodeNameWildcardNeedsDNS01, n.ASCII, detail).
		With("challenge", string(challenge)).
		With("offered", []string{"dns-01"})
	return &f
}
