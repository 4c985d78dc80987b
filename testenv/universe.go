// Package testenv is acmediag's hermetic test universe: a loopback-only
// Internet with its own DNS root, TLD servers (com, net, org) and
// authoritative servers for every scenario of the catalogue, DNSSEC-signed
// where a scenario says so, with per-server faults, and two real Unbound
// resolvers (a Let's Encrypt-like public one and a split-horizon cluster
// one) chained to the universe's root trust anchor. Tests and
// `acmediag testenv` start it once and run diagnoses against each Scenario.
//
// The web half gives every HTTP-01 and TLS-ALPN-01 scenario its own address
// in 127.80.0.0/16 (and the one IPv6 server on ::1), each with the
// behaviour the scenario stages on the universe-wide HTTP and HTTPS ports.
// Vantage points (three external perspectives in three RIRs and one
// in-cluster) each have a source address and an Unbound of their own, and
// nftables drop rules keyed on source address stage firewalls that block
// some perspectives only.
//
// Nothing here ever talks to anything but 127.0.0.0/8 and ::1.
package testenv

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/acmediag/acmediag/testenv/dnsserver"
	"github.com/acmediag/acmediag/testenv/pebble"
	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// Resolver addresses; DNS servers live elsewhere in 127.53.0.0/16.
const (
	publicResolverAddr  = "127.53.255.1"
	clusterResolverAddr = "127.53.255.2"
	defaultHighPort     = 10053
)

// Options configures Start.
type Options struct {
	// Block is the universe's loopback address block, 0 (today's
	// addresses) to MaxBlock; FreeBlock finds one nothing else uses.
	Block int
	Port  int // 0: 53 as root, else 10053 (plus Block, see MaxBlock)
	// HTTPPort and HTTPSPort are the web servers' ports, universe-wide;
	// 0 → Port+27 and Port+390: 80/443 with Port 53, 10080/10443 with
	// 10053, and distinct ports for every other DNS port, so universes with
	// different DNS ports never collide on the (shared) web addresses.
	HTTPPort  int
	HTTPSPort int
	WorkDir   string // "" → os.MkdirTemp, removed by Close
	// ACME also runs Pebble (built from testenv/tools into .cache/tools),
	// validating against the universe: see ACMEDirectory.
	ACME   bool
	Logger *zap.Logger // nil → zap.NewNop()
	// Now is the signing reference (inception one hour before, expiration
	// two weeks after); nil → time.Now. Unbound validates against the real
	// clock, so keep it within days of it.
	Now func() time.Time
}

// Universe is a running universe. Close it when done.
type Universe struct {
	log           *zap.Logger
	blockN        int
	block         *strings.Replacer // block 0 → this block; nil for block 0
	port          int
	workDir       string
	ownWorkDir    bool
	spec          spec
	keys          map[string]*dnsserver.Keys
	servers       []*dnsserver.Server
	hostAddrs     map[string][]string // server host → addresses
	rootHintsFile string
	anchorFile    string
	public        *unbound
	cluster       *unbound
	httpPort      int
	httpsPort     int
	vantageRes    []*unbound
	web           *webServer
	fw            *firewall
	pebble        *pebble.Pebble
	// The TLS side: the universe's CA, the roots a client trusts, and
	// Pebble's certificates per order group (tls.go).
	tlsCA        *tlsCA
	tlsRoots     *x509.CertPool
	tlsRootsFile string
	issued       map[string]*pebble.Issued
}

// Start builds the universe of the whole Catalogue, starts every server and
// both resolvers, and returns when all of them answer. ctx bounds start-up
// only: the universe runs until Close. Only one universe can use a given
// port at a time in one address block, so tests that run beside another
// universe pick their own Options.Port, or a free Options.Block
// (FreeBlock).
func Start(ctx context.Context, opts Options) (*Universe, error) {
	return start(ctx, opts, catalogueSpec())
}

