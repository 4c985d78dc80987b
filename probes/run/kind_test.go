package run

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// A probe kind added through the registry alone is scheduled, stored,
// counted in the metrics and shown by the report API and the page: no
// other part of the daemon names it.
func TestRegisteredKindRunsEverywhere(t *testing.T) {
	t.Parallel()
	const fake reports.Kind = "fake"
	ran := make(chan struct{}, 100)
	reg, err := probes.NewRegistry(probes.KindSpec{Kind: fake, Lane: probes.LaneProbes, Doc: "a test's own kind",
		Applies: func(_ *probes.Plan, t probes.Target) bool { return t.Challenge == reports.HTTP01 },
		New: func(*probes.Plan) probes.Probe {
			return probes.ProbeFunc(func(_ context.Context, t probes.Target, v probes.Vantage) reports.Observation {
				ran <- struct{}{}
				return reports.Observation{Name: t.Name, Challenge: t.Challenge, Vantage: v.Vantage, Kind: fake, Start: time.Now(),
					Findings: []reports.Finding{reports.New(reports.CodeHTTP01SlowResponse, t.Name, "the fake kind saw it")},
					Checks:   []reports.Check{{Name: "fake.check", Target: t.Name, Status: reports.CheckWarn}}}.Finish()
			})
		}})
	if err != nil {
		t.Fatal(err)
	}
	s := probes.DefaultSettings()
	s.DNS.Resolvers = []string{"127.0.0.1"}
	s.Vantages = []probes.VantageSettings{{Name: "us", Kind: "external"}}
	s.Targets = []probes.Target{{Name: "a.example.com"}, {Name: "*.b.example.com"}}
	s.Schedule.Intervals = map[string]probes.Duration{string(fake): probes.Duration(time.Second)}
	d, err := NewDaemon(s, DaemonOptions{Registry: reg, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := serveLoopback(t, d.Serve)
	select {
	case <-ran:
	case <-time.After(10 * time.Second):
		t.Fatal("the fake kind never ran")
	}
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for !d.Ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	var obs []reports.Observation
	if err := json.Unmarshal([]byte(getOK(t, base+"/api/v1/observations?name=a.example.com")), &obs); err != nil || len(obs) == 0 ||
		obs[0].Kind != fake || obs[0].Vantage.Name != "us" {
		t.Errorf("observations %+v (%v), want the fake kind's from us", obs, err)
	}
	if len(d.Observations("b.example.com", time.Time{})) != 0 || len(d.Observations("*.b.example.com", time.Time{})) != 0 {
		t.Error("the fake kind ran for a target it does not apply to")
	}
	metrics := getOK(t, base+"/metrics")
	for _, want := range []string{`acmediag_probe_runs_total{kind="fake",result="success",vantage="us"}`,
		`acmediag_findings{code="http01.slow_response",name="a.example.com",severity="warning"} 1`,
		`acmediag_schedule_delay_seconds_count{kind="fake"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var rep reports.Report
	if err := json.Unmarshal([]byte(getOK(t, base+"/api/v1/report?name=a.example.com")), &rep); err != nil {
		t.Fatal(err)
	}
	if len(rep.Findings) != 1 || rep.Findings[0].Detail != "the fake kind saw it" || rep.Verdict != reports.VerdictWarn ||
		len(rep.Checks) != 1 || rep.Checks[0].Name != "fake.check" {
		t.Errorf("report %+v, want the fake kind's finding and check", rep)
	}
	page := getOK(t, base+"/")
	if !strings.Contains(page, "<td>fake</td>") {
		t.Error("the page's vantage table does not list the fake kind")
	}
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d once the fake kind ran for every target", resp.StatusCode)
	}
}
