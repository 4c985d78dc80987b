package http01

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/publicsuffix"

	"github.com/acmediag/acmediag/reports"
)

// target is one of Boulder's validation records: the URL it records and
// requests, and the address and port it actually dials.
type target struct {
	url      *url.URL // urlStr parsed, as http.NewRequest parses it
	urlStr   string   // record.URL
	host     string   // record.Hostname
	port     int
	resolved []netip.Addr // record.AddressesResolved
	addr     netip.Addr   // record.AddressUsed
}

// hopOutcome is everything one request produced, including what Boulder
// does not look at (peek, headers) for diagnosis.
type hopOutcome struct {
	hop      Hop
	header   http.Header
	body     []byte // what Boulder read: ≤ 128 bytes, only for a 200
	peek     []byte // body bytes for diagnosis, ≤ peekLimit (includes body)
	bodyErr  error
	err      error // what http.Client.Do returned (usually a *url.Error)
	inTLS    bool  // err happened during the TLS handshake
	ttfb     time.Duration
	location string
}

// displayURL builds the URL of the first request: the port is left out when
// it is the scheme's configured port, so texts read as in production.
func (v *Validator) displayURL(scheme, host string, port int, path, rawQuery string) *url.URL {
	h := host
	if a, err := netip.ParseAddr(host); err == nil && a.Is6() {
		h = "[" + host + "]"
	}
	if (scheme == "http" && port != v.httpPort()) || (scheme == "https" && port != v.httpsPort()) {
		h = net.JoinHostPort(host, strconv.Itoa(port))
	}
	return &url.URL{Scheme: scheme, Host: h, Path: path, RawQuery: rawQuery}
}

// limitExceeded is core.ErrReaderLimitExceeded's text.
var errLimitExceeded = errors.New("reader size limit exceeded")

// readLimited is Boulder's io.ReadAll(core.ErrOnLimitReader(body, 128)):
// up to 128 bytes, then one more read of one byte, which fails the body if
// it yields anything. That extra byte, if any, is returned as over.
func readLimited(r io.Reader) (body, over []byte, err error) {
	buf := make([]byte, 0, maxResponseSize)
	for len(buf) < maxResponseSize {
		n, rerr := r.Read(buf[len(buf):maxResponseSize])
		buf = buf[:len(buf)+n]
		if rerr == io.EOF {
			return buf, nil, nil
		}
		if rerr != nil {
			return buf, nil, rerr
		}
	}
	var one [1]byte
	for {
		n, rerr := r.Read(one[:])
		if n > 0 {
			return buf, one[:], errLimitExceeded
		}
		if rerr == io.EOF {
			return buf, nil, nil
		}
		if rerr != nil {
			return buf, nil, rerr
		}
	}
}

// doHop makes one request of the validation and, for a 200, reads the body
// as Boulder does; other bodies are only peeked at for diagnosis.
func (v *Validator) doHop(ctx context.Context, t target, referer string) hopOutcome {
	start := time.Now()
	out := hopOutcome{hop: Hop{URL: t.urlStr, Hostname: t.host, Port: t.port, Resolved: t.resolved, Used: t.addr}}
	x, err := v.do(ctx, t, referer)
	defer x.close()
	defer func() { out.hop.Duration = time.Since(start) }()
	out.ttfb = time.Since(start)
	if err != nil {
		out.err, out.inTLS = err, x.inTLS
		out.hop.Err = err.Error()
		return out
	}
	resp := x.resp
	out.header = resp.Header
	out.hop.Status = resp.StatusCode
	out.hop.Proto = resp.Proto
	if resp.TLS != nil {
		out.hop.TLS = tls.VersionName(resp.TLS.Version)
	}
	out.location = resp.Header.Get("Location")
	switch resp.StatusCode {
	case 301, 302, 303, 307, 308:
		out.hop.Location = out.location
		return out
	case http.StatusOK:
		var over []byte
		out.body, over, out.bodyErr = readLimited(resp.Body)
		out.peek = append(append(out.peek, out.body...), over...)
	}
	if (out.bodyErr == nil || errors.Is(out.bodyErr, errLimitExceeded)) && len(out.peek) < peekLimit {
		// The peek is ours, not Boulder's: cap it in size and time so a slow
		// or endless body cannot hold the validation.
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > peekTimeout {
			_ = x.conn.SetReadDeadline(time.Now().Add(peekTimeout))
		}
		var tmp [512]byte
		for len(out.peek) < peekLimit {
			n, rerr := resp.Body.Read(tmp[:min(len(tmp), peekLimit-len(out.peek))])
			out.peek = append(out.peek, tmp[:n]...)
			if rerr != nil {
				break
			}
		}
	}
	b := out.peek
	if len(b) > maxResponseSize {
		b = b[:maxResponseSize]
	}
	out.hop.Body = string(b)
	return out
}

