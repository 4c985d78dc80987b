package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/reports"
)

type daemonFlags struct {
	config   string
	check    bool
	logLevel string
	vantage  probes.VantageSettings // this process's own vantage (--vantage-*)
	// --kube turns the cert-manager watch on over the file's kube:
	// section; --kubeconfig is kube.kubeconfig, for the watch and cluster
	// mode alike.
	kube       bool
	kubeconfig string
}

func newDaemonCmd() *cobra.Command {
	f := &daemonFlags{}
	cmd := &cobra.Command{
		Use:   "daemon --config FILE",
		Short: "Keep probing every configured name from every vantage; serve metrics, a JSON API and a report page",
		Long: `daemon runs diagnose's checks continuously: every probe kind for every
target from every vantage on its interval, with jitter, a concurrency limit,
a timeout per run and backoff after failures. It serves

  /metrics                 Prometheus metrics (acmediag_*)
  /healthz, /readyz        liveness; readiness once every probe ran once
  /api/v1/observations     recent observations (?name=&since=RFC3339&limit=)
  /api/v1/report           diagnose's JSON over the latest observations (?name=)
  /api/v1/reprobe          POST ?name=NAME: run every probe of the name now
                           (202; refused for cross-site browser requests;
                           api.reprobe: off, a bearer token, a budget)
  /                        the report page

Every dns-01 target with expect_txt has its value watched until every
authoritative server address of its zone serves it (the propagation:
section paces this): the page lists when each address first served it,
acmediag_propagation_seconds counts the times, and a value that did not
get everywhere within propagation.timeout is a dns01.txt_not_propagated
finding; the watch keeps asking at the DNS interval, and a re-probe of the
name asks at once.

memory_limit (default 192MiB, unless GOMEMLIMIT is set) is the Go
runtime's soft memory limit; with store.max_bytes it bounds the RSS.

The canary (the canary: section) places real orders at a staging ACME
directory: probe orders for http-01 names (the CA's own verdict without
serving the token), full orders for dns-01 names when canary.dns_provider
names a lego DNS provider (credentials from the environment, as lego reads
them); a dns-01 order waits, through the same watch, until every server
address serves its TXT value before answering the challenge.

Agents (the agents: section) are vantages in other places: the daemon asks
each "acmediag agent" over mutual TLS to run the probes there, and its
results count like a local vantage's, in the MPIC quorum too.

Cluster mode (the cluster: section, on Kubernetes) elects a leader with a
coordination.k8s.io Lease: every pod probes as a vantage (named after its
node, NODE_NAME, unless --vantage-name or vantages say otherwise); only the
leader runs the canary and the cert-manager watch, and it merges the
observations of its peers, the other pods of the headless Service
(cluster.service), asked over /api/v1/observations. The API server is
reached in-cluster, or through --kubeconfig.

The configuration is one YAML file, decoded strictly: an unknown key is an
error, and every error names the file line and the key. SIGHUP reloads it;
a configuration with errors is logged and counted
(acmediag_config_reload_failures_total) and the one in force is kept.

Exit status: 0 after SIGINT/SIGTERM, 1 on a runtime failure, 2 for a
configuration error.`,
		Example: `  # Check a configuration file and exit (0: valid, 2: errors, printed)
  acmediag daemon --config /etc/acmediag/config.yaml --config.check

  # Run it
  acmediag daemon --config /etc/acmediag/config.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDaemon(cmd.Context(), cmd, f) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "the YAML configuration file (required)")
	fl.BoolVar(&f.check, "config.check", false, "validate the configuration, print the result and exit (0 valid, 2 invalid)")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level on stderr: debug, info, warn or error")
	fl.StringVar(&f.vantage.Name, "vantage-name", "", "name this process's own vantage when the configuration lists no vantages (a DaemonSet pod: its node's name)")
	fl.StringVar(&f.vantage.Kind, "vantage-kind", string(reports.External), "that vantage's kind: external (a remote perspective) or cluster (inside the cluster, what cert-manager's self-check sees)")
	fl.StringVar(&f.vantage.Region, "vantage-region", "", "that vantage's region")
	fl.StringVar(&f.vantage.RIR, "vantage-rir", "", "that vantage's RIR (ARIN, RIPE, APNIC, LACNIC, AFRINIC)")
	fl.BoolVar(&f.kube, "kube", false, "watch cert-manager in the cluster (kube.enabled): its Certificates' names become targets, failed renewals get a RenewalDiagnosis Event")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "the API server's kubeconfig file for --kube and cluster mode (kube.kubeconfig); default the pod's ServiceAccount")
	fl.SortFlags = false
	return cmd
}

// overlay puts the flags into c's settings, as on every reload.
func (f *daemonFlags) overlay(c *configFile) error {
	if err := f.ownVantage(c); err != nil {
		return err
	}
	if f.kube {
		c.settings.Kube.Enabled = true
	}
	if f.kubeconfig != "" {
		c.settings.Kube.Kubeconfig = f.kubeconfig
	}
	return nil
}

// ownVantage puts the --vantage-* flags into c's settings: the process's
// one vantage when the file lists none.
func (f *daemonFlags) ownVantage(c *configFile) error {
	v := f.vantage
	if v.Name == "" {
		if _, listed := c.lines["vantages"]; listed || !c.settings.Cluster.Enabled {
			return nil
		}
		// Cluster mode: every pod is a vantage, named after its node
		// (the downward API's spec.nodeName).
		if v.Name = os.Getenv("NODE_NAME"); v.Name == "" {
			return nil
		}
	} else if line, ok := c.lines["vantages"]; ok {
		return usagef("--vantage-name: %s:%d lists the vantages; name this one there, or leave vantages out", c.path, line)
	}
	c.settings.Vantages = []probes.VantageSettings{v}
	return nil
}

func runDaemon(ctx context.Context, cmd *cobra.Command, f *daemonFlags) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if f.config == "" {
		return usagef("daemon needs --config FILE")
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// Reading 100,000 targets' YAML is the daemon's largest transient
		// heap: bound it before the file's own memory_limit is known.
		debug.SetMemoryLimit(probes.DefaultMemoryLimit)
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	cfg, err := loadConfig(f.config)
	if err == nil {
		if err := f.overlay(cfg); err != nil {
			return err
		}
		var d *run.Daemon
		d, err = newDaemon(cfg, logger, f.overlay)
		if err == nil {
			if f.check {
				p := d.Plan()
				fmt.Fprintf(stdout, "%s: valid (%s, %s)\n", f.config, plural(len(p.Targets), "target"), plural(len(p.Vantages), "vantage"))
				return nil
			}
			return d.Run(ctx)
		}
	}
	// Printed as is: each line already names the file, line and key.
	fmt.Fprintln(stderr, err)
	return exitError{exitUsage}
}

// newDaemon is the daemon of a configuration file, reading it again on
// SIGHUP (with overlay, the flags', applied each time); its errors name
// the file's lines.
func newDaemon(cfg *configFile, logger *zap.Logger, overlay func(*configFile) error) (*run.Daemon, error) {
	current := cfg
	d, err := run.NewDaemon(cfg.settings, run.DaemonOptions{Logger: logger, Version: version,
		// Both run on the daemon's loop, one reload at a time.
		Load: func() (probes.Settings, error) {
			c, err := loadConfig(cfg.path)
			if err != nil {
				return probes.Settings{}, err
			}
			if overlay != nil {
				if err := overlay(c); err != nil {
					return probes.Settings{}, err
				}
			}
			current = c
			return c.settings, nil
		},
		Explain: func(err error) error { return current.explain(err) },
	})
	if err != nil {
		return nil, cfg.explain(err)
	}
	return d, nil
}
