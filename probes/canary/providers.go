package canary

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"
	"github.com/go-acme/lego/v5/challenge/dns01"
	"github.com/go-acme/lego/v5/providers/dns/cloudflare"
	"github.com/go-acme/lego/v5/providers/dns/digitalocean"
	"github.com/go-acme/lego/v5/providers/dns/dnsupdate"
	"github.com/go-acme/lego/v5/providers/dns/exec"
	"github.com/go-acme/lego/v5/providers/dns/gcloud"
	"github.com/go-acme/lego/v5/providers/dns/route53"
)

// providerCtors are the lego DNS providers acmediag links, by lego's own
// codes (and aliases). Each is built by the provider's NewDNSProvider, so
// it reads its credentials from the environment exactly as lego does
// (e.g. DNSUPDATE_NAMESERVER or RFC2136_NAMESERVER, EXEC_PATH,
// CLOUDFLARE_DNS_API_TOKEN). lego's all-providers registry is not
// imported: it pulls modules the proxy does not serve; azuredns is left
// out for the same reason.
func providerCtors() map[string]func() (challenge.Provider, error) {
	dnsUpdate := func() (challenge.Provider, error) { return dnsupdate.NewDNSProvider() }
	return map[string]func() (challenge.Provider, error){
		"dnsupdate":    dnsUpdate,
		"rfc2136":      dnsUpdate,
		"exec":         func() (challenge.Provider, error) { return exec.NewDNSProvider() },
		"route53":      func() (challenge.Provider, error) { return route53.NewDNSProvider() },
		"cloudflare":   func() (challenge.Provider, error) { return cloudflare.NewDNSProvider() },
		"gcloud":       func() (challenge.Provider, error) { return gcloud.NewDNSProvider() },
		"digitalocean": func() (challenge.Provider, error) { return digitalocean.NewDNSProvider() },
	}
}

// DNSProviders lists the provider names DNSProvider accepts, sorted.
func DNSProviders() []string {
	var out []string
	for n := range providerCtors() {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// DNSProvider builds the lego DNS provider called name (lego's code, case
// insensitive; "rfc2136" is "dnsupdate") from the environment. An unknown
// name is an error listing the supported ones; a provider whose
// environment is incomplete returns lego's own error, which names the
// missing variables.
func DNSProvider(name string) (challenge.Provider, error) {
	ctor, ok := providerCtors()[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return nil, fmt.Errorf("canary: unknown DNS provider %q (supported: %s)", name, strings.Join(DNSProviders(), ", "))
	}
	p, err := ctor()
	if err != nil {
		return nil, fmt.Errorf("canary: DNS provider %s: %w", name, err)
	}
	return p, nil
}

// UseResolvers points lego's DNS lookups (the CNAME at _acme-challenge a
// provider follows before publishing, the zone it looks up) at the given
// recursive resolvers. lego keeps this in one process-wide client and
// offers no per-provider setting, so it is set here, in one place, when a
// plan with a DNS provider is put in force: without it lego asks the
// machine's resolvers, which in a test universe know none of its names
// (and are off loopback).
func UseResolvers(resolvers []string, timeout time.Duration) {
	dns01.SetDefaultClient(dns01.NewClient(&dns01.Options{RecursiveNameservers: resolvers, Timeout: timeout}))
}
