package http01

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// maxSurvey bounds how many addresses Survey fetches from.
const maxSurvey = 16

// answer is what one address gave for the token, reduced to what matters
// for comparison.
type answer struct {
	addr netip.Addr
	key  string // comparable summary: the status and, for a 200, the body
	text string // what it got, for details: key and the URL that gave it
	// unreachable: the first request to addr failed to connect (code says
	// how). That is not content: Boulder retries an IPv6 request that fails
	// so on IPv4, and never connects to IPv4 while the first AAAA answers.
	unreachable bool
	code        reports.Code
	hop         Hop
	err         error
}

// Survey fetches the token from EVERY address (not only Boulder's first AAAA/first A) and
// compares: http01.ipv6_different_content, http01.inconsistent_backends (naming the addresses
// and what each returned). It also runs HTTP01 and includes its findings; OK and
// Problem are HTTP01's, since Let's Encrypt only ever uses the first addresses.
func (v *Validator) Survey(ctx context.Context, req Request) Result {
	start := time.Now()
	probe := req
	if probe.Token == "" {
		// One random token for every address, so their answers compare.
		probe.Token, probe.KeyAuth = randomToken(), ""
	}
	addrs := append(v.usable(req.V6), v.usable(req.V4)...)
	if len(addrs) > maxSurvey {
		addrs = addrs[:maxSurvey]
	}
	answers := make([]answer, len(addrs))
	var res Result
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res = v.HTTP01(ctx, req)
	}()
	for i, a := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = v.answerFrom(ctx, probe, a)
		}()
	}
	wg.Wait()
	// Addresses that refuse or drop the connection are reachability, not
	// content, where Boulder would not depend on them: an IPv6 address
	// (the request is retried on IPv4), an IPv4 address while the first
	// AAAA answers (IPv4 is never tried).
	v6, v4 := v.usable(req.V6), v.usable(req.V4)
	firstV6Answers := len(v6) > 0 && slices.ContainsFunc(answers, func(a answer) bool { return a.addr == v6[0] && !a.unreachable })
	var content []answer
	for _, a := range answers {
		switch {
		case a.unreachable && a.addr.Is6() && len(v4) > 0:
			res.Findings = appendUnreachable(res.Findings, req.Name, a, reports.CodeHTTP01IPv6Unreachable, ipv6FallbackNote)
		case a.unreachable && a.addr.Is4() && firstV6Answers:
			res.Findings = appendUnreachable(res.Findings, req.Name, a, a.code,
				fmt.Sprintf("Let's Encrypt connects to the first IPv6 address (%s), which answers, and never tries IPv4 while it does; clients and CAs that use IPv4 fail", v6[0]))
		default:
			content = append(content, a)
		}
	}
	res.Findings = append(res.Findings, compare(req.Name, content)...)
	res.Duration = time.Since(start)
	return res
}

// appendUnreachable adds a warning for an address the survey could not
// connect to, unless a finding already names it (the validation's own
// fallback finding for Boulder's first AAAA).
func appendUnreachable(fs []reports.Finding, name string, a answer, code reports.Code, why string) []reports.Finding {
	for _, f := range fs {
		if (f.Code == code || f.Code == reports.CodeHTTP01IPv6Unreachable) && f.Evidence["address"] == a.addr.String() {
			return fs
		}
	}
	o := hopOutcome{hop: a.hop, err: a.err}
	return append(fs, finding(code, name, fmt.Sprintf("%s; %s", describe(o), why), o, nil).WithSeverity(reports.Warning))
}

// answerFrom runs Boulder's chain pinned to one initial address.
func (v *Validator) answerFrom(ctx context.Context, req Request, a netip.Addr) answer {
	ctx, cancel := v.deadlineCtx(ctx)
	defer cancel()
	cr := v.chain(ctx, req.Name, "/.well-known/acme-challenge/"+req.Token, []netip.Addr{a}, a)
	if cr.err != nil {
		p := detailed(cr.err, false)
		key := "error: " + p.text
		return answer{addr: a, key: key, text: key, hop: cr.hops[0], err: cr.err, code: p.code, unreachable: cr.errHop == 0 && isDialErr(cr.err)}
	}
	o := cr.final
	key := fmt.Sprintf("%d", o.hop.Status)
	if o.hop.Status == 200 {
		key += fmt.Sprintf(" body %q", clip(o.peek, maxResponseSize))
	}
	return answer{addr: a, key: key, text: fmt.Sprintf("%s from %s", key, o.hop.URL), hop: o.hop}
}

// compare groups answers: IPv6 vs IPv4 first (F05), then any disagreement
// among all addresses (F06).
func compare(name string, answers []answer) []reports.Finding {
	groups := map[string][]string{}
	texts := map[string][]string{}
	var v6keys, v4keys = map[string]bool{}, map[string]bool{}
	for _, a := range answers {
		groups[a.key] = append(groups[a.key], a.addr.String())
		if !slices.Contains(texts[a.key], a.text) {
			texts[a.key] = append(texts[a.key], a.text)
		}
		if a.addr.Is6() {
			v6keys[a.key] = true
		} else {
			v4keys[a.key] = true
		}
	}
	if len(groups) < 2 {
		return nil
	}
	keys := make([]string, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s → %s", strings.Join(groups[k], ", "), strings.Join(texts[k], " / ")))
	}
	detail := strings.Join(parts, "; ")
	if len(v6keys) > 0 && len(v4keys) > 0 && disjoint(v6keys, v4keys) {
		return []reports.Finding{reports.New(reports.CodeHTTP01IPv6DifferentContent, name,
			"the IPv6 and IPv4 addresses answer differently: "+detail).With("answers", groups)}
	}
	return []reports.Finding{reports.New(reports.CodeHTTP01InconsistentBackends, name,
		"the addresses do not all answer the same: "+detail).With("answers", groups)}
}

func disjoint(a, b map[string]bool) bool {
	for k := range a {
		if b[k] {
			return false
		}
	}
	return true
}
