package reports

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Findings carry text that came from the network: TXT strings, HTTP bodies,
// server banners. A hostile zone owner can put terminal escape sequences,
// carriage returns or bidi overrides in them, which would repaint or reorder
// what the reader sees. Every renderer that targets a human passes such text
// through cleanText first.

// maxFieldBytes bounds one free-text field (detail, problem detail, note) in
// human output, so a huge server answer cannot flood a terminal or a page.
const maxFieldBytes = 8 << 10

// cleanText removes ANSI/VT escape sequences (CSI, OSC, DCS, ...) together
// with their parameters, every other C0/C1 control character and bidi
// formatting characters; it replaces invalid UTF-8 with U+FFFD and tabs with a
// space. Newlines (LF, CRLF and a lone CR) are kept as '\n' when keepNewlines
// is set and become a space otherwise. The loop advances at least one byte per
// step, so it ends on any input.
func cleanText(s string, keepNewlines bool) string {
	var b strings.Builder
	b.Grow(len(s))
	newline := func() {
		if keepNewlines {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == 0x1b: // ESC: a 7-bit escape sequence
			i = skipEscape(s, i+size)
			continue
		case r == 0x9b: // C1 CSI
			i = skipCSI(s, i+size)
			continue
		case r == 0x90 || r == 0x98 || r == 0x9d || r == 0x9e || r == 0x9f: // C1 DCS, SOS, OSC, PM, APC
			i = skipControlString(s, i+size)
			continue
		case r == '\n':
			newline()
		case r == '\r':
			if i+1 < len(s) && s[i+1] == '\n' {
				break // the LF that follows makes the line break
			}
			newline()
		case r == '\t':
			b.WriteByte(' ')
		case unicode.IsControl(r) || isBidiControl(r):
			// dropped
		default:
			b.WriteRune(r)
		}
		i += size
	}
	return b.String()
}

// skipEscape returns the index just past the escape sequence whose ESC byte
// ended at j.
func skipEscape(s string, j int) int {
	if j >= len(s) {
		return j
	}
	switch c := s[j]; {
	case c == '[':
		return skipCSI(s, j+1)
	case c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_':
		return skipControlString(s, j+1)
	case c >= 0x20 && c <= 0x2f: // intermediate bytes, then one final byte (ESC ( B)
		for j < len(s) && s[j] >= 0x20 && s[j] <= 0x2f {
			j++
		}
		if j < len(s) && s[j] >= 0x30 && s[j] <= 0x7e {
			j++
		}
		return j
	case c >= 0x30 && c <= 0x7e: // a two-byte sequence such as ESC c or ESC 7
		return j + 1
	default:
		return j // not a sequence: drop the ESC alone
	}
}

// skipCSI skips the parameter and intermediate bytes of a control sequence and
// its final byte. A malformed sequence stops at the first byte that cannot be
// part of it, and that byte is kept.
func skipCSI(s string, j int) int {
	for j < len(s) {
		c := s[j]
		switch {
		case c >= 0x20 && c <= 0x3f:
			j++
		case c >= 0x40 && c <= 0x7e:
			return j + 1
		default:
			return j
		}
	}
	return j
}

// skipControlString skips an OSC/DCS/... string up to and including its
// terminator (BEL, ESC \ or C1 ST). It also stops, without consuming it, at a
// newline, so an unterminated string cannot swallow the following lines.
func skipControlString(s string, j int) int {
	for j < len(s) {
		switch {
		case s[j] == 0x07:
			return j + 1
		case s[j] == 0x1b && j+1 < len(s) && s[j+1] == '\\':
			return j + 2
		case strings.HasPrefix(s[j:], "\u009c"):
			return j + len("\u009c")
		case s[j] == '\n':
			return j
		}
		j++
	}
	return j
}

// isBidiControl reports the explicit directional formatting characters that
// can make a terminal show text in an order other than the bytes' ("Trojan
// Source", CVE-2021-42574).
func isBidiControl(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c:
		return true
	}
	return false
}

// truncateText cuts s to at most max bytes on a rune boundary and says how
// much was cut.
func truncateText(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf(" … [truncated, %d bytes in all]", len(s))
}

// cleanField is cleanText after truncateText, the form every untrusted
// free-text field takes in human output.
func cleanField(s string, keepNewlines bool) string {
	return cleanText(truncateText(s, maxFieldBytes), keepNewlines)
}

// wrapText breaks s into lines of at most first runes for the first line and
// rest runes for the others, at spaces where it can; a word longer than a line
// is cut, except that a first word too long for the first line but short
// enough for the others leaves the first line empty. Runs of spaces collapse to one. s must not contain newlines.
func wrapText(s string, first, rest int) []string {
	first, rest = max(first, 1), max(rest, 1)
	var lines []string
	var cur strings.Builder
	curLen := 0
	limit := first
	flush := func() {
		lines = append(lines, cur.String())
		cur.Reset()
		curLen = 0
		limit = rest
	}
	for _, word := range strings.Fields(s) {
		wl := visibleLen(word)
		if curLen > 0 && curLen+1+wl <= limit {
			cur.WriteByte(' ')
			cur.WriteString(word)
			curLen += 1 + wl
			continue
		}
		if curLen > 0 {
			flush()
		} else if len(lines) == 0 && wl > limit && wl <= rest {
			// The first word does not fit beside the label but fits a
			// whole continuation line: start there instead of cutting it.
			flush()
		}
		// Cut a word longer than a whole line, unless it carries our own
		// colour sequences, which must stay whole (such words are short).
		for wl > limit && !strings.Contains(word, "\x1b") {
			head, tail := splitRunes(word, limit)
			cur.WriteString(head)
			flush()
			word, wl = tail, visibleLen(tail)
		}
		cur.WriteString(word)
		curLen = wl
	}
	if curLen > 0 || len(lines) == 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// visibleLen is the number of columns s takes on a terminal: its runes, less
// the SGR colour sequences the text renderer adds itself (ESC [ ... m).
func visibleLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			i = skipEscape(s, i+1)
			continue
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return n
}

// splitRunes splits s after n runes.
func splitRunes(s string, n int) (string, string) {
	i := 0
	for ; n > 0 && i < len(s); n-- {
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
	}
	return s[:i], s[i:]
}

// padRight pads s with spaces to n runes; a longer s is returned whole.
func padRight(s string, n int) string {
	if l := utf8.RuneCountInString(s); l < n {
		return s + strings.Repeat(" ", n-l)
	}
	return s
}

// ellipsize cuts s to n runes, marking the cut with "…".
func ellipsize(s string, n int) string {
	if n < 1 || utf8.RuneCountInString(s) <= n {
		return s
	}
	head, _ := splitRunes(s, n-1)
	return head + "…"
}