func start(ctx context.Context, opts Options, sp spec) (_ *Universe, err error) {
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if opts.Block < 0 || opts.Block > MaxBlock {
		return nil, fmt.Errorf("testenv: address block %d is not 0 to %d", opts.Block, MaxBlock)
	}
	u := &Universe{
		log:       log.Named("testenv"),
		blockN:    opts.Block,
		block:     blockReplacer(opts.Block),
		port:      opts.Port,
		workDir:   opts.WorkDir,
		spec:      sp,
		keys:      map[string]*dnsserver.Keys{},
		hostAddrs: map[string][]string{},
	}
	if u.port == 0 {
		u.port = defaultPort(opts.Block)
	}
	u.httpPort, u.httpsPort = opts.HTTPPort, opts.HTTPSPort
	if u.httpPort == 0 {
		u.httpPort = u.port + 27
	}
	if u.httpsPort == 0 {
		u.httpsPort = u.port + 390
	}
	if u.workDir == "" {
		if u.workDir, err = os.MkdirTemp("", "acmediag-testenv-"); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		u.ownWorkDir = true
	}
	defer func() {
		if err != nil {
			_ = u.Close()
		}
	}()
	u.spec.rebase(u.block)
	u.spec.normalize()
	if err := u.spec.validate(); err != nil {
		return nil, fmt.Errorf("testenv: universe description: %w", err)
	}
	if err := u.buildServers(opts.Now); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	for _, s := range u.servers {
		if err := s.Start(ctx); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
	}
	if err := u.writeAnchors(); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	bin, err := EnsureCommand(ctx, "unbound", "unbound")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if u.public, err = u.startUnbound(ctx, bin, resolverConfig{name: "public", addr: u.InBlock(publicResolverAddr), stripPrivate: true}); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if u.cluster, err = u.startUnbound(ctx, bin, resolverConfig{name: "cluster", addr: u.InBlock(clusterResolverAddr), localData: u.spec.clusterData}); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	for i, vd := range vantageDefs {
		v := u.vantageIn(vd)
		rc := resolverConfig{name: "vantage-" + v.name, addr: v.resolverAddr, outgoing: []string{v.addr, "::1"}}
		if v.kind == VantageCluster {
			rc.localData = u.spec.clusterData
		} else {
			rc.stripPrivate = true
		}
		ub, err := u.startUnbound(ctx, bin, rc)
		if err != nil {
			return nil, fmt.Errorf("testenv: vantage %d: %w", i, err)
		}
		u.vantageRes = append(u.vantageRes, ub)
	}
	if err := u.startWeb(ctx); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if opts.ACME {
		if err := u.startPebble(ctx); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		if err := u.issueTLS(ctx); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
	}
	u.log.Info("universe ready", zap.Int("block", u.blockN), zap.Int("port", u.port), zap.Int("http_port", u.httpPort), zap.Int("https_port", u.httpsPort), zap.Int("servers", len(u.servers)), zap.String("work_dir", u.workDir))
	return u, nil
}

func (u *Universe) buildServers(now func() time.Time) error {
	for _, sv := range u.spec.servers {
		u.hostAddrs[sv.host] = append(u.hostAddrs[sv.host], sv.addrs...)
	}
	for _, z := range u.spec.zones {
		if z.signed {
			k, err := dnsserver.NewKeys(z.origin)
			if err != nil {
				return err
			}
			u.keys[z.origin] = k
		}
	}
	base, err := u.spec.baseRecords()
	if err != nil {
		return err
	}
	for _, sv := range u.spec.servers {
		srv := dnsserver.New(dnsserver.Config{
			Name: sv.name, Host: sv.host, Addrs: sv.addrs, Port: u.port, Faults: sv.faults, Logger: u.log,
		})
		for _, origin := range sv.zones {
			zs := u.spec.zone(origin)
			text := zs.text
			if st, ok := sv.stale[origin]; ok {
				text = st
			}
			rrs, err := u.spec.assemble(zs, text, u.keys, base)
			if err != nil {
				return err
			}
			z, err := dnsserver.NewZone(dnsserver.ZoneConfig{
				Origin: origin, Records: rrs, Keys: u.keys[origin], SigFaults: zs.sigFaults,
				AllowAXFR: zs.allowAXFR, Now: now,
			})
			if err != nil {
				return fmt.Errorf("server %s: %w", sv.name, err)
			}
			srv.AddZone(z)
		}
		u.servers = append(u.servers, srv)
	}
	return nil
}

