package dnscheck

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// rawServer answers UDP (and optionally TCP) on a loopback port with reply,
// which gets the parsed query and returns the bytes to send (nil: silence).
func rawServer(t *testing.T, reply func(q *dns.Msg) []byte, tcp bool) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := new(dns.Msg)
			if q.Unpack(buf[:n]) != nil {
				continue
			}
			if b := reply(q); b != nil {
				_, _ = pc.WriteTo(b, addr)
			}
		}
	}()
	ap := netip.MustParseAddrPort(pc.LocalAddr().String())
	if tcp {
		ln, err := net.Listen("tcp", ap.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
			m := new(dns.Msg)
			m.SetReply(q)
			m.Authoritative = true
			m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{"over tcp"}})
			_ = w.WriteMsg(m)
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
