// Package run runs acmediag's plan: once (Diagnose), forever (Daemon: the
// schedule, the store, the metrics, the JSON API and the report page,
// reloads), or on request (Agent: a remote vantage's server). It owns the
// runtime around the plan and the views made of its observations; it must
// not parse flags or configuration files (cmd gives it probes.Settings)
// nor judge names itself (the probe kinds and reports do).
package run

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/agent"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// DiagnoseOptions are what Diagnose needs besides the settings.
type DiagnoseOptions struct {
	Logger   *zap.Logger
	Registry *probes.Registry // nil → probes.DefaultKinds()
	// Extend, when set, adds to the report once the probes have run, with
	// the plan and within the run's deadline (diagnose --kube explains a
	// Challenge's solver).
	Extend func(ctx context.Context, p *probes.Plan, r *reports.Report)
}

// Diagnose builds the plan of s and runs it once: every probe kind for every
// target from every vantage (agents included), the CA's order when the
// canary settings ask for one. schedule.timeout bounds the whole run. A
// settings error is a *probes.SettingsError; the report is what the
// daemon's report of the same names would say.
func Diagnose(ctx context.Context, s probes.Settings, opts DiagnoseOptions) (*reports.Report, error) {
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	start := time.Now()
	plan, err := probes.Build(s, probes.BuildOptions{Registry: opts.Registry, Remote: agent.Dial, Logger: logger, OneShot: true})
	if err != nil {
		return nil, err
	}
	defer closeRemotes(plan)
	if c := plan.Canary; c != nil && c.ServeAddr != "" {
		// Up for the whole run, so that the HTTP-01 probes reach it too
		// and fetch the order's own token (canary.TokenServer).
		ts, err := canary.ServeTokens(c.ServeAddr)
		if err != nil {
			return nil, &probes.SettingsError{Issues: []probes.Issue{{Key: "canary.serve_token", Msg: err.Error()}}}
		}
		defer ts.Close()
		c.Tokens = ts
	}
	useLegoResolvers(plan)
	timeout := time.Duration(s.Schedule.Timeout)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	store := probes.NewStore(probes.StoreLimits{PerKey: 1})
	engine := probes.NewEngine(store, nil, logger, plan.Env.Clock)
	engine.SetPlan(plan)
	engine.RunOnce(ctx)
	if err := refusedOrder(store); err != nil {
		return nil, err
	}
	v := Snapshot(plan, store, "")
	rep := v.Report
	if opts.Extend != nil {
		opts.Extend(ctx, plan, rep)
		rep.Finalize()
	}
	rep.Duration = time.Since(start)
	if ctx.Err() != nil && len(rep.Names) > 0 {
		rep.Findings = append(rep.Findings, reports.New(reports.CodeDNSTimeout, rep.Names[0],
			fmt.Sprintf("the run hit its deadline of %s before every check finished; results may be incomplete", timeout)))
		rep.Finalize()
	}
	stats := plan.Env.Stats()
	logger.Debug("diagnose done", zap.Int64("dns_queries", stats.Queries), zap.Int64("dns_timeouts", stats.Timeouts),
		zap.Duration("duration", rep.Duration))
	return rep, nil
}

// refusedOrder is the settings error of an order refused before it reached
// the CA (an account key that cannot be written, a serve address taken):
// diagnose's user gave something wrong, it says nothing about the name.
func refusedOrder(store *probes.Store) error {
	for _, o := range store.Latest("") {
		if o.Kind != probes.KindACME {
			continue
		}
		if i := slices.IndexFunc(o.Checks, func(c reports.Check) bool { return c.Name == "acme.order" && c.Status == reports.CheckFail }); i >= 0 {
			return &probes.SettingsError{Issues: []probes.Issue{{Key: "canary.directory", Msg: o.Checks[i].Note}}}
		}
	}
	return nil
}

// useLegoResolvers points lego's own DNS lookups at the plan's resolvers
// when its canary publishes through a DNS provider.
func useLegoResolvers(p *probes.Plan) {
	if p.Canary == nil || p.Canary.DNSProvider == nil {
		return
	}
	var ns []string
	for _, r := range p.Env.Checker.Resolvers {
		ns = append(ns, r.String())
	}
	canary.UseResolvers(ns, p.Env.Checker.QueryTimeout)
}

func closeRemotes(p *probes.Plan) {
	for _, v := range p.Vantages {
		if v.Remote != nil {
			v.Remote.Close()
		}
	}
}

// IsSettingsError reports whether err is a problem with the settings.
func IsSettingsError(err error) bool {
	var se *probes.SettingsError
	return errors.As(err, &se)
}
