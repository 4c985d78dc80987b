package toolbuild

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRequiredVersion(t *testing.T) {
	t.Parallel()
	gomod := `module x

go 1.26

require example.com/single v1.2.3

require (
	k8s.io/kubernetes v1.37.2 // the pin
	example.com/indirect v0.1.0 // indirect
)

replace k8s.io/api => k8s.io/api v0.37.2
`
	for _, tc := range []struct{ desc, path, want string }{
		{"single-line require", "example.com/single", "v1.2.3"},
		{"block with comment", "k8s.io/kubernetes", "v1.37.2"},
		{"indirect", "example.com/indirect", "v0.1.0"},
		{"replace is not a require", "k8s.io/api", ""},
		{"absent", "example.com/none", ""},
	} {
		if got := requiredVersion([]byte(gomod), tc.path); got != tc.want {
			t.Errorf("%s: requiredVersion(%s) = %q, want %q", tc.desc, tc.path, got, tc.want)
		}
	}
}

func TestLDFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ desc, got, want string }{
		{"prometheus module version", promRelease("v0.316.0"), "3.16.0"},
		{"prometheus patch", promRelease("v0.305.2"), "3.5.2"},
		{"other version", promRelease("v2.1.0"), "2.1.0"},
		{"kube", kubeLDFlags("v1.37.2"), "-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.desc, tc.got, tc.want)
		}
	}
}

// TestPinnedTools reads every real tool's version from its module, so a
// typo in a Pin or a module path fails here rather than in a slow build.
func TestPinnedTools(t *testing.T) {
	t.Parallel()
	b := Builder{CacheDir: t.TempDir(), LinkDir: "-"}
	seen := map[string]bool{}
	for _, tool := range All() {
		if seen[tool.Name] {
			t.Errorf("tool %s listed twice", tool.Name)
		}
		seen[tool.Name] = true
		v, err := b.Version(tool)
		if err != nil {
			t.Errorf("%s: %v", tool.Name, err)
			continue
		}
		p, err := b.Path(tool)
		if err != nil {
			t.Errorf("%s: %v", tool.Name, err)
			continue
		}
		dir := filepath.Base(filepath.Dir(p))
		if !strings.HasPrefix(dir, tool.Name+"-"+v+"-") || filepath.Base(p) != tool.Name {
			t.Errorf("%s: cache path %s, want .../%s-%s-HASH/%s", tool.Name, p, tool.Name, v, tool.Name)
		}
		if got, ok := ByName(tool.Name); !ok || got.Package != tool.Package {
			t.Errorf("ByName(%s) = %v, %v", tool.Name, got.Package, ok)
		}
	}
	// The versions TESTENV-NOTES and the README name.
	for name, want := range map[string]string{"kube-apiserver": "v1.37.2", "prometheus": "v0.316.0", "helm": "v4.3.1"} {
		tool, _ := ByName(name)
		if v, _ := b.Version(tool); v != want {
			t.Errorf("%s pinned at %s, want %s", name, v, want)
		}
	}
}

func TestRepoRoot(t *testing.T) {
	t.Parallel()
	root, err := RepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || modulePath(b) != repoModule {
		t.Fatalf("root %s: module %q, %v", root, modulePath(b), err)
	}
	// From inside a nested tools module, the walk goes past its go.mod.
	if r, err := RepoRoot(filepath.Join(root, "testenv", "tools", "kube")); err != nil || r != root {
		t.Errorf("RepoRoot(testenv/tools/kube) = %s, %v; want %s", r, err, root)
	}
	if _, err := RepoRoot(t.TempDir()); err == nil {
		t.Error("RepoRoot outside the repo succeeded")
	}
}

