package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rawServer answers UDP (and optionally TCP) on a loopback port with reply,
// which gets the parsed query and returns the bytes to send (nil: silence).
func rawServer(t *testing.T, reply func(q *dns.Msg) []byte, tcp bool) netip.AddrPort {
	t.Helper()
	_, ap := udpServer(t, "127.0.0.1:0", func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
		if b := reply(q); b != nil {
			_, _ = pc.WriteTo(b, from)
		}
	})
	if tcp {
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			_, _ = w.Write(txtReply(q, "over tcp"))
		})}
		go func() { _ = srv.ActivateAndServe() }()
		t.Cleanup(func() { _ = srv.Shutdown() })
	}
	return ap
}

func packed(m *dns.Msg) []byte {
	b, err := m.Pack()
	if err != nil {
		panic(err)
	}
	return b
}

func TestQuerierAnswers(t *testing.T) {
	t.Parallel()
	ok := func(q *dns.Msg) []byte {
		m := new(dns.Msg)
		m.SetReply(q)
		m.Authoritative = true
		return packed(m)
	}
	cases := []struct {
		desc      string
		reply     func(q *dns.Msg) []byte
		tcp       bool
		wantKind  ErrorKind // 0: success
		wantTCP   bool
		wantRcode int
	}{
		{desc: "plain answer", reply: ok},
		{desc: "silence is a timeout", reply: func(*dns.Msg) []byte { return nil }, wantKind: KindTimeout},
		{desc: "garbage bytes", reply: func(*dns.Msg) []byte { return []byte{0xde, 0xad, 0xbe, 0xef, 1, 2, 3} }, wantKind: KindMalformed},
		{desc: "garbage with a random ID", reply: func(q *dns.Msg) []byte {
			b := []byte{byte(q.Id>>8) ^ 0xff, byte(q.Id), 0x81, 0x80, 0, 1, 0, 9, 0, 9, 0, 9, 0xff, 0xfe, 0xfd}
			return b
		}, wantKind: KindMalformed},
		{desc: "a question name that points at itself", reply: func(q *dns.Msg) []byte {
			return []byte{byte(q.Id >> 8), byte(q.Id), 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
		}, wantKind: KindMalformed},
		{desc: "the same with an unknown ID", reply: func(q *dns.Msg) []byte {
			return []byte{byte(q.Id>>8) ^ 0xff, byte(q.Id), 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1}
		}, wantKind: KindMalformed},
		// Like a resolver, the client ignores answers with another ID (a
		// spoofing defence): such a server looks silent.
		{desc: "mismatched ID", reply: func(q *dns.Msg) []byte {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Id = q.Id + 1
			return packed(m)
		}, wantKind: KindTimeout},
		{desc: "answer to another question", reply: func(q *dns.Msg) []byte {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Question[0].Name = "other.example."
			return packed(m)
		}, wantKind: KindMalformed},
		{desc: "truncated then TCP", reply: func(q *dns.Msg) []byte {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Truncated = true
			return packed(m)
		}, tcp: true, wantTCP: true},
		{desc: "truncated and no TCP", reply: func(q *dns.Msg) []byte {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Truncated = true
			return packed(m)
		}, wantKind: KindTruncated},
		{desc: "SERVFAIL keeps the message", reply: func(q *dns.Msg) []byte {
			m := new(dns.Msg)
			m.SetRcode(q, dns.RcodeServerFailure)
			return packed(m)
		}, wantKind: KindRcode, wantRcode: dns.RcodeServerFailure},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			server := rawServer(t, tc.reply, tc.tcp)
			q := NewQuerier(300*time.Millisecond, netip.Addr{}, nil)
			r := q.Query(context.Background(), server, "Example.COM.", dns.TypeTXT, QueryOptions{})
			var qe *QueryError
			if tc.wantKind == 0 {
				if r.Err != nil {
					t.Fatalf("unexpected error %v", r.Err)
				}
			} else if !errors.As(r.Err, &qe) || qe.Kind != tc.wantKind {
				t.Fatalf("err = %v, want kind %v", r.Err, tc.wantKind)
			}
			if tc.wantRcode != 0 && r.Rcode() != tc.wantRcode {
				t.Errorf("rcode %d, want %d", r.Rcode(), tc.wantRcode)
			}
			if r.TCP != tc.wantTCP {
				t.Errorf("TCP = %v, want %v", r.TCP, tc.wantTCP)
			}
		})
	}
}

