// Package dnsserver is a small authoritative DNS server for the hermetic
// test universe: zones from zone-file text, correct referrals, negative
// answers and DNSSEC (ECDSA P-256 keys, NSEC), over UDP and TCP, with a
// fault middleware (drop, delay, SERVFAIL, lame, truncation, broken 0x20,
// garbage, …) so tests can reproduce what breaks ACME validation in the wild.
// It never recurses. A server can be the primary of a zone and accept
// TSIG-signed RFC 2136 UPDATEs of TXT RRsets, passing each change on to
// the zone's other copies (secondaries), at once or after a lag.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// advertisedUDPSize is the EDNS buffer size this server announces.
const advertisedUDPSize = 1232

// Config describes one authoritative server.
type Config struct {
	Name   string   // short id for logs, e.g. "ns1-timeout"
	Host   string   // its NS host name
	Addrs  []string // IP addresses to listen on
	Port   int
	Faults []Fault
	Logger *zap.Logger
}

// Server is one authoritative server listening on every configured address,
// UDP and TCP. Zones may be added before Start and changed at any time.
type Server struct {
	cfg  Config
	log  *zap.Logger
	done chan struct{}
	// hits counts the queries each fault met (by index in cfg.Faults),
	// so a test can tell a fault that was never asked from one that was
	// shrugged off.
	hits []atomic.Int64
	// workers are the replication goroutines; Close waits for them, so
	// none logs after its owner (a test) has finished.
	workers sync.WaitGroup

	mu       sync.RWMutex
	zones    map[string]*Zone
	servers  []*dns.Server
	closed   bool
	tsigKeys map[string]TSIGKey     // canonical key name → key (UPDATE)
	updates  map[string]*updateZone // origins this server is the primary of
}

// New returns a server that is not listening yet.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Server{
		cfg:      cfg,
		hits:     make([]atomic.Int64, len(cfg.Faults)),
		log:      log.Named("dns").With(zap.String("server", cfg.Name)),
		done:     make(chan struct{}),
		zones:    map[string]*Zone{},
		tsigKeys: map[string]TSIGKey{},
		updates:  map[string]*updateZone{},
	}
}

// Name is the server's short id.
func (s *Server) Name() string { return s.cfg.Name }

// Host is the server's NS host name.
func (s *Server) Host() string { return s.cfg.Host }

// Addrs are the addresses it listens on.
func (s *Server) Addrs() []string { return slices.Clone(s.cfg.Addrs) }

// Faults lists its faults.
func (s *Server) Faults() []Fault { return slices.Clone(s.cfg.Faults) }

// FaultHits is how many queries met each fault so far, in Faults' order.
func (s *Server) FaultHits() []int64 {
	out := make([]int64, len(s.hits))
	for i := range s.hits {
		out[i] = s.hits[i].Load()
	}
	return out
}

// AddZone makes the server authoritative for z (replacing an earlier copy of
// the same origin).
func (s *Server) AddZone(z *Zone) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zones[z.Origin()] = z
}

// Zone returns this server's copy of origin, or nil.
func (s *Server) Zone(origin string) *Zone {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.zones[dns.CanonicalName(origin)]
}

// Zones lists the origins it serves.
func (s *Server) Zones() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []string
	for o := range s.zones {
		out = append(out, o)
	}
	slices.Sort(out)
	return out
}

func (s *Server) hasFault(k FaultKind) bool {
	return slices.ContainsFunc(s.cfg.Faults, func(f Fault) bool { return f.Kind == k })
}

// Start binds every address (UDP, and TCP unless the server has FaultNoTCP)
// and serves. Binding happens before Start returns, so the server is ready
// to answer when it does.
func (s *Server) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var lc net.ListenConfig
	for _, a := range s.cfg.Addrs {
		addr := net.JoinHostPort(a, strconv.Itoa(s.cfg.Port))
		pc, err := lc.ListenPacket(ctx, "udp", addr)
		if err != nil {
			s.Close()
			return fmt.Errorf("dns server %s: listen udp %s: %w", s.cfg.Name, addr, err)
		}
		s.serve(&dns.Server{PacketConn: pc, Net: "udp", UDPSize: dns.MaxMsgSize})
		if s.hasFault(FaultNoTCP) {
			continue
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			s.Close()
			return fmt.Errorf("dns server %s: listen tcp %s: %w", s.cfg.Name, addr, err)
		}
		s.serve(&dns.Server{Listener: l, Net: "tcp"})
	}
	s.log.Debug("listening", zap.Strings("addrs", s.cfg.Addrs), zap.Int("port", s.cfg.Port))
	return nil
}

