package http01

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
	"golang.org/x/net/publicsuffix"

	"github.com/acmediag/acmediag/reports"
)

// target is where one hop goes: the URL Boulder records, and the address and
// port it actually dials.
type target struct {
	url      *url.URL
	host     string
	port     int
	resolved []netip.Addr
	addr     netip.Addr
}

// hopOutcome is everything one request produced, including what Boulder
// does not look at (peek, headers) for diagnosis.
type hopOutcome struct {
	hop       Hop
	header    http.Header
	body      []byte // what Boulder read: ≤ 128 bytes, only for a final 200
	peek      []byte // body bytes for diagnosis, ≤ peekLimit (includes body)
	bodyErr   error
	err       error // transport error as net/http returns it (*url.Error)
	inTLS     bool  // err happened during the TLS handshake
	tlsVer    uint16
	ttfb      time.Duration
	location  string
	redirects bool // a status Go's client would follow, with a Location
}

// displayURL builds the URL Boulder records: the port is left out when it is
// the scheme's configured port, so texts read as in production.
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

// doHop makes one request the way Boulder's transport does: pre-resolved
// dial, keep-alives off, certificate not verified, redirects not followed.
func (v *Validator) doHop(ctx context.Context, t target, referer string, readBody bool) hopOutcome {
	start := time.Now()
	out := hopOutcome{hop: Hop{URL: t.url.String(), Hostname: t.host, Port: t.port, Resolved: t.resolved, Used: t.addr}}
	defer func() { out.hop.Duration = time.Since(start) }()

	dialer := &net.Dialer{Timeout: v.dialTimeout()}
	if v.LocalAddr.IsValid() && v.LocalAddr.Is4() == t.addr.Is4() {
		dialer.LocalAddr = &net.TCPAddr{IP: v.LocalAddr.AsSlice()}
	}
	dst := netip.AddrPortFrom(t.addr, uint16(t.port)).String()
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			// Boulder shaves 10 ms so an exhausted overall deadline still
			// reads as a dial timeout, not as a generic cancellation.
			if dl, ok := ctx.Deadline(); ok {
				var cancel context.CancelFunc
				ctx, cancel = context.WithDeadline(ctx, dl.Add(-dialShave))
				defer cancel()
			}
			return dialer.DialContext(ctx, "tcp", dst)
		},
		TLSClientConfig:        &tls.Config{InsecureSkipVerify: true, ServerName: t.host}, //nolint:gosec // Boulder never verifies redirect-target certificates
		DisableKeepAlives:      true,
		MaxIdleConns:           1,
		IdleConnTimeout:        time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		MaxResponseHeaderBytes: maxHeaderBytes,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	tlsDone := false
	trace := &httptrace.ClientTrace{
		TLSHandshakeStart: func() { out.inTLS = true },
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			if err == nil {
				tlsDone = true
				out.tlsVer = cs.Version
			}
		},
		GotFirstResponseByte: func() { out.ttfb = time.Since(start) },
	}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodGet, t.url.String(), nil)
	if err != nil {
		out.err = fmt.Errorf("building request: %w", err)
		out.hop.Err = out.err.Error()
		return out
	}
	req.Header.Set("User-Agent", v.userAgent())
	req.Header.Set("Accept", "*/*")
	if referer != "" {
		req.Header.Set("Referer", referer)
	}
	resp, err := client.Do(req)
	if tlsDone {
		out.inTLS = false
	}
	if err != nil {
		out.err = err
		out.hop.Err = err.Error()
		return out
	}
	defer resp.Body.Close()
	out.header = resp.Header
	out.hop.Status = resp.StatusCode
	out.hop.Proto = resp.Proto
	if resp.TLS != nil {
		out.tlsVer = resp.TLS.Version
		out.hop.TLS = tls.VersionName(resp.TLS.Version)
	}
	out.location = resp.Header.Get("Location")
	switch resp.StatusCode {
	case 301, 302, 303, 307, 308:
		// Go's client follows these when a Location is present; without
		// one it hands the response back as final.
		out.redirects = out.location != ""
	}
	if out.redirects {
		out.hop.Location = out.location
		return out
	}
	if readBody && resp.StatusCode == http.StatusOK {
		out.body, out.bodyErr = io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	}
	out.peek = append(out.peek, out.body...)
	if out.bodyErr == nil && len(out.peek) < peekLimit {
		// The peek is ours, not Boulder's: cap it in size and time so a slow
		// or endless body cannot hold the validation.
		stop := time.AfterFunc(peekTimeout, func() { resp.Body.Close() })
		more, _ := io.ReadAll(io.LimitReader(resp.Body, int64(peekLimit-len(out.peek))))
		stop.Stop()
		out.peek = append(out.peek, more...)
	}
	b := out.peek
	if len(b) > maxResponseSize {
		b = b[:maxResponseSize]
	}
	out.hop.Body = string(b)
	return out
}

