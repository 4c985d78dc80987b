package run

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
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/agent"
	"github.com/acmediag/acmediag/probes/renewals"
	"github.com/acmediag/acmediag/reports"
)

// KindAPI is the kind label of acmediag_probe_panics_total for a panic in
// an API handler.
const KindAPI reports.Kind = "api"

// DaemonOptions are what a Daemon needs besides its first settings.
type DaemonOptions struct {
	// Load reads the settings again (SIGHUP); nil: reloads are refused.
	Load func() (probes.Settings, error)
	// Explain, when set, says where the problems of a settings error are
	// (the file's lines) for the log.
	Explain  func(error) error
	Logger   *zap.Logger
	Version  string
	Registry *probes.Registry // nil → probes.DefaultKinds()
	Clock    probes.Clock     // nil → the real one
	// LeaderWork runs while this daemon leads: always without cluster
	// mode, while it holds the Lease with it.
	LeaderWork []LeaderWork
	// Kube is the API server's client configuration; nil: kube.kubeconfig's,
	// else the pod's in-cluster one.
	Kube *rest.Config
}

// Daemon runs a plan forever: every probe kind for every target from every
// vantage on its schedule, the canary's orders, the propagation watches;
// it keeps the observations, exports the metrics and serves the API and the
// report page. SIGHUP reloads the settings, keeping the ones in force when
// the new ones have errors.
type Daemon struct {
	opts    DaemonOptions
	log     *zap.Logger
	reg     *prometheus.Registry
	store   *probes.Store
	metrics *probes.Metrics
	engine  *probes.Engine
	shared  *probes.Shared // kept across reloads: sockets, the canary's budget, the watches
	api     *apiServer

	mu   sync.Mutex
	plan *probes.Plan

	// buildMu makes one plan at a time: a reload, or the cluster's
	// targets changing.
	buildMu        sync.Mutex
	clusterTargets []probes.Target                  // guarded by mu
	renewals       atomic.Pointer[renewals.Watcher] // the leader's, from its first term

	reloadFailures prometheus.Counter
	lastReload     prometheus.Gauge

	// Cluster mode (cluster.go, peers.go).
	leader  prometheus.Gauge
	peers   *peerSet
	termMu  sync.Mutex // held for a whole term as leader
	leading atomic.Bool
}

// NewDaemon builds the plan of s and the daemon around it. A settings
// error is a *probes.SettingsError.
func NewDaemon(s probes.Settings, opts DaemonOptions) (*Daemon, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Registry == nil {
		opts.Registry = probes.DefaultKinds()
	}
	if opts.Clock == nil {
		opts.Clock = probes.RealClock()
	}
	d := &Daemon{opts: opts, log: opts.Logger.Named("daemon"), reg: prometheus.NewRegistry(), shared: probes.NewShared()}
	plan, err := d.build(s)
	if err != nil {
		return nil, err
	}
	d.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	d.reloadFailures = prometheus.NewCounter(prometheus.CounterOpts{Name: "acmediag_config_reload_failures_total",
		Help: "Configuration reloads (SIGHUP) that failed; the configuration in force was kept."})
	d.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{Name: "acmediag_config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load."})
	d.leader = prometheus.NewGauge(prometheus.GaugeOpts{Name: "acmediag_leader",
		Help: "1 while this daemon leads (holds the cluster's Lease, or runs alone): it runs the canary and the leader-only work."})
	d.reg.MustRegister(d.reloadFailures, d.lastReload, d.leader)
	d.store = probes.NewStore(plan.Store)
	d.metrics = probes.NewMetrics(d.reg, d.store, opts.Registry, opts.Version)
	d.engine = probes.NewEngine(d.store, d.metrics, opts.Logger, opts.Clock)
	if plan.Cluster != nil {
		// One canary per cluster: its orders spend the CA's rate limits.
		d.engine.SetLeaderOnly(probes.LaneCanary)
	}
	d.peers = newPeerSet(d)
	d.api = newAPIServer(opts.Logger, d.reg, d.store, d.Ready, d.Plan, opts.Version, plan.Settings.API)
	d.api.reprobe = d.Reprobe
	d.api.onPanic = func() { d.metrics.ObservePanic(KindAPI) }
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmediag_http_connections_refused_total",
		Help: "Connections to the daemon's HTTP port closed at once, by reason: per_client (that address already holds its share) or total (every slot taken)."},
		[]string{"reason"})
	reprobes := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "acmediag_reprobe_requests_total",
		Help: "POST /api/v1/reprobe requests by result: accepted, rate_limited, unauthorized, forbidden (cross-site), disabled."},
		[]string{"result"})
	d.reg.MustRegister(refused, reprobes)
	d.api.refused = func(reason string) { refused.WithLabelValues(reason).Inc() }
	d.api.reprobeResult = func(result string) { reprobes.WithLabelValues(result).Inc() }
	d.api.peers = d.peers.vantageList
	d.apply(plan)
	d.lastReload.SetToCurrentTime()
	if s.Kube.Enabled {
		// The watch writes Events: one writer per cluster, the leader.
		d.opts.LeaderWork = append(d.opts.LeaderWork, LeaderWork{Name: "renewals", Run: d.runRenewals})
	}
	return d, nil
}

