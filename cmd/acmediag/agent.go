package main

import (
	"context"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/reports"
)

type agentFlags struct {
	listen       string
	cert, key    string
	clientCA     string
	name         string
	region       string
	rir          string
	kind         string
	source       string
	rate         string
	burst        int
	maxInFlight  int
	probeTimeout time.Duration
	checkFlags
	logLevel string
}

func newAgentCmd() *cobra.Command {
	f := &agentFlags{}
	cmd := &cobra.Command{
		Use:   "agent --listen ADDR --cert FILE --key FILE --client-ca FILE",
		Short: "Serve as a remote vantage point: run probes for a daemon over mutual TLS",
		Long: `agent makes this machine a vantage point for an acmediag daemon (or
diagnose --agent) somewhere else: it serves one endpoint, POST /v1/probe,
over HTTPS that requires a client certificate from --client-ca (TLS 1.3),
and answers with the findings of one probe run from here.

It runs only the probe kinds dns, http-01 and tls-alpn-01, for a target that
is a DNS name; the ports (53/80/443 unless set below), the source address and
the resolvers are this command's flags, never the caller's, so the agent is
not a proxy to arbitrary hosts or ports. Requests are rate-limited (a token
bucket; 429 beyond it) and bodies are bounded.

Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure, 2 for a usage
error.`,
		Example: `  # An agent in Frankfurt, probing from its public address
  acmediag agent --listen :9465 --cert agent.pem --key agent-key.pem \
    --client-ca daemon-ca.pem --name eu-central --rir RIPE --region eu-central-1 \
    --vantage-source 192.0.2.10 --resolver 192.0.2.53`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("agent takes no arguments (got %q): the daemon names the targets in each request", args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return runAgent(cmd.Context(), cmd, f) },
	}
	fl := cmd.Flags()
	lim := run.DefaultAgentLimits()
	fl.StringVar(&f.listen, "listen", ":9465", "address to serve HTTPS on")
	fl.StringVar(&f.cert, "cert", "", "the agent's TLS certificate (PEM; required)")
	fl.StringVar(&f.key, "key", "", "the agent's TLS private key (PEM; required)")
	fl.StringVar(&f.clientCA, "client-ca", "", "CA certificates (PEM) a client certificate must chain to; nothing else is trusted (required)")
	fl.StringVar(&f.name, "name", "", "this vantage's name, reported with every result (default the host name)")
	fl.StringVar(&f.region, "region", "", "this vantage's region, reported with every result")
	fl.StringVar(&f.rir, "rir", "", "this vantage's RIR: ARIN, RIPE, APNIC, LACNIC or AFRINIC")
	fl.StringVar(&f.kind, "kind", string(reports.External), "external (a remote perspective) or cluster")
	fl.StringVar(&f.source, "vantage-source", "", "source address of every probe packet (default: the system's choice)")
	fl.StringVar(&f.rate, "rate", "5/s", "probe requests admitted per second (N/s or N/m), a token bucket")
	fl.IntVar(&f.burst, "burst", lim.Burst, "token bucket size: requests admitted at once")
	fl.IntVar(&f.maxInFlight, "max-in-flight", lim.MaxInFlight, "probes running at once; more are refused with 429")
	fl.DurationVar(&f.probeTimeout, "probe-timeout", lim.Timeout, "deadline of one probe run")
	f.checkFlags.register(fl)
	fl.StringVar(&f.logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	fl.SortFlags = false
	return cmd
}

// parseRate reads N/s, N/m or N (per second).
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0, usagef("--rate %q: want a positive rate such as 5/s or 30/m", s)
	}
	switch unit {
	case "", "s":
		return v, nil
	case "m":
		return v / 60, nil
	}
	return 0, usagef("--rate %q: the unit is /s or /m", s)
}

// options turns the flags into the agent's settings (its one vantage and
// the checks) and how it serves.
func (f *agentFlags) options() (probes.Settings, run.AgentOptions, error) {
	s := probes.DefaultSettings()
	var opts run.AgentOptions
	for _, r := range []struct{ flag, v string }{{"--cert", f.cert}, {"--key", f.key}, {"--client-ca", f.clientCA}} {
		if r.v == "" {
			return s, opts, usagef("agent needs %s FILE", r.flag)
		}
	}
	rate, err := parseRate(f.rate)
	if err != nil {
		return s, opts, err
	}
	if f.burst < 1 || f.maxInFlight < 1 || f.probeTimeout <= 0 {
		return s, opts, usagef("--burst and --max-in-flight must be at least 1, --probe-timeout positive")
	}
	f.checkFlags.apply(&s)
	name := f.name
	if name == "" {
		if name, err = os.Hostname(); err != nil || name == "" {
			return s, opts, usagef("--name not given and the host name is unknown")
		}
	}
	s.Vantages = []probes.VantageSettings{{Name: name, Region: f.region, RIR: f.rir, Kind: f.kind, Source: f.source}}
	opts = run.AgentOptions{Listen: f.listen, CertFile: f.cert, KeyFile: f.key, ClientCA: f.clientCA,
		Limits:  run.AgentLimits{Rate: rate, Burst: f.burst, MaxInFlight: f.maxInFlight, Timeout: f.probeTimeout},
		Version: version}
	return s, opts, nil
}

func runAgent(ctx context.Context, cmd *cobra.Command, f *agentFlags) error {
	logger, err := newLogger(cmd.ErrOrStderr(), f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	s, opts, err := f.options()
	if err != nil {
		return err
	}
	opts.Logger = logger
	a, err := run.NewAgent(s, opts)
	if err != nil {
		return flagError(err, agentFlagKeys)
	}
	return a.Run(ctx)
}