// policyError is a redirect refused by Boulder's policy (a
// berrors.ConnectionFailure), or a DNS failure of a redirect target.
type policyError struct {
	code reports.Code
	text string
}

func (e *policyError) Error() string { return e.text }

// redirectTarget applies Boulder's redirect policy to a response from hop
// from and returns the next target. Errors are *policyError wrapped in a
// *url.Error naming the Location as Go's client does.
func (v *Validator) redirectTarget(ctx context.Context, from target, out hopOutcome, seen []Hop) (target, error) {
	loc := out.location
	u, err := from.url.Parse(loc)
	if err != nil {
		// Go's client fails this before CheckRedirect runs, naming the
		// previous request's URL.
		return target{}, &url.Error{Op: "Get", URL: from.url.String(), Err: fmt.Errorf("failed to parse Location header %q: %w", loc, err)}
	}
	bad := func(code reports.Code, format string, a ...any) (target, error) {
		return target{}, &url.Error{Op: "Get", URL: loc, Err: &policyError{code: code, text: fmt.Sprintf(format, a...)}}
	}
	if out.tlsVer != 0 && out.tlsVer < tls.VersionTLS12 {
		return bad(reports.CodeHTTP01RedirectTLSError, "validation attempt was redirected to an HTTPS server that doesn't support TLSv1.2 or better. See https://community.letsencrypt.org/t/rejecting-sha-1-csrs-and-validation-using-tls-1-0-1-1-urls/175144")
	}
	switch out.hop.Status {
	case 301, 302, 307, 308:
	default:
		return bad(reports.CodeHTTP01RedirectBadStatus, "received disallowed redirect status code")
	}
	u.Host = strings.ToLower(u.Host)
	if u.Scheme != "http" && u.Scheme != "https" {
		return bad(reports.CodeHTTP01RedirectBadScheme, `Invalid protocol scheme in redirect target. Only "http" and "https" protocol schemes are supported, not %q`, u.Scheme)
	}
	port := v.httpPort()
	if u.Scheme == "https" {
		port = v.httpsPort()
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil {
			return target{}, &url.Error{Op: "Get", URL: loc, Err: err}
		}
		if n != v.httpPort() && n != v.httpsPort() {
			return bad(reports.CodeHTTP01RedirectBadPort, "Invalid port in redirect target. Only ports %d and %d are supported, not %d", v.httpPort(), v.httpsPort(), n)
		}
		port = n
	}
	host := u.Hostname()
	if host == "" {
		return bad(reports.CodeHTTP01RedirectBadHost, "Invalid empty host in redirect target")
	}
	if strings.HasSuffix(host, ".well-known") {
		return bad(reports.CodeHTTP01RedirectBadHost, "Invalid host in redirect target %q. Check webserver config for missing '/' in redirect target.", host)
	}
	ip, ipErr := netip.ParseAddr(host)
	if ipErr == nil {
		if ip.Zone() != "" {
			return bad(reports.CodeHTTP01RedirectBadHost, "Invalid host in redirect target: contains scope zone")
		}
		if r := v.reservedReason(ip); r != "" {
			return bad(reports.CodeHTTP01RedirectBadHost, "Invalid host in redirect target: IP address is in a reserved address block: %s", r)
		}
	} else if !ianaTLD(host) {
		return bad(reports.CodeHTTP01RedirectBadHost, "Invalid host in redirect target, must end in IANA registered TLD")
	}
	if len(u.Path) > maxPathSize {
		return bad(reports.CodeHTTP01RedirectBadHost, "Redirect target too long")
	}
	next := v.displayURL(u.Scheme, host, port, u.Path, u.RawQuery)
	next.RawPath = u.RawPath
	for _, h := range seen {
		if h.URL == next.String() {
			return bad(reports.CodeHTTP01RedirectLoop, "Redirect loop detected")
		}
	}
	t := target{url: next, host: host, port: port}
	if ipErr == nil {
		t.resolved = []netip.Addr{ip}
		t.addr = ip
		return t, nil
	}
	var v6, v4 []netip.Addr
	if v.Resolver != nil {
		v6, v4, err = v.Resolver.LookupHost(ctx, host)
	} else {
		err = errors.New("no resolver configured for redirect targets")
	}
	v6, v4 = v.usable(v6), v.usable(v4)
	if len(v6) == 0 && len(v4) == 0 {
		text := noAddressText(host)
		if err != nil {
			text = err.Error()
		}
		return bad(reports.CodeHTTP01RedirectBadHost, "%s", text)
	}
	t.resolved = append(append([]netip.Addr{}, v6...), v4...)
	// Boulder's redirect target has its own v6-first choice, but the
	// fallback only ever advances the initial target.
	if len(v6) > 0 {
		t.addr = v6[0]
	} else {
		t.addr = v4[0]
	}
	return t, nil
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
	hops         []Hop
	outs         []hopOutcome // parallel to hops
	final        *hopOutcome  // the final (non-redirect) response, when one
	err          error        // the error Boulder would classify (nil: a final response)
	errHop       int          // index of the hop whose address prefixes the problem
	fellBack     bool         // the chain was restarted on the first A after a dial error
	firstFail    *hopOutcome  // the failure that caused the fallback
	firstFailIdx int          // its hop index (0: the first AAAA itself failed)
}