func (d *Daemon) build(s probes.Settings) (*probes.Plan, error) {
	d.mu.Lock()
	cluster := d.clusterTargets
	d.mu.Unlock()
	return probes.Build(s, probes.BuildOptions{Registry: d.opts.Registry, Remote: agent.Dial, Shared: d.shared,
		Logger: d.opts.Logger, Clock: d.opts.Clock, ClusterTargets: cluster})
}

// kubeConfig is the API server's client configuration, one for the
// cert-manager watch and cluster mode: DaemonOptions.Kube, else
// kube.kubeconfig's, else the pod's in-cluster one. It is made when first
// needed, so --config.check works outside a pod.
func (d *Daemon) kubeConfig() (*rest.Config, error) {
	if d.opts.Kube != nil {
		return d.opts.Kube, nil
	}
	return renewals.RESTConfig(d.Plan().Settings.Kube.Kubeconfig)
}

// runRenewals is the leader's cert-manager watch (kube.enabled), made on
// the first term.
func (d *Daemon) runRenewals(ctx context.Context) error {
	w := d.renewals.Load()
	if w == nil {
		var err error
		if w, err = d.newRenewals(d.Plan().Settings.Kube); err != nil {
			return err
		}
		d.renewals.Store(w)
		d.SetCertificates(w)
	}
	return w.Run(ctx)
}

// newRenewals makes the cluster watch of the kube: section.
func (d *Daemon) newRenewals(k probes.KubeSettings) (*renewals.Watcher, error) {
	cfg, err := d.kubeConfig()
	if err != nil {
		return nil, err
	}
	cm, kube, err := renewals.Clients(cfg)
	if err != nil {
		return nil, err
	}
	return renewals.New(renewals.Config{Namespaces: k.Namespaces, Selector: k.Selector, Resync: time.Duration(k.Resync),
		Interval: time.Duration(k.Interval), StuckAfter: time.Duration(k.StuckAfter), Retry: time.Duration(k.Retry), Events: k.Events,
		Horizon: time.Duration(d.Plan().Settings.TLS.RenewalHorizon)},
		renewals.Options{CertManager: cm, Kube: kube, Logger: d.opts.Logger, Clock: d.opts.Clock, Registerer: d.reg,
			Sightings: d.store.Query,
			PathFailing: func(name string) (bool, []reports.Code) {
				return d.Plan().PathFailing(name, d.store.Latest(name))
			},
			OnTargets: d.SetClusterTargets,
			Record:    d.store.Add,
			Forget:    func(name string) { d.store.Remove(name, "", renewals.KindCertManager) },
			Explain: func(ctx context.Context, c renewals.Check) []reports.Finding {
				var r reports.Report
				explainChallenges(ctx, d.Plan(), &r, []renewals.Check{c}, d.log)
				return r.Findings
			},
		})
}

