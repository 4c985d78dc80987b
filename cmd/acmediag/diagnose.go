package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
	"github.com/go-acme/lego/v5/challenge/dns01"
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

  # CAA with an accounturi restriction, JSON for a pipeline
  acmediag diagnose --account-uri https://acme-v02.api.letsencrypt.org/acme/acct/123 -o json example.com`,
		Args: func(_ *cobra.Command, args []string) error {
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
	fl.StringVar(&f.dnsProvider, "dns-provider", "", "dns-01: publish the TXT record through this lego DNS provider (credentials from the environment, as lego reads them) and complete the order; one of "+strings.Join(canary.DNSProviders(), ", "))
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
	checker, err := f.checker()
	if err != nil {
		return err
	}
	checker.Logger = logger
	render, err := renderer(f.output, f.verbose, stdout)
	if err != nil {
		return err
	}
	vantages, err := parseVantages(f.vantages)
	if err != nil {
		return err
	}
	agents, err := parseAgents(f.agents, f.agentCert, f.agentKey, f.agentCA, f.timeout, vantages)
	if err != nil {
		return err
	}
	targets := make([]probes.Target, len(names))
	challenges := map[string]bool{}
	for i, n := range names {
		challenge, err := challengeFor(f.challenge, n)
		if err != nil {
			return err
		}
		challenges[challenge] = true
		if canon, err := dnscheck.NormalizeName(n); err == nil {
			n = canon.ASCII
		}
		targets[i] = probes.Target{Name: n, Challenge: challenge, ExpectTXT: f.expectTXT, Token: f.token, KeyAuth: f.keyAuth}
	}
	sessions := &probes.Sessions{Checker: *checker}
	kinds := []probes.Probe{&probes.DNSProbe{Sessions: sessions}}
	validator := f.validatorWithLogger(checker, logger)
	for _, c := range []string{dnscheck.HTTP01, dnscheck.TLSALPN01} {
		if challenges[c] {
			kinds = append(kinds, &probes.ChallengeProbe{Challenge: c, Sessions: sessions, Validator: validator})
		}
	}

	acme, err := f.acmeProbe(checker, logger)
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	stopProgress := progress(ctx, stderr, len(names))
	start := time.Now()
	var orders []probes.Observation
	ordersDone := make(chan struct{})
	go func() {
		defer close(ordersDone)
		if acme != nil {
			// The CA validates from its own perspectives: once per name, not per vantage.
			orders = probes.RunOnce(ctx, []probes.Probe{acme}, targets, []probes.Vantage{{}})
		}
	}()
	remote := make([][]probes.Observation, len(agents))
	var remoteWG sync.WaitGroup
	for i, a := range agents {
		var kinds []probes.Probe
		for _, k := range append([]string{"dns"}, slices.Sorted(maps.Keys(challenges))...) {
			if k != dnscheck.DNS01 {
				kinds = append(kinds, &probes.RemoteProbe{ProbeKind: k, Client: a.client})
			}
		}
		remoteWG.Go(func() { remote[i] = probes.RunOnce(ctx, kinds, targets, []probes.Vantage{a.vantage}) })
		vantages = append(vantages, a.vantage)
	}
	observations := probes.RunOnce(ctx, kinds, targets, vantages[:len(vantages)-len(agents)])
	remoteWG.Wait()
	for _, r := range remote {
		observations = append(observations, r...)
	}
	<-ordersDone
	stopProgress()
	for _, o := range orders {
		if out, ok := o.Trace.(canary.Outcome); ok && out.Err != nil {
			return usagef("--acme-directory %s: %v", f.acmeDir, out.Err)
		}
	}
	observations = append(observations, orders...)
	stats := sessions.Stats()
	logger.Debug("diagnose done", zap.Int64("dns_queries", stats.Queries), zap.Int64("dns_timeouts", stats.Timeouts),
		zap.Duration("duration", time.Since(start)))

	rep := assemble(targets, vantages, observations, time.Since(start))
	if ctx.Err() != nil {
		rep.Findings = append(rep.Findings, reports.New(reports.CodeDNSTimeout, rep.Names[0],
			fmt.Sprintf("the run hit its --timeout of %s before every check finished; results may be incomplete", f.timeout)))
		rep.Finalize()
	}
	if err := render(rep); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	if code := rep.ExitCode(); code != exitOK {
		return exitError{code}
	}
	return nil
}