// policyError is an error Boulder builds itself (a berrors.BoulderError):
// a redirect its policy refuses, a DNS failure of a redirect target, a
// disallowed status. typ is the ACME problem type its berrors type maps to.
type policyError struct {
	typ  string
	code reports.Code
	text string
}

func (e *policyError) Error() string { return e.text }

// connErr is berrors.ConnectionFailureError.
func connErr(code reports.Code, format string, a ...any) *policyError {
	return &policyError{typ: reports.ProblemConnection, code: code, text: fmt.Sprintf(format, a...)}
}

// redirectTarget is Boulder's newValidationRecordFromRedirect: it applies
// the redirect policy to a 301/302/307/308 from hop from and returns the
// next record. Errors are what Boulder returns: a *policyError inside a
// *url.Error naming the rejected target (or, for a missing Location, the
// request's URL).
func (v *Validator) redirectTarget(ctx context.Context, from target, out hopOutcome, seen []Hop) (target, error) {
	if out.location == "" {
		return target{}, &url.Error{Op: "Get", URL: from.url.String(),
			Err: connErr(reports.CodeHTTP01RedirectBadStatus, "Invalid Location header in %d redirect", out.hop.Status)}
	}
	u, err := from.url.Parse(out.location)
	if err != nil {
		// do already failed on this, as http.Client does.
		return target{}, &url.Error{Op: "Get", URL: stripPassword(from.url), Err: fmt.Errorf("failed to parse Location header %q: %v", out.location, err)}
	}
	u.Host = strings.ToLower(u.Host)
	bad := func(pe *policyError) (target, error) {
		return target{}, &url.Error{Op: "Get", URL: u.String(), Err: pe}
	}
	host := u.Hostname()
	if strings.HasSuffix(host, ".well-known") {
		return bad(connErr(reports.CodeHTTP01RedirectBadHost, "invalid host in redirect target %q: check webserver config for missing '/' in redirect target", host))
	}
	next := u.String()
	for _, h := range seen {
		if h.URL == next {
			return bad(connErr(reports.CodeHTTP01RedirectLoop, "redirect loop detected"))
		}
	}
	t, pe := v.newRecord(ctx, u)
	if pe != nil {
		return bad(pe)
	}
	return t, nil
}

// newRecord is Boulder's newValidationRecord for a redirect target.
func (v *Validator) newRecord(ctx context.Context, u *url.URL) (target, *policyError) {
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, connErr(reports.CodeHTTP01RedirectBadScheme, `invalid protocol scheme: only "http" and "https" are supported, not %q`, u.Scheme)
	}
	port := v.httpPort()
	if u.Scheme == "https" {
		port = v.httpsPort()
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return target{}, connErr(reports.CodeHTTP01RedirectBadPort, "invalid port %q: must be an integer", p)
		}
		if n != v.httpPort() && n != v.httpsPort() {
			return target{}, connErr(reports.CodeHTTP01RedirectBadPort, "invalid port %d: must be %d or %d", n, v.httpPort(), v.httpsPort())
		}
		port = n
	}
	if len(u.Path) > maxPathSize {
		return target{}, connErr(reports.CodeHTTP01RedirectBadHost, "invalid url: path component too long")
	}
	host := u.Hostname()
	if host == "" {
		return target{}, connErr(reports.CodeHTTP01RedirectBadHost, "invalid host: host must be non-empty")
	}
	t := target{urlStr: u.String(), host: host, port: port}
	parsed, err := url.Parse(t.urlStr)
	if err != nil {
		// Boulder's http.NewRequest would fail on it; keep the URL as is.
		parsed = u
	}
	t.url = parsed
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return target{}, connErr(reports.CodeHTTP01RedirectBadHost, "invalid host: contains IPv6 scope zone")
		}
		if r := v.reservedReason(ip); r != "" {
			return target{}, connErr(reports.CodeHTTP01RedirectBadHost, "invalid host: IP address is in a reserved address block: %s", r)
		}
		t.resolved, t.addr = []netip.Addr{ip}, ip
		return t, nil
	}
	if !ianaTLD(host) {
		return target{}, connErr(reports.CodeHTTP01RedirectBadHost, "invalid host: must end in IANA registered TLD")
	}
	var v6, v4 []netip.Addr
	if v.Resolver != nil {
		v6, v4, err = v.Resolver.LookupHost(ctx, host)
	} else {
		err = errors.New("no resolver configured for redirect targets")
	}
	v6, v4 = v.usable(v6), v.usable(v4)
	if len(v6) == 0 && len(v4) == 0 {
		// getAddrs: a berrors.DNSError joining the A and AAAA failures.
		text := noAddressText(host)
		if err != nil {
			text = err.Error()
		}
		return target{}, &policyError{typ: reports.ProblemDNS, code: reports.CodeHTTP01RedirectBadHost, text: text}
	}
	t.resolved = append(append(make([]netip.Addr, 0, len(v6)+len(v4)), v6...), v4...)
	t.addr = first(v6, v4)
	return t, nil
}

