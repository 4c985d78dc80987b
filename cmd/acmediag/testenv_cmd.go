package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/probes/run"
	"github.com/acmediag/acmediag/reports"
	"github.com/acmediag/acmediag/testenv"
	"github.com/acmediag/acmediag/testenv/pebble"
)

// newTestenvCmd runs the hermetic universe: the DNS world the tests, the
// benchmarks and the demo use, all on loopback.
func newTestenvCmd() *cobra.Command {
	uo := &universeOpts{acme: true}
	cmd := &cobra.Command{
		Use:   "testenv",
		Short: "Run the hermetic test universe on loopback (root, TLDs, authoritative servers, Unbound)",
		Long: `testenv starts the universe acmediag's tests run against — a root, TLD and
authoritative servers on their own 127.53.x.y addresses, DNSSEC-signed zones,
servers with faults, and real Unbound resolvers — and keeps it running until
interrupted. It prints the flags that point 'acmediag diagnose' at it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := uo.start(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer u.Close()
			w := cmd.OutOrStdout()
			if uo.acme {
				fmt.Fprintf(w, "Pebble (ACME) for the CA's own verdict: %s\n", strings.Join(u.ACMEArgs(), " "))
			}
			fmt.Fprintf(w, "universe running; try:\n  acmediag diagnose %s\n\nscenarios:\n", strings.Join(universeFlags(u), " ")+" NAME")
			for _, sc := range testenv.Catalogue() {
				fmt.Fprintf(w, "  %-28s %s\n", sc.Domain, sc.Description)
			}
			fmt.Fprintln(w, "\nCtrl-C stops it.")
			<-cmd.Context().Done()
			return nil
		},
	}
	cmd.PersistentFlags().IntVar(&uo.port, "port", 0, "DNS port of every server (default 53 as root, else 10053, plus the block; web ports follow it)")
	cmd.PersistentFlags().IntVar(&uo.block, "block", -1, fmt.Sprintf("loopback address block, 0-%d (block n: 127.(10+n), 127.(53+n) and 127.(80+n)); -1: the first one free, so a second universe (make test beside make demo) never collides", testenv.MaxBlock))
	cmd.PersistentFlags().BoolVar(&uo.acme, "acme", true, "also run Pebble, Let's Encrypt's ACME test server, validating against the universe")
	scenarios := &cobra.Command{
		Use:   "scenarios",
		Short: "Start the universe and diagnose every scenario in it once, printing each report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := uo.start(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer u.Close()
			return runScenarios(cmd, u)
		},
	}
	cmd.AddCommand(scenarios, newDemoCmd(uo))
	return cmd
}

// universeOpts are the testenv command's universe flags.
type universeOpts struct {
	port, block int // block -1: the first free one
	acme        bool
}

// start starts the universe in the chosen (or first free) address block.
func (uo *universeOpts) start(ctx context.Context, log *zap.Logger) (*testenv.Universe, error) {
	block := uo.block
	if block < 0 {
		b, err := testenv.FreeBlock(uo.port)
		if err != nil {
			return nil, err
		}
		block = b
	} else if block > testenv.MaxBlock {
		return nil, usagef("--block %d: want 0-%d, or -1 for the first free one", block, testenv.MaxBlock)
	}
	return testenv.Start(ctx, testenv.Options{Port: uo.port, Block: block, ACME: uo.acme, Logger: log})
}

// universeFlags are the diagnose flags common to every scenario.
func universeFlags(u *testenv.Universe) []string {
	var out []string
	for _, a := range u.DiagnoseArgs(testenv.Scenario{}) {
		if a != "" {
			out = append(out, a)
		}
	}
	return out
}

// runScenarios walks the whole catalogue once through diagnose.
func runScenarios(cmd *cobra.Command, u *testenv.Universe) error {
	w := cmd.OutOrStdout()
	scenarios := testenv.Catalogue()
	var failing, passing int
	for i, sc := range scenarios {
		if cmd.Context().Err() != nil {
			return cmd.Context().Err()
		}
		args := []string{"diagnose", "--log-level", "error"}
		if slices.Contains(sc.Args, "http-01") && !sc.Vantages && !sc.HTTPOnHTTPSPort {
			// The CA's own verdict next to acmediag's (Pebble validates
			// on the HTTP port only, not where these scenarios stage).
			args = append(args, u.ACMEArgs()...)
		}
		args = append(args, u.DiagnoseArgs(sc)...)
		fmt.Fprintf(w, "\n━━ %d/%d %s — %s\n$ acmediag %s\n\n", i+1, len(scenarios), sc.Name, sc.Description, shellJoin(args))
		code := execute(cmd.Context(), args, w, cmd.ErrOrStderr())
		if code == exitFindings {
			failing++
		} else {
			passing++
		}
	}
	fmt.Fprintf(w, "\nscenarios: %d, %d would pass, %d would fail at Let's Encrypt\n", len(scenarios), passing, failing)
	return nil
}

func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.ContainsAny(a, " *\"';") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

// ---- the daemon demo ----

// demoFlags are `acmediag testenv demo`'s own flags.
type demoFlags struct {
	seconds  int
	listen   string
	logLevel string
	cluster  bool
}

// Demo timing: probes often enough that a minute shows change, a progress
// line every progressEvery.
const (
	demoProbeInterval  = 5 * time.Second
	demoCanaryInterval = 20 * time.Second
	demoProgressEvery  = 10 * time.Second
	demoMaxSeconds     = 24 * 60 * 60
	// The dns-01 zone whose secondary lags in the demo, and the record.
	demoLagZone  = "dns01-ok.com."
	demoLagName  = "www.dns01-ok.com"
	demoLagOwner = "_acme-challenge.www.dns01-ok.com."
	// The dns-01 canary's name: the same zone, so the same lag.
	demoWildcardName = "*.dns01-ok.com"
)

func newDemoCmd(uo *universeOpts) *cobra.Command {
	f := &demoFlags{}
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the universe and the daemon (three vantages, canary orders at Pebble) for a while, then print every report",
		Long: `demo starts the whole universe on loopback — DNS root, TLDs and authoritative
servers, Unbound resolvers, web servers with faults, Pebble — and the acmediag
daemon inside this process with the universe's three remote perspectives
(us-east/ARIN, eu-west/RIPE, ap-south/APNIC) as vantages and canary orders at
Pebble. It watches seven names:

  healthy    an HTTP-01 name every vantage and the CA validate
  lag        a DNS-01 name whose TXT value reaches the secondary name server
             only after half the demo (RFC 2136 UPDATE, replication lag)
  wildcard   a DNS-01 canary: orders at Pebble publish their TXT record
             through lego's RFC 2136 provider and wait for the lagging
             secondary before answering the challenge
  partial    a name one vantage cannot reach: the quorum still holds
  failing    an HTTP-01 name nothing listens for: the canary order fails and
             the daemon ranks the root causes from every vantage's observations
  renewal    a name served a certificate Pebble issued: its renewal window
  at-risk    the CA asks for an early renewal (ARI) while the DNS-01 record
             the renewal needs is never published: renewal.at_risk

With --cluster (make demo CLUSTER=1) it also starts a real etcd and
kube-apiserver with cert-manager's CRDs, an ACME Issuer and three
Certificates renewing now, written as cert-manager's controller writes them:

  passes      web-dual-stack.acmeweb.com: the HTTP-01 Challenge goes valid
  stalls      www.txtprop.com: the DNS-01 Challenge waits for propagation
              (the TXT is at the primary only) and is stuck after 15s
  firewalled  the mpic-partial name: the CA's us-east perspective times out,
              the Challenge goes invalid with the CA's problem

and the daemon watches them; at the end it prints its RenewalDiagnosis Events
and each Certificate's timeline.

While it runs it prints the page, metrics and API URLs and a progress line
every 10 s; at the end (or on Ctrl-C) it prints the report of every name.`,
		Example: `  acmediag testenv demo --seconds 60
  make demo DEMO_SECONDS=120
  make demo CLUSTER=1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.seconds < 1 || f.seconds > demoMaxSeconds {
				return usagef("--seconds %d: want 1-%d", f.seconds, demoMaxSeconds)
			}
			return runDaemonDemo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), uo, f)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&f.seconds, "seconds", 60, "how long the daemon runs before the final reports")
	fl.StringVar(&f.listen, "listen", "127.0.0.1:0", "the daemon's HTTP address (port 0: a free port)")
	fl.StringVar(&f.logLevel, "log-level", "error", "the daemon's log level on stderr: debug, info, warn or error")
	fl.BoolVar(&f.cluster, "cluster", false, "also start etcd and kube-apiserver with cert-manager's CRDs: three Certificates renew (one passes, one stalls on propagation, one fails behind a firewall) while the daemon watches them (kube.enabled); prints the RenewalDiagnosis Events and each Certificate's timeline")
	return cmd
}

