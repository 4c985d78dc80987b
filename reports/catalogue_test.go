package reports

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// findingsMD locates shared/FINDINGS.md by walking up from the test's working
// directory (the package directory), since the shared notes live beside the
// repository rather than inside it.
func findingsMD(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("getwd: %v", err)
	}
	for {
		p := filepath.Join(dir, "shared", "FINDINGS.md")
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("shared/FINDINGS.md not found above the package directory")
	}
	t.Skip("shared/FINDINGS.md not found above the package directory (not CI)")
	return ""
}

// findingsRow matches a table row of FINDINGS.md: | `code` | severity | modes |
// The severity is one word, "error or warning" (either), or "warning→fatal"
// (rising with the circumstance).
var findingsRow = regexp.MustCompile("^\\|\\s*`([a-z0-9_.]+)`\\s*\\|\\s*([a-z →]+?)\\s*\\|")

// parseFindingsMD returns each code of FINDINGS.md with the severities its
// table allows ("error or warning" gives two), in file order.
func parseFindingsMD(t *testing.T, path string) (codes []Code, sevs map[Code][]Severity) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	sevs = map[Code][]Severity{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		m := findingsRow.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		code := Code(m[1])
		if _, dup := sevs[code]; dup {
			t.Errorf("FINDINGS.md lists %s twice", code)
		}
		for _, word := range strings.FieldsFunc(strings.ReplaceAll(m[2], " or ", "→"), func(r rune) bool { return r == '→' }) {
			s, err := ParseSeverity(strings.TrimSpace(word))
			if err != nil {
				t.Fatalf("FINDINGS.md row for %s: %v", code, err)
			}
			sevs[code] = append(sevs[code], s)
		}
		codes = append(codes, code)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	if len(codes) < 10 {
		t.Fatalf("parsed only %d codes from %s; has the table format changed?", len(codes), path)
	}
	return codes, sevs
}

func TestCatalogueMatchesFindingsMD(t *testing.T) {
	codes, sevs := parseFindingsMD(t, findingsMD(t))
	for _, code := range codes {
		t.Run(string(code), func(t *testing.T) {
			e, ok := catalogue[code]
			if !ok {
				t.Fatalf("no catalogue entry for %s", code)
			}
			// The catalogue holds the usual severity: the first one FINDINGS.md names.
			if want := sevs[code][0]; e.Severity != want {
				t.Errorf("severity = %s, FINDINGS.md says %s", e.Severity, want)
			}
			if strings.TrimSpace(e.Summary) == "" || strings.TrimSpace(e.Fix) == "" {
				t.Errorf("empty text: summary %q fix %q", e.Summary, e.Fix)
			}
		})
	}
	// Codes of acmediag's own come after FINDINGS.md's, each documented in
	// the README's table of them (FINDINGS.md is shared and read-only here).
	own := ownCodes(t)
	for _, e := range Catalogue() {
		_, shared := sevs[e.Code]
		sev, documented := own[e.Code]
		switch {
		case !shared && !documented:
			t.Errorf("catalogue code %s is neither in FINDINGS.md nor in the README's own codes", e.Code)
		case documented && sev != e.Severity:
			t.Errorf("catalogue code %s: severity %s, the README says %s", e.Code, e.Severity, sev)
		}
	}
	for i, e := range Catalogue() {
		if i < len(codes) && e.Code != codes[i] {
			t.Errorf("Catalogue()[%d] = %s, FINDINGS.md order has %s", i, e.Code, codes[i])
			break
		}
	}
}

// ownCodes reads the README's table of acmediag's own codes: rows
// "| `code` | severity | ... |" below the heading "### Codes beyond FINDINGS.md".
func ownCodes(t *testing.T) map[Code]Severity {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatalf("reading the README: %v", err)
	}
	_, section, ok := strings.Cut(string(data), "### Codes beyond FINDINGS.md")
	if !ok {
		t.Fatal(`the README has no "### Codes beyond FINDINGS.md" section`)
	}
	out := map[Code]Severity{}
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "#") {
			break
		}
		m := findingsRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s, err := ParseSeverity(m[2])
		if err != nil {
			t.Fatalf("README row for %s: %v", m[1], err)
		}
		out[Code(m[1])] = s
	}
	return out
}

