package probes

import (
	"context"
	"strings"
	"time"

	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/reports"
)

// ChallengeProbe validates HTTP-01 or TLS-ALPN-01 as Let's Encrypt's VA
// would, from the vantage: addresses from the vantage's DNS session (never
// the system resolver), connections from its source address.
type ChallengeProbe struct {
	Challenge string // http-01 or tls-alpn-01
	Sessions  *Sessions
	Validator http01.Validator // base configuration; LocalAddr and Resolver are set per vantage
}

// Kind implements Probe.
func (p *ChallengeProbe) Kind() string { return p.Challenge }

// Applies implements Applier: targets of this challenge only.
func (p *ChallengeProbe) Applies(t Target) bool { return t.Challenge == p.Challenge }

// Run implements Probe.
func (p *ChallengeProbe) Run(ctx context.Context, t Target, v Vantage) Observation {
	start := time.Now()
	obs := Observation{Target: t, Vantage: v, Kind: p.Kind(), Start: start}
	check := reports.Check{Name: p.Challenge + ".validation", Target: t.Name}
	if strings.HasPrefix(t.Name, "*.") {
		// The CA offers only dns-01 for a wildcard; the DNS probe says so.
		check.Status, check.Note = reports.CheckSkipped, "wildcard: no "+p.Challenge+" challenge is offered"
		obs.Checks = []reports.Check{check}
		return finish(obs)
	}
	sess := p.Sessions.For(v)
	v6, v4, err := sess.LookupHost(ctx, t.Name)
	if err != nil || len(v6)+len(v4) == 0 {
		// The DNS probe reports why there is no address; nothing to connect to.
		check.Status, check.Note = reports.CheckSkipped, "no address to connect to"
		obs.Checks = []reports.Check{check}
		obs.Duration = time.Since(start)
		obs = finish(obs)
		obs.OK = false
		return obs
	}
	val := p.Validator
	val.LocalAddr = v.SourceAddr
	val.Resolver = sess
	req := http01.Request{Name: t.Name, Token: t.Token, KeyAuth: t.KeyAuth, V6: v6, V4: v4}
	var res http01.Result
	if p.Challenge == "tls-alpn-01" {
		res = val.TLSALPN01(ctx, req)
	} else {
		res = val.Survey(ctx, req)
	}
	check.Duration = time.Since(start)
	check.Status = statusOf(res)
	if res.Problem != nil {
		check.Note = res.Problem.Detail
	} else {
		check.Note = "Let's Encrypt would accept the response"
	}
	obs.Findings, obs.Checks, obs.Trace = res.Findings, []reports.Check{check}, res
	obs.Duration = time.Since(start)
	// OK follows the findings: without a token a doubtful answer is only a
	// warning, and must not count as a failed perspective.
	return finish(obs)
}

func statusOf(res http01.Result) reports.CheckStatus {
	switch {
	case !res.OK:
		return reports.CheckFail
	case len(res.Findings) > 0:
		return reports.CheckWarn
	}
	return reports.CheckOK
}