// chain runs processHTTPValidation: initial holds the first AAAA and/or the
// first A of the identifier, in that order.
func (v *Validator) chain(ctx context.Context, name, path string, resolved, initial []netip.Addr) chainResult {
	var cr chainResult
	numRedirects := 0
	lg := v.log()
attempts:
	for i, addr := range initial {
		t := target{url: v.displayURL("http", name, v.httpPort(), path, ""), host: name, port: v.httpPort(), resolved: resolved, addr: addr}
		referer := ""
		for len(cr.hops) < maxHops {
			out := v.doHop(ctx, t, referer, true)
			cr.hops = append(cr.hops, out.hop)
			cr.outs = append(cr.outs, out)
			lg.Debug("hop", zap.String("url", out.hop.URL), zap.Stringer("addr", t.addr), zap.Int("status", out.hop.Status), zap.String("err", out.hop.Err))
			if out.err != nil {
				if isDialErr(out.err) && i+1 < len(initial) && ctx.Err() == nil {
					// Boulder retries the whole request (redirects included) on
					// the first A; its records and redirect count carry over.
					cr.fellBack = true
					o := out
					cr.firstFail = &o
					cr.firstFailIdx = len(cr.hops) - 1
					continue attempts
				}
				cr.err, cr.errHop = out.err, len(cr.hops)-1
				return cr
			}
			if !out.redirects {
				cr.final, cr.errHop = &cr.outs[len(cr.outs)-1], len(cr.hops)-1
				return cr
			}
			if numRedirects > maxRedirect {
				cr.err = &url.Error{Op: "Get", URL: out.location, Err: &policyError{code: reports.CodeHTTP01TooManyRedirects, text: "Too many redirects"}}
				cr.errHop = len(cr.hops) - 1
				return cr
			}
			numRedirects++
			next, err := v.redirectTarget(ctx, t, out, cr.hops)
			if err != nil {
				cr.err, cr.errHop = err, len(cr.hops)-1
				return cr
			}
			// Go's client sends the previous URL as Referer, except https→http.
			referer = t.url.String()
			if t.url.Scheme == "https" && next.url.Scheme == "http" {
				referer = ""
			}
			t = next
		}
		break
	}
	if cr.err == nil && cr.final == nil {
		cr.err = &url.Error{Op: "Get", URL: cr.hops[len(cr.hops)-1].URL, Err: &policyError{code: reports.CodeHTTP01TooManyRedirects, text: "Too many redirects"}}
		cr.errHop = len(cr.hops) - 1
	}
	return cr
}

// isDialErr is Boulder's fallbackErr: a *net.OpError from the dial.
func isDialErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
