package probes

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acmediag/acmediag/reports"
)

// metricsStore is a small store: a.com passes from us (ARIN) and eu (RIPE)
// but its secondaries disagree; b.com fails from eu only (quorum holds);
// c.com has only a cluster vantage and an unknown finding code.
func metricsStore() *Store {
	us := reports.Vantage{Name: "us", Kind: reports.External, RIR: "ARIN"}
	eu := reports.Vantage{Name: "eu", Kind: reports.External, RIR: "RIPE"}
	ap := reports.Vantage{Name: "ap", Kind: reports.External, RIR: "APNIC"}
	k8s := reports.Vantage{Name: "k8s", Kind: reports.Cluster}
	obs := func(name string, v reports.Vantage, kind reports.Kind, fs ...reports.Finding) reports.Observation {
		return reports.Observation{Name: name, Vantage: v, Kind: kind, Start: t0, Findings: fs}.Finish()
	}
	serial := reports.New(reports.CodeDNSSerialMismatch, "a.com", "ns1 has 5, ns2 has 4")
	timeout := reports.New(reports.CodeHTTP01ConnectTimeout, "b.com", "blocked")
	s := NewStore(StoreLimits{})
	for _, o := range []reports.Observation{
		obs("a.com", us, "dns", serial), obs("a.com", eu, "dns", serial), obs("a.com", us, "http-01"), obs("a.com", eu, "http-01"),
		obs("b.com", us, "dns"), obs("b.com", eu, "dns"), obs("b.com", ap, "dns"),
		obs("b.com", us, "http-01"), obs("b.com", eu, "http-01", timeout), obs("b.com", ap, "http-01"),
		obs("b.com", reports.Vantage{}, "acme", timeout), // the CA's verdict is no perspective
		obs("c.com", k8s, "dns", reports.Finding{Code: "made.up", Severity: reports.Warning}),
	} {
		s.Add(o)
	}
	return s
}