// TestCatalogueCoversCodeConstants reads codes.go so a constant added without
// a catalogue entry (or an entry left out of catalogueOrder) fails here.
func TestCatalogueCoversCodeConstants(t *testing.T) {
	file, err := parser.ParseFile(token.NewFileSet(), "codes.go", nil, 0)
	if err != nil {
		t.Fatalf("parse codes.go: %v", err)
	}
	var consts []Code
	ast.Inspect(file, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Values) != 1 {
			return true
		}
		if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Code" {
			return true
		}
		lit, ok := vs.Values[0].(*ast.BasicLit)
		if !ok {
			return true
		}
		v, err := strconv.Unquote(lit.Value)
		if err != nil {
			t.Fatalf("unquote %s: %v", lit.Value, err)
		}
		consts = append(consts, Code(v))
		return true
	})
	if len(consts) != len(catalogueOrder) || len(catalogue) != len(catalogueOrder) {
		t.Errorf("codes.go has %d codes, catalogueOrder %d, catalogue %d", len(consts), len(catalogueOrder), len(catalogue))
	}
	inOrder := map[Code]bool{}
	for _, c := range catalogueOrder {
		if inOrder[c] {
			t.Errorf("%s twice in catalogueOrder", c)
		}
		inOrder[c] = true
	}
	for _, c := range consts {
		if _, ok := catalogue[c]; !ok || !inOrder[c] {
			t.Errorf("code %s: in catalogue %v, in catalogueOrder %v", c, ok, inOrder[c])
		}
	}
}

// sentenceEnd counts sentence ends: a full stop followed by a space and a
// capital, or the end of the text. "e.g. the" does not count.
var sentenceEnd = regexp.MustCompile(`[.)]( [A-Z]|$)`)

func TestCatalogueTextShape(t *testing.T) {
	for _, e := range Catalogue() {
		t.Run(string(e.Code), func(t *testing.T) {
			if strings.ContainsAny(e.Summary, "\n\r") || len(e.Summary) > 110 {
				t.Errorf("summary is not one short line (%d bytes): %q", len(e.Summary), e.Summary)
			}
			if strings.HasSuffix(e.Summary, ".") {
				t.Errorf("summary ends with a full stop: %q", e.Summary)
			}
			if !strings.HasSuffix(e.Fix, ".") {
				t.Errorf("fix does not end with a full stop: %q", e.Fix)
			}
			if n := len(sentenceEnd.FindAllString(e.Fix, -1)); n < 1 || n > 3 {
				t.Errorf("fix has %d sentences, want 1-3: %q", n, e.Fix)
			}
			if strings.Count(e.Fix, "`")%2 != 0 {
				t.Errorf("fix has an unpaired backtick: %q", e.Fix)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	for _, tc := range []struct {
		desc    string
		code    Code
		wantSev Severity
		summary string // substring
	}{
		{desc: "known fatal code", code: CodeCAAForbidden, wantSev: Fatal, summary: "CAA"},
		{desc: "known warning code", code: CodeDNSSerialMismatch, wantSev: Warning, summary: "SOA serials"},
		{desc: "unknown code is an error saying so", code: "no.such_code", wantSev: Error, summary: `unknown finding code "no.such_code"`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			e := Lookup(tc.code)
			if e.Code != tc.code || e.Severity != tc.wantSev || !strings.Contains(e.Summary, tc.summary) {
				t.Errorf("Lookup(%s) = %+v, want severity %s and summary containing %q", tc.code, e, tc.wantSev, tc.summary)
			}
			f := New(tc.code, "a.example", "seen")
			if f.Summary != e.Summary || f.Fix != e.Fix || f.Severity != e.Severity || f.Detail != "seen" {
				t.Errorf("New(%s) = %+v does not carry the catalogue entry", tc.code, f)
			}
		})
	}
}
