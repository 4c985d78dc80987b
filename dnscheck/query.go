package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// EDNSBufferSize is the UDP payload size acmediag advertises, the one Let's
// Encrypt's Unbound uses (edns-buffer-size 1232): an answer larger than this
// needs TCP, as it would for the CA.
const EDNSBufferSize = 1232

// maxResponseSize bounds what is read from one server over TCP.
const maxResponseSize = dns.MaxMsgSize

// ErrorKind classifies why a query got no usable answer. Classification
// happens once, in classify; everything else switches on the kind.
type ErrorKind int

const (
	KindTimeout   ErrorKind = iota + 1 // no answer within the timeout
	KindNetwork                        // refused, unreachable, reset
	KindRcode                          // an answer with an error rcode (SERVFAIL, REFUSED, NOTIMP, FORMERR, ...)
	KindTruncated                      // TC over UDP and TCP failed
	KindMalformed                      // an answer that does not parse or does not match the question
)

func (k ErrorKind) String() string {
	switch k {
	case KindTimeout:
		return "timeout"
	case KindNetwork:
		return "network error"
	case KindRcode:
		return "error rcode"
	case KindTruncated:
		return "truncated"
	case KindMalformed:
		return "malformed answer"
	}
	return "unknown"
}

// QueryError is a failed question to one server, carrying what was asked
// and what came back.
type QueryError struct {
	Server netip.AddrPort
	Name   string
	Type   uint16
	Kind   ErrorKind
	Rcode  int // for KindRcode
	Err    error
}

