package dnscheck

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzAnswerHandling feeds arbitrary server answers through everything that
// reads one: referral following, CNAME chasing, per-server judgement, the
// CA-problem wording and split-horizon comparison. Hostile answers must
// never panic, and what comes out must stay inside what was asked.
func FuzzAnswerHandling(f *testing.F) {
	seed := func(build func(m *dns.Msg)) {
		m := new(dns.Msg)
		m.SetQuestion("www.example.com.", dns.TypeA)
		m.Response = true
		build(m)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(func(m *dns.Msg) {
		m.Ns = append(m.Ns, &dns.NS{Hdr: dns.RR_Header{Name: "example.com.", Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns1.example.com."})
		m.Extra = append(m.Extra, &dns.A{Hdr: dns.RR_Header{Name: "ns1.example.com.", Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: []byte{127, 0, 0, 1}})
	})
	seed(func(m *dns.Msg) {
		m.Authoritative = true
		m.Answer = append(m.Answer,
			&dns.CNAME{Hdr: dns.RR_Header{Name: "www.example.com.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "a.example.com."},
			&dns.CNAME{Hdr: dns.RR_Header{Name: "a.example.com.", Rrtype: dns.TypeCNAME, Class: dns.ClassINET, Ttl: 60}, Target: "www.example.com."})
	})
	seed(func(m *dns.Msg) {
		m.Rcode = dns.RcodeServerFailure
		m.SetEdns0(1232, true)
		m.IsEdns0().Option = append(m.IsEdns0().Option, &dns.EDNS0_EDE{InfoCode: dns.ExtendedErrorCodeSignatureExpired, ExtraText: "\x1b[31mred"})
	})
	f.Fuzz(func(t *testing.T, wire []byte) {
		m := new(dns.Msg)
		if m.Unpack(wire) != nil {
			return
		}
		const zone, name = "com.", "www.example.com."
		if child, ns := referral(m, zone, name); child != "" {
			if !dns.IsSubDomain(zone, child) || !dns.IsSubDomain(child, name) || child == zone {
				t.Fatalf("referral to %q escapes %s..%s", child, zone, name)
			}
			if len(ns) > maxServersPerSet {
				t.Fatalf("%d NS names kept", len(ns))
			}
		}
		last, recs, _ := chase(m, name, dns.TypeA)
		for _, rr := range recs {
			if !strings.EqualFold(rr.Header().Name, last) || rr.Header().Rrtype != dns.TypeA {
				t.Fatalf("chase returned %v for %s", rr, last)
			}
		}
		server := netip.MustParseAddrPort("127.0.0.1:53")
		resp := &Response{Server: server, Name: name, Type: dns.TypeA, Msg: m}
		_ = answerText(resp, name, dns.TypeA)
		_ = boulderDNSProblem(dns.TypeA, "www.example.com", resp)
		ah := AddrHealth{HostAddr: HostAddr{Host: "ns1.example.com.", Addr: server.Addr()}, SOA: resp}
		judgeAddr(&ah, "example.com.", "ExAmPlE.cOm.")
		if ah.State == "" {
			t.Fatal("judgeAddr left the state empty")
		}
		ra := &resolverAnswer{Resolver: server, Resp: resp}
		hop := &Hop{Name: name, Answers: &AuthAnswers{Zone: &Zone{Name: "example.com."}, Name: name, Type: dns.TypeA,
			Hosts: []HostAddr{ah.HostAddr}, Responses: []*Response{resp}}}
		_ = splitFinding(ra, []*Hop{hop}, func(dns.RR) bool { return true })
		_ = recordSet(m.Answer)
		_ = txtValues(m.Answer)
	})
}
