package run

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/agent"
)

// AgentOptions are how an agent serves: where, with which certificates,
// within which limits.
type AgentOptions struct {
	Listen   string
	CertFile string
	KeyFile  string
	ClientCA string
	Limits   agent.Limits
	Logger   *zap.Logger
	Version  string
	Registry *probes.Registry // nil → probes.DefaultKinds()
}

// AgentLimits bound what an agent does for its callers (agent.Limits).
type AgentLimits = agent.Limits

// DefaultAgentLimits are an agent's limits when nobody set them.
func DefaultAgentLimits() AgentLimits { return agent.DefaultLimits() }

// NewAgent builds the agent's plan from s (its one vantage and the checks'
// configuration; requests name the targets) and its TLS configuration. A
// problem with either is a *probes.SettingsError.
func NewAgent(s probes.Settings, opts AgentOptions) (*Agent, error) {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	plan, err := probes.Build(s, probes.BuildOptions{Registry: opts.Registry, Logger: opts.Logger, TargetsOnRequest: true})
	if err != nil {
		return nil, err
	}
	tlsCfg, err := agent.ServerTLS(opts.CertFile, opts.KeyFile, opts.ClientCA)
	if err != nil {
		return nil, &probes.SettingsError{Issues: []probes.Issue{{Key: "tls", Msg: err.Error()}}}
	}
	a := &Agent{opts: opts, plan: plan}
	a.srv = agent.NewServer(agent.NewHandler(agent.Config{Plan: plan, Limits: opts.Limits, Logger: opts.Logger}), tlsCfg, opts.Limits, opts.Logger)
	return a, nil
}

// Agent is a running `acmediag agent`.
type Agent struct {
	opts AgentOptions
	plan *probes.Plan
	srv  *http.Server
}

// Run serves until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.opts.Listen)
	if err != nil {
		return fmt.Errorf("agent: listen on %s: %w", a.opts.Listen, err)
	}
	return a.Serve(ctx, ln)
}

// Serve is Run on a listener of the caller's.
func (a *Agent) Serve(ctx context.Context, ln net.Listener) error {
	log := a.opts.Logger
	serveErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		// The same per-client accounting as the daemon's: one caller's
		// half-open handshakes cannot take every slot from the daemons.
		if err := a.srv.ServeTLS(probes.NewClientListener(ln, probes.ConnLimits{Total: maxConnections, PerClient: maxConnsPerClient}, nil), "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			serveErr <- err
		}
	})
	v := a.plan.Vantages[0]
	log.Info("agent started", zap.String("listen", ln.Addr().String()), zap.String("vantage", v.Name),
		zap.String("kind", string(v.Kind)), zap.String("rir", v.RIR), zap.String("region", v.Region),
		zap.Stringer("source", v.SourceAddr), zap.Float64("rate_per_second", a.opts.Limits.Rate), zap.String("version", a.opts.Version))
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("agent: serving: %w", err)
	}
	log.Info("shutting down")
	shutdownCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	if err := a.srv.Shutdown(shutdownCtx); err != nil {
		_ = a.srv.Close()
	}
	wg.Wait()
	return runErr
}
