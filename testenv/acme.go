package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/acmediag/acmediag/testenv/pebble"
)

// startPebble builds Pebble from testenv/tools (cached) and runs it with its
// validation authority pointed at the universe: the public Unbound for DNS,
// the universe's HTTP and HTTPS ports for the challenges.
func (u *Universe) startPebble(ctx context.Context) error {
	bin, err := pebble.Build(ctx, "")
	if err != nil {
		return fmt.Errorf("building pebble: %w", err)
	}
	dir := filepath.Join(u.workDir, "pebble")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	p, err := pebble.Start(ctx, pebble.Config{Bin: bin, HTTPPort: u.httpPort, TLSPort: u.httpsPort,
		DNSServer: u.Resolver(), WorkDir: dir, Logger: u.log})
	if err != nil {
		return err
	}
	u.pebble = p
	return nil
}

// ACMEDirectory is Pebble's directory URL, or "" when the universe runs
// without it (Options.ACME).
func (u *Universe) ACMEDirectory() string {
	if u.pebble == nil {
		return ""
	}
	return u.pebble.DirectoryURL()
}

// ACMECACert is the CA file for the TLS of Pebble's API (--acme-ca-cert).
func (u *Universe) ACMECACert() string {
	if u.pebble == nil {
		return ""
	}
	return u.pebble.CAFile()
}

// ACMEArgs are the diagnose flags that order from Pebble.
func (u *Universe) ACMEArgs() []string {
	if u.pebble == nil {
		return nil
	}
	return []string{"--acme-directory", u.ACMEDirectory(), "--acme-ca-cert", u.ACMECACert(),
		"--acme-account-key", filepath.Join(u.workDir, "pebble", "account.key")}
}
