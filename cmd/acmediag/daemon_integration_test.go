package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
)

// The daemon's integration tier runs the built binary as a process (the
// binary TestMain builds), against a universe of its own on port 10653 so
// it never meets the diagnose tests' universe.

const daemonUniversePort = 10653

func needBinary(t *testing.T) {
	t.Helper()
	if testing.Short() || binary == "" {
		t.Skip("integration: -short, or the binary was not built")
	}
}

// runDaemonCheck runs `acmediag daemon --config.check` on a file in dir.
func runDaemonCheck(t *testing.T, dir, file string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "daemon", "--config", file, "--config.check")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running %s: %v", binary, err)
	}
	return stdout.String(), stderr.String(), 0
}

// The process exits 2 and prints each problem with file, line and key.
func TestDaemonConfigCheck(t *testing.T) {
	needBinary(t)
	cases := []struct {
		desc       string
		yaml       string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{desc: "valid", yaml: "dns: {resolvers: [127.0.0.1]}\ntargets: [{name: a.example.com}, {name: b.example.com}]\n",
			wantCode: 0, wantStdout: "config.yaml: valid (2 targets, 1 vantage)\n"},
		{desc: "bad challenge", yaml: "dns: {resolvers: [127.0.0.1]}\ntargets:\n  - name: a.example.com\n    challenge: http-02\n",
			wantCode: 2, wantStderr: "config.yaml:4: targets[0].challenge: \"http-02\" is not http-01, dns-01 or tls-alpn-01\n"},
		{desc: "unknown keys are reported before values are judged", yaml: "dns: {resolvers: [127.0.0.1], dns_prot: 53}\nhttp: {http_port: 0}\ntargets: [{name: a.example.com}]\n",
			wantCode: 2, wantStderr: "config.yaml:1: dns.dns_prot: unknown key (did you mean \"dns_port\"?)\n"},
		{desc: "no such file", yaml: "", wantCode: 2, wantStderr: "config: open missing.yaml: no such file or directory\n"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			dir := t.TempDir()
			file := "config.yaml"
			if tc.yaml != "" {
				if err := os.WriteFile(filepath.Join(dir, file), []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			} else {
				file = "missing.yaml"
			}
			stdout, stderr, code := runDaemonCheck(t, dir, file)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			if tc.wantStdout != "" && stdout != tc.wantStdout {
				t.Errorf("stdout %q, want %q", stdout, tc.wantStdout)
			}
			if tc.wantStderr != "" && stderr != tc.wantStderr {
				t.Errorf("stderr %q, want %q", stderr, tc.wantStderr)
			}
		})
	}
}

// daemonProc is a running daemon process.
type daemonProc struct {
	cmd    *exec.Cmd
	base   string // http://127.0.0.1:PORT
	config string
	mu     sync.Mutex
	log    bytes.Buffer
	done   chan error
}

func (d *daemonProc) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.Write(p)
}

func (d *daemonProc) logs() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// daemonConfigYAML points the daemon at the universe.
func daemonConfigYAML(u *testenv.Universe, port int, targets []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\nvantages:\n", port)
	for _, v := range u.Vantages()[:2] {
		fmt.Fprintf(&b, "  - {name: %s, source: %s, resolver: %q, rir: %s, region: %s, kind: %s}\n", v.Name, v.Addr, v.Resolver, v.RIR, v.Region, v.Kind)
	}
	fmt.Fprintf(&b, "dns:\n  roots: [%s]\n  resolvers: [%q]\n  trust_anchor: %s\n  dns_port: %d\n  allow_addresses: [127.0.0.0/8, \"::1/128\"]\n  query_timeout: 1s\n",
		strings.Join(u.Roots(), ", "), u.Resolver(), u.TrustAnchorFile(), u.Port())
	fmt.Fprintf(&b, "http: {http_port: %d, https_port: %d}\n", u.HTTPPort(), u.HTTPSPort())
	b.WriteString("schedule:\n  intervals: {dns: 3s, http-01: 3s, tls-alpn-01: 3s}\n  jitter: 0\n  timeout: 20s\n  max_backoff: 5s\n")
	b.WriteString("api: {max_concurrent: 1, max_observations: 100}\ntargets:\n")
	for _, t := range targets {
		fmt.Fprintf(&b, "  - name: %s\n", t)
	}
	return b.String()
}