func TestMetricsFromStore(t *testing.T) {
	t.Parallel()
	store := metricsStore()
	m := NewMetrics(nil, store, nil, "v1.2.3")
	tests := []struct {
		desc  string
		names []string
		want  string
	}{
		{
			desc:  "findings by code, severity and name; unknown codes folded",
			names: []string{"acmediag_findings"},
			want: `
# HELP acmediag_findings Active findings in the latest observations, by code, severity and name (one per vantage and probe kind reporting it).
# TYPE acmediag_findings gauge
acmediag_findings{code="dns.serial_mismatch",name="a.com",severity="warning"} 2
acmediag_findings{code="http01.connect_timeout",name="b.com",severity="error"} 2
acmediag_findings{code="unknown",name="c.com",severity="warning"} 1
`,
		},
		{
			desc:  "authoritative consistency from DNS observations",
			names: []string{"acmediag_authoritative_consistent"},
			want: `
# HELP acmediag_authoritative_consistent 1 when every authoritative server of the name gives the same answer in the latest DNS observations, else 0.
# TYPE acmediag_authoritative_consistent gauge
acmediag_authoritative_consistent{name="a.com"} 0
acmediag_authoritative_consistent{name="b.com"} 1
acmediag_authoritative_consistent{name="c.com"} 1
`,
		},
		{
			desc:  "MPIC over external vantages only; no quorum gauge without two of them",
			names: []string{"acmediag_mpic_quorum_ok", "acmediag_mpic_perspectives_passing"},
			want: `
# HELP acmediag_mpic_perspectives_passing External vantages whose latest observations of the name all pass.
# TYPE acmediag_mpic_perspectives_passing gauge
acmediag_mpic_perspectives_passing{name="a.com"} 2
acmediag_mpic_perspectives_passing{name="b.com"} 2
# HELP acmediag_mpic_quorum_ok 1 when the external vantages' latest observations of the name meet the MPIC quorum (CA/B BR 3.2.2.9), else 0; absent with fewer than 2 external vantages.
# TYPE acmediag_mpic_quorum_ok gauge
acmediag_mpic_quorum_ok{name="a.com"} 1
acmediag_mpic_quorum_ok{name="b.com"} 1
`,
		},
		{
			desc:  "store size and build info",
			names: []string{"acmediag_store_observations", "acmediag_build_info"},
			want: `
# HELP acmediag_build_info Build information; the value is always 1.
# TYPE acmediag_build_info gauge
acmediag_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
# HELP acmediag_store_observations Observations held in the store.
# TYPE acmediag_store_observations gauge
acmediag_store_observations 12
`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			if err := testutil.CollectAndCompare(m, strings.NewReader(tc.want), tc.names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// Observe counts runs and their durations by kind, vantage and result.
func TestMetricsObserve(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, nil, nil, "dev")
	us := reports.Vantage{Name: "us"}
	m.Observe(reports.Observation{Vantage: us, Kind: "dns", OK: true, Duration: 31250 * time.Microsecond})
	m.Observe(reports.Observation{Vantage: us, Kind: "dns", OK: true, Duration: 2 * time.Second})
	m.Observe(reports.Observation{Vantage: us, Kind: "dns", OK: false, Duration: 1953125 * time.Nanosecond}) // sums exactly in binary
	want := `
# HELP acmediag_probe_runs_total Probe runs by probe kind, vantage and result (success: no error or fatal finding).
# TYPE acmediag_probe_runs_total counter
acmediag_probe_runs_total{kind="dns",result="failure",vantage="us"} 1
acmediag_probe_runs_total{kind="dns",result="success",vantage="us"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "acmediag_probe_runs_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m, "acmediag_probe_duration_seconds"); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
	h := m.duration.WithLabelValues("dns", "us").(prometheus.Histogram)
	if err := testutil.CollectAndCompare(h, strings.NewReader(`
# HELP acmediag_probe_duration_seconds Duration of probe runs by probe kind and vantage.
# TYPE acmediag_probe_duration_seconds histogram
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.005"} 1
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.01"} 1
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.025"} 1
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.05"} 2
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.1"} 2
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.25"} 2
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="0.5"} 2
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="1"} 2
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="2.5"} 3
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="5"} 3
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="10"} 3
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="30"} 3
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="60"} 3
acmediag_probe_duration_seconds_bucket{kind="dns",vantage="us",le="+Inf"} 3
acmediag_probe_duration_seconds_sum{kind="dns",vantage="us"} 2.033203125
acmediag_probe_duration_seconds_count{kind="dns",vantage="us"} 3
`)); err != nil {
		t.Error(err)
	}
}

// Every metric passes promlint, and the pedantic registry accepts the
// collector (consistent descriptors).
func TestMetricsLint(t *testing.T) {
	t.Parallel()
	store := metricsStore()
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, store, nil, "dev")
	m.Observe(reports.Observation{Vantage: reports.Vantage{Name: "us"}, Kind: "dns", OK: true})
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	if _, err := reg.Gather(); err != nil {
		t.Errorf("pedantic gather: %v", err)
	}
	if n := testutil.CollectAndCount(m); n < 10 {
		t.Errorf("only %d series collected", n)
	}
}

// The scheduler counts every run in the metrics, and the gauges follow the
// work: a removed target's series disappear.
func TestMetricsFollowWork(t *testing.T) {
	t.Parallel()
	clk := newFakeClock(t0)
	p := &scriptProbe{kind: "dns", clock: clk}
	p.setFail("bad.com", true)
	store := NewStore(StoreLimits{})
	m := NewMetrics(nil, store, nil, "dev")
	s := newTestScheduler(Schedule{}, []kindProbe{p}, store, nil, clk)
	s.SetMetrics(m)
	s.SetWork(targets("bad.com", "ok.com"), vantages("us"))
	startScheduler(t, s.Scheduler)
	stepUntil(t, s.Scheduler, clk, t0.Add(DefaultInterval))
	if got := testutil.ToFloat64(m.runs.WithLabelValues("dns", "us", "failure")); got != 1 {
		t.Errorf("%v failed runs counted, want 1", got)
	}
	if n := testutil.CollectAndCount(m, "acmediag_findings"); n != 1 {
		t.Errorf("%d findings series, want 1", n)
	}
	s.SetWork(targets("ok.com"), vantages("us"))
	if n := testutil.CollectAndCount(m, "acmediag_findings"); n != 0 {
		t.Errorf("%d findings series after bad.com left the work, want 0", n)
	}
}

// Canary orders feed the step histogram and, when they succeed, the
// last-success time of their name.
func TestMetricsCanary(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewPedanticRegistry()
	m := NewMetrics(reg, NewStore(StoreLimits{}), nil, "test")
	start := time.Unix(1_800_000_000, 0)
	steps := []reports.Check{{Name: "acme.order", Status: reports.CheckOK, Duration: 20 * time.Millisecond},
		{Name: "acme.poll", Status: reports.CheckOK, Duration: 300 * time.Millisecond}}
	m.Observe(reports.Observation{Kind: "acme", Name: "ok.com", Start: start, Duration: time.Second, OK: true, Checks: steps})
	m.Observe(reports.Observation{Kind: "acme", Name: "bad.com", Start: start, Duration: time.Second, OK: false, Checks: steps[:1]})
	m.Observe(reports.Observation{Kind: "dns", Name: "ok.com", Start: start, OK: true,
		Checks: []reports.Check{{Name: "acme.order", Duration: time.Hour}}}) // not a canary run: ignored
	if n := testutil.CollectAndCount(m, "acmediag_canary_step_duration_seconds"); n != 2 {
		t.Errorf("%d step series, want 2 (order, poll)", n)
	}
	want := `
# HELP acmediag_canary_last_success_timestamp_seconds Unix time the last canary order for the name succeeded.
# TYPE acmediag_canary_last_success_timestamp_seconds gauge
acmediag_canary_last_success_timestamp_seconds{name="ok.com"} 1.800000001e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "acmediag_canary_last_success_timestamp_seconds"); err != nil {
		t.Error(err)
	}
}

// Runs sums the run counters the way the demo's progress line reads them.
func TestMetricsRuns(t *testing.T) {
	t.Parallel()
	m := NewMetrics(nil, nil, nil, "dev")
	for _, o := range []reports.Observation{
		{Vantage: reports.Vantage{Name: "us"}, Kind: KindDNS, OK: true},
		{Vantage: reports.Vantage{Name: "eu"}, Kind: KindDNS},
		{Vantage: reports.Vantage{Name: "us"}, Kind: KindHTTP01, OK: true},
	} {
		m.Observe(o)
	}
	total, failed, byKind := m.Runs()
	if total != 3 || failed != 1 || byKind["dns"] != 2 || byKind["http-01"] != 1 {
		t.Errorf("runs %d, failed %d, by kind %v; want 3, 1, dns 2 and http-01 1", total, failed, byKind)
	}
}
