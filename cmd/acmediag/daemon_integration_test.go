package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/testenv/measure"

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

// startUniverse starts a universe of the test's own on port, closed when
// the test ends; when it cannot start, the test fails in CI and is skipped
// elsewhere.
func startUniverse(t *testing.T, port int, whose string) *testenv.Universe {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel) // after Close: the universe's processes live as long as ctx
	u, err := testenv.Start(ctx, testenv.Options{Port: port})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the %s's universe did not start: %v", whose, err)
		}
		t.Skipf("the %s's universe did not start: %v", whose, err)
	}
	t.Cleanup(func() { _ = u.Close() })
	t.Logf("universe up in %s", time.Since(start).Round(time.Millisecond))
	return u
}

func needBinary(t testing.TB) {
	t.Helper()
	if testing.Short() || binary == "" {
		t.Skip("integration: -short, or the binary was not built")
	}
}

// runDaemonCheck runs `acmediag daemon --config.check` on a file in dir.
func runDaemonCheck(t *testing.T, dir, file string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append([]string{"daemon", "--config", file, "--config.check", "--log-level", "error"}, args...)...)
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
		args       []string
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
		// A DaemonSet pod names its one vantage after its node.
		{desc: "the process's own vantage", yaml: "dns: {resolvers: [127.0.0.1]}\ntargets: [{name: a.example.com}]\n",
			args: []string{"--vantage-name", "node-1", "--vantage-kind", "cluster"}, wantCode: 0, wantStdout: "config.yaml: valid (1 target, 1 vantage)\n"},
		{desc: "the process's own vantage, of a kind that does not exist", yaml: "dns: {resolvers: [127.0.0.1]}\ntargets: [{name: a.example.com}]\n",
			args: []string{"--vantage-name", "node-1", "--vantage-kind", "nearby"}, wantCode: 2, wantStderr: "config.yaml: vantages[0].kind: \"nearby\" is not external or cluster\n"},
		{desc: "the process's own vantage beside the file's", yaml: "vantages: [{name: a}]\ndns: {resolvers: [127.0.0.1]}\ntargets: [{name: a.example.com}]\n",
			args: []string{"--vantage-name", "node-1"}, wantCode: 2,
			wantStderr: "acmediag: --vantage-name: config.yaml:1 lists the vantages; name this one there, or leave vantages out\nRun 'acmediag daemon --help' for usage.\n"},
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
			stdout, stderr, code := runDaemonCheck(t, dir, file, tc.args...)
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