func startDaemon(t *testing.T, config string) *daemonProc {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := config[len("listen: "):strings.IndexByte(config, '\n')]
	d := &daemonProc{base: "http://" + listen, config: path, done: make(chan error, 1)}
	d.cmd = exec.Command(binary, "daemon", "--config", path, "--log-level", "info")
	d.cmd.Stdout, d.cmd.Stderr = d, d
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			_ = d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(10 * time.Second):
				_ = d.cmd.Process.Kill()
			}
		}
	})
	return d
}

func (d *daemonProc) get(t *testing.T, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(d.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v\ndaemon log:\n%s", path, err, d.logs())
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		t.Fatalf("GET %s: reading: %v", path, err)
	}
	return resp.StatusCode, body
}

// status is the status code of GET path, 0 when the daemon does not answer.
func (d *daemonProc) status(path string) int {
	resp, err := http.Get(d.base + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitFor polls cond every 200ms until it holds or the deadline passes.
func waitFor(t *testing.T, d *daemonProc, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case err := <-d.done:
			t.Fatalf("waiting for %s: the daemon exited (%v)\n%s", what, err, d.logs())
		case <-deadline.C:
			t.Fatalf("waiting for %s: still not after %s\ndaemon log:\n%s", what, timeout, d.logs())
		case <-tick.C:
		}
	}
}

func (d *daemonProc) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := d.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return mf
}