// A black-holed address costs one timeout per run, whatever is asked of it.
func TestQuerierDeadAddressOneTimeout(t *testing.T) {
	t.Parallel()
	server := rawServer(t, func(*dns.Msg) []byte { return nil }, false)
	q := NewQuerier(200*time.Millisecond, netip.Addr{}, nil)
	for _, name := range []string{"a.example.", "b.example.", "c.example."} {
		for _, qt := range []uint16{dns.TypeA, dns.TypeAAAA, dns.TypeCAA} {
			r := q.Query(context.Background(), server, name, qt, QueryOptions{})
			var qe *QueryError
			if !errors.As(r.Err, &qe) || qe.Kind != KindTimeout {
				t.Fatalf("%s %d: err %v, want a timeout", name, qt, r.Err)
			}
		}
	}
	if got := q.Timeouts(); got != 1 {
		t.Errorf("%d timeouts waited out, want 1", got)
	}
	if got := q.Sent(); got != 1 {
		t.Errorf("%d messages sent, want 1", got)
	}
	if !q.Dead(server.Addr()) {
		t.Error("address not marked dead")
	}
}

// Identical questions asked concurrently go on the wire once.
func TestQuerierSharesIdenticalQuestions(t *testing.T) {
	t.Parallel()
	server := rawServer(t, func(q *dns.Msg) []byte {
		time.Sleep(50 * time.Millisecond)
		m := new(dns.Msg)
		m.SetReply(q)
		return packed(m)
	}, false)
	q := NewQuerier(time.Second, netip.Addr{}, nil)
	done := make(chan *Response, 8)
	for range 8 {
		go func() { done <- q.Query(context.Background(), server, "WWW.example.", dns.TypeA, QueryOptions{}) }()
	}
	for range 8 {
		if r := <-done; r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if got := q.Sent(); got != 1 {
		t.Errorf("%d messages sent for 8 identical questions, want 1", got)
	}
}

// udpServer serves UDP on addr (port 0: any) and calls handle for every
// question in a goroutine of its own, so answers may go out of order.
func udpServer(t *testing.T, addr string, handle func(pc net.PacketConn, from net.Addr, q *dns.Msg)) (net.PacketConn, netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			go handle(pc, from, q)
		}
	}()
	return pc, netip.MustParseAddrPort(pc.LocalAddr().String())
}

// txtReply answers q with one TXT record holding text.
func txtReply(q *dns.Msg, text string) []byte {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{text}})
	return packed(m)
}

func txtOf(r *Response) string {
	if r.Msg == nil || len(r.Msg.Answer) != 1 {
		return ""
	}
	if txt, ok := r.Msg.Answer[0].(*dns.TXT); ok && len(txt.Txt) == 1 {
		return txt.Txt[0]
	}
	return ""
}

// testQuerier is a Querier on a pool of its own, so that a test can count
// that pool's sockets.
func testQuerier(timeout time.Duration, local netip.Addr, pool *udpPool) *Querier {
	q := NewQuerier(timeout, local, nil)
	q.udp = pool
	return q
}

