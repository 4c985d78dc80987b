package dnscheck

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/miekg/dns"

	"github.com/acmediag/acmediag/internal/special"
	"github.com/acmediag/acmediag/reports"
)

// checkAddresses establishes the A and AAAA records HTTP-01 and TLS-ALPN-01
// will connect to: the CA's resolver view, explained by what every
// authoritative server says.
func (n *nameRun) checkAddresses(ctx context.Context) (v6, v4 []netip.Addr) {
	base := dns.Fqdn(n.name.Base)
	n.timed("dns.address", base, func() (reports.CheckStatus, string) {
		var auth [2]struct {
			hops []*Hop
			end  ChainEnd
			fs   []reports.Finding
		}
		var ca [2]*resolverAnswer
		var views [][2]*resolverAnswer // every resolver, for split horizon
		var wg sync.WaitGroup
		for i, t := range []uint16{dns.TypeAAAA, dns.TypeA} {
			wg.Go(func() { auth[i].hops, auth[i].end, auth[i].fs = n.follow(ctx, base, t) })
		}
		views = make([][2]*resolverAnswer, len(n.c.Resolvers))
		for ri, res := range n.c.Resolvers {
			for i, t := range []uint16{dns.TypeAAAA, dns.TypeA} {
				wg.Go(func() { views[ri][i] = n.resolve(ctx, res, base, t) })
			}
		}
		wg.Wait()
		if len(views) > 0 {
			ca = views[0]
		}

		var fs []reports.Finding
		fs = append(fs, auth[0].fs...)
		fs = append(fs, auth[1].fs...)
		if len(auth[1].hops) > 0 {
			if h := n.zoneHealth(ctx, auth[1].hops[0].Path.Zone()); h != nil {
				if f := h.negativeTTLFinding(); f != nil {
					fs = append(fs, *f)
				}
			}
		}
		fs = append(fs, n.dnssecFindings(ctx, auth[0].hops)...)
		fs = append(fs, n.dnssecFindings(ctx, auth[1].hops)...)

		authAddrs := map[netip.Addr]string{} // address → server that served it
		for _, a := range auth {
			if len(a.hops) == 0 {
				continue
			}
			last := a.hops[len(a.hops)-1].Answers
			for i, resp := range last.Responses {
				if resp.Msg == nil {
					continue
				}
				_, recs, _ := chase(resp.Msg, last.Name, last.Type)
				for _, rr := range recs {
					if addr, ok := rrAddr(rr); ok {
						if _, seen := authAddrs[addr]; !seen {
							authAddrs[addr] = last.Hosts[i].String()
						}
					}
				}
			}
		}

		// The CA's view decides; the authoritative view explains.
		if ca[0] != nil {
			for _, rr := range ca[0].Records {
				if a, ok := rrAddr(rr); ok {
					v6 = append(v6, a)
				}
			}
			for _, rr := range ca[1].Records {
				if a, ok := rrAddr(rr); ok {
					v4 = append(v4, a)
				}
			}
		} else {
			for a := range authAddrs {
				if a.Is4() {
					v4 = append(v4, a)
				} else {
					v6 = append(v6, a)
				}
			}
			slices.SortFunc(v4, netip.Addr.Compare)
			slices.SortFunc(v6, netip.Addr.Compare)
		}

		host := n.name.Base
		// Reserved addresses first: a CA resolver strips them (private-address),
		// so they also explain an empty answer.
		var reserved []reports.Finding
		seen := map[netip.Addr]bool{}
		for _, a := range slices.Concat(v6, v4, slices.SortedFunc(maps.Keys(authAddrs), netip.Addr.Compare)) {
			if seen[a] {
				continue
			}
			seen[a] = true
			if why := special.ReservedReason(a, n.c.Allow); why != "" {
				src := "the CA's resolver"
				if s, ok := authAddrs[a]; ok {
					src = s
				}
				reserved = append(reserved, reports.New(reports.CodeDNSReservedAddress, "", fmt.Sprintf("%s has address %s (served by %s): %s", host, a, src, why)).
					With("address", a.String()))
			}
		}
		if end := auth[1].end; end.Loop || end.Endless {
			fs = append(fs, reports.New(reports.CodeDNSServFail, "", fmt.Sprintf("%s: %s; resolvers give up with SERVFAIL", host, end.Err)))
		} else if end.Dangling {
			fs = append(fs, reports.New(reports.CodeDNSNXDomain, "", fmt.Sprintf("%s is a CNAME chain that goes nowhere: %s", host, strings.TrimSpace(chainText(auth[1].hops, "")+" "+end.Err))))
		}
		switch {
		case ca[0] != nil && ca[0].Failed() && ca[1].Failed():
			problem := ca[1].Problem + "; " + ca[0].Problem
			nx := ca[0].Resp.Rcode() == dns.RcodeNameError && ca[1].Resp.Rcode() == dns.RcodeNameError
			fs = explainOr(fs, problem, func() reports.Finding {
				if nx {
					return reports.New(reports.CodeDNSNXDomain, "", fmt.Sprintf("%s does not exist: resolver %s answered NXDOMAIN for A and AAAA%s",
						host, ca[0].Resolver, authSummary(auth[1].hops, auth[1].end)))
				}
				return resolverFailure(ca[1], "A and AAAA")
			})
		case ca[0] == nil && auth[0].end.NXDomain && auth[1].end.NXDomain:
			fs = append(fs, reports.New(reports.CodeDNSNXDomain, "", fmt.Sprintf("%s does not exist%s", host, authSummary(auth[1].hops, auth[1].end))))
		case len(v4)+len(v6) == 0 && len(reserved) > 0:
			reserved[0] = reserved[0].WithProblem(reports.ProblemDNS, "No valid IP addresses found for "+host)
		case len(v4)+len(v6) == 0 && (ca[0] != nil || auth[1].end.Err == ""):
			fs = explainOr(fs, "No valid IP addresses found for "+host, func() reports.Finding {
				return reports.New(reports.CodeDNSNoAddress, "", fmt.Sprintf("%s has neither an A nor an AAAA record%s", host, authSummary(auth[1].hops, auth[1].end)))
			})
		}
		fs = append(fs, reserved...)
		fs = append(fs, n.splitHorizon(views, auth[0].hops, auth[1].hops)...)
		n.add(fs...)
		return statusOf(fs), fmt.Sprintf("AAAA %v, A %v", v6, v4)
	})
	return v6, v4
}

