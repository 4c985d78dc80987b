package dnsserver

import (
	"slices"
	"testing"
)

func TestCanonicalCompare(t *testing.T) {
	// The example order of RFC 4034 §6.1.
	want := []string{
		"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.",
		"zABC.a.EXAMPLE.", "z.example.", "\\001.z.example.", "*.z.example.", "\\200.z.example.",
	}
	got := slices.Clone(want)
	slices.Reverse(got)
	slices.SortFunc(got, CanonicalCompare)
	if !slices.Equal(got, want) {
		t.Errorf("sorted = %q\nwant     %q", got, want)
	}
	cases := []struct {
		desc string
		a, b string
		want int
	}{
		{desc: "case-insensitive equal", a: "WWW.Example.COM.", b: "www.example.com.", want: 0},
		{desc: "parent before child", a: "example.com.", b: "a.example.com.", want: -1},
		{desc: "rightmost label decides", a: "z.a.com.", b: "a.b.com.", want: -1},
		{desc: "root first", a: ".", b: "com.", want: -1},
		{desc: "relative treated as FQDN", a: "b.com", b: "a.com.", want: 1},
	}
	for _, c := range cases {
		if got := CanonicalCompare(c.a, c.b); got != c.want {
			t.Errorf("%s: CanonicalCompare(%q, %q) = %d, want %d", c.desc, c.a, c.b, got, c.want)
		}
	}
}
