package http01

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/acmediag/acmediag/reports"
)

// HTTP01 validates req the way Boulder's VA does and explains the outcome.
// Without a Token it fetches a random token and judges reachability only:
// a 200 or 404 from the final hop counts as reachable; any other status
// makes OK false with the Problem LE would word for that token, reported at
// Warning severity because the real token may still be routed differently.
func (v *Validator) HTTP01(ctx context.Context, req Request) Result {
	start := time.Now()
	ctx, cancel := v.deadlineCtx(ctx)
	defer cancel()
	withToken := req.Token != ""
	token := req.Token
	if !withToken {
		token = randomToken()
	}
	res := Result{}
	v6, v4 := v.usable(req.V6), v.usable(req.V4)
	if len(v6) == 0 && len(v4) == 0 {
		res.Problem = &reports.Problem{Type: reports.ProblemDNS, Detail: noAddressText(req.Name)}
		res.Findings = []reports.Finding{reports.New(reports.CodeDNSNoAddress, req.Name,
			fmt.Sprintf("no usable address for %s: AAAA %v, A %v (special-purpose addresses are dropped before Let's Encrypt connects)", req.Name, req.V6, req.V4)).
			WithProblem(res.Problem.Type, res.Problem.Detail)}
		res.Duration = time.Since(start)
		return res
	}
	resolved := append(append(make([]netip.Addr, 0, len(v6)+len(v4)), v6...), v4...)
	cr := v.chain(ctx, req.Name, "/.well-known/acme-challenge/"+token, resolved, first(v6, v4))
	res.Trace = cr.hops
	v.judge(&res, req, withToken, cr)
	res.Duration = time.Since(start)
	return res
}