// demoName is one name the demo watches and why.
type demoName struct {
	role   string // healthy, lag, partial, failing
	target probes.Target
	what   string
	canary bool
}

// demoNames picks the demo's names from the universe's catalogue. The
// one-vantage failure is a firewall drop (mpic-partial) when nftables
// rules can be staged (root), else a DNS view only one perspective has
// (mpic-dns-partial).
func demoNames(lagValue string) ([]demoName, error) {
	byName := map[string]testenv.Scenario{}
	for _, sc := range testenv.Catalogue() {
		byName[sc.Name] = sc
	}
	web := func(role, scenario, what string) (demoName, error) {
		sc, ok := byName[scenario]
		if !ok {
			return demoName{}, fmt.Errorf("demo: the universe has no scenario %q", scenario)
		}
		return demoName{role: role, what: what, canary: true, target: probes.Target{Name: sc.Domain, Challenge: "http-01",
			Token: testenv.Token(scenario), KeyAuth: testenv.KeyAuth(scenario)}}, nil
	}
	partial := "mpic-partial"
	partialWhat := "a firewall drops us-east's packets to the web server; eu-west and ap-south pass, so the quorum holds"
	if _, ok := byName[partial]; !ok {
		partial = "mpic-dns-partial"
		partialWhat = "the name's servers answer SERVFAIL to ap-south's resolver only; the quorum holds"
	}
	var out []demoName
	for _, c := range []struct{ role, scenario, what string }{
		{"healthy", "web-ipv4-only", "HTTP-01 served on the only address: every vantage and the CA pass"},
		{"partial", partial, partialWhat},
		{"failing", "web-refused", "nothing listens on the name's address: every vantage and the CA fail"},
	} {
		n, err := web(c.role, c.scenario, c.what)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	lag := demoName{role: "lag", what: "DNS-01: the TXT value is UPDATEd at the primary; the secondary serves it only after the replication lag",
		target: probes.Target{Name: demoLagName, Challenge: "dns-01", ExpectTXT: lagValue}}
	wildcard := demoName{role: "wildcard", canary: true,
		what: "a wildcard needs DNS-01: the canary's order publishes its TXT record through RFC 2136 at the same primary\n" +
			"           and answers the challenge once the lagging secondary serves it too",
		target: probes.Target{Name: demoWildcardName, Challenge: "dns-01"}}
	out = slices.Insert(out, 1, lag, wildcard)
	// Renewal windows (the tls kind): a name served a Pebble certificate
	// whose path passes, and one whose CA asks for an early renewal (the
	// demo moves its ARI window to now, as during an incident) while the
	// DNS-01 record its renewal needs is never published.
	renewal, err := web("renewal", "tls-ok", "serves a certificate Pebble issued; HTTP-01 passes: its renewal window, weeks away")
	if err != nil {
		return nil, err
	}
	renewal.canary = false
	on := true
	renewal.target.TLS = &on
	risk, ok := byName["tls-ari"]
	if !ok {
		return nil, fmt.Errorf("demo: the universe has no scenario %q", "tls-ari")
	}
	atRisk := demoName{role: "at-risk", what: "the CA moved its renewal window (ARI) to now, and the DNS-01 record the renewal needs is never published",
		target: probes.Target{Name: risk.Domain, Challenge: "dns-01", ExpectTXT: testenv.Token("demo-never-published"), TLS: &on}}
	return append(out, renewal, atRisk), nil
}

// demoConfigYAML is the daemon's configuration for the universe: the
// same file a user would write, so the demo shows one.
func demoConfigYAML(u *testenv.Universe, listen string, names []demoName) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# acmediag daemon configuration written by `acmediag testenv demo`\nlisten: %q\nvantages:\n", listen)
	for _, v := range u.Vantages() {
		if v.Kind != testenv.VantageExternal {
			continue
		}
		fmt.Fprintf(&b, "  - {name: %s, source: %s, resolver: %q, rir: %s, region: %s, kind: %s}\n", v.Name, v.Addr, v.Resolver, v.RIR, v.Region, v.Kind)
	}
	fmt.Fprintf(&b, "dns:\n  roots: [%s]\n  resolvers: [%q]\n  trust_anchor: %s\n  dns_port: %d\n  allow_addresses: [127.0.0.0/8, \"::1/128\"]\n  query_timeout: 1s\n  resolver_timeout: 5s\n",
		strings.Join(u.Roots(), ", "), u.Resolver(), u.TrustAnchorFile(), u.Port())
	fmt.Fprintf(&b, "http: {http_port: %d, https_port: %d}\n", u.HTTPPort(), u.HTTPSPort())
	iv := demoProbeInterval.String()
	fmt.Fprintf(&b, "schedule:\n  intervals: {dns: %s, http-01: %s, tls-alpn-01: %s, tls: %s}\n  jitter: 0.1\n  concurrency: 16\n  timeout: 20s\n  max_backoff: 10s\n", iv, iv, iv, iv)
	// Most of the universe's names serve no HTTPS: the tls kind reads the
	// names that say tls: true.
	fmt.Fprintf(&b, "tls:\n  enabled: false\n  roots: %s\n", u.TLSRootsFile())
	if dir := u.ACMEDirectory(); dir != "" {
		fmt.Fprintf(&b, "  ari_directory: %s\n  ari_ca_cert: %s\n", dir, u.ACMECACert())
	}
	b.WriteString("store: {per_key: 64, max_bytes: 64MiB}\napi: {max_concurrent: 8, max_observations: 1000}\ntargets:\n")
	for _, n := range names {
		t := n.target
		fmt.Fprintf(&b, "  - name: %q\n    challenge: %s\n", t.Name, t.Challenge)
		if t.Token != "" {
			fmt.Fprintf(&b, "    token: %q\n    key_auth: %q\n", t.Token, t.KeyAuth)
		}
		if t.ExpectTXT != "" {
			fmt.Fprintf(&b, "    expect_txt: %q\n", t.ExpectTXT)
		}
		if t.TLS != nil {
			fmt.Fprintf(&b, "    tls: %v\n", *t.TLS)
		}
	}
	if dir := u.ACMEDirectory(); dir != "" {
		fmt.Fprintf(&b, "canary:\n  directory: %s\n  ca_cert: %s\n  account_key: %s\n  interval: %s\n  names:\n",
			dir, u.ACMECACert(), filepath.Join(u.WorkDir(), "pebble", "demo-account.key"), demoCanaryInterval)
		dns01 := false
		for _, n := range names {
			if n.canary {
				fmt.Fprintf(&b, "    - %q\n", n.target.Name)
				dns01 = dns01 || n.target.Challenge == reports.DNS01
			}
		}
		if dns01 {
			b.WriteString("  dns_provider: dnsupdate   # credentials from DNSUPDATE_* in the environment, as lego reads them\n")
		}
	}
	return b.String()
}

