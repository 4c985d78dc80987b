// Package toolbuild builds the servers and utilities the hermetic universe
// runs (Pebble, kube-apiserver, etcd, Prometheus, promtool, helm) from Go
// modules pinned under testenv/tools, and caches the binaries.
//
// It owns where a tool's version is pinned (a require line of the tool's own
// module under testenv/tools, one module per heavy dependency graph so that
// building Pebble never resolves Kubernetes), the cache layout, and the
// cross-process lock that makes parallel test packages build a tool once. It
// must not start or configure the tools: testenv/pebble, testenv/kube and
// testenv/prom do that.
//
// Cache layout: a tool is built once per (name, version, inputs) into
//
//	${ACMEDIAG_TOOLS_CACHE:-$XDG_CACHE_HOME/acmediag/tools}/<name>-<version>-<inputs>/<name>
//
// where <inputs> is a short hash of the tool module's go.mod, go.sum and Go
// files: outside the clone, so a fresh clone on a warm machine builds
// nothing, and two branches pinning different versions keep both. A symbolic
// link <repo>/.cache/tools/<name> points at the binary in use, for humans and
// the Makefile.
package toolbuild

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/acmediag/acmediag/testenv/internal/proc"
	"go.uber.org/zap"
)

// EnvCache names the environment variable that moves the cache.
const EnvCache = "ACMEDIAG_TOOLS_CACHE"

// Tool is one program built from a pinned Go module.
type Tool struct {
	// Name is the binary's name and the first part of its cache key.
	Name string
	// Module is the tools module's directory, relative to the repository root.
	Module string
	// Pin is the module path whose require line in Module's go.mod is the
	// tool's version, e.g. "k8s.io/kubernetes".
	Pin string
	// Package is the import path of the main package to build.
	Package string
	// Cold is about how long a build takes with an empty Go build cache on
	// a shared 2-core machine (measured), for the progress line and for
	// Need's deadline check. Tools of one module share compiled packages:
	// promtool after prometheus takes a minute or two.
	Cold time.Duration
	// LDFlags returns -ldflags for the version (nil: none), e.g. to stamp
	// the version the binary reports.
	LDFlags func(version string) string
}

// About is the cold build time as the progress line says it.
func (t Tool) About() string {
	if t.Cold < time.Minute {
		return "under a minute"
	}
	return fmt.Sprintf("about %d min on 2 cores", int(t.Cold.Round(time.Minute)/time.Minute))
}

// The tools the universe runs. Their versions live in the modules' go.mod.
var (
	Pebble = Tool{Name: "pebble", Module: "testenv/tools", Pin: "github.com/letsencrypt/pebble/v2",
		Package: "github.com/letsencrypt/pebble/v2/cmd/pebble", Cold: time.Minute}
	KubeAPIServer = Tool{Name: "kube-apiserver", Module: "testenv/tools/kube", Pin: "k8s.io/kubernetes",
		Package: "k8s.io/kubernetes/cmd/kube-apiserver", Cold: 10 * time.Minute,
		LDFlags: kubeLDFlags}
	Etcd = Tool{Name: "etcd", Module: "testenv/tools/etcd", Pin: "go.etcd.io/etcd/server/v3",
		Package: "github.com/acmediag/acmediag/testenv/tools/etcd/cmd/etcd", Cold: 2 * time.Minute}
	Prometheus = Tool{Name: "prometheus", Module: "testenv/tools/prom", Pin: "github.com/prometheus/prometheus",
		Package: "github.com/prometheus/prometheus/cmd/prometheus", Cold: 15 * time.Minute,
		LDFlags: promLDFlags}
	Promtool = Tool{Name: "promtool", Module: "testenv/tools/prom", Pin: "github.com/prometheus/prometheus",
		Package: "github.com/prometheus/prometheus/cmd/promtool", Cold: 11 * time.Minute,
		LDFlags: promLDFlags}
	Helm = Tool{Name: "helm", Module: "testenv/tools/helm", Pin: "helm.sh/helm/v4",
		Package: "helm.sh/helm/v4/cmd/helm", Cold: 9 * time.Minute,
		LDFlags: func(v string) string { return "-X helm.sh/helm/v4/internal/version.version=" + v }}
)

// All is every tool, in the order `make tools` builds them (prometheus
// before promtool, which then reuses most of its compiled packages).
func All() []Tool { return []Tool{Pebble, Etcd, KubeAPIServer, Helm, Prometheus, Promtool} }

// ByName finds a tool of All by name.
func ByName(name string) (Tool, bool) {
	for _, t := range All() {
		if t.Name == name {
			return t, true
		}
	}
	return Tool{}, false
}

