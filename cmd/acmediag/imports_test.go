package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The house's import rules (DESIGN.md, "Packages"): cmd wires and never
// builds checkers itself, http01 never resolves, reports is the bottom
// floor, product code never imports the test universe. They are checked on
// the code as it is, with `go list`.
func TestImportRules(t *testing.T) {
	t.Parallel()
	const mod = "github.com/acmediag/acmediag/"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	imports := map[string][]string{} // package → its direct imports of this module
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg := strings.TrimPrefix(f[0], mod)
		for _, imp := range f[1:] {
			if strings.HasPrefix(imp, mod) {
				imports[pkg] = append(imports[pkg], strings.TrimPrefix(imp, mod))
			}
		}
		if _, ok := imports[pkg]; !ok {
			imports[pkg] = nil
		}
	}
	// deps is every package of this module pkg reaches.
	deps := func(pkg string) []string {
		seen := map[string]bool{}
		var walk func(string)
		walk = func(p string) {
			for _, d := range imports[p] {
				if !seen[d] {
					seen[d] = true
					walk(d)
				}
			}
		}
		walk(pkg)
		var out []string
		for d := range seen {
			out = append(out, d)
		}
		slices.Sort(out)
		return out
	}
	under := func(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }

	cases := []struct {
		desc  string
		check func() []string // the offending imports
	}{
		{desc: "cmd imports the runtime, probes, reports and testenv only; dnscheck and http01 only through them", check: func() []string {
			var bad []string
			for _, d := range imports["cmd/acmediag"] {
				if !slices.Contains([]string{"probes", "probes/run", "reports"}, d) && !under(d, "testenv") {
					bad = append(bad, d)
				}
			}
			return bad
		}},
		{desc: "http01 does not reach dnscheck (it takes addresses)", check: func() []string {
			if slices.Contains(deps("http01"), "dnscheck") {
				return []string{"dnscheck"}
			}
			return nil
		}},
		{desc: "reports is the bottom floor", check: func() []string { return deps("reports") }},
		{desc: "dnscheck knows nothing of HTTP, probes or the runtime", check: func() []string {
			var bad []string
			for _, d := range deps("dnscheck") {
				if d != "reports" && d != "internal/special" {
					bad = append(bad, d)
				}
			}
			return bad
		}},
		{desc: "product code never imports the test universe (but cmd's testenv command)", check: func() []string {
			var bad []string
			for pkg, imps := range imports {
				if under(pkg, "testenv") || pkg == "cmd/acmediag" {
					continue
				}
				for _, d := range imps {
					if under(d, "testenv") {
						bad = append(bad, pkg+" → "+d)
					}
				}
			}
			return bad
		}},
		{desc: "nothing under probes reaches upward into cmd, and probes itself not into its runtime or agent", check: func() []string {
			var bad []string
			for pkg := range imports {
				if !under(pkg, "probes") {
					continue
				}
				for _, d := range deps(pkg) {
					if under(d, "cmd") || pkg == "probes" && (d == "probes/run" || d == "probes/agent") {
						bad = append(bad, pkg+" → "+d)
					}
				}
			}
			return bad
		}},
	}
	for _, tc := range cases {
		if bad := tc.check(); len(bad) > 0 {
			t.Errorf("%s: %v", tc.desc, bad)
		}
	}
	if len(imports) < 10 {
		t.Errorf("go list saw %d packages; the rules no longer see the module", len(imports))
	}
}

// Finding texts are read by diagnose's user and the daemon's alike: a text
// of the checks that names a flag names the daemon's key beside it
// (DESIGN.md: dnscheck must not name CLI flags alone).
func TestTextsNameBothFaces(t *testing.T) {
	t.Parallel()
	flag := regexp.MustCompile("`?--[a-z][a-z-]+`?")
	fset := token.NewFileSet()
	for _, dir := range []string{"../../dnscheck", "../../http01", "../../probes/canary"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, file, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING || !flag.MatchString(lit.Value) {
					return true
				}
				if !strings.Contains(lit.Value, "daemon's") {
					t.Errorf("%s: %s names a flag without the daemon's key", fset.Position(lit.Pos()), lit.Value)
				}
				return true
			})
		}
	}
}