// first is Boulder's choice of address: the first IPv6, else the first IPv4.
func first(v6, v4 []netip.Addr) netip.Addr {
	if len(v6) > 0 {
		return v6[0]
	}
	return v4[0]
}

// fallback is newValidationRecordFromFallback: the same record on the first
// IPv4 address, when the failed request went to IPv6 and there is one.
func fallback(t target) (target, bool) {
	if t.addr.Is4() {
		return target{}, false
	}
	for _, a := range t.resolved {
		if a.Is4() {
			t.addr = a
			return t, true
		}
	}
	return target{}, false
}

// ianaTLD reports whether host ends in a TLD of the ICANN section of the
// public suffix list, Boulder's iana.ExtractSuffix test.
func ianaTLD(host string) bool {
	tld := host[strings.LastIndexByte(host, '.')+1:]
	if tld == "" {
		return false
	}
	s, icann := publicsuffix.PublicSuffix(tld)
	return icann && s == tld
}

// chainResult is one run of Boulder's processHTTPValidation.
type chainResult struct {
	hops      []Hop
	outs      []hopOutcome // parallel to hops
	final     *hopOutcome  // the final (non-redirect) response, when one
	err       error        // the error Boulder would classify (nil: a final response)
	errHop    int          // index of the hop whose address prefixes the problem
	bare      bool         // err carries no address prefix ("Too many hops")
	fallbacks []int        // hops whose IPv6 dial failed and were retried on IPv4
}

// chain runs processHTTPValidation: at most maxRequests requests, each
// redirect target resolved and checked, and any request whose IPv6 dial
// fails retried once on the first IPv4 address of its own record.
func (v *Validator) chain(ctx context.Context, name, path string, resolved []netip.Addr, addr netip.Addr) chainResult {
	var cr chainResult
	lg := v.log()
	u := v.displayURL("http", name, v.httpPort(), path, "")
	t := target{url: u, urlStr: u.String(), host: name, port: v.httpPort(), resolved: resolved, addr: addr}
	referer := ""
	for range maxRequests {
		out := v.doHop(ctx, t, referer)
		idx := len(cr.hops)
		cr.hops = append(cr.hops, out.hop)
		cr.outs = append(cr.outs, out)
		if lg.Core().Enabled(zap.DebugLevel) {
			lg.Debug("hop", zap.String("url", out.hop.URL), zap.Stringer("addr", t.addr), zap.Int("status", out.hop.Status), zap.String("err", out.hop.Err))
		}
		if out.err != nil {
			if isDialErr(out.err) && ctx.Err() == nil {
				if fb, ok := fallback(t); ok {
					cr.fallbacks = append(cr.fallbacks, idx)
					t = fb
					continue
				}
			}
			cr.err, cr.errHop = out.err, idx
			return cr
		}
		switch s := out.hop.Status; {
		case s == 301 || s == 302 || s == 307 || s == 308:
			next, err := v.redirectTarget(ctx, t, out, cr.hops)
			if err != nil {
				cr.err, cr.errHop = err, idx
				return cr
			}
			// Like http.Client: no Referer from https to http, never userinfo.
			referer = ""
			if t.url.Scheme != "https" || !strings.HasPrefix(next.urlStr, "http://") {
				ru := *t.url
				ru.User = nil
				referer = ru.String()
			}
			t = next
			continue
		case s >= 300 && s < 400:
			cr.err = connErr(reports.CodeHTTP01RedirectBadStatus, "Received disallowed redirect status code %d", s)
			cr.errHop = idx
			return cr
		}
		cr.final, cr.errHop = &cr.outs[idx], idx
		return cr
	}
	cr.err = connErr(reports.CodeHTTP01TooManyRedirects, "Too many hops")
	cr.errHop, cr.bare = len(cr.hops)-1, true
	return cr
}

// isDialErr is Boulder's fallbackErr: a *net.OpError from the dial.
func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