// kubeLDFlags stamps the release into k8s.io/component-base/version, as
// Kubernetes' own build does (otherwise /version says v0.0.0-master).
func kubeLDFlags(v string) string {
	major, minor, _ := strings.Cut(strings.TrimPrefix(v, "v"), ".")
	minor, _, _ = strings.Cut(minor, ".")
	const p = "k8s.io/component-base/version."
	return fmt.Sprintf("-X %sgitVersion=%s -X %sgitMajor=%s -X %sgitMinor=%s -X %sgitTreeState=clean",
		p, v, p, major, p, minor, p)
}

// promLDFlags stamps the release the way Prometheus' promu build does.
func promLDFlags(v string) string {
	// Module versions v0.316.0 are Prometheus 3.16.0.
	const p = "github.com/prometheus/common/version."
	return fmt.Sprintf("-X %sVersion=%s -X %sBranch=module", p, promRelease(v), p)
}

// promRelease maps Prometheus' Go module version (v0.MMMPP.x, e.g. v0.316.0)
// to its release (3.16.0); anything else is returned without the "v".
func promRelease(v string) string {
	parts := strings.Split(strings.TrimPrefix(v, "v"), ".")
	if len(parts) == 3 && parts[0] == "0" && len(parts[1]) == 3 {
		if n, err := strconv.Atoi(parts[1][1:]); err == nil {
			return fmt.Sprintf("%c.%d.%s", parts[1][0], n, parts[2])
		}
	}
	return strings.TrimPrefix(v, "v")
}

// Builder builds and caches tools. The zero value is ready: it finds the
// repository from the working directory and uses the default cache.
type Builder struct {
	// RepoRoot is the acmediag checkout; "" finds it above the working directory.
	RepoRoot string
	// CacheDir holds the built binaries; "" is $ACMEDIAG_TOOLS_CACHE, else
	// the user cache directory's acmediag/tools, else <repo>/.cache/tools/store.
	CacheDir string
	// LinkDir gets a symbolic link per built tool; "" is <repo>/.cache/tools,
	// "-" makes none.
	LinkDir string
	// Go is the go command; "" is `go` from PATH, else /usr/local/go/bin/go.
	Go string
	// Progress gets one line when a build starts and one when it ends (nil:
	// os.Stderr), so a test that waits minutes for a build says why.
	Progress io.Writer
	// Logger gets the same as structured entries; nil discards them.
	Logger *zap.Logger
}

// Build returns the path of t's binary, building it first unless the cache
// holds it. Concurrent calls, in this process or others, build it once.
func Build(ctx context.Context, t Tool) (string, error) {
	var b Builder
	return b.Build(ctx, t)
}

// Version is t's pinned version, read from the require line of t.Pin in the
// tool module's go.mod.
func (b *Builder) Version(t Tool) (string, error) {
	root, err := b.root()
	if err != nil {
		return "", err
	}
	gomod := filepath.Join(root, t.Module, "go.mod")
	raw, err := os.ReadFile(gomod)
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", t.Name, err)
	}
	v := requiredVersion(raw, t.Pin)
	if v == "" {
		return "", fmt.Errorf("tool %s: %s requires no %s", t.Name, gomod, t.Pin)
	}
	return v, nil
}

// Path is where t's binary is (or will be) cached.
func (b *Builder) Path(t Tool) (string, error) {
	root, err := b.root()
	if err != nil {
		return "", err
	}
	v, err := b.Version(t)
	if err != nil {
		return "", err
	}
	h, err := inputsHash(filepath.Join(root, t.Module), t)
	if err != nil {
		return "", fmt.Errorf("tool %s: %w", t.Name, err)
	}
	cache, err := b.cacheDir(root)
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, fmt.Sprintf("%s-%s-%s", t.Name, v, h), t.Name), nil
}

// Build returns the path of t's binary, building it first unless the cache
// holds it. Concurrent calls, in this process or others, build it once: the
// first takes a file lock next to the binary, the others wait for it (as
// long as ctx allows) and then find the binary.
func (b *Builder) Build(ctx context.Context, t Tool) (string, error) {
	bin, err := b.Path(t)
	if err != nil {
		return "", err
	}
	if isExecutable(bin) {
		return bin, b.link(t, bin)
	}
	dir := filepath.Dir(bin)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("tool %s: %w", t.Name, err)
	}
	unlock, err := lockFile(ctx, filepath.Join(dir, ".lock"), func() {
		b.progress(fmt.Sprintf("waiting for another process building %s (cached in %s)", t.Name, dir))
	})
	if err != nil {
		return "", fmt.Errorf("tool %s: lock %s: %w", t.Name, dir, err)
	}
	defer unlock()
	if isExecutable(bin) { // built while we waited
		return bin, b.link(t, bin)
	}
	if err := b.build(ctx, t, bin); err != nil {
		return "", err
	}
	return bin, b.link(t, bin)
}

