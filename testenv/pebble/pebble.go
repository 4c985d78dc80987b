// Package pebble builds Let's Encrypt's Pebble ACME test server from the Go
// module pinned in testenv/tools and runs it as a separate process, the way
// Pebble's maintainers advise (it is not meant to run in-process). Pebble's
// validation authority is pointed at a caller-chosen DNS server and HTTP-01
// port so it validates names of the hermetic loopback universe.
//
// Two CAs are involved and they are easy to confuse: the API CA signs the TLS
// certificate Pebble's ACME and management endpoints serve (CAFile), and the
// issuing root signs the certificates Pebble issues (RootCAFile, fetched from
// the management API because Pebble generates it afresh at every start).
package pebble

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"github.com/acmediag/acmediag/testenv/internal/proc"
	"github.com/acmediag/acmediag/testenv/measure"
	"github.com/acmediag/acmediag/testenv/toolbuild"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
)

// RepoRoot walks up from dir to the directory whose go.mod declares the
// acmediag module. Nested modules (testenv/tools) are skipped on the way.
func RepoRoot(dir string) (string, error) { return toolbuild.RepoRoot(dir) }

// Build returns the pebble binary pinned in testenv/tools, building it into
// the tools cache first if needed (see testenv/toolbuild); cacheDir "" is
// the default cache.
func Build(ctx context.Context, cacheDir string) (binPath string, err error) {
	b := toolbuild.Builder{CacheDir: cacheDir}
	if binPath, err = b.Build(ctx, toolbuild.Pebble); err != nil {
		return "", fmt.Errorf("build pebble: %w", err)
	}
	return binPath, nil
}

// Config says how to run one Pebble.
type Config struct {
	// Bin is the pebble binary (from Build).
	Bin string
	// Addr is the ACME API listen address; "" picks a free 127.0.0.1 port.
	Addr string
	// MgmtAddr is the management API listen address; "" picks a free 127.0.0.1 port.
	MgmtAddr string
	// HTTPPort is the port Pebble's VA connects to for HTTP-01 (required).
	HTTPPort int
	// TLSPort is the port Pebble's VA connects to for TLS-ALPN-01 (0: unused).
	TLSPort int
	// DNSServer is the resolver the VA asks (host:port, over TCP), e.g. "127.53.255.1:53".
	DNSServer string
	// WorkDir holds the generated config, certificates and roots (required).
	WorkDir string
	// RetryAfterAuthz and RetryAfterOrder are the Retry-After seconds Pebble
	// sends while an authorization or order is processing (0: none).
	RetryAfterAuthz, RetryAfterOrder int
	// Logger receives Pebble's output, one entry per line; nil discards it.
	Logger *zap.Logger
}

// Pebble is a running Pebble process.
type Pebble struct {
	cfg    Config
	log    *zap.Logger
	cmd    *exec.Cmd
	exited chan struct{}
	// waitErr is written once before exited is closed.
	waitErr error
	out     *proc.TailBuffer
	caFile  string
	root    string
	once    sync.Once
}

// DirectoryURL is the ACME directory.
func (p *Pebble) DirectoryURL() string { return "https://" + p.cfg.Addr + "/dir" }

// MgmtURL is the base URL of the management API.
func (p *Pebble) MgmtURL() string { return "https://" + p.cfg.MgmtAddr }

// RootCAFile is a PEM file with the root that signs the certificates Pebble issues.
func (p *Pebble) RootCAFile() string { return p.root }

// CAFile is a PEM file with the CA of the TLS certificate Pebble's ACME and
// management APIs serve: trust it to talk to DirectoryURL.
func (p *Pebble) CAFile() string { return p.caFile }

// Addr is the ACME API listen address.
func (p *Pebble) Addr() string { return p.cfg.Addr }

// pebbleJSON mirrors the part of Pebble's config file we set.
type pebbleJSON struct {
	Pebble struct {
		ListenAddress           string `json:"listenAddress"`
		ManagementListenAddress string `json:"managementListenAddress"`
		Certificate             string `json:"certificate"`
		PrivateKey              string `json:"privateKey"`
		HTTPPort                int    `json:"httpPort"`
		TLSPort                 int    `json:"tlsPort"`
		OCSPResponderURL        string `json:"ocspResponderURL"`
		KeyAlgorithm            string `json:"keyAlgorithm"`
		RetryAfter              struct {
			Authz int `json:"authz"`
			Order int `json:"order"`
		} `json:"retryAfter"`
	} `json:"pebble"`
}