// writeAnchors writes the root hints and the root DS trust anchor.
func (u *Universe) writeAnchors() error {
	var hints strings.Builder
	for _, h := range u.spec.parentNSOf(".") {
		fmt.Fprintf(&hints, ".\t3600000\tIN\tNS\t%s\n", h)
		for _, a := range u.hostAddrs[h] {
			fmt.Fprintf(&hints, "%s\n", addrRR(h, a, 3600000))
		}
	}
	u.rootHintsFile = filepath.Join(u.workDir, "root.hints")
	if err := os.WriteFile(u.rootHintsFile, []byte(hints.String()), 0o644); err != nil {
		return err
	}
	k := u.keys["."]
	if k == nil {
		return errors.New("the root zone is not signed: no trust anchor")
	}
	u.anchorFile = filepath.Join(u.workDir, "root.ds")
	ds := k.DS()
	ds.Hdr.Ttl = 0
	line := fmt.Sprintf(". IN DS %d %d %d %s\n", ds.KeyTag, ds.Algorithm, ds.DigestType, ds.Digest)
	return os.WriteFile(u.anchorFile, []byte(line), 0o644)
}

// Close stops both resolvers and every server and removes the work
// directory it created.
func (u *Universe) Close() error {
	var errs []error
	if u.pebble != nil {
		u.pebble.Close()
	}
	if err := u.fw.close(); err != nil {
		errs = append(errs, err)
	}
	u.web.close()
	for _, ub := range u.vantageRes {
		ub.stop()
	}
	u.public.stop()
	u.cluster.stop()
	for _, s := range u.servers {
		if err := s.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if u.ownWorkDir {
		if err := os.RemoveAll(u.workDir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Port is the one DNS port of every server and resolver.
func (u *Universe) Port() int { return u.port }

// WorkDir holds the trust anchor, root hints and Unbound configs and logs.
func (u *Universe) WorkDir() string { return u.workDir }

// Roots are the root servers' addresses, without port.
func (u *Universe) Roots() []string {
	var out []string
	for _, h := range u.spec.parentNSOf(".") {
		out = append(out, u.hostAddrs[h]...)
	}
	return out
}

// TrustAnchorFile is the path of the root DS file (zone-file syntax).
func (u *Universe) TrustAnchorFile() string { return u.anchorFile }

// Resolver is the public-view Unbound, "ADDR:PORT".
func (u *Universe) Resolver() string {
	return u.resolverAddrPort(publicResolverAddr)
}

// ClusterResolver is the split-horizon Unbound, "ADDR:PORT".
func (u *Universe) ClusterResolver() string {
	return u.resolverAddrPort(clusterResolverAddr)
}

// DiagnoseArgs are the `acmediag diagnose` arguments for s in this
// universe: the universe's roots, port, trust anchor and resolver(s), the
// loopback ranges allowed, --http-port/--https-port when not 80/443, one
// --vantage per vantage when s.Vantages, --tls with the universe's TLS
// roots when s.TLS, s.Args, then s.Domain.
func (u *Universe) DiagnoseArgs(s Scenario) []string {
	resolvers := u.Resolver()
	if s.UseClusterResolver {
		resolvers += "," + u.ClusterResolver()
	}
	args := []string{
		"--roots", strings.Join(u.Roots(), ","),
		"--dns-port", strconv.Itoa(u.port),
		"--trust-anchor", u.anchorFile,
		"--resolver", resolvers,
		"--allow-address", "127.0.0.0/8,::1/128",
	}
	switch {
	case s.HTTPOnHTTPSPort:
		args = append(args, "--http-port", strconv.Itoa(u.httpsPort))
	case u.httpPort != 80:
		args = append(args, "--http-port", strconv.Itoa(u.httpPort))
	}
	if u.httpsPort != 443 {
		args = append(args, "--https-port", strconv.Itoa(u.httpsPort))
	}
	if s.Vantages {
		for _, v := range u.Vantages() {
			args = append(args, "--vantage", vantageFlag(v))
		}
	}
	if s.TLS {
		args = append(args, "--tls", "--tls-roots", u.TLSRootsFile())
	}
	for _, a := range s.Args {
		args = append(args, u.InBlock(a))
	}
	return append(args, s.Domain)
}

// Server returns the authoritative server with this id, host name or
// address, or nil.
func (u *Universe) Server(id string) *dnsserver.Server {
	for _, s := range u.servers {
		if s.Name() == id || strings.EqualFold(dns.Fqdn(id), s.Host()) || slices.Contains(s.Addrs(), id) {
			return s
		}
	}
	return nil
}

// Servers lists every authoritative server.
func (u *Universe) Servers() []*dnsserver.Server { return slices.Clone(u.servers) }

// ServerAddr is "ADDR:PORT" of a server's first address (for tests), or "".
func (u *Universe) ServerAddr(id string) string {
	s := u.Server(id)
	if s == nil || len(s.Addrs()) == 0 {
		return ""
	}
	return net.JoinHostPort(s.Addrs()[0], strconv.Itoa(u.port))
}

// SetRRset replaces name/rrtype in zone on the given servers (ids, hosts or
// addresses; none → every server serving the zone), bumping the serial and
// re-signing. Servers left out keep the old data: that is how replication
// lag is staged.
func (u *Universe) SetRRset(zone, name string, rrtype uint16, rrs []dns.RR, servers ...string) error {
	zone = dns.CanonicalName(zone)
	var targets []*dnsserver.Server
	if len(servers) == 0 {
		for _, s := range u.servers {
			if s.Zone(zone) != nil {
				targets = append(targets, s)
			}
		}
	}
	for _, id := range servers {
		s := u.Server(id)
		if s == nil {
			return fmt.Errorf("testenv: no server %q", id)
		}
		targets = append(targets, s)
	}
	if len(targets) == 0 {
		return fmt.Errorf("testenv: no server serves zone %s", zone)
	}
	for _, s := range targets {
		z := s.Zone(zone)
		if z == nil {
			return fmt.Errorf("testenv: server %s does not serve zone %s", s.Name(), zone)
		}
		if err := z.SetRRset(name, rrtype, rrs, true); err != nil {
			return fmt.Errorf("testenv: server %s: %w", s.Name(), err)
		}
	}
	return nil
}

// SetTXT sets the TXT RRset at name in zone to values (one TXT record per
// value, TTL 60; no values removes it) on the given servers, or on every
// server of the zone, re-signing when the zone is signed.
func (u *Universe) SetTXT(zone, name string, values []string, servers ...string) error {
	name = dns.Fqdn(name)
	var rrs []dns.RR
	for _, v := range values {
		rrs = append(rrs, &dns.TXT{
			Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: splitTXT(v),
		})
	}
	return u.SetRRset(zone, name, dns.TypeTXT, rrs, servers...)
}

// splitTXT cuts a value into the 255-octet character-strings TXT carries.
func splitTXT(v string) []string {
	var out []string
	for len(v) > 255 {
		out = append(out, v[:255])
		v = v[255:]
	}
	return append(out, v)
}

// HTTPPort is the port every web server listens on for HTTP (80 in
// port-53 mode).
func (u *Universe) HTTPPort() int { return u.httpPort }

// HTTPSPort is the port every web server listens on for TLS (443 in
// port-53 mode); TLS-ALPN-01 responders use it too.
func (u *Universe) HTTPSPort() int { return u.httpsPort }

// WebAddrs are the web addresses of a scenario (its A and AAAA targets in
// the universe's DNS, in declaration order), or nil.
func (u *Universe) WebAddrs(scenario string) []string {
	return slices.Clone(u.spec.webAddrs[scenario])
}

// startWeb starts every site and installs the packet-drop rules.
func (u *Universe) startWeb(ctx context.Context) error {
	tokens := map[string]bool{}
	for _, name := range u.spec.scenarioNames {
		tokens[Token(name)] = true
	}
	w, err := newWebServer(u.log, u.httpPort, u.httpsPort, tokens)
	if err != nil {
		return err
	}
	u.web = w
	if err := u.startTLS(); err != nil {
		return err
	}
	if err := w.start(ctx, u.spec.sites); err != nil {
		return err
	}
	if len(u.spec.drops) == 0 {
		return nil
	}
	if !firewallEnabled() {
		u.log.Info("not root: packet-drop faults are not staged, Catalogue() leaves their scenarios out", zap.Int("rules", len(u.spec.drops)))
		return nil
	}
	fw, err := startFirewall(ctx, u.log, u.port, u.spec.drops, u.httpPort, u.httpsPort)
	if err != nil {
		return err
	}
	u.fw = fw
	return nil
}
