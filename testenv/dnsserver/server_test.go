package dnsserver

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"
)

const testZone = `$ORIGIN example.com.
$TTL 300
@    SOA ns1 hostmaster 7 3600 900 604800 60
@    NS  ns1
ns1  A   127.53.250.1
www  A   127.80.0.1
txt  TXT "hello"
`

// startServer runs one server with faults on its own loopback address.
func startServer(t *testing.T, addr string, faults []Fault, sigFaults []SigFault) string {
	t.Helper()
	rrs, err := ParseZone("example.com.", testZone)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeys("example.com.")
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewZone(ZoneConfig{Origin: "example.com.", Records: rrs, Keys: keys, SigFaults: sigFaults})
	if err != nil {
		t.Fatal(err)
	}
	const port = 10154
	s := New(Config{Name: "t", Host: "ns1.example.com.", Addrs: []string{addr}, Port: port, Faults: faults, Logger: zaptest.NewLogger(t)})
	s.AddZone(z)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return net.JoinHostPort(addr, strconv.Itoa(port))
}

func exchange(t *testing.T, addr, network, name string, qtype uint16) (*dns.Msg, time.Duration, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(1232, true)
	return (&dns.Client{Net: network, Timeout: 2 * time.Second}).Exchange(m, addr)
}

func TestServerFaults(t *testing.T) {
	cases := []struct {
		desc    string
		addr    string
		faults  []Fault
		network string
		name    string // "" → www.example.com.
		qtype   uint16
		check   func(t *testing.T, r *dns.Msg, rtt time.Duration, err error)
	}{
		{desc: "delay", addr: "127.53.250.1", faults: []Fault{{Kind: FaultDelay, Delay: 300 * time.Millisecond}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, rtt time.Duration, err error) {
				if err != nil || rtt < 300*time.Millisecond {
					t.Errorf("err=%v rtt=%v, want an answer after ≥300ms", err, rtt)
				}
			}},
		{desc: "lame without AA", addr: "127.53.250.2", faults: []Fault{{Kind: FaultLameNoAA}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Authoritative || len(r.Answer) == 0 {
					t.Errorf("err=%v AA=%v answers=%d, want data without AA", err, r != nil && r.Authoritative, len(r.Answer))
				}
			}},
		{desc: "always TC over UDP", addr: "127.53.250.3", faults: []Fault{{Kind: FaultAlwaysTC}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || !r.Truncated || len(r.Answer) != 0 {
					t.Errorf("err=%v, want an empty TC reply", err)
				}
			}},
		{desc: "always TC: TCP answers", addr: "127.53.250.4", faults: []Fault{{Kind: FaultAlwaysTC}}, network: "tcp", qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Truncated || len(r.Answer) == 0 {
					t.Errorf("err=%v, want a full answer over TCP", err)
				}
			}},
		{desc: "fault scoped to a qtype spares others", addr: "127.53.250.5", faults: []Fault{{Kind: FaultDrop, QType: dns.TypeTXT}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Rcode != dns.RcodeSuccess {
					t.Errorf("err=%v, want an answer for A", err)
				}
			}},
		{desc: "fault scoped to this client's source address applies", addr: "127.53.250.7", faults: []Fault{{Kind: FaultServFail, Sources: []string{"127.0.0.1"}}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Rcode != dns.RcodeServerFailure {
					t.Errorf("err=%v, want SERVFAIL", err)
				}
			}},
		{desc: "fault scoped to another source spares this client", addr: "127.53.250.8", faults: []Fault{{Kind: FaultServFail, Sources: []string{"127.10.0.2"}}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Rcode != dns.RcodeSuccess {
					t.Errorf("err=%v, want NOERROR", err)
				}
			}},
		{desc: "fault scoped to another zone spares this one", addr: "127.53.250.6", faults: []Fault{{Kind: FaultServFail, Zone: "other.com."}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Rcode != dns.RcodeSuccess {
					t.Errorf("err=%v, want NOERROR", err)
				}
			}},
		{desc: "no denial: NODATA without NSEC, SOA still signed", addr: "127.53.250.16", faults: []Fault{{Kind: FaultNoDenial}}, qtype: dns.TypeAAAA,
			check: wantDenial(dns.RcodeSuccess, false)},
		{desc: "no denial: NXDOMAIN without NSEC", addr: "127.53.250.17", faults: []Fault{{Kind: FaultNoDenial}}, name: "missing.example.com.", qtype: dns.TypeA,
			check: wantDenial(dns.RcodeNameError, false)},
		{desc: "no denial: a positive answer keeps its signature", addr: "127.53.250.18", faults: []Fault{{Kind: FaultNoDenial}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || len(r.Answer) != 2 {
					t.Errorf("err=%v answer %v, want the A and its RRSIG", err, r)
				}
			}},
		{desc: "NXDOMAIN for a name that exists", addr: "127.53.250.20", faults: []Fault{{Kind: FaultNXDomain, Name: "www.example.com."}}, qtype: dns.TypeA,
			check: wantRcode(dns.RcodeNameError, "www.example.com.")},
		{desc: "a fault scoped to another name spares this one", addr: "127.53.250.21", faults: []Fault{{Kind: FaultNXDomain, Name: "example.com."}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) == 0 {
					t.Errorf("err=%v reply %v, want the A", err, r)
				}
			}},
		{desc: "NODATA for a type that exists", addr: "127.53.250.22", faults: []Fault{{Kind: FaultNoData}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer)+len(r.Ns) != 0 {
					t.Errorf("err=%v reply %v, want an empty authoritative NOERROR", err, r)
				}
			}},
		{desc: "FORMERR to a well-formed query", addr: "127.53.250.23", faults: []Fault{{Kind: FaultFormErr}}, qtype: dns.TypeA,
			check: wantRcode(dns.RcodeFormatError, "www.example.com.")},
		{desc: "empty reply: a bare header", addr: "127.53.250.24", faults: []Fault{{Kind: FaultEmpty}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || len(r.Question)+len(r.Answer)+len(r.Ns)+len(r.Extra) != 0 {
					t.Errorf("err=%v reply %v, want a header alone", err, r)
				}
			}},
		{desc: "a reply to another question", addr: "127.53.250.25", faults: []Fault{{Kind: FaultWrongQuestion}}, qtype: dns.TypeA,
			check: wantRcode(dns.RcodeSuccess, "wrong-question.invalid.")},
		{desc: "truncated over UDP", addr: "127.53.250.26", faults: []Fault{{Kind: FaultTCNoTCP}}, qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err != nil || !r.Truncated || len(r.Answer) != 0 {
					t.Errorf("err=%v reply %v, want an empty TC reply", err, r)
				}
			}},
		{desc: "truncated, and TCP closes unanswered", addr: "127.53.250.27", faults: []Fault{{Kind: FaultTCNoTCP}}, network: "tcp", qtype: dns.TypeA,
			check: func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
				if err == nil {
					t.Errorf("reply %v over TCP, want none", r)
				}
			}},
		{desc: "without the fault NODATA carries its NSEC", addr: "127.53.250.19", qtype: dns.TypeAAAA,
			check: wantDenial(dns.RcodeSuccess, true)},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, c.addr, c.faults, nil)
			name := c.name
			if name == "" {
				name = "www.example.com."
			}
			r, rtt, err := exchange(t, addr, c.network, name, c.qtype)
			c.check(t, r, rtt, err)
		})
	}
}

