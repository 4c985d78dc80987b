package main

import (
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
	"github.com/spf13/pflag"
	"go.uber.org/zap"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/http01"
)

// ianaRoots are the root servers' addresses (IANA root hints, named.root).
var ianaRoots = []string{
	"198.41.0.4", "2001:503:ba3e::2:30", // a
	"170.247.170.2", "2801:1b8:10::b", // b
	"192.33.4.12", "2001:500:2::c", // c
	"199.7.91.13", "2001:500:2d::d", // d
	"192.203.230.10", "2001:500:a8::e", // e
	"192.5.5.241", "2001:500:2f::f", // f
	"192.112.36.4", "2001:500:12::d0d", // g
	"198.97.190.53", "2001:500:1::53", // h
	"192.36.148.17", "2001:7fe::53", // i
	"192.58.128.30", "2001:503:c27::2:30", // j
	"193.0.14.129", "2001:7fd::1", // k
	"199.7.83.42", "2001:500:9f::42", // l
	"202.12.27.33", "2001:dc3::35", // m
}

// checkFlags configure the checks themselves: where DNS starts, which
// resolvers, which ports, which addresses count as public. diagnose and
// agent take the same ones, read the same way.
type checkFlags struct {
	caIdentities []string
	roots        []string
	trustAnchor  string
	resolvers    []string
	dnsPort      int
	allow        []string
	queryTimeout time.Duration
	resolverTime time.Duration
	httpPort     int
	httpsPort    int
	flags        *pflag.FlagSet // where they were registered: which were given
}

func (c *checkFlags) register(fl *pflag.FlagSet) {
	c.flags = fl
	fl.StringArrayVar(&c.caIdentities, "ca-identity", []string{"letsencrypt.org"}, "CAA issuer domain of the CA; repeatable")
	fl.StringSliceVar(&c.roots, "roots", ianaRoots, "root server addresses for the delegation walk")
	fl.StringVar(&c.trustAnchor, "trust-anchor", "", "DNSSEC root trust anchor file (DS or DNSKEY, zone-file syntax) (default the IANA root KSKs)")
	fl.StringSliceVar(&c.resolvers, "resolver", nil, "recursive resolvers ADDR[:PORT]; the first stands for Let's Encrypt's view (default /etc/resolv.conf)")
	fl.IntVar(&c.dnsPort, "dns-port", 53, "port used for every authoritative query")
	fl.StringSliceVar(&c.allow, "allow-address", nil, "special-purpose ranges (CIDR) to treat as public, e.g. for a test universe on loopback")
	fl.IntVar(&c.httpPort, "http-port", 80, "port HTTP-01 uses; takes the place of 80 everywhere, redirect rules included")
	fl.IntVar(&c.httpsPort, "https-port", 443, "port TLS-ALPN-01 and HTTPS redirects use; takes the place of 443 everywhere")
	fl.DurationVar(&c.queryTimeout, "query-timeout", dnscheck.DefaultQueryTimeout, "how long to wait for one authoritative server's answer")
	fl.DurationVar(&c.resolverTime, "resolver-timeout", dnscheck.DefaultResolverTimeout, "how long to wait for a recursive resolver's answer")
	fl.Lookup("roots").DefValue = "the 13 IANA root servers, IPv4 and IPv6"
}

// checker reads the flags into the DNS checker's configuration; every
// error names the flag.
func (c *checkFlags) checker() (*dnscheck.Checker, error) {
	ch := &dnscheck.Checker{CAIdentities: c.caIdentities, QueryTimeout: c.queryTimeout, ResolverTimeout: c.resolverTime}
	for _, p := range []struct {
		flag string
		v    int
	}{{"--dns-port", c.dnsPort}, {"--http-port", c.httpPort}, {"--https-port", c.httpsPort}} {
		if p.v < 1 || p.v > 65535 {
			return nil, usagef("%s %d: want 1-65535", p.flag, p.v)
		}
	}
	ch.Port = uint16(c.dnsPort)
	for _, s := range c.roots {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, usagef("--roots %q: not an IP address", s)
		}
		ch.Roots = append(ch.Roots, a)
	}
	resolvers := c.resolvers
	if c.flags != nil && c.flags.Changed("resolver") && (len(resolvers) == 0 || slices.Contains(resolvers, "")) {
		// An empty value must not quietly become the machine's resolvers:
		// in a test universe those would be asked about names outside it.
		return nil, usagef("--resolver is empty: give ADDR[:PORT],... or leave the flag out for /etc/resolv.conf's servers")
	}
	if len(resolvers) == 0 {
		cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil {
			return nil, usagef("no --resolver given and /etc/resolv.conf is unreadable: %v", err)
		}
		resolvers = cfg.Servers
	}
	for _, s := range resolvers {
		ap, err := parseAddrPort(s, 53)
		if err != nil {
			return nil, usagef("--resolver %q: %v", s, err)
		}
		ch.Resolvers = append(ch.Resolvers, ap)
	}
	for _, s := range c.allow {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(s))
			if aerr != nil {
				return nil, usagef("--allow-address %q: not a CIDR prefix", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		ch.Allow = append(ch.Allow, p.Masked())
	}
	for _, id := range c.caIdentities {
		if id == "" || strings.ContainsAny(id, " ;") {
			return nil, usagef("--ca-identity %q: want a domain such as letsencrypt.org", id)
		}
	}
	if c.queryTimeout <= 0 || c.resolverTime <= 0 {
		return nil, usagef("--query-timeout and --resolver-timeout must be positive")
	}
	if c.trustAnchor == "" {
		ch.TrustAnchors = dnscheck.DefaultTrustAnchors()
	} else {
		fh, err := os.Open(c.trustAnchor)
		if err != nil {
			return nil, usagef("--trust-anchor: %v", err)
		}
		defer fh.Close()
		if ch.TrustAnchors, err = dnscheck.ParseTrustAnchors(fh, c.trustAnchor); err != nil {
			return nil, usagef("--trust-anchor: %v", err)
		}
	}
	return ch, nil
}

// validatorWithLogger is the HTTP-01/TLS-ALPN-01 configuration the flags give.
func (c *checkFlags) validatorWithLogger(ch *dnscheck.Checker, logger *zap.Logger) http01.Validator {
	return http01.Validator{HTTPPort: c.httpPort, HTTPSPort: c.httpsPort, Allow: ch.Allow, Logger: logger}
}