func labelsOf(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

// metricValue is the value of the first series of family with all labels.
func metricValue(mf map[string]*dto.MetricFamily, family string, labels map[string]string) (float64, bool) {
	f := mf[family]
	if f == nil {
		return 0, false
	}
outer:
	for _, m := range f.GetMetric() {
		have := labelsOf(m)
		for k, v := range labels {
			if have[k] != v {
				continue outer
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Untyped != nil:
			return m.Untyped.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

const (
	healthyName = "www.healthy-unsigned.com"
	nxName      = "missing.nxdomain.com"
	refusedName = "web-refused.acmeweb.com"
	addedName   = "www.healthy-signed.com"
)

func TestDaemon(t *testing.T) {
	needBinary(t)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: daemonUniversePort})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the daemon's universe did not start: %v", err)
		}
		t.Skipf("the daemon's universe did not start: %v", err)
	}
	defer u.Close()
	t.Logf("universe up in %s", time.Since(start).Round(time.Millisecond))

	port := freePort(t)
	d := startDaemon(t, daemonConfigYAML(u, port, []string{healthyName, nxName, refusedName}))
	waitFor(t, d, "/healthz", 10*time.Second, func() bool { return d.status("/healthz") == http.StatusOK })
	readyStart := time.Now()
	if code := d.status("/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before any probe finished: %d, want 503", code)
	}
	waitFor(t, d, "/readyz", 90*time.Second, func() bool { return d.status("/readyz") == http.StatusOK })
	t.Logf("daemon ready in %s", time.Since(readyStart).Round(time.Millisecond))

	t.Run("metrics", func(t *testing.T) {
		mf := d.metrics(t)
		for _, v := range []string{"us-east", "eu-west"} {
			if n, ok := metricValue(mf, "acmediag_probe_runs_total", map[string]string{"kind": "dns", "vantage": v}); !ok || n < 1 {
				t.Errorf("acmediag_probe_runs_total{kind=dns,vantage=%s} = %v (present %v), want ≥ 1", v, n, ok)
			}
		}
		if n, ok := metricValue(mf, "acmediag_findings", map[string]string{"code": "dns.nxdomain", "severity": "fatal", "name": nxName}); !ok || n < 1 {
			t.Errorf("acmediag_findings{code=dns.nxdomain,name=%s} = %v (present %v)", nxName, n, ok)
		}
		if _, ok := metricValue(mf, "acmediag_findings", map[string]string{"name": healthyName, "severity": "error"}); ok {
			t.Errorf("the healthy name has an error finding in the metrics")
		}
		if n, ok := metricValue(mf, "acmediag_config_reload_failures_total", nil); !ok || n != 0 {
			t.Errorf("acmediag_config_reload_failures_total = %v (present %v), want 0", n, ok)
		}
		if ts, ok := metricValue(mf, "acmediag_config_last_reload_success_timestamp_seconds", nil); !ok || ts < float64(start.Unix()) {
			t.Errorf("acmediag_config_last_reload_success_timestamp_seconds = %v, want ≥ %d", ts, start.Unix())
		}
		if _, ok := metricValue(mf, "acmediag_build_info", nil); !ok {
			t.Error("no acmediag_build_info")
		}
	})

	t.Run("report API", func(t *testing.T) {
		cases := []struct {
			desc        string
			name        string
			wantVerdict reports.Verdict
			wantCode    reports.Code
		}{
			{desc: "healthy name", name: healthyName, wantVerdict: reports.VerdictPass},
			{desc: "NXDOMAIN", name: nxName, wantVerdict: reports.VerdictFail, wantCode: reports.CodeDNSNXDomain},
			{desc: "connection refused", name: refusedName, wantVerdict: reports.VerdictFail, wantCode: reports.CodeHTTP01ConnectionRefused},
		}
		for _, tc := range cases {
			t.Run(tc.desc, func(t *testing.T) {
				code, body := d.get(t, "/api/v1/report?name="+url.QueryEscape(tc.name))
				if code != http.StatusOK {
					t.Fatalf("status %d: %s", code, body)
				}
				var rep reports.Report
				if err := json.Unmarshal(body, &rep); err != nil {
					t.Fatalf("not the report JSON: %v\n%s", err, body)
				}
				if len(rep.Names) != 1 || rep.Names[0] != tc.name || rep.Version != reports.SchemaVersion {
					t.Errorf("names %v version %d", rep.Names, rep.Version)
				}
				if rep.Verdict != tc.wantVerdict {
					t.Errorf("verdict %s, want %s\n%s", rep.Verdict, tc.wantVerdict, body)
				}
				if len(rep.Vantages) != 2 || len(rep.Checks) == 0 {
					t.Errorf("vantages %v, %d checks", rep.Vantages, len(rep.Checks))
				}
				if tc.wantCode != "" {
					found := false
					for _, f := range rep.Findings {
						found = found || f.Code == tc.wantCode && f.Problem != nil && f.Fix != ""
					}
					if !found {
						t.Errorf("no %s finding with a fix and a problem:\n%s", tc.wantCode, body)
					}
				}
			})
		}
		code, body := d.get(t, "/api/v1/report")
		var all reports.Report
		if err := json.Unmarshal(body, &all); code != http.StatusOK || err != nil || len(all.Names) != 3 || all.Verdict != reports.VerdictFail {
			t.Errorf("the report of every name: %d %v names %v verdict %s", code, err, all.Names, all.Verdict)
		}
	})

	t.Run("observations API", func(t *testing.T) {
		since := start.UTC().Format(time.RFC3339)
		cases := []struct {
			desc     string
			query    string
			wantCode int
			check    func(t *testing.T, obs []observationJSON)
		}{
			{desc: "one name since the start", query: "?name=" + nxName + "&since=" + since, wantCode: 200, check: func(t *testing.T, obs []observationJSON) {
				if len(obs) == 0 {
					t.Fatal("no observations")
				}
				for _, o := range obs {
					if o.Name != nxName || o.Start.Before(start.Truncate(time.Second)) {
						t.Errorf("observation of %s at %s", o.Name, o.Start)
					}
				}
				nx := false
				for _, o := range obs {
					for _, f := range o.Findings {
						nx = nx || o.Kind == "dns" && !o.OK && f.Code == reports.CodeDNSNXDomain
					}
				}
				if !nx {
					t.Errorf("no failed dns observation with dns.nxdomain among %d", len(obs))
				}
			}},
			{desc: "limit keeps the newest", query: "?limit=2", wantCode: 200, check: func(t *testing.T, obs []observationJSON) {
				if len(obs) != 2 || obs[0].Start.After(obs[1].Start) {
					t.Errorf("%d observations, want the 2 newest in order", len(obs))
				}
			}},
			{desc: "bad since", query: "?since=yesterday", wantCode: 400},
			{desc: "unknown name", query: "?name=other.example.com", wantCode: 404},
			{desc: "invalid name", query: "?name=a%20b", wantCode: 400},
		}
		for _, tc := range cases {
			t.Run(tc.desc, func(t *testing.T) {
				code, body := d.get(t, "/api/v1/observations"+tc.query)
				if code != tc.wantCode {
					t.Fatalf("status %d, want %d: %s", code, tc.wantCode, body)
				}
				if tc.check == nil {
					var e apiError
					if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
						t.Errorf("error body %q is not {\"error\": ...}", body)
					}
					return
				}
				var obs []observationJSON
				if err := json.Unmarshal(body, &obs); err != nil {
					t.Fatalf("not a JSON list: %v\n%s", err, body)
				}
				tc.check(t, obs)
			})
		}
	})

	t.Run("page in Chromium", func(t *testing.T) {
		chromium := findChromium(t)
		dir := t.TempDir()
		shot := filepath.Join(dir, "page.png")
		flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
			"--disable-sync", "--no-first-run", "--user-data-dir=" + filepath.Join(dir, "profile")}
		run := func(extra ...string) string {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, chromium, append(append(flags, extra...), d.base+"/")...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("chromium %v: %v\n%s", extra, err, stderr.String())
			}
			return stdout.String()
		}
		dom := run("--dump-dom")
		for _, want := range []string{healthyName, nxName, refusedName, "dns.nxdomain", "http01.connection_refused",
			`id="verdict">fail<`, "us-east", "eu-west", reports.Lookup(reports.CodeDNSNXDomain).Fix[:20], "No canary is configured"} {
			if !strings.Contains(dom, want) {
				t.Errorf("the rendered page lacks %q", want)
			}
		}
		run("--screenshot="+shot, "--window-size=1280,2000")
		st, err := os.Stat(shot)
		if err != nil || st.Size() < 10_000 {
			t.Fatalf("no screenshot (or a blank one): %v", err)
		}
		t.Logf("screenshot: %s (%d bytes)", shot, st.Size())
		if t.Failed() {
			t.Log(dom)
		}
	})

	t.Run("flood", func(t *testing.T) {
		const n = 200
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxConnsPerHost: 0, DisableKeepAlives: true}}
		var wg sync.WaitGroup
		codes := make([]int, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				path := "/api/v1/report"
				if i%2 == 1 {
					path = "/api/v1/observations?name=" + nxName
				}
				resp, err := client.Get(d.base + path)
				if err != nil {
					errs[i] = err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			})
		}
		wg.Wait()
		count := map[int]int{}
		for i := range n {
			if errs[i] != nil {
				t.Errorf("request %d: %v", i, errs[i])
				continue
			}
			count[codes[i]]++
		}
		if count[200]+count[429] != n || count[200] == 0 || count[429] == 0 {
			t.Errorf("answers %v: want every one 200 or 429, some of each", count)
		}
		t.Logf("flood of %d: %v", n, count)
		if code, _ := d.get(t, "/healthz"); code != http.StatusOK {
			t.Errorf("/healthz after the flood: %d", code)
		}
	})

	t.Run("SIGHUP reload", func(t *testing.T) {
		good := daemonConfigYAML(u, port, []string{healthyName, nxName, refusedName, addedName})
		if err := os.WriteFile(d.config, []byte(good), 0o644); err != nil {
			t.Fatal(err)
		}
		if code, _ := d.get(t, "/api/v1/report?name="+addedName); code != http.StatusNotFound {
			t.Fatalf("%s is served before the reload: %d", addedName, code)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, d, "the added target", 30*time.Second, func() bool {
			code, body := d.get(t, "/api/v1/report?name="+addedName)
			return code == http.StatusOK && !bytes.Contains(body, []byte("probe.pending"))
		})

		bad := strings.Replace(good, "targets:", "targets:\n  - name: "+healthyName+"\n    challenge: http-02", 1)
		if err := os.WriteFile(d.config, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, d, "the reload failure metric", 30*time.Second, func() bool {
			n, _ := metricValue(d.metrics(t), "acmediag_config_reload_failures_total", nil)
			return n == 1
		})
		if code, _ := d.get(t, "/api/v1/report?name="+addedName); code != http.StatusOK {
			t.Errorf("the configuration in force was not kept: %s is gone (%d)", addedName, code)
		}
		if !strings.Contains(d.logs(), `challenge: \"http-02\" is not http-01, dns-01 or tls-alpn-01`) {
			t.Errorf("the log does not say why the reload failed:\n%s", d.logs())
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-d.done:
			if err != nil {
				t.Errorf("exit after SIGTERM: %v\n%s", err, d.logs())
			}
		case <-time.After(15 * time.Second):
			t.Fatal("the daemon did not stop within 15s of SIGTERM")
		}
	})
	t.Logf("TestDaemon took %s", time.Since(start).Round(time.Millisecond))
}

// findChromium returns the chromium binary, installing the Debian package
// when running as root without it; it skips only when neither works and
// CI is not "true".
func findChromium(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("chromium-browser"); err == nil {
		return p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	p, err := testenv.EnsureCommand(ctx, "chromium", "chromium")
	switch {
	case err == nil:
		return p
	case os.Getenv("CI") == "true" || os.Geteuid() == 0:
		t.Fatalf("chromium is required: %v", err)
	}
	t.Skipf("chromium: %v", err)
	return ""
}
