// Package prom runs the real Prometheus server and promtool for tests, both
// built from the prometheus Go module pinned in testenv/tools/prom: a server
// on 127.0.0.1 with a free port and temporary storage that scrapes the
// loopback targets and loads the rule files it is given, queried through
// its HTTP API; and `promtool check rules` / `promtool test rules`.
//
// It owns the server's flags, configuration file and storage. It must not
// scrape anything but the targets it is given, and it holds no knowledge of
// acmediag's metrics or alerts (deploy/ and its tests do).
package prom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/acmediag/acmediag/testenv/internal/proc"
	"github.com/acmediag/acmediag/testenv/measure"
	"github.com/acmediag/acmediag/testenv/toolbuild"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"
	"gopkg.in/yaml.v3"
)

// Target is one scrape target.
type Target struct {
	// Job is the job label; "" is "test".
	Job string
	// Addr is host:port, on loopback.
	Addr string
	// MetricsPath is the path to scrape; "" is /metrics.
	MetricsPath string
	// Labels are added to every series of the target.
	Labels map[string]string
}

// Options says how to run one Prometheus server.
type Options struct {
	// ScrapeTargets are scraped every ScrapeInterval.
	ScrapeTargets []Target
	// RuleFiles are loaded as rule_files (recording and alerting rules),
	// evaluated every ScrapeInterval.
	RuleFiles []string
	// ScrapeInterval is the scrape and evaluation interval; 0 is 1s.
	ScrapeInterval time.Duration
	// Dir holds the configuration and the TSDB; "" is a temporary
	// directory removed by Close.
	Dir string
	// Bin is the prometheus binary; "" builds (or finds) the pinned one.
	Bin string
	// Args are added to the server's flags.
	Args []string
	// Logger gets the server's output at debug level; nil discards it.
	Logger *zap.Logger
}

// Server is a running Prometheus.
type Server struct {
	log    *zap.Logger
	p      *proc.Process
	addr   string
	dir    string
	ownDir bool
	api    promv1.API
	// Startup is how long the process took from exec to /-/ready.
	Startup time.Duration
}

// config mirrors the part of prometheus.yml this package writes.
type config struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string       `yaml:"rule_files,omitempty"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs,omitempty"`
}

type scrapeConfig struct {
	JobName       string         `yaml:"job_name"`
	MetricsPath   string         `yaml:"metrics_path,omitempty"`
	StaticConfigs []staticConfig `yaml:"static_configs"`
}

type staticConfig struct {
	Targets []string          `yaml:"targets"`
	Labels  map[string]string `yaml:"labels,omitempty"`
}

// Config is the prometheus.yml Start writes for opts.
func Config(opts Options) ([]byte, error) {
	iv := opts.ScrapeInterval
	if iv <= 0 {
		iv = time.Second
	}
	var c config
	c.Global.ScrapeInterval = model.Duration(iv).String()
	c.Global.ScrapeTimeout = model.Duration(iv).String()
	c.Global.EvaluationInterval = model.Duration(iv).String()
	for _, f := range opts.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		c.RuleFiles = append(c.RuleFiles, abs)
	}
	// One scrape config per (job, path): Prometheus wants job names unique.
	index := map[[2]string]int{}
	for _, t := range opts.ScrapeTargets {
		if t.Addr == "" {
			return nil, errors.New("scrape target without an address")
		}
		job, path := t.Job, t.MetricsPath
		if job == "" {
			job = "test"
		}
		key := [2]string{job, path}
		i, ok := index[key]
		if !ok {
			name := job
			for _, sc := range c.ScrapeConfigs {
				if sc.JobName == name {
					return nil, fmt.Errorf("job %q scrapes two metrics paths: give each its own job", job)
				}
			}
			i = len(c.ScrapeConfigs)
			index[key] = i
			c.ScrapeConfigs = append(c.ScrapeConfigs, scrapeConfig{JobName: name, MetricsPath: path})
		}
		c.ScrapeConfigs[i].StaticConfigs = append(c.ScrapeConfigs[i].StaticConfigs,
			staticConfig{Targets: []string{t.Addr}, Labels: t.Labels})
	}
	return yaml.Marshal(&c)
}

