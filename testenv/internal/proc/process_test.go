package proc

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestProcess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc   string
		script string
		grace  time.Duration
	}{
		{"exits on SIGTERM", "echo ready; exec sleep 60", 5 * time.Second},
		{"ignores SIGTERM and is killed", "trap '' TERM; echo ready; while :; do sleep 5; done", 300 * time.Millisecond},
		{"killed at once", "echo ready; exec sleep 60", 0},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			p, err := Start("sh", exec.Command("sh", "-c", tc.script), nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Poll(ctx, 10*time.Millisecond, func(context.Context) error {
				if !strings.Contains(p.Output(), "ready") {
					return errors.New("not yet")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			p.Stop(tc.grace)
			select {
			case <-p.Exited():
			default:
				t.Fatal("Stop returned before the process exited")
			}
			if took := time.Since(start); took > tc.grace+3*time.Second { // SIGKILL, then at most WaitDelay
				t.Errorf("Stop took %s", took)
			}
			if p.ExitErr() == nil {
				t.Error("a signalled process reports no exit error")
			}
			p.Stop(tc.grace) // twice is fine
		})
	}
}

func TestPollReportsExit(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Start("failing", exec.Command("sh", "-c", "echo bad flag >&2; exit 3"), nil)
	if err != nil {
		t.Fatal(err)
	}
	err = p.Poll(ctx, 10*time.Millisecond, func(context.Context) error { return errors.New("connection refused") })
	if !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "failing (pid") ||
		!strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "bad flag") {
		t.Errorf("err = %v, want the name, the exit status and the output", err)
	}
	if _, err := Start("missing", exec.Command("/nonexistent/bin"), nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/bin") {
		t.Errorf("start of a missing binary: %v", err)
	}
}
