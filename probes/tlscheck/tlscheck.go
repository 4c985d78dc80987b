package tlscheck

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/acmediag/acmediag/reports"
)

const (
	// DefaultHandshakeTimeout bounds connect plus handshake at one address:
	// Boulder's dial timeout, which also covers its TLS handshakes.
	DefaultHandshakeTimeout = 10 * time.Second
	// DefaultMaxPeerBytes caps what is read from one server during the
	// handshake. Real chains are a few KiB (Let's Encrypt's leaf and
	// intermediate: about 3 KiB); crypto/tls alone would accept a 256 KiB
	// certificate message.
	DefaultMaxPeerBytes = 64 << 10
	// maxChain is how many served certificates are examined; the rest are
	// counted, not parsed into facts.
	maxChain = 16
	// maxParallel bounds concurrent handshakes of one Inspect.
	maxParallel = 16
)

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return now.
var aLongTimeAgo = time.Unix(1, 0)

// Checker inspects served certificates from one vantage. The zero value is
// usable and one Checker may run many inspections concurrently; it
// remembers the judgement of each chain it saw (cache.go), so it must not
// be copied after first use.
type Checker struct {
	// HandshakeTimeout bounds connect plus handshake per address; 0 →
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// MaxPeerBytes caps the bytes read from one server; 0 →
	// DefaultMaxPeerBytes.
	MaxPeerBytes int64
	// Clock is the time certificates are judged at when a Request has no
	// Now; nil → time.Now.
	Clock  func() time.Time
	Logger *zap.Logger
	// NoCache judges every served chain afresh (benchmarks, tests).
	NoCache bool

	chains chainCache
}

// Request names one inspection.
type Request struct {
	Name string // the DNS name: SNI, and what the certificate must cover
	// Addrs are the name's addresses, as the caller resolved them.
	Addrs []netip.Addr
	Port  int // 0 → 443
	// LocalAddr is the source address of every connection (the vantage);
	// invalid = any. It is used only for addresses of its family.
	LocalAddr netip.Addr
	// Roots are the trusted roots; nil → the system pool.
	Roots *x509.CertPool
	// Now is the time certificates are judged at; zero → Checker.Clock.
	Now time.Time
}

// ErrKind classifies why no chain was read from an address.
type ErrKind string

const (
	ErrConnectTimeout   ErrKind = "connect_timeout"   // no answer to the TCP connect
	ErrRefused          ErrKind = "refused"           // nothing listens
	ErrReset            ErrKind = "reset"             // connection reset
	ErrUnreachable      ErrKind = "unreachable"       // no route
	ErrHandshakeTimeout ErrKind = "handshake_timeout" // connected, the handshake never finished
	ErrNotTLS           ErrKind = "not_tls"           // the server answered with something that is not TLS
	ErrAlert            ErrKind = "alert"             // the server refused the handshake with a TLS alert
	ErrClosed           ErrKind = "closed"            // the server closed the connection mid-handshake
	ErrTooLarge         ErrKind = "too_large"         // the server sent more than the cap
	ErrBadCertificate   ErrKind = "bad_certificate"   // a served certificate does not parse
	ErrCanceled         ErrKind = "canceled"          // the caller's context ended
	ErrOther            ErrKind = "other"
)

// AddrResult is what one address served.
type AddrResult struct {
	Addr netip.Addr `json:"addr"`
	// Chain is the served chain's facts; nil when the handshake failed.
	Chain      *Chain        `json:"chain,omitempty"`
	TLSVersion string        `json:"tls_version,omitempty"`
	Err        string        `json:"error,omitempty"`
	ErrKind    ErrKind       `json:"error_kind,omitempty"`
	BytesRead  int64         `json:"bytes_read"`
	Duration   time.Duration `json:"duration"`
}

// Result is one inspection: per-address facts and the findings they lead to.
type Result struct {
	Name     string            `json:"name"`
	Port     int               `json:"port"`
	Now      time.Time         `json:"now"`
	Addrs    []AddrResult      `json:"addrs"`
	Findings []reports.Finding `json:"findings,omitempty"`
	Duration time.Duration     `json:"duration"`
}

// OK reports whether no finding is an error or worse.
func (r Result) OK() bool {
	for _, f := range r.Findings {
		if f.Severity >= reports.Error {
			return false
		}
	}
	return true
}

// Served lists the leaves the inspection saw, as StaleBackends compares
// them, labelled with the vantage that saw them.
func (r Result) Served(vantage string) []reports.ServedCert {
	var out []reports.ServedCert
	for _, a := range r.Addrs {
		if a.Chain != nil {
			out = append(out, reports.ServedCert{Vantage: vantage, Addr: a.Addr, Port: r.Port, Leaf: a.Chain.Leaf, CoversName: a.Chain.CoversName})
		}
	}
	return out
}

// Inspect inspects req with a zero Checker (nothing is remembered between
// calls: a prober keeps one Checker).
func Inspect(ctx context.Context, req Request) Result {
	var c Checker
	return c.Inspect(ctx, req)
}