// Start writes the configuration, starts Prometheus on a free 127.0.0.1
// port and waits until it reports ready (/-/ready). The process dies with
// the test binary and on Close.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	s := &Server{log: log.Named("prometheus"), dir: opts.Dir}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	bin := opts.Bin
	if bin == "" {
		if bin, err = toolbuild.Build(ctx, toolbuild.Prometheus); err != nil {
			return nil, fmt.Errorf("prometheus: %w", err)
		}
	}
	if s.dir == "" {
		if s.dir, err = os.MkdirTemp("", "acmediag-prometheus-"); err != nil {
			return nil, fmt.Errorf("prometheus: %w", err)
		}
		s.ownDir = true
	}
	cfg, err := Config(opts)
	if err != nil {
		return nil, fmt.Errorf("prometheus: config: %w", err)
	}
	cfgFile := filepath.Join(s.dir, "prometheus.yml")
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	if err := os.WriteFile(cfgFile, cfg, 0o644); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	port, err := measure.FreePort()
	if err != nil {
		return nil, fmt.Errorf("prometheus: port: %w", err)
	}
	s.addr = "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{
		"--config.file=" + cfgFile,
		"--storage.tsdb.path=" + filepath.Join(s.dir, "data"),
		"--web.listen-address=" + s.addr,
		"--web.enable-lifecycle", // POST /-/reload
		// The scrape manager applies target updates at most this often
		// (hidden flag, default 5s): the first scrape would wait for it.
		"--scrape.discovery-reload-interval=100ms",
		"--log.level=info",
	}, opts.Args...)
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.dir
	cmd.Env = os.Environ()
	start := time.Now()
	if s.p, err = proc.Start("prometheus", cmd, s.log); err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	hc := &http.Client{Timeout: 2 * time.Second}
	err = s.p.Poll(ctx, 50*time.Millisecond, func(ctx context.Context) error {
		return s.call(ctx, hc, http.MethodGet, "/-/ready")
	})
	if err != nil {
		return nil, fmt.Errorf("prometheus on %s: %w", s.addr, err)
	}
	s.Startup = time.Since(start)
	client, err := promapi.NewClient(promapi.Config{Address: s.URL()})
	if err != nil {
		return nil, fmt.Errorf("prometheus: %w", err)
	}
	s.api = promv1.NewAPI(client)
	s.log.Info("ready", zap.String("addr", s.addr), zap.Duration("startup", s.Startup))
	return s, nil
}

// call sends a request without a body and wants a 200.
func (s *Server) call(ctx context.Context, hc *http.Client, method, path string) error {
	req, err := http.NewRequestWithContext(ctx, method, s.URL()+path, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, body)
	}
	return nil
}

// URL is the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.addr }

// Addr is the server's listen address.
func (s *Server) Addr() string { return s.addr }

// API is a client of the server's HTTP API, for rules, alerts, targets
// and range queries.
func (s *Server) API() promv1.API { return s.api }

// Query runs an instant PromQL query now and returns its vector; a query
// whose result is not a vector is an error.
func (s *Server) Query(ctx context.Context, promql string) (model.Vector, error) {
	v, _, _, err := s.api.Query(ctx, promql, time.Now())
	if err != nil {
		return nil, fmt.Errorf("prometheus %s: query %q: %w", s.addr, promql, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("prometheus %s: query %q returned a %s, not a vector", s.addr, promql, v.Type())
	}
	return vec, nil
}

// WaitFor runs promql every 100 ms until it returns a non-empty vector
// (e.g. once a target has been scraped, or an alert fires) or ctx ends.
func (s *Server) WaitFor(ctx context.Context, promql string) (model.Vector, error) {
	var vec model.Vector
	err := s.p.Poll(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		var err error
		if vec, err = s.Query(ctx, promql); err != nil {
			return err
		}
		if len(vec) == 0 {
			return fmt.Errorf("query %q: empty result", promql)
		}
		return nil
	})
	return vec, err
}

// Reload makes the server read its configuration and rule files again.
func (s *Server) Reload(ctx context.Context) error {
	if err := s.call(ctx, &http.Client{Timeout: 10 * time.Second}, http.MethodPost, "/-/reload"); err != nil {
		return fmt.Errorf("prometheus %s: reload: %w", s.addr, err)
	}
	return nil
}

// Output is the tail of the server's log.
func (s *Server) Output() string { return s.p.Output() }

// Close stops the server and removes the directory Start made. It is safe
// to call twice.
func (s *Server) Close() {
	if s.p != nil {
		s.p.Stop(5 * time.Second)
	}
	if s.ownDir && s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			s.log.Warn("remove work dir", zap.String("dir", s.dir), zap.Error(err))
		}
		s.ownDir = false
	}
}
