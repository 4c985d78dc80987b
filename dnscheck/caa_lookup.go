package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

// caaLabels lists the names Boulder looks up CAA at: the name itself and
// every parent up to and including the TLD.
func caaLabels(base string) []string {
	labels := dns.SplitDomainName(base)
	out := make([]string, 0, len(labels))
	for i := range labels {
		out = append(out, strings.ToLower(dns.Fqdn(strings.Join(labels[i:], "."))))
	}
	return out
}

// checkCAA looks CAA up at every label in parallel through the CA's
// resolver and decides as Boulder does; a lookup failure is explained by
// asking that label's authoritative servers.
func (n *nameRun) checkCAA(ctx context.Context) {
	base := n.name.Base
	n.timed("dns.caa", base, func() (reports.CheckStatus, string) {
		labels := caaLabels(base)
		lookups := make([]CAALookup, len(labels))
		var wg sync.WaitGroup
		for i, label := range labels {
			wg.Go(func() { lookups[i] = n.lookupCAA(ctx, label, i == len(labels)-1) })
		}
		wg.Wait()
		policy := CAAPolicy{Identities: n.c.CAIdentities, AccountURI: n.c.AccountURI, Method: n.req.Challenge}
		res := EvaluateCAA(base, n.name.Wildcard, lookups, policy)
		fs := res.Findings
		var causes []reports.Finding
		for i, f := range fs {
			if f.Code != reports.CodeCAALookupFailed {
				continue
			}
			for _, l := range lookups {
				if l.Err != nil {
					detail, why := n.explainCAA(ctx, l.Label)
					fs[i].Detail += detail
					causes = append(causes, why...)
					break
				}
			}
		}
		fs = append(fs, causes...)
		n.add(fs...)
		note := "no CAA records: any CA may issue"
		if res.FoundAt != "" {
			note = fmt.Sprintf("relevant CAA set at %s: %s", trimDot(res.FoundAt), strings.Join(recordSet(caaRRs(res.Relevant)), "; "))
		}
		return statusOf(fs), note
	})
}

func caaRRs(cs []*dns.CAA) []dns.RR {
	out := make([]dns.RR, len(cs))
	for i, c := range cs {
		out[i] = c
	}
	return out
}

// errLookup marks a CAA lookup the resolver failed.
var errLookup = errors.New("CAA lookup failed")

func (n *nameRun) lookupCAA(ctx context.Context, label string, tld bool) CAALookup {
	l := CAALookup{Label: label}
	res, ok := n.caResolver()
	if !ok {
		return n.authCAA(ctx, label, tld)
	}
	a := n.resolve(ctx, res, label, dns.TypeCAA)
	switch {
	case a.Resp.Rcode() == dns.RcodeNameError && !tld:
		// NXDOMAIN below the TLD is an empty set (Boulder).
	case a.Failed():
		l.Err = fmt.Errorf("%w: %s", errLookup, a.Resp.Outcome())
		l.Problem = a.Problem
	case a.Resp.Msg.Truncated:
		l.Err = fmt.Errorf("%w: response was truncated", errLookup)
		l.Problem = fmt.Sprintf("DNS problem: response was truncated looking up CAA for %s", trimDot(label))
	default:
		for _, rr := range a.Records {
			if c, ok := rr.(*dns.CAA); ok {
				l.Records = append(l.Records, c)
			}
		}
	}
	return l
}

// authCAA is the CAA lookup without a resolver: the authoritative servers'
// first answer stands in for the CA's view.
func (n *nameRun) authCAA(ctx context.Context, label string, tld bool) CAALookup {
	l := CAALookup{Label: label}
	hops, end, _ := n.follow(ctx, label, dns.TypeCAA)
	switch {
	case end.NXDomain && !tld:
	case end.Err != "" || len(hops) == 0:
		l.Err = fmt.Errorf("%w: %s", errLookup, end.Err)
		l.Problem = fmt.Sprintf("DNS problem: SERVFAIL looking up CAA for %s - the domain's nameservers may be malfunctioning", trimDot(label))
	default:
		for _, rr := range end.Records {
			if c, ok := rr.(*dns.CAA); ok {
				l.Records = append(l.Records, c)
			}
		}
	}
	return l
}

// explainCAA says what each authoritative server answers for CAA at label,
// and returns the findings that name why the CA's lookup fails, as the
// address and TXT lookups do: an answer too big for UDP with TCP failing,
// a DNSSEC answer (or denial of existence) that does not validate.
func (n *nameRun) explainCAA(ctx context.Context, label string) (string, []reports.Finding) {
	path, err := n.w.Walk(ctx, label)
	if err != nil {
		return "\n" + err.Error(), nil
	}
	ans := n.lookupAll(ctx, path.Zone(), label, dns.TypeCAA)
	var lines []string
	for i, r := range ans.Responses {
		lines = append(lines, fmt.Sprintf("%s: %s", ans.Hosts[i], answerText(r, label, dns.TypeCAA)))
	}
	why := truncationFindings(ans)
	why = append(why, n.dnssecFindings(ctx, []*Hop{{Name: label, Path: path, Answers: ans}})...)
	return fmt.Sprintf("\nauthoritative servers of %s asked CAA %s:\n%s", trimDot(path.Zone().Name), trimDot(label), strings.Join(lines, "\n")), why
}
