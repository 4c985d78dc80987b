package tlscheck

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
)

// classify turns a connect or handshake error into its kind and a text
// that says what was observed. It is the one place errors are classified
// (http01's classify does the same for Boulder's texts; the syscall part
// could be shared through internal/ if a third package needs it).
func classify(ctx context.Context, err error, inHandshake bool) (ErrKind, string) {
	// The caller's context ended (not our own per-address deadline).
	if ctx.Err() != nil && context.Cause(ctx) != context.DeadlineExceeded {
		return ErrCanceled, "canceled: " + context.Cause(ctx).Error()
	}
	var tl *tooLargeError
	if errors.As(err, &tl) {
		return ErrTooLarge, tl.Error()
	}
	if strings.Contains(err.Error(), "exceeds maximum of") { // crypto/tls's own 256 KiB certificate-message limit
		return ErrTooLarge, "the server sent a handshake message too large to accept: " + err.Error()
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) {
		what := fmt.Sprintf("%q", rh.RecordHeader[:])
		if string(rh.RecordHeader[:]) == "HTTP/" {
			what += " (plain HTTP on the TLS port)"
		}
		return ErrNotTLS, "not TLS: the server answered with " + what
	}
	// Over TCP, crypto/tls reports a peer's alert as a *net.OpError
	// "remote error" (AlertError only over QUIC).
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "remote error" {
		return ErrAlert, "the server refused the handshake with a TLS alert: " + op.Err.Error()
	}
	var alert tls.AlertError
	if errors.As(err, &alert) {
		return ErrAlert, "the server refused the handshake with a TLS alert: " + alert.Error()
	}
	var se *os.SyscallError
	if errors.As(err, &se) {
		switch se.Err {
		case syscall.ECONNREFUSED:
			return ErrRefused, "connection refused"
		case syscall.ECONNRESET:
			if inHandshake {
				return ErrReset, "connection reset during the handshake"
			}
			return ErrReset, "connection reset"
		case syscall.ENETUNREACH, syscall.EHOSTUNREACH:
			return ErrUnreachable, "no route: " + se.Err.Error()
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		if inHandshake {
			return ErrHandshakeTimeout, "connected, but the TLS handshake did not finish before the deadline"
		}
		return ErrConnectTimeout, "timeout during connect (a firewall dropping packets?)"
	}
	if inHandshake && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) {
		return ErrClosed, "the server closed the connection during the handshake"
	}
	if strings.Contains(err.Error(), "failed to parse certificate") {
		return ErrBadCertificate, "a served certificate does not parse: " + err.Error()
	}
	return ErrOther, err.Error()
}
