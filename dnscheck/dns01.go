package dnscheck

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/reports"
)

// TooManyTXT is the TXT count above which a challenge label is cluttered:
// stale values from failed attempts push the answer past the UDP limit.
const TooManyTXT = 10

// maxTransferRecords bounds a zone transfer read for dns01.wrong_zone.
const maxTransferRecords = 100_000

// ChallengeName is the label DNS-01 looks at for a name (wildcards share
// the base name's label).
func ChallengeName(base string) string {
	return "_acme-challenge." + dns.Fqdn(strings.TrimPrefix(base, "*."))
}

// checkDNS01 looks at _acme-challenge the way the CA does (through the
// resolver, CNAMEs followed) and at every authoritative server on the way.
func (n *nameRun) checkDNS01(ctx context.Context) {
	cname := ChallengeName(n.name.Base)
	n.timed("dns01.txt", cname, func() (reports.CheckStatus, string) {
		var hops []*Hop
		var end ChainEnd
		var fs []reports.Finding
		views := make([][2]*resolverAnswer, len(n.c.Resolvers))
		var wg sync.WaitGroup
		wg.Go(func() { hops, end, fs = n.follow(ctx, cname, dns.TypeTXT) })
		for i, res := range n.c.Resolvers {
			wg.Go(func() { views[i][0] = n.resolve(ctx, res, cname, dns.TypeTXT) })
		}
		wg.Wait()

		challenge := trimDot(cname)
		fs = append(fs, n.dnssecFindings(ctx, hops)...)
		if len(hops) > 0 {
			if f := n.zoneHealth(ctx, hops[len(hops)-1].Path.Zone()).negativeTTLFinding(); f != nil {
				fs = append(fs, *f)
			}
		}
		if end.Dangling {
			f := reports.New(reports.CodeDNS01CNAMEDangling, "", fmt.Sprintf("%s → %s: %s", challenge, chainText(hops[1:], ""), end.Err))
			if end.Err == "" {
				f.Detail = fmt.Sprintf("the CNAME chain %s ends at a name that does not exist", chainText(hops, ""))
			}
			fs = append(fs, f)
		}
		var ca *resolverAnswer
		if len(views) > 0 {
			ca = views[0][0]
		}
		if ca != nil && ca.Failed() && ca.Resp.Rcode() != dns.RcodeNameError {
			fs = explainOr(fs, ca.Problem, func() reports.Finding { return resolverFailure(ca, "TXT") })
		}
		var note string
		if len(hops) > 0 && end.Err == "" && !end.Dangling {
			var tfs []reports.Finding
			tfs, note = n.judgeTXT(ctx, hops, end, ca)
			fs = append(fs, tfs...)
		}
		fs = append(fs, n.splitHorizon(views, hops)...)
		n.add(fs...)
		return statusOf(fs), note
	})
}

// judgeTXT compares the TXT values at every authoritative address of the
// chain's last zone with the expected value.
func (n *nameRun) judgeTXT(ctx context.Context, hops []*Hop, end ChainEnd, ca *resolverAnswer) ([]reports.Finding, string) {
	last := hops[len(hops)-1]
	challenge := trimDot(hops[0].Name)
	var fs []reports.Finding
	want := n.req.ExpectTXT
	var have, lack, answers []string
	values := map[string]bool{}
	maxCount := 0
	for i, r := range last.Answers.Responses {
		host := last.Answers.Hosts[i].String()
		answers = append(answers, fmt.Sprintf("%s: %s", host, answerText(r, last.Name, dns.TypeTXT)))
		if !authoritative(r) {
			continue
		}
		_, recs, _ := chase(r.Msg, last.Name, dns.TypeTXT)
		vals := txtValues(recs)
		maxCount = max(maxCount, len(vals))
		for _, v := range vals {
			values[v] = true
		}
		if slices.Contains(vals, want) {
			have = append(have, host)
		} else {
			lack = append(lack, host)
		}
	}
	where := fmt.Sprintf("\nauthoritative servers of %s:\n%s", trimDot(last.Path.Zone().Name), strings.Join(answers, "\n"))
	if maxCount > TooManyTXT {
		fs = append(fs, reports.New(reports.CodeDNS01TooManyTXT, "", fmt.Sprintf("%s holds %d TXT records: old challenge values pile up and the answer outgrows %d bytes over UDP",
			trimDot(last.Name), maxCount, EDNSBufferSize)).With("count", maxCount))
	}
	if want == "" {
		if len(values) == 0 {
			return fs, "no TXT record yet (normal before a challenge is presented); set the expected value (`--expect-txt`, or `expect_txt` in the daemon's targets) to check it"
		}
		return fs, fmt.Sprintf("%d TXT values present", len(values))
	}
	switch {
	case len(have) > 0 && len(lack) > 0:
		fs = append(fs, reports.New(reports.CodeDNS01TXTNotPropagated, "", fmt.Sprintf("%q is served by %d of %d server addresses; missing at:\n%s%s",
			want, len(have), len(have)+len(lack), strings.Join(lack, "\n"), where)).With("missing", lack).With("serving", have))
	case len(have) == 0 && len(values) > 0:
		fs = append(fs, reports.New(reports.CodeDNS01TXTWrongValue, "", fmt.Sprintf("%s has TXT {%s} but not %q%s",
			challenge, setKey(slices.Sorted(maps.Keys(values))), want, where)).
			WithProblem(reports.ProblemUnauthorized, incorrectTXT(ca, challenge)))
	case len(have) == 0:
		f := reports.New(reports.CodeDNS01TXTMissing, "", fmt.Sprintf("no TXT record at %s%s", challenge, where))
		problem, typ := "No TXT record found at "+challenge, reports.ProblemUnauthorized
		if ca != nil && ca.Resp.Rcode() == dns.RcodeNameError {
			problem, typ = ca.Problem, reports.ProblemDNS
		}
		fs = append(fs, f.WithProblem(typ, problem))
		fs = append(fs, n.misplacedTXT(ctx, hops, want)...)
	}
	return fs, fmt.Sprintf("expected value at %d of %d addresses", len(have), len(have)+len(lack))
}

