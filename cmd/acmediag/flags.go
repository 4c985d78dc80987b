package main

import (
	"errors"
	neturl "net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/acmediag/acmediag/probes"
	"github.com/acmediag/acmediag/reports"
)

// The flags of diagnose and agent are the daemon's settings under other
// names: each flag writes one key of probes.Settings (flagKeys), defaults
// come from probes.DefaultSettings, and probes.Build judges the values;
// its issues are told back under the flag's name.

// flagKeys maps settings keys to the flags that set them. A key path
// matches its own entry or its parent's ("dns.roots[2]" is --roots).
var flagKeys = map[string]string{
	"dns.roots":            "--roots",
	"dns.resolvers":        "--resolver",
	"dns.trust_anchor":     "--trust-anchor",
	"dns.dns_port":         "--dns-port",
	"dns.allow_addresses":  "--allow-address",
	"dns.query_timeout":    "--query-timeout",
	"dns.resolver_timeout": "--resolver-timeout",
	"dns.ca_identities":    "--ca-identity",
	"dns.account_uri":      "--account-uri",
	"http.http_port":       "--http-port",
	"http.https_port":      "--https-port",
	"vantages":             "--vantage",
	"agents":               "--agent",
	"schedule.timeout":     "--timeout",
	"canary.directory":     "--acme-directory",
	"canary.ca_cert":       "--acme-ca-cert",
	"canary.account_key":   "--acme-account-key",
	"canary.dns_provider":  "--dns-provider",
	"canary.serve_token":   "--serve-token",
	"canary.names":         "NAME",
	"targets":              "NAME",
	"targets.name":         "NAME",
	"targets.challenge":    "--challenge",
	"targets.expect_txt":   "--expect-txt",
	"targets.token":        "--token",
	"targets.key_auth":     "--key-auth",
	"tls.enabled":          "--tls",
	"tls.roots":            "--tls-roots",
	"tls.ari_directory":    "--ari-directory",
	"tls.ari_ca_cert":      "--ari-ca-cert",
	"tls.renewal_horizon":  "--renewal-horizon",
}

// keyAdvice rewrites the advice of settings messages that names other
// keys into the flags that set them.
var keyAdvice = strings.NewReplacer(
	"set canary.allow_production: true", "pass --allow-production",
	"set canary.dns_provider to", "pass --dns-provider with",
	"leave the key out", "leave the flag out",
)

// agentFlagKeys are the agent's own flags for its one vantage.
var agentFlagKeys = map[string]string{
	"vantages.name":   "--name",
	"vantages.kind":   "--kind",
	"vantages.rir":    "--rir",
	"vantages.region": "--region",
	"vantages.source": "--vantage-source",
	"tls":             "--cert/--key/--client-ca",
}

// flagError tells a settings error under the flags' names (own: a
// command's own, before the common ones): a usage error.
func flagError(err error, own map[string]string) error {
	var se *probes.SettingsError
	if !errors.As(err, &se) {
		return err
	}
	lines := make([]string, len(se.Issues))
	for i, is := range se.Issues {
		lines[i] = flagOf(is.Key, own) + ": " + keyAdvice.Replace(is.Msg)
	}
	return usageError{errors.New(strings.Join(lines, "\n"))}
}

// flagOf is the flag that sets key, or the key itself.
func flagOf(key string, own map[string]string) string {
	// targets[3].expect_txt → targets.expect_txt: every target has the
	// same flags.
	general := key
	if i := strings.IndexByte(general, '['); i >= 0 {
		if j := strings.IndexByte(general[i:], ']'); j >= 0 {
			general = general[:i] + general[i+j+1:]
		}
	}
	for k := general; k != ""; k = parentPath(k) {
		f, ok := own[k]
		if !ok {
			f, ok = flagKeys[k]
		}
		if ok {
			if rest := strings.TrimPrefix(general, k+"."); rest != general {
				// A key of a flag's value: --vantage kind.
				return f + " " + rest
			}
			return f
		}
	}
	return key
}

