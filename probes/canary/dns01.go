package canary

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-acme/lego/v5/challenge"

	"github.com/acmediag/acmediag/reports"
)

// maxPropagationWait bounds the propagation step when the provider states
// no timeout of its own (lego's default is 60 s).
const maxPropagationWait = 60 * time.Second

// PropagationCheck waits until the TXT record fqdn holds value wherever
// the CA will look (every authoritative server of the zone), or fails
// saying where it is missing. acmediag's dnscheck provides one; the canary
// stays free of DNS code.
type PropagationCheck func(ctx context.Context, fqdn, value string) error

// DNS01Order completes a full order for name answering the DNS-01
// challenge: the TXT record is published through p (a lego DNS provider,
// see DNSProvider), the challenge answered, the authorization polled, the
// order finalized and the certificate downloaded, every step timed; then
// the record is removed through p again. A wildcard ("*.example.com") is
// ordered as such and published under the base name, as ACME says.
//
// A provider that fails to publish gives dns01.provider_error carrying its
// message (and no challenge is answered); one that fails to clean up gives
// the same code as a warning. With cfg.DNS01Propagation set, the wait for
// the record is a step of its own ("propagation"), bounded by the
// provider's own timeout (challenge.ProviderTimeout); when it gives up,
// dns01.propagation_slow is recorded and the challenge is answered anyway:
// the CA's verdict is the ground truth.
func DNS01Order(ctx context.Context, cfg Config, name string, p challenge.Provider) Outcome {
	if p == nil {
		return Outcome{Err: errors.New("canary: DNS-01 order needs a DNS provider")}
	}
	return run(ctx, cfg, name, solver{chalType: dns01Type, step: "present_txt", provider: p})
}

// challengeFQDN is where dns-01 publishes for domain (RFC 8555 §8.4).
func challengeFQDN(domain string) string {
	return "_acme-challenge." + strings.TrimSuffix(domain, ".") + "."
}

// txtValue is the TXT value for a key authorization (RFC 8555 §8.4).
func txtValue(keyAuth string) string {
	sum := sha256.Sum256([]byte(keyAuth))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// waitPropagation runs cfg.DNS01Propagation, if any, as a timed step.
func (o *order) waitPropagation(ctx context.Context, domain, keyAuth string) {
	check := o.cfg.DNS01Propagation
	if check == nil {
		return
	}
	limit := maxPropagationWait
	if pt, ok := o.sol.provider.(challenge.ProviderTimeout); ok {
		if t, _ := pt.Timeout(); t > 0 {
			limit = t
		}
	}
	fqdn, value := challengeFQDN(domain), txtValue(keyAuth)
	wctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := o.step("propagation", func() error { return check(wctx, fqdn, value) })
	if err == nil || ctx.Err() != nil {
		return
	}
	o.out.Findings = append(o.out.Findings, reports.New(reports.CodeDNS01PropagationSlow, o.name,
		fmt.Sprintf("the TXT record %s was not visible everywhere after %s: %s", fqdn, limit, truncate(err.Error()))).
		With("fqdn", fqdn).With("waited", limit.String()))
}
