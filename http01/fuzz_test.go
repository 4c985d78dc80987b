package http01

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

// FuzzRedirectTarget feeds hostile Location headers and statuses to the
// redirect policy: it must never panic, and an accepted target must obey
// Boulder's rules (scheme, port, host, path length).
func FuzzRedirectTarget(f *testing.F) {
	for _, s := range []string{"/x", "https://a.example.com:8443/", "ftp://x/", "http://10.0.0.1/", "http://[fe80::1%25eth0]/",
		"http://a.example.com.well-known/x", "http://my.tld.is.cpu/", "http://a.example.com:99999/", "http://%zz", "//a.example.com/" + strings.Repeat("a", 2100), "https:///x"} {
		f.Add(s, 302)
	}
	v := &Validator{Resolver: staticResolver{"a.example.com": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("8.8.8.8")}}, HTTPPort: 80, HTTPSPort: 443}
	from := target{url: &url.URL{Scheme: "http", Host: "www.example.com", Path: "/.well-known/acme-challenge/t"}, host: "www.example.com", port: 80}
	f.Fuzz(func(t *testing.T, loc string, status int) {
		out := hopOutcome{location: loc, hop: Hop{Status: status}, header: http.Header{}}
		next, err := v.redirectTarget(context.Background(), from, out, nil)
		if err != nil {
			if p := detailed(err, false); p.text == "" || p.typ == "" {
				t.Fatalf("empty problem for %q: %+v", loc, p)
			}
			return
		}
		if status != 301 && status != 302 && status != 307 && status != 308 {
			t.Fatalf("status %d accepted", status)
		}
		if next.url.Scheme != "http" && next.url.Scheme != "https" || (next.port != 80 && next.port != 443) || len(next.url.Path) > maxPathSize || !next.addr.IsValid() {
			t.Fatalf("accepted bad target %q → %+v", loc, next)
		}
		if v.reservedReason(next.addr) != "" {
			t.Fatalf("accepted reserved address %s for %q", next.addr, loc)
		}
	})
}