func (s *Server) serve(srv *dns.Server) {
	srv.Handler = s
	srv.TsigProvider = tsigProvider{s}
	srv.MsgAcceptFunc = acceptMsg
	srv.ReadTimeout = 2 * time.Second
	srv.WriteTimeout = 2 * time.Second
	srv.IdleTimeout = func() time.Duration { return 5 * time.Second }
	s.mu.Lock()
	s.servers = append(s.servers, srv)
	s.mu.Unlock()
	go func() {
		if err := srv.ActivateAndServe(); err != nil {
			s.log.Debug("serve ended", zap.Error(err))
		}
	}()
}

// Close stops every listener. Queries being delayed are abandoned.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	servers := s.servers
	s.mu.Unlock()
	var errs []error
	for _, srv := range servers {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := srv.ShutdownContext(ctx); err != nil {
			errs = append(errs, err)
		}
		cancel()
	}
	s.workers.Wait()
	return errors.Join(errs...)
}

// zoneFor picks the deepest zone this server serves that contains name;
// for DS at a zone apex it prefers the parent zone, which owns the DS.
func (s *Server) zoneFor(name string, qtype uint16) *Zone {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var best *Zone
	for o, z := range s.zones {
		if !dns.IsSubDomain(o, name) {
			continue
		}
		if qtype == dns.TypeDS && o == name && o != "." {
			continue
		}
		if best == nil || dns.CountLabel(o) > dns.CountLabel(best.Origin()) {
			best = z
		}
	}
	if best == nil && qtype == dns.TypeDS {
		return s.zones[name]
	}
	return best
}

// ServeDNS implements dns.Handler: the fault middleware, then the
// authoritative answer.
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	if len(r.Question) != 1 {
		m := new(dns.Msg)
		m.SetRcode(r, dns.RcodeFormatError)
		_ = w.WriteMsg(m)
		return
	}
	q := r.Question[0]
	udp := w.LocalAddr().Network() == "udp"
	var post []Fault
	for i, f := range s.cfg.Faults {
		if !f.applies(q) || !f.fromSource(w.RemoteAddr()) {
			continue
		}
		s.hits[i].Add(1)
		switch f.Kind {
		case FaultDrop:
			return
		case FaultDelay:
			t := time.NewTimer(f.Delay)
			select {
			case <-t.C:
			case <-s.done:
				t.Stop()
				return
			}
		case FaultServFail, FaultRefused, FaultNotImp, FaultLameRefused:
			rcode := map[FaultKind]int{FaultServFail: dns.RcodeServerFailure, FaultRefused: dns.RcodeRefused,
				FaultNotImp: dns.RcodeNotImplemented, FaultLameRefused: dns.RcodeRefused}[f.Kind]
			m := new(dns.Msg)
			m.SetRcode(r, rcode)
			s.write(w, r, m, udp)
			return
		case FaultEDNSIntolerant:
			if r.IsEdns0() != nil {
				m := new(dns.Msg)
				m.SetRcode(r, dns.RcodeFormatError)
				_ = w.WriteMsg(m)
				return
			}
		case FaultGarbage:
			// Random bytes that no parser takes for a message, so a test
			// of it cannot pass or fail by chance: one question whose name
			// is a compression pointer to itself (random bytes alone parse
			// now and then, e.g. a bare 12-byte header).
			b := make([]byte, 14+rand.IntN(100))
			for i := range b {
				b[i] = byte(rand.IntN(256))
			}
			b[4], b[5] = 0, 1
			b[12], b[13] = 0xC0, 12
			_, _ = w.Write(b)
			return
		case FaultNXDomain, FaultFormErr:
			m := new(dns.Msg)
			m.SetRcode(r, map[FaultKind]int{FaultNXDomain: dns.RcodeNameError, FaultFormErr: dns.RcodeFormatError}[f.Kind])
			m.Authoritative = f.Kind == FaultNXDomain
			s.write(w, r, m, udp)
			return
		case FaultNoData:
			m := new(dns.Msg)
			m.SetReply(r)
			m.Authoritative = true
			s.write(w, r, m, udp)
			return
		case FaultEmpty:
			m := new(dns.Msg)
			m.Id, m.Response, m.Opcode = r.Id, true, r.Opcode
			_ = w.WriteMsg(m)
			return
		case FaultWrongQuestion:
			m := new(dns.Msg)
			m.SetReply(r)
			m.Authoritative = true
			m.Question[0].Name = "wrong-question.invalid."
			s.write(w, r, m, udp)
			return
		case FaultTCNoTCP:
			if !udp {
				_ = w.Close()
				return
			}
			m := new(dns.Msg)
			m.SetReply(r)
			m.Truncated = true
			s.write(w, r, m, udp)
			return
		case FaultAlwaysTC:
			if udp {
				m := new(dns.Msg)
				m.SetReply(r)
				m.Authoritative = true
				m.Truncated = true
				s.write(w, r, m, udp)
				return
			}
		default:
			post = append(post, f)
		}
	}
	if r.Opcode == dns.OpcodeUpdate {
		s.serveUpdate(w, r)
		return
	}
	m := s.answer(w, r, q, udp)
	for _, f := range post {
		switch f.Kind {
		case FaultLameNoAA:
			m.Authoritative = false
		case FaultWrong0x20:
			m.Question[0].Name = strings.ToLower(m.Question[0].Name)
			for _, rr := range m.Answer {
				rr.Header().Name = strings.ToLower(rr.Header().Name)
			}
		case FaultWrongID:
			m.Id = r.Id ^ 0x5a5a
		case FaultNoDenial:
			stripDenial(m)
		}
	}
	s.write(w, r, m, udp)
}