// syncWriter collects progress lines from concurrent builders.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// fakeRepo is a repository with one tools module holding a tiny program.
func fakeRepo(t *testing.T) (root string, tool Tool) {
	t.Helper()
	root = t.TempDir()
	mod := filepath.Join(root, "testenv", "tools", "hello")
	files := map[string]string{
		filepath.Join(root, "go.mod"): "module " + repoModule + "\n\ngo 1.26\n",
		// The pinned module is a local replacement: no network in tests.
		filepath.Join(mod, "go.mod"): "module example.com/hello\n\ngo 1.26\n\nrequire example.com/pinned v1.0.0\n\n" +
			"replace example.com/pinned => ./pinned\n",
		filepath.Join(mod, "pinned", "go.mod"): "module example.com/pinned\n\ngo 1.26\n",
		filepath.Join(mod, "main.go"):          "package main\n\nimport \"fmt\"\n\nvar version = \"dev\"\n\nfunc main() { fmt.Println(\"hello\", version) }\n",
	}
	for p, body := range files {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root, Tool{Name: "hello", Module: "testenv/tools/hello", Pin: "example.com/pinned",
		Package: "example.com/hello", Cold: 20 * time.Second,
		LDFlags: func(v string) string { return "-X main.version=" + v }}
}

// TestBuildOnceAndCache builds a tiny tool from several goroutines at once
// (each with its own Builder, as separate test processes would): one build,
// one binary stamped with the pinned version, a link to it, and no build at
// all the second time.
func TestBuildOnceAndCache(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, tool := fakeRepo(t)
	cache, links := t.TempDir(), t.TempDir()
	progress := &syncWriter{}

	const n = 4
	paths := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			b := Builder{RepoRoot: root, CacheDir: cache, LinkDir: links, Progress: progress}
			paths[i], errs[i] = b.Build(ctx, tool)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("build %d: %v", i, errs[i])
		}
		if paths[i] != paths[0] {
			t.Fatalf("builds disagree on the path: %s vs %s", paths[i], paths[0])
		}
	}
	if got := strings.Count(progress.String(), "toolbuild: building hello v1.0.0 (under a minute, cached in "); got != 1 {
		t.Fatalf("%d builds started, want 1; progress:\n%s", got, progress)
	}
	if !strings.Contains(progress.String(), "toolbuild: built hello v1.0.0 in ") {
		t.Errorf("no 'built' line; progress:\n%s", progress)
	}
	if !strings.HasPrefix(paths[0], filepath.Join(cache, "hello-v1.0.0-")) {
		t.Errorf("binary at %s, want under %s/hello-v1.0.0-HASH", paths[0], cache)
	}
	out, err := exec.CommandContext(ctx, paths[0]).Output()
	if err != nil || strings.TrimSpace(string(out)) != "hello v1.0.0" {
		t.Errorf("running the tool: %q, %v; want the pinned version stamped", out, err)
	}
	if dest, err := os.Readlink(filepath.Join(links, "hello")); err != nil || dest != paths[0] {
		t.Errorf("link = %s, %v; want %s", dest, err, paths[0])
	}

	// Warm: nothing is built, even with a fresh link directory.
	warm := &syncWriter{}
	b := Builder{RepoRoot: root, CacheDir: cache, LinkDir: t.TempDir(), Progress: warm}
	if p, err := b.Build(ctx, tool); err != nil || p != paths[0] {
		t.Fatalf("warm build = %s, %v", p, err)
	}
	if warm.String() != "" {
		t.Errorf("warm cache printed %q", warm)
	}

	// A comment in go.mod is not an input.
	gomod := filepath.Join(root, tool.Module, "go.mod")
	raw, err := os.ReadFile(gomod)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gomod, append([]byte("// A comment.\n\n"), raw...), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := b.Path(tool); err != nil || p != paths[0] {
		t.Errorf("path after a go.mod comment = %s, %v; want the same entry %s", p, err, paths[0])
	}
	// A changed input (here the program) is another cache entry.
	if err := os.WriteFile(filepath.Join(root, tool.Module, "main.go"),
		[]byte("package main\n\nfunc main() { println(\"changed\") }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, err := b.Path(tool); err != nil || p == paths[0] {
		t.Errorf("path after a change = %s, %v; want a new entry", p, err)
	}
}

func TestBuildErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, tool := fakeRepo(t)
	for _, tc := range []struct {
		desc string
		edit func(*Tool)
		want string
	}{
		{"no such module", func(tl *Tool) { tl.Module = "testenv/tools/none" }, "testenv/tools/none/go.mod"},
		{"pin not required", func(tl *Tool) { tl.Pin = "example.com/other" }, "requires no example.com/other"},
		{"package does not build", func(tl *Tool) { tl.Package = "example.com/hello/missing" }, "go build example.com/hello/missing"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			tl := tool
			tc.edit(&tl)
			b := Builder{RepoRoot: root, CacheDir: t.TempDir(), LinkDir: "-", Progress: &syncWriter{}}
			_, err := b.Build(ctx, tl)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLockWaitHonoursContext(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".lock")
	unlock, err := lockFile(context.Background(), path, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	waited := false
	if _, err := lockFile(ctx, path, func() { waited = true }); err == nil || !waited {
		t.Fatalf("second lock: err %v, waited %v; want a context error after waiting", err, waited)
	}
}