// runDaemonDemo is `acmediag testenv demo`: the universe, the daemon in
// this process, progress while it runs and every name's report at the end.
// Ctrl-C ends the run early and still prints the reports.
func runDaemonDemo(ctx context.Context, w, errw io.Writer, uo *universeOpts, f *demoFlags) error {
	logger, err := newLogger(errw, f.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = logger.Sync() }()
	listen, err := resolveListen(f.listen)
	if err != nil {
		return err
	}
	duration := time.Duration(f.seconds) * time.Second

	fmt.Fprintf(w, "starting the universe on loopback (DNS root, TLDs, authoritative servers, Unbound, web servers%s)…\n",
		map[bool]string{true: ", Pebble", false: ""}[uo.acme])
	started := time.Now()
	u, err := uo.start(ctx, logger)
	if err != nil {
		return err
	}
	defer u.Close()
	fmt.Fprintf(w, "universe ready in %s (address block %d, DNS port %d, HTTP %d, HTTPS %d)\n", time.Since(started).Round(time.Millisecond), u.Block(), u.Port(), u.HTTPPort(), u.HTTPSPort())

	lagValue := testenv.Token("demo-lag-" + time.Now().UTC().Format(time.RFC3339Nano))
	names, err := demoNames(lagValue)
	if err != nil {
		return err
	}
	// The secondary gets the UPDATE after half the demo: the first half
	// shows dns01.txt_not_propagated, the second half the value everywhere.
	lag := max(duration/2, 3*time.Second)
	if err := stageLag(ctx, u, lagValue, lag); err != nil {
		return fmt.Errorf("demo: staging the lagging secondary: %w", err)
	}
	lagStaged := time.Now()
	if issued := u.PebbleCertificate("tls-ari"); issued != nil {
		// An incident at the CA: it asks for every renewal now.
		now := time.Now()
		if err := u.SetRenewalInfo(ctx, issued.Leaf(), pebble.RenewalWindow(now.Add(-time.Hour), now.Add(48*time.Hour), "https://pebble.example/incident/7")); err != nil {
			return fmt.Errorf("demo: moving the CA's renewal window: %w", err)
		}
	}
	if uo.acme {
		if err := setDemoProviderEnv(u, lag); err != nil {
			return fmt.Errorf("demo: the canary's DNS provider: %w", err)
		}
	}

	var cluster *demoCluster
	if f.cluster {
		if cluster, err = startDemoCluster(ctx, w, u.WorkDir(), logger); err != nil {
			return err
		}
		defer cluster.Close()
	}

	cfgPath := filepath.Join(u.WorkDir(), "daemon.yaml")
	cfgText := demoConfigYAML(u, listen, names)
	if cluster != nil {
		cfgText += cluster.kubeYAML()
	}
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o644); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return fmt.Errorf("demo: the generated configuration: %w", err)
	}
	d, err := newDaemon(cfg, logger, nil)
	if err != nil {
		return fmt.Errorf("demo: the generated configuration: %w", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()
	base := "http://" + listen
	if err := waitHealthy(ctx, base, done); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nthe daemon runs for %s with 3 vantages (us-east/ARIN, eu-west/RIPE, ap-south/APNIC)%s; configuration: %s\n",
		duration, map[bool]string{true: " and canary orders at Pebble every " + demoCanaryInterval.String(), false: ""}[uo.acme], cfgPath)
	fmt.Fprintf(w, "  report page   %s/\n  metrics       %s/metrics\n  report API    %s/api/v1/report?name=NAME\n  observations  %s/api/v1/observations?name=NAME\n  health        %s/healthz  %s/readyz\n",
		base, base, base, base, base, base)
	fmt.Fprintf(w, "names:\n")
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %-36s %s\n", n.role, n.target.Name, n.what)
	}
	fmt.Fprintf(w, "(the secondary of %s gets the new TXT value %s after the start)\nCtrl-C ends the demo early and prints the reports.\n\n", demoLagZone, lag)
	// The cluster's renewals: their attempts end as the vantages show the
	// CA's verdict, by two thirds of the demo at the latest.
	var drive <-chan time.Time
	force := time.Now().Add(duration * 2 / 3)
	if cluster != nil {
		if err := cluster.create(ctx, w); err != nil {
			return fmt.Errorf("demo --cluster: %w", err)
		}
		fmt.Fprintln(w)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		drive = t.C
	}

	begin := time.Now()
	deadline := time.NewTimer(duration)
	defer deadline.Stop()
	tick := time.NewTicker(demoProgressEvery)
	defer tick.Stop()
	var runErr error
