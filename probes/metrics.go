package probes

import (
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/acmediag/acmediag/reports"
)

// Metrics exports the probes to Prometheus: run counters and durations,
// updated by the scheduler through Observe, and gauges computed from the
// Store's latest observations at scrape time (so a removed target's series
// disappear with it).
//
// Cardinality is bounded by the configuration: kind by the probe kinds,
// vantage by the vantages, name by the targets (the scheduler removes a
// target's observations when it leaves the work), code and severity by the
// catalogue (a code outside it is exported as "unknown").
type Metrics struct {
	store *Store
	kinds *Registry
	codes map[reports.Code]struct{} // the catalogue: the code label's values

	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	propagation prometheus.Histogram
	delay       *prometheus.HistogramVec
	panics      *prometheus.CounterVec

	// series caches the runs and duration children of each (kind,
	// vantage): WithLabelValues validates and hashes the label values on
	// every call, and the scheduler counts hundreds of runs a second.
	seriesMu sync.RWMutex
	series   map[seriesKey]*runSeries
	delays   map[reports.Kind]prometheus.Observer // delay's children by kind

	canarySteps  *prometheus.HistogramVec
	canaryOK     *prometheus.GaugeVec
	findings     *prometheus.Desc
	consistent   *prometheus.Desc
	quorumOK     *prometheus.Desc
	passing      *prometheus.Desc
	observations *prometheus.Desc
	bytes        *prometheus.Desc
	evicted      *prometheus.Desc
	buildInfo    *prometheus.Desc
	version      string

	// The renewal rule's gauges (Plan.Renewal), under the plan in force.
	plan                atomic.Pointer[Plan]
	notAfter, notBefore *prometheus.Desc
	windowStart         *prometheus.Desc
	windowEnd           *prometheus.Desc
	atRisk              *prometheus.Desc
}

// seriesKey names the series of one probe kind from one vantage with one
// result.
type seriesKey struct {
	kind    reports.Kind
	vantage string
	ok      bool
}

// runSeries are the children of runs and duration for one seriesKey.
type runSeries struct {
	runs     prometheus.Counter
	duration prometheus.Observer
}

// unknownCode is the code label of a finding whose code is not in the
// catalogue: never a free-form label value.
const unknownCode = "unknown"

// inconsistencyCodes are the findings that mean the authoritative servers
// of a name do not all give the same answer.
var inconsistencyCodes = []reports.Code{reports.CodeDNSSerialMismatch, reports.CodeDNS01TXTNotPropagated}

