package testenv

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"
)

// updatePort keeps this test's small universe apart from TestUniverse's.
const updatePort = 10853

// startUpdateUniverse runs the infrastructure plus upd.com (signed) on
// three servers, the third a stale secondary.
func startUpdateUniverse(t *testing.T) *Universe {
	t.Helper()
	sp := infrastructure()
	sp.zones = append(sp.zones, zoneSpec{origin: "upd.com.", signed: true, text: "www A " + WebAddr + "\n"})
	for i := 1; i <= 3; i++ {
		sv := serverSpec{name: "upd-ns" + strconv.Itoa(i), host: "ns" + strconv.Itoa(i) + ".upd.com.",
			addrs: []string{"127.53.240." + strconv.Itoa(i)}, zones: []string{"upd.com."}}
		if i == 3 {
			sv.stale = map[string]string{"upd.com.": "@ SOA ns1.upd.com. hostmaster.upd.com. 999 3600 900 604800 300\nwww A " + WebAddr + "\n"}
		}
		sp.servers = append(sp.servers, sv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	u, err := start(ctx, Options{Port: updatePort, WorkDir: t.TempDir(), Logger: zaptest.NewLogger(t)}, sp)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	return u
}

func TestUpdates(t *testing.T) {
	u := startUpdateUniverse(t)
	name, alg, secret := u.TSIG()
	if name == "" || alg != dns.HmacSHA256 || secret == "" {
		t.Fatalf("TSIG() = %q %q %q", name, alg, secret)
	}
	if n2, _, s2 := u.TSIG(); n2 != name || s2 != secret {
		t.Fatalf("second TSIG() gave another key")
	}
	primary := u.UpdatePrimary("upd.com")
	if want := net.JoinHostPort("127.53.240.1", strconv.Itoa(updatePort)); primary != want {
		t.Fatalf("UpdatePrimary = %q, want %q", primary, want)
	}
	const chal = "_acme-challenge.www.upd.com."
	send := func(t *testing.T, value string, signed bool) int {
		t.Helper()
		m := new(dns.Msg)
		m.SetUpdate("upd.com.")
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: chal, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60}, Txt: []string{value}}
		m.RemoveRRset([]dns.RR{rr})
		m.Insert([]dns.RR{rr})
		c := &dns.Client{Timeout: 2 * time.Second}
		if signed {
			m.SetTsig(name, alg, 300, time.Now().Unix())
			c.TsigSecret = map[string]string{name: secret}
		}
		r, _, err := c.Exchange(m, primary)
		if err != nil {
			t.Fatalf("update: %v", err)
		}
		return r.Rcode
	}
	txt := func(t *testing.T, server string) string {
		t.Helper()
		r, err := u.ask(t, query{server: server, name: chal, qtype: dns.TypeTXT})
		if err != nil {
			t.Fatal(err)
		}
		for _, rr := range r.Answer {
			if v, ok := rr.(*dns.TXT); ok {
				return strings.Join(v.Txt, "")
			}
		}
		return ""
	}
	cases := []struct {
		desc    string
		value   string
		unsign  bool
		lag     time.Duration // lag of ns2 for this update
		want    int
		wantNow map[string]string // server → TXT right after the reply
	}{
		{desc: "unsigned update refused", value: "x", unsign: true, want: dns.RcodeRefused,
			wantNow: map[string]string{"upd-ns1": "", "upd-ns2": "", "upd-ns3": ""}},
		{desc: "signed update reaches the secondary at once, not the stale one", value: "v1", want: dns.RcodeSuccess,
			wantNow: map[string]string{"upd-ns1": "v1", "upd-ns2": "v1", "upd-ns3": ""}},
		{desc: "with a lag the secondary still has the old value", value: "v2", lag: 300 * time.Millisecond, want: dns.RcodeSuccess,
			wantNow: map[string]string{"upd-ns1": "v2", "upd-ns2": "v1", "upd-ns3": ""}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			if err := u.SetReplicationLag("upd.com", c.lag, "ns2.upd.com"); err != nil {
				t.Fatal(err)
			}
			if rc := send(t, c.value, !c.unsign); rc != c.want {
				t.Fatalf("rcode %s, want %s", dns.RcodeToString[rc], dns.RcodeToString[c.want])
			}
			for srv, want := range c.wantNow {
				if got := txt(t, srv); got != want {
					t.Errorf("%s right after the update: TXT %q, want %q", srv, got, want)
				}
			}
			if c.lag > 0 {
				deadline := time.Now().Add(3 * time.Second)
				for txt(t, "upd-ns2") != c.value && time.Now().Before(deadline) {
					time.Sleep(20 * time.Millisecond)
				}
				if got := txt(t, "upd-ns2"); got != c.value {
					t.Errorf("ns2 never caught up: %q", got)
				}
			}
		})
	}
	// The primary re-signed the new RRset with the zone's key (a resolver
	// may ask the stale ns3 and get a secure NXDOMAIN, so ask ns1 itself).
	r, err := u.ask(t, query{server: "upd-ns1", name: chal, qtype: dns.TypeTXT, do: true})
	if err != nil {
		t.Fatal(err)
	}
	var rrset []dns.RR
	var sig *dns.RRSIG
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.TXT:
			rrset = append(rrset, v)
		case *dns.RRSIG:
			sig = v
		}
	}
	zsk := u.keys["upd.com."].ZSK
	if sig == nil || len(rrset) == 0 || sig.KeyTag != zsk.KeyTag() {
		t.Fatalf("ns1: TXT %v RRSIG %v, want the TXT signed by the ZSK", rrset, sig)
	}
	if err := sig.Verify(zsk, rrset); err != nil || !sig.ValidityPeriod(time.Now()) {
		t.Errorf("RRSIG over the updated TXT does not verify: %v", err)
	}
	if err := u.SetReplicationLag("nonexistent.com", time.Second); err == nil {
		t.Error("SetReplicationLag accepted an unknown zone")
	}
}
