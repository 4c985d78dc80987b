package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/reports"
)

type diagnoseFlags struct {
	checkFlags
	challenge   string
	accountURI  string
	expectTXT   string
	timeout     time.Duration
	output      string
	verbose     bool
	logLevel    string
	vantages    []string
	token       string
	keyAuth     string
	acmeDir     string
	acmeCACert  string
	acmeKey     string
	allowProd   bool
	serveToken  string
	dnsProvider string
	agents      []string
	agentCert   string
	agentKey    string
	agentCA     string
	kube        bool
	kubeconfig  string
	namespace   string
}

func newDiagnoseCmd() *cobra.Command {
	f := &diagnoseFlags{}
	cmd := &cobra.Command{
		Use:   "diagnose [flags] NAME...",
		Short: "Check once whether Let's Encrypt's validation of each NAME would pass",
		Long: `diagnose walks the delegation of each NAME from the root, asks every
authoritative server address directly (RD=0, UDP then TCP on truncation),
resolves the name the way Let's Encrypt's resolvers do, evaluates CAA with
Let's Encrypt's rules, validates DNSSEC from the trust anchor down and, for
dns-01, checks the _acme-challenge TXT record at every server. For http-01 and
tls-alpn-01 it then validates the way Let's Encrypt's VA does — first AAAA then
first A, the same redirect, port, TLS and body rules — and fetches from every
address to compare backends.

With several --vantage flags every probe runs from each vantage's source
address with its own resolver, and the report applies the CA/B Forum
multi-perspective quorum (2–5 remote perspectives: 1 may fail; 6+: 2; the
passing ones must span 2 RIRs).

With --tls it also reads the certificate every address serves on the HTTPS
port and judges its renewal window — the CA's own (ARI, with --ari-directory),
else two thirds of its lifetime — against the challenge path: a name whose
window opens within the horizon while its challenge fails is renewal.at_risk.

It prints one finding per problem: what is wrong, what each server answered,
the ACME error Let's Encrypt would return, and what to change.

Exit status: 0 no Error or Fatal finding, 1 at least one, 2 usage or
configuration error.`,
		Example: `  # Would an HTTP-01 renewal of these names pass?
  acmediag diagnose www.example.com api.example.com

  # A wildcard (dns-01): is the TXT value visible at every authoritative server?
  acmediag diagnose --expect-txt "gfj9Xq...Rg85nM" '*.example.com'

  # HTTP-01 with the token cert-manager is presenting, from two vantages
  acmediag diagnose --token T --key-auth T.THUMBPRINT \
    --vantage us=192.0.2.10,rir=ARIN --vantage eu=192.0.2.11,rir=RIPE www.example.com

  # When is the renewal due, and would it pass now? (the CA's window via ARI)
  acmediag diagnose --tls --ari-directory https://acme-v02.api.letsencrypt.org/directory www.example.com

  # Why is cert-manager's renewal stuck? The Certificate's path, its timeline,
  # and its open Challenges checked with their own token and key
  acmediag diagnose --kube -n shop certificate/www
  acmediag diagnose --kube --kubeconfig ~/.kube/prod -n shop challenge/www-2-3456-0

  # CAA with an accounturi restriction, JSON for a pipeline
  acmediag diagnose --account-uri https://acme-v02.api.letsencrypt.org/acme/acct/123 -o json example.com`,
		Args: func(_ *cobra.Command, args []string) error {
			if f.kube {
				if len(args) != 1 {
					return usagef("diagnose --kube needs one object: certificate/NAME, order/NAME or challenge/NAME")
				}
				return nil
			}
			if len(args) == 0 {
				return usagef("diagnose needs at least one NAME")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDiagnose(cmd.Context(), cmd, f, args)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.challenge, "challenge", "", "challenge type: http-01, dns-01 or tls-alpn-01 (default http-01; a *.NAME uses dns-01 unless given)")
	fl.StringVar(&f.accountURI, "account-uri", "", "ACME account URI, for CAA accounturi (RFC 8657) checks")
	f.checkFlags.register(fl)
	fl.StringArrayVar(&f.vantages, "vantage", nil, "NAME=SRCADDR[,resolver=ADDR][,rir=RIR][,region=R][,kind=external|cluster]: probe from this local source address with its own resolver; repeatable (default one vantage \"local\")")
	fl.StringArrayVar(&f.agents, "agent", nil, "URL or NAME=URL[,rir=RIR][,region=R][,kind=external|cluster]: also probe from a running `acmediag agent` (mutual TLS); repeatable")
	fl.StringVar(&f.agentCert, "agent-cert", "", "client certificate presented to agents")
	fl.StringVar(&f.agentKey, "agent-key", "", "its private key")
	fl.StringVar(&f.agentCA, "agent-ca", "", "the CA that signed the agents' certificates (pinned)")
	fl.StringVar(&f.expectTXT, "expect-txt", "", "dns-01: the TXT value that must be visible at every server")
	fl.StringVar(&f.token, "token", "", "http-01: fetch this token (default a random one: judge reachability only)")
	fl.StringVar(&f.keyAuth, "key-auth", "", "http-01/tls-alpn-01: the key authorization the server must return")
	fl.StringVar(&f.acmeDir, "acme-directory", "none", "also order from this ACME directory (a staging one) and report the CA's own verdict; \"none\" skips")
	fl.StringVar(&f.acmeCACert, "acme-ca-cert", "", "extra CA bundle for the ACME directory's TLS (Pebble)")
	fl.StringVar(&f.acmeKey, "acme-account-key", "", "ACME account key file, created when missing (default one per directory in the user cache dir)")
	fl.BoolVar(&f.allowProd, "allow-production", false, "permit a production ACME directory (refused otherwise: it counts against real rate limits)")
	fl.StringVar(&f.serveToken, "serve-token", "", "serve the HTTP-01 token on ADDR (when NAME routes here) and complete the order")
	fl.StringVar(&f.dnsProvider, "dns-provider", "", "dns-01: publish the TXT record through this lego DNS provider (credentials from the environment, as lego reads them) and complete the order; one of "+strings.Join(probes.DNSProviders(), ", "))
	fl.BoolVar(&f.kube, "kube", false, "diagnose one cert-manager object instead of names: certificate/NAME, order/NAME or challenge/NAME (its path, timeline and Challenges, checked with their own token and key)")
	fl.StringVar(&f.kubeconfig, "kubeconfig", "", "--kube: the kubeconfig file (default $KUBECONFIG, ~/.kube/config, else in-cluster)")
	fl.StringVarP(&f.namespace, "namespace", "n", "", "--kube: the object's namespace (default the kubeconfig context's)")
	fl.DurationVar(&f.timeout, "timeout", 60*time.Second, "deadline for the whole run")
	fl.StringVarP(&f.output, "output", "o", "text", "report format: text, json or markdown")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "text: also list every check that ran")
	fl.StringVar(&f.logLevel, "log-level", "warn", "log level on stderr: debug, info, warn or error")
	fl.SortFlags = false
	return cmd
}

func runDiagnose(ctx context.Context, cmd *cobra.Command, f *diagnoseFlags, names []string) error {
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	render, err := renderer(f.output, f.verbose, stdout)
	if err != nil {
		return err
	}
	var rep *reports.Report
	if f.kube {
		rep, err = f.diagnoseKube(ctx, stderr, logger, names[0])
	} else {
		var s probes.Settings
		if s, err = f.settings(names); err != nil {
			return err
		}
		stopProgress := progress(ctx, stderr, len(names))
		rep, err = run.Diagnose(ctx, s, run.DiagnoseOptions{Logger: logger})
		stopProgress()
	}
	if err != nil {
		return flagError(err, nil)
	}
	if err := render(rep); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if code := rep.ExitCode(); code != exitOK {
		return exitError{code}
	}
	return nil
}

// diagnoseKube reads the object from the cluster and diagnoses it: the
// names, tokens and keys come from its Challenges, not from flags.
func (f *diagnoseFlags) diagnoseKube(ctx context.Context, stderr io.Writer, logger *zap.Logger, object string) (*reports.Report, error) {
	if f.token != "" || f.keyAuth != "" || f.expectTXT != "" || f.challenge != "" {
		return nil, usagef("--kube takes the challenge, token and key from the cluster: drop --challenge, --token, --key-auth and --expect-txt")
	}
	if f.acmeDir != "" && f.acmeDir != "none" {
		return nil, usagef("--kube does not place orders: drop --acme-directory")
	}
	s, err := f.settings(nil)
	if err != nil {
		return nil, err
	}
	stopProgress := progress(ctx, stderr, 1)
	defer stopProgress()
	return run.DiagnoseKube(ctx, s, run.KubeOptions{Object: object, Kubeconfig: f.kubeconfig, Namespace: f.namespace},
		run.DiagnoseOptions{Logger: logger})
}

// settings turns the flags and names into the settings diagnose runs.
func (f *diagnoseFlags) settings(names []string) (probes.Settings, error) {
	s := probes.DefaultSettings()
	f.checkFlags.apply(&s)
	s.DNS.AccountURI = f.accountURI
	if err := positive("--timeout", f.timeout); err != nil {
		return s, err
	}
	s.Schedule.Timeout = probes.Duration(f.timeout)
	challenge, err := challengeFlag(f.challenge)
	if err != nil {
		return s, err
	}
	if (f.token == "") != (f.keyAuth == "") && challenge != reports.TLSALPN01 {
		return s, usagef("--token and --key-auth go together")
	}
	for _, n := range names {
		c := challenge
		if c == "" {
			c = reports.DefaultChallenge(n)
		}
		t := probes.Target{Name: n, Challenge: c, ExpectTXT: f.expectTXT, KeyAuth: f.keyAuth}
		switch {
		case f.expectTXT != "" && c != reports.DNS01:
			return s, usagef("--expect-txt is the dns-01 TXT value; %s is validated with %s (give --challenge dns-01)", n, c)
		case f.token != "" && c == reports.DNS01:
			return s, usagef("--token is the http-01 token; %s is validated with dns-01 (--expect-txt is its value)", n)
		}
		if c == reports.HTTP01 {
			t.Token = f.token
		}
		s.Targets = append(s.Targets, t)
	}
	if len(f.vantages) > 0 {
		if s.Vantages, err = vantageFlags(f.vantages); err != nil {
			return s, err
		}
	}
	if s.Agents, err = parseAgentFlags(f.agents, f.agentCert, f.agentKey, f.agentCA, s.Vantages); err != nil {
		return s, err
	}
	if f.acmeDir == "" || f.acmeDir == "none" {
		if f.serveToken != "" || f.dnsProvider != "" {
			return s, usagef("--serve-token and --dns-provider need --acme-directory")
		}
		return s, nil
	}
	c := probes.DefaultCanary()
	c.Directory, c.CACert, c.AccountKey, c.AllowProduction = f.acmeDir, f.acmeCACert, f.acmeKey, f.allowProd
	c.ServeToken, c.DNSProvider = f.serveToken, f.dnsProvider
	c.Names = []string{}
	for _, t := range s.Targets {
		// Orders for the names the CA can validate with what was given.
		if t.Challenge == reports.HTTP01 || t.Challenge == reports.DNS01 && f.dnsProvider != "" {
			c.Names = append(c.Names, t.Name)
		}
	}
	s.Canary = &c
	return s, nil
}

func renderer(format string, verbose bool, w io.Writer) (func(*reports.Report) error, error) {
	switch format {
	case "text":
		opts := reports.TextOptions{Color: isTerminal(w) && os.Getenv("NO_COLOR") == "", Verbose: verbose}
		return func(r *reports.Report) error { return reports.RenderText(w, r, opts) }, nil
	case "json":
		return func(r *reports.Report) error { return reports.RenderJSON(w, r) }, nil
	case "markdown", "md":
		return func(r *reports.Report) error { return reports.RenderMarkdown(w, r) }, nil
	}
	return nil, usagef("-o %q: want text, json or markdown", format)
}

// progress shows a ticking status line on a terminal while a run takes
// longer than a second; off a terminal it prints nothing.
func progress(ctx context.Context, w io.Writer, names int) (stop func()) {
	if !isTerminal(w) {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		shown := false
		for {
			select {
			case <-done:
				if shown {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-ctx.Done():
				return
			case <-t.C:
				shown = true
				fmt.Fprintf(w, "\rchecking %s … %ds", plural(names, "name"), int(time.Since(start).Seconds()))
			}
		}
	}()
	return func() { close(done); <-finished }
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return strconv.Itoa(n) + " " + what + "s"
}