// NewMetrics creates the metrics of the kinds' runs and registers them
// with reg (nil: not registered, for a caller that registers m itself).
// Registering twice with the same registry panics, as
// prometheus.MustRegister does: that is a wiring mistake, not input.
func NewMetrics(reg prometheus.Registerer, store *Store, kinds *Registry, version string) *Metrics {
	if kinds == nil {
		kinds = DefaultKinds()
	}
	m := &Metrics{
		store:   store,
		kinds:   kinds,
		version: version,
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acmediag_probe_runs_total",
			Help: "Probe runs by probe kind, vantage and result (success: no error or fatal finding).",
		}, []string{"kind", "vantage", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "acmediag_probe_duration_seconds",
			Help:    "Duration of probe runs by probe kind and vantage.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"kind", "vantage"}),
		propagation: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "acmediag_propagation_seconds",
			Help: "Time from publishing a dns-01 TXT value to the last authoritative server address serving it, per completed propagation watch.",
			// From sub-second replication to the half hour some providers take.
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800},
		}),
		delay: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "acmediag_schedule_delay_seconds",
			Help: "How late probe runs start after they are due, by probe kind; growing delays mean schedule.concurrency is too low for the targets.",
			// Runs may start a little early (batching); those count as 0.
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"kind"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "acmediag_probe_panics_total",
			Help: "Probe runs that failed inside acmediag (a bug), by probe kind; each is a probe.internal_error finding and a log line with the stack.",
		}, []string{"kind"}),
		canarySteps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "acmediag_canary_step_duration_seconds",
			Help:    "Duration of each step of canary orders (account, order, challenge, poll, finalize, download, ...).",
			Buckets: []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"step"}),
		canaryOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "acmediag_canary_last_success_timestamp_seconds",
			Help: "Unix time the last canary order for the name succeeded.",
		}, []string{"name"}),
		findings: prometheus.NewDesc("acmediag_findings",
			"Active findings in the latest observations, by code, severity and name (one per vantage and probe kind reporting it).",
			[]string{"code", "severity", "name"}, nil),
		consistent: prometheus.NewDesc("acmediag_authoritative_consistent",
			"1 when every authoritative server of the name gives the same answer in the latest DNS observations, else 0.",
			[]string{"name"}, nil),
		quorumOK: prometheus.NewDesc("acmediag_mpic_quorum_ok",
			"1 when the external vantages' latest observations of the name meet the MPIC quorum (CA/B BR 3.2.2.9), else 0; absent with fewer than 2 external vantages.",
			[]string{"name"}, nil),
		passing: prometheus.NewDesc("acmediag_mpic_perspectives_passing",
			"External vantages whose latest observations of the name all pass.",
			[]string{"name"}, nil),
		observations: prometheus.NewDesc("acmediag_store_observations",
			"Observations held in the store.", nil, nil),
		bytes: prometheus.NewDesc("acmediag_store_bytes",
			"Estimated bytes of the observations held in the store: every key's latest and the bounded history.", nil, nil),
		evicted: prometheus.NewDesc("acmediag_store_evicted_observations_total",
			"History evicted from the store by its byte bound (a key's latest observation never is).", nil, nil),
		buildInfo: prometheus.NewDesc("acmediag_build_info",
			"Build information; the value is always 1.", []string{"version", "goversion"}, nil),
		notAfter: prometheus.NewDesc("acmediag_certificate_not_after_seconds",
			"Unix time the newest certificate the vantage is served for the name expires (tls probe).", []string{"name", "vantage"}, nil),
		notBefore: prometheus.NewDesc("acmediag_certificate_not_before_seconds",
			"Unix time the newest certificate the vantage is served for the name was issued (tls probe).", []string{"name", "vantage"}, nil),
		windowStart: prometheus.NewDesc("acmediag_renewal_window_start_seconds",
			"Unix time the name's renewal window opens, by where the window comes from (ari, lifetime, cert-manager).", []string{"name", "source"}, nil),
		windowEnd: prometheus.NewDesc("acmediag_renewal_window_end_seconds",
			"Unix time the name's renewal window closes, by where the window comes from (ari, lifetime, cert-manager).", []string{"name", "source"}, nil),
		atRisk: prometheus.NewDesc("acmediag_renewal_at_risk",
			"1 when the name's renewal window opens within the horizon (or is open) and its challenge path fails now, else 0.", []string{"name"}, nil),
	}
	m.series = map[seriesKey]*runSeries{}
	m.delays = map[reports.Kind]prometheus.Observer{}
	m.codes = map[reports.Code]struct{}{}
	for _, e := range reports.Catalogue() {
		m.codes[e.Code] = struct{}{}
	}
	if reg != nil {
		reg.MustRegister(m)
	}
	return m
}

// Observe counts one run, and what its kind says it means (KindSpec.Record).
// The scheduler calls it after each run.
func (m *Metrics) Observe(o reports.Observation) {
	rs := m.seriesOf(seriesKey{o.Kind, o.Vantage.Name, o.OK})
	rs.runs.Inc()
	rs.duration.Observe(o.Duration.Seconds())
	if k, ok := m.kinds.Lookup(o.Kind); ok && k.Record != nil {
		k.Record(m, o)
	}
}

// observeOrder records a canary order's steps and its success.
func (m *Metrics) observeOrder(o reports.Observation) {
	for _, c := range o.Checks {
		// Step names come from the canary's fixed list, not from the network.
		if step, ok := strings.CutPrefix(c.Name, "acme."); ok && c.Status != reports.CheckSkipped {
			m.canarySteps.WithLabelValues(step).Observe(c.Duration.Seconds())
		}
	}
	if o.OK {
		m.canaryOK.WithLabelValues(o.Name).Set(float64(o.Start.Add(o.Duration).Unix()))
	}
}

