package dnsserver

import (
	"context"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"
)

const updPort = 10155

var testKey = TSIGKey{Name: "upd-key.", Algorithm: dns.HmacSHA256, Secret: base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))}

// replicaSet is a primary and two secondaries of example.com, each on its
// own address, the primary accepting updates signed with testKey.
type replicaSet struct {
	primary, sec1, sec2 string // ADDR:PORT
	srv                 []*Server
}

// startReplicaSet binds prefix+first, +first+1, +first+2: every case has
// addresses of its own (a closed UDP socket may linger briefly).
func startReplicaSet(t *testing.T, prefix string, first int, lag1 time.Duration) *replicaSet {
	t.Helper()
	rrs, err := ParseZone("example.com.", testZone)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := NewKeys("example.com.")
	if err != nil {
		t.Fatal(err)
	}
	rs := &replicaSet{}
	var addrs []string
	for i := range 3 {
		addr := prefix + strconv.Itoa(first+i)
		z, err := NewZone(ZoneConfig{Origin: "example.com.", Records: rrs, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		s := New(Config{Name: "ns" + strconv.Itoa(i+1), Host: "ns1.example.com.", Addrs: []string{addr}, Port: updPort, Logger: zaptest.NewLogger(t)})
		s.AddZone(z)
		if err := s.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		rs.srv = append(rs.srv, s)
		addrs = append(addrs, net.JoinHostPort(addr, strconv.Itoa(updPort)))
	}
	rs.primary, rs.sec1, rs.sec2 = addrs[0], addrs[1], addrs[2]
	if _, err := rs.srv[0].EnsureTSIGKey(testKey); err != nil {
		t.Fatal(err)
	}
	err = rs.srv[0].AllowUpdate("example.com.",
		Secondary{Name: "ns2", Zone: rs.srv[1].Zone("example.com."), Lag: lag1},
		Secondary{Name: "ns3", Zone: rs.srv[2].Zone("example.com.")})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func txtRR(name, v string) *dns.TXT {
	return &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{v}}
}

// sendUpdate signs m with key (unless key.Name is "") and returns the reply
// as received, without verifying its TSIG (a NOTAUTH reply is unsigned).
func sendUpdate(t *testing.T, addr string, m *dns.Msg, key TSIGKey) *dns.Msg {
	t.Helper()
	var b []byte
	var err error
	if key.Name != "" {
		m.SetTsig(key.Name, key.Algorithm, 300, time.Now().Unix())
		b, _, err = dns.TsigGenerate(m, key.Secret, "", false)
	} else {
		b, err = m.Pack()
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	r := new(dns.Msg)
	if err := r.Unpack(buf[:n]); err != nil {
		t.Fatal(err)
	}
	return r
}

// txtAt returns the TXT strings at name on a server and the zone serial.
func txtAt(t *testing.T, addr, name string) ([]string, uint32, bool) {
	t.Helper()
	r, _, err := exchange(t, addr, "udp", name, dns.TypeTXT)
	if err != nil {
		t.Fatal(err)
	}
	var vals []string
	signed := false
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.TXT:
			vals = append(vals, strings.Join(v.Txt, ""))
		case *dns.RRSIG:
			signed = v.TypeCovered == dns.TypeTXT
		}
	}
	s, _, err := exchange(t, addr, "udp", "example.com.", dns.TypeSOA)
	if err != nil || len(s.Answer) == 0 {
		t.Fatalf("SOA: %v", err)
	}
	return vals, s.Answer[0].(*dns.SOA).Serial, signed
}

func TestUpdate(t *testing.T) {
	const chal = "_acme-challenge.www.example.com."
	wrongSecret := testKey
	wrongSecret.Secret = base64.StdEncoding.EncodeToString([]byte("not the secret at all, no......"))
	unknown := testKey
	unknown.Name = "other-key."
	wrongAlg := testKey
	wrongAlg.Algorithm = dns.HmacSHA512
	insert := func(m *dns.Msg) { m.RemoveRRset([]dns.RR{txtRR(chal, "v1")}); m.Insert([]dns.RR{txtRR(chal, "v1")}) }
	cases := []struct {
		desc      string
		key       TSIGKey
		build     func(m *dns.Msg)
		zone      string
		wantRcode int
		wantTSIG  uint16 // TSIG error in a NOTAUTH reply
		wantTXT   []string
	}{
		{desc: "lego's insert (delete RRset + add), signed", key: testKey, build: insert, wantTXT: []string{"v1"}},
		{desc: "unsigned: refused", build: insert, wantRcode: dns.RcodeRefused},
		{desc: "wrong secret: NOTAUTH BADSIG", key: wrongSecret, build: insert, wantRcode: dns.RcodeNotAuth, wantTSIG: dns.RcodeBadSig},
		{desc: "unknown key: NOTAUTH BADKEY", key: unknown, build: insert, wantRcode: dns.RcodeNotAuth, wantTSIG: dns.RcodeBadKey},
		{desc: "key with another algorithm: NOTAUTH BADKEY", key: wrongAlg, build: insert, wantRcode: dns.RcodeNotAuth, wantTSIG: dns.RcodeBadKey},
		{desc: "non-TXT add refused", key: testKey, build: func(m *dns.Msg) {
			rr, _ := dns.NewRR("evil.example.com. 60 IN A 127.0.0.9")
			m.Insert([]dns.RR{txtRR(chal, "v1"), rr})
		}, wantRcode: dns.RcodeRefused},
		{desc: "delete all RRsets of a name refused", key: testKey, build: func(m *dns.Msg) {
			m.RemoveName([]dns.RR{txtRR("www.example.com.", "")})
		}, wantRcode: dns.RcodeRefused},
		{desc: "TXT over the size bound refused", key: testKey, build: func(m *dns.Msg) {
			big := &dns.TXT{Hdr: dns.RR_Header{Name: chal, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}}
			for range 10 {
				big.Txt = append(big.Txt, strings.Repeat("x", 250))
			}
			m.Insert([]dns.RR{big})
		}, wantRcode: dns.RcodeRefused},
		{desc: "name outside the zone: NOTZONE", key: testKey, build: func(m *dns.Msg) {
			m.Insert([]dns.RR{txtRR("_acme-challenge.example.org.", "v1")})
		}, wantRcode: dns.RcodeNotZone},
		{desc: "zone not served: NOTAUTH", key: testKey, zone: "example.org.", build: func(m *dns.Msg) {
			m.Insert([]dns.RR{txtRR("_acme-challenge.example.org.", "v1")})
		}, wantRcode: dns.RcodeNotAuth},
		{desc: "prerequisite RRset does not exist, met", key: testKey, build: func(m *dns.Msg) {
			m.RRsetNotUsed([]dns.RR{txtRR(chal, "")})
			m.Insert([]dns.RR{txtRR(chal, "v2")})
		}, wantTXT: []string{"v2"}},
		{desc: "prerequisite RRset does not exist, violated: YXRRSET", key: testKey, build: func(m *dns.Msg) {
			m.RRsetNotUsed([]dns.RR{txtRR("txt.example.com.", "")})
			m.Insert([]dns.RR{txtRR(chal, "v2")})
		}, wantRcode: dns.RcodeYXRrset},
		{desc: "prerequisite name is in use, violated: NXDOMAIN", key: testKey, build: func(m *dns.Msg) {
			m.NameUsed([]dns.RR{txtRR("nothing.example.com.", "")})
			m.Insert([]dns.RR{txtRR(chal, "v2")})
		}, wantRcode: dns.RcodeNameError},
		{desc: "prerequisite name is in use, met", key: testKey, build: func(m *dns.Msg) {
			m.NameUsed([]dns.RR{txtRR("www.example.com.", "")})
			m.Insert([]dns.RR{txtRR(chal, "v3")})
		}, wantTXT: []string{"v3"}},
		{desc: "prerequisite value-dependent, violated: NXRRSET", key: testKey, build: func(m *dns.Msg) {
			m.Used([]dns.RR{txtRR("txt.example.com.", "bye")})
			m.Insert([]dns.RR{txtRR(chal, "v2")})
		}, wantRcode: dns.RcodeNXRrset},
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			// One replica set per case keeps cases independent.
			rs := startReplicaSet(t, "127.53.251.", 3*i+1, 0)
			_, serial0, _ := txtAt(t, rs.primary, chal)
			zone := c.zone
			if zone == "" {
				zone = "example.com."
			}
			m := new(dns.Msg)
			m.SetUpdate(zone)
			c.build(m)
			r := sendUpdate(t, rs.primary, m, c.key)
			if r.Rcode != c.wantRcode {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.wantRcode])
			}
			ts := r.IsTsig()
			switch {
			case c.wantTSIG != 0 && (ts == nil || ts.Error != c.wantTSIG || ts.MAC != ""):
				t.Errorf("TSIG in reply %v, want unsigned with error %s", ts, dns.RcodeToString[int(c.wantTSIG)])
			case c.wantRcode == dns.RcodeSuccess && c.key.Name != "" && (ts == nil || ts.MAC == ""):
				t.Errorf("reply to a signed update is not signed: %v", ts)
			}
			for _, addr := range []string{rs.primary, rs.sec1, rs.sec2} {
				got, serial, signed := txtAt(t, addr, chal)
				if strings.Join(got, ",") != strings.Join(c.wantTXT, ",") {
					t.Errorf("%s: TXT %q, want %q", addr, got, c.wantTXT)
				}
				wantSerial := serial0
				if len(c.wantTXT) > 0 {
					wantSerial++
					if !signed {
						t.Errorf("%s: TXT not signed", addr)
					}
				}
				if serial != wantSerial {
					t.Errorf("%s: serial %d, want %d", addr, serial, wantSerial)
				}
			}
		})
	}
}