// checkFlags configure the checks themselves: where DNS starts, which
// resolvers, which ports, which addresses count as public. diagnose and
// agent take the same ones, read into the same settings.
type checkFlags struct {
	caIdentities []string
	roots        []string
	trustAnchor  string
	resolvers    []string
	dnsPort      int
	allow        []string
	queryTimeout probes.Duration
	resolverTime probes.Duration
	httpPort     int
	httpsPort    int
	tls          probes.TLSSettings
	flags        *pflag.FlagSet // where they were registered: which were given
}

func (c *checkFlags) register(fl *pflag.FlagSet) {
	d := probes.DefaultSettings()
	c.flags = fl
	c.queryTimeout, c.resolverTime = d.DNS.QueryTimeout, d.DNS.ResolverTimeout
	fl.StringArrayVar(&c.caIdentities, "ca-identity", d.DNS.CAIdentities, "CAA issuer domain of the CA; repeatable")
	fl.StringSliceVar(&c.roots, "roots", d.DNS.Roots, "root server addresses for the delegation walk")
	fl.StringVar(&c.trustAnchor, "trust-anchor", "", "DNSSEC root trust anchor file (DS or DNSKEY, zone-file syntax) (default the IANA root KSKs)")
	fl.StringSliceVar(&c.resolvers, "resolver", nil, "recursive resolvers ADDR[:PORT]; the first stands for Let's Encrypt's view (default /etc/resolv.conf)")
	fl.IntVar(&c.dnsPort, "dns-port", d.DNS.DNSPort, "port used for every authoritative query")
	fl.StringSliceVar(&c.allow, "allow-address", nil, "special-purpose ranges (CIDR) to treat as public, e.g. for a test universe on loopback")
	fl.IntVar(&c.httpPort, "http-port", d.HTTP.HTTPPort, "port HTTP-01 uses; takes the place of 80 everywhere, redirect rules included")
	fl.IntVar(&c.httpsPort, "https-port", d.HTTP.HTTPSPort, "port TLS-ALPN-01 and HTTPS redirects use; takes the place of 443 everywhere")
	fl.Var(&c.queryTimeout, "query-timeout", "how long to wait for one authoritative server's answer")
	fl.Var(&c.resolverTime, "resolver-timeout", "how long to wait for a recursive resolver's answer")
	fl.Lookup("roots").DefValue = "the 13 IANA root servers, IPv4 and IPv6"
	fl.BoolVar(&c.tls.Enabled, "tls", d.TLS.Enabled, "also read the certificate each address serves on the HTTPS port, and judge the name's renewal window by it")
	fl.StringVar(&c.tls.Roots, "tls-roots", "", "PEM file of the roots a served chain must lead to (default the system pool)")
	fl.StringVar(&c.tls.ARIDirectory, "ari-directory", "", "ACME directory of the CA that issued the served certificates, asked for its renewal window (ARI, RFC 9773)")
	fl.StringVar(&c.tls.ARICACert, "ari-ca-cert", "", "extra CA bundle for the --ari-directory's TLS (a test CA)")
	fl.Var(&c.tls.RenewalHorizon, "renewal-horizon", "how far ahead of the renewal window a failing challenge path is renewal.at_risk")
	fl.Lookup("renewal-horizon").DefValue = "7 days, or a third of the lifetime when shorter"
}

// apply writes the flags into s.
func (c *checkFlags) apply(s *probes.Settings) {
	s.DNS.CAIdentities = c.caIdentities
	s.DNS.Roots = c.roots
	s.DNS.TrustAnchor = c.trustAnchor
	if c.flags.Changed("resolver") {
		// Given, even empty: an empty list is refused, never quietly the
		// machine's resolvers.
		s.DNS.Resolvers = append([]string{}, c.resolvers...)
	}
	s.DNS.DNSPort = c.dnsPort
	s.DNS.AllowAddresses = c.allow
	s.DNS.QueryTimeout, s.DNS.ResolverTimeout = c.queryTimeout, c.resolverTime
	s.HTTP = probes.HTTPSettings{HTTPPort: c.httpPort, HTTPSPort: c.httpsPort}
	s.TLS = c.tls
}

