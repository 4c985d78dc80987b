package dnscheck

import (
	"errors"
	"strings"
	"testing"

	"github.com/acmediag/acmediag/reports"
)

func TestNormalizeName(t *testing.T) {
	t.Parallel()
	// 253 bytes exactly: three 63-byte labels, one of 57, "com".
	max253 := strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 57) + ".com"
	if len(max253) != 253 {
		t.Fatalf("test setup: max253 is %d bytes", len(max253))
	}
	cases := []struct {
		desc       string
		in         string
		wantASCII  string // "" when the name is refused outright
		wantWild   bool
		wantBase   string
		wantUni    string
		wantReason string // "" when accepted
		wantHint   string // substring of the hint
		wantType   string // sub-problem type, when refused
	}{
		{desc: "plain name", in: "www.example.com", wantASCII: "www.example.com", wantBase: "www.example.com", wantUni: "www.example.com"},
		{desc: "upper case is folded as Boulder's WFE does", in: "WWW.Example.COM", wantASCII: "www.example.com", wantBase: "www.example.com", wantUni: "www.example.com"},
		{desc: "wildcard keeps its star, base drops it", in: "*.example.com", wantASCII: "*.example.com", wantWild: true, wantBase: "example.com", wantUni: "*.example.com"},
		{desc: "A-label passes and shows its U-label", in: "xn--bcher-kva.de", wantASCII: "xn--bcher-kva.de", wantBase: "xn--bcher-kva.de", wantUni: "bücher.de"},
		{desc: "IDN TLD", in: "xn--example--3bhk5a.xn--p1ai", wantASCII: "xn--example--3bhk5a.xn--p1ai", wantBase: "xn--example--3bhk5a.xn--p1ai", wantUni: "example-упр.рф"},
		{desc: "emoji A-label decodes and is NFC: Boulder accepts it", in: "xn--i-7iq.ws", wantASCII: "xn--i-7iq.ws", wantBase: "xn--i-7iq.ws", wantUni: "i❤.ws"},
		{desc: "xn--a decodes to U+0080, which Boulder's Punycode+NFC check accepts", in: "xn--a.com", wantASCII: "xn--a.com", wantBase: "xn--a.com", wantUni: "\u0080.com"},
		{desc: "name under a private PSL suffix is fine (Boulder ignores the private section)", in: "foo.github.io", wantASCII: "foo.github.io", wantBase: "foo.github.io", wantUni: "foo.github.io"},
		{desc: "a private PSL suffix itself is fine too", in: "github.io", wantASCII: "github.io", wantBase: "github.io", wantUni: "github.io"},
		{desc: "exactly 253 bytes", in: max253, wantASCII: max253, wantBase: max253, wantUni: max253},
		{desc: "exactly 10 labels", in: "a.b.c.d.e.f.g.h.i.com", wantASCII: "a.b.c.d.e.f.g.h.i.com", wantBase: "a.b.c.d.e.f.g.h.i.com", wantUni: "a.b.c.d.e.f.g.h.i.com"},
		{desc: "numeric labels below a real TLD", in: "8675309.com", wantASCII: "8675309.com", wantBase: "8675309.com", wantUni: "8675309.com"},

		{desc: "Unicode converts, but LE wants the A-label", in: "bücher.de", wantASCII: "xn--bcher-kva.de", wantBase: "xn--bcher-kva.de", wantUni: "bücher.de", wantReason: reasonInvalidCharacter, wantHint: `request "xn--bcher-kva.de"`, wantType: reports.ProblemMalformed},
		{desc: "Unicode wildcard converts", in: "*.Bücher.de", wantASCII: "*.xn--bcher-kva.de", wantWild: true, wantBase: "xn--bcher-kva.de", wantUni: "*.bücher.de", wantReason: reasonInvalidCharacter, wantHint: "xn--bcher-kva.de"},
		{desc: "Unicode under a non-public TLD is refused outright", in: "bücher.local", wantReason: reasonInvalidCharacter, wantHint: "would be refused too"},
		{desc: "invalid UTF-8", in: "b\xffcher.de", wantReason: reasonInvalidCharacter, wantHint: "UTF-8"},

		{desc: "empty", in: "", wantReason: reasonEmpty},
		{desc: "300-byte name", in: strings.Repeat("a.", 148) + "com", wantReason: reasonTooLong},
		{desc: "254 bytes", in: "e" + max253, wantReason: reasonTooLong},
		{desc: "hostile megabyte", in: strings.Repeat("a", 1<<20), wantReason: reasonTooLong},
		{desc: "hostile megabyte with a bad byte", in: strings.Repeat("a", 1<<20) + "!", wantReason: reasonInvalidCharacter},
		{desc: "label of 64 bytes", in: strings.Repeat("x", 64) + ".com", wantReason: reasonLabelTooLong},
		{desc: "11 labels", in: "a.b.c.d.e.f.g.h.i.j.com", wantReason: reasonTooManyLabels},
		{desc: "single label", in: "localhost", wantReason: reasonTooFewLabels},
		{desc: "double dot", in: "a..b.com", wantReason: reasonLabelTooShort},
		{desc: "leading dot", in: ".example.com", wantReason: reasonLabelTooShort},
		{desc: "trailing dot", in: "www.example.com.", wantReason: reasonEndsInDot, wantHint: "drop the trailing dot"},
		{desc: "underscore", in: "_acme-challenge.example.com", wantReason: reasonInvalidCharacter, wantHint: "underscores"},
		{desc: "space", in: "www example.com", wantReason: reasonInvalidCharacter},
		{desc: "leading hyphen", in: "-www.example.com", wantReason: reasonInvalidCharacter, wantHint: "hyphen"},
		{desc: "trailing hyphen", in: "www-.example.com", wantReason: reasonInvalidCharacter},
		{desc: "xn-- alone ends in a hyphen", in: "xn--.net", wantReason: reasonInvalidCharacter},
		{desc: "R-LDH label that is not xn--", in: "bq--abwhky3f6fxq.example.com", wantReason: reasonInvalidRLDH, wantType: reports.ProblemRejectedIdentifier},
		{desc: "three hyphens from the second byte", in: "h---test.example.org", wantReason: reasonInvalidRLDH},
		{desc: "malformed punycode", in: "www.xn--m.com", wantReason: reasonMalformedIDN},
		{desc: "punycode that overflows", in: "xn--zzzzzzzzzzzzzzzzzzzz.com", wantReason: reasonMalformedIDN},
		{desc: "punycode not in NFC", in: "xn--109-3veba6djs1bfxlfmx6c9g.xn--f1awi.xn--p1ai", wantReason: reasonMalformedIDN, wantHint: "NFC"},
		{desc: "IPv4 literal", in: "1.2.3.4", wantReason: reasonIPAddress, wantHint: "IP identifier"},
		{desc: "IPv6 literal", in: "::1", wantReason: reasonInvalidCharacter, wantHint: "IPv6 address"},
		{desc: "bracketed IPv6 literal", in: "[2001:db8::1]", wantReason: reasonInvalidCharacter, wantHint: "IPv6 address"},
		{desc: ".local", in: "foo.local", wantReason: reasonNonPublic, wantHint: ".local is not a public"},
		{desc: ".internal", in: "foo.internal", wantReason: reasonNonPublic},
		{desc: "all-numeric last label", in: "www.zombo.163", wantReason: reasonNonPublic},
		{desc: "an ICANN TLD", in: "co.uk", wantReason: reasonICANNTLD},
		{desc: "two wildcards", in: "*.*.com", wantReason: reasonTooManyWildcards},
		{desc: "wildcard not leftmost", in: "www.*.example.com", wantReason: reasonMalformedWildcard},
		{desc: "partial-label wildcard", in: "w*.example.com", wantReason: reasonMalformedWildcard},
		{desc: "bare star", in: "*", wantReason: reasonMalformedWildcard},
		{desc: "wildcard on a TLD", in: "*.com", wantReason: reasonICANNTLDWildcard},
		{desc: "wildcard on a multi-label public suffix", in: "*.co.uk", wantReason: reasonICANNTLDWildcard},
		{desc: "wildcard under a non-public TLD: the suffix is looked at first", in: "*.foo_bar.local", wantReason: reasonNonPublic},
		{desc: "wildcard with a bad base", in: "*.foo_bar.example.com", wantReason: reasonInvalidCharacter},
		{desc: "wildcard with a trailing dot: the suffix check comes first", in: "*.example.com.", wantReason: reasonNonPublic, wantHint: "trailing dot"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			n, err := NormalizeName(tc.in)
			if n.ASCII != tc.wantASCII || n.Wildcard != tc.wantWild || n.Base != tc.wantBase || n.Unicode != tc.wantUni {
				t.Errorf("NormalizeName(%.40q) = %+v, want ASCII %q wildcard %v base %q unicode %q", tc.in, n, tc.wantASCII, tc.wantWild, tc.wantBase, tc.wantUni)
			}
			if tc.wantReason == "" {
				if err != nil {
					t.Fatalf("NormalizeName(%.40q) error %v, want none", tc.in, err)
				}
				return
			}
			var ne *NameError
			if !errors.As(err, &ne) {
				t.Fatalf("NormalizeName(%.40q) error %v (%T), want a *NameError", tc.in, err, err)
			}
			if ne.Reason != tc.wantReason {
				t.Errorf("reason %q, want %q", ne.Reason, tc.wantReason)
			}
			if ne.Input != tc.in {
				t.Errorf("input %.40q, want the input as given", ne.Input)
			}
			if !strings.Contains(ne.Hint, tc.wantHint) {
				t.Errorf("hint %q, want it to contain %q", ne.Hint, tc.wantHint)
			}
			if tc.wantType != "" && ne.Type != tc.wantType {
				t.Errorf("type %q, want %q", ne.Type, tc.wantType)
			}
			if !strings.Contains(err.Error(), tc.wantReason) {
				t.Errorf("Error() = %q, want it to contain the reason", err.Error())
			}
		})
	}
}

