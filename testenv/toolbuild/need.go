package toolbuild

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"
)

// Need returns the binaries of tools for a test, building those the cache
// lacks. When one cannot be had, the test fails under CI=true (CI runs as
// root and must run everything) and is skipped otherwise, saying why. A
// cold build that would not finish before the test binary's -timeout is
// not started: the message says to run `make tools` first.
func Need(t *testing.T, tools ...Tool) []string {
	t.Helper()
	var b Builder
	paths := make([]string, len(tools))
	for i, tool := range tools {
		p, err := b.need(t, tool)
		if err != nil {
			msg := fmt.Sprintf("tool %s unavailable: %v", tool.Name, err)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg + " (skipped outside CI)")
		}
		paths[i] = p
	}
	return paths
}

func (b *Builder) need(t *testing.T, tool Tool) (string, error) {
	bin, err := b.Path(tool)
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	if d, ok := t.Deadline(); ok {
		if !isExecutable(bin) {
			if left := time.Until(d); left < tool.Cold {
				return "", fmt.Errorf("not built yet, and a cold build takes %s while this test binary has %s left "+
					"before its -timeout: run `make tools` (or go test -timeout 30m)", tool.About(), left.Round(time.Second))
			}
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-10*time.Second))
		defer cancel()
	}
	return b.Build(ctx, tool)
}
