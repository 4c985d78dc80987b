package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"

	"github.com/acmediag/acmediag/testenv/internal/proc"
)

// aptMu serialises apt-get: two installs at once fight over dpkg's lock.
var aptMu sync.Mutex

// EnsureCommand finds a command that a Debian package provides — on PATH,
// or in /usr/sbin or /usr/bin — and installs pkg with apt-get when it is
// missing and the process runs as root (refreshing the package lists when
// the first try fails, as on a fresh machine). Otherwise the error says
// what to install.
func EnsureCommand(ctx context.Context, name, pkg string) (string, error) {
	find := func() (string, bool) {
		if p, err := exec.LookPath(name); err == nil {
			return p, true
		}
		for _, dir := range []string{"/usr/sbin", "/usr/bin"} {
			p := filepath.Join(dir, name)
			if _, err := os.Stat(p); err == nil {
				return p, true
			}
		}
		return "", false
	}
	if p, ok := find(); ok {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s is not installed: install the Debian package %s (apt-get install -y %s), or run as root to have it installed", name, pkg, pkg)
	}
	aptMu.Lock()
	defer aptMu.Unlock()
	if p, ok := find(); ok {
		return p, nil
	}
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-q", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get install -y %s: %w: %s", pkg, err, proc.Tail(out, 2000))
		}
		return nil
	}
	if err := install(); err != nil {
		update := exec.CommandContext(ctx, "apt-get", "update", "-q")
		update.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, uerr := update.CombinedOutput(); uerr != nil {
			return "", errors.Join(err, fmt.Errorf("apt-get update: %w: %s", uerr, proc.Tail(out, 2000)))
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	if p, ok := find(); ok {
		return p, nil
	}
	return "", fmt.Errorf("apt-get installed %s but %s is still not found", pkg, name)
}