// assemble hands every vantage's observations to the report.
func assemble(targets []probes.Target, vantages []probes.Vantage, obs []probes.Observation, d time.Duration) *reports.Report {
	names := make([]string, len(targets))
	for i, t := range targets {
		names[i] = t.Name
	}
	infos := make([]reports.VantageInfo, len(vantages))
	for i, v := range vantages {
		infos[i] = reports.VantageInfo{Name: v.Name, RIR: v.RIR, Region: v.Region, External: v.External()}
	}
	outcomes := make([]reports.Outcome, len(obs))
	for i, o := range obs {
		outcomes[i] = o.Outcome()
	}
	return reports.Assemble(names, targets[0].Challenge, infos, outcomes, d)
}

// acmeProbe builds the CA-order probe from the --acme-* flags, or nil.
func (f *diagnoseFlags) acmeProbe(checker *dnscheck.Checker, logger *zap.Logger) (*probes.ACMEProbe, error) {
	if f.acmeDir == "" || f.acmeDir == "none" {
		if f.serveToken != "" || f.dnsProvider != "" {
			return nil, usagef("--serve-token and --dns-provider need --acme-directory")
		}
		return nil, nil
	}
	u, err := url.Parse(f.acmeDir)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, usagef("--acme-directory %q: want an https URL of an ACME directory", f.acmeDir)
	}
	if canary.IsProduction(f.acmeDir) && !f.allowProd {
		return nil, usagef("--acme-directory %s is Let's Encrypt production: use the staging directory https://acme-staging-v02.api.letsencrypt.org/directory, or pass --allow-production", f.acmeDir)
	}
	if f.acmeCACert != "" {
		if _, err := os.Stat(f.acmeCACert); err != nil {
			return nil, usagef("--acme-ca-cert: %v", err)
		}
	}
	key := f.acmeKey
	if key == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, usagef("no --acme-account-key given and no user cache directory: %v", err)
		}
		key = filepath.Join(dir, "acmediag", "account-"+strings.ReplaceAll(u.Host, ":", "_")+".key")
		if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
			return nil, fmt.Errorf("account key directory: %w", err)
		}
	}
	p := &probes.ACMEProbe{ServeAddr: f.serveToken, Config: canary.Config{DirectoryURL: f.acmeDir,
		AllowProduction: f.allowProd, CACertFile: f.acmeCACert, AccountKeyFile: key, Logger: logger}}
	if f.dnsProvider != "" {
		if p.DNSProvider, err = canary.DNSProvider(f.dnsProvider); err != nil {
			return nil, usagef("--dns-provider %s: %v", f.dnsProvider, err)
		}
		// Before publishing, lego follows _acme-challenge CNAMEs through its
		// own process-wide client: make it ask our resolvers, not the
		// machine's. Then wait until every authoritative server serves the
		// value before answering the challenge.
		var ns []string
		for _, r := range checker.Resolvers {
			ns = append(ns, r.String())
		}
		dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: ns, Timeout: checker.QueryTimeout}))
		p.Config.DNS01Propagation = probes.AuthoritativePropagation(*checker)
	}
	return p, nil
}

// challengeFor applies the default: http-01, but dns-01 for a wildcard
// unless the user chose.
func challengeFor(flag, name string) (string, error) {
	switch flag {
	case "":
		if strings.HasPrefix(name, "*.") {
			return dnscheck.DNS01, nil
		}
		return dnscheck.HTTP01, nil
	case dnscheck.HTTP01, dnscheck.DNS01, dnscheck.TLSALPN01:
		return flag, nil
	}
	return "", usagef("--challenge %q: want http-01, dns-01 or tls-alpn-01", flag)
}

// checker is the shared check flags plus what only diagnose takes.
func (f *diagnoseFlags) checker() (*dnscheck.Checker, error) {
	c, err := f.checkFlags.checker()
	if err != nil {
		return nil, err
	}
	c.AccountURI = f.accountURI
	if f.timeout <= 0 {
		return nil, usagef("--timeout must be positive")
	}
	if (f.token == "") != (f.keyAuth == "") && f.challenge != dnscheck.TLSALPN01 {
		return nil, usagef("--token and --key-auth go together")
	}
	return c, nil
}

// parseAddrPort reads "ADDR", "ADDR:PORT" or "[V6]:PORT".
func parseAddrPort(s string, defPort uint16) (netip.AddrPort, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("want ADDR or ADDR:PORT")
	}
	return netip.AddrPortFrom(a, defPort), nil
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
