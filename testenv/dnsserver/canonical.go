package dnsserver

import (
	"bytes"
	"strings"

	"github.com/miekg/dns"
)

// wireLabels returns the labels of name in wire form, lower-cased, leftmost
// first. Working on wire form rather than presentation form makes escaped
// characters (\. \065) compare the way RFC 4034 §6.1 says they must.
func wireLabels(name string) [][]byte {
	buf := make([]byte, 256)
	off, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		// Unpackable names cannot be in a parsed zone; fall back to a
		// best-effort presentation split so the order stays total.
		var out [][]byte
		for _, l := range dns.SplitDomainName(name) {
			out = append(out, []byte(strings.ToLower(l)))
		}
		return out
	}
	var out [][]byte
	for i := 0; i < off; {
		n := int(buf[i])
		if n == 0 {
			break
		}
		out = append(out, bytes.ToLower(buf[i+1:i+1+n]))
		i += 1 + n
	}
	return out
}

// CanonicalCompare orders two domain names as RFC 4034 §6.1 defines: by
// labels from the rightmost, each label as a lower-cased octet string, a name
// sorting before its own subdomains. It returns -1, 0 or +1.
func CanonicalCompare(a, b string) int {
	la, lb := wireLabels(a), wireLabels(b)
	for i, j := len(la)-1, len(lb)-1; i >= 0 && j >= 0; i, j = i-1, j-1 {
		if c := bytes.Compare(la[i], lb[j]); c != 0 {
			return c
		}
	}
	switch {
	case len(la) < len(lb):
		return -1
	case len(la) > len(lb):
		return 1
	}
	return 0
}
