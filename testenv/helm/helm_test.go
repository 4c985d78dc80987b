package helm

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/toolbuild"
)

func newHelm(t *testing.T) *Helm {
	t.Helper()
	if testing.Short() {
		t.Skip("runs helm")
	}
	bin := toolbuild.Need(t, toolbuild.Helm)[0]
	return &Helm{Bin: bin, Home: t.TempDir()}
}

func TestLint(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		desc, chart string
		args        []string
		ok          bool
		want        string
	}{
		{desc: "a good chart", chart: "testdata/good", args: []string{"--strict"}, ok: true, want: "1 chart(s) linted, 0 chart(s) failed"},
		{desc: "a template that does not parse", chart: "testdata/broken", want: "parse error"},
		{desc: "no chart there", chart: "testdata/none", want: "testdata/none"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out, err := h.Lint(ctx, tc.chart, tc.args...)
			if (err == nil) != tc.ok {
				t.Fatalf("lint %s: err = %v, want ok %v; output:\n%s", tc.chart, err, tc.ok, out)
			}
			text := out
			if err != nil {
				text = err.Error()
			}
			if !strings.Contains(text, tc.want) {
				t.Errorf("lint %s: %q does not contain %q", tc.chart, text, tc.want)
			}
		})
	}
}

func TestTemplate(t *testing.T) {
	t.Parallel()
	h := newHelm(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		desc string
		args []string
		want []string
	}{
		{"defaults", nil, []string{"name: demo-tiny", `greeting: "hello"`, "app.kubernetes.io/instance: demo"}},
		{"a value set", []string{"--set", "greeting=bonjour"}, []string{`greeting: "bonjour"`}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out, err := h.Template(ctx, "demo", "testdata/good", tc.args...)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("rendered manifests lack %q:\n%s", w, out)
				}
			}
		})
	}
	if _, err := h.Template(ctx, "demo", "testdata/broken"); err == nil || !strings.Contains(err.Error(), "parse error") {
		t.Errorf("template of a broken chart: err = %v, want a parse error", err)
	}
	// Versions: the binary is the pinned release.
	out, err := h.Run(ctx, "version", "--short")
	if err != nil || !strings.HasPrefix(strings.TrimSpace(out), "v4.3.1") {
		t.Errorf("helm version = %q, %v; want v4.3.1", out, err)
	}
}