// explainOr attaches the CA's problem text to the first finding that
// already explains a failure (a dead zone, a lame delegation, bogus
// DNSSEC); without one, it adds the finding fallback builds.
func explainOr(fs []reports.Finding, problem string, fallback func() reports.Finding) []reports.Finding {
	for i, f := range fs {
		if f.Severity >= reports.Error && f.Problem == nil && f.Code != reports.CodeNameWildcardNeedsDNS01 {
			fs[i] = f.WithProblem(reports.ProblemDNS, problem)
			return fs
		}
	}
	return append(fs, fallback().WithProblem(reports.ProblemDNS, problem))
}

// resolverFailure classifies a failed resolver lookup that nothing in the
// authoritative view explains.
func resolverFailure(a *resolverAnswer, what string) reports.Finding {
	detail := fmt.Sprintf("resolver %s could not look up %s %s: %s", a.Resolver, what, trimDot(a.Resp.Name), a.Resp.Outcome())
	if a.EDE != nil {
		detail += fmt.Sprintf(" (extended error %d %q)", a.EDE.InfoCode, a.EDE.ExtraText)
	}
	switch {
	case a.Resp.Msg == nil:
		return reports.New(reports.CodeDNSTimeout, "", detail)
	case a.EDE != nil && strings.HasPrefix(edeSummary[a.EDE.InfoCode], "DNSSEC"):
		return reports.New(reports.CodeDNSDNSSECBogus, "", detail)
	case a.Resp.Msg.Rcode == dns.RcodeNameError:
		return reports.New(reports.CodeDNSNXDomain, "", detail)
	}
	return reports.New(reports.CodeDNSServFail, "", detail)
}