// wantRcode checks a reply's rcode and question name.
func wantRcode(rcode int, qname string) func(*testing.T, *dns.Msg, time.Duration, error) {
	return func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
		t.Helper()
		if err != nil || r.Rcode != rcode || len(r.Question) != 1 || r.Question[0].Name != qname || len(r.Answer) != 0 {
			t.Errorf("err=%v reply %v, want %s for %s and no answer", err, r, dns.RcodeToString[rcode], qname)
		}
	}
}

// wantDenial checks a negative answer's rcode, that its SOA is signed, and
// whether it carries NSEC records (with their signatures).
func wantDenial(rcode int, nsec bool) func(*testing.T, *dns.Msg, time.Duration, error) {
	return func(t *testing.T, r *dns.Msg, _ time.Duration, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		types := map[uint16]int{}
		for _, rr := range r.Ns {
			types[rr.Header().Rrtype]++
		}
		if r.Rcode != rcode || types[dns.TypeSOA] != 1 {
			t.Errorf("rcode %s, authority %v: want %s with the SOA", dns.RcodeToString[r.Rcode], r.Ns, dns.RcodeToString[rcode])
		}
		if got := types[dns.TypeNSEC] > 0; got != nsec {
			t.Errorf("NSEC present = %v, want %v: %v", got, nsec, r.Ns)
		}
		if nsec && types[dns.TypeRRSIG] != 1+types[dns.TypeNSEC] || !nsec && types[dns.TypeRRSIG] != 1 {
			t.Errorf("%d RRSIGs with %d NSEC: want the SOA's and one per NSEC", types[dns.TypeRRSIG], types[dns.TypeNSEC])
		}
	}
}