wait:
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(w, "interrupted: stopping early")
			break wait
		case <-deadline.C:
			break wait
		case runErr = <-done:
			done = nil
			break wait
		case <-tick.C:
			fmt.Fprintln(w, progressLine(d, names, time.Since(begin), duration))
		case <-drive:
			if err := cluster.step(ctx, w, d, time.Now().After(force)); err != nil {
				fmt.Fprintf(w, "cluster: %v\n", err)
			}
		}
	}
	var clusterOut bytes.Buffer
	if cluster != nil && runErr == nil {
		// Read while the daemon still serves its API; printed last.
		cluster.print(context.WithoutCancel(ctx), &clusterOut, base)
	}
	stop()
	if done != nil {
		runErr = <-done
	}
	if runErr != nil {
		return fmt.Errorf("demo: the daemon: %w", runErr)
	}
	fmt.Fprintln(w, progressLine(d, names, time.Since(begin), duration))
	printDemoReports(w, d, names, lagStaged)
	_, err = clusterOut.WriteTo(w)
	return err
}

// resolveListen turns port 0 into a free port now, so the URLs can be
// printed before the daemon listens.
func resolveListen(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", usagef("--listen %q: want HOST:PORT", listen)
	}
	if port != "0" {
		return listen, nil
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("demo: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// waitHealthy waits until the daemon answers /healthz.
func waitHealthy(ctx context.Context, base string, done <-chan error) error {
	client := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	limit := time.NewTimer(10 * time.Second)
	defer limit.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return fmt.Errorf("demo: the daemon stopped at start: %w", err)
		case <-limit.C:
			return errors.New("demo: the daemon did not answer /healthz within 10s")
		case <-tick.C:
		}
	}
}

