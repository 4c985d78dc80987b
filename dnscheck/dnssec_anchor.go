package dnscheck

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/miekg/dns"
)

// maxAnchorFile bounds what ParseTrustAnchors reads: a root anchor file is a
// few kilobytes, even in Unbound's autotrust format with its comments.
const maxAnchorFile = 1 << 20

// ParseTrustAnchors reads root trust anchors in zone-file syntax: DS or
// DNSKEY records owned by "." (the formats of IANA's root-anchors DS lines,
// Unbound's trust-anchor-file and root.key). source names the input in
// errors, which also give the line. An input without records, a record for
// another owner or of another type, a DNSKEY without the zone-key flag and a
// DS whose digest length does not fit its type are errors.
func ParseTrustAnchors(r io.Reader, source string) ([]dns.RR, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxAnchorFile+1))
	if err != nil {
		return nil, fmt.Errorf("trust anchors %s: read: %w", source, err)
	}
	if len(data) > maxAnchorFile {
		return nil, fmt.Errorf("trust anchors %s: larger than %d bytes", source, maxAnchorFile)
	}
	lines := recordLines(data)
	zp := dns.NewZoneParser(bytes.NewReader(data), ".", source)
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		// The zone parser does not say where a record started; recordLines
		// splits the input the same way, so the n-th record is on lines[n].
		line := 0
		if len(out) < len(lines) {
			line = lines[len(out)]
		}
		if err := checkAnchor(rr); err != nil {
			return nil, fmt.Errorf("trust anchors %s:%d: %w", source, line, err)
		}
		out = append(out, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("trust anchors: %w", err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("trust anchors %s: %w", source, errNoAnchors)
	}
	return out, nil
}

var errNoAnchors = errors.New("no DS or DNSKEY records")

func checkAnchor(rr dns.RR) error {
	h := rr.Header()
	if h.Class != dns.ClassINET {
		return fmt.Errorf("%s record of class %s: trust anchors are class IN", secTypeName(h.Rrtype), dns.ClassToString[h.Class])
	}
	if h.Name != "." {
		return fmt.Errorf("%s record for %s: only root (\".\") trust anchors are accepted", secTypeName(h.Rrtype), h.Name)
	}
	switch a := rr.(type) {
	case *dns.DS:
		want := map[uint8]int{dns.SHA1: 40, dns.SHA256: 64, dns.SHA384: 96}[a.DigestType]
		if want != 0 && len(a.Digest) != want {
			return fmt.Errorf("DS %s: digest has %d hex digits, digest type %d needs %d", dsString(a), len(a.Digest), a.DigestType, want)
		}
	case *dns.DNSKEY:
		if !zoneKey(a) {
			return fmt.Errorf("DNSKEY %s: not a zone key (flags %d, protocol %d)", keyString(a), a.Flags, a.Protocol)
		}
	default:
		return fmt.Errorf("%s record: a trust anchor must be DS or DNSKEY", secTypeName(h.Rrtype))
	}
	return nil
}

// recordLines returns the 1-based line on which each resource record of a
// zone file starts, skipping blank lines, comments and $-directives, and
// joining records that continue over lines inside parentheses.
func recordLines(data []byte) []int {
	var starts []int
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), maxAnchorFile)
	depth := 0
	for n := 1; sc.Scan(); n++ {
		text := stripComment(sc.Text())
		if depth == 0 {
			t := strings.TrimSpace(text)
			if t != "" && !strings.HasPrefix(t, "$") {
				starts = append(starts, n)
			}
		}
		depth += strings.Count(text, "(") - strings.Count(text, ")")
		if depth < 0 {
			depth = 0
		}
	}
	return starts
}

// stripComment drops a ";" comment that is outside a quoted string.
func stripComment(s string) string {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				return s[:i]
			}
		}
	}
	return s
}

// DefaultTrustAnchors returns the IANA root zone KSK DS records: KSK-2017
// (tag 20326) and KSK-2024 (tag 38696), algorithm 8, digest type 2. Source:
// IANA https://data.iana.org/root-anchors/root-anchors.xml (KeyDigest ids
// Klajeyz and Kmyv6jo), as also carried by ISC BIND's bind.keys and OpenBSD
// unwind's unwind.h (KSK2017/KSK2024); a test checks both digests against
// the published public keys. A fresh slice each call, so callers may modify it.
func DefaultTrustAnchors() []dns.RR {
	ds := func(tag uint16, digest string) dns.RR {
		return &dns.DS{
			Hdr:        dns.RR_Header{Name: ".", Rrtype: dns.TypeDS, Class: dns.ClassINET, Ttl: 172800},
			KeyTag:     tag,
			Algorithm:  dns.RSASHA256,
			DigestType: dns.SHA256,
			Digest:     digest,
		}
	}
	return []dns.RR{
		ds(20326, "E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D"),
		ds(38696, "683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16"),
	}
}