// SetClusterTargets replaces the names the cluster's Certificates hold
// and puts the plan with them in force: new names are probed, a removed
// Certificate's names leave the plan (and their series the metrics). The
// file's targets keep their own settings.
func (d *Daemon) SetClusterTargets(ts []renewals.Target) {
	out := make([]probes.Target, 0, len(ts))
	for _, t := range ts {
		pt := probes.Target{Name: t.Name, Challenge: t.Challenge}
		switch t.Challenge {
		case reports.HTTP01:
			pt.Token, pt.KeyAuth = t.Token, t.Key
		case reports.DNS01:
			pt.ExpectTXT = t.Key
		}
		out = append(out, pt)
	}
	d.buildMu.Lock()
	defer d.buildMu.Unlock()
	d.mu.Lock()
	d.clusterTargets = out
	d.mu.Unlock()
	p, err := d.build(d.Plan().Settings)
	if err != nil {
		d.log.Error("the cluster's targets do not make a plan; keeping the one in force", zap.Error(err))
		return
	}
	d.apply(p)
	d.log.Info("cluster targets", zap.Int("cluster", len(out)), zap.Int("targets", len(p.Targets)))
}

// apply puts p in force: probes read the new settings on their next run,
// the handlers see the new targets, the schedules add and remove runs
// (keeping the timing of the rest).
func (d *Daemon) apply(p *probes.Plan) {
	d.mu.Lock()
	old := d.plan
	d.plan = p
	d.mu.Unlock()
	useLegoResolvers(p)
	d.engine.SetPlan(p)
	if old != nil {
		// Runs in flight keep the old clients; new runs take the new ones.
		closeRemotes(old)
	}
	if p.Settings.MemoryLimit > 0 {
		// A soft limit: the GC works harder as the heap nears it, so the
		// store's bound and the run heap hold RSS near it under load.
		debug.SetMemoryLimit(int64(p.Settings.MemoryLimit))
	}
	// Reading the file and building the work left garbage several times
	// the size of what stays (YAML nodes of every target); give it back to
	// the system now rather than over the scavenger's next minutes, so an
	// idle daemon's RSS is what it keeps.
	debug.FreeOSMemory()
}

// Plan is the plan in force.
func (d *Daemon) Plan() *probes.Plan {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plan
}

// Reload reads the settings again (Load) and puts them in force. On any
// error the settings in force stay, and the failure is logged and counted.
func (d *Daemon) Reload() error {
	if d.opts.Load == nil {
		return errors.New("daemon: no way to reload the settings")
	}
	d.buildMu.Lock()
	defer d.buildMu.Unlock()
	s, err := d.opts.Load()
	var p *probes.Plan
	if err == nil {
		p, err = d.build(s)
	}
	if err != nil {
		if d.opts.Explain != nil {
			err = d.opts.Explain(err)
		}
		d.reloadFailures.Inc()
		d.log.Error("configuration reload failed; keeping the configuration in force", zap.Error(err))
		return err
	}
	cur := d.Plan().Settings
	// These are fixed when the daemon starts.
	for _, c := range []struct {
		key      string
		old, new any
	}{
		{"listen", cur.Listen, s.Listen},
		{"schedule", cur.Schedule, s.Schedule},
		{"store", cur.Store, s.Store},
		{"api.max_concurrent", cur.API.MaxConcurrent, s.API.MaxConcurrent},
		{"api.reprobe.rate", cur.API.Reprobe.Rate, s.API.Reprobe.Rate},
		{"api.reprobe.burst", cur.API.Reprobe.Burst, s.API.Reprobe.Burst},
		{"propagation.concurrency", cur.Propagation.Concurrency, s.Propagation.Concurrency},
		{"canary.interval", canaryInterval(cur), canaryInterval(s)},
		{"cluster", cur.Cluster, s.Cluster},
	} {
		if !reflect.DeepEqual(c.old, c.new) {
			d.log.Warn("a changed setting takes effect only at restart", zap.String("key", c.key))
		}
	}
	d.apply(p)
	d.lastReload.SetToCurrentTime()
	d.log.Info("configuration reloaded", zap.Int("targets", len(p.Targets)), zap.Int("vantages", len(p.Vantages)))
	return nil
}