// ObservePanic counts a run that panicked.
func (m *Metrics) ObservePanic(kind reports.Kind) { m.panics.WithLabelValues(string(kind)).Inc() }

// seriesOf returns the cached series of k, creating them on first use:
// they are the vectors' own children, so a series appears with its first
// run, as before.
func (m *Metrics) seriesOf(k seriesKey) *runSeries {
	m.seriesMu.RLock()
	rs := m.series[k]
	m.seriesMu.RUnlock()
	if rs != nil {
		return rs
	}
	m.seriesMu.Lock()
	defer m.seriesMu.Unlock()
	if rs := m.series[k]; rs != nil {
		return rs
	}
	result := "success"
	if !k.ok {
		result = "failure"
	}
	rs = &runSeries{runs: m.runs.WithLabelValues(string(k.kind), k.vantage, result), duration: m.duration.WithLabelValues(string(k.kind), k.vantage)}
	m.series[k] = rs
	return rs
}

// ObserveDelay records how late a run of kind started after it was due.
func (m *Metrics) ObserveDelay(kind reports.Kind, d time.Duration) {
	m.seriesMu.RLock()
	o := m.delays[kind]
	m.seriesMu.RUnlock()
	if o == nil {
		m.seriesMu.Lock()
		if o = m.delays[kind]; o == nil {
			o = m.delay.WithLabelValues(string(kind))
			m.delays[kind] = o
		}
		m.seriesMu.Unlock()
	}
	o.Observe(max(d, 0).Seconds())
}

// ObservePropagation records one completed propagation watch: how long the
// value took to reach every authoritative server address.
func (m *Metrics) ObservePropagation(d time.Duration) {
	m.propagation.Observe(d.Seconds())
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.runs.Describe(ch)
	m.duration.Describe(ch)
	m.propagation.Describe(ch)
	m.delay.Describe(ch)
	m.panics.Describe(ch)
	m.canarySteps.Describe(ch)
	m.canaryOK.Describe(ch)
	for _, d := range []*prometheus.Desc{m.findings, m.consistent, m.quorumOK, m.passing, m.observations, m.bytes, m.evicted, m.buildInfo,
		m.notAfter, m.notBefore, m.windowStart, m.windowEnd, m.atRisk} {
		ch <- d
	}
}

// Collect implements prometheus.Collector: the counters, then the gauges
// computed from the store now.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.runs.Collect(ch)
	m.duration.Collect(ch)
	m.propagation.Collect(ch)
	m.delay.Collect(ch)
	m.panics.Collect(ch)
	m.canarySteps.Collect(ch)
	m.canaryOK.Collect(ch)
	ch <- prometheus.MustNewConstMetric(m.buildInfo, prometheus.GaugeValue, 1, m.version, runtime.Version())
	if m.store == nil {
		return
	}
	st := m.store.Stats()
	ch <- prometheus.MustNewConstMetric(m.observations, prometheus.GaugeValue, float64(st.Observations))
	ch <- prometheus.MustNewConstMetric(m.bytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(m.evicted, prometheus.CounterValue, float64(st.Dropped))

	// Latest is sorted by name, so each name's observations are adjacent.
	m.store.EachName(func(name string, latest []reports.Observation) { m.collectName(ch, name, latest) })
}

type findingKey struct {
	code     string
	severity string
}