// stageLag makes the zone's secondaries apply UPDATEs only after lag, then
// replaces the dns-01 TXT value at the primary (RFC 2136, TSIG). A short
// TTL: the vantages' resolvers must not pin the old value for the demo.
func stageLag(ctx context.Context, u *testenv.Universe, value string, lag time.Duration) error {
	if err := u.SetReplicationLag(demoLagZone, lag); err != nil {
		return err
	}
	return u.UpdateTXT(ctx, demoLagZone, demoLagOwner, value, 5)
}

// setDemoProviderEnv points lego's dnsupdate provider, which the canary's
// dns-01 orders publish through, at the lagging zone's primary with the
// universe's TSIG key: the environment a user would give the daemon. The
// provider waits for propagation a little longer than the lag, so the
// order's propagation step ends when the secondary has the value.
func setDemoProviderEnv(u *testenv.Universe, lag time.Duration) error {
	for k, v := range u.DNSUpdateEnv(demoLagZone, max(time.Minute, lag+15*time.Second)) {
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	return nil
}

// progressLine is one line of progress: runs so far and each name's
// verdict with its worst findings.
func progressLine(d *run.Daemon, names []demoName, elapsed, total time.Duration) string {
	runs, failed, byKind := d.Runs()
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var parts []string
	for _, k := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, byKind[k]))
	}
	line := fmt.Sprintf("[%3ds/%ds] %d probe runs (%s), %d failed", int(elapsed.Round(time.Second).Seconds()), int(total.Seconds()),
		runs, strings.Join(parts, ", "), failed)
	for _, n := range names {
		r := d.View(n.target.Name).Report
		codes := worstCodes(r, 2)
		line += fmt.Sprintf(" · %s %s", n.role, r.Verdict)
		if len(codes) > 0 {
			line += " (" + strings.Join(codes, ", ") + ")"
		}
	}
	return line
}

