package deploy

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv/prom"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// alertCase is one promtool unit test: input series, and at each time the
// alerts that must fire (with their labels; the annotations are the rule's,
// rendered with those labels).
type alertCase struct {
	desc     string
	interval string // "" → 1m
	// every is the rule evaluation interval ("" → 1m): a month evaluated
	// each minute is more than promtool does in a test's time.
	every  string
	series map[string]string
	checks []alertCheck
}

type alertCheck struct {
	at     string // eval_time
	alert  string
	firing []map[string]string // each firing alert's labels besides alertname and severity; nil: none fires
}

// The alerts, each firing where it should and only there. The first case
// is a month of one certificate's life.
var alertCases = []alertCase{
	{desc: "a month of a certificate: issued, the path breaks inside the horizon, at risk fires before the window, fixed, resolved",
		// Samples and evaluations every 5 minutes.
		interval: "5m", every: "5m",
		series: map[string]string{
			// 90-day certificate issued at 0; the window opens at day 60.
			// The gauge is 1 from day 21 (the path broke, the window
			// within the horizon) to day 25 (fixed).
			`acmediag_renewal_at_risk{name="shop.example.com"}`:                                "0x6047 1x1151 0x2592",
			`acmediag_renewal_window_start_seconds{name="shop.example.com",source="lifetime"}`: "5184000x8639",
		},
		checks: []alertCheck{
			{at: "20d", alert: "AcmeRenewalAtRisk"},
			{at: "22d", alert: "AcmeRenewalAtRisk", firing: []map[string]string{{"name": "shop.example.com"}}},
			{at: "24d", alert: "AcmeRenewalAtRisk", firing: []map[string]string{{"name": "shop.example.com"}}},
			{at: "26d", alert: "AcmeRenewalAtRisk"},
			{at: "29d", alert: "AcmeRenewalOverdue"},
		}},
	{desc: "at risk must last 15 minutes: a blip does not page",
		series: map[string]string{`acmediag_renewal_at_risk{name="a.example.com",vantage="x"}`: "0 1 1 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0"},
		checks: []alertCheck{{at: "5m", alert: "AcmeRenewalAtRisk"}, {at: "16m", alert: "AcmeRenewalAtRisk"}}},
	{desc: "overdue",
		series: map[string]string{`acmediag_findings{code="renewal.overdue",severity="error",name="old.example.com"}`: "1x30"},
		checks: []alertCheck{{at: "10m", alert: "AcmeRenewalOverdue"}, {at: "20m", alert: "AcmeRenewalOverdue", firing: []map[string]string{{"name": "old.example.com"}}}}},
	{desc: "the CA asks for an early renewal (ARI)",
		series: map[string]string{`acmediag_findings{code="renewal.ari_early",severity="warning",name="a.example.com"}`: "1x10"},
		checks: []alertCheck{{at: "6m", alert: "AcmeARIEarlyRenewal", firing: []map[string]string{{"name": "a.example.com"}}}}},
	{desc: "a failed renewal attempt, from the finding and from the counter",
		series: map[string]string{
			`acmediag_findings{code="renewal.failed",severity="error",name="a.example.com"}`:                   "1x10",
			`acmediag_renewal_failures_total{namespace="shop",certificate="www"}`:                              "0 0 1 1 1 1 1 1 1 1 1",
			`acmediag_findings{code="renewal.failed",severity="error",name="b.example.com",vantage="ignored"}`: "0x10",
		},
		checks: []alertCheck{{at: "5m", alert: "AcmeRenewalFailed", firing: []map[string]string{{"name": "a.example.com"}, {"namespace": "shop", "certificate": "www"}}}}},
	{desc: "CAA forbids issuance; an unrelated finding does not page",
		series: map[string]string{
			`acmediag_findings{code="caa.forbidden",severity="fatal",name="a.example.com"}`:         "1x30",
			`acmediag_findings{code="dns.serial_mismatch",severity="warning",name="b.example.com"}`: "1x30",
		},
		checks: []alertCheck{{at: "20m", alert: "AcmeCAAForbidsIssuance", firing: []map[string]string{{"name": "a.example.com"}}}}},
	{desc: "the challenge path broken for 30 minutes: by the quorum and by an error finding; a warning alone does not",
		series: map[string]string{
			`acmediag_mpic_quorum_ok{name="q.example.com"}`:                                             "0x40",
			`acmediag_findings{code="http01.connection_refused",severity="error",name="r.example.com"}`: "1x40",
			`acmediag_findings{code="http01.ipv6_unreachable",severity="warning",name="w.example.com"}`: "1x40",
		},
		checks: []alertCheck{
			{at: "20m", alert: "AcmeChallengePathBroken"},
			{at: "35m", alert: "AcmeChallengePathBroken", firing: []map[string]string{{"name": "q.example.com"}, {"name": "r.example.com"}}},
		}},
	{desc: "MPIC: one failure left to spare for an hour",
		series: map[string]string{`acmediag_findings{code="mpic.partial",severity="warning",name="a.example.com"}`: "1x70"},
		checks: []alertCheck{{at: "50m", alert: "AcmeMPICQuorumAtRisk"}, {at: "65m", alert: "AcmeMPICQuorumAtRisk", firing: []map[string]string{{"name": "a.example.com"}}}}},
	{desc: "dns-01 propagation slow: every value takes 10 minutes",
		interval: "10m",
		series: map[string]string{
			`acmediag_propagation_seconds_bucket{le="300"}`:  "0x40",
			`acmediag_propagation_seconds_bucket{le="600"}`:  "0+1x40",
			`acmediag_propagation_seconds_bucket{le="+Inf"}`: "0+1x40",
		},
		checks: []alertCheck{{at: "6h", alert: "AcmeDNSPropagationSlow", firing: []map[string]string{{}}}}},
	{desc: "dns-01 propagation fast: no alert",
		interval: "10m",
		series: map[string]string{
			`acmediag_propagation_seconds_bucket{le="10"}`:   "0+1x40",
			`acmediag_propagation_seconds_bucket{le="300"}`:  "0+1x40",
			`acmediag_propagation_seconds_bucket{le="+Inf"}`: "0+1x40",
		},
		checks: []alertCheck{{at: "6h", alert: "AcmeDNSPropagationSlow"}}},
	{desc: "the canary has not passed in 6 hours",
		interval: "10m",
		// Last success at Unix time 0: the evaluation's time() counts from it.
		series: map[string]string{`acmediag_canary_last_success_timestamp_seconds{name="a.example.com"}`: "0x50"},
		checks: []alertCheck{{at: "5h", alert: "AcmeCanaryFailing"}, {at: "7h", alert: "AcmeCanaryFailing", firing: []map[string]string{{"name": "a.example.com"}}}}},
	{desc: "acmediag absent: nothing scraped for 10 minutes",
		series: map[string]string{`up{job="other"}`: "1x20"},
		checks: []alertCheck{{at: "5m", alert: "AcmeDiagAbsent"}, {at: "11m", alert: "AcmeDiagAbsent", firing: []map[string]string{{}}}}},
	{desc: "acmediag present: no absent alert",
		series: map[string]string{`acmediag_build_info{version="v1",goversion="go1.26"}`: "1x20"},
		checks: []alertCheck{{at: "15m", alert: "AcmeDiagAbsent"}}},
	{desc: "probes keep panicking (a bug in acmediag)",
		series: map[string]string{`acmediag_probe_panics_total{kind="dns"}`: "0 0+1x30"},
		checks: []alertCheck{{at: "18m", alert: "AcmeDiagProbesFailing", firing: []map[string]string{{"kind": "dns"}}}}},
	{desc: "a configuration refused on reload",
		series: map[string]string{`acmediag_config_reload_failures_total`: "0 0 1 1 1"},
		checks: []alertCheck{{at: "3m", alert: "AcmeDiagConfigReloadFailed", firing: []map[string]string{{}}}}},
}

