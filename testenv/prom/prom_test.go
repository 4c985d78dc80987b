package prom

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acmediag/acmediag/testenv/toolbuild"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap/zaptest"
)

func TestConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc    string
		opts    Options
		want    []string
		wantErr string
	}{
		{desc: "defaults", opts: Options{ScrapeTargets: []Target{{Addr: "127.0.0.1:9"}}},
			want: []string{"scrape_interval: 1s", "evaluation_interval: 1s", "job_name: test", "- 127.0.0.1:9"}},
		{desc: "targets of one job share a scrape config", opts: Options{ScrapeInterval: 5 * time.Second, ScrapeTargets: []Target{
			{Job: "a", Addr: "127.0.0.1:1", Labels: map[string]string{"vantage": "x"}}, {Job: "a", Addr: "127.0.0.1:2"}, {Job: "b", Addr: "127.0.0.1:3", MetricsPath: "/m"}}},
			want: []string{"scrape_interval: 5s", "job_name: a", "vantage: x", "- 127.0.0.1:2", "job_name: b", "metrics_path: /m"}},
		{desc: "no address", opts: Options{ScrapeTargets: []Target{{Job: "a"}}}, wantErr: "without an address"},
		{desc: "one job, two paths", opts: Options{ScrapeTargets: []Target{{Job: "a", Addr: "127.0.0.1:1"}, {Job: "a", Addr: "127.0.0.1:1", MetricsPath: "/x"}}},
			wantErr: `job "a" scrapes two metrics paths`},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			b, err := Config(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("config lacks %q:\n%s", w, b)
				}
			}
			if n := strings.Count(string(b), "job_name: a"); n > 1 {
				t.Errorf("job a appears %d times:\n%s", n, b)
			}
		})
	}
}

// TestServer starts a real Prometheus that scrapes a /metrics endpoint
// served by this test and evaluates a rule file: the scraped value, the
// recording rule and the alert all come back through the query API.
func TestServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	t.Parallel()
	bin := toolbuild.Need(t, toolbuild.Prometheus)[0]
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "acmediag_test_gauge", Help: "A gauge for testenv/prom."}, []string{"name"})
	reg.MustRegister(g)
	g.WithLabelValues("x").Set(42)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	start := time.Now()
	s, err := Start(ctx, Options{
		Bin:           bin,
		Dir:           t.TempDir(),
		ScrapeTargets: []Target{{Job: "test", Addr: ln.Addr().String(), Labels: map[string]string{"vantage": "local"}}},
		RuleFiles:     []string{"testdata/good-rules.yaml"},
		Logger:        zaptest.NewLogger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	t.Logf("prometheus %s ready in %s", s.URL(), s.Startup.Round(time.Millisecond))

	for _, tc := range []struct {
		desc, query string
		want        float64
	}{
		{"the scraped gauge", `acmediag_test_gauge{job="test",name="x",vantage="local"}`, 42},
		{"the target is up", `up{job="test"}`, 1},
		{"the recording rule", `job:acmediag_test_gauge:sum{job="test"}`, 42},
		{"the alert fires", `ALERTS{alertname="TestGaugeHigh",alertstate="firing",severity="warning"}`, 1},
	} {
		vec, err := s.WaitFor(ctx, tc.query)
		if err != nil {
			t.Fatalf("%s: %v", tc.desc, err)
		}
		if len(vec) != 1 || float64(vec[0].Value) != tc.want {
			t.Errorf("%s: %s = %v, want one sample of %v", tc.desc, tc.query, vec, tc.want)
		}
		t.Logf("%s after %s", tc.desc, time.Since(start).Round(time.Millisecond))
	}
	// It scrapes what it was given and nothing else.
	targets, err := s.API().Targets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(targets.Active) != 1 || targets.Active[0].ScrapeURL != "http://"+ln.Addr().String()+"/metrics" {
		t.Errorf("active targets %+v, want only the test's", targets.Active)
	}
	g.WithLabelValues("x").Set(7)
	if _, err := s.WaitFor(ctx, `acmediag_test_gauge{name="x"} == 7`); err != nil {
		t.Errorf("a new value: %v", err)
	}
	if err := s.Reload(ctx); err != nil {
		t.Error(err)
	}
	if _, err := s.Query(ctx, `scalar(up)`); err == nil || !strings.Contains(err.Error(), "not a vector") {
		t.Errorf("a scalar query: err = %v, want 'not a vector'", err)
	}
}

func TestPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("runs promtool")
	}
	t.Parallel()
	p := &Promtool{Bin: toolbuild.Need(t, toolbuild.Promtool)[0]}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		desc string
		run  func() (string, error)
		ok   bool
		want string
	}{
		{"check: valid rules", func() (string, error) { return p.CheckRules(ctx, "testdata/good-rules.yaml") }, true, "SUCCESS: 2 rules found"},
		{"check: broken PromQL", func() (string, error) { return p.CheckRules(ctx, "testdata/broken-rules.yaml") }, false, "could not parse expression"},
		{"check: missing file", func() (string, error) { return p.CheckRules(ctx, "testdata/none.yaml") }, false, "none.yaml"},
		{"test: passing unit tests", func() (string, error) { return p.TestRules(ctx, "testdata/good-rules_test.yaml") }, true, "SUCCESS"},
		{"test: failing unit tests", func() (string, error) { return p.TestRules(ctx, "testdata/failing-rules_test.yaml") }, false, "TestGaugeHigh"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			out, err := tc.run()
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v; output:\n%s", err, tc.ok, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output lacks %q:\n%s", tc.want, out)
			}
		})
	}
	if out, err := p.Run(ctx, "--version"); err != nil || !strings.Contains(out, "3.16.0") {
		t.Errorf("promtool --version = %q, %v; want 3.16.0", out, err)
	}
}