// Inspect connects to every address of req concurrently, reads what each
// serves and judges it. It returns when every address is done (each within
// the handshake timeout) or ctx ends.
func (c *Checker) Inspect(ctx context.Context, req Request) Result {
	start := time.Now()
	res := Result{Name: req.Name, Port: req.Port, Now: req.Now, Addrs: make([]AddrResult, len(req.Addrs))}
	if res.Port == 0 {
		res.Port = 443
	}
	if res.Now.IsZero() {
		res.Now = c.now()
	}
	if len(req.Addrs) == 1 {
		// The common case, in the caller's goroutine.
		res.Addrs[0] = c.inspectAddr(ctx, req, res.Port, req.Addrs[0].Unmap(), res.Now)
	} else {
		sem := make(chan struct{}, maxParallel)
		var wg sync.WaitGroup
		for i, a := range req.Addrs {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				res.Addrs[i] = c.inspectAddr(ctx, req, res.Port, a.Unmap(), res.Now)
			}()
		}
		wg.Wait()
	}
	res.Findings = findings(req.Name, res)
	res.Duration = time.Since(start)
	if c.Logger != nil {
		c.Logger.Named("tlscheck").Debug("inspected", zap.String("name", req.Name), zap.Int("addrs", len(req.Addrs)),
			zap.Int("findings", len(res.Findings)), zap.Duration("duration", res.Duration))
	}
	return res
}

func (c *Checker) now() time.Time {
	if c.Clock != nil {
		return c.Clock()
	}
	return time.Now()
}

func (c *Checker) timeout() time.Duration {
	if c.HandshakeTimeout > 0 {
		return c.HandshakeTimeout
	}
	return DefaultHandshakeTimeout
}

func (c *Checker) maxBytes() int64 {
	if c.MaxPeerBytes > 0 {
		return c.MaxPeerBytes
	}
	return DefaultMaxPeerBytes
}

// inspectAddr handshakes with one address and turns what it served into facts.
func (c *Checker) inspectAddr(ctx context.Context, req Request, port int, addr netip.Addr, now time.Time) (ar AddrResult) {
	ar.Addr = addr
	start := time.Now()
	defer func() { ar.Duration = time.Since(start) }()
	ctx, cancel := context.WithTimeout(ctx, c.timeout())
	defer cancel()

	d := net.Dialer{KeepAlive: -1} // one handshake, then closed: no keep-alive probes
	if req.LocalAddr.IsValid() && req.LocalAddr.Is4() == addr.Is4() {
		d.LocalAddr = &net.TCPAddr{IP: req.LocalAddr.AsSlice()}
	}
	raw, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, uint16(port)).String())
	if err != nil {
		ar.ErrKind, ar.Err = classify(ctx, err, false)
		return ar
	}
	// Closing the TCP connection without a close_notify: nothing was
	// exchanged after the handshake, and it saves a record and a write.
	defer raw.Close()
	// The deadline bounds the handshake without the goroutine
	// HandshakeContext starts; AfterFunc ends it early when ctx is
	// cancelled.
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(aLongTimeAgo) })
	defer stop()
	cc := &cappedConn{Conn: raw, left: c.maxBytes()}
	tc := tls.Client(cc, &tls.Config{
		ServerName: req.Name,
		// The chain is read first and judged below against req.Roots,
		// so that an untrusted, expired or misnamed certificate is still
		// seen and described.
		InsecureSkipVerify: true, //nolint:gosec // verified by analyse, not by the handshake
		MinVersion:         tls.VersionTLS10,
		// Go's defaults without the hybrid post-quantum key shares
		// (crypto/tls offers X25519 first): nothing secret crosses this
		// connection, and an ML-KEM-768 key generation per handshake is
		// a fifth of a probe's CPU.
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521},
	})
	err = tc.Handshake()
	ar.BytesRead = cc.read
	if err != nil {
		if cc.over {
			err = &tooLargeError{limit: c.maxBytes(), err: err}
		}
		ar.ErrKind, ar.Err = classify(ctx, err, true)
		return ar
	}
	cs := tc.ConnectionState()
	ar.TLSVersion = tls.VersionName(cs.Version)
	ch := c.judge(req.Name, cs.PeerCertificates, req.Roots, now)
	ar.Chain = &ch
	return ar
}

// cappedConn fails reads once limit bytes have been read, so that a server
// streaming a huge chain is cut off instead of buffered.
type cappedConn struct {
	net.Conn
	left int64
	read int64
	over bool
}

// errCapped is what a read past the cap returns to crypto/tls.
var errCapped = errors.New("read cap reached")

func (c *cappedConn) Read(p []byte) (int, error) {
	if c.left <= 0 {
		c.over = true
		return 0, errCapped
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.Conn.Read(p)
	c.left -= int64(n)
	c.read += int64(n)
	return n, err
}

// tooLargeError says the peer sent more than the cap.
type tooLargeError struct {
	limit int64
	err   error
}

func (e *tooLargeError) Error() string {
	return "the server sent more than " + human(e.limit) + " during the handshake: " + e.err.Error()
}

func (e *tooLargeError) Unwrap() error { return e.err }