// build runs go build into a temporary name in bin's directory and renames
// it, so nobody ever executes a half-written file.
func (b *Builder) build(ctx context.Context, t Tool, bin string) error {
	root, _ := b.root()
	v, _ := b.Version(t)
	dir := filepath.Dir(bin)
	b.progress(fmt.Sprintf("building %s %s (%s, cached in %s)", t.Name, v, t.About(), dir))
	start := time.Now()
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	args := []string{"build", "-o", tmp}
	if t.LDFlags != nil {
		args = append(args, "-ldflags="+t.LDFlags(v))
	}
	args = append(args, t.Package)
	cmd := exec.CommandContext(ctx, b.goCmd(), args...)
	cmd.Dir = filepath.Join(root, t.Module)
	cmd.Env = buildEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out := &proc.TailBuffer{Max: 4096}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("tool %s %s: go build %s in %s: %w: %s", t.Name, v, t.Package, cmd.Dir, err, strconv.Quote(out.String()))
	}
	if err := os.Rename(tmp, bin); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("tool %s: %w", t.Name, err)
	}
	var size int64
	if fi, err := os.Stat(bin); err == nil {
		size = fi.Size()
	}
	took := time.Since(start).Round(time.Second)
	b.progress(fmt.Sprintf("built %s %s in %s (%d MB): %s", t.Name, v, took, size>>20, bin))
	b.logger().Info("built", zap.String("tool", t.Name), zap.String("version", v),
		zap.Duration("took", took), zap.Int64("bytes", size), zap.String("path", bin))
	return nil
}

// buildEnv is the parent environment for a build in a tools module: its own
// go.mod and go.sum, never a workspace, and a GOFLAGS of its own (the
// Makefile exports -mod=mod; a tools module is tidy, so a build must never
// need to change its go.mod or go.sum).
func buildEnv(parent []string) []string {
	env := slices.DeleteFunc(slices.Clone(parent), func(kv string) bool {
		return strings.HasPrefix(kv, "GOWORK=") || strings.HasPrefix(kv, "GOFLAGS=")
	})
	return append(env, "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
}

// link points LinkDir/<name> at bin.
func (b *Builder) link(t Tool, bin string) error {
	if b.LinkDir == "-" {
		return nil
	}
	dir := b.LinkDir
	if dir == "" {
		root, err := b.root()
		if err != nil {
			return err
		}
		dir = filepath.Join(root, ".cache", "tools")
	}
	link := filepath.Join(dir, t.Name)
	if cur, err := os.Readlink(link); err == nil && cur == bin {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("tool %s: link: %w", t.Name, err)
	}
	tmp := fmt.Sprintf("%s.link%d", link, os.Getpid())
	_ = os.Remove(tmp)
	if err := os.Symlink(bin, tmp); err != nil {
		return fmt.Errorf("tool %s: link: %w", t.Name, err)
	}
	if err := os.Rename(tmp, link); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("tool %s: link: %w", t.Name, err)
	}
	return nil
}

func (b *Builder) progress(line string) {
	w := b.Progress
	if w == nil {
		w = os.Stderr
	}
	fmt.Fprintln(w, "toolbuild: "+line)
}

func (b *Builder) logger() *zap.Logger {
	if b.Logger == nil {
		return zap.NewNop()
	}
	return b.Logger.Named("toolbuild")
}

func (b *Builder) goCmd() string {
	if b.Go != "" {
		return b.Go
	}
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

func (b *Builder) root() (string, error) {
	if b.RepoRoot != "" {
		return b.RepoRoot, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("toolbuild: %w", err)
	}
	return RepoRoot(wd)
}

// cacheDir is CacheDir, $ACMEDIAG_TOOLS_CACHE, the user cache directory's
// acmediag/tools, or <repo>/.cache/tools/store, the first that is set.
func (b *Builder) cacheDir(root string) (string, error) {
	if b.CacheDir != "" {
		return filepath.Abs(b.CacheDir)
	}
	return DefaultCacheDir(root), nil
}

// DefaultCacheDir is where tools are cached when a Builder names no CacheDir.
func DefaultCacheDir(repoRoot string) string {
	if d := os.Getenv(EnvCache); d != "" {
		if abs, err := filepath.Abs(d); err == nil {
			return abs
		}
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "acmediag", "tools")
	}
	return filepath.Join(repoRoot, ".cache", "tools", "store")
}

