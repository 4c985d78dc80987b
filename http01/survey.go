package http01

import (
	"context"
	"fmt"
	"net/netip"
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
	key  string // comparable summary
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
	res.Findings = append(res.Findings, compare(req.Name, answers)...)
	res.Duration = time.Since(start)
	return res
}

// answerFrom runs Boulder's chain pinned to one initial address.
func (v *Validator) answerFrom(ctx context.Context, req Request, a netip.Addr) answer {
	ctx, cancel := v.deadlineCtx(ctx)
	defer cancel()
	cr := v.chain(ctx, req.Name, "/.well-known/acme-challenge/"+req.Token, []netip.Addr{a}, a)
	if cr.err != nil {
		return answer{addr: a, key: "error: " + detailed(cr.err, false).text}
	}
	o := cr.final
	key := fmt.Sprintf("%d from %s", o.hop.Status, o.hop.URL)
	if o.hop.Status == 200 {
		key += fmt.Sprintf(" body %q", clip(o.peek, maxResponseSize))
	}
	return answer{addr: a, key: key}
}

// compare groups answers: IPv6 vs IPv4 first (F05), then any disagreement
// among all addresses (F06).
func compare(name string, answers []answer) []reports.Finding {
	groups := map[string][]string{}
	var v6keys, v4keys = map[string]bool{}, map[string]bool{}
	for _, a := range answers {
		groups[a.key] = append(groups[a.key], a.addr.String())
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
		parts = append(parts, fmt.Sprintf("%s → %s", strings.Join(groups[k], ", "), k))
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