// collectName exports the gauges of one name from its latest observations
// (one per vantage and kind).
func (m *Metrics) collectName(ch chan<- prometheus.Metric, name string, obs []reports.Observation) {
	if p := m.plan.Load(); p != nil {
		if r, ok := p.Renewal(name, obs, p.Env.Clock.Now()); ok {
			m.collectRenewal(ch, name, obs, r)
			obs = append(obs[:len(obs):len(obs)], r)
		}
	}
	counts := map[findingKey]int{}
	var order []findingKey
	dnsSeen, consistent := false, true
	var vantages []reports.Vantage
	byVantage := map[string][]reports.Observation{}
	for _, o := range obs {
		for _, f := range o.Findings {
			k := findingKey{code: m.codeLabel(f.Code), severity: f.Severity.String()}
			if f.Severity < reports.Info || f.Severity > reports.Fatal {
				k.severity = reports.Error.String()
			}
			if counts[k] == 0 {
				order = append(order, k)
			}
			counts[k]++
		}
		if o.Kind == KindDNS {
			dnsSeen = true
			if slices.ContainsFunc(o.Findings, func(f reports.Finding) bool { return slices.Contains(inconsistencyCodes, f.Code) }) {
				consistent = false
			}
		}
		// A run made from no vantage (the CA's own order) is not a
		// perspective, and cluster vantages do not count toward the quorum.
		if !o.Perspective() || !o.Vantage.External() {
			continue
		}
		if _, ok := byVantage[o.Vantage.Name]; !ok {
			vantages = append(vantages, o.Vantage)
		}
		byVantage[o.Vantage.Name] = append(byVantage[o.Vantage.Name], o)
	}
	for _, k := range order {
		ch <- prometheus.MustNewConstMetric(m.findings, prometheus.GaugeValue, float64(counts[k]), k.code, k.severity, name)
	}
	if dnsSeen {
		ch <- prometheus.MustNewConstMetric(m.consistent, prometheus.GaugeValue, boolValue(consistent), name)
	}
	if len(vantages) == 0 {
		return
	}
	results := make([]reports.VantageResult, 0, len(vantages))
	passing := 0
	for _, v := range vantages {
		ok := reports.Judge(byVantage[v.Name]) != reports.CheckFail
		results = append(results, reports.VantageResult{Vantage: v, OK: ok})
		if ok {
			passing++
		}
	}
	ch <- prometheus.MustNewConstMetric(m.passing, prometheus.GaugeValue, float64(passing), name)
	if q := reports.ComputeQuorum(results); q != nil {
		ch <- prometheus.MustNewConstMetric(m.quorumOK, prometheus.GaugeValue, boolValue(q.OK), name)
	}
}

// Runs sums the runs counted so far: all, the failed ones, and by kind.
func (m *Metrics) Runs() (total, failed int, byKind map[string]int) {
	byKind = map[string]int{}
	ch := make(chan prometheus.Metric, 64)
	go func() {
		m.runs.Collect(ch)
		close(ch)
	}()
	for c := range ch {
		var pb dto.Metric
		if c.Write(&pb) != nil {
			continue
		}
		n := int(pb.GetCounter().GetValue())
		var kind, result string
		for _, l := range pb.GetLabel() {
			switch l.GetName() {
			case "kind":
				kind = l.GetValue()
			case "result":
				result = l.GetValue()
			}
		}
		total += n
		byKind[kind] += n
		if result == "failure" {
			failed += n
		}
	}
	return total, failed, byKind
}

// usePlan puts p's renewal rule in force for the gauges.
func (m *Metrics) usePlan(p *Plan) { m.plan.Store(p) }

// collectRenewal exports a name's certificate and renewal window.
func (m *Metrics) collectRenewal(ch chan<- prometheus.Metric, name string, obs []reports.Observation, r reports.Observation) {
	for _, o := range obs {
		if leaf, ok := o.TLS.Newest(); ok && o.Kind == KindTLS && o.Perspective() {
			ch <- prometheus.MustNewConstMetric(m.notAfter, prometheus.GaugeValue, float64(leaf.NotAfter.Unix()), name, o.Vantage.Name)
			ch <- prometheus.MustNewConstMetric(m.notBefore, prometheus.GaugeValue, float64(leaf.NotBefore.Unix()), name, o.Vantage.Name)
		}
	}
	atRisk := slices.ContainsFunc(r.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeRenewalAtRisk })
	ch <- prometheus.MustNewConstMetric(m.atRisk, prometheus.GaugeValue, boolValue(atRisk), name)
	if w := r.Renewal.Window; w != nil {
		ch <- prometheus.MustNewConstMetric(m.windowStart, prometheus.GaugeValue, float64(w.Start.Unix()), name, string(w.Source))
		ch <- prometheus.MustNewConstMetric(m.windowEnd, prometheus.GaugeValue, float64(w.End.Unix()), name, string(w.Source))
	}
}

// codeLabel keeps the code label within the catalogue.
func (m *Metrics) codeLabel(c reports.Code) string {
	if _, ok := m.codes[c]; ok {
		return string(c)
	}
	return unknownCode
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
