package probes

import (
	"context"
	"strings"

	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// challengeKind validates HTTP-01 or TLS-ALPN-01 as Let's Encrypt's VA
// would, from each vantage: addresses from the vantage's DNS session (never
// the system resolver), connections from its source address.
func challengeKind(kind reports.Kind, c reports.Challenge) KindSpec {
	return KindSpec{Kind: kind, Remote: true, Lane: LaneProbes,
		Doc:     string(c) + " as Let's Encrypt's VA validates it: the same addresses, redirects, ports, TLS and body rules",
		Applies: func(_ *Plan, t Target) bool { return t.Challenge == c },
		New: func(p *Plan) Probe {
			env := p.Env
			var tokens *canary.TokenServer
			var ordered map[string]bool
			if p.Canary != nil && c == reports.HTTP01 {
				tokens, ordered = p.Canary.Tokens, p.Canary.Names
			}
			return ProbeFunc(func(ctx context.Context, t Target, v Vantage) reports.Observation {
				if tokens != nil && t.Token == "" && ordered[t.Name] {
					// acmediag serves this name's token (--serve-token):
					// fetch the order's own and check its key
					// authorization, as the CA does.
					if token, keyAuth, err := tokens.Await(ctx, t.Name); err == nil {
						t.Token, t.KeyAuth = token, keyAuth
					}
				}
				return env.validate(ctx, kind, c, t, v)
			})
		}}
}

func (e *Env) validate(ctx context.Context, kind reports.Kind, c reports.Challenge, t Target, v Vantage) reports.Observation {
	obs, done := e.observe(t, v, kind)
	check := reports.Check{Name: string(c) + ".validation", Target: t.Name}
	if strings.HasPrefix(t.Name, "*.") {
		// The CA offers only dns-01 for a wildcard; the DNS probe says so.
		check.Status, check.Note = reports.CheckSkipped, "wildcard: no "+string(c)+" challenge is offered"
		obs.Checks = []reports.Check{check}
		return done(obs).Finish()
	}
	sess := e.sessions().For(v)
	v6, v4, err := sess.LookupHost(ctx, t.Name)
	if err != nil || len(v6)+len(v4) == 0 {
		// The DNS probe reports why there is no address; nothing to connect
		// to, so this vantage cannot pass.
		check.Status, check.Note = reports.CheckSkipped, "no address to connect to"
		obs.Checks = []reports.Check{check}
		obs = done(obs).Finish()
		obs.OK = false
		return obs
	}
	val := e.Validator
	val.LocalAddr = v.SourceAddr
	val.Resolver = sess
	req := http01.Request{Name: t.Name, Token: t.Token, KeyAuth: t.KeyAuth, V6: v6, V4: v4}
	var res http01.Result
	if c == reports.TLSALPN01 {
		res = val.TLSALPN01(ctx, req)
	} else {
		res = val.Survey(ctx, req)
	}
	obs = done(obs)
	check.Duration = obs.Duration
	check.Status = statusOf(res)
	switch {
	case res.Problem != nil:
		check.Note = res.Problem.Detail
	case t.KeyAuth != "":
		check.Note = "the token's key authorization matches: Let's Encrypt would accept the response"
	default:
		check.Note = "Let's Encrypt would accept the response"
	}
	obs.Findings, obs.Checks = res.Findings, []reports.Check{check}
	for _, h := range res.Trace {
		obs.Trace.Add("%s", h.String())
	}
	// OK follows the findings: without a token a doubtful answer is only a
	// warning, and must not count as a failed perspective.
	return obs.Finish()
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