// Start writes Pebble's config and API certificate into WorkDir, starts the
// process, waits until the directory answers and saves the issuing root.
// The process dies with the caller (Pdeathsig) and on Close.
func Start(ctx context.Context, cfg Config) (*Pebble, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("pebble")
	if cfg.Bin == "" || cfg.WorkDir == "" {
		return nil, errors.New("start pebble: Bin and WorkDir are required")
	}
	if cfg.HTTPPort <= 0 || cfg.HTTPPort > 65535 {
		return nil, fmt.Errorf("start pebble: HTTPPort %d out of range", cfg.HTTPPort)
	}
	var err error
	if cfg.Addr == "" {
		if cfg.Addr, err = freeAddr(); err != nil {
			return nil, fmt.Errorf("start pebble: %w", err)
		}
	}
	if cfg.MgmtAddr == "" {
		if cfg.MgmtAddr, err = freeAddr(); err != nil {
			return nil, fmt.Errorf("start pebble: %w", err)
		}
	}
	if err := os.MkdirAll(cfg.WorkDir, 0o755); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	// Pebble ships test/certs/localhost (signed by test/certs/pebble.minica.pem)
	// but it only names localhost and 127.0.0.1 and it expires in 2027; a
	// fresh CA per start serves any 127.x listen address.
	caFile, certFile, keyFile, err := writeAPICerts(cfg.WorkDir, cfg.Addr, cfg.MgmtAddr)
	if err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	var pj pebbleJSON
	pj.Pebble.ListenAddress = cfg.Addr
	pj.Pebble.ManagementListenAddress = cfg.MgmtAddr
	pj.Pebble.Certificate = certFile
	pj.Pebble.PrivateKey = keyFile
	pj.Pebble.HTTPPort = cfg.HTTPPort
	pj.Pebble.TLSPort = cfg.TLSPort
	pj.Pebble.KeyAlgorithm = "ecdsa"
	pj.Pebble.RetryAfter.Authz = cfg.RetryAfterAuthz
	pj.Pebble.RetryAfter.Order = cfg.RetryAfterOrder
	b, err := json.MarshalIndent(pj, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}
	confFile := filepath.Join(cfg.WorkDir, "pebble-config.json")
	if err := os.WriteFile(confFile, b, 0o644); err != nil {
		return nil, fmt.Errorf("start pebble: %w", err)
	}

	args := []string{"-config", confFile}
	if cfg.DNSServer != "" {
		args = append(args, "-dnsserver", cfg.DNSServer)
	}
	// Not CommandContext: ctx bounds the start-up, not the server's life.
	cmd := exec.Command(cfg.Bin, args...)
	cmd.Dir = cfg.WorkDir
	cmd.Env = pebbleEnv(os.Environ())
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &Pebble{cfg: cfg, log: log, cmd: cmd, exited: make(chan struct{}), out: &proc.TailBuffer{Max: 8192}, caFile: caFile}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start pebble %s: %w", cfg.Bin, err)
	}
	go p.pump(pr)
	go func() {
		p.waitErr = cmd.Wait()
		_ = pw.Close()
		close(p.exited)
	}()
	log.Info("started", zap.Int("pid", cmd.Process.Pid), zap.String("addr", cfg.Addr),
		zap.String("mgmt_addr", cfg.MgmtAddr), zap.Int("http_port", cfg.HTTPPort), zap.String("dns_server", cfg.DNSServer))

	if err := p.waitReady(ctx); err != nil {
		p.Close()
		return nil, fmt.Errorf("start pebble: %w (output: %s)", err, p.out.String())
	}
	return p, nil
}

// pebbleEnv is the parent environment without any PEBBLE_* variable, plus
// the ones that make Pebble deterministic: no random VA sleeps, no rejected
// nonces, no authorization reuse (each probe must really validate), and
// PEBBLE_VA_ALWAYS_VALID unset so validation is real.
func pebbleEnv(parent []string) []string {
	env := make([]string, 0, len(parent)+3)
	for _, kv := range parent {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			env = append(env, kv)
		}
	}
	return append(env, "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
}

// pump forwards Pebble's output to the logger and keeps a tail for errors.
func (p *Pebble) pump(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64*1024)
	for sc.Scan() {
		line := sc.Text()
		p.out.Write([]byte(line + "\n"))
		p.log.Debug("output", zap.String("line", line))
	}
	// Drain after an over-long line so Pebble never blocks on a full pipe.
	_, _ = io.Copy(io.Discard, r)
}

// waitReady polls the directory until it answers, then saves the root.
func (p *Pebble) waitReady(ctx context.Context) error {
	client, err := p.client()
	if err != nil {
		return err
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("directory %s not ready (last error: %v): %w", p.DirectoryURL(), last, ctx.Err())
		case <-p.exited:
			return fmt.Errorf("pebble exited before it was ready: %v", p.waitErr)
		case <-tick.C:
		}
		if last = get(ctx, client, p.DirectoryURL(), nil); last == nil {
			break
		}
	}
	var pemRoot []byte
	if err := get(ctx, client, p.MgmtURL()+"/roots/0", &pemRoot); err != nil {
		return fmt.Errorf("read issuing root: %w", err)
	}
	if blk, _ := pem.Decode(pemRoot); blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("read issuing root: %s/roots/0 returned no PEM certificate", p.MgmtURL())
	}
	p.root = filepath.Join(p.cfg.WorkDir, "pebble-root.pem")
	if err := os.WriteFile(p.root, pemRoot, 0o644); err != nil {
		return fmt.Errorf("write issuing root: %w", err)
	}
	return nil
}

// client trusts only the API CA.
func (p *Pebble) client() (*http.Client, error) {
	b, err := os.ReadFile(p.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("no certificate in %s", p.caFile)
	}
	return &http.Client{
		Timeout:   2 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
	}, nil
}

// get fetches url and, when body is non-nil, stores up to 1 MiB of it.
func get(ctx context.Context, c *http.Client, url string, body *[]byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	if body != nil {
		*body = b
	}
	return nil
}

// Close stops Pebble and waits for it to exit. It is safe to call twice.
func (p *Pebble) Close() {
	p.once.Do(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			p.log.Warn("pebble did not exit after SIGKILL", zap.Int("pid", p.cmd.Process.Pid))
		}
	})
}

// Exited is closed when the process has exited.
func (p *Pebble) Exited() <-chan struct{} { return p.exited }

// freeAddr returns a 127.0.0.1 address with a port that was free a moment ago.
func freeAddr() (string, error) {
	port, err := measure.FreePort()
	return fmt.Sprintf("127.0.0.1:%d", port), err
}
