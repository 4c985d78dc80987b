package reports

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"unicode"
)

func renderMarkdown(t *testing.T, r *Report) string {
	t.Helper()
	var buf bytes.Buffer
	if err := RenderMarkdown(&buf, r); err != nil {
		t.Fatalf("RenderMarkdown: %v", err)
	}
	return buf.String()
}

// gfmCells counts the cells of a GFM table row the way cmark-gfm splits it:
// a backslash and the character after it are one unit, any other '|' is a
// delimiter. A row "| a | b |" has 3 delimiters and 2 cells.
func gfmCells(line string) int {
	delims := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case '|':
			delims++
		}
	}
	return delims - 1
}

// outsideCode returns line without its code spans and backslash escapes, as
// CommonMark reads it: what remains is what markdown and HTML interpret.
// A backtick run opens a span only if a run of the same length follows.
func outsideCode(line string) string {
	var b strings.Builder
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == '\\' && i+1 < len(line):
			i += 2
		case c == '`':
			n := 0
			for i+n < len(line) && line[i+n] == '`' {
				n++
			}
			closeAt := -1
			for j := i + n; j < len(line); {
				if line[j] != '`' {
					j++
					continue
				}
				m := 0
				for j+m < len(line) && line[j+m] == '`' {
					m++
				}
				if m == n {
					closeAt = j + m
					break
				}
				j += m
			}
			if closeAt < 0 {
				b.WriteString(line[i : i+n]) // a literal backtick run
				i += n
			} else {
				i = closeAt
			}
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func TestRenderMarkdown(t *testing.T) {
	pass := &Report{Names: []string{"ok.example"}}
	pass.Finalize()
	for _, tc := range []struct {
		desc        string
		r           *Report
		contains    []string
		notContains []string
	}{
		{
			desc: "failing report",
			r:    sampleReport(),
			contains: []string{
				"# acmediag report\n",
				"## a.example\n\n| severity | code | vantage | summary |\n| --- | --- | --- | --- |\n" +
					"| fatal | `caa.forbidden` |  | CAA records forbid Let's Encrypt from issuing for this name |\n",
				"| warning | `http01.slow_response` | `eu-west` | The server answers the challenge request slowly |\n",
				"- **fatal** `caa.forbidden`: CAA records forbid",
				"  - observed:\n    - `CAA set at example:`\n    - `0 issue \"digicert.com\"`\n",
				"  - fix: Add `0 issue \"letsencrypt.org\"` to the CAA set",
				"  - Let's Encrypt would say: `urn:ietf:params:acme:error:caa` — `While processing CAA for a.example: CAA record for example prevents issuance`\n",
				"## MPIC quorum\n\n**ok**: 2 of 3 external perspectives passed, 1 failure allowed; passing RIRs: `APNIC`, `RIPE`.\n",
				"\n**Verdict: FAIL** — 1 fatal, 1 error, 4 warnings, 1 info across 2 names (41 ms)\n",
			},
		},
		{
			desc:        "passing report",
			r:           pass,
			contains:    []string{"## ok.example\n\nNo problems found.\n", "**Verdict: PASS** — no problems found across 1 name\n"},
			notContains: []string{"| severity |", "MPIC"},
		},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out := renderMarkdown(t, tc.r)
			for _, s := range tc.contains {
				if !strings.Contains(out, s) {
					t.Errorf("output lacks %q:\n%s", s, out)
				}
			}
			for _, s := range tc.notContains {
				if strings.Contains(out, s) {
					t.Errorf("output has %q:\n%s", s, out)
				}
			}
		})
	}
}