func (e *QueryError) Error() string {
	what := e.Kind.String()
	if e.Kind == KindRcode {
		what = dns.RcodeToString[e.Rcode]
		if what == "" {
			what = fmt.Sprintf("rcode %d", e.Rcode)
		}
	}
	s := fmt.Sprintf("%s %s at %s: %s", e.Name, dns.TypeToString[e.Type], e.Server, what)
	if e.Err != nil && e.Kind != KindRcode {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *QueryError) Unwrap() error { return e.Err }

// ErrServerDead marks a query not sent because the address already timed
// out in this run: one black-holed address costs one timeout, not one per check.
var ErrServerDead = errors.New("not asked: the address timed out earlier in this run")

// QueryOptions select how a question is asked.
type QueryOptions struct {
	Recurse bool // RD=1, for recursive resolvers; authoritative questions use RD=0
	NoEDNS  bool // ask without an OPT record (EDNS intolerance check)
	TCPOnly bool // ask over TCP directly
	// KeepCase sends the name exactly as given (0x20 checks); otherwise the
	// name is lower-cased so that identical questions share one answer.
	KeepCase bool
	// Timeout overrides the Querier's per-exchange timeout (recursive
	// resolvers need longer: they may wait out a dead server themselves).
	Timeout time.Duration
}

// Response is one server's answer to one question.
type Response struct {
	Server    netip.AddrPort
	Name      string
	Type      uint16
	Msg       *dns.Msg // nil when Err is a timeout, network or malformed error; read-only (shared)
	RTT       time.Duration
	TCP       bool // the answer came over TCP
	Truncated bool // the UDP answer had TC set
	// NoEDNS marks an answer that came only when asked again without EDNS:
	// the server failed the question with EDNS (FORMERR, NOTIMP or a broken
	// OPT), as Unbound then retries. Such an answer carries no DNSSEC
	// records (no DO bit) and is limited to 512 bytes over UDP.
	NoEDNS bool
	Err    error
}

// Outcome says in a few words how the exchange ended: the error when there
// was one, else the rcode (NXDOMAIN, SERVFAIL, NOERROR, ...). A resolver's
// NXDOMAIN is a failed lookup without an error, so callers that explain a
// failure must not assume Err is set.
func (r *Response) Outcome() string {
	switch {
	case r.Err != nil:
		return errText(r.Err)
	case r.Msg == nil:
		return "no answer"
	}
	if s, ok := dns.RcodeToString[r.Msg.Rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", r.Msg.Rcode)
}

// Rcode is the answer's rcode, or -1 without an answer.
func (r *Response) Rcode() int {
	if r.Msg == nil {
		return -1
	}
	return r.Msg.Rcode
}

// Querier sends questions to single server addresses. It remembers every
// answer for the duration of one run (identical questions are asked once,
// concurrently asked ones share the wait) and which addresses timed out.
// The zero value is not usable; use NewQuerier.
type Querier struct {
	Timeout   time.Duration // per exchange
	LocalAddr netip.Addr    // bind every query to this source address (a vantage); invalid = any
	Logger    *zap.Logger

	// inflight, when set, bounds the exchanges on the wire at once (1 makes
	// the run ask one server at a time, as lego and cert-manager do).
	inflight chan struct{}
	// udp carries the UDP exchanges on sockets shared with other Queriers
	// (see udpPool); nil asks each question on a socket of its own.
	udp *udpPool

	mu       sync.Mutex
	calls    smallMap[queryKey, *call]
	addrs    smallMap[netip.Addr, *addrState]
	sent     atomic.Int64
	timeouts atomic.Int64
}

type queryKey struct {
	server netip.AddrPort
	name   string
	qtype  uint16
	opts   QueryOptions
}

// addrState is what the run knows of one server address. Until an address
// has answered once, only one exchange with it is on the wire: the others
// wait for that first contact, so a black-holed address costs one timeout
// even when many checks want it at the same moment.
type addrState struct {
	dead    bool
	contact chan struct{} // closed when the first exchange ends; nil after
}

type call struct {
	done chan struct{}
	resp *Response
}

// nopQueryLogger is the logger of Queriers given none: loggers are
// immutable, and the daemon makes a Querier per probe run.
var nopQueryLogger = zap.NewNop().Named("query")

// NewQuerier returns a Querier with the given per-exchange timeout.
func NewQuerier(timeout time.Duration, local netip.Addr, logger *zap.Logger) *Querier {
	if logger == nil {
		logger = nopQueryLogger
	} else {
		logger = logger.Named("query")
	}
	return &Querier{Timeout: timeout, LocalAddr: local, Logger: logger}
}

// smallMap is a map that keeps its first few entries inline: a Querier
// asked one or two questions (the daemon makes one per probe run) then
// allocates no map, whose first bucket alone is some 650 bytes. Guarded
// by the Querier's mu.
type smallMap[K comparable, V any] struct {
	few  [2]smallEntry[K, V]
	n    int
	many map[K]V // once more than len(few) keys were set
}

type smallEntry[K comparable, V any] struct {
	k K
	v V
}

func (m *smallMap[K, V]) get(k K) (V, bool) {
	if m.many != nil {
		v, ok := m.many[k]
		return v, ok
	}
	for i := range m.n {
		if m.few[i].k == k {
			return m.few[i].v, true
		}
	}
	var zero V
	return zero, false
}

func (m *smallMap[K, V]) set(k K, v V) {
	if m.many == nil {
		for i := range m.n {
			if m.few[i].k == k {
				m.few[i].v = v
				return
			}
		}
		if m.n < len(m.few) {
			m.few[m.n] = smallEntry[K, V]{k, v}
			m.n++
			return
		}
		m.many = make(map[K]V, 2*len(m.few))
		for _, e := range m.few[:m.n] {
			m.many[e.k] = e.v
		}
		m.few, m.n = [len(m.few)]smallEntry[K, V]{}, 0
	}
	m.many[k] = v
}

func (m *smallMap[K, V]) delete(k K) {
	if m.many != nil {
		delete(m.many, k)
		return
	}
	for i := range m.n {
		if m.few[i].k == k {
			m.n--
			m.few[i], m.few[m.n] = m.few[m.n], smallEntry[K, V]{}
			return
		}
	}
}

// UseUDPPool carries the Querier's UDP exchanges on the pool's shared
// sockets; without one each question opens a socket of its own.
func (q *Querier) UseUDPPool(p *UDPPool) { q.udp = p }

// Sent is the number of messages put on the wire so far.
func (q *Querier) Sent() int64 { return q.sent.Load() }

// Timeouts is the number of exchanges that waited out the whole timeout.
func (q *Querier) Timeouts() int64 { return q.timeouts.Load() }

// Limit bounds how many exchanges are on the wire at once (0: no bound).
func (q *Querier) Limit(n int) {
	if n > 0 {
		q.inflight = make(chan struct{}, n)
	}
}

// Dead reports whether addr timed out earlier in this run.
func (q *Querier) Dead(addr netip.Addr) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	st, _ := q.addrs.get(addr)
	return st != nil && st.dead
}

// Query asks server one question and returns its answer; an answer with an
// error rcode is returned with Msg set and Err a *QueryError of KindRcode.
func (q *Querier) Query(ctx context.Context, server netip.AddrPort, name string, qtype uint16, o QueryOptions) *Response {
	name = dns.Fqdn(name)
	if !o.KeepCase {
		name = strings.ToLower(name)
	}
	key := queryKey{server, name, qtype, o}
	q.mu.Lock()
	if c, ok := q.calls.get(key); ok {
		q.mu.Unlock()
		select {
		case <-c.done:
			return c.resp
		case <-ctx.Done():
			return q.fail(server, name, qtype, KindTimeout, ctx.Err())
		}
	}
	c := &call{done: make(chan struct{})}
	q.calls.set(key, c)
	q.mu.Unlock()

	c.resp = q.firstContact(ctx, server, name, qtype, o)
	if ctx.Err() != nil && c.resp.Msg == nil {
		// A cancelled run must not leave its failure in the memo for a later one.
		q.mu.Lock()
		q.calls.delete(key)
		q.mu.Unlock()
	}
	close(c.done)
	return c.resp
}

// firstContact sends the exchange, through the one-at-a-time gate of an
// address not heard from yet, and records whether the address is alive.
func (q *Querier) firstContact(ctx context.Context, server netip.AddrPort, name string, qtype uint16, o QueryOptions) *Response {
	addr := server.Addr()
	for {
		q.mu.Lock()
		st, _ := q.addrs.get(addr)
		switch {
		case st == nil:
			st = &addrState{contact: make(chan struct{})}
			q.addrs.set(addr, st)
			q.mu.Unlock()
			resp := q.exchange(ctx, server, name, qtype, o)
			var qe *QueryError
			q.mu.Lock()
			st.dead = errors.As(resp.Err, &qe) && qe.Kind == KindTimeout && ctx.Err() == nil
			close(st.contact)
			st.contact = nil
			if ctx.Err() != nil && resp.Msg == nil {
				q.addrs.delete(addr) // a cancelled run learned nothing about the address
			}
			q.mu.Unlock()
			return resp
		case st.dead:
			q.mu.Unlock()
			return q.fail(server, name, qtype, KindTimeout, ErrServerDead)
		case st.contact == nil:
			q.mu.Unlock()
			return q.exchange(ctx, server, name, qtype, o)
		default:
			wait := st.contact
			q.mu.Unlock()
			select {
			case <-wait:
			case <-ctx.Done():
				return q.fail(server, name, qtype, KindTimeout, ctx.Err())
			}
		}
	}
}

func (q *Querier) fail(server netip.AddrPort, name string, qtype uint16, kind ErrorKind, err error) *Response {
	return &Response{Server: server, Name: name, Type: qtype,
		Err: &QueryError{Server: server, Name: name, Type: qtype, Kind: kind, Err: err}}
}

// exchange asks once and, like Unbound's serviced queries, asks again
// without EDNS when the server fails a question carrying EDNS with FORMERR
// or NOTIMP or with an answer that does not parse; the answer without EDNS
// stands when it is NOERROR or NXDOMAIN.
func (q *Querier) exchange(ctx context.Context, server netip.AddrPort, name string, qtype uint16, o QueryOptions) *Response {
	resp := q.exchangeEDNS(ctx, server, name, qtype, o)
	var qe *QueryError
	rejected := resp.Msg != nil && (resp.Msg.Rcode == dns.RcodeFormatError || resp.Msg.Rcode == dns.RcodeNotImplemented) ||
		resp.Msg == nil && errors.As(resp.Err, &qe) && qe.Kind == KindMalformed
	if o.NoEDNS || !rejected || ctx.Err() != nil {
		return resp
	}
	plain := o
	plain.NoEDNS = true
	retry := q.exchangeEDNS(ctx, server, name, qtype, plain)
	if retry.Msg == nil || retry.Msg.Rcode != dns.RcodeSuccess && retry.Msg.Rcode != dns.RcodeNameError {
		return resp
	}
	retry.NoEDNS = true
	retry.RTT += resp.RTT
	return retry
}

func (q *Querier) exchangeEDNS(ctx context.Context, server netip.AddrPort, name string, qtype uint16, o QueryOptions) *Response {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.RecursionDesired = o.Recurse
	if !o.NoEDNS {
		m.SetEdns0(EDNSBufferSize, true)
	}
	resp := &Response{Server: server, Name: name, Type: qtype}
	start := time.Now()
	var in *dns.Msg
	var err error
	if !o.TCPOnly {
		in, err = q.exchangeOnce(ctx, "udp", server, m, o.Timeout)
		if err == nil && in.Truncated {
			resp.Truncated = true
			in, err = q.exchangeOnce(ctx, "tcp", server, m, o.Timeout)
			resp.TCP = err == nil
			if err != nil {
				resp.RTT = time.Since(start)
				resp.Err = &QueryError{Server: server, Name: name, Type: qtype, Kind: KindTruncated,
					Err: fmt.Errorf("answer truncated over UDP and TCP failed: %w", err)}
				return resp
			}
		}
	} else {
		in, err = q.exchangeOnce(ctx, "tcp", server, m, o.Timeout)
		resp.TCP = true
	}
	resp.RTT = time.Since(start)
	if err != nil {
		resp.Err = &QueryError{Server: server, Name: name, Type: qtype, Kind: classify(err), Err: err}
		return resp
	}
	resp.Msg = in
	if err := matchQuestion(m, in); err != nil {
		resp.Msg = nil
		resp.Err = &QueryError{Server: server, Name: name, Type: qtype, Kind: KindMalformed, Err: err}
		return resp
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		resp.Err = &QueryError{Server: server, Name: name, Type: qtype, Kind: KindRcode, Rcode: in.Rcode}
	}
	return resp
}

func (q *Querier) exchangeOnce(ctx context.Context, network string, server netip.AddrPort, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	if timeout <= 0 {
		timeout = q.Timeout
	}
	if q.inflight != nil {
		select {
		case q.inflight <- struct{}{}:
			defer func() { <-q.inflight }()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	q.sent.Add(1)
	if network == "udp" && q.udp != nil {
		// The pool rejects a question (full, or the socket cannot be
		// opened) before sending anything; it is then asked as before,
		// which also reports a socket error exactly as before.
		if w, err := q.udp.acquire(q.LocalAddr, server); err == nil {
			in, err := q.udp.exchangeUDP(ctx, w, m, timeout)
			if err != nil && classify(err) == KindTimeout {
				q.timeouts.Add(1)
			}
			return in, err
		}
	}
	d := &net.Dialer{Timeout: timeout}
	if q.LocalAddr.IsValid() {
		if network == "udp" {
			d.LocalAddr = &net.UDPAddr{IP: q.LocalAddr.AsSlice()}
		} else {
			d.LocalAddr = &net.TCPAddr{IP: q.LocalAddr.AsSlice()}
		}
	}
	c := &dns.Client{Net: network, Timeout: timeout, Dialer: d, UDPSize: EDNSBufferSize}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	in, _, err := c.ExchangeContext(ctx, m, server.String())
	if err != nil {
		if classify(err) == KindTimeout {
			q.timeouts.Add(1)
		}
		return nil, err
	}
	if network == "tcp" && in.Len() > maxResponseSize {
		return nil, fmt.Errorf("answer of %d bytes exceeds %d", in.Len(), maxResponseSize)
	}
	return in, nil
}

// matchQuestion rejects answers to another question. The name is compared
// case-insensitively here; whether the server preserved case is a separate
// finding (0x20).
func matchQuestion(q, a *dns.Msg) error {
	if len(a.Question) != 1 {
		return fmt.Errorf("answer has %d questions", len(a.Question))
	}
	if !strings.EqualFold(a.Question[0].Name, q.Question[0].Name) || a.Question[0].Qtype != q.Question[0].Qtype {
		return fmt.Errorf("answer is for %s %s, not the question asked", a.Question[0].Name, dns.TypeToString[a.Question[0].Qtype])
	}
	if !a.Response {
		return errors.New("answer lacks the QR bit")
	}
	return nil
}

// classify maps a transport error to its kind, once.
func classify(err error) ErrorKind {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return KindTimeout
	case errors.Is(err, dns.ErrId), errors.Is(err, dns.ErrShortRead), isUnpackError(err):
		return KindMalformed
	default:
		return KindNetwork
	}
}

// isUnpackError: the bytes that came back are not a DNS message. miekg/dns
// reports most of these as a *dns.Error (wrapped: "bad question name: dns:
// too many compression pointers"); the rest only by their text.
func isUnpackError(err error) bool {
	var de *dns.Error
	if errors.As(err, &de) {
		return true
	}
	s := err.Error()
	return strings.Contains(s, "overflow") || strings.Contains(s, "unpack") || strings.Contains(s, "bad rdata") ||
		strings.Contains(s, "buffer size too small") || strings.Contains(s, "dns: bad")
}

// Transfer reads a zone by AXFR from one server, stopping after limit
// records. It is used only to look for records written into the wrong zone.
func (q *Querier) Transfer(ctx context.Context, ha HostAddr, port uint16, zone string, limit int) ([]dns.RR, error) {
	q.sent.Add(1)
	m := new(dns.Msg)
	m.SetAxfr(zone)
	d := &net.Dialer{Timeout: q.Timeout}
	if q.LocalAddr.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: q.LocalAddr.AsSlice()}
	}
	ctx, cancel := context.WithTimeout(ctx, 4*q.Timeout)
	defer cancel()
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(ha.Addr, port).String())
	if err != nil {
		return nil, fmt.Errorf("AXFR %s from %s: %w", zone, ha, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	t := &dns.Transfer{Conn: &dns.Conn{Conn: conn}}
	env, err := t.In(m, "")
	if err != nil {
		return nil, fmt.Errorf("AXFR %s from %s: %w", zone, ha, err)
	}
	var out []dns.RR
	for e := range env {
		if e.Error != nil {
			err = fmt.Errorf("AXFR %s from %s: %w", zone, ha, e.Error)
			break
		}
		if len(out)+len(e.RR) > limit {
			err = fmt.Errorf("AXFR %s from %s: more than %d records", zone, ha, limit)
			break
		}
		out = append(out, e.RR...)
	}
	conn.Close()
	for range env { // drain so the reader goroutine ends
	}
	return out, err
}