// Many questions in flight on one shared socket each get their own answer,
// whatever order the answers come back in, and all of them travel on one
// socket (one source port at the server).
func TestQuerierSharedSocketDemux(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	ports := map[string]bool{}
	_, server := udpServer(t, "127.0.0.1:0", func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
		mu.Lock()
		ports[from.String()] = true
		mu.Unlock()
		// Later questions are answered sooner: replies come back reversed.
		i := 64 // the warm-up question is answered at once
		_, _ = fmt.Sscanf(q.Question[0].Name, "n%d.", &i)
		time.Sleep(time.Duration(64-i) * time.Millisecond)
		_, _ = pc.WriteTo(txtReply(q, "answer for "+q.Question[0].Name), from)
	})
	pool := newUDPPool(time.Minute, 8)
	cases := []struct {
		desc     string
		label    string
		queriers int // questions are spread over this many Queriers
	}{
		{desc: "one querier", label: "one", queriers: 1},
		{desc: "one querier per question, as the daemon's runs", label: "each", queriers: 64},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			qs := make([]*Querier, tc.queriers)
			for i := range qs {
				qs[i] = testQuerier(2*time.Second, netip.Addr{}, pool)
				// The first-contact gate would hold the others back until one answer.
				qs[i].Query(context.Background(), server, "warmup.", dns.TypeTXT, QueryOptions{})
			}
			var wg sync.WaitGroup
			got := make([]*Response, 64)
			for i := range got {
				wg.Go(func() {
					got[i] = qs[i%len(qs)].Query(context.Background(), server, fmt.Sprintf("n%d.%s.example.", i, tc.label), dns.TypeTXT, QueryOptions{})
				})
			}
			wg.Wait()
			for i, r := range got {
				want := "answer for " + r.Name
				if r.Err != nil || txtOf(r) != want {
					t.Errorf("question %d (%s): err %v, answer %q, want %q", i, r.Name, r.Err, txtOf(r), want)
				}
			}
			if n := pool.open.Load(); n != 1 {
				t.Errorf("%d sockets open, want 1", n)
			}
		})
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ports) != 1 {
		t.Errorf("the server saw %d source addresses %v, want 1", len(ports), ports)
	}
}

// Datagrams that are not the answer to the question — another ID, another
// sender — are ignored: the question takes the real answer that follows,
// or times out without one.
func TestQuerierIgnoresForeignAnswers(t *testing.T) {
	t.Parallel()
	// The spoofer knows the ID and the client's port (the worst case) but
	// sends from another address or port than the server's.
	spoofer, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { spoofer.Close() })
	samePort, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { samePort.Close() })
	cases := []struct {
		desc     string
		send     func(pc net.PacketConn, from net.Addr, q *dns.Msg) // before the real answer
		real     bool                                               // the server answers 50 ms later
		wantKind ErrorKind
	}{
		{desc: "wrong ID, then the answer", real: true, send: func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Id = q.Id ^ 0x5a5a
			_, _ = pc.WriteTo(txtReply(m, "spoofed"), from)
		}},
		{desc: "right ID from another address, then the answer", real: true, send: func(_ net.PacketConn, from net.Addr, q *dns.Msg) {
			_, _ = spoofer.WriteTo(txtReply(q, "spoofed"), from)
		}},
		{desc: "right ID from another port, then the answer", real: true, send: func(_ net.PacketConn, from net.Addr, q *dns.Msg) {
			_, _ = samePort.WriteTo(txtReply(q, "spoofed"), from)
		}},
		{desc: "right ID from another address, no answer", wantKind: KindTimeout, send: func(_ net.PacketConn, from net.Addr, q *dns.Msg) {
			_, _ = spoofer.WriteTo(txtReply(q, "spoofed"), from)
		}},
		{desc: "runt from another address, then the answer", real: true, send: func(_ net.PacketConn, from net.Addr, q *dns.Msg) {
			_, _ = spoofer.WriteTo([]byte{1, 2, 3}, from)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, server := udpServer(t, "127.0.0.1:0", func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
				tc.send(pc, from, q)
				if tc.real {
					time.Sleep(50 * time.Millisecond)
					_, _ = pc.WriteTo(txtReply(q, "real"), from)
				}
			})
			q := testQuerier(300*time.Millisecond, netip.Addr{}, newUDPPool(time.Minute, 8))
			r := q.Query(context.Background(), server, "a.example.", dns.TypeTXT, QueryOptions{})
			var qe *QueryError
			switch {
			case tc.wantKind == 0 && (r.Err != nil || txtOf(r) != "real"):
				t.Errorf("err %v, answer %q; want the real answer", r.Err, txtOf(r))
			case tc.wantKind != 0 && (!errors.As(r.Err, &qe) || qe.Kind != tc.wantKind):
				t.Errorf("err %v, want kind %v", r.Err, tc.wantKind)
			}
		})
	}
}