// vantageFlags reads --vantage NAME=SRCADDR[,resolver=ADDR][,rir=RIR]
// [,region=R][,kind=external|cluster]; none keeps the default vantage.
func vantageFlags(specs []string) ([]probes.VantageSettings, error) {
	var out []probes.VantageSettings
	for _, spec := range specs {
		kv, source, err := vantageSpec("--vantage", spec, "SRCADDR", true)
		if err != nil {
			return nil, err
		}
		v := probes.DefaultVantage()
		v.Name, v.Source, v.Resolver, v.RIR, v.Region = kv["name"], source, kv["resolver"], kv["rir"], kv["region"]
		if k, ok := kv["kind"]; ok {
			v.Kind = k
		}
		for _, o := range out {
			if o.Name == v.Name {
				return nil, usagef("--vantage %q: the name %q is used twice", spec, v.Name)
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// parseAgentFlags reads --agent URL or NAME=URL[,rir=RIR][,region=R][,kind=K]
// with the client certificate, key and the agents' CA of their flags.
// The bare URL of DESIGN.md's contract names the vantage by its host.
func parseAgentFlags(specs []string, cert, key, ca string, taken []probes.VantageSettings) ([]probes.AgentSettings, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	if cert == "" || key == "" || ca == "" {
		return nil, usagef("--agent needs --agent-cert, --agent-key and --agent-ca (mutual TLS)")
	}
	names := map[string]bool{}
	for _, v := range taken {
		names[v.Name] = true
	}
	var out []probes.AgentSettings
	for _, spec := range specs {
		kv := map[string]string{}
		url := ""
		if strings.HasPrefix(spec, "https://") || strings.HasPrefix(spec, "http://") {
			u, err := neturl.Parse(spec)
			if err != nil || u.Hostname() == "" {
				return nil, usagef("--agent %q: want https://HOST:PORT or NAME=https://HOST:PORT[,rir=RIR][,region=R][,kind=K]", spec)
			}
			kv["name"], url = u.Hostname(), spec
		} else {
			var err error
			if kv, url, err = vantageSpec("--agent", spec, "URL", false); err != nil {
				return nil, err
			}
		}
		a := probes.DefaultAgent()
		a.Name, a.URL, a.RIR, a.Region, a.ClientCert, a.ClientKey, a.CAFile = kv["name"], url, kv["rir"], kv["region"], cert, key, ca
		if k, ok := kv["kind"]; ok {
			a.Kind = k
		}
		if names[a.Name] {
			return nil, usagef("--agent %q: the name %q is used twice", spec, a.Name)
		}
		names[a.Name] = true
		out = append(out, a)
	}
	return out, nil
}

// vantageSpec reads NAME=FIRST[,key=value...], the shape --vantage and
// --agent share; resolver= only where the vantage runs locally. The
// values are judged with the settings.
func vantageSpec(flag, spec, first string, resolver bool) (map[string]string, string, error) {
	keys, names := "[,rir=RIR][,region=R][,kind=external|cluster]", "rir, region, kind"
	if resolver {
		keys, names = "[,resolver=ADDR]"+keys, "resolver, "+names
	}
	parts := strings.Split(spec, ",")
	name, value, ok := strings.Cut(parts[0], "=")
	if !ok || name == "" || value == "" {
		return nil, "", usagef("%s %q: want NAME=%s%s", flag, spec, first, keys)
	}
	kv := map[string]string{"name": name}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			return nil, "", usagef("%s %q: %q is not KEY=VALUE", flag, spec, p)
		}
		switch {
		case k == "resolver" && resolver, k == "rir", k == "region", k == "kind":
			kv[k] = val
		default:
			return nil, "", usagef("%s %q: unknown key %q (%s)", flag, spec, k, names)
		}
	}
	return kv, value, nil
}

// challengeFlag reads --challenge: "" leaves each name its default.
func challengeFlag(v string) (reports.Challenge, error) {
	if v == "" {
		return "", nil
	}
	c, err := reports.ParseChallenge(v)
	if err != nil {
		return "", usagef("--challenge %v", err)
	}
	return c, nil
}

// positive refuses a non-positive duration flag.
func positive(flag string, d time.Duration) error {
	if d <= 0 {
		return usagef("%s %s: must be positive", flag, d)
	}
	return nil
}
