package dnscheck

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

// Pool bounds. A socket is connected to one server, so the kernel drops
// datagrams from any other address or port; what is left to check is the
// message ID, which is random and unique among the socket's pending queries.
const (
	// udpIdle is how long a socket with nothing pending stays open. The
	// daemon asks the same servers every few seconds, so its sockets stay
	// warm; a one-shot run's sockets close shortly after it ends.
	udpIdle = 5 * time.Second
	// udpMaxSockets bounds the open sockets of a pool (file descriptors);
	// beyond it a question gets a socket of its own, as before pooling.
	udpMaxSockets = 512
	// udpMaxPending bounds the questions waiting on one socket (the pending
	// map), far below the 65,536 IDs so that a free random ID is found fast.
	udpMaxPending = 1024
	// udpMaxUses retires a socket after this many questions, so that a long
	// running daemon does not keep one source port per server forever.
	udpMaxUses = 20_000
	// udpIDTries bounds the search for a free ID.
	udpIDTries = 64
)

// errUDPPoolFull makes a question fall back to a socket of its own.
var errUDPPoolFull = errors.New("udp socket pool full")

// UDPPool shares connected UDP sockets, one per (source address, server),
// among every Querier (and so every Session) given it. A Querier lives for
// one run — the daemon makes one per probe run — so only a pool that
// outlives Queriers saves the socket, connect and close of each question.
// Its sockets close when idle, so an unused pool holds none.
type UDPPool = udpPool

// NewUDPPool returns a pool with the default idle timeout and socket bound.
func NewUDPPool() *UDPPool { return newUDPPool(udpIdle, udpMaxSockets) }

// udpPool is UDPPool's implementation.
type udpPool struct {
	idle       time.Duration
	maxSockets int

	mu    sync.Mutex
	socks map[udpKey]*udpSock // sockets taking new questions
	open  atomic.Int64        // open sockets, retired ones included
}

type udpKey struct {
	local  netip.Addr // invalid: any
	server netip.AddrPort
}

func newUDPPool(idle time.Duration, maxSockets int) *udpPool {
	return &udpPool{idle: idle, maxSockets: maxSockets, socks: map[udpKey]*udpSock{}}
}

// udpSock is one connected socket, its reader and its pending questions.
type udpSock struct {
	pool *udpPool
	key  udpKey
	conn *net.UDPConn

	mu      sync.Mutex
	pending map[uint16]chan udpReply // by message ID
	uses    int
	retired bool // takes no new questions; closes when nothing is pending
	closed  bool
	idle    *time.Timer
}

// udpReply is what the reader hands a waiting question: the datagram, or
// the socket's error (an ICMP error, a runt) that ends every pending question.
type udpReply struct {
	b   []byte
	err error
}

// udpWait is one question registered on a socket.
type udpWait struct {
	s  *udpSock
	id uint16
	ch chan udpReply
}

// acquire registers a question to server with a fresh random ID, opening
// the socket if needed. Any error means "ask without the pool".
func (p *udpPool) acquire(local netip.Addr, server netip.AddrPort) (*udpWait, error) {
	key := udpKey{local, server}
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.socks[key]
	if s != nil && s.unusable() {
		s = nil
	}
	if s == nil {
		if int(p.open.Load()) >= p.maxSockets {
			return nil, errUDPPoolFull
		}
		var laddr *net.UDPAddr
		if local.IsValid() {
			laddr = &net.UDPAddr{IP: local.AsSlice()}
		}
		conn, err := net.DialUDP("udp", laddr, net.UDPAddrFromAddrPort(server))
		if err != nil {
			return nil, err
		}
		s = &udpSock{pool: p, key: key, conn: conn, pending: map[uint16]chan udpReply{}}
		p.socks[key] = s
		p.open.Add(1)
		go s.read()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) >= udpMaxPending {
		return nil, errUDPPoolFull
	}
	for range udpIDTries {
		id := uint16(rand.Uint32())
		if _, busy := s.pending[id]; busy {
			continue
		}
		w := &udpWait{s: s, id: id, ch: make(chan udpReply, 1)}
		s.pending[id] = w.ch
		s.uses++
		if s.uses >= udpMaxUses {
			s.retired = true
			delete(p.socks, key)
		}
		if s.idle != nil {
			s.idle.Stop()
		}
		return w, nil
	}
	return nil, errUDPPoolFull
}

func (s *udpSock) unusable() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.retired || s.closed
}

// release forgets the question (answered, timed out or abandoned); a late
// answer to its ID is then dropped like any unknown one.
func (w *udpWait) release() {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[w.id] == w.ch {
		delete(s.pending, w.id)
	}
	s.quietLocked()
}

// quietLocked closes a retired socket with nothing pending, or arms the idle
// timer of a current one. s.mu is held.
func (s *udpSock) quietLocked() {
	if len(s.pending) > 0 || s.closed {
		return
	}
	if s.retired {
		s.closeLocked()
		return
	}
	if s.idle == nil {
		s.idle = time.AfterFunc(s.pool.idle, s.idleClose)
	} else {
		s.idle.Reset(s.pool.idle)
	}
}

