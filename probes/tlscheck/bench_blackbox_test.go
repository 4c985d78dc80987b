//go:build linux

package tlscheck_test

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/acmediag/acmediag/probes/tlscheck"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/measure"
	"github.com/acmediag/acmediag/testenv/pki"
)

const (
	benchName   = "www.bench.example.com"
	blackboxBin = "prometheus-blackbox-exporter"
)

// startChild runs a child that dies with the test process and is killed at
// cleanup; its output goes to /dev/null (a pipe would be read by this
// process and charged to our probes' CPU).
func startChild(tb testing.TB, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, nil, nil
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

func freePort(tb testing.TB) int {
	tb.Helper()
	p, err := measure.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// waitTCP waits until addr accepts (bounded: 100 tries, 10 s).
func waitTCP(tb testing.TB, addr string) {
	tb.Helper()
	for range 100 {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("%s did not come up within 10 s", addr)
}

func writePEM(tb testing.TB, path, typ string, der ...[]byte) string {
	tb.Helper()
	var out []byte
	for _, d := range der {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: d})...)
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// BenchmarkProbeVsBlackbox compares the CPU time per probe of a tls
// inspection (handshake, chain facts, verification against the roots,
// findings; the judgement of a chain seen before is reused, as in the
// daemon's steady state) with a Prometheus blackbox_exporter probe:
// tcp_tls, a tcp probe with `tls: true` (handshake and verification against
// the same roots), and http_2xx_https, an http probe of an https URL (what
// its users run for probe_ssl_earliest_cert_expiry), against the same
// healthy target: openssl s_server in its own process serving a leaf and
// its intermediate (ECDSA P-256), so its CPU is in neither measurement.
// Ours is RUSAGE_SELF around our loop; the exporter's is its
// /proc/PID/stat around its loop (the driving HTTP client is in neither).
func BenchmarkProbeVsBlackbox(b *testing.B) {
	bbPath, err := testenv.EnsureCommand(b.Context(), blackboxBin, "prometheus-blackbox-exporter")
	if err != nil {
		if os.Getenv("CI") == "true" {
			b.Fatal(err)
		}
		b.Skip(err)
	}
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		b.Skip("openssl (the out-of-process TLS target) is not installed")
	}

	dir := b.TempDir()
	root, err := pki.NewRoot("Bench Root")
	if err != nil {
		b.Fatal(err)
	}
	inter, err := root.Intermediate("Bench Intermediate")
	if err != nil {
		b.Fatal(err)
	}
	leaf, err := inter.Issue(pki.Leaf{Names: []string{benchName}})
	if err != nil {
		b.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		b.Fatal(err)
	}
	certFile := writePEM(b, filepath.Join(dir, "leaf.pem"), "CERTIFICATE", leaf.Certificate[0])
	keyFile := writePEM(b, filepath.Join(dir, "key.pem"), "PRIVATE KEY", keyDER)
	chainFile := writePEM(b, filepath.Join(dir, "chain.pem"), "CERTIFICATE", inter.Cert.Raw)
	rootFile := writePEM(b, filepath.Join(dir, "root.pem"), "CERTIFICATE", root.Cert.Raw)

	targetPort := freePort(b)
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(targetPort))
	startChild(b, openssl, "s_server", "-accept", target, "-cert", certFile, "-key", keyFile, "-cert_chain", chainFile, "-www", "-quiet")
	waitTCP(b, target)

	cfg := filepath.Join(dir, "blackbox.yml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `modules:
  tls_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
      tls: true
      tls_config:
        ca_file: %[1]s
        server_name: %[2]s
  https_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        ca_file: %[1]s
        server_name: %[2]s
`, rootFile, benchName), 0o644); err != nil {
		b.Fatal(err)
	}
	bbAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(b)))
	bb := startChild(b, bbPath, "--config.file="+cfg, "--web.listen-address="+bbAddr)
	waitTCP(b, bbAddr)
	client := &http.Client{Timeout: 10 * time.Second}

	req := tlscheck.Request{Name: benchName, Addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Port: targetPort, Roots: root.Pool()}
	ctx := context.Background()

	for _, peer := range []struct {
		name, module, target string
		noCache              bool
	}{
		// The like-for-like peer: connect, handshake, verify.
		{name: "tcp_tls", module: "tls_connect", target: target},
		// The same, every chain judged afresh (a name's first run).
		{name: "tcp_tls_first_run", module: "tls_connect", target: target, noCache: true},
		// What blackbox users usually run for probe_ssl_earliest_cert_expiry.
		{name: "http_2xx_https", module: "https_2xx", target: "https://" + target + "/"},
	} {
		probeURL := "http://" + bbAddr + "/probe?module=" + peer.module + "&target=" + url.QueryEscape(peer.target)
		c := &tlscheck.Checker{HandshakeTimeout: 5 * time.Second, NoCache: peer.noCache}
		b.Run(peer.name, func(b *testing.B) {
			// One of each outside the measurement: both must succeed, or
			// the numbers compare a failure path with a success path.
			if r := c.Inspect(ctx, req); len(r.Findings) != 0 || r.Addrs[0].Chain == nil {
				b.Fatalf("our probe of the healthy target: %s %+v", r.Addrs[0].Err, r.Findings)
			}
			blackboxProbe(b, client, probeURL)

			b.ResetTimer()
			ourStart := selfCPU(b)
			for range b.N {
				if r := c.Inspect(ctx, req); len(r.Findings) != 0 {
					b.Fatalf("our probe failed: %+v", r.Findings)
				}
			}
			ours := selfCPU(b) - ourStart
			bbStart := procCPU(b, bb.Process.Pid)
			for range b.N {
				blackboxProbe(b, client, probeURL)
			}
			theirs := procCPU(b, bb.Process.Pid) - bbStart
			b.StopTimer()

			n := float64(b.N)
			ourMS := float64(ours) / float64(time.Millisecond) / n
			bbMS := float64(theirs) / float64(time.Millisecond) / n
			b.ReportMetric(ourMS, "cpu-ms/probe")
			b.ReportMetric(bbMS, "blackbox-cpu-ms/probe")
			if ours > 0 {
				b.ReportMetric(bbMS/ourMS, "x-less-cpu")
			}
		})
	}
}

func selfCPU(tb testing.TB) time.Duration {
	d, err := measure.SelfCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

func procCPU(tb testing.TB, pid int) time.Duration {
	d, err := measure.ProcessCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// blackboxProbe runs one exporter probe and requires probe_success 1.
func blackboxProbe(b *testing.B, client *http.Client, probeURL string) {
	resp, err := client.Get(probeURL)
	if err != nil {
		b.Fatalf("blackbox probe: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 1<<20))
	for sc.Scan() {
		if sc.Text() == "probe_success 1" {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			return
		}
	}
	b.Fatalf("blackbox probe of the healthy target did not succeed (status %d)", resp.StatusCode)
}