func TestNameErrorFinding(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc        string
		in          string
		wantProblem string
		wantSubType string
		wantDetail  string
	}{
		{
			desc:        "non-public suffix",
			in:          "foo.local",
			wantProblem: `Error creating new order :: Cannot issue for "foo.local": Domain name does not end with a valid public suffix (TLD)`,
			wantSubType: reports.ProblemMalformed,
			wantDetail:  ".local is not a public top-level domain",
		},
		{
			desc:        "R-LDH is rejectedIdentifier inside Boulder too",
			in:          "ab--cd.example.com",
			wantProblem: `Error creating new order :: Cannot issue for "ab--cd.example.com": Domain name contains an invalid label in a reserved format (R-LDH: '??--')`,
			wantSubType: reports.ProblemRejectedIdentifier,
			wantDetail:  "R-LDH",
		},
		{
			desc:        "Unicode names the A-label to use",
			in:          "bücher.de",
			wantProblem: `Error creating new order :: Cannot issue for "bücher.de": Domain name contains an invalid character`,
			wantSubType: reports.ProblemMalformed,
			wantDetail:  `request "xn--bcher-kva.de" instead`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, err := NormalizeName(tc.in)
			var ne *NameError
			if !errors.As(err, &ne) {
				t.Fatalf("NormalizeName(%q) error %v, want a *NameError", tc.in, err)
			}
			f := ne.Finding()
			if f.Code != reports.CodeNameInvalid || f.Severity != reports.Fatal || f.Name != tc.in {
				t.Errorf("finding code %q severity %v name %q, want name.invalid fatal %q", f.Code, f.Severity, f.Name, tc.in)
			}
			if f.Problem == nil || f.Problem.Type != reports.ProblemRejectedIdentifier || f.Problem.Detail != tc.wantProblem {
				t.Errorf("problem %+v, want rejectedIdentifier %q", f.Problem, tc.wantProblem)
			}
			if f.Evidence["subproblem_type"] != tc.wantSubType || f.Evidence["reason"] != ne.Reason {
				t.Errorf("evidence %v, want subproblem_type %q and the reason", f.Evidence, tc.wantSubType)
			}
			if !strings.Contains(f.Detail, tc.wantDetail) {
				t.Errorf("detail %q, want it to contain %q", f.Detail, tc.wantDetail)
			}
		})
	}
}

