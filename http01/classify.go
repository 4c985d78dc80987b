package http01

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"regexp"
	"syscall"

	"github.com/acmediag/acmediag/reports"
)

// h2Settings matches net/http's complaint about an HTTP/2 SETTINGS frame
// received in reply to an HTTP/1.1 request (Boulder's h2SettingsFrameErrRegex).
var h2Settings = regexp.MustCompile(`(?:net\/http\: HTTP\/1\.x transport connection broken: )?malformed HTTP response \"\\x00\\x00\\x[a-f0-9]{2}\\x04\\x00\\x00\\x00\\x00\\x00.*"`)

// tlsRecordReply matches a TLS record (handshake or alert) where an HTTP
// status line was expected: a TLS listener on the HTTP port.
var tlsRecordReply = regexp.MustCompile(`malformed HTTP response "\\x1[56]\\x03`)

// problem is an ACME problem with the finding code that explains it.
type problem struct {
	typ, text string
	code      reports.Code
}

// detailed emulates Boulder's detailedError for an error from one request:
// "Fetching <url>: " for *url.Error, then the classified text. code is the
// finding that explains it; inTLS says the error came from a TLS handshake.
func detailed(err error, inTLS bool) problem {
	var ue *url.Error
	if errors.As(err, &ue) {
		p := detailed(ue.Err, inTLS)
		p.text = "Fetching " + ue.URL + ": " + p.text
		return p
	}
	var pe *policyError
	if errors.As(err, &pe) {
		return problem{pe.typ, pe.text, pe.code}
	}
	tlsCode := func(c reports.Code) reports.Code {
		if inTLS {
			return reports.CodeHTTP01RedirectTLSError
		}
		return c
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && bytes.Equal(rh.RecordHeader[:], []byte("HTTP/")) {
		return problem{reports.ProblemMalformed, "Server only speaks HTTP, not TLS", reports.CodeHTTP01RedirectTLSError}
	}
	var op *net.OpError
	if errors.As(err, &op) {
		switch {
		case fmt.Sprintf("%T", op.Err) == "tls.alert":
			return problem{reports.ProblemTLS, op.Error(), reports.CodeHTTP01RedirectTLSError}
		case op.Timeout() && op.Op == "dial":
			return problem{reports.ProblemConnection, "Timeout during connect (likely firewall problem)", reports.CodeHTTP01ConnectTimeout}
		case op.Timeout():
			return problem{reports.ProblemConnection, fmt.Sprintf("Timeout during %s (your server may be slow or overloaded)", op.Op), tlsCode(reports.CodeHTTP01SlowResponse)}
		}
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		switch se.Err {
		case syscall.ECONNREFUSED:
			return problem{reports.ProblemConnection, "Connection refused", reports.CodeHTTP01ConnectionRefused}
		case syscall.ENETUNREACH:
			return problem{reports.ProblemConnection, "Network unreachable", reports.CodeHTTP01ConnectTimeout}
		case syscall.ECONNRESET:
			return problem{reports.ProblemConnection, "Connection reset by peer", tlsCode(reports.CodeHTTP01ConnectionReset)}
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return problem{reports.ProblemConnection, "Timeout after connect (your server may be slow or overloaded)", tlsCode(reports.CodeHTTP01SlowResponse)}
	}
	msg := err.Error()
	if h2Settings.MatchString(msg) {
		return problem{reports.ProblemConnection, "Server is speaking HTTP/2 over HTTP", reports.CodeHTTP01H2C}
	}
	code := reports.CodeHTTP01ConnectionReset // EOF, closed without an answer, garbled reply
	switch {
	case inTLS:
		code = reports.CodeHTTP01RedirectTLSError
	case tlsRecordReply.MatchString(msg):
		code = reports.CodeHTTP01TLSOnHTTPPort
	}
	return problem{reports.ProblemConnection, "Error getting validation data", code}
}
