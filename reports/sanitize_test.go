package reports

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCleanText(t *testing.T) {
	for _, tc := range []struct {
		desc         string
		in           string
		keepNewlines bool
		want         string
	}{
		{desc: "plain text unchanged", in: "ns1.example answered 192.0.2.1", want: "ns1.example answered 192.0.2.1"},
		{desc: "CSI colour and erase", in: "a\x1b[31mb\x1b[0m\x1b[2Jc", want: "abc"},
		{desc: "CSI with private parameters", in: "a\x1b[?25lb", want: "ab"},
		{desc: "OSC title ended by BEL", in: "a\x1b]0;title\x07b", want: "ab"},
		{desc: "OSC hyperlink ended by ST", in: "a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\b", want: "alinkb"},
		{desc: "unterminated OSC stops at newline", in: "a\x1b]0;title\nnext", keepNewlines: true, want: "a\nnext"},
		{desc: "DCS string", in: "a\x1bPq#0;2;0;0;0\x1b\\b", want: "ab"},
		{desc: "charset designation", in: "a\x1b(Bb", want: "ab"},
		{desc: "two-byte escape", in: "a\x1bcb", want: "ab"},
		{desc: "lone ESC at the end", in: "ab\x1b", want: "ab"},
		{desc: "C1 CSI as a rune", in: "a\u009b31mb", want: "ab"},
		{desc: "C1 OSC as a rune", in: "a\u009d0;t\u009cb", want: "ab"},
		{desc: "raw C1 byte is invalid UTF-8", in: "a\x9bb", want: "a\uFFFDb"},
		{desc: "NUL, BEL, backspace dropped", in: "a\x00b\x07c\x08d", want: "abcd"},
		{desc: "tab becomes a space", in: "a\tb", want: "a b"},
		{desc: "CRLF and CR are newlines", in: "a\r\nb\rc", keepNewlines: true, want: "a\nb\nc"},
		{desc: "newlines become spaces", in: "a\nb\r\nc", want: "a b c"},
		{desc: "bidi overrides dropped", in: "a\u202eb\u2066c\u200fd", want: "abcd"},
		{desc: "non-ASCII kept", in: "zoné — 例え", want: "zoné — 例え"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := cleanText(tc.in, tc.keepNewlines); got != tc.want {
				t.Errorf("cleanText(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestTruncateText(t *testing.T) {
	for _, tc := range []struct {
		desc string
		in   string
		max  int
		want string
	}{
		{desc: "short", in: "abc", max: 5, want: "abc"},
		{desc: "cut", in: "abcdef", max: 3, want: "abc … [truncated, 6 bytes in all]"},
		{desc: "cut on a rune boundary", in: "aé", max: 2, want: "a … [truncated, 3 bytes in all]"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := truncateText(tc.in, tc.max); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := cleanField(strings.Repeat("x", 3*maxFieldBytes), false); len(got) > maxFieldBytes+64 {
		t.Errorf("cleanField kept %d bytes, want about %d", len(got), maxFieldBytes)
	}
}

func TestWrapText(t *testing.T) {
	for _, tc := range []struct {
		desc        string
		in          string
		first, rest int
		want        []string
	}{
		{desc: "fits", in: "a b c", first: 10, rest: 10, want: []string{"a b c"}},
		{desc: "wraps at spaces", in: "aaa bbb ccc", first: 7, rest: 7, want: []string{"aaa bbb", "ccc"}},
		{desc: "narrower first line", in: "aaa bbb ccc", first: 3, rest: 7, want: []string{"aaa", "bbb ccc"}},
		{desc: "long word is cut", in: "abcdefghij", first: 4, rest: 4, want: []string{"abcd", "efgh", "ij"}},
		{desc: "words after a cut keep their spaces", in: "abcdef gh", first: 4, rest: 5, want: []string{"abcd", "ef gh"}},
		{desc: "first word moves to the wider line", in: "abcdef gh", first: 3, rest: 10, want: []string{"", "abcdef gh"}},
		{desc: "runes, not bytes", in: "ééé ééé", first: 3, rest: 3, want: []string{"ééé", "ééé"}},
		{desc: "empty", in: "", first: 5, rest: 5, want: []string{""}},
		{desc: "zero widths do not loop", in: "abc", first: 0, rest: 0, want: []string{"a", "b", "c"}},
		{desc: "colour sequences take no width", in: "\x1b[31mok\x1b[0m xy", first: 5, rest: 5, want: []string{"\x1b[31mok\x1b[0m xy"}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := wrapText(tc.in, tc.first, tc.rest)
			if !slices.Equal(got, tc.want) {
				t.Errorf("wrapText(%q, %d, %d) = %q, want %q", tc.in, tc.first, tc.rest, got, tc.want)
			}
			for i, l := range got {
				limit := tc.rest
				if i == 0 {
					limit = tc.first
				}
				if n := visibleLen(l); n > max(limit, 1) {
					t.Errorf("line %q has %d columns > %d", l, n, limit)
				}
			}
		})
	}
}

func TestEllipsize(t *testing.T) {
	for _, tc := range []struct {
		desc, in string
		n        int
		want     string
	}{
		{desc: "short", in: "abc", n: 5, want: "abc"},
		{desc: "cut", in: "abcdef", n: 4, want: "abc…"},
		{desc: "runes", in: "éééé", n: 3, want: "éé…"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			got := ellipsize(tc.in, tc.n)
			if got != tc.want || utf8.RuneCountInString(got) > tc.n {
				t.Errorf("ellipsize(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
			}
		})
	}
}