// describe says what one hop got back, for finding details.
func describe(o hopOutcome) string {
	where := fmt.Sprintf("%s (%s) GET %s", o.hop.Used, family(o.hop.Used), o.hop.URL)
	switch {
	case o.err != nil:
		return fmt.Sprintf("%s: %s", where, o.hop.Err)
	case o.hop.Location != "":
		return fmt.Sprintf("%s: %d → Location %q", where, o.hop.Status, o.hop.Location)
	}
	return fmt.Sprintf("%s: %d, body %q", where, o.hop.Status, clip(o.peek, 96))
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

// chainText lists the hops, for redirect findings.
func chainText(hops []Hop) string {
	parts := make([]string, 0, len(hops))
	for _, h := range hops {
		s := fmt.Sprintf("%s [%s]", h.URL, h.Used)
		if h.Status != 0 {
			s += fmt.Sprintf(" %d", h.Status)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " → ")
}

func finding(code reports.Code, name, detail string, o hopOutcome, p *reports.Problem) reports.Finding {
	f := reports.New(code, name, detail).With("url", o.hop.URL).With("address", o.hop.Used.String())
	if o.hop.Status != 0 {
		f = f.With("status", o.hop.Status)
	}
	if p != nil {
		f = f.WithProblem(p.Type, p.Detail)
	}
	return f
}

// ipv6FallbackNote says what an IPv6 address that does not accept
// connections costs while IPv4 works.
const ipv6FallbackNote = "Let's Encrypt retries a request whose IPv6 connection fails on the first IPv4 address, on every request " +
	"(redirects included), and passes when IPv4 serves the right content; it costs up to the dial timeout and one of its 10 requests. " +
	"Clients and CAs that do not fall back fail (older Boulder fell back on the first request only)"

// judge turns a chain into Boulder's verdict and acmediag's findings.
func (v *Validator) judge(res *Result, req Request, withToken bool, cr chainResult) {
	name := req.Name
	add := func(f reports.Finding) { res.Findings = append(res.Findings, f) }
	for i, idx := range cr.fallbacks {
		if i > 0 && cr.outs[idx].hop.Used == cr.outs[cr.fallbacks[i-1]].hop.Used {
			continue // one finding per unreachable address
		}
		// An IPv6 dial failed; Boulder retried that request on the first A.
		ff := cr.outs[idx]
		note := ipv6FallbackNote
		if cr.err != nil && cr.errHop == idx+1 {
			note = "Let's Encrypt retried this request on IPv4, which failed too (see the other finding)"
		}
		add(finding(reports.CodeHTTP01IPv6Unreachable, name,
			fmt.Sprintf("%s; %s", describe(ff), note), ff, nil).WithSeverity(reports.Warning))
	}
	if cr.err != nil {
		o := cr.outs[cr.errHop]
		p := detailed(cr.err, o.inTLS && o.err != nil)
		prob := &reports.Problem{Type: p.typ, Detail: fmt.Sprintf("%s: %s", o.hop.Used, p.text)}
		if cr.bare {
			prob.Detail = p.text
		}
		res.Problem = prob
		code, sev := p.code, reports.Lookup(p.code).Severity
		detail := ""
		switch {
		case cr.bare:
			detail = fmt.Sprintf("Let's Encrypt makes at most %d requests per validation (redirects and IPv4 retries included) and stopped after %s (chain: %s)", maxRequests, describe(o), chainText(cr.hops))
		case o.err != nil:
			detail = describe(o)
			if code == reports.CodeHTTP01ConnectTimeout || code == reports.CodeHTTP01ConnectionRefused {
				detail = fmt.Sprintf("%s; the %s address does not accept connections on port %d", detail, family(o.hop.Used), o.hop.Port)
			}
			if isDialErr(o.err) && o.hop.Used.Is6() && !hasV4(o.hop.Resolved) {
				code = reports.CodeHTTP01IPv6Unreachable
				detail += "; there is no IPv4 address to fall back to"
			}
		default:
			detail = fmt.Sprintf("%s; Let's Encrypt refuses it: %s (chain: %s)", describe(o), p.text, chainText(cr.hops))
		}
		if sev < reports.Error {
			sev = reports.Error // a root cause that fails the validation
		}
		add(finding(code, name, detail, o, prob).WithSeverity(sev))
		v.slowFindings(res, name, cr, code)
		return
	}
	o := *cr.final
	switch {
	case o.hop.Status != 200:
		if !withToken && o.hop.Status == 404 {
			res.OK = true
			break
		}
		prob := &reports.Problem{Type: reports.ProblemUnauthorized, Detail: fmt.Sprintf("%s: Invalid response from %s: %d", o.hop.Used, o.hop.URL, o.hop.Status)}
		res.Problem = prob
		code := reports.CodeHTTP01BadStatus
		detail := describe(o)
		if what := match(tlsPortSignatures, o.hop.Status, o.header, o.peek); what != "" {
			code = reports.CodeHTTP01TLSOnHTTPPort
			detail += "; a TLS listener answered plain HTTP (" + what + ")"
		} else if o.hop.Status == 404 {
			code = reports.CodeHTTP01NotRouted
			if what := match(catchAllSignatures, 404, o.header, o.peek); what != "" {
				detail += "; answered by " + what + ", not by the ACME solver"
			}
		}
		sev := reports.Error
		if !withToken {
			sev = reports.Warning
			detail += "; this was a random token, so the real one may be routed differently"
		}
		add(finding(code, name, detail, o, prob).WithSeverity(sev))
		v.wafFinding(res, name, o)
	case errors.Is(o.bodyErr, errLimitExceeded) && !withToken:
		// A catch-all route answers the challenge path with a long page;
		// a real token would fail the same way if it is routed there too.
		res.OK = true
		add(finding(reports.CodeHTTP01NotRouted, name, describe(o)+"; a random token got 200 with a body over 128 bytes: a catch-all route answers the challenge path, which would shadow the solver", o,
			&reports.Problem{Type: reports.ProblemUnauthorized, Detail: fmt.Sprintf("%s: Error reading HTTP response body: %v", o.hop.Used, o.bodyErr)}).WithSeverity(reports.Warning))
	case o.bodyErr != nil:
		prob := &reports.Problem{Type: reports.ProblemUnauthorized, Detail: fmt.Sprintf("%s: Error reading HTTP response body: %v", o.hop.Used, o.bodyErr)}
		res.Problem = prob
		code, what := reports.CodeHTTP01ConnectionReset, "reading the body failed: "+o.bodyErr.Error()
		var ne net.Error
		switch {
		case errors.Is(o.bodyErr, errLimitExceeded):
			code, what = reports.CodeHTTP01WrongBody, "the body is longer than 128 bytes, which Let's Encrypt refuses; "+bodyHint(o.peek, req.KeyAuth)
		case errors.As(o.bodyErr, &ne) && ne.Timeout():
			code = reports.CodeHTTP01SlowResponse
		}
		add(finding(code, name, describe(o)+"; "+what, o, prob).WithSeverity(reports.Error))
		if code == reports.CodeHTTP01WrongBody {
			v.wafFinding(res, name, o)
		}
	default:
		payload := payloadOf(o.body)
		if !withToken {
			res.OK = true
			if what := match(catchAllSignatures, 200, o.header, o.peek); what != "" {
				add(finding(reports.CodeHTTP01NotRouted, name, describe(o)+"; a random token got 200 from "+what+", which would shadow the solver", o, nil).WithSeverity(reports.Warning))
			}
			break
		}
		if payload != req.KeyAuth {
			prob := &reports.Problem{Type: reports.ProblemUnauthorized, Detail: fmt.Sprintf("The key authorization file from the server did not match this challenge. Expected %q (got %q)", req.KeyAuth, payload)}
			res.Problem = prob
			add(finding(reports.CodeHTTP01WrongBody, name, describe(o)+"; "+bodyHint(o.body, req.KeyAuth), o, prob))
			v.wafFinding(res, name, o)
			break
		}
		res.OK = true
	}
	v.slowFindings(res, name, cr, "")
}

// wafFinding adds http01.waf_or_auth (Warning) when the failing answer
// carries a CDN, WAF or auth signature or is a 401/403/407.
func (v *Validator) wafFinding(res *Result, name string, o hopOutcome) {
	what := match(wafSignatures, o.hop.Status, o.header, o.peek)
	if what == "" && (o.hop.Status == 401 || o.hop.Status == 403 || o.hop.Status == 407) {
		what = fmt.Sprintf("status %d (authentication or access rule)", o.hop.Status)
	}
	if what == "" {
		return
	}
	res.Findings = append(res.Findings, finding(reports.CodeHTTP01WAFOrAuth, name,
		describe(o)+"; answered by "+what+" in front of the challenge path", o, nil))
}

// slowFindings warns about hops slower than SlowAfter that still answered.
func (v *Validator) slowFindings(res *Result, name string, cr chainResult, already reports.Code) {
	if already == reports.CodeHTTP01SlowResponse {
		return
	}
	for _, o := range cr.outs {
		if o.err == nil && o.ttfb > v.slowAfter() {
			res.Findings = append(res.Findings, finding(reports.CodeHTTP01SlowResponse, name,
				fmt.Sprintf("%s: first byte after %s (Let's Encrypt gives the whole validation about %s)", describe(o), o.ttfb.Round(time.Millisecond), v.timeout()), o, nil))
			return
		}
	}
}

func hasV4(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if a.Is4() {
			return true
		}
	}
	return false
}
