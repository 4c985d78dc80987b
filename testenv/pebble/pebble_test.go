package pebble

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestStartServesDirectory builds Pebble, starts it on loopback and reads
// its directory through a client that trusts only CAFile.
func TestStartServesDirectory(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := Build(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// A second Build reuses the binary: same path, untouched mtime.
	st1, _ := os.Stat(bin)
	bin2, err := Build(ctx, "")
	if err != nil || bin2 != bin {
		t.Fatalf("second build: %q, %v", bin2, err)
	}
	if st2, _ := os.Stat(bin); !st2.ModTime().Equal(st1.ModTime()) {
		t.Errorf("binary rebuilt although go.sum is older")
	}

	p, err := Start(ctx, Config{Bin: bin, HTTPPort: 18080, WorkDir: t.TempDir(), DNSServer: "127.0.0.1:1", Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	b, err := os.ReadFile(p.CAFile())
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("no certificate in %s", p.CAFile())
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get(p.DirectoryURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var dir map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&dir); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"newNonce", "newAccount", "newOrder"} {
		if u, _ := dir[k].(string); !strings.HasPrefix(u, "https://"+p.Addr()) {
			t.Errorf("directory %s = %v", k, dir[k])
		}
	}

	// The issuing root is a CA certificate and is not the API CA.
	rb, err := os.ReadFile(p.RootCAFile())
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(rb)
	if blk == nil {
		t.Fatalf("no PEM in %s", p.RootCAFile())
	}
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil || !root.IsCA {
		t.Fatalf("root: %v, IsCA=%v", err, root != nil && root.IsCA)
	}
	if strings.Contains(root.Subject.CommonName, "acmediag") {
		t.Errorf("RootCAFile is the API CA: %s", root.Subject)
	}

	p.Close()
	select {
	case <-p.Exited():
	case <-time.After(5 * time.Second):
		t.Fatal("pebble still running after Close")
	}
}

func TestStartRejectsBadConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dir := t.TempDir()
	notExec := filepath.Join(dir, "not-a-binary")
	if err := os.WriteFile(notExec, []byte("#!/bin/sh\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		desc string
		cfg  Config
		want string
	}{
		{desc: "no binary", cfg: Config{HTTPPort: 80, WorkDir: dir}, want: "Bin and WorkDir"},
		{desc: "no HTTP port", cfg: Config{Bin: notExec, WorkDir: dir}, want: "HTTPPort 0"},
		{desc: "missing binary", cfg: Config{Bin: filepath.Join(dir, "nope"), HTTPPort: 80, WorkDir: dir}, want: "nope"},
		{desc: "binary exits at once", cfg: Config{Bin: notExec, HTTPPort: 80, WorkDir: dir}, want: "exited before it was ready"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			_, err := Start(ctx, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}