func TestSigFaults(t *testing.T) {
	cases := []struct {
		desc      string
		addr      string
		faults    []SigFault
		name      string
		qtype     uint16
		wantSig   bool
		wantValid bool
	}{
		{desc: "healthy", addr: "127.53.250.10", name: "www.example.com.", qtype: dns.TypeA, wantSig: true, wantValid: true},
		{desc: "not yet valid, one RRset", addr: "127.53.250.11", faults: []SigFault{{Kind: SigNotYetValid, Name: "www.example.com.", Type: dns.TypeA}},
			name: "www.example.com.", qtype: dns.TypeA, wantSig: true},
		{desc: "fault on one RRset spares another", addr: "127.53.250.12", faults: []SigFault{{Kind: SigExpired, Name: "www.example.com.", Type: dns.TypeA}},
			name: "txt.example.com.", qtype: dns.TypeTXT, wantSig: true, wantValid: true},
		{desc: "missing, whole zone", addr: "127.53.250.13", faults: []SigFault{{Kind: SigMissing}},
			name: "txt.example.com.", qtype: dns.TypeTXT},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			addr := startServer(t, c.addr, nil, c.faults)
			r, _, err := exchange(t, addr, "udp", c.name, c.qtype)
			if err != nil {
				t.Fatal(err)
			}
			var sig *dns.RRSIG
			for _, rr := range r.Answer {
				if s, ok := rr.(*dns.RRSIG); ok {
					sig = s
				}
			}
			if (sig != nil) != c.wantSig {
				t.Fatalf("RRSIG present=%v, want %v", sig != nil, c.wantSig)
			}
			if sig != nil && sig.ValidityPeriod(time.Now()) != c.wantValid {
				t.Errorf("validity period ok=%v, want %v", !c.wantValid, c.wantValid)
			}
		})
	}
}

func TestNewZoneRejects(t *testing.T) {
	cases := []struct {
		desc string
		text string
	}{
		{desc: "no SOA", text: "www 300 A 127.0.0.2\n"},
		{desc: "record outside the zone", text: "@ 300 SOA ns1 h 1 1 1 1 1\nwww.example.org. 300 A 127.0.0.2\n"},
		{desc: "syntax error", text: "@ 300 SOA ns1\n"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			rrs, err := ParseZone("example.com.", c.text)
			if err == nil {
				_, err = NewZone(ZoneConfig{Origin: "example.com.", Records: rrs})
			}
			if err == nil {
				t.Error("accepted")
			}
		})
	}
}