// Timeouts: the per-query timeout, the context's deadline, and an answer
// that arrives after its question gave up, which must not be taken as the
// answer to the next question on the same socket.
func TestQuerierTimeoutsOnSharedSocket(t *testing.T) {
	t.Parallel()
	_, server := udpServer(t, "127.0.0.1:0", func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
		if strings.HasPrefix(q.Question[0].Name, "slow") {
			time.Sleep(250 * time.Millisecond)
		}
		_, _ = pc.WriteTo(txtReply(q, "answer for "+q.Question[0].Name), from)
	})
	pool := newUDPPool(time.Minute, 8)
	cases := []struct {
		desc     string
		name     string
		opts     QueryOptions
		ctxLimit time.Duration // 0: none
		wantKind ErrorKind
		minWait  time.Duration
		maxWait  time.Duration
	}{
		{desc: "Querier timeout", name: "slow1.example.", wantKind: KindTimeout, minWait: 100 * time.Millisecond, maxWait: 240 * time.Millisecond},
		{desc: "per-query timeout is longer", name: "slow2.example.", opts: QueryOptions{Timeout: time.Second}, minWait: 250 * time.Millisecond, maxWait: 900 * time.Millisecond},
		{desc: "context deadline is shorter", name: "slow3.example.", opts: QueryOptions{Timeout: time.Second}, ctxLimit: 60 * time.Millisecond, wantKind: KindTimeout, minWait: 60 * time.Millisecond, maxWait: 240 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			q := testQuerier(100*time.Millisecond, netip.Addr{}, pool)
			q.Query(context.Background(), server, "warmup.", dns.TypeTXT, QueryOptions{}) // past the first-contact gate
			ctx := context.Background()
			if tc.ctxLimit > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxLimit)
				defer cancel()
			}
			start := time.Now()
			r := q.Query(ctx, server, tc.name, dns.TypeTXT, tc.opts)
			took := time.Since(start)
			var qe *QueryError
			if tc.wantKind == 0 {
				if r.Err != nil || txtOf(r) != "answer for "+tc.name {
					t.Errorf("err %v, answer %q", r.Err, txtOf(r))
				}
			} else if !errors.As(r.Err, &qe) || qe.Kind != tc.wantKind {
				t.Errorf("err %v, want kind %v", r.Err, tc.wantKind)
			}
			if took < tc.minWait || took > tc.maxWait {
				t.Errorf("took %v, want %v–%v", took, tc.minWait, tc.maxWait)
			}
			// The late answer (if any) lands while this question is asked.
			r = q.Query(context.Background(), server, "next-"+tc.name, dns.TypeTXT, QueryOptions{Timeout: 400 * time.Millisecond})
			if r.Err != nil || txtOf(r) != "answer for next-"+tc.name {
				t.Errorf("next question: err %v, answer %q", r.Err, txtOf(r))
			}
		})
	}
	if n := pool.open.Load(); n != 1 {
		t.Errorf("%d sockets open, want 1", n)
	}
}

// Questions to many servers at once: one socket each, every answer from its
// own server; past the pool's bound, questions still get answered (on a
// socket of their own).
func TestQuerierManyServers(t *testing.T) {
	t.Parallel()
	cases := []struct {
		desc       string
		maxSockets int
		wantOpen   int64
	}{
		{desc: "within the bound", maxSockets: 64, wantOpen: 24},
		{desc: "past the bound", maxSockets: 5, wantOpen: 5},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			servers := make([]netip.AddrPort, 24)
			for i := range servers {
				_, servers[i] = udpServer(t, fmt.Sprintf("127.0.%d.%d:0", 9+i/200, 10+i%200), func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
					_, _ = pc.WriteTo(txtReply(q, pc.LocalAddr().String()), from)
				})
			}
			pool := newUDPPool(time.Minute, tc.maxSockets)
			q := testQuerier(2*time.Second, netip.Addr{}, pool)
			var wg sync.WaitGroup
			got := make([]*Response, 3*len(servers))
			for i := range got {
				wg.Go(func() {
					got[i] = q.Query(context.Background(), servers[i%len(servers)], fmt.Sprintf("q%d.example.", i), dns.TypeTXT, QueryOptions{})
				})
			}
			wg.Wait()
			for i, r := range got {
				if want := servers[i%len(servers)].String(); r.Err != nil || txtOf(r) != want {
					t.Errorf("question %d: err %v, answer %q, want %q", i, r.Err, txtOf(r), want)
				}
			}
			if n := pool.open.Load(); n != tc.wantOpen {
				t.Errorf("%d sockets open, want %d", n, tc.wantOpen)
			}
		})
	}
}

