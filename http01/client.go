package http01

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"
)

// This file is a single-request HTTP/1.1 client that returns what Boulder's
// http.Client (a fresh http.Transport per request: DisableKeepAlives,
// InsecureSkipVerify, no HTTP/2, redirects handed back) returns: the same
// request bytes, the same response parsing (http.ReadResponse), and the same
// error values, because Boulder's detailedError classifies by error type and
// text. net/http's transport costs three goroutines, channels and a
// Transport per request; this runs in the caller's goroutine and is what
// makes a probe cheap. client_test.go checks it against net/http.

const (
	readBufSize         = 4096 // net/http's Transport read buffer
	tlsHandshakeTimeout = 10 * time.Second
)

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return now.
var aLongTimeAgo = time.Unix(1, 0)

// ctxConn maps the I/O errors of a connection whose deadline is the
// validation's to what net/http's transport reports once the request context
// is done: the context's cause, not an i/o timeout (*net.OpError), which
// Boulder would word differently ("Timeout during read").
type ctxConn struct {
	net.Conn
	ctx context.Context
}

func (c ctxConn) mapErr(err error) error {
	if c.ctx.Err() != nil {
		return context.Cause(c.ctx)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return context.DeadlineExceeded
	}
	return err
}

func (c ctxConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && err != io.EOF {
		err = c.mapErr(err)
	}
	return n, err
}

func (c ctxConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		err = c.mapErr(err)
	}
	return n, err
}

// limitedConn is net/http's response-header limit: reads fail once limit
// bytes have been read, until the headers are parsed and it is lifted.
type limitedConn struct {
	r     io.Reader
	limit int64 // < 0: no limit (body)
}

func (l *limitedConn) Read(p []byte) (int, error) {
	if l.limit < 0 {
		return l.r.Read(p)
	}
	if l.limit == 0 {
		return 0, fmt.Errorf("read limit of %d bytes exhausted", maxHeaderBytes)
	}
	if int64(len(p)) > l.limit {
		p = p[:l.limit]
	}
	n, err := l.r.Read(p)
	l.limit -= int64(n)
	return n, err
}

// gzipReader is net/http's transparent gzip decoding: lazy, so a broken
// gzip stream fails on the first body read, as in the transport.
type gzipReader struct {
	body io.Reader
	zr   *gzip.Reader
	zerr error
}

func (g *gzipReader) Read(p []byte) (int, error) {
	if g.zerr != nil {
		return 0, g.zerr
	}
	if g.zr == nil {
		zr, err := gzip.NewReader(g.body)
		if err != nil {
			g.zerr = err
			return 0, err
		}
		g.zr = zr
	}
	return g.zr.Read(p)
}

// exchange is one request's connection and response; close releases both.
type exchange struct {
	conn  net.Conn // raw TCP connection, nil when the dial failed
	resp  *http.Response
	inTLS bool // the error happened during the TLS handshake
	stop  func() bool
}

func (x *exchange) close() {
	if x.stop != nil {
		x.stop()
	}
	if x.conn != nil {
		_ = x.conn.Close()
	}
}

// stripPassword is how http.Client names a URL in its errors.
func stripPassword(u *url.URL) string {
	if _, set := u.User.Password(); set {
		return strings.Replace(u.String(), u.User.String()+"@", u.User.Username()+":***@", 1)
	}
	return u.String()
}

// extraHeaders are what net/http's Transport adds after the request's own
// headers: it asks for gzip itself, and DisableKeepAlives adds Connection: close.
const extraHeaders = "Accept-Encoding: gzip\r\nConnection: close\r\n\r\n"

// requestHead renders req exactly as Boulder's transport writes it.
func requestHead(req *http.Request, buf *bytes.Buffer) error {
	if err := req.Write(buf); err != nil {
		return err
	}
	// Request.Write ends the head with an empty line; the transport's extra
	// headers go just before it.
	buf.Truncate(buf.Len() - 2)
	buf.WriteString(extraHeaders)
	return nil
}

