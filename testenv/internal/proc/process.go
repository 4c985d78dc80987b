package proc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// Process is a running child process: its output goes, one entry per line,
// to a logger at debug level and into a tail kept for error messages. It is
// killed with SIGKILL when the goroutine's OS thread that started it dies
// (Pdeathsig), so it never outlives the test binary.
type Process struct {
	name string
	cmd  *exec.Cmd
	log  *zap.Logger
	out  *TailBuffer

	exited chan struct{}
	// waitErr is written once before exited is closed.
	waitErr error
	stop    sync.Once
}

// Start starts cmd (which must not have been started and must not set
// Stdout, Stderr or SysProcAttr) as the child process called name. log may
// be nil.
func Start(name string, cmd *exec.Cmd, log *zap.Logger) (*Process, error) {
	if log == nil {
		log = zap.NewNop()
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A grandchild that inherited the output pipe must not keep Wait (and
	// so Stop) waiting once the child itself has exited.
	cmd.WaitDelay = time.Second
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &Process{name: name, cmd: cmd, log: log, out: &TailBuffer{Max: 16 << 10}, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		_ = pw.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, cmd.Path, err)
	}
	pumped := make(chan struct{})
	go func() {
		p.pump(pr)
		close(pumped)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		_ = pw.Close()
		<-pumped // the last lines are in the tail before anyone hears of the exit
		close(p.exited)
	}()
	return p, nil
}

// pump forwards output lines to the logger and the tail.
func (p *Process) pump(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 256<<10)
	for sc.Scan() {
		line := sc.Text()
		_, _ = p.out.Write([]byte(line + "\n"))
		p.log.Debug("output", zap.String("line", line))
	}
	// Drain after an over-long line so the child never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// Name is the name given to Start.
func (p *Process) Name() string { return p.name }

// Pid is the child's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// ExitErr is how the process ended (nil for exit status 0); only
// meaningful once Exited is closed.
func (p *Process) ExitErr() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
		return nil
	}
}

// Output is the tail of what the process printed.
func (p *Process) Output() string { return p.out.String() }

// Stop sends SIGTERM, waits up to grace for the process to exit, then sends
// SIGKILL and waits for that too. A grace of 0 kills at once. It is safe to
// call more than once and after the process exited on its own.
func (p *Process) Stop(grace time.Duration) {
	p.stop.Do(func() {
		if grace > 0 {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-p.exited:
				return
			case <-t.C:
				p.log.Warn("did not exit after SIGTERM, killing", zap.Int("pid", p.Pid()), zap.Duration("grace", grace))
			}
		}
		_ = p.cmd.Process.Kill()
		t := time.NewTimer(10 * time.Second)
		defer t.Stop()
		select {
		case <-p.exited:
		case <-t.C:
			p.log.Error("did not exit after SIGKILL", zap.Int("pid", p.Pid()))
		}
	})
}

// ErrExited is returned by Poll when the process exits before check passes.
var ErrExited = errors.New("process exited")

// Poll calls check every interval until it returns nil, the process exits
// or ctx ends; the error then names the process, its exit and the last
// check error, and its output tail.
func (p *Process) Poll(ctx context.Context, interval time.Duration, check func(context.Context) error) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s (pid %d) not ready (last check: %v): %w; output: %s",
				p.name, p.Pid(), last, ctx.Err(), p.Output())
		case <-p.exited:
			return fmt.Errorf("%s (pid %d) %w before it was ready (%v; last check: %v); output: %s",
				p.name, p.Pid(), ErrExited, p.waitErr, last, p.Output())
		case <-tick.C:
		}
	}
}