// promtool checks the rules and runs the cases above, generated into its
// unit-test format with each alert's annotations rendered from the rule
// (so the test holds the texts as written).
func TestAlerts(t *testing.T) {
	toolbuild.Need(t, toolbuild.Promtool)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	pt, err := prom.NewPromtool(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rulesPath, err := filepath.Abs(filepath.Join(chartDir, "files/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := pt.CheckRules(ctx, rulesPath); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	rf := alerts(t)
	rules := map[string]struct {
		severity    string
		annotations map[string]string
	}{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			rules[r.Alert] = struct {
				severity    string
				annotations map[string]string
			}{r.Labels["severity"], r.Annotations}
		}
	}
	tested := map[string]bool{}
	type expAlert struct {
		Labels      map[string]string `yaml:"exp_labels"`
		Annotations map[string]string `yaml:"exp_annotations"`
	}
	type alertTest struct {
		EvalTime string     `yaml:"eval_time"`
		Alert    string     `yaml:"alertname"`
		Exp      []expAlert `yaml:"exp_alerts"`
	}
	type series struct {
		Series string `yaml:"series"`
		Values string `yaml:"values"`
	}
	type unitTest struct {
		Name     string      `yaml:"name"`
		Interval string      `yaml:"interval"`
		Input    []series    `yaml:"input_series"`
		Alerts   []alertTest `yaml:"alert_rule_test"`
	}
	tests := map[string][]unitTest{} // by evaluation interval
	for _, tc := range append(slices.Clone(alertCases), monthCase(t)) {
		ut := unitTest{Name: tc.desc, Interval: tc.interval}
		if ut.Interval == "" {
			ut.Interval = "1m"
		}
		keys := make([]string, 0, len(tc.series))
		for k := range tc.series {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ut.Input = append(ut.Input, series{k, tc.series[k]})
		}
		for _, c := range tc.checks {
			r, ok := rules[c.alert]
			if !ok {
				t.Fatalf("%s: no alert %s in files/alerts.yaml", tc.desc, c.alert)
			}
			tested[c.alert] = tested[c.alert] || len(c.firing) > 0
			at := alertTest{EvalTime: c.at, Alert: c.alert, Exp: []expAlert{}}
			for _, labels := range c.firing {
				l := map[string]string{"severity": r.severity}
				for k, v := range labels {
					l[k] = v
				}
				at.Exp = append(at.Exp, expAlert{Labels: l, Annotations: renderAnnotations(r.annotations, labels)})
			}
			ut.Alerts = append(ut.Alerts, at)
		}
		every := cmp.Or(tc.every, "1m")
		tests[every] = append(tests[every], ut)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, r := range rules {
		if !tested[name] {
			t.Errorf("alert %s has no case where it fires", name)
		}
		// A runbook section per alert, and the finding code in the summary.
		if want := "README.md#" + strings.ToLower(name); !strings.HasSuffix(r.annotations["runbook_url"], want) ||
			!strings.Contains(string(readme), "\n## "+name+"\n") {
			t.Errorf("alert %s: runbook_url %q, want one ending in %s with its section in deploy/README.md", name, r.annotations["runbook_url"], want)
		}
		if r.severity == "" || r.annotations["summary"] == "" {
			t.Errorf("alert %s: severity %q, summary %q", name, r.severity, r.annotations["summary"])
		}
	}
	var files []string
	dir := t.TempDir()
	for every, ts := range tests {
		b, err := yaml.Marshal(map[string]any{"rule_files": []string{rulesPath}, "evaluation_interval": every, "tests": ts})
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "alerts_"+every+"_test.yaml")
		if err := os.WriteFile(file, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, file)
	}
	if out, err := pt.TestRules(ctx, files...); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

var labelRef = regexp.MustCompile(`\{\{ \$labels\.([a-z_]+) \}\}`)

// renderAnnotations fills {{ $labels.X }} as Prometheus does (a label the
// alert lacks is empty).
func renderAnnotations(in, labels map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = labelRef.ReplaceAllStringFunc(v, func(m string) string { return labels[labelRef.FindStringSubmatch(m)[1]] })
		if strings.Contains(out[k], "{{") {
			panic(fmt.Sprintf("annotation %s uses a template the test does not render: %s", k, v))
		}
	}
	return out
}

// monthCase simulates 30 certificates over 30 days as the daemon would
// see them: each a 90-day certificate whose renewal window (two thirds of
// its lifetime) opens on day i, 6 hours in. Every third one's challenge
// path breaks 12 days before its window and is fixed a day after it opens;
// every seventh (of the others) fails for 10 minutes three days before its
// window (a single failed probe); the rest stay healthy. The gauge
// acmediag_renewal_at_risk is what reports.AssessRenewal — the daemon's
// rule — says each minute; the checks are when AcmeRenewalAtRisk must
// fire, and the test holds the simulation to the promise: every broken
// path is alerted 7 days before its window (15 minutes of `for:` after
// the horizon reaches it), the others never.
func monthCase(t *testing.T) alertCase {
	// Samples and evaluations every 5 minutes: step k is minute 5k.
	const step, steps = 5, 30 * 24 * 60 / 5
	start := time.Unix(0, 0).UTC()
	c := alertCase{desc: "30 certificates over 30 days: every broken path alerted before its window, the healthy and the blip never",
		interval: "5m", every: "5m", series: map[string]string{}}
	type cert struct {
		name   string
		window time.Time
		broken func(time.Time) bool
		risky  bool
		at     []bool
	}
	var certs []*cert
	for i := 1; i <= 30; i++ {
		w := start.Add(time.Duration(i)*24*time.Hour + 6*time.Hour)
		ct := &cert{name: fmt.Sprintf("c%02d.example.com", i), window: w, broken: func(time.Time) bool { return false }}
		switch {
		case i%3 == 0:
			ct.risky = true
			ct.broken = func(now time.Time) bool {
				return !now.Before(w.Add(-12*24*time.Hour)) && now.Before(w.Add(24*time.Hour))
			}
		case i%7 == 0:
			blip := w.Add(-3 * 24 * time.Hour)
			ct.broken = func(now time.Time) bool { return !now.Before(blip) && now.Before(blip.Add(10*time.Minute)) }
		}
		notBefore := w.Add(-60 * 24 * time.Hour)
		ct.at = make([]bool, steps+1)
		for k := range ct.at {
			now := start.Add(time.Duration(k*step) * time.Minute)
			a := reports.AssessRenewal(reports.RenewalInput{Name: ct.name, Serial: "01", NotBefore: notBefore,
				NotAfter: notBefore.Add(90*24*time.Hour - time.Second), Now: now, ChallengeFailing: ct.broken(now)})
			ct.at[k] = slices.ContainsFunc(a.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeRenewalAtRisk })
		}
		c.series[`acmediag_renewal_at_risk{name="`+ct.name+`"}`] = runLength(ct.at)
		certs = append(certs, ct)
	}
	// firing: true at this evaluation and at those of the 15 minutes
	// before (the rule's for:).
	firing := func(ct *cert, m int) bool {
		k := m / step
		if k < 15/step {
			return false
		}
		for j := k - 15/step; j <= k; j++ {
			if !ct.at[j] {
				return false
			}
		}
		return true
	}
	evals := map[int]bool{}
	for d := 0; d < 30; d++ {
		evals[d*24*60+12*60] = true
	}
	for _, ct := range certs {
		if ct.risky {
			m := int(ct.window.Add(-7*24*time.Hour+time.Hour).Sub(start) / time.Minute)
			if m > 0 {
				evals[m] = true
			}
		}
	}
	times := make([]int, 0, len(evals))
	for m := range evals {
		times = append(times, m)
	}
	slices.Sort(times)
	for _, m := range times {
		check := alertCheck{at: fmt.Sprintf("%dm", m), alert: "AcmeRenewalAtRisk"}
		for _, ct := range certs {
			if firing(ct, m) {
				if !ct.risky {
					t.Errorf("simulation: %s (healthy or a blip) would page at minute %d", ct.name, m)
				}
				check.firing = append(check.firing, map[string]string{"name": ct.name})
			}
		}
		c.checks = append(c.checks, check)
	}
	for _, ct := range certs {
		m := int(ct.window.Add(-7*24*time.Hour+time.Hour).Sub(start) / time.Minute)
		if ct.risky && m > 0 && !firing(ct, m) {
			t.Errorf("simulation: %s's broken path is not alerted 7 days before its window", ct.name)
		}
	}
	return c
}

// runLength writes a boolean series in promtool's expanding notation.
func runLength(v []bool) string {
	var parts []string
	for i := 0; i < len(v); {
		j := i
		for j < len(v) && v[j] == v[i] {
			j++
		}
		val := "0"
		if v[i] {
			val = "1"
		}
		parts = append(parts, fmt.Sprintf("%sx%d", val, j-i-1))
		i = j
	}
	return strings.Join(parts, " ")
}
