//go:build linux

package http01

import (
	"bufio"
	"context"
	"fmt"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/measure"
	"io"
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
)

const (
	benchToken   = "LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0"
	benchKeyAuth = benchToken + ".9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI"
	benchName    = "www.bench.example.com"
	blackboxBin  = "prometheus-blackbox-exporter"
)

// benchResolver answers every name with the target's address.
type benchResolver struct{ addr netip.Addr }

func (r benchResolver) LookupHost(context.Context, string) ([]netip.Addr, []netip.Addr, error) {
	return nil, []netip.Addr{r.addr}, nil
}

// freePort asks the kernel for an unused loopback port for a child process.
// (The port is released before the child binds it; on loopback in a test
// nobody else races for it.)
func freePort(tb testing.TB) int {
	tb.Helper()
	port, err := measure.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// startChild runs a child that dies with the test process and is killed at cleanup.
func startChild(tb testing.TB, name string, args ...string) *exec.Cmd {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Nil Stdout/Stderr are /dev/null. (io.Discard would make os/exec copy
	// the child's output through a pipe in a goroutine of this process:
	// python's http.server logs every request, and reading those lines
	// was charged to our probes' CPU.)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", name, err)
	}
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// waitHTTP polls url until it answers (bounded: 100 tries, 10 s).
func waitHTTP(tb testing.TB, client *http.Client, u string) {
	tb.Helper()
	for range 100 {
		resp, err := client.Get(u)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	tb.Fatalf("%s did not come up within 10 s", u)
}

// procCPU is a process's user+system CPU time from /proc/PID/stat.
func procCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	d, err := measure.ProcessCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// selfCPU is this process's user+system CPU time.
func selfCPU(tb testing.TB) time.Duration {
	tb.Helper()
	d, err := measure.SelfCPU()
	if err != nil {
		tb.Fatal(err)
	}
	return d
}

// ensureBlackbox returns the exporter's path, installing the Debian package
// when root; without it the benchmark skips (fails under CI=true).
func ensureBlackbox(b *testing.B) string {
	b.Helper()
	p, err := testenv.EnsureCommand(b.Context(), blackboxBin, "prometheus-blackbox-exporter")
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		b.Fatal(err)
	}
	b.Skip(err)
	return ""
}

// BenchmarkProbeVsBlackbox compares CPU time per probe of a full HTTP-01
// validation by Validator with a Prometheus blackbox_exporter http_2xx probe,
// against the same healthy target. The target runs in its own process
// (python3 -m http.server) so its CPU is in neither measurement; our CPU is
// RUSAGE_SELF around our loop, the exporter's is its /proc/PID/stat around its
// loop (the driving HTTP client's CPU is in neither).
func BenchmarkProbeVsBlackbox(b *testing.B) {
	bbPath := ensureBlackbox(b)
	py, err := exec.LookPath("python3")
	if err != nil {
		b.Skip("python3 (the out-of-process target server) is not installed")
	}

	dir := b.TempDir()
	chDir := filepath.Join(dir, ".well-known", "acme-challenge")
	if err := os.MkdirAll(chDir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(chDir, benchToken), []byte(benchKeyAuth), 0o644); err != nil {
		b.Fatal(err)
	}
	targetPort := freePort(b)
	startChild(b, py, "-m", "http.server", "--bind", "127.0.0.1", "--directory", dir, strconv.Itoa(targetPort))
	targetURL := fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/%s", targetPort, benchToken)

	cfg := filepath.Join(dir, "blackbox.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n    http:\n      preferred_ip_protocol: ip4\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	bbPort := freePort(b)
	bb := startChild(b, bbPath, "--config.file="+cfg, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", bbPort))

	client := &http.Client{Timeout: 10 * time.Second}
	waitHTTP(b, client, targetURL)
	waitHTTP(b, client, fmt.Sprintf("http://127.0.0.1:%d/-/healthy", bbPort))
	probeURL := fmt.Sprintf("http://127.0.0.1:%d/probe?module=http_2xx&target=%s", bbPort, url.QueryEscape(targetURL))

	lo := netip.MustParseAddr("127.0.0.1")
	v := &Validator{
		Resolver: benchResolver{lo},
		HTTPPort: targetPort,
		Allow:    []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Timeout:  5 * time.Second,
	}
	req := Request{Name: benchName, Token: benchToken, KeyAuth: benchKeyAuth, V4: []netip.Addr{lo}}
	ctx := b.Context()

	// One of each outside the measurement: both must succeed, or the numbers
	// compare a failure path with a success path.
	if res := v.HTTP01(ctx, req); !res.OK {
		b.Fatalf("our probe of the healthy target failed: %+v", res.Problem)
	}
	blackboxProbe(b, client, probeURL)

	b.ResetTimer()
	ourStart := selfCPU(b)
	for range b.N {
		if res := v.HTTP01(ctx, req); !res.OK {
			b.Fatalf("our probe failed: %+v", res.Problem)
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
