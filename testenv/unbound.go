package testenv

import (
	"context"
	"fmt"
	"github.com/acmediag/acmediag/testenv/internal/proc"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// resolverConfig is what differs between the public and the cluster
// resolver.
type resolverConfig struct {
	name      string // "public" or "cluster"
	addr      string // listen address
	localData []string
	// stripPrivate adds LE's private-address list: answers in RFC 1918
	// and similar ranges are removed, as Let's Encrypt's resolvers do.
	stripPrivate bool
	// outgoing are the source addresses of its queries (a vantage's
	// address, plus ::1 for IPv6-only servers); none → the kernel's choice.
	outgoing []string
}

// unbound is one running Unbound process.
type unbound struct {
	name   string
	addr   string // host:port
	cmd    *exec.Cmd
	stderr *proc.TailBuffer
	exited chan struct{}
	err    error // set before exited is closed
}

// unboundConf renders unbound.conf. In port-53 mode Unbound iterates from
// the root hints exactly as on the Internet; otherwise it cannot reach other
// ports by iterating, so every zone of the universe gets a stub-zone naming
// the servers its parent delegates to (stub-addr for hosts the parent gives
// glue for, stub-host for the rest) — delegation semantics kept as far as
// Unbound allows.
func (u *Universe) unboundConf(rc resolverConfig, dir string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("server:")
	p("  interface: %s", rc.addr)
	p("  port: %d", u.port)
	p("  interface-automatic: no")
	for _, o := range rc.outgoing {
		p("  outgoing-interface: %s", o)
	}
	p("  do-ip4: yes")
	p("  do-ip6: yes")
	p("  do-udp: yes")
	p("  do-tcp: yes")
	p("  do-not-query-localhost: no")
	p("  access-control: 127.0.0.0/8 allow")
	p("  access-control: ::1/128 allow")
	p("  chroot: \"\"")
	p("  username: \"\"")
	p("  directory: %q", dir)
	p("  pidfile: %q", filepath.Join(dir, "unbound.pid"))
	p("  use-syslog: no")
	p("  logfile: \"\"")
	p("  verbosity: 1")
	p("  log-servfail: yes")
	p("  val-log-level: 2")
	p("  num-threads: 1")
	p("  outgoing-range: 256")
	if u.port == 53 {
		// With stub-zones (other ports) a root-hints file would override
		// the stub for "." and send priming to port 53.
		p("  root-hints: %q", u.rootHintsFile)
	}
	p("  trust-anchor-file: %q", u.anchorFile)
	p("  module-config: \"validator iterator\"")
	// Let's Encrypt-like (research/acme-failures.md §2.7, jsha/unboundtest).
	p("  edns-buffer-size: 1232")
	p("  use-caps-for-id: yes")
	p("  qname-minimisation: no")
	p("  harden-dnssec-stripped: yes")
	p("  harden-glue: yes")
	p("  harden-below-nxdomain: no")
	p("  cache-max-ttl: 0")
	p("  cache-max-negative-ttl: 0")
	p("  val-sig-skew-min: 0")
	p("  val-sig-skew-max: 0")
	p("  ede: yes")
	// Give up on silent servers within seconds, not minutes, so scenarios
	// with dropping servers end in SERVFAIL while a test still waits.
	p("  infra-cache-max-rtt: 3000")
	p("  infra-keep-probing: yes")
	if rc.stripPrivate {
		for _, n := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10", "fd00::/8", "fe80::/10"} {
			p("  private-address: %s", n)
		}
	}
	for _, ld := range rc.localData {
		owner := strings.Fields(ld)[0]
		p("  local-zone: %q typetransparent", owner)
		p("  local-data: %q", ld)
	}
	if u.port != 53 {
		for _, z := range u.spec.zones {
			p("stub-zone:")
			p("  name: %q", z.origin)
			p("  stub-prime: no")
			parent := u.spec.parentOf(z.origin)
			for _, h := range u.spec.parentNSOf(z.origin) {
				addrs := u.hostAddrs[h]
				if z.origin == "." || (len(addrs) > 0 && dns.IsSubDomain(parent, h)) {
					for _, a := range addrs {
						p("  stub-addr: %s@%d", a, u.port)
					}
				} else {
					p("  stub-host: %s@%d", h, u.port)
				}
			}
		}
	}
	p("remote-control:")
	p("  control-enable: no")
	return b.String()
}

// startUnbound writes the config and starts Unbound in the foreground, then
// waits until it answers.
func (u *Universe) startUnbound(ctx context.Context, bin string, rc resolverConfig) (*unbound, error) {
	dir := filepath.Join(u.workDir, "unbound-"+rc.name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("unbound %s: %w", rc.name, err)
	}
	conf := filepath.Join(dir, "unbound.conf")
	if err := os.WriteFile(conf, []byte(u.unboundConf(rc, dir)), 0o644); err != nil {
		return nil, fmt.Errorf("unbound %s: %w", rc.name, err)
	}
	ub := &unbound{
		name:   rc.name,
		addr:   net.JoinHostPort(rc.addr, strconv.Itoa(u.port)),
		stderr: &proc.TailBuffer{Max: 16 << 10},
		exited: make(chan struct{}),
	}
	ub.cmd = exec.Command(bin, "-d", "-c", conf)
	ub.cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, "unbound.log"))
	if err != nil {
		return nil, fmt.Errorf("unbound %s: %w", rc.name, err)
	}
	defer logf.Close() // the child holds its own descriptor
	ub.cmd.Stdout = logf
	ub.cmd.Stderr = io.MultiWriter(logf, ub.stderr)
	// Never outlive the test process, even when it is killed.
	ub.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := ub.cmd.Start(); err != nil {
		return nil, fmt.Errorf("unbound %s: start %s: %w", rc.name, bin, err)
	}
	go func() {
		ub.err = ub.cmd.Wait()
		close(ub.exited)
	}()
	if err := ub.waitReady(ctx); err != nil {
		ub.stop()
		return nil, fmt.Errorf("unbound %s (%s, config %s): %w; stderr:\n%s", rc.name, ub.addr, conf, err, proc.Tail([]byte(ub.stderr.String()), 3000))
	}
	u.log.Info("unbound ready", zap.String("resolver", rc.name), zap.String("addr", ub.addr))
	return ub, nil
}

// waitReady polls with a query Unbound answers from its built-in localhost
// zone, so readiness does not depend on the universe's servers.
func (ub *unbound) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	c := &dns.Client{Timeout: 200 * time.Millisecond}
	m := new(dns.Msg)
	m.SetQuestion("localhost.", dns.TypeA)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if r, _, err := c.ExchangeContext(ctx, m, ub.addr); err == nil && r != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not answering: %w", ctx.Err())
		case <-ub.exited:
			return fmt.Errorf("exited: %v", ub.err)
		case <-tick.C:
		}
	}
}

// stop terminates Unbound: SIGTERM, then SIGKILL after two seconds.
func (ub *unbound) stop() {
	if ub == nil || ub.cmd.Process == nil {
		return
	}
	_ = ub.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(2 * time.Second)
	defer t.Stop()
	select {
	case <-ub.exited:
	case <-t.C:
		_ = ub.cmd.Process.Kill()
		<-ub.exited
	}
}
