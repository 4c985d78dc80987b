package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

type daemonFlags struct {
	config   string
	check    bool
	logLevel string
}

func newDaemonCmd() *cobra.Command {
	f := &daemonFlags{}
	cmd := &cobra.Command{
		Use:   "daemon --config FILE",
		Short: "Keep probing every configured name from every vantage; serve metrics, a JSON API and a report page",
		Long: `daemon runs diagnose's checks continuously: every probe kind for every
target from every vantage on its interval, with jitter, a concurrency limit,
a timeout per run and backoff after failures. It serves

  /metrics                 Prometheus metrics (acmediag_*)
  /healthz, /readyz        liveness; readiness once every probe ran once
  /api/v1/observations     recent observations (?name=&since=RFC3339&limit=)
  /api/v1/report           diagnose's JSON over the latest observations (?name=)
  /api/v1/reprobe          POST ?name=NAME: run every probe of the name now
                           (202; refused for cross-site browser requests)
  /                        the report page

Every dns-01 target with expect_txt has its value watched until every
authoritative server address of its zone serves it (the propagation:
section paces this): the page lists when each address first served it,
acmediag_propagation_seconds counts the times, and a value that did not
get everywhere within propagation.timeout is a dns01.txt_not_propagated
finding until a re-probe of the name watches it again.

memory_limit (default 192MiB, unless GOMEMLIMIT is set) is the Go
runtime's soft memory limit; with store.max_bytes it bounds the RSS.

The canary (the canary: section) places real orders at a staging ACME
directory: probe orders for http-01 names (the CA's own verdict without
serving the token), full orders for dns-01 names when canary.dns_provider
names a lego DNS provider (credentials from the environment, as lego reads
them); a dns-01 order waits, through the same watch, until every server
address serves its TXT value before answering the challenge.

Agents (the agents: section) are vantages in other places: the daemon asks
each "acmediag agent" over mutual TLS to run the probes there, and its
results count like a local vantage's, in the MPIC quorum too.

The configuration is one YAML file, decoded strictly: an unknown key is an
error, and every error names the file line and the key. SIGHUP reloads it;
a configuration with errors is logged and counted
(acmediag_config_reload_failures_total) and the one in force is kept.

Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure, 2 for a
configuration error.`,
		Example: `  # Check a configuration file and exit (0: valid, 2: errors, printed)
  acmediag daemon --config /etc/acmediag/config.yaml --config.check

  # Run it
  acmediag daemon --config /etc/acmediag/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd.Context(), cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "the YAML configuration file (required)")
	fl.BoolVar(&f.check, "config.check", false, "validate the configuration, print the result and exit (0 valid, 2 invalid)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	fl.SortFlags = false
	return cmd
}

func runDaemon(ctx context.Context, cmd *cobra.Command, f *daemonFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.config == "" {
		return usagef("daemon needs --config FILE")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Reading 100,000 targets' YAML is the daemon's largest transient
		// heap: bound it before the file's own memory_limit is known.
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	cfg, err := loadConfig(f.config)
	if err != nil {
		// Printed as is: each line already names the file, line and key.
		fmt.Fprintln(stderr, err)
		return exitError{exitUsage}
	}
	if f.check {
		fmt.Fprintf(stdout, "%s: valid (%s, %s)\n", f.config, plural(len(cfg.Targets), "target"), plural(len(cfg.Vantages), "vantage"))
		return nil
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	d := newDaemon(cfg, logger)
	return d.run(ctx)
}

// probeConfig is the part of the configuration the probes read on every
// run, swapped whole on reload.
type probeConfig struct {
	checker   dnscheck.Checker
	validator http01.Validator
	canary    *probes.ACMEProbe // nil: no canary
	// watches keeps what a canary's dns-01 order waits for, and when
	// every server address served it.
	watches *propagationWatches
	records *recordLocks // dns-01 orders one at a time per TXT record
	// agents are the vantages whose probes an agent runs, by vantage name.
	agents map[string]*probes.AgentClient
}

// liveProbe is one probe kind whose configuration follows reloads. Each run
// gets fresh DNS sessions: a dnscheck session remembers answers (and dead
// addresses) without expiry, right for one diagnosis, wrong for a daemon
// that must see a record change.
type liveProbe struct {
	kind string
	cfg  *atomic.Pointer[probeConfig]
}

// Kind implements probes.Probe.
func (p *liveProbe) Kind() string { return p.kind }

// Applies implements probes.Applier: a challenge probe only for targets
// of its challenge, the canary for http-01 targets (and dns-01 ones with a
// DNS provider).
func (p *liveProbe) Applies(t probes.Target) bool {
	switch p.kind {
	case "dns":
		return true
	case "acme":
		c := p.cfg.Load().canary
		return c != nil && c.Applies(t)
	}
	return p.kind == t.Challenge
}

// Run implements probes.Probe.
func (p *liveProbe) Run(ctx context.Context, t probes.Target, v probes.Vantage) probes.Observation {
	pc := p.cfg.Load()
	if c, ok := pc.agents[v.Name]; ok && p.kind != "acme" {
		return (&probes.RemoteProbe{ProbeKind: p.kind, Client: c}).Run(ctx, t, v)
	}
	sessions := &probes.Sessions{Checker: pc.checker}
	switch p.kind {
	case "dns":
		return (&probes.DNSProbe{Sessions: sessions}).Run(ctx, t, v)
	case "acme":
		if pc.canary == nil {
			return probes.Observation{Target: t, Vantage: v, Kind: p.kind, Start: time.Now(), OK: true, Checks: []reports.Check{{
				Name: "acme.order", Target: t.Name, Status: reports.CheckSkipped, Note: "the canary is not configured"}}}
		}
		order := *pc.canary
		if t.Challenge == dnscheck.DNS01 {
			// The order waits until every authoritative server address
			// serves its value, watched as the expect_txt values are: the
			// page, the API and the propagation histogram show it.
			order.Config.DNS01Propagation = pc.watches.CanaryCheck(t.Name)
			defer pc.records.lock(t.Name)()
		}
		return order.Run(ctx, t, v)
	}
	return (&probes.ChallengeProbe{Challenge: p.kind, Sessions: sessions, Validator: pc.validator}).Run(ctx, t, v)
}

// canaryFirstWithin is the window the first canary orders (at start, and
// for names a reload adds) are spread over: feedback on a deployment comes
// in seconds, and two orders at a time still keep the CA's rate limits.
const canaryFirstWithin = 5 * time.Second

// recordLocks serializes the canary's dns-01 orders whose TXT records
// share an owner name (a wildcard and its base name both publish at
// _acme-challenge.BASE): lego providers such as dnsupdate replace the whole
// TXT set when they publish, so two orders at once would delete each
// other's value and both fail for no fault of the user's.
type recordLocks struct {
	mu sync.Mutex
	m  map[string]*recordLock
}

type recordLock struct {
	sync.Mutex
	users int // holders and waiters; the entry goes with the last
}

// lock waits until no other order publishes at name's record, and returns
// the unlock.
func (l *recordLocks) lock(name string) (unlock func()) {
	owner := strings.ToLower(strings.TrimPrefix(strings.TrimSuffix(name, "."), "*."))
	l.mu.Lock()
	if l.m == nil {
		l.m = map[string]*recordLock{}
	}
	rl := l.m[owner]
	if rl == nil {
		rl = &recordLock{}
		l.m[owner] = rl
	}
	rl.users++
	l.mu.Unlock()
	rl.Lock()
	return func() {
		rl.Unlock()
		l.mu.Lock()
		if rl.users--; rl.users == 0 {
			delete(l.m, owner)
		}
		l.mu.Unlock()
	}
}

// daemon is one running `acmediag daemon`.
type daemon struct {
	log     *zap.Logger
	udp     *dnscheck.UDPPool // UDP sockets shared by every probe run
	cfg     *daemonConfig     // in force; read and written by the run loop only
	reg     *prometheus.Registry
	store   *probes.Store
	metrics *probes.Metrics
	sched   *probes.Scheduler   // dns, http-01, tls-alpn-01 from every vantage
	canary  *probes.Scheduler   // the CA's own verdict, once per name
	watches *propagationWatches // expect_txt values reaching every server address
	records *recordLocks        // kept across reloads: an order may span one
	budget  *canary.Budget      // the canary account's rate budget, kept across reloads
	probes  atomic.Pointer[probeConfig]
	state   atomic.Pointer[daemonState]

	reloadFailures prometheus.Counter
	lastReload     prometheus.Gauge
}

func newDaemon(cfg *daemonConfig, logger *zap.Logger) *daemon {
	d := &daemon{log: logger.Named("daemon"), cfg: cfg, reg: prometheus.NewRegistry(), budget: canary.NewBudget(canary.Limits{}),
		udp: dnscheck.NewUDPPool(), records: &recordLocks{}}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.reloadFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "acmediag_config_reload_failures_total",
		Help: "Configuration reloads (SIGHUP) that failed; the configuration in force was kept."})
	d.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{Name: "acmediag_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load."})
	d.reg.MustRegister(d.reloadFailures, d.lastReload)
	d.store = probes.NewStore(probes.StoreLimits{PerKey: cfg.Store.PerKey, MaxBytes: cfg.Store.MaxBytes})
	d.metrics = probes.NewMetrics(d.reg, d.store, version)

	sch := probes.Schedule{Interval: cfg.Schedule.Intervals, Jitter: cfg.Schedule.Jitter, Concurrency: cfg.Schedule.Concurrency,
		Timeout: cfg.Schedule.Timeout, MaxBackoff: cfg.Schedule.MaxBackoff}
	if sch.Jitter == 0 {
		sch.Jitter = -1 // the scheduler reads 0 as "default"; negative means none
	}
	var kinds []probes.Probe
	for _, k := range []string{"dns", dnscheck.HTTP01, dnscheck.TLSALPN01} {
		kinds = append(kinds, &liveProbe{kind: k, cfg: &d.probes})
	}
	d.sched = probes.NewScheduler(sch, kinds, d.store, logger, probes.RealClock())
	d.sched.SetMetrics(d.metrics)
	canarySch := sch
	canarySch.Interval = map[string]time.Duration{"acme": time.Hour}
	if cfg.Canary != nil {
		canarySch.Interval["acme"] = cfg.Canary.Interval
	}
	canarySch.Concurrency = 2 // orders are slow and rate-limited: a few at a time
	canarySch.FirstWithin = canaryFirstWithin
	canarySch.Timeout = max(sch.Timeout, 2*time.Minute)
	d.canary = probes.NewScheduler(canarySch, []probes.Probe{&liveProbe{kind: "acme", cfg: &d.probes}}, d.store, logger.Named("canary"), probes.RealClock())
	d.canary.SetMetrics(d.metrics)
	d.watches = newPropagationWatches(logger, d.metrics, cfg.Propagation.Concurrency)
	d.apply(cfg)
	d.lastReload.SetToCurrentTime()
	return d
}

// apply puts cfg in force: probes read the new settings on their next run,
// the handlers see the new targets, the schedulers add and remove runs
// (keeping the timing of the rest).
func (d *daemon) apply(cfg *daemonConfig) {
	checker := cfg.Checker
	checker.Logger = d.log.Named("dnscheck")
	checker.UDP = d.udp // every probe run's session shares the daemon's sockets
	pc := &probeConfig{checker: checker, validator: http01.Validator{HTTPPort: cfg.HTTPPort, HTTPSPort: cfg.HTTPSPort,
		Allow: cfg.Checker.Allow, Logger: d.log.Named("http01")}, agents: cfg.Agents, watches: d.watches, records: d.records}
	var canaryTargets []probes.Target
	if cfg.Canary != nil {
		c := cfg.Canary.Config
		c.Logger, c.Budget = d.log.Named("canary"), d.budget
		pc.canary = &probes.ACMEProbe{Config: c, DNSProvider: cfg.Canary.DNSProvider}
		for _, t := range cfg.Targets {
			for _, n := range cfg.Canary.Names {
				if t.Name == n {
					canaryTargets = append(canaryTargets, t)
				}
			}
		}
	}
	if old := d.probes.Swap(pc); old != nil {
		// Runs in flight keep the old clients; new runs take the new ones.
		for _, c := range old.agents {
			c.CloseIdleConnections()
		}
	}
	d.state.Store(&daemonState{targets: cfg.Targets, vantages: cfg.Vantages, canary: cfg.Canary, api: cfg.API})
	d.sched.SetWork(cfg.Targets, cfg.Vantages)
	// The CA validates from its own perspectives: one run per name, under
	// a vantage without a name, as diagnose records it.
	d.canary.SetWork(canaryTargets, []probes.Vantage{{Kind: probes.KindExternal}})
	d.watches.Set(cfg.Targets, checker, cfg.Propagation)
	if cfg.MemoryLimit > 0 {
		// A soft limit: the GC works harder as the heap nears it, so the
		// store's bound and the run heap hold RSS near it under load.
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	d.cfg = cfg
	// Reading the file and building the work left garbage several times
	// the size of what stays (YAML nodes of every target); give it back to
	// the system now rather than over the scavenger's next minutes, so an
	// idle daemon's RSS is what it keeps.
	debug.FreeOSMemory()
}

// reload re-reads the configuration file. On any error the configuration
// in force stays, and the failure is logged and counted.
func (d *daemon) reload() {
	cfg, err := loadConfig(d.cfg.Path)
	if err != nil {
		d.reloadFailures.Inc()
		d.log.Error("configuration reload failed; keeping the configuration in force", zap.String("config", d.cfg.Path), zap.Error(err))
		return
	}
	// These are fixed when the daemon starts.
	for _, c := range []struct {
		key      string
		old, new any
	}{
		{"listen", d.cfg.Listen, cfg.Listen},
		{"schedule", d.cfg.Schedule, cfg.Schedule},
		{"store", d.cfg.Store, cfg.Store},
		{"api.max_concurrent", d.cfg.API.MaxConcurrent, cfg.API.MaxConcurrent},
		{"propagation.concurrency", d.cfg.Propagation.Concurrency, cfg.Propagation.Concurrency},
		{"canary.interval", canaryInterval(d.cfg), canaryInterval(cfg)},
	} {
		if !reflect.DeepEqual(c.old, c.new) {
			d.log.Warn("a changed setting takes effect only at restart", zap.String("key", c.key))
		}
	}
	d.apply(cfg)
	d.lastReload.SetToCurrentTime()
	d.log.Info("configuration reloaded", zap.String("config", cfg.Path), zap.Int("targets", len(cfg.Targets)), zap.Int("vantages", len(cfg.Vantages)))
}

func canaryInterval(c *daemonConfig) time.Duration {
	if c.Canary == nil {
		return 0
	}
	return c.Canary.Interval
}

// reprobe runs every probe of name from every vantage now, and watches
// its expected TXT value again when the last watch did not see it
// everywhere. The canary is left alone: its orders spend the CA's rate
// limits. It reports whether a propagation watch was queued.
func (d *daemon) reprobe(name string) bool {
	d.sched.Reprobe(name)
	return d.watches.Restart(name)
}

// ready: every run of both schedulers has completed once.
func (d *daemon) ready() bool { return d.sched.Ready() && d.canary.Ready() }

// run serves and probes until ctx ends (SIGINT, SIGTERM), reloading on SIGHUP.
func (d *daemon) run(ctx context.Context) error {
	ln, err := net.Listen("tcp", d.cfg.Listen)
	if err != nil {
		return fmt.Errorf("daemon: listen: %w", err)
	}
	api := newAPIServer(d.log, d.reg, d.store, d.ready, d.state.Load, version, d.cfg.API.MaxConcurrent)
	api.propagation, api.reprobe = d.watches, d.reprobe
	srv := newHTTPServer(api.handler(), d.log)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(limitListener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	wg.Go(func() { _ = d.sched.Run(ctx) })
	wg.Go(func() { _ = d.canary.Run(ctx) })
	wg.Go(func() { d.watches.Run(ctx) })
	d.log.Info("daemon started", zap.String("listen", ln.Addr().String()), zap.String("config", d.cfg.Path),
		zap.Int("targets", len(d.cfg.Targets)), zap.Int("vantages", len(d.cfg.Vantages)), zap.Int("agents", len(d.cfg.Agents)),
		zap.String("version", version))

	var runErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-serveErr:
			runErr = fmt.Errorf("daemon: serving HTTP: %w", err)
			break loop
		case <-hup:
			d.log.Info("SIGHUP: reloading the configuration")
			d.reload()
		}
	}
	d.log.Info("shutting down")
	cancel()
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
	}
	wg.Wait()
	return runErr
}