// incorrectTXT is Boulder's wording for a TXT set without the expected value.
func incorrectTXT(ca *resolverAnswer, challenge string) string {
	var vals []string
	if ca != nil {
		vals = txtValues(ca.Records)
	}
	if len(vals) == 0 {
		return "No TXT record found at " + challenge
	}
	first := vals[0]
	if len(first) > 100 {
		first = first[:100] + "..."
	}
	more := ""
	if len(vals) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(vals)-1)
	}
	return fmt.Sprintf("Incorrect TXT record %q%s found at %s", first, more, challenge)
}

func txtValues(rrs []dns.RR) []string {
	var out []string
	for _, rr := range rrs {
		if t, ok := rr.(*dns.TXT); ok {
			out = append(out, strings.Join(t.Txt, ""))
		}
	}
	return out
}

// misplacedTXT looks for the expected value where people put it by mistake:
// a doubled label (the zone name appended twice by a provider's UI) and,
// when the challenge name sits below a zone cut, the parent zone (visible
// only when the parent allows a zone transfer).
func (n *nameRun) misplacedTXT(ctx context.Context, hops []*Hop, want string) []reports.Finding {
	first := hops[0]
	zone := first.Path.Zone()
	var fs []reports.Finding
	rnd := make([]byte, 6)
	_, _ = rand.Read(rnd)
	for _, doubled := range []string{first.Name + trimDot(zone.Name) + ".", first.Name + trimDot(n.name.Base) + "."} {
		if doubled == first.Name || len(doubled) > 253 {
			continue
		}
		ans := n.lookupAll(ctx, zone, doubled, dns.TypeTXT)
		r := ans.First()
		if r == nil {
			continue
		}
		_, recs, _ := chase(r.Msg, doubled, dns.TypeTXT)
		if len(recs) == 0 {
			continue
		}
		// A wildcard TXT answers every name; only a name-specific record is a doubled label.
		probe := n.lookupAll(ctx, zone, "_acmediag-"+hex.EncodeToString(rnd)+"."+trimDot(n.name.Base)+"."+trimDot(zone.Name)+".", dns.TypeTXT).First()
		if probe != nil {
			if _, precs, _ := chase(probe.Msg, probe.Name, dns.TypeTXT); len(precs) > 0 {
				continue
			}
		}
		fs = append(fs, reports.New(reports.CodeDNS01DoubledLabel, "", fmt.Sprintf("the TXT record was found at %s (%s) instead of %s: the zone name was appended twice",
			trimDot(doubled), strings.Join(recordSet(recs), ", "), trimDot(first.Name))).With("found_at", trimDot(doubled)))
		break
	}
	if zone.Parent != "" && userZone(zone.Parent) {
		if f := n.transferFind(ctx, first.Path, first.Name, want); f != nil {
			fs = append(fs, *f)
		}
	}
	return fs
}

// transferFind reads the parent zone by AXFR from its servers (the first
// that allows it) and reports a TXT for name hidden under the zone cut.
func (n *nameRun) transferFind(ctx context.Context, path *Path, name, want string) *reports.Finding {
	if len(path.Zones) < 2 {
		return nil
	}
	parent := path.Zones[len(path.Zones)-2]
	for _, ha := range parent.Addrs() {
		if n.q.Dead(ha.Addr) {
			continue
		}
		recs, err := n.q.Transfer(ctx, ha, n.w.port, parent.Name, maxTransferRecords)
		if err != nil {
			continue
		}
		for _, rr := range recs {
			t, ok := rr.(*dns.TXT)
			if !ok || !strings.EqualFold(t.Hdr.Name, name) {
				continue
			}
			v := strings.Join(t.Txt, "")
			f := reports.New(reports.CodeDNS01WrongZone, "", fmt.Sprintf("zone %s (served by %s) holds TXT %q for %s, but %s is delegated to its own zone %s: resolvers never see records the parent holds below a zone cut",
				trimDot(parent.Name), ha, v, trimDot(name), trimDot(path.Zone().Name), trimDot(path.Zone().Name))).
				With("written_in", trimDot(parent.Name)).With("zone", trimDot(path.Zone().Name)).With("matches_expected", v == want)
			return &f
		}
		return nil
	}
	return nil
}