// A closed port answers with an ICMP port unreachable: a network error
// (connection refused) for every question waiting on the socket, as it was
// with a socket per question, not a timeout; the socket stays usable.
func TestQuerierRefusedOnSharedSocket(t *testing.T) {
	t.Parallel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(pc.LocalAddr().String())
	pc.Close()
	pool := newUDPPool(time.Minute, 8)
	q := testQuerier(2*time.Second, netip.Addr{}, pool)
	start := time.Now()
	var wg sync.WaitGroup
	got := make([]*Response, 4)
	for i := range got {
		wg.Go(func() {
			got[i] = q.Query(context.Background(), closed, fmt.Sprintf("r%d.example.", i), dns.TypeA, QueryOptions{})
		})
	}
	wg.Wait()
	for i, r := range got {
		var qe *QueryError
		if !errors.As(r.Err, &qe) || qe.Kind != KindNetwork || !strings.Contains(r.Err.Error(), "connection refused") {
			t.Errorf("question %d: err %v, want a network error (connection refused)", i, r.Err)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("took %v: refused questions waited for the timeout", took)
	}
	if q.Dead(closed.Addr()) {
		t.Error("a refusing address was marked dead (dead is for timeouts)")
	}
	if n := pool.open.Load(); n != 1 {
		t.Errorf("%d sockets open, want 1", n)
	}
}

// Source binding and 0x20: the server sees the vantage's source address and
// the name's case as given.
func TestQuerierSourceAndCase(t *testing.T) {
	t.Parallel()
	_, server := udpServer(t, "127.0.0.1:0", func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
		_, _ = pc.WriteTo(txtReply(q, from.(*net.UDPAddr).IP.String()+" "+q.Question[0].Name), from)
	})
	cases := []struct {
		desc  string
		local netip.Addr
		opts  QueryOptions
		want  string
	}{
		{desc: "any source, lower-cased", want: "127.0.0.1 mixed.example."},
		{desc: "bound source", local: netip.MustParseAddr("127.0.0.77"), want: "127.0.0.77 mixed.example."},
		{desc: "bound source, case kept", local: netip.MustParseAddr("127.0.0.78"), opts: QueryOptions{KeepCase: true}, want: "127.0.0.78 MiXeD.example."},
	}
	pool := newUDPPool(time.Minute, 8)
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			q := testQuerier(time.Second, tc.local, pool)
			r := q.Query(context.Background(), server, "MiXeD.example.", dns.TypeTXT, tc.opts)
			if r.Err != nil || txtOf(r) != tc.want {
				t.Errorf("err %v, answer %q, want %q", r.Err, txtOf(r), tc.want)
			}
		})
	}
	if n := pool.open.Load(); n != 3 {
		t.Errorf("%d sockets open, want one per source address (3)", n)
	}
}