// TestUpdateWithLego-style client: miekg/dns's client verifies the signed
// reply, then a removal (class NONE) deletes the value everywhere.
func TestUpdateSignedClientAndRemove(t *testing.T) {
	rs := startReplicaSet(t, "127.53.252.", 1, 0)
	const chal = "_acme-challenge.example.com."
	c := &dns.Client{Timeout: 2 * time.Second, TsigSecret: map[string]string{testKey.Name: testKey.Secret}}
	for _, step := range []struct {
		desc  string
		build func(m *dns.Msg)
		want  []string
	}{
		{desc: "add two values", build: func(m *dns.Msg) { m.Insert([]dns.RR{txtRR(chal, "a"), txtRR(chal, "b")}) }, want: []string{"a", "b"}},
		{desc: "remove one", build: func(m *dns.Msg) { m.Remove([]dns.RR{txtRR(chal, "a")}) }, want: []string{"b"}},
		{desc: "remove the other", build: func(m *dns.Msg) { m.Remove([]dns.RR{txtRR(chal, "b")}) }},
	} {
		m := new(dns.Msg)
		m.SetUpdate("example.com.")
		step.build(m)
		m.SetTsig(testKey.Name, testKey.Algorithm, 300, time.Now().Unix())
		r, _, err := c.Exchange(m, rs.primary)
		if err != nil || r.Rcode != dns.RcodeSuccess {
			t.Fatalf("%s: err=%v reply=%v", step.desc, err, r)
		}
		for _, addr := range []string{rs.primary, rs.sec1, rs.sec2} {
			if got, _, _ := txtAt(t, addr, chal); strings.Join(got, ",") != strings.Join(step.want, ",") {
				t.Errorf("%s: %s has %q, want %q", step.desc, addr, got, step.want)
			}
		}
	}
	// A secondary refuses updates.
	m := new(dns.Msg)
	m.SetUpdate("example.com.")
	m.Insert([]dns.RR{txtRR(chal, "x")})
	if r := sendUpdate(t, rs.sec1, m, testKey); r.Rcode != dns.RcodeNotAuth || r.IsTsig() == nil || r.IsTsig().Error != dns.RcodeBadKey {
		t.Errorf("secondary without the key: rcode %s, want NOTAUTH/BADKEY", dns.RcodeToString[r.Rcode])
	}
	if _, err := rs.srv[1].EnsureTSIGKey(testKey); err != nil {
		t.Fatal(err)
	}
	m = new(dns.Msg)
	m.SetUpdate("example.com.")
	m.Insert([]dns.RR{txtRR(chal, "x")})
	if r := sendUpdate(t, rs.sec1, m, testKey); r.Rcode != dns.RcodeRefused {
		t.Errorf("secondary with the key: rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
	}
}

func TestReplicationLag(t *testing.T) {
	const lag = 400 * time.Millisecond
	cases := []struct {
		desc     string
		lag      time.Duration // initial lag of ns2
		setLag   time.Duration // then SetReplicationLag(ns2), -1: no call
		wantLate bool          // ns2 lacks the value right after the UPDATE
	}{
		{desc: "no lag: every secondary has it when the UPDATE is answered", setLag: -1},
		{desc: "lag at start: ns2 late, ns3 at once", lag: lag, setLag: -1, wantLate: true},
		{desc: "lag set at run time", setLag: lag, wantLate: true},
		{desc: "lag removed at run time", lag: lag, setLag: 0},
	}
	for i, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			rs := startReplicaSet(t, "127.53.253.", 3*i+1, c.lag)
			if c.setLag >= 0 {
				if err := rs.srv[0].SetReplicationLag("example.com.", c.setLag, "ns2"); err != nil {
					t.Fatal(err)
				}
			}
			const chal = "_acme-challenge.example.com."
			m := new(dns.Msg)
			m.SetUpdate("example.com.")
			m.Insert([]dns.RR{txtRR(chal, "lagged")})
			t0 := time.Now()
			if r := sendUpdate(t, rs.primary, m, testKey); r.Rcode != dns.RcodeSuccess {
				t.Fatalf("rcode %s", dns.RcodeToString[r.Rcode])
			}
			_, pSerial, _ := txtAt(t, rs.primary, chal)
			if got, _, _ := txtAt(t, rs.sec2, chal); len(got) != 1 {
				t.Errorf("ns3 (no lag) has %q right away", got)
			}
			got, serial, _ := txtAt(t, rs.sec1, chal)
			if late := len(got) == 0; late != c.wantLate {
				t.Fatalf("ns2 right after the update: TXT %q serial %d (primary %d), want late=%v", got, serial, pSerial, c.wantLate)
			}
			if !c.wantLate {
				return
			}
			if serial >= pSerial {
				t.Errorf("lagging ns2 serial %d, want below the primary's %d", serial, pSerial)
			}
			deadline := time.Now().Add(3 * time.Second)
			for {
				got, serial, _ = txtAt(t, rs.sec1, chal)
				if len(got) == 1 || time.Now().After(deadline) {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if len(got) != 1 || serial != pSerial {
				t.Fatalf("ns2 never caught up: %q serial %d, primary %d", got, serial, pSerial)
			}
			if el := time.Since(t0); el < lag {
				t.Errorf("ns2 caught up after %s, before the lag %s", el, lag)
			}
		})
	}
}