// authSummary says what the authoritative servers said at the end of a chain.
func authSummary(hops []*Hop, end ChainEnd) string {
	if len(hops) == 0 {
		return ""
	}
	last := hops[len(hops)-1]
	var lines []string
	if len(hops) > 1 {
		lines = append(lines, "CNAME chain: "+chainText(hops[:len(hops)-1], last.Name))
	}
	for i, r := range last.Answers.Responses {
		lines = append(lines, fmt.Sprintf("%s: %s", last.Answers.Hosts[i], answerText(r, last.Name, last.Answers.Type)))
	}
	if end.Err != "" {
		lines = append(lines, end.Err)
	}
	return "\nauthoritative servers of " + trimDot(last.Path.Zone().Name) + ":\n" + strings.Join(lines, "\n")
}

// answerText is one server's answer in a few words.
func answerText(r *Response, name string, qtype uint16) string {
	if r.Msg == nil {
		return r.Outcome()
	}
	if r.Msg.Rcode != dns.RcodeSuccess {
		return dns.RcodeToString[r.Msg.Rcode]
	}
	if !r.Msg.Authoritative {
		return "NOERROR without the AA bit"
	}
	_, recs, _ := chase(r.Msg, name, qtype)
	if len(recs) == 0 {
		return "NOERROR, no " + dns.TypeToString[qtype] + " record"
	}
	return strings.Join(recordSet(recs), ", ")
}

// splitHorizon compares every resolver's answer with the authoritative
// servers' answers: a resolver that sees something no authoritative server
// serves has a view of its own (split-horizon DNS, F30).
func (n *nameRun) splitHorizon(views [][2]*resolverAnswer, hopsByType ...[]*Hop) []reports.Finding {
	public := func(rr dns.RR) bool {
		a, ok := rrAddr(rr)
		return !ok || special.ReservedReason(a, n.c.Allow) == ""
	}
	var fs []reports.Finding
	for _, v := range views {
		for i, a := range v {
			if a == nil || i >= len(hopsByType) || len(hopsByType[i]) == 0 {
				continue
			}
			if f := splitFinding(a, hopsByType[i], public); f != nil {
				fs = append(fs, *f)
			}
		}
	}
	return fs
}

// public filters out records a CA resolver strips (reserved addresses).
func splitFinding(a *resolverAnswer, hops []*Hop, public func(dns.RR) bool) *reports.Finding {
	if a.Resp.Msg == nil || (a.Resp.Msg.Rcode != dns.RcodeSuccess && a.Resp.Msg.Rcode != dns.RcodeNameError) {
		return nil // a failing resolver is reported as a failure, not as a view
	}
	last := hops[len(hops)-1].Answers
	seen := setKey(recordSet(a.Records))
	if a.Resp.Msg.Rcode == dns.RcodeNameError {
		seen = "NXDOMAIN"
	}
	var authViews []string
	for _, r := range last.Responses {
		if !authoritative(r) {
			continue
		}
		_, recs, _ := chase(r.Msg, last.Name, last.Type)
		k := setKey(recordSet(recs))
		if r.Msg.Rcode == dns.RcodeNameError && len(recs) == 0 {
			k = "NXDOMAIN"
		}
		if k == seen || k != "NXDOMAIN" && setKey(recordSet(slices.DeleteFunc(slices.Clone(recs), func(rr dns.RR) bool { return !public(rr) }))) == seen {
			return nil
		}
		if !slices.Contains(authViews, k) {
			authViews = append(authViews, k)
		}
	}
	if len(authViews) == 0 {
		return nil
	}
	f := reports.New(reports.CodeDNSSplitHorizon, "", fmt.Sprintf("resolver %s answers %s %s with {%s}; the authoritative servers of %s serve {%s}",
		a.Resolver, trimDot(hops[0].Name), dns.TypeToString[last.Type], seen, trimDot(last.Zone.Name), strings.Join(authViews, "} or {"))).
		With("resolver", a.Resolver.String())
	return &f
}

func setKey(items []string) string {
	if len(items) == 0 {
		return "no record"
	}
	s := slices.Clone(items)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ", ")
}
