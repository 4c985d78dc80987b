package probes

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/acmediag/acmediag/dnscheck"
	"github.com/acmediag/acmediag/probes/canary"
	"github.com/acmediag/acmediag/reports"
)

// Propagation polls between these bounds: densely at first, when most
// providers converge, then backing off.
const (
	propagationFirstPoll = 100 * time.Millisecond
	propagationMaxPoll   = 2 * time.Second
)

// AuthoritativePropagation is the canary's wait between publishing a
// dns-01 TXT record and answering the challenge: until every authoritative
// server of the record's zone (and the CA-view resolver) serves value, asked
// afresh each round so no answer is remembered across rounds.
func AuthoritativePropagation(c dnscheck.Checker) canary.PropagationCheck {
	return func(ctx context.Context, fqdn, value string) error {
		base := strings.TrimSuffix(strings.TrimPrefix(fqdn, "_acme-challenge."), ".")
		wait := propagationFirstPoll
		for {
			res := c.NewSession().Check(ctx, dnscheck.Request{Name: base, Challenge: dnscheck.DNS01, ExpectTXT: value})
			missing := ""
			for _, f := range res.Findings {
				switch f.Code {
				case reports.CodeDNS01TXTMissing, reports.CodeDNS01TXTNotPropagated, reports.CodeDNS01TXTWrongValue, reports.CodeDNSSplitHorizon:
					missing = f.Detail
				}
			}
			if missing == "" {
				return nil
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%s not served everywhere yet: %s: %w", strings.TrimSuffix(fqdn, "."), missing, ctx.Err())
			case <-t.C:
			}
			wait = min(wait*2, propagationMaxPoll)
		}
	}
}