// TestRenderMarkdownHostile feeds text a hostile zone or web server could
// control and checks that it can neither break the table nor add headings,
// nor reach HTML.
func TestRenderMarkdownHostile(t *testing.T) {
	for _, tc := range []struct {
		desc string
		f    Finding
	}{
		{desc: "pipes and html in detail", f: New(CodeDNS01TXTWrongValue, "evil.example",
			"x | y <script>alert(1)</script> &lt; <img src=x onerror=alert(1)>")},
		{desc: "newline starting a heading and a table", f: New(CodeDNS01TXTWrongValue, "evil.example",
			"ok\n# injected heading\n| a | b |\n| --- | --- |\n<details open>")},
		{desc: "backtick runs closing a code span", f: New(CodeDNS01TXTWrongValue, "evil.example",
			"a ` b `` c ``` <b>bold</b> ```` `")},
		{desc: "hostile summary, vantage and code in the table", f: Finding{
			Code: "x|`<i>`", Severity: Error, Name: "evil.example", Vantage: "v|1\\|<b>",
			Summary: "sum | <b>mary</b> `tick` \\| & [link](javascript:alert(1))",
			Detail:  "d", Fix: "unpaired ` backtick <b>x</b>",
			Problem: &Problem{Type: "urn:x|`", Detail: "```<script>```"},
		}},
		{desc: "escapes and controls", f: New(CodeDNS01TXTWrongValue, "evil.example", hostileDetail)},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			r := &Report{Names: []string{"evil<b>.example"}}
			tc.f.Name = "evil<b>.example"
			r.Add(tc.f)
			r.Finalize()
			out := renderMarkdown(t, r)
			lines := strings.Split(out, "\n")
			var headings, rows []string
			for _, l := range lines {
				for _, c := range l {
					if unicode.IsControl(c) || isBidiControl(c) {
						t.Errorf("control character %U in %q", c, l)
					}
				}
				if strings.Contains(outsideCode(l), "<") || strings.Contains(outsideCode(l), "&") {
					t.Errorf("unescaped '<' or '&' outside code: %q", l)
				}
				if strings.HasPrefix(l, "#") {
					headings = append(headings, l)
				}
				if strings.HasPrefix(l, "|") {
					rows = append(rows, l)
				}
			}
			if want := []string{"# acmediag report", `## evil\<b\>.example`}; strings.Join(headings, "\n") != strings.Join(want, "\n") {
				t.Errorf("headings = %q, want %q", headings, want)
			}
			if len(rows) != 3 {
				t.Errorf("%d table rows, want header, delimiter and one finding: %q", len(rows), rows)
			}
			for _, row := range rows {
				if n := gfmCells(row); n != 4 {
					t.Errorf("row has %d cells, want 4: %q", n, row)
				}
			}
		})
	}
}

func TestCodeSpan(t *testing.T) {
	for _, tc := range []struct {
		desc, in, want string
	}{
		{desc: "plain", in: "a.example", want: "`a.example`"},
		{desc: "empty", in: "", want: ""},
		{desc: "inner backtick gets a longer fence", in: "a`b", want: "``a`b``"},
		{desc: "double inner backticks", in: "a``b", want: "```a``b```"},
		{desc: "leading backtick is padded", in: "`x", want: "`` `x ``"},
		{desc: "spaces at both ends are padded", in: " x ", want: "`  x  `"},
		{desc: "newline becomes a space", in: "a\nb", want: "`a b`"},
		{desc: "html is left to the span", in: "<b>", want: "`<b>`"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := codeSpan(tc.in); got != tc.want {
				t.Errorf("codeSpan(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestMarkdownEscapes(t *testing.T) {
	for _, tc := range []struct {
		desc string
		fn   func(string) string
		in   string
		want string
	}{
		{desc: "mdEscape html and pipes", fn: mdEscape, in: "a|b <i> & c", want: `a\|b \<i\> \& c`},
		{desc: "mdEscape emphasis and links", fn: mdEscape, in: "*x* _y_ [l](u) ~z~ $m$ #", want: `\*x\* \_y\_ \[l\](u) \~z\~ \$m\$ \#`},
		{desc: "mdEscape backslash", fn: mdEscape, in: `a\|`, want: `a\\\|`},
		{desc: "mdInline code parts", fn: mdInline, in: "set `a|b` then <x>", want: "set `a|b` then \\<x\\>"},
		{desc: "mdInline unpaired backtick", fn: mdInline, in: "a `b <c>", want: "a \\`b \\<c\\>"},
		{desc: "cellCode with a pipe falls back to escaped text", fn: cellCode, in: "v|1", want: `v\|1`},
		{desc: "cellCode plain", fn: cellCode, in: "eu-west", want: "`eu-west`"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if got := tc.fn(tc.in); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRenderMarkdownErrors(t *testing.T) {
	for _, tc := range []struct {
		desc   string
		r      *Report
		wantIs error
	}{
		{desc: "nil report", r: nil},
		{desc: "failing writer", r: sampleReport(), wantIs: errBrokenPipe},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			err := RenderMarkdown(errWriter{}, tc.r)
			if err == nil {
				t.Fatal("no error")
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %v does not wrap %v", err, tc.wantIs)
			}
		})
	}
}
