// Package helm runs the helm CLI pinned in testenv/tools/helm (built from
// helm.sh/helm/v4) for chart tests: lint and template, offline, with its
// configuration, cache and data directories private to the caller.
//
// It owns helm's environment. It must not talk to a registry, a repository
// or a cluster: charts come from directories, and what they render is for
// the caller to check (or to apply to testenv/kube's API server).
package helm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// Helm runs one helm binary with private state directories.
type Helm struct {
	// Bin is the helm binary.
	Bin string
	// Home holds helm's config, cache and data directories.
	Home string
}

// New builds (or finds in the tools cache) the pinned helm and gives it
// state directories under home (created if missing).
func New(ctx context.Context, home string) (*Helm, error) {
	bin, err := toolbuild.Build(ctx, toolbuild.Helm)
	if err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	return &Helm{Bin: bin, Home: home}, nil
}

// Lint runs `helm lint CHART [args]`; a chart with errors (or, with
// --strict, warnings) is an error quoting helm's report. The output is
// returned either way.
func (h *Helm) Lint(ctx context.Context, chart string, args ...string) (string, error) {
	return h.Run(ctx, append([]string{"lint", chart}, args...)...)
}

// Template runs `helm template RELEASE CHART [args]` and returns the
// rendered manifests (stdout only; warnings on stderr go into an error's
// text when helm fails).
func (h *Helm) Template(ctx context.Context, release, chart string, args ...string) (string, error) {
	cmd := h.command(ctx, append([]string{"template", release, chart}, args...))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm template %s %s: %w: %s", release, chart, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// Run runs helm with args and returns its combined output; a non-zero exit
// is an error that quotes it.
func (h *Helm) Run(ctx context.Context, args ...string) (string, error) {
	cmd := h.command(ctx, args)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("helm %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

func (h *Helm) command(ctx context.Context, args []string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, h.Bin, args...)
	env := make([]string, 0, len(os.Environ())+4)
	for _, kv := range os.Environ() {
		// Nothing of the user's helm set-up or kube context leaks in.
		if !strings.HasPrefix(kv, "HELM_") && !strings.HasPrefix(kv, "KUBECONFIG=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env,
		"HELM_CONFIG_HOME="+filepath.Join(h.Home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.Home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.Home, "data"),
		"KUBECONFIG="+filepath.Join(h.Home, "no-kubeconfig"),
	)
	return cmd
}