func TestChallengeFinding(t *testing.T) {
	t.Parallel()
	wild, err := NormalizeName("*.example.com")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := NormalizeName("www.example.com")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc      string
		n         Name
		challenge string
		want      bool
	}{
		{desc: "wildcard with http-01", n: wild, challenge: "http-01", want: true},
		{desc: "wildcard with tls-alpn-01", n: wild, challenge: "tls-alpn-01", want: true},
		{desc: "wildcard with dns-01", n: wild, challenge: "dns-01"},
		{desc: "wildcard, challenge not chosen yet", n: wild, challenge: ""},
		{desc: "plain name with http-01", n: plain, challenge: "http-01"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			f := ChallengeFinding(tc.n, reports.Challenge(tc.challenge))
			if (f != nil) != tc.want {
				t.Fatalf("ChallengeFinding(%q, %q) = %v, want finding: %v", tc.n.ASCII, tc.challenge, f, tc.want)
			}
			if f == nil {
				return
			}
			if f.Code != reports.CodeNameWildcardNeedsDNS01 || f.Severity != reports.Fatal || f.Name != "*.example.com" {
				t.Errorf("finding %q %v %q, want name.wildcard_needs_dns01 fatal for *.example.com", f.Code, f.Severity, f.Name)
			}
			if !strings.Contains(f.Detail, tc.challenge) || !strings.Contains(f.Detail, "only the dns-01") {
				t.Errorf("detail %q does not name the challenge and dns-01", f.Detail)
			}
			if f.Evidence["challenge"] != tc.challenge {
				t.Errorf("evidence %v, want challenge %q", f.Evidence, tc.challenge)
			}
		})
	}
}

// FuzzNormalizeName checks that hostile identifiers never panic and that an
// accepted name is a fixed point: normalizing its ASCII form again gives it
// back without error, within Boulder's limits.
func FuzzNormalizeName(f *testing.F) {
	for _, s := range []string{"www.example.com", "*.bücher.de", "xn--a.com", "a..b.com", "*.*.com", "1.2.3.4", "::1", "foo.local", "ab--c.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		n, err := NormalizeName(in)
		if err != nil {
			var ne *NameError
			if !errors.As(err, &ne) || ne.Reason == "" {
				t.Fatalf("NormalizeName(%q) error %v is not a *NameError with a reason", in, err)
			}
			if n.ASCII == "" {
				return
			}
		}
		if len(n.ASCII) > nameMaxLength+2 || strings.Count(n.Base, ".") >= nameMaxLabels {
			t.Fatalf("NormalizeName(%q) accepted %q beyond Boulder's limits", in, n.ASCII)
		}
		again, err := NormalizeName(n.ASCII)
		if err != nil || again != n {
			t.Fatalf("NormalizeName(%q) = %+v, but its ASCII form gives %+v, %v", in, n, again, err)
		}
	})
}
