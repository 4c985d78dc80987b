package deploy

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"encoding/json"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/prom"
	"github.com/acmediag/acmediag/testenv/toolbuild"
)

// promUniversePort keeps this package's universe apart from the others'
// (see the *UniversePort constants of the other packages' tests).
const promUniversePort = 11353

// A real Prometheus scrapes a real daemon watching two names of the
// universe — one served a certificate, one nothing listens for — with the
// chart's rules loaded: every rule evaluates without error, the challenge
// path rule finds the broken name, and every query of every dashboard is
// valid PromQL over metrics the daemon documents.
func TestPrometheusScrapesDaemon(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the universe, the daemon and Prometheus")
	}
	bins := toolbuild.Need(t, toolbuild.Prometheus)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	u, err := testenv.Start(ctx, testenv.Options{Port: promUniversePort, ACME: true})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skipf("the universe did not start: %v", err)
	}
	defer u.Close()
	domain := func(scenario string) string {
		for _, sc := range testenv.Catalogue() {
			if sc.Name == scenario {
				return sc.Domain
			}
		}
		t.Fatalf("no scenario %s", scenario)
		return ""
	}
	served, broken := domain("tls-ok"), domain("web-refused")
	on := true
	s := probes.DefaultSettings()
	s.DNS.Roots, s.DNS.DNSPort, s.DNS.TrustAnchor = u.Roots(), u.Port(), u.TrustAnchorFile()
	s.DNS.Resolvers, s.DNS.AllowAddresses = []string{u.Resolver()}, []string{"127.0.0.0/8", "::1/128"}
	s.HTTP = probes.HTTPSettings{HTTPPort: u.HTTPPort(), HTTPSPort: u.HTTPSPort()}
	s.TLS.Roots = u.TLSRootsFile()
	// The universe's remote perspectives: the quorum's metrics need two.
	s.Vantages = nil
	for _, v := range u.Vantages() {
		if v.Kind == testenv.VantageExternal {
			s.Vantages = append(s.Vantages, probes.VantageSettings{Name: v.Name, Source: v.Addr, Resolver: v.Resolver, RIR: v.RIR,
				Region: v.Region, Kind: string(v.Kind)})
		}
	}
	// And a dns-01 value to watch (the propagation histogram) and canary
	// orders at Pebble (the canary's metrics), so that every metric the
	// dashboards read has series.
	s.Targets = []probes.Target{{Name: served, Challenge: "http-01", TLS: &on}, {Name: broken, Challenge: "http-01"},
		{Name: domain("healthy-dns01"), Challenge: "dns-01", ExpectTXT: testenv.Token("healthy-dns01")}}
	canary := probes.DefaultCanary()
	canary.Directory, canary.CACert, canary.AccountKey = u.ACMEDirectory(), u.ACMECACert(), filepath.Join(t.TempDir(), "account.key")
	canary.Names = []string{served}
	s.Canary = &canary
	s.Schedule.Intervals = map[string]probes.Duration{"dns": probes.Duration(2 * time.Second), "http-01": probes.Duration(2 * time.Second),
		"tls": probes.Duration(2 * time.Second)}
	d, err := run.NewDaemon(s, run.DaemonOptions{Logger: zaptest.NewLogger(t), Version: "deploy-test"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Serve(dctx, ln) }()
	defer func() { stop(); <-done }()

	rules, err := filepath.Abs(filepath.Join(chartDir, "files/alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := prom.Start(ctx, prom.Options{Bin: bins[0], ScrapeTargets: []prom.Target{{Job: "acmediag", Addr: ln.Addr().String()}},
		RuleFiles: []string{rules}, ScrapeInterval: time.Second, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, q := range []string{
		`acmediag_renewal_window_start_seconds{name="` + served + `"}`,
		`acmediag_certificate_not_after_seconds{name="` + served + `"}`,
		`acmediag_findings{name="` + broken + `",code="http01.connection_refused"}`,
		`acmediag_propagation_seconds_count`,
		`acmediag_canary_last_success_timestamp_seconds{name="` + served + `"}`,
	} {
		if _, err := p.WaitFor(ctx, q); err != nil {
			t.Fatalf("Prometheus never saw %s: %v", q, err)
		}
	}

	// Every rule evaluated at least twice since, without error.
	time.Sleep(2500 * time.Millisecond)
	rr, err := p.API().Rules(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range rr.Groups {
		for _, r := range g.Rules {
			b, _ := json.Marshal(r)
			var st struct {
				Name      string `json:"name"`
				Health    string `json:"health"`
				LastError string `json:"lastError"`
			}
			_ = json.Unmarshal(b, &st)
			n++
			if st.Health != "ok" {
				t.Errorf("rule %s: health %q: %s", st.Name, st.Health, st.LastError)
			}
		}
	}
	if want := len(alertNames(t)); n != want {
		t.Errorf("Prometheus loaded %d rules, the file has %d", n, want)
	}
	for _, g := range alerts(t).Groups {
		for _, r := range g.Rules {
			if r.Alert != "AcmeChallengePathBroken" {
				continue
			}
			vec, err := p.Query(ctx, r.Expr)
			if err != nil || !strings.Contains(vec.String(), broken) || strings.Contains(vec.String(), served) {
				t.Errorf("%s's expression gives %v (%v): want %s only", r.Alert, vec, err, broken)
			}
		}
	}

	documented := readmeMetrics(t)
	files, err := filepath.Glob(filepath.Join(chartDir, "files/dashboards/*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	queries := 0
	seen := map[string]bool{}
	for _, f := range files {
		var db dashboard
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &db); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if db.UID == "" || db.Title == "" {
			t.Errorf("%s: no uid or title", f)
		}
		for _, panel := range db.Panels {
			for _, tg := range panel.Targets {
				queries++
				expr := strings.ReplaceAll(tg.Expr, "$name", ".*")
				if _, err := p.Query(ctx, expr); err != nil {
					t.Errorf("%s, %q: %s: %v", filepath.Base(f), panel.Title, tg.Expr, err)
				}
				for _, m := range metricNames(tg.Expr) {
					if !documented[m] && !strings.HasPrefix(m, "process_") {
						t.Errorf("%s, %q: %s is not a metric the daemon documents", filepath.Base(f), panel.Title, m)
					}
					seen[m] = true
				}
			}
		}
	}
	// The renewal dashboard's window panel shows the served name.
	vec, err := p.Query(ctx, `(min by (name, source) (acmediag_renewal_window_start_seconds{name=~".*"}) - time()) / 86400`)
	if err != nil || !strings.Contains(vec.String(), served) {
		t.Errorf("the window panel's query: %v (%v)", vec, err)
	}
	// Every metric a dashboard or an alert reads has series in this
	// Prometheus (a typo'd name would have none), except those only a
	// failure makes: a panic, a refused reload, a cert-manager renewal.
	for _, g := range alerts(t).Groups {
		for _, r := range g.Rules {
			for _, m := range metricNames(r.Expr) {
				seen[m] = true
			}
		}
	}
	onlyOnFailure := map[string]bool{"acmediag_probe_panics_total": true, "acmediag_renewal_failures_total": true}
	for m := range seen {
		if onlyOnFailure[m] {
			continue
		}
		vec, err := p.Query(ctx, `count({__name__=~"`+m+`(_bucket)?"})`)
		if err != nil || len(vec) == 0 {
			t.Errorf("no series of %s in Prometheus (%v)", m, err)
		}
	}
	t.Logf("%d dashboard queries evaluated, %d metrics with series", queries, len(seen))
}

func alertNames(t *testing.T) []string {
	var out []string
	for _, g := range alerts(t).Groups {
		for _, r := range g.Rules {
			out = append(out, r.Alert)
		}
	}
	return out
}

// readmeMetrics are the metric names of the README's Metrics table.
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `(acmediag_[a-z_]+)`").FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = true
	}
	if len(out) < 10 {
		t.Fatalf("the README's Metrics table has %d metrics", len(out))
	}
	return out
}
