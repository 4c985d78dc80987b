package probes

import (
	"context"
	"time"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// ACMEProbe asks a real ACME server (a staging directory, or Pebble in the
// test universe) to validate the target: the CA's own verdict, from the
// CA's own perspectives, which no local probe can stand in for. Without
// ServeAddr it is a probe order (the token is not served; a 404 from the
// right server is a pass); with it, a full order serving the token there.
type ACMEProbe struct {
	Config    canary.Config
	ServeAddr string
	// DNSProvider publishes dns-01 TXT records (a lego provider); with it,
	// dns-01 targets get full orders too.
	DNSProvider challenge.Provider
}

// Kind implements Probe.
func (p *ACMEProbe) Kind() string { return "acme" }

// Applies implements Applier: orders are placed for http-01 targets, and
// for dns-01 targets when a DNS provider can publish the record.
func (p *ACMEProbe) Applies(t Target) bool {
	return t.Challenge == "http-01" || t.Challenge == "dns-01" && p.DNSProvider != nil
}

// Run implements Probe. The vantage does not matter: the CA validates from
// its own places.
func (p *ACMEProbe) Run(ctx context.Context, t Target, v Vantage) Observation {
	start := time.Now()
	obs := Observation{Target: t, Vantage: v, Kind: p.Kind(), Start: start}
	var out canary.Outcome
	switch {
	case t.Challenge == "dns-01":
		out = canary.DNS01Order(ctx, p.Config, t.Name, p.DNSProvider)
	case p.ServeAddr != "":
		out = canary.FullOrder(ctx, p.Config, t.Name, p.ServeAddr)
	default:
		out = canary.ProbeOrder(ctx, p.Config, t.Name)
	}
	for _, s := range out.Steps {
		c := reports.Check{Name: "acme." + s.Name, Target: t.Name, Status: reports.CheckOK, Duration: s.Duration}
		if s.Err != "" {
			c.Status, c.Note = reports.CheckFail, s.Err
		}
		obs.Checks = append(obs.Checks, c)
	}
	obs.Findings = out.Findings
	if out.Err != nil {
		obs.Checks = append(obs.Checks, reports.Check{Name: "acme.order", Target: t.Name, Status: reports.CheckFail, Note: out.Err.Error()})
	}
	obs.Trace = out
	obs.Duration = time.Since(start)
	obs = finish(obs)
	obs.OK = obs.OK && out.Err == nil
	return obs
}