func TestAllowUpdateRejects(t *testing.T) {
	s := New(Config{Name: "x"})
	rrs, err := ParseZone("example.com.", testZone)
	if err != nil {
		t.Fatal(err)
	}
	z, err := NewZone(ZoneConfig{Origin: "example.com.", Records: rrs})
	if err != nil {
		t.Fatal(err)
	}
	s.AddZone(z)
	other, err := NewZone(ZoneConfig{Origin: "example.com.", Records: rrs})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc string
		fn   func() error
	}{
		{desc: "zone not served", fn: func() error { return s.AllowUpdate("example.org.") }},
		{desc: "secondary without a zone", fn: func() error { return s.AllowUpdate("example.com.", Secondary{Name: "n"}) }},
		{desc: "lag out of range", fn: func() error {
			return s.AllowUpdate("example.com.", Secondary{Name: "n", Zone: other, Lag: time.Hour})
		}},
		{desc: "lag for a zone without updates", fn: func() error { return s.SetReplicationLag("example.com.", time.Second) }},
		{desc: "bad key algorithm", fn: func() error {
			_, err := s.EnsureTSIGKey(TSIGKey{Name: "k.", Algorithm: "hmac-md5.sig-alg.reg.int.", Secret: testKey.Secret})
			return err
		}},
		{desc: "secret not base64", fn: func() error {
			_, err := s.EnsureTSIGKey(TSIGKey{Name: "k.", Algorithm: dns.HmacSHA256, Secret: "!!"})
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if err := c.fn(); err == nil {
				t.Error("accepted")
			}
		})
	}
	// EnsureTSIGKey keeps the first secret under a name.
	k1, err := s.EnsureTSIGKey(testKey)
	if err != nil {
		t.Fatal(err)
	}
	second := testKey
	second.Secret = base64.StdEncoding.EncodeToString([]byte("another secret"))
	if k2, err := s.EnsureTSIGKey(second); err != nil || k2.Secret != k1.Secret {
		t.Errorf("second EnsureTSIGKey replaced the secret: %v %v", k2, err)
	}
}