// worstCodes are the distinct codes of r's Warning-or-worse findings, worst first.
func worstCodes(r *reports.Report, n int) []string {
	fs := slices.Clone(r.Findings)
	slices.SortStableFunc(fs, func(a, b reports.Finding) int { return int(b.Severity) - int(a.Severity) })
	var out []string
	for _, f := range fs {
		if f.Severity < reports.Warning || slices.Contains(out, string(f.Code)) {
			continue
		}
		if len(out) == n {
			break
		}
		out = append(out, string(f.Code))
	}
	return out
}

// printDemoReports prints every name's report as diagnose would, the
// ranked causes of its last failed canary order, and for the lagging name
// when each vantage first saw the value everywhere.
func printDemoReports(w io.Writer, d *run.Daemon, names []demoName, lagStaged time.Time) {
	var pass, fail int
	for i, n := range names {
		v := d.View(n.target.Name)
		fmt.Fprintf(w, "\n━━ %d/%d %s: %s (%s)\n%s\n\n", i+1, len(names), n.role, n.target.Name, n.target.Challenge, n.what)
		if err := reports.RenderText(w, v.Report, reports.TextOptions{}); err != nil {
			fmt.Fprintf(w, "rendering the report: %v\n", err)
		}
		for _, o := range v.Orders {
			at, problem := o.Start.UTC().Format(time.TimeOnly), o.Trace.Problem
			switch {
			case o.OK && problem != nil:
				// A probe order serves no token: the CA reaching the server
				// and being told 404 is the pass.
				fmt.Fprintf(w, "last canary order at Pebble (%s): pass — the CA reached the server (%s)\n", at, problem.Detail)
			case o.OK:
				fmt.Fprintf(w, "last canary order at Pebble (%s): pass%s\n", at, propagationStep(o.Checks))
			case problem != nil:
				fmt.Fprintf(w, "last canary order at Pebble (%s): FAILED — %s: %s\n", at, problem.Type, problem.Detail)
			default:
				fmt.Fprintf(w, "last canary order at Pebble (%s): FAILED\n", at)
			}
		}
		for _, ca := range v.Correlations {
			fmt.Fprintf(w, "root causes of that failure, ranked from every vantage's observations around it:\n")
			if len(ca.Causes) == 0 {
				fmt.Fprintf(w, "  none: %s\n", reports.CorrelationDetail(nil))
			}
			for j, c := range ca.Causes {
				fmt.Fprintf(w, "  %d. %-32s score %.2f  seen from %s%s\n", j+1, c.Code, c.Score, strings.Join(c.Vantages, ", "),
					map[bool]string{true: "  (matches the CA's problem)", false: ""}[c.MatchesProblem])
				if len(c.Evidence) > 0 {
					fmt.Fprintf(w, "     %s\n", c.Evidence[0])
				}
			}
		}
		if n.role == "lag" {
			printPropagation(w, d, n.target.Name, lagStaged)
		}
		if v.Report.Verdict == reports.VerdictFail {
			fail++
		} else {
			pass++
		}
	}
	total, failed, _ := d.Runs()
	fmt.Fprintf(w, "\ndemo: %d names, %d would pass and %d would fail at Let's Encrypt now; %d probe runs, %d of them failed\n", len(names), pass, fail, total, failed)
}

