package reports

import (
	"bytes"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzRenderers renders a finding whose every string field is fuzzed and
// checks the invariants the renderers promise for hostile input: no panic,
// no control or escape characters in text without colour, an unbroken
// markdown table and no HTML outside code. The seeds run in every go test.
func FuzzRenderers(f *testing.F) {
	for _, seed := range []string{"", "plain", hostileDetail, "a|b`c<d>&e\\", "```\n# h\n| x |", "\x1b]8;;u\x07l", "\xff\xfe", "\u009b1m"} {
		f.Add(seed, seed, "v")
	}
	f.Fuzz(func(t *testing.T, detail, summary, vantage string) {
		r := &Report{Names: []string{"a.example"}}
		r.Add(Finding{Code: CodeDNS01TXTWrongValue, Severity: Error, Name: "a.example", Vantage: vantage,
			Summary: summary, Detail: detail, Fix: summary, Problem: &Problem{Type: summary, Detail: detail},
			Evidence: map[string]any{detail: summary}})
		r.Finalize()

		var text bytes.Buffer
		if err := RenderText(&text, r, TextOptions{Verbose: true, Width: 60}); err != nil {
			t.Fatalf("RenderText: %v", err)
		}
		if !utf8.Valid(text.Bytes()) {
			t.Fatalf("text output is not UTF-8: %q", text.String())
		}
		for _, c := range text.String() {
			if c != '\n' && (unicode.IsControl(c) || isBidiControl(c)) {
				t.Fatalf("control %U in text output %q", c, text.String())
			}
		}

		var md bytes.Buffer
		if err := RenderMarkdown(&md, r); err != nil {
			t.Fatalf("RenderMarkdown: %v", err)
		}
		rows := 0
		for _, l := range strings.Split(md.String(), "\n") {
			if strings.HasPrefix(l, "|") {
				rows++
				if n := gfmCells(l); n != 4 {
					t.Fatalf("table row with %d cells: %q", n, l)
				}
			}
			if o := outsideCode(l); strings.ContainsAny(o, "<&") {
				t.Fatalf("HTML outside code: %q", l)
			}
			for _, c := range l {
				if unicode.IsControl(c) || isBidiControl(c) {
					t.Fatalf("control %U in markdown %q", c, l)
				}
			}
		}
		if rows != 3 {
			t.Fatalf("%d table rows, want 3:\n%s", rows, md.String())
		}

		var js bytes.Buffer
		if err := RenderJSON(&js, r); err != nil {
			t.Fatalf("RenderJSON: %v", err)
		}
	})
}