// repoModule is the module path whose go.mod marks the repository root.
const repoModule = "github.com/acmediag/acmediag"

// RepoRoot walks up from dir to the directory whose go.mod declares the
// acmediag module. Nested modules (testenv/tools) are skipped on the way.
func RepoRoot(dir string) (string, error) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("repo root: %w", err)
	}
	for range 64 { // bounded: a path has far fewer components
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && modulePath(b) == repoModule {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			break
		}
		d = parent
	}
	return "", fmt.Errorf("repo root: no go.mod of %s above %s", repoModule, dir)
}

// modulePath returns the module path of a go.mod file's contents.
func modulePath(gomod []byte) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// requiredVersion is the version go.mod requires of module path, "" if none:
// both `require path v` and lines inside a require block.
func requiredVersion(gomod []byte, path string) string {
	inBlock := false
	for line := range strings.SplitSeq(string(gomod), "\n") {
		line, _, _ = strings.Cut(line, "//")
		f := strings.Fields(line)
		switch {
		case len(f) == 0:
		case f[0] == "require" && len(f) == 2 && f[1] == "(":
			inBlock = true
		case inBlock && f[0] == ")":
			inBlock = false
		case f[0] == "require" && len(f) == 3 && f[1] == path:
			return f[2]
		case inBlock && len(f) == 2 && f[0] == path:
			return f[1]
		}
	}
	return ""
}

// inputsHash is a short hash of what decides the binary besides the pinned
// version: the tool module's go.mod (without comments), go.sum and Go files
// (nested modules excluded), the package and the link flags.
func inputsHash(modDir string, t Tool) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", t.Package, t.Name)
	if t.LDFlags != nil {
		fmt.Fprintf(h, "%s\n", t.LDFlags("V"))
	}
	var files []string
	err := filepath.WalkDir(modDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != modDir {
				if _, err := os.Stat(filepath.Join(p, "go.mod")); err == nil {
					return filepath.SkipDir // another tool's module
				}
			}
			return nil
		}
		if n := d.Name(); n == "go.mod" || n == "go.sum" || strings.HasSuffix(n, ".go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	slices.Sort(files)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		raw = bytes.ReplaceAll(raw, []byte("\r\n"), []byte("\n"))
		if filepath.Base(f) == "go.mod" {
			raw = stripComments(raw)
		}
		rel, _ := filepath.Rel(modDir, f)
		fmt.Fprintf(h, "%s %d\n", rel, len(raw))
		h.Write(raw)
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// stripComments drops go.mod comments and blank lines: editing a comment
// must not rebuild a tool that takes ten minutes.
func stripComments(gomod []byte) []byte {
	var out bytes.Buffer
	for line := range strings.SplitSeq(string(gomod), "\n") {
		line, _, _ = strings.Cut(line, "//")
		if line = strings.TrimSpace(line); line != "" {
			out.WriteString(line + "\n")
		}
	}
	return out.Bytes()
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// lockFile takes an exclusive flock on path, polling while another process
// holds it (flock itself cannot be interrupted by ctx). onWait runs once,
// the first time the lock is busy.
func lockFile(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	waited := false
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			_ = f.Close()
			return nil, err
		}
		if !waited {
			waited = true
			onWait()
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("still held by another build: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// ModuleDir is the directory, in the module cache, of module path at the
// version the Go module in modDir (relative to the repository root; "" is
// the repository's own module) requires, downloading it first if needed:
// how testenv reads data files (CRD manifests) from a pinned module.
func (b *Builder) ModuleDir(ctx context.Context, modDir, path string) (dir, version string, err error) {
	root, err := b.root()
	if err != nil {
		return "", "", err
	}
	cmd := exec.CommandContext(ctx, b.goCmd(), "mod", "download", "-json", path)
	cmd.Dir = filepath.Join(root, modDir)
	cmd.Env = buildEnv(os.Environ())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var m struct{ Dir, Version, Error string }
	if jerr := json.Unmarshal(out, &m); err == nil && jerr != nil {
		err = jerr
	}
	if err == nil && m.Error != "" {
		err = errors.New(m.Error)
	}
	if err == nil && m.Dir == "" {
		err = errors.New("no directory in the answer")
	}
	if err != nil {
		return "", "", fmt.Errorf("go mod download %s in %s: %w: %s", path, cmd.Dir, err, strconv.Quote(proc.Tail(stderr.Bytes(), 1024)))
	}
	return m.Dir, m.Version, nil
}