// A server that fails questions carrying EDNS is asked again without it, as
// Unbound does; the answer without EDNS stands (marked NoEDNS) only when it
// is NOERROR or NXDOMAIN.
func TestQuerierEDNSFallback(t *testing.T) {
	t.Parallel()
	rcodeReply := func(q *dns.Msg, rcode int) []byte {
		m := new(dns.Msg)
		m.SetRcode(q, rcode)
		return packed(m)
	}
	cases := []struct {
		desc       string
		withEDNS   func(q *dns.Msg) []byte // the reply to a query with OPT
		withoutOPT func(q *dns.Msg) []byte
		wantRcode  int
		wantNoEDNS bool
		wantText   string
	}{
		{desc: "FORMERR with EDNS, an answer without", withEDNS: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeFormatError) },
			withoutOPT: func(q *dns.Msg) []byte { return txtReply(q, "no edns") }, wantNoEDNS: true, wantText: "no edns"},
		{desc: "NOTIMP with EDNS, an answer without", withEDNS: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeNotImplemented) },
			withoutOPT: func(q *dns.Msg) []byte { return txtReply(q, "no edns") }, wantNoEDNS: true, wantText: "no edns"},
		{desc: "NXDOMAIN without EDNS stands", withEDNS: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeFormatError) },
			withoutOPT: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeNameError) }, wantRcode: dns.RcodeNameError, wantNoEDNS: true},
		{desc: "NOTIMP either way: the first answer stays", withEDNS: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeNotImplemented) },
			withoutOPT: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeNotImplemented) }, wantRcode: dns.RcodeNotImplemented},
		{desc: "FORMERR then silence: the FORMERR stays", withEDNS: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeFormatError) },
			withoutOPT: func(*dns.Msg) []byte { return nil }, wantRcode: dns.RcodeFormatError},
		{desc: "an answer to EDNS that does not parse, a good one without", withEDNS: func(*dns.Msg) []byte { return []byte{0xde, 0xad, 0xbe, 0xef} },
			withoutOPT: func(q *dns.Msg) []byte { return txtReply(q, "no edns") }, wantNoEDNS: true, wantText: "no edns"},
		{desc: "garbage either way: the first failure stays", withEDNS: func(*dns.Msg) []byte { return []byte{0xde, 0xad, 0xbe, 0xef} },
			withoutOPT: func(*dns.Msg) []byte { return []byte{0xde, 0xad, 0xbe, 0xef} }, wantRcode: -1},
		{desc: "SERVFAIL is not asked again", withEDNS: func(q *dns.Msg) []byte { return rcodeReply(q, dns.RcodeServerFailure) },
			withoutOPT: func(q *dns.Msg) []byte { return txtReply(q, "no edns") }, wantRcode: dns.RcodeServerFailure},
		{desc: "a server that does EDNS", withEDNS: func(q *dns.Msg) []byte { return txtReply(q, "edns") },
			withoutOPT: func(q *dns.Msg) []byte { return txtReply(q, "no edns") }, wantText: "edns"},
	}
	for _, tc := range cases {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			server := rawServer(t, func(q *dns.Msg) []byte {
				if q.IsEdns0() != nil {
					return tc.withEDNS(q)
				}
				return tc.withoutOPT(q)
			}, false)
			q := NewQuerier(300*time.Millisecond, netip.Addr{}, nil)
			r := q.Query(context.Background(), server, "edns.example.", dns.TypeTXT, QueryOptions{})
			if r.Rcode() != tc.wantRcode || r.NoEDNS != tc.wantNoEDNS || txtOf(r) != tc.wantText {
				t.Errorf("rcode %d NoEDNS %v text %q (err %v), want rcode %d NoEDNS %v text %q",
					r.Rcode(), r.NoEDNS, txtOf(r), r.Err, tc.wantRcode, tc.wantNoEDNS, tc.wantText)
			}
		})
	}
}

// After use, an idle pool closes its sockets and their readers: no file
// descriptor or goroutine is left behind.
func TestQuerierNoLeak(t *testing.T) {
	// Not parallel: it counts the process's file descriptors and goroutines.
	_, server := udpServer(t, "127.0.0.1:0", func(pc net.PacketConn, from net.Addr, q *dns.Msg) {
		_, _ = pc.WriteTo(txtReply(q, "ok"), from)
	})
	_, silent := udpServer(t, "127.0.0.1:0", func(net.PacketConn, net.Addr, *dns.Msg) {})
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skipf("no /proc/self/fd: %v", err)
		}
		return len(ents)
	}
	fds0, gs0 := fds(), runtime.NumGoroutine()
	pool := newUDPPool(100*time.Millisecond, 8)
	for i := range 50 { // runs of a daemon: a Querier each
		q := testQuerier(200*time.Millisecond, netip.Addr{}, pool)
		if r := q.Query(context.Background(), server, fmt.Sprintf("n%d.example.", i), dns.TypeTXT, QueryOptions{}); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	q := testQuerier(50*time.Millisecond, netip.Addr{}, pool)
	q.Query(context.Background(), silent, "x.example.", dns.TypeTXT, QueryOptions{})
	if n := pool.open.Load(); n != 2 {
		t.Errorf("%d sockets open while in use, want 2", n)
	}
	var fdsN, gsN int
	for range 200 {
		time.Sleep(10 * time.Millisecond)
		if fdsN, gsN = fds(), runtime.NumGoroutine(); pool.open.Load() == 0 && fdsN <= fds0 && gsN <= gs0 {
			return
		}
	}
	t.Errorf("after idling: %d sockets open, fds %d → %d, goroutines %d → %d", pool.open.Load(), fds0, fdsN, gs0, gsN)
}