func freePort(t testing.TB) int {
	t.Helper()
	port, err := measure.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
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

func startDaemon(t testing.TB, config string) *daemonProc {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	listen := config[len("listen: "):strings.IndexByte(config, '\n')]
	d := startProc(t, "http://"+listen, "daemon", "--config", path, "--log-level", "info")
	d.config = path
	return d
}

// startProc runs the built binary with args, its output collected in the
// returned daemonProc; cleanup sends SIGTERM and kills it after 10 s.
func startProc(t testing.TB, base string, args ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{base: base, done: make(chan error, 1)}
	d.cmd = exec.Command(binary, args...)
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
func waitFor(t testing.TB, d *daemonProc, what string, timeout time.Duration, cond func() bool) {
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
	u := startUniverse(t, daemonUniversePort, "daemon")

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
			check    func(t *testing.T, obs []reports.Observation)
		}{
			{desc: "one name since the start", query: "?name=" + nxName + "&since=" + since, wantCode: 200, check: func(t *testing.T, obs []reports.Observation) {
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
			{desc: "limit keeps the newest", query: "?limit=2", wantCode: 200, check: func(t *testing.T, obs []reports.Observation) {
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
					var e struct {
						Error string `json:"error"`
					}
					if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
						t.Errorf("error body %q is not {\"error\": ...}", body)
					}
					return
				}
				var obs []reports.Observation
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
			`id="verdict">fail<`, "us-east", "eu-west", reports.Lookup(reports.CodeDNSNXDomain).Fix[:20], "No canary is configured",
			`<form method="post" action="/api/v1/reprobe?name=` + healthyName + `" class="reprobe"><button type="submit">Re-probe now</button>`} {
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

	t.Run("propagation watches", func(t *testing.T) { testDaemonPropagation(t, u, d, port) })
	t.Run("re-probe", func(t *testing.T) { testDaemonReprobe(t, d) })

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
	t.Run("100,000 targets", func(t *testing.T) { testDaemon100k(t, u) })
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

// reloadDaemon writes config and sends SIGHUP.
func reloadDaemon(t *testing.T, d *daemonProc, config string) {
	t.Helper()
	if err := os.WriteFile(d.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
}

// reportOf is the daemon's report of one name.
func reportOf(t *testing.T, d *daemonProc, name string) reports.Report {
	t.Helper()
	code, body := d.get(t, "/api/v1/report?name="+url.QueryEscape(name))
	var r reports.Report
	if err := json.Unmarshal(body, &r); code != http.StatusOK || err != nil {
		t.Fatalf("report of %s: %d %v\n%s", name, code, err, body)
	}
	return r
}

// tryReport is the daemon's report of one name, or false while the name
// is not a target yet (a reload in progress).
func tryReport(t *testing.T, d *daemonProc, name string) (reports.Report, bool) {
	t.Helper()
	code, body := d.get(t, "/api/v1/report?name="+url.QueryEscape(name))
	var r reports.Report
	if code == http.StatusNotFound {
		return r, false
	}
	if err := json.Unmarshal(body, &r); code != http.StatusOK || err != nil {
		t.Fatalf("report of %s: %d %v\n%s", name, code, err, body)
	}
	return r, true
}

// watched is the propagation watch in a report: its check per server
// address, and whether every address served the value (the time to
// everywhere: the slowest). value, when set, must be in the checks' notes.
func watched(r reports.Report, value string) (servers []reports.Check, everywhere bool, slowest time.Duration) {
	everywhere = true
	for _, c := range r.Checks {
		if c.Name != probes.PropagationCheck || c.Server == "" {
			continue
		}
		servers = append(servers, c)
		if c.Status != reports.CheckOK || value != "" && !strings.Contains(c.Note, value) {
			everywhere = false
		}
		slowest = max(slowest, c.Duration)
	}
	return servers, everywhere && len(servers) > 0, slowest
}

// watchSaid reports whether the report carries the propagation watch's
// word on code (its detail names the zone: "served by 1 of 2 server
// addresses of zone ..."): its own finding, or folded into a probe's finding
// of the same code as another source ("also_seen_by"); contains must be in
// it.
func watchSaid(r reports.Report, code reports.Code, contains string) bool {
	said := func(text string) bool { return strings.Contains(text, " of zone ") && strings.Contains(text, contains) }
	for _, f := range r.Findings {
		if f.Code != code {
			continue
		}
		if said(f.Detail) {
			return true
		}
		if also, ok := f.Evidence["also_seen_by"].([]any); ok {
			for _, a := range also {
				if s, _ := a.(string); said(s) {
					return true
				}
			}
		}
	}
	return false
}

// The daemon watches each dns-01 target's expected value: one already
// everywhere, one a lagging secondary never gets (after propagation.timeout
// the watch says dns01.txt_not_propagated naming it), then a reload with a
// new value that reaches the second server 1.5 s after the first: the page
// and the report show when each address served it, the histogram counts
// both watches that ended everywhere, and the late one is
// dns01.propagation_slow against an issuer wait of 500 ms.
func testDaemonPropagation(t *testing.T, u *testenv.Universe, d *daemonProc, port int) {
	const okName, lagName = "www.dns01-ok.com", "www.txtprop.com"
	var okServers []string
	for _, s := range u.Servers() {
		if s.Zone("dns01-ok.com.") != nil {
			okServers = append(okServers, s.Name())
		}
	}
	if len(okServers) < 2 {
		t.Fatalf("dns01-ok.com has %d servers; the test needs 2", len(okServers))
	}
	config := func(okValue string) string {
		return daemonConfigYAML(u, port, []string{healthyName, nxName, refusedName}) +
			fmt.Sprintf("  - {name: %s, challenge: dns-01, expect_txt: %q}\n  - {name: %s, challenge: dns-01, expect_txt: %q}\n",
				okName, okValue, lagName, testenv.Token("dns01-txt-not-propagated")) +
			"propagation: {timeout: 4s, issuer_wait: 500ms}\n"
	}
	histogram := func() float64 {
		n, _ := metricValue(d.metrics(t), "acmediag_propagation_seconds", nil)
		return n
	}
	reloadDaemon(t, d, config(testenv.Token("healthy-dns01")))
	waitFor(t, d, "the value everywhere and the lagging one timed out", 30*time.Second, func() bool {
		okRep, okLoaded := tryReport(t, d, okName)
		lagRep, lagLoaded := tryReport(t, d, lagName)
		_, okEverywhere, _ := watched(okRep, "")
		return okLoaded && lagLoaded && okEverywhere && watchSaid(lagRep, reports.CodeDNS01TXTNotPropagated, "ns2.txtprop.com")
	})
	if servers, everywhere, _ := watched(reportOf(t, d, okName), ""); !everywhere || len(servers) != len(okServers) {
		t.Errorf("%s: checks %+v, want every one of %d servers serving the value", okName, servers, len(okServers))
	}
	if servers, everywhere, _ := watched(reportOf(t, d, lagName), ""); everywhere ||
		!slices.ContainsFunc(servers, func(c reports.Check) bool {
			return strings.Contains(c.Server, "ns2.txtprop.com") && c.Status == reports.CheckFail
		}) {
		t.Errorf("%s: checks %+v, want ns2.txtprop.com failed", lagName, servers)
	}
	if n := histogram(); n != 1 {
		t.Errorf("acmediag_propagation_seconds count %v, want 1 (the value already everywhere)", n)
	}

	// A new value: the first server at once, the second 1.5 s later.
	const v2 = "new-value-for-the-propagation-test"
	if err := u.SetTXT("dns01-ok.com.", "_acme-challenge.www.dns01-ok.com", []string{v2}, okServers[0]); err != nil {
		t.Fatal(err)
	}
	reloadDaemon(t, d, config(v2))
	time.Sleep(1500 * time.Millisecond)
	if err := u.SetTXT("dns01-ok.com.", "_acme-challenge.www.dns01-ok.com", []string{v2}, okServers[1:]...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, d, "the new value everywhere", 30*time.Second, func() bool {
		_, everywhere, _ := watched(reportOf(t, d, okName), v2)
		return everywhere
	})
	ok := reportOf(t, d, okName)
	if _, _, slowest := watched(ok, v2); slowest < 1200*time.Millisecond || slowest > 10*time.Second {
		t.Errorf("the new value took %s to reach every server, want about 1.5 s", slowest)
	}
	if !slices.ContainsFunc(ok.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeDNS01PropagationSlow && f.Vantage == "" }) {
		t.Errorf("no dns01.propagation_slow against the 500 ms issuer wait: %+v", ok.Findings)
	}
	if n := histogram(); n != 2 {
		t.Errorf("acmediag_propagation_seconds count %v, want 2", n)
	}
	_, page := d.get(t, "/")
	for _, want := range []string{`id="propagation"`, okName, "ns1.dns01-ok.com"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("the page's propagation section lacks %q", want)
		}
	}
	if strings.Contains(string(page), `id="propagation-none"`) {
		t.Error("the page still says no propagation times were measured")
	}
}

// POST /api/v1/reprobe through the real server: accepted for a target
// (its failed watch queued again), refused otherwise.
func testDaemonReprobe(t *testing.T, d *daemonProc) {
	cases := []struct {
		desc     string
		method   string
		name     string
		header   map[string]string
		wantCode int
		wantBody string
	}{
		{desc: "a target whose watch failed", method: "POST", name: "www.txtprop.com", wantCode: 202, wantBody: `"propagation_watch": true`},
		{desc: "a target without a watch", method: "POST", name: nxName, wantCode: 202, wantBody: `"propagation_watch": false`},
		{desc: "at once again", method: "POST", name: nxName, wantCode: 429},
		{desc: "unknown name", method: "POST", name: "other.example.com", wantCode: 404},
		{desc: "GET", method: "GET", name: nxName, wantCode: 405},
		{desc: "a cross-site form", method: "POST", name: healthyName, header: map[string]string{"Sec-Fetch-Site": "cross-site"}, wantCode: 403},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, d.base+"/api/v1/reprobe?name="+url.QueryEscape(tc.name), nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
				t.Errorf("%d %s, want %d with %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
		})
	}
}

// maxRSS100k bounds the daemon's RSS with 100,000 targets: the default
// memory_limit (192 MiB) bounds what the Go runtime maps (heap, stacks,
// metadata), the store's 16 MiB included; the 42 MB binary's text and
// data pages that are resident come on top, and 64 MiB covers them with
// room. Measured: 175-225 MiB.
const maxRSS100k = 256 << 20

// 100,000 targets under a zone that answers NXDOMAIN, every probe hourly
// (so runs spread out: about 55 a second): the daemon becomes healthy,
// and while it probes, and while two reports of every name are being
// assembled, /healthz, /metrics and one name's report answer within 5 s
// each and the RSS stays under maxRSS100k.
func testDaemon100k(t *testing.T, u *testenv.Universe) {
	const n = 100_000
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\n", freePort(t))
	fmt.Fprintf(&b, "dns:\n  roots: [%s]\n  resolvers: [%q]\n  trust_anchor: %s\n  dns_port: %d\n  allow_addresses: [127.0.0.0/8, \"::1/128\"]\n  query_timeout: 1s\n",
		strings.Join(u.Roots(), ", "), u.Resolver(), u.TrustAnchorFile(), u.Port())
	fmt.Fprintf(&b, "http: {http_port: %d, https_port: %d}\n", u.HTTPPort(), u.HTTPSPort())
	b.WriteString("schedule:\n  intervals: {dns: 1h, http-01: 1h, tls-alpn-01: 1h}\n  timeout: 20s\ntargets:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: n%06d.nxdomain.com\n", i)
	}
	started := time.Now()
	d := startDaemon(t, b.String())
	waitFor(t, d, "/healthz", 60*time.Second, func() bool { return d.status("/healthz") == http.StatusOK })
	t.Logf("%d targets: healthy after %s", n, time.Since(started).Round(time.Millisecond))

	client := &http.Client{Timeout: 30 * time.Second}
	timed := func(path string) (int, time.Duration, error) {
		t0 := time.Now()
		resp, err := client.Get(d.base + path)
		if err != nil {
			return 0, time.Since(t0), err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, time.Since(t0), nil
	}
	// Reports of every name, as many as the daemon assembles at once,
	// over and over, while the checks below run.
	ctx, cancel := context.WithCancel(context.Background())
	var heavy sync.WaitGroup
	for _, path := range []string{"/", "/api/v1/report"} {
		heavy.Go(func() {
			for ctx.Err() == nil {
				if code, took, err := timed(path); err == nil && code == http.StatusOK {
					t.Logf("%s: %d in %s", path, code, took.Round(time.Millisecond))
				}
				// Refused (the other one is being assembled): try again soon.
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	var maxRSS int64
	slowest := map[string]time.Duration{}
	for i := range 20 {
		for _, path := range []string{"/healthz", "/metrics", fmt.Sprintf("/api/v1/report?name=n%06d.nxdomain.com", (i*7919)%n)} {
			code, took, err := timed(path)
			key, _, _ := strings.Cut(path, "?")
			slowest[key] = max(slowest[key], took)
			if err != nil || code != http.StatusOK || took > 5*time.Second {
				t.Errorf("%s: %d %v in %s, want 200 within 5s", path, code, err, took)
			}
		}
		rss, err := measure.ProcessRSS(d.cmd.Process.Pid)
		if err != nil {
			t.Fatal(err)
		}
		maxRSS = max(maxRSS, rss)
		time.Sleep(time.Second)
	}
	cancel()
	heavy.Wait()
	mf := d.metrics(t)
	runs := 0.0
	for _, res := range []string{"success", "failure"} {
		for _, kind := range []string{"dns", "http-01"} {
			v, _ := metricValue(mf, "acmediag_probe_runs_total", map[string]string{"kind": kind, "result": res})
			runs += v
		}
	}
	storeBytes, _ := metricValue(mf, "acmediag_store_bytes", nil)
	t.Logf("%d targets: max RSS %.1f MiB (bound %d MiB), %v probe runs, store %.1f MiB, slowest answers %v",
		n, float64(maxRSS)/(1<<20), maxRSS100k>>20, runs, storeBytes/(1<<20), slowest)
	if runs < 100 {
		t.Errorf("only %v probe runs: the daemon is not probing", runs)
	}
	if maxRSS > maxRSS100k {
		t.Errorf("RSS reached %.1f MiB, above the %d MiB bound", float64(maxRSS)/(1<<20), maxRSS100k>>20)
	}
	if d.status("/healthz") != http.StatusOK {
		t.Error("/healthz does not answer after the load")
	}
}