// stripDenial removes the proof from a negative answer (NXDOMAIN, or
// NODATA: authoritative, NOERROR, nothing of the asked type): the NSEC and
// NSEC3 records of the authority section and the RRSIGs over them. The SOA
// and its signature stay, as a server with a broken denial sends them.
func stripDenial(m *dns.Msg) {
	q := m.Question[0]
	nodata := m.Rcode == dns.RcodeSuccess && m.Authoritative &&
		!slices.ContainsFunc(m.Answer, func(rr dns.RR) bool { return rr.Header().Rrtype == q.Qtype })
	if m.Rcode != dns.RcodeNameError && !nodata {
		return
	}
	m.Ns = slices.DeleteFunc(m.Ns, func(rr dns.RR) bool {
		switch v := rr.(type) {
		case *dns.NSEC, *dns.NSEC3:
			return true
		case *dns.RRSIG:
			return v.TypeCovered == dns.TypeNSEC || v.TypeCovered == dns.TypeNSEC3
		}
		return false
	})
}

func (s *Server) answer(w dns.ResponseWriter, r *dns.Msg, q dns.Question, udp bool) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	m.RecursionAvailable = false
	if r.Opcode != dns.OpcodeQuery || q.Qclass != dns.ClassINET {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	name := strings.ToLower(q.Name)
	z := s.zoneFor(name, q.Qtype)
	if z == nil {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
		if !z.allowAXFR || udp || name != z.Origin() {
			m.Rcode = dns.RcodeRefused
		} else {
			m.Rcode = -1 // sent by xfr
			s.transfer(w, r, z)
		}
		return m
	}
	do := false
	if opt := r.IsEdns0(); opt != nil {
		do = opt.Do()
	}
	a := z.Lookup(q.Name, q.Qtype, do)
	m.Rcode = a.Rcode
	m.Authoritative = a.Authoritative
	m.Answer, m.Ns, m.Extra = a.Answer, a.Ns, a.Extra
	return m
}

func (s *Server) transfer(w dns.ResponseWriter, r *dns.Msg, z *Zone) {
	rrs := z.Records()
	rrs = append(rrs, rrs[0])
	ch := make(chan *dns.Envelope, 1)
	go func() {
		defer close(ch)
		for i := 0; i < len(rrs); i += 100 {
			ch <- &dns.Envelope{RR: rrs[i:min(i+100, len(rrs))]}
		}
	}()
	tr := new(dns.Transfer)
	if err := tr.Out(w, r, ch); err != nil {
		s.log.Debug("axfr", zap.Error(err))
	}
	for range ch { // drain so the producer ends
	}
}

// write adds EDNS when the query had it, truncates to the client's UDP
// buffer (512 without EDNS) and sends.
func (s *Server) write(w dns.ResponseWriter, r, m *dns.Msg, udp bool) {
	if m.Rcode < 0 {
		return
	}
	limit := dns.MinMsgSize
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(advertisedUDPSize, opt.Do())
		limit = max(int(opt.UDPSize()), dns.MinMsgSize)
	}
	m.Compress = true
	if udp {
		m.Truncate(limit)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("write", zap.Error(err))
	}
}
