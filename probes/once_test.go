package probes

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// countingProbe records its runs and fails the targets it is told to.
type countingProbe struct {
	kind  string
	fail  map[string]bool // "vantage/name"
	runs  atomic.Int64
	delay time.Duration
}

func (p *countingProbe) Kind() string { return p.kind }

func (p *countingProbe) Run(ctx context.Context, t Target, v Vantage) Observation {
	p.runs.Add(1)
	select {
	case <-time.After(p.delay):
	case <-ctx.Done():
	}
	o := Observation{Target: t, Vantage: v, Kind: p.kind}
	if p.fail[v.Name+"/"+t.Name] {
		o.Findings = []reports.Finding{reports.New(reports.CodeHTTP01ConnectTimeout, t.Name, "blocked")}
	}
	return finish(o)
}

func TestRunOnce(t *testing.T) {
	t.Parallel()
	vantages := []Vantage{{Name: "us", Kind: KindExternal}, {Name: "eu", Kind: KindExternal}, {Name: "k8s", Kind: KindCluster}}
	targets := []Target{{Name: "a.com"}, {Name: "b.com"}}
	dnsProbe := &countingProbe{kind: "dns"}
	httpProbe := &countingProbe{kind: "http-01", fail: map[string]bool{"eu/b.com": true}}
	obs := RunOnce(context.Background(), []Probe{dnsProbe, httpProbe}, targets, vantages)
	if len(obs) != 12 {
		t.Fatalf("%d observations, want 3 vantages × 2 targets × 2 probes = 12", len(obs))
	}
	if dnsProbe.runs.Load() != 6 || httpProbe.runs.Load() != 6 {
		t.Errorf("runs: dns %d, http %d; want 6 each", dnsProbe.runs.Load(), httpProbe.runs.Load())
	}
	// In (vantage, target, probe) order.
	for i, o := range obs {
		want := fmt.Sprintf("%s/%s/%s", vantages[i/4].Name, targets[i/2%2].Name, []string{"dns", "http-01"}[i%2])
		if got := fmt.Sprintf("%s/%s/%s", o.Vantage.Name, o.Target.Name, o.Kind); got != want {
			t.Errorf("observation %d is %s, want %s", i, got, want)
		}
		if wantOK := !(o.Vantage.Name == "eu" && o.Target.Name == "b.com" && o.Kind == "http-01"); o.OK != wantOK {
			t.Errorf("%s/%s/%s OK=%v, want %v", o.Vantage.Name, o.Target.Name, o.Kind, o.OK, wantOK)
		}
	}
	if vantages[2].External() || !vantages[0].External() {
		t.Error("External() misjudges the vantage kinds")
	}
}

// A cancelled round ends promptly: runs in flight see the cancellation.
func TestRunOnceCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	slow := &countingProbe{kind: "dns", delay: time.Minute}
	done := make(chan []Observation)
	go func() { done <- RunOnce(ctx, []Probe{slow}, []Target{{Name: "a.com"}}, []Vantage{{Name: "v"}}) }()
	select {
	case obs := <-done:
		if len(obs) != 1 {
			t.Fatalf("%d observations", len(obs))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunOnce did not return after its context was cancelled")
	}
}