func canaryInterval(s probes.Settings) time.Duration {
	if s.Canary == nil {
		return 0
	}
	return time.Duration(s.Canary.Interval)
}

// Reprobe runs every probe of name from every vantage now, its
// propagation watch included; the canary is left alone: its orders spend
// the CA's rate limits. It reports whether the name has a propagation
// watch.
func (d *Daemon) Reprobe(name string) bool {
	p := d.Plan()
	var kinds []reports.Kind
	watched := false
	for _, k := range p.Registry.Kinds() {
		if k.Lane == probes.LaneCanary {
			continue
		}
		kinds = append(kinds, k.Kind)
		if k.Kind == probes.KindPropagation {
			for _, t := range p.Targets {
				watched = watched || t.Name == name && p.Applies(k.Kind, t)
			}
		}
	}
	d.engine.Reprobe(name, kinds...)
	return watched
}

// Ready reports whether every run has completed once (the leader-only
// lanes' aside in cluster mode: a pod that does not lead is ready once it
// probed as a vantage).
func (d *Daemon) Ready() bool { return d.engine.Ready() }

// View is the latest state of name (every target when ""), with the
// peers' vantages (cluster mode) and the cluster watch's own findings (CRDs
// missing, calls forbidden) in the report of every target.
func (d *Daemon) View(name string) View {
	v := snapshot(d.Plan(), d.store, name, d.peers.vantageList())
	if w := d.renewals.Load(); w != nil && name == "" && v.Report != nil {
		v.Report.Findings = append(v.Report.Findings, w.Findings()...)
	}
	return v
}

// Leading reports whether this daemon leads now.
func (d *Daemon) Leading() bool { return d.leading.Load() }

// Observations are the observations of name (every target when "") since
// a time, oldest first.
func (d *Daemon) Observations(name string, since time.Time) []reports.Observation {
	return d.store.Query(name, since)
}

// Runs sums the probe runs so far: all, the failed ones, and by kind.
func (d *Daemon) Runs() (total, failed int, byKind map[string]int) { return d.metrics.Runs() }

// Gatherer is the daemon's metrics registry.
func (d *Daemon) Gatherer() prometheus.Gatherer { return d.reg }

// Handler serves the daemon's HTTP endpoints.
func (d *Daemon) Handler() http.Handler { return d.api.handler() }

// Run serves and probes until ctx ends (SIGINT, SIGTERM), reloading on
// SIGHUP.
func (d *Daemon) Run(ctx context.Context) error {
	listen := d.Plan().Settings.Listen
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("daemon: listen on %s: %w", listen, err)
	}
	return d.Serve(ctx, ln)
}

// Serve is Run on a listener of the caller's.
func (d *Daemon) Serve(ctx context.Context, ln net.Listener) error {
	srv := newHTTPServer(d.api.handler(), d.log)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	serveErr := make(chan error, 1)
	wg.Go(func() {
		if err := srv.Serve(d.api.listener(ln)); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	wg.Go(func() { d.engine.Run(ctx) })
	p := d.Plan()
	if cp := p.Cluster; cp != nil {
		var cs kubernetes.Interface
		cfg, err := d.kubeConfig()
		if err == nil {
			cs, err = kubernetes.NewForConfig(cfg)
		}
		if err != nil {
			cancel()
			_ = srv.Close()
			wg.Wait()
			return fmt.Errorf("daemon: cluster mode: %w", err)
		}
		wg.Go(func() { d.elect(ctx, cp, cs) })
	} else {
		wg.Go(func() { d.lead(ctx, nil, nil) })
	}
	agents := 0
	for _, v := range p.Vantages {
		if v.Remote != nil {
			agents++
		}
	}
	d.log.Info("daemon started", zap.String("listen", ln.Addr().String()), zap.Int("targets", len(p.Targets)),
		zap.Int("vantages", len(p.Vantages)), zap.Int("agents", agents), zap.String("version", d.opts.Version))

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
			_ = d.Reload()
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
	closeRemotes(d.Plan())
	return runErr
}
