package run

import (
	"slices"
	"time"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// View is the latest state of some names: the report diagnose prints, made
// from the newest observation of each (name, vantage, kind), with the
// failed canary orders explained, and what the daemon's page shows
// besides. diagnose and the daemon make it the same way (Snapshot).
type View struct {
	Report *reports.Report
	// Latest are the observations the report was made from.
	Latest []reports.Observation
	// Orders are the CA's own verdicts (canary orders), one per name.
	Orders []reports.Observation
	// Watches are the propagation watches, one per name.
	Watches []reports.Observation
	// Correlations explain the latest canary order of each name that
	// failed validation, from what every vantage saw around it.
	Correlations []reports.CorrelatedAttempt
}

// Snapshot assembles the view of name (every target when "") under plan p
// from the store. A name no probe has finished yet gets a skipped
// "probe.pending" check, so an empty report never reads as a pass by
// omission; observations of targets or vantages the plan no longer has
// are left out.
func Snapshot(p *probes.Plan, store observationSource, name string) View {
	return snapshot(p, store, name, nil)
}

// snapshot is Snapshot with the vantages of the leader's peers counted
// beside the plan's (cluster mode).
func snapshot(p *probes.Plan, store observationSource, name string, peers []reports.Vantage) View {
	var subjects []reports.Subject
	want := map[string]bool{}
	for _, t := range p.Targets {
		if name == "" || t.Name == name {
			subjects = append(subjects, reports.Subject{Name: t.Name, Challenge: t.Challenge})
			want[t.Name] = true
		}
	}
	vantages := make([]reports.Vantage, len(p.Vantages))
	inPlan := map[string]bool{"": true}
	for i, v := range p.Vantages {
		vantages[i] = v.Vantage
		inPlan[v.Name] = true
	}
	for _, v := range peers {
		if !inPlan[v.Name] {
			vantages = append(vantages, v)
			inPlan[v.Name] = true
		}
	}
	var v View
	var longest time.Duration
	seen := map[string]bool{}
	for _, o := range store.Latest(name) {
		if !want[o.Name] || !inPlan[o.Vantage.Name] {
			continue
		}
		switch o.Kind {
		case probes.KindACME:
			if p.Canary == nil {
				continue
			}
			if !o.OK {
				if c, ok := correlate(store, o, inPlan); ok {
					o.Findings = c.findings
					v.Correlations = append(v.Correlations, c.attempt)
				}
			}
			v.Orders = append(v.Orders, o)
		case probes.KindPropagation:
			v.Watches = append(v.Watches, o)
		}
		seen[o.Name] = true
		longest = max(longest, o.Duration)
		v.Latest = append(v.Latest, o)
	}
	byName := map[string][]reports.Observation{}
	for _, o := range v.Latest {
		byName[o.Name] = append(byName[o.Name], o)
	}
	now := p.Env.Clock.Now()
	for _, s := range subjects {
		if r, ok := p.Renewal(s.Name, byName[s.Name], now); ok {
			v.Latest = append(v.Latest, r)
		}
	}
	v.Report = reports.Assemble(subjects, vantages, v.Latest, longest)
	for _, s := range subjects {
		if !seen[s.Name] {
			v.Report.Checks = append(v.Report.Checks, reports.Check{Name: "probe.pending", Target: s.Name, Status: reports.CheckSkipped,
				Note: "no probe of this name has finished yet"})
		}
	}
	return v
}

// correlated is a failed canary order explained: its findings with
// acme.order_failed extended by the ranked causes, and the attempt with
// its causes for the page.
type correlated struct {
	findings []reports.Finding
	attempt  reports.CorrelatedAttempt
}

// correlate ranks the likely root causes of a failed canary order o from
// the observations every vantage in force made of the name around it
// (reports.Correlate). Only an order the CA refused in validation
// (acme.order_failed) is correlated: a directory that is down or a rate
// limit says nothing about the name.
func correlate(store observationSource, o reports.Observation, vantages map[string]bool) (correlated, bool) {
	i := slices.IndexFunc(o.Findings, func(f reports.Finding) bool { return f.Code == reports.CodeACMEOrderFailed })
	if i < 0 {
		return correlated{}, false
	}
	a := reports.Attempt{Name: o.Name, Start: o.Start, End: o.Start.Add(max(o.Duration, 0)), Problem: o.Findings[i].Problem}
	if o.Trace.Problem != nil {
		a.Problem = o.Trace.Problem
	}
	since := a.Start.Add(-reports.DefaultCorrelationMargin - reports.DefaultCorrelationLookback)
	around := slices.DeleteFunc(store.Query(o.Name, since), func(ob reports.Observation) bool {
		return !ob.Perspective() || !vantages[ob.Vantage.Name]
	})
	causes := reports.Correlate(a, around, reports.CorrelateOptions{})
	fs := slices.Clone(o.Findings)
	fs[i] = reports.ExplainFinding(fs[i], causes)
	return correlated{findings: fs, attempt: reports.CorrelatedAttempt{Attempt: a, Causes: causes}}, true
}