// idleClose closes the socket if nothing was asked since the timer was set.
func (s *udpSock) idleClose() {
	p := s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 || s.closed {
		return
	}
	if p.socks[s.key] == s {
		delete(p.socks, s.key)
	}
	s.closeLocked()
}

func (s *udpSock) closeLocked() {
	s.closed = true
	if s.idle != nil {
		s.idle.Stop()
	}
	_ = s.conn.Close() // ends the reader
	s.pool.open.Add(-1)
}

// failAllLocked ends every pending question with err. s.mu is held.
func (s *udpSock) failAllLocked(err error) {
	for id, ch := range s.pending {
		ch <- udpReply{err: err}
		delete(s.pending, id)
	}
	s.quietLocked()
}

// read hands each datagram to the question with its ID. The socket is
// connected, so every datagram comes from the server; one too short to
// carry an ID, one with an unknown ID that does not parse, or an error the
// kernel reports for the socket (an ICMP port or host unreachable), belongs
// to no single question and ends them all, as it would have ended a lone
// question on a socket of its own.
func (s *udpSock) read() {
	// A datagram longer than the advertised size is cut to it, as a read
	// into a buffer of that size does.
	buf := make([]byte, EDNSBufferSize)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			var errno syscall.Errno
			s.mu.Lock()
			if errors.As(err, &errno) && !s.closed {
				// Asynchronous errors are consumed by this read; the socket stays usable.
				s.failAllLocked(err)
				s.mu.Unlock()
				continue
			}
			s.mu.Unlock()
			// Closed, or an error that may repeat: stop rather than spin.
			s.shutdown(err)
			return
		}
		s.mu.Lock()
		if n < 12 {
			s.failAllLocked(dns.ErrShortRead)
			s.mu.Unlock()
			continue
		}
		id := binary.BigEndian.Uint16(buf)
		if ch, ok := s.pending[id]; ok {
			delete(s.pending, id)
			ch <- udpReply{b: append([]byte(nil), buf[:n]...)}
			s.quietLocked()
		} else if len(s.pending) > 0 {
			// An unknown ID that parses (a late answer) is dropped: to the
			// question it looks like silence, as with a socket of its own.
			// One that does not parse ends the questions as malformed, as
			// a socket of its own took the first unparsable datagram (only
			// the server can reach a connected socket).
			if err := new(dns.Msg).Unpack(buf[:n]); err != nil {
				s.failAllLocked(err)
			}
		}
		s.mu.Unlock()
	}
}

// shutdown takes s out of the pool, ends its pending questions with err
// and closes it.
func (s *udpSock) shutdown(err error) {
	p := s.pool
	p.mu.Lock()
	defer p.mu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.socks[s.key] == s {
		delete(p.socks, s.key)
	}
	s.retired = true
	s.failAllLocked(err) // closes it, nothing being pending any more
	if !s.closed {
		s.closeLocked()
	}
}

// exchangeUDP asks m over the pool's socket to server and waits for the
// answer with its ID until the deadline or ctx ends. Errors read like the
// ones a socket of its own gives (read udp a->b: i/o timeout, connection
// refused), so classification and the reasons users see are unchanged.
func (p *udpPool) exchangeUDP(ctx context.Context, w *udpWait, m *dns.Msg, timeout time.Duration) (*dns.Msg, error) {
	defer w.release()
	m.Id = w.id
	b, err := m.Pack()
	if err != nil {
		return nil, err
	}
	if _, err := w.s.conn.Write(b); err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) {
			// The write may have consumed an ICMP error meant for an
			// earlier question to the same server: end those too.
			w.s.mu.Lock()
			delete(w.s.pending, w.id)
			w.s.failAllLocked(err)
			w.s.mu.Unlock()
		}
		return nil, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-w.ch:
		if r.err != nil {
			return nil, r.err
		}
		in := new(dns.Msg)
		if err := in.Unpack(r.b); err != nil {
			return nil, err
		}
		return in, nil
	case <-t.C:
		return nil, w.s.timeoutErr(os.ErrDeadlineExceeded)
	case <-ctx.Done():
		// Like the deadline a socket of its own would have had: a timeout.
		return nil, w.s.timeoutErr(ctxTimeout{ctx.Err()})
	}
}

// ctxTimeout is a question abandoned because its context ended; it reads
// as a timeout, as the read deadline of a socket of its own did.
type ctxTimeout struct{ err error }

func (e ctxTimeout) Error() string   { return "i/o timeout: " + e.err.Error() }
func (e ctxTimeout) Unwrap() error   { return e.err }
func (e ctxTimeout) Timeout() bool   { return true }
func (e ctxTimeout) Temporary() bool { return true }

func (s *udpSock) timeoutErr(err error) error {
	return &net.OpError{Op: "read", Net: "udp", Source: s.conn.LocalAddr(), Addr: s.conn.RemoteAddr(), Err: err}
}