// propagationStep says how long a dns-01 order waited for its TXT record
// to reach every authoritative server, or "" for an order without the wait.
func propagationStep(steps []reports.Check) string {
	for _, s := range steps {
		if s.Name == "acme.propagation" && s.Status == reports.CheckOK {
			return fmt.Sprintf(" — its TXT record reached every authoritative server after %.1fs", s.Duration.Seconds())
		}
	}
	return ""
}

// printPropagation says, per vantage, when its DNS probe first saw the
// expected TXT value on every authoritative server after the UPDATE.
func printPropagation(w io.Writer, d *run.Daemon, name string, staged time.Time) {
	lagging := func(o reports.Observation) bool {
		return slices.ContainsFunc(o.Findings, func(f reports.Finding) bool {
			switch f.Code {
			case reports.CodeDNS01TXTNotPropagated, reports.CodeDNS01TXTMissing, reports.CodeDNS01TXTWrongValue:
				return true
			}
			return false
		})
	}
	fmt.Fprintf(w, "propagation of the UPDATE (%s) as each vantage's DNS probe saw it:\n", staged.UTC().Format(time.TimeOnly))
	obs := d.Observations(name, staged)
	for _, v := range d.Plan().Vantages {
		var lagged int
		everywhere := time.Time{}
		for _, o := range obs {
			if o.Kind != probes.KindDNS || o.Vantage.Name != v.Name {
				continue
			}
			if lagging(o) {
				lagged++
				everywhere = time.Time{}
			} else if everywhere.IsZero() {
				everywhere = o.Start
			}
		}
		switch {
		case everywhere.IsZero():
			fmt.Fprintf(w, "  %-9s not everywhere yet (%d runs saw a server without it)\n", v.Name, lagged)
		default:
			fmt.Fprintf(w, "  %-9s everywhere %s after the UPDATE (%d earlier runs saw a server without it)\n", v.Name,
				everywhere.Sub(staged).Round(time.Second), lagged)
		}
	}
}
