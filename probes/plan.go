package probes

import (
	"k8s.io/apimachinery/pkg/labels"

	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/miekg/dns"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/http01"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// Bounds on what settings may make acmediag hold.
const (
	MaxTargets  = 100_000
	MaxVantages = 64
	MaxListLen  = 1_000 // any other list (roots, resolvers, ...)
	minInterval = time.Second
	// minMemoryLimit: below this the GC would run almost continuously.
	minMemoryLimit = 32 << 20
	maxStoreBytes  = 64 << 30
	// canaryFirstWithin is the window the first canary orders (at start,
	// and for names a reload adds) are spread over: feedback on a
	// deployment comes in seconds, and two orders at a time still keep the
	// CA's rate limits.
	canaryFirstWithin = 5 * time.Second
	canaryConcurrency = 2
	canaryMinTimeout  = 2 * time.Minute
)

// Plan is what the settings say to do: the targets, the vantages (local
// ones, then agents), the probe kinds with the environment they run in,
// and the pacing. Entries lists every (target × vantage × kind). Build
// makes it; diagnose runs it once, the daemon forever.
type Plan struct {
	Settings Settings // as validated, defaults applied
	Targets  []Target // canonical names, challenges resolved
	Vantages []Vantage
	Env      *Env
	Registry *Registry
	Schedule ScheduleSettings
	Store    StoreLimits
	// Canary is nil without a canary.
	Canary      *CanaryPlan
	Propagation PropagationPlan
	TLS         *TLSPlan
	// Cluster is nil unless cluster mode is on.
	Cluster *ClusterPlan
	OneShot bool
	// ReprobeToken is the bearer token POST /api/v1/reprobe must carry
	// (api.reprobe.token_file's); "" none.
	ReprobeToken string
}

// CanaryPlan is the orders at the CA: for Names, every Interval.
type CanaryPlan struct {
	Config   canary.Config
	Interval time.Duration
	Names    map[string]bool
	// DNSProvider publishes dns-01 TXT records; nil: http-01 names only.
	DNSProvider challenge.Provider
	// ServeAddr (diagnose) serves the HTTP-01 token and completes the
	// order; Tokens is its server, started by the run.
	ServeAddr string
	Tokens    *canary.TokenServer
}

// PropagationPlan paces the propagation watches.
type PropagationPlan struct {
	Timeout, IssuerWait time.Duration
	Concurrency         int
}

// Entry is one (target × vantage × kind) of a plan: what one scheduled run
// does. Entries of the same target or vantage share it.
type Entry struct {
	Target  *Target
	Vantage *Vantage
	Kind    reports.Kind
	Lane    Lane
	Probe   Probe
}

// Remote runs probe kinds on an agent: the probes package knows it by this
// interface; the agent package implements it.
type Remote interface {
	Run(ctx context.Context, kind reports.Kind, t Target, v Vantage) reports.Observation
	Close()
}

// Env is what a plan's probes share: the checks' base configuration
// (every vantage overrides source address and resolvers), and what
// outlives one plan.
type Env struct {
	Checker   dnscheck.Checker
	Validator http01.Validator
	Shared    *Shared
	Logger    *zap.Logger
	Clock     Clock
	// oneShot: a plan run once shares its DNS sessions between its probes
	// (the challenge probes reuse the DNS probe's answers, a dead address
	// costs one timeout); a daemon's runs each start afresh, or a record
	// change would never be seen.
	oneShot *Sessions
}

// sessions hands out the DNS sessions of one run.
func (e *Env) sessions() *Sessions {
	if e.oneShot != nil {
		return e.oneShot
	}
	return &Sessions{Checker: e.Checker}
}

// Issue is one problem in the settings: the key it is about
// ("targets[3].challenge") and what is wrong with the value.
type Issue struct {
	Key string
	Msg string
}

// SettingsError lists every problem found in a set of settings, in the
// order they were found. The face that gave the settings (a YAML file, the
// flags) says where each key came from.
type SettingsError struct {
	Issues []Issue
}

func (e *SettingsError) Error() string {
	lines := make([]string, len(e.Issues))
	for i, is := range e.Issues {
		lines[i] = is.Key + ": " + is.Msg
	}
	return strings.Join(lines, "\n")
}

// BuildOptions is what Build needs besides the settings.
type BuildOptions struct {
	Registry *Registry // nil → DefaultKinds()
	// Remote builds the client of one agent vantage; nil refuses agents.
	Remote func(a AgentSettings, timeout time.Duration) (Remote, error)
	// Shared is what outlives the plan (a daemon's reloads keep it); nil →
	// NewShared().
	Shared *Shared
	Logger *zap.Logger
	Clock  Clock
	// OneShot plans are run once (diagnose): their probes share DNS
	// sessions, and a target name the CA would refuse is a finding of the
	// run (name.invalid), not a settings error.
	OneShot bool
	// ResolvConf is read for dns.resolvers when unset; "" → /etc/resolv.conf.
	ResolvConf string
	// TargetsOnRequest: the plan has no targets of its own, requests name
	// them (an agent).
	TargetsOnRequest bool
	// ClusterTargets are the names the cluster's Certificates hold
	// (probes/renewals), merged after the file's targets: a name the file
	// lists keeps the file's settings, and a name the CA would refuse is
	// left out with a warning (the cluster's, not the file's, mistake).
	ClusterTargets []Target
}

// builder carries one Build's state.
type builder struct {
	s      *Settings
	opts   BuildOptions
	issues []Issue
}

func (b *builder) errf(key, format string, args ...any) {
	b.issues = append(b.issues, Issue{Key: key, Msg: fmt.Sprintf(format, args...)})
}

var vantageNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Build validates every value of s and makes the plan. Its error, when the
// settings are wrong, is a *SettingsError naming each key; other errors are
// the environment's (an agent client that cannot be made).
func Build(s Settings, opts BuildOptions) (*Plan, error) {
	if opts.Registry == nil {
		opts.Registry = DefaultKinds()
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.Clock == nil {
		opts.Clock = RealClock()
	}
	if opts.Shared == nil {
		opts.Shared = NewShared()
	}
	b := &builder{s: &s, opts: opts}
	p := &Plan{Settings: s, Registry: opts.Registry, OneShot: opts.OneShot}
	if _, port, err := net.SplitHostPort(s.Listen); err != nil {
		b.errf("listen", "%q is not HOST:PORT (such as :9464 or 127.0.0.1:9464)", s.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		b.errf("listen", "%q: port %q is not 0-65535", s.Listen, port)
	}
	p.Vantages = b.vantages()
	checker := b.checker()
	checker.Logger = opts.Logger.Named("dnscheck")
	checker.UDP = opts.Shared.UDP
	httpPort := b.port("http.http_port", s.HTTP.HTTPPort)
	httpsPort := b.port("http.https_port", s.HTTP.HTTPSPort)
	p.Env = &Env{Checker: checker, Shared: opts.Shared, Logger: opts.Logger, Clock: opts.Clock,
		Validator: http01.Validator{HTTPPort: httpPort, HTTPSPort: httpsPort, Allow: checker.Allow, Logger: opts.Logger.Named("http01")}}
	if opts.OneShot {
		p.Env.oneShot = &Sessions{Checker: checker}
	}
	p.Targets = b.targets()
	p.Schedule = b.schedule()
	p.Vantages = append(p.Vantages, b.agents(len(p.Vantages), time.Duration(s.Schedule.Timeout))...)
	if s.Store.PerKey < 1 || s.Store.PerKey > 10_000 {
		b.errf("store.per_key", "%d: want 1-10000 observations per (name, vantage, kind)", s.Store.PerKey)
	}
	switch {
	case s.Store.MaxBytes < 1<<20:
		b.errf("store.max_bytes", "%d bytes: want at least 1MiB", s.Store.MaxBytes)
	case s.Store.MaxBytes > maxStoreBytes:
		b.errf("store.max_bytes", "%d bytes is too large: want at most 64GiB", s.Store.MaxBytes)
	}
	p.Store = StoreLimits{PerKey: s.Store.PerKey, MaxBytes: int64(s.Store.MaxBytes)}
	if s.API.MaxConcurrent < 1 || s.API.MaxConcurrent > 10_000 {
		b.errf("api.max_concurrent", "%d: want 1-10000", s.API.MaxConcurrent)
	}
	if s.API.MaxObservations < 1 || s.API.MaxObservations > 100_000 {
		b.errf("api.max_observations", "%d: want 1-100000", s.API.MaxObservations)
	}
	p.ReprobeToken = b.reprobeToken(s.API.Reprobe)
	p.Propagation = PropagationPlan{Timeout: time.Duration(s.Propagation.Timeout), IssuerWait: time.Duration(s.Propagation.IssuerWait),
		Concurrency: s.Propagation.Concurrency}
	if p.Propagation.Timeout < time.Second || p.Propagation.Timeout > 24*time.Hour {
		b.errf("propagation.timeout", "%s: want 1s to 24h", p.Propagation.Timeout)
	}
	if p.Propagation.IssuerWait < 0 {
		b.errf("propagation.issuer_wait", "%s: want 0 (no propagation_slow finding) or a positive duration", p.Propagation.IssuerWait)
	}
	if p.Propagation.Concurrency < 1 || p.Propagation.Concurrency > 1000 {
		b.errf("propagation.concurrency", "%d: want 1-1000 watches at once", p.Propagation.Concurrency)
	}
	if s.MemoryLimit != 0 && s.MemoryLimit < minMemoryLimit {
		b.errf("memory_limit", "%d bytes: want 0 (the Go runtime's own) or at least 32MiB", s.MemoryLimit)
	}
	if s.Canary != nil {
		p.Canary = b.canary(p.Targets)
	}
	p.TLS = b.tls()
	b.kube()
	p.Cluster = b.cluster()
	if len(b.issues) > 0 {
		for _, v := range p.Vantages {
			if v.Remote != nil {
				v.Remote.Close()
			}
		}
		return nil, &SettingsError{Issues: b.issues}
	}
	return p, nil
}

func (b *builder) port(key string, v int) int {
	if v < 1 || v > 65535 {
		b.errf(key, "%d: want 1-65535", v)
	}
	return v
}

func (b *builder) vantages() []Vantage {
	vs := b.s.Vantages
	if len(vs) == 0 {
		b.errf("vantages", "the list is empty: leave the key out for one vantage \"local\"")
		return nil
	}
	if len(vs) > MaxVantages {
		b.errf("vantages", "%d vantages; at most %d are allowed", len(vs), MaxVantages)
		return nil
	}
	out := make([]Vantage, 0, len(vs))
	first := map[string]int{}
	for i, vc := range vs {
		key := fmt.Sprintf("vantages[%d]", i)
		v := Vantage{Vantage: reports.Vantage{Name: vc.Name, Region: vc.Region}}
		b.vantageName(key, vc.Name, "vantage", func(j int) string { return fmt.Sprintf("vantages[%d]", j) }, first, i)
		if vc.Source != "" {
			a, err := netip.ParseAddr(vc.Source)
			switch {
			case err != nil:
				b.errf(key+".source", "%q is not an IP address", truncate(vc.Source, 60))
			case !isLocalAddr(a):
				b.errf(key+".source", "%s is not an address of this machine: packets cannot leave from it", a)
			}
			v.SourceAddr = a
		}
		if vc.Resolver != "" {
			ap, err := ParseAddrPort(vc.Resolver, 53)
			if err != nil {
				b.errf(key+".resolver", "%q: %v", truncate(vc.Resolver, 60), err)
			}
			v.Resolvers = []netip.AddrPort{ap}
		}
		v.RIR = b.rir(key+".rir", vc.RIR)
		v.Kind = b.vantageKind(key+".kind", vc.Kind)
		out = append(out, v)
	}
	return out
}

// vantageName checks a vantage's or an agent's name: present, well formed,
// not taken.
func (b *builder) vantageName(key, name, what string, other func(int) string, first map[string]int, i int) {
	switch j, dup := first[name]; {
	case name == "":
		b.errf(key+".name", "missing: every %s needs a name", what)
	case !vantageNameRE.MatchString(name):
		b.errf(key+".name", "%q: want letters, digits, '.', '_' or '-' (at most 63)", truncate(name, 70))
	case dup:
		b.errf(key+".name", "%q is already the name of %s", name, other(j))
	default:
		first[name] = i
	}
}

func (b *builder) rir(key, v string) string {
	if v == "" {
		return ""
	}
	rir := strings.ToUpper(v)
	if !slices.Contains(reports.RIRs, rir) {
		b.errf(key, "%q is not one of %s", truncate(v, 40), strings.Join(reports.RIRs, ", "))
	}
	return rir
}

func (b *builder) vantageKind(key, v string) reports.VantageKind {
	k, err := reports.ParseVantageKind(v)
	if err != nil {
		b.errf(key, "%q is not external or cluster", truncate(v, 40))
	}
	return k
}

// isLocalAddr reports whether a is an address of this machine (loopback
// counts: 127.0.0.0/8 is all local on Linux).
func isLocalAddr(a netip.Addr) bool {
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // cannot tell: let the first packet say
	}
	for _, ia := range addrs {
		if p, err := netip.ParsePrefix(ia.String()); err == nil && p.Addr().Unmap() == a.Unmap() {
			return true
		}
	}
	return false
}

// agents validates the agents: each is a vantage whose probes run
// remotely, through a client made by BuildOptions.Remote.
func (b *builder) agents(local int, timeout time.Duration) []Vantage {
	as := b.s.Agents
	if len(as) == 0 {
		return nil
	}
	if len(as)+local > MaxVantages {
		b.errf("agents", "%d vantages and %d agents; at most %d in all are allowed", local, len(as), MaxVantages)
		return nil
	}
	taken := map[string]int{}
	for i, v := range b.s.Vantages {
		taken[v.Name] = -1 - i
	}
	var out []Vantage
	for i, ac := range as {
		key := fmt.Sprintf("agents[%d]", i)
		v := Vantage{Vantage: reports.Vantage{Name: ac.Name, Region: ac.Region}}
		b.vantageName(key, ac.Name, "agent", func(j int) string {
			if j < 0 {
				return fmt.Sprintf("vantages[%d]", -1-j)
			}
			return fmt.Sprintf("agents[%d]", j)
		}, taken, i)
		v.RIR = b.rir(key+".rir", ac.RIR)
		v.Kind = b.vantageKind(key+".kind", ac.Kind)
		missing := false
		for _, f := range []struct{ key, v string }{{"url", ac.URL}, {"client_cert", ac.ClientCert}, {"client_key", ac.ClientKey}, {"ca_file", ac.CAFile}} {
			if f.v == "" {
				b.errf(key+"."+f.key, "missing: an agent is reached over mutual TLS at an https URL, with a client certificate and key, trusting only ca_file")
				missing = true
			}
		}
		if !missing {
			if b.opts.Remote == nil {
				b.errf(key, "agents are not available here")
			} else if r, err := b.opts.Remote(ac, timeout+5*time.Second); err != nil {
				var is *Issue
				if errors.As(err, &is) {
					b.errf(key+"."+is.Key, "%s", is.Msg)
				} else {
					b.errf(key, "%v", err)
				}
			} else {
				v.Remote = r
			}
		}
		out = append(out, v)
	}
	return out
}

// Error makes an Issue usable as an error (a Remote factory's answer
// names the agent key that is wrong).
func (is *Issue) Error() string { return is.Key + ": " + is.Msg }

// checker validates the dns section into the DNS checks' configuration.
func (b *builder) checker() dnscheck.Checker {
	d := &b.s.DNS
	c := dnscheck.Checker{CAIdentities: d.CAIdentities, AccountURI: d.AccountURI,
		QueryTimeout: time.Duration(d.QueryTimeout), ResolverTimeout: time.Duration(d.ResolverTimeout)}
	if d.DNSPort < 1 || d.DNSPort > 65535 {
		b.errf("dns.dns_port", "%d: want 1-65535", d.DNSPort)
	} else {
		c.Port = uint16(d.DNSPort)
	}
	if len(d.Roots) == 0 {
		b.errf("dns.roots", "the list is empty: leave the key out for the IANA root servers")
	}
	for i, s := range d.Roots {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			b.errf(fmt.Sprintf("dns.roots[%d]", i), "%q is not an IP address", truncate(s, 60))
		}
		c.Roots = append(c.Roots, a)
	}
	resolvers := d.Resolvers
	switch {
	case resolvers == nil:
		path := b.opts.ResolvConf
		if path == "" {
			path = "/etc/resolv.conf"
		}
		rc, err := dns.ClientConfigFromFile(path)
		if err != nil {
			b.errf("dns.resolvers", "not set, and %s is unreadable: %v", path, err)
		} else {
			resolvers = rc.Servers
		}
	case len(resolvers) == 0:
		// An empty value must not quietly become the machine's resolvers:
		// in a test universe those would be asked about names outside it.
		b.errf("dns.resolvers", "the list is empty: leave the key out for /etc/resolv.conf's servers")
	}
	for i, s := range resolvers {
		ap, err := ParseAddrPort(s, 53)
		if err != nil {
			b.errf(fmt.Sprintf("dns.resolvers[%d]", i), "%q: %v", truncate(s, 60), err)
		}
		c.Resolvers = append(c.Resolvers, ap)
	}
	for i, s := range d.AllowAddresses {
		s = strings.TrimSpace(s)
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				b.errf(fmt.Sprintf("dns.allow_addresses[%d]", i), "%q is not a CIDR prefix such as 127.0.0.0/8", truncate(s, 60))
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.Allow = append(c.Allow, p.Masked())
	}
	if c.QueryTimeout <= 0 {
		b.errf("dns.query_timeout", "%s: want a positive duration", c.QueryTimeout)
	}
	if c.ResolverTimeout <= 0 {
		b.errf("dns.resolver_timeout", "%s: want a positive duration", c.ResolverTimeout)
	}
	if len(d.CAIdentities) == 0 {
		b.errf("dns.ca_identities", "the list is empty: leave the key out for letsencrypt.org")
	}
	for i, id := range d.CAIdentities {
		if id == "" || strings.ContainsAny(id, " ;\t") {
			b.errf(fmt.Sprintf("dns.ca_identities[%d]", i), "%q is not a CAA issuer domain such as letsencrypt.org", truncate(id, 60))
		}
	}
	if d.AccountURI != "" {
		if u, err := url.Parse(d.AccountURI); err != nil || u.Scheme != "https" || u.Host == "" {
			b.errf("dns.account_uri", "%q is not an ACME account URL such as https://acme-v02.api.letsencrypt.org/acme/acct/123", truncate(d.AccountURI, 80))
		}
	}
	if d.TrustAnchor == "" {
		c.TrustAnchors = dnscheck.DefaultTrustAnchors()
	} else {
		f, err := os.Open(d.TrustAnchor)
		if err != nil {
			b.errf("dns.trust_anchor", "%v", err)
		} else {
			c.TrustAnchors, err = dnscheck.ParseTrustAnchors(io.LimitReader(f, 1<<20), d.TrustAnchor)
			f.Close()
			if err != nil {
				b.errf("dns.trust_anchor", "%v", err)
			}
		}
	}
	return c
}

// ParseAddrPort reads "ADDR", "ADDR:PORT" or "[V6]:PORT".
func ParseAddrPort(s string, defPort uint16) (netip.AddrPort, error) {
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

func (b *builder) targets() []Target {
	ts := b.s.Targets
	if len(ts) == 0 && len(b.opts.ClusterTargets) == 0 {
		if !b.opts.TargetsOnRequest && !b.s.Kube.Enabled {
			b.errf("targets", "at least one target is required")
		}
		return nil
	}
	if len(ts) > MaxTargets {
		b.errf("targets", "%d entries; at most %d are allowed", len(ts), MaxTargets)
		return nil
	}
	out := make([]Target, 0, len(ts))
	first := make(map[string]int, len(ts))
	for i, t := range ts {
		key := fmt.Sprintf("targets[%d]", i)
		given := t.Name
		if t.Name == "" {
			b.errf(key+".name", "missing: every target needs a name")
		} else if n, err := dnscheck.NormalizeName(t.Name); err != nil && b.opts.OneShot {
			// The user asked about this name: the DNS probe says why the CA
			// refuses it (name.invalid), as for any other answer.
		} else if err != nil {
			var ne *dnscheck.NameError
			reason := err.Error()
			if errors.As(err, &ne) {
				reason = ne.Reason
				if ne.Hint != "" {
					reason += " (" + ne.Hint + ")"
				}
			}
			b.errf(key+".name", "%q: %s", truncate(t.Name, 80), reason)
		} else {
			t.Name = n.ASCII
			if j, dup := first[t.Name]; dup {
				b.errf(key+".name", "%q is already the name of targets[%d]", given, j)
			}
			first[t.Name] = i
		}
		if t.Challenge == "" {
			t.Challenge = reports.DefaultChallenge(t.Name)
		}
		switch t.Challenge {
		case reports.HTTP01, reports.TLSALPN01:
			// diagnose's user asked: the DNS probe says so as a finding.
			if strings.HasPrefix(given, "*.") && !b.opts.OneShot {
				b.errf(key+".challenge", "%s: a wildcard can only be validated with dns-01", t.Challenge)
			}
		case reports.DNS01:
		default:
			b.errf(key+".challenge", "%q is not http-01, dns-01 or tls-alpn-01", truncate(string(t.Challenge), 40))
		}
		if t.ExpectTXT != "" && t.Challenge != reports.DNS01 {
			b.errf(key+".expect_txt", "only a dns-01 target has a TXT value (this one is %s)", t.Challenge)
		}
		if t.Token != "" && t.Challenge != reports.HTTP01 {
			b.errf(key+".token", "only an http-01 target fetches a token (this one is %s)", t.Challenge)
		} else if t.Challenge == reports.HTTP01 && (t.Token == "") != (t.KeyAuth == "") {
			b.errf(key, "token and key_auth go together")
		}
		if t.KeyAuth != "" && t.Challenge == reports.DNS01 {
			b.errf(key+".key_auth", "a dns-01 target has expect_txt, not key_auth")
		}
		out = append(out, t)
	}
	return b.clusterTargets(out, first)
}

// clusterTargets appends the cluster's names that the file does not list.
func (b *builder) clusterTargets(out []Target, listed map[string]int) []Target {
	seen := make(map[string]bool, len(b.opts.ClusterTargets))
	for _, t := range b.opts.ClusterTargets {
		n, err := dnscheck.NormalizeName(t.Name)
		if err != nil {
			b.opts.Logger.Warn("a Certificate's name is left out: the CA would refuse it", zap.String("name", truncate(t.Name, 80)), zap.Error(err))
			continue
		}
		t.Name = n.ASCII
		if _, ok := listed[t.Name]; ok || seen[t.Name] {
			continue
		}
		seen[t.Name] = true
		if t.Challenge == "" || strings.HasPrefix(t.Name, "*.") {
			t.Challenge = reports.DefaultChallenge(t.Name)
		}
		out = append(out, t)
	}
	if len(out) > MaxTargets {
		b.errf("targets", "%d names with the cluster's; at most %d are allowed", len(out), MaxTargets)
		return out[:MaxTargets]
	}
	return out
}

func (b *builder) schedule() ScheduleSettings {
	s := b.s.Schedule
	out := s
	out.Intervals = map[string]Duration{}
	kinds := b.opts.Registry.Names(LaneProbes)
	names := make([]string, len(kinds))
	for i, k := range kinds {
		names[i] = string(k)
	}
	keys := make([]string, 0, len(s.Intervals))
	for k := range s.Intervals {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		key := "schedule.intervals." + k
		d := time.Duration(s.Intervals[k])
		if !slices.Contains(names, k) {
			b.errf(key, "unknown probe kind (want %s)", strings.Join(names, ", "))
			continue
		}
		if d < minInterval {
			b.errf(key, "%s: want at least %s", d, minInterval)
		}
		out.Intervals[k] = Duration(d)
	}
	if s.Jitter < 0 || s.Jitter >= 1 || math.IsNaN(s.Jitter) {
		b.errf("schedule.jitter", "%v: want a fraction of the interval, 0 or more and below 1", s.Jitter)
	}
	if s.Concurrency < 1 || s.Concurrency > 10_000 {
		b.errf("schedule.concurrency", "%d: want 1-10000 runs at once", s.Concurrency)
	}
	if s.Timeout <= 0 {
		b.errf("schedule.timeout", "%s: want a positive duration", time.Duration(s.Timeout))
	}
	if s.MaxBackoff <= 0 {
		b.errf("schedule.max_backoff", "%s: want a positive duration", time.Duration(s.MaxBackoff))
	}
	return out
}

func (b *builder) canary(targets []Target) *CanaryPlan {
	c := b.s.Canary
	out := &CanaryPlan{Interval: time.Duration(c.Interval), Names: map[string]bool{}, ServeAddr: c.ServeToken}
	u, err := url.Parse(c.Directory)
	switch {
	case c.Directory == "":
		b.errf("canary.directory", "missing: the canary needs an ACME directory URL (a staging one)")
	case err != nil || u.Scheme != "https" || u.Host == "":
		b.errf("canary.directory", "%q is not an https URL of an ACME directory", truncate(c.Directory, 80))
	case canary.IsProduction(c.Directory) && !c.AllowProduction:
		b.errf("canary.directory", "%s is Let's Encrypt production: use https://acme-staging-v02.api.letsencrypt.org/directory, or set canary.allow_production: true", c.Directory)
	}
	if c.CACert != "" {
		if _, err := os.Stat(c.CACert); err != nil {
			b.errf("canary.ca_cert", "%v", err)
		}
	}
	key := c.AccountKey
	if key == "" && err == nil && u != nil && u.Host != "" {
		// One account per directory, kept across restarts: a new account per
		// order would spend the CA's account rate limit.
		if dir, derr := os.UserCacheDir(); derr == nil {
			key = filepath.Join(dir, "acmediag", "account-"+strings.ReplaceAll(u.Host, ":", "_")+".key")
		}
	}
	if key != "" {
		if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
			b.errf("canary.account_key", "%v", err)
		}
	}
	if out.Interval < time.Second {
		b.errf("canary.interval", "%s: want at least 1s", out.Interval)
	}
	if c.DNSProvider != "" {
		// Built now, from the environment as lego reads it, so that a
		// missing credential is a configuration error, not a failed order
		// an hour later.
		p, perr := canary.DNSProvider(c.DNSProvider)
		if perr != nil {
			b.errf("canary.dns_provider", "%s", strings.TrimPrefix(perr.Error(), "canary: "))
		}
		out.DNSProvider = p
	}
	byName := map[string]Target{}
	for _, t := range targets {
		byName[t.Name] = t
	}
	names := c.Names
	if names == nil {
		for _, t := range targets {
			if t.Challenge == reports.HTTP01 || t.Challenge == reports.DNS01 && c.DNSProvider != "" {
				names = append(names, t.Name)
			}
		}
	}
	for i, n := range names {
		key := fmt.Sprintf("canary.names[%d]", i)
		t, ok := byName[strings.ToLower(n)]
		switch {
		case !ok:
			b.errf(key, "%q is not one of the targets", truncate(n, 80))
		case t.Challenge == reports.DNS01 && c.DNSProvider == "":
			b.errf(key, "%q is a dns-01 target: set canary.dns_provider to the lego DNS provider that publishes its TXT records (one of %s)", n, strings.Join(canary.DNSProviders(), ", "))
		case t.Challenge != reports.HTTP01 && t.Challenge != reports.DNS01:
			b.errf(key, "%q is a %s target; canary orders are placed for http-01 targets, and dns-01 targets with canary.dns_provider", n, t.Challenge)
		default:
			out.Names[t.Name] = true
		}
	}
	out.Config = canary.Config{DirectoryURL: c.Directory, AllowProduction: c.AllowProduction, CACertFile: c.CACert, AccountKeyFile: key,
		Budget: b.opts.Shared.Budget, Logger: b.opts.Logger.Named("canary")}
	return out
}

// Entries lists every run of the plan: for each target, each kind that
// applies, once (Once kinds) or from each vantage (an agent vantage only
// for the kinds agents run, through its Remote).
func (p *Plan) Entries() []Entry {
	kinds := p.Registry.Kinds()
	probes := make([]Probe, len(kinds))
	for i, k := range kinds {
		probes[i] = k.New(p)
	}
	var out []Entry
	var none Vantage
	for ti := range p.Targets {
		t := &p.Targets[ti]
		for i, k := range kinds {
			if k.Applies != nil && !k.Applies(p, *t) {
				continue
			}
			if k.Once {
				out = append(out, Entry{Target: t, Vantage: &none, Kind: k.Kind, Lane: k.Lane, Probe: probes[i]})
				continue
			}
			for vi := range p.Vantages {
				v := &p.Vantages[vi]
				switch {
				case v.Remote == nil:
					out = append(out, Entry{Target: t, Vantage: v, Kind: k.Kind, Lane: k.Lane, Probe: probes[i]})
				case k.Remote:
					out = append(out, Entry{Target: t, Vantage: v, Kind: k.Kind, Lane: k.Lane, Probe: remoteProbe{kind: k.Kind, remote: v.Remote}})
				}
			}
		}
	}
	return out
}

// remoteProbe runs a kind on an agent.
type remoteProbe struct {
	kind   reports.Kind
	remote Remote
}

func (r remoteProbe) Run(ctx context.Context, t Target, v Vantage) reports.Observation {
	if r.kind == KindTLS {
		// The plan decided the name's certificate is read (tls.enabled or
		// the target's own key); the agent's settings need not agree.
		on := true
		t.TLS = &on
	}
	return r.remote.Run(ctx, r.kind, t, v)
}

// oneShotSpread is the window a one-shot plan's runs start in: at once.
const oneShotSpread = time.Nanosecond

// LaneSchedule is how the runs of one lane are paced under the plan.
func (p *Plan) LaneSchedule(lane Lane) Schedule {
	s := p.Settings.Schedule
	sch := Schedule{Interval: map[reports.Kind]time.Duration{}, Jitter: s.Jitter, Concurrency: s.Concurrency,
		Timeout: time.Duration(s.Timeout), MaxBackoff: time.Duration(s.MaxBackoff)}
	if sch.Jitter == 0 {
		sch.Jitter = -1 // the scheduler reads 0 as "default"; negative means none
	}
	for _, k := range p.Registry.Kinds() {
		if k.Lane != lane {
			continue
		}
		switch {
		case k.Interval != nil:
			sch.Interval[k.Kind] = k.Interval(p)
		case p.Schedule.Intervals[string(k.Kind)] > 0:
			sch.Interval[k.Kind] = time.Duration(p.Schedule.Intervals[string(k.Kind)])
		default:
			sch.Interval[k.Kind] = DefaultInterval
		}
		if k.Next != nil {
			next := k.Next
			if sch.Next == nil {
				sch.Next = map[reports.Kind]func(reports.Observation) (time.Duration, bool){}
			}
			sch.Next[k.Kind] = func(o reports.Observation) (time.Duration, bool) { return next(p, o) }
		}
	}
	switch lane {
	case LaneCanary:
		sch.Concurrency = canaryConcurrency // orders are slow and rate-limited: a few at a time
		sch.FirstWithin = canaryFirstWithin
		sch.Timeout = max(sch.Timeout, canaryMinTimeout)
	case LanePropagation:
		sch.Concurrency = p.Propagation.Concurrency
	}
	if p.OneShot {
		// Everything at once, each run allowed the whole run's time.
		sch.FirstWithin = oneShotSpread
		sch.Concurrency = max(sch.Concurrency, maxOneShotRuns)
	}
	return sch
}

// maxOneShotRuns bounds the runs of a one-shot plan in flight at once.
const maxOneShotRuns = 64

// Shared is what outlives one plan: the daemon keeps it across reloads.
type Shared struct {
	// UDP sockets every DNS run shares.
	UDP *dnscheck.UDPPool
	// Budget is the canary account's rate budget.
	Budget *canary.Budget
	// records serializes dns-01 orders that share a TXT record.
	records recordLocks
	// Watches are the propagation watches: which value each name should
	// serve, and when each server address first did.
	Watches *Watches
	// ARI caches the CA's renewal windows (and its Retry-After); tls
	// holds a tlscheck.Checker per vantage.
	ARI *canary.ARICache
	tls tlsCheckers
}

// NewShared returns fresh long-lived state.
func NewShared() *Shared {
	return &Shared{UDP: dnscheck.NewUDPPool(), Budget: canary.NewBudget(canary.Limits{}), Watches: NewWatches(), ARI: &canary.ARICache{}}
}

// Applies says whether kind has anything to check for t under the plan.
func (p *Plan) Applies(kind reports.Kind, t Target) bool {
	k, ok := p.Registry.Lookup(kind)
	return ok && (k.Applies == nil || k.Applies(p, t))
}

// RunKind runs one kind for one target from v now, outside any schedule
// (an agent answering a request): a panic becomes a probe.internal_error
// observation.
func (p *Plan) RunKind(ctx context.Context, kind reports.Kind, t Target, v Vantage) (obs reports.Observation) {
	k, ok := p.Registry.Lookup(kind)
	if !ok {
		return PanicObservation(kind, t, v, "unknown probe kind")
	}
	defer func() {
		if rec := recover(); rec != nil {
			p.Env.Logger.Error("probe panicked", zap.String("kind", string(kind)), zap.String("name", t.Name), zapVantage(v),
				zap.Any("panic", rec), zap.Stack("stack"))
			obs = PanicObservation(kind, t, v, rec)
		}
	}()
	return k.New(p).Run(ctx, t, v)
}

// Stats adds up the DNS work of a one-shot plan's sessions (zero for a
// plan whose runs each start afresh).
func (e *Env) Stats() dnscheck.Stats {
	if e.oneShot == nil {
		return dnscheck.Stats{}
	}
	return e.oneShot.Stats()
}

// DNSProviders lists the lego DNS providers canary.dns_provider accepts.
func DNSProviders() []string { return canary.DNSProviders() }

// maxTokenFile bounds api.reprobe.token_file: a token, not a document.
const maxTokenFile = 4 << 10

// reprobeToken checks api.reprobe and reads its token file.
func (b *builder) reprobeToken(r ReprobeSettings) string {
	if math.IsNaN(r.Rate) || r.Rate <= 0 || r.Rate > 1000 {
		b.errf("api.reprobe.rate", "%g: want more than 0 and at most 1000 re-probes a second", r.Rate)
	}
	if r.Burst < 1 || r.Burst > 10_000 {
		b.errf("api.reprobe.burst", "%d: want 1-10000", r.Burst)
	}
	if r.TokenFile == "" {
		return ""
	}
	data, err := readSmallFile(r.TokenFile, maxTokenFile)
	if err != nil {
		b.errf("api.reprobe.token_file", "%v", err)
		return ""
	}
	tok := strings.TrimSpace(string(data))
	switch {
	case len(tok) < 16:
		b.errf("api.reprobe.token_file", "%s: the token is shorter than 16 characters", r.TokenFile)
		return ""
	case strings.ContainsAny(tok, " \t\r\n"):
		b.errf("api.reprobe.token_file", "%s: the token is more than one word", r.TokenFile)
		return ""
	}
	return tok
}

// readSmallFile reads a file of at most limit bytes.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

// kube validates the kube: section (the cluster watch reads it).
func (b *builder) kube() {
	k := b.s.Kube
	if !k.Enabled {
		return
	}
	for _, c := range []struct {
		key      string
		v        Duration
		min, max time.Duration
	}{
		{"kube.resync", k.Resync, time.Minute, 24 * time.Hour},
		{"kube.interval", k.Interval, time.Second, time.Hour},
		{"kube.stuck_after", k.StuckAfter, 10 * time.Second, 24 * time.Hour},
		{"kube.retry", k.Retry, time.Second, time.Hour},
	} {
		if d := time.Duration(c.v); d < c.min || d > c.max {
			b.errf(c.key, "%s: want %s to %s", d, c.min, c.max)
		}
	}
	for i, ns := range k.Namespaces {
		if ns == "" || len(ns) > 63 || strings.Trim(ns, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			b.errf(fmt.Sprintf("kube.namespaces[%d]", i), "%q is not a namespace name", truncate(ns, 70))
		}
	}
	if _, err := labels.Parse(k.Selector); err != nil {
		b.errf("kube.selector", "%q is not a label selector: %v", truncate(k.Selector, 80), err)
	}
}