// do sends GET t.url to t.addr:t.port and reads the response head, as
// Boulder's doValidationRequest does through http.Client.Do. The error is
// what Do would return: a *url.Error around the transport's error, or, for
// a URL that cannot be parsed, the bare error.
func (v *Validator) do(ctx context.Context, t target, referer string) (*exchange, error) {
	x := &exchange{}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.urlStr, nil)
	if err != nil {
		return x, err
	}
	req.Header = http.Header{"User-Agent": {v.userAgent()}, "Accept": {"*/*"}}
	if referer != "" {
		req.Header["Referer"] = []string{referer}
	}
	uerr := func(err error) error { return &url.Error{Op: "Get", URL: stripPassword(req.URL), Err: err} }
	if req.URL.Host == "" {
		return x, uerr(errors.New("http: no Host in request URL"))
	}

	conn, err := v.dial(ctx, t.addr, t.port)
	if err != nil {
		return x, uerr(err)
	}
	x.conn = conn
	// The transport closes the connection when the request's context ends;
	// the deadline does the same without a goroutine.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	x.stop = context.AfterFunc(ctx, func() { _ = conn.SetDeadline(aLongTimeAgo) })
	var rw io.ReadWriter = ctxConn{Conn: conn, ctx: ctx}
	var cs *tls.ConnectionState
	if t.url.Scheme == "https" {
		x.inTLS = true
		tc := tls.Client(ctxConn{Conn: conn, ctx: ctx}, &tls.Config{
			InsecureSkipVerify: true, //nolint:gosec // Boulder never verifies redirect-target certificates
			ServerName:         t.host,
		})
		hctx, cancel := context.WithTimeout(ctx, tlsHandshakeTimeout)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				err = context.Cause(ctx)
			}
			if rh, ok := err.(tls.RecordHeaderError); ok && string(rh.RecordHeader[:]) == "HTTP/" {
				err = http.ErrSchemeMismatch // http.Client's own rewording
			}
			return x, uerr(err)
		}
		x.inTLS = false
		st := tc.ConnectionState()
		cs = &st
		rw = tc
	}

	var head bytes.Buffer
	if err := requestHead(req, &head); err != nil {
		return x, uerr(err)
	}
	if _, err := rw.Write(head.Bytes()); err != nil {
		return x, uerr(err)
	}

	lc := &limitedConn{r: rw, limit: maxHeaderBytes}
	br := bufio.NewReaderSize(lc, readBufSize)
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			if lc.limit == 0 {
				err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", maxHeaderBytes)
			}
			return x, uerr(err)
		}
		// 1xx other than 101 are informational: the transport skips them.
		if resp.StatusCode < 100 || resp.StatusCode > 199 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	lc.limit = -1
	resp.TLS = cs
	if resp.ContentLength != 0 && strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
		resp.Uncompressed = true
		resp.Body = io.NopCloser(&gzipReader{body: resp.Body})
	}
	x.resp = resp

	// http.Client parses the Location of the statuses it would follow before
	// CheckRedirect hands the response back, and fails on a bad one.
	switch resp.StatusCode {
	case 301, 302, 303, 307, 308:
		if loc := resp.Header.Get("Location"); loc != "" {
			if _, err := req.URL.Parse(loc); err != nil {
				return x, uerr(fmt.Errorf("failed to parse Location header %q: %v", loc, err))
			}
		}
	}
	return x, nil
}

// dial connects to addr:port the way Boulder's preresolvedDialer does: the
// dial timeout, and the context shaved by 10 ms so that an exhausted overall
// deadline still reads as a dial timeout.
func (v *Validator) dial(ctx context.Context, addr netip.Addr, port int) (net.Conn, error) {
	dl := time.Now().Add(v.dialTimeout())
	if cdl, ok := ctx.Deadline(); ok && cdl.Add(-dialShave).Before(dl) {
		dl = cdl.Add(-dialShave)
	}
	// One context for both deadlines (net.Dialer would derive a second one
	// for its Timeout).
	ctx, cancel := context.WithDeadline(ctx, dl)
	defer cancel()
	// Boulder's 30 s keep-alive never fires within a validation's 20 s;
	// turning it off saves the setsockopt calls.
	d := net.Dialer{KeepAlive: -1}
	if v.LocalAddr.IsValid() && v.LocalAddr.Is4() == addr.Is4() {
		d.LocalAddr = &net.TCPAddr{IP: v.LocalAddr.AsSlice()}
	}
	return d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(port)).String())
}
