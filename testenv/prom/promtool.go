package prom

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// Promtool runs the pinned promtool.
type Promtool struct {
	// Bin is the promtool binary.
	Bin string
}

// NewPromtool builds (or finds in the tools cache) the pinned promtool.
func NewPromtool(ctx context.Context) (*Promtool, error) {
	bin, err := toolbuild.Build(ctx, toolbuild.Promtool)
	if err != nil {
		return nil, fmt.Errorf("promtool: %w", err)
	}
	return &Promtool{Bin: bin}, nil
}

// CheckRules runs `promtool check rules FILE...`: nil when every file is a
// valid rule file, else an error carrying promtool's report. The output is
// returned either way.
func (p *Promtool) CheckRules(ctx context.Context, files ...string) (string, error) {
	return p.Run(ctx, append([]string{"check", "rules"}, files...)...)
}

// TestRules runs `promtool test rules FILE...` (rule unit tests: input
// series, expected alerts and recording-rule values).
func (p *Promtool) TestRules(ctx context.Context, files ...string) (string, error) {
	return p.Run(ctx, append([]string{"test", "rules"}, files...)...)
}

// CheckConfig runs `promtool check config FILE`.
func (p *Promtool) CheckConfig(ctx context.Context, file string) (string, error) {
	return p.Run(ctx, "check", "config", file)
}

// Run runs promtool with args and returns its combined output; a non-zero
// exit is an error that quotes the output.
func (p *Promtool) Run(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "promtool", p.Bin, nil, args)
}

// run runs a tool to completion, returning its combined output.
func run(ctx context.Context, name, bin string, env, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
