package testenv

import (
	"cmp"
	"context"
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap/zaptest"
)

// testPort keeps this package's universe off the default ports, so it can
// run while another package's tests hold a universe on 53 or 10053.
func testPort() int {
	if p, err := strconv.Atoi(os.Getenv("ACMEDIAG_TESTENV_PORT")); err == nil && p > 0 {
		return p
	}
	return 10153
}

// TestUniverse starts the catalogue's universe once and checks it from the
// outside: authoritative behaviour, faults, DNSSEC and the resolvers.
func TestUniverse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	u, err := Start(ctx, Options{Port: testPort(), WorkDir: t.TempDir(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := u.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	t.Run("authoritative", func(t *testing.T) { testAuthoritative(t, u) })
	t.Run("faults", func(t *testing.T) { testFaults(t, u) })
	t.Run("wrong-id", func(t *testing.T) { testWrongID(t, u) })
	t.Run("dnssec", func(t *testing.T) { testDNSSEC(t, u) })
	t.Run("resolvers", func(t *testing.T) { testResolvers(t, u) })
	t.Run("set-txt", func(t *testing.T) { testSetTXT(t, u) })
	t.Run("diagnose-args", func(t *testing.T) { testDiagnoseArgs(t, u) })
	t.Run("web", func(t *testing.T) { testWeb(t, u) })
	t.Run("tls-alpn", func(t *testing.T) { testTLSALPN(t, u) })
	t.Run("tls", func(t *testing.T) { testTLS(t, u) })
	t.Run("drops", func(t *testing.T) { testDrops(t, u) })
	t.Run("vantages", func(t *testing.T) { testVantages(t, u) })
	t.Run("web-diagnose-args", func(t *testing.T) { testWebDiagnoseArgs(t, u) })
}

type query struct {
	server string // server id
	name   string
	qtype  uint16
	do     bool
	noEDNS bool
	net    string // "udp" (default) or "tcp"
}

func (u *Universe) ask(t *testing.T, q query) (*dns.Msg, error) {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(q.name, q.qtype)
	m.RecursionDesired = false
	if !q.noEDNS {
		m.SetEdns0(1232, q.do)
	}
	c := &dns.Client{Net: q.net, Timeout: 2 * time.Second}
	addr := u.ServerAddr(q.server)
	if addr == "" {
		t.Fatalf("no server %q", q.server)
	}
	r, _, err := c.Exchange(m, addr)
	return r, err
}

func hasType(rrs []dns.RR, t uint16) bool {
	return slices.ContainsFunc(rrs, func(rr dns.RR) bool { return rr.Header().Rrtype == t })
}

func soaTTL(rrs []dns.RR) uint32 {
	for _, rr := range rrs {
		if rr.Header().Rrtype == dns.TypeSOA {
			return rr.Header().Ttl
		}
	}
	return 0
}

func testAuthoritative(t *testing.T, u *Universe) {
	cases := []struct {
		desc      string
		q         query
		rcode     int
		aa        bool
		answer    []uint16 // types that must be in the answer
		authority []uint16 // types that must be in the authority section
		glue      bool     // additional section has addresses
		negTTL    uint32   // SOA TTL in authority, when non-zero
		check     func(t *testing.T, r *dns.Msg)
	}{
		{desc: "root refers com with glue and signed DS", q: query{server: "root-a", name: "www.healthy-signed.com.", qtype: dns.TypeA, do: true},
			authority: []uint16{dns.TypeNS, dns.TypeDS, dns.TypeRRSIG}, glue: true},
		{desc: "TLD refers a signed child with DS", q: query{server: "gtld-a", name: "www.healthy-signed.com.", qtype: dns.TypeA, do: true},
			authority: []uint16{dns.TypeNS, dns.TypeDS}, glue: true},
		{desc: "TLD proves an unsigned child has no DS", q: query{server: "gtld-b", name: "www.healthy-unsigned.com.", qtype: dns.TypeA, do: true},
			authority: []uint16{dns.TypeNS, dns.TypeNSEC},
			check: func(t *testing.T, r *dns.Msg) {
				for _, rr := range r.Ns {
					if n, ok := rr.(*dns.NSEC); ok && !slices.Equal(n.TypeBitMap, []uint16{dns.TypeNS, dns.TypeRRSIG, dns.TypeNSEC}) {
						t.Errorf("NSEC at delegation lists %v, want NS RRSIG NSEC", n.TypeBitMap)
					}
				}
			}},
		{desc: "referral without DO carries no DNSSEC records", q: query{server: "gtld-a", name: "www.healthy-signed.com.", qtype: dns.TypeA},
			authority: []uint16{dns.TypeNS}, glue: true,
			check: func(t *testing.T, r *dns.Msg) {
				if hasType(r.Ns, dns.TypeDS) || hasType(r.Ns, dns.TypeRRSIG) {
					t.Errorf("DNSSEC records without DO: %v", r.Ns)
				}
			}},
		{desc: "DS answered authoritatively by the parent", q: query{server: "gtld-a", name: "healthy-signed.com.", qtype: dns.TypeDS, do: true},
			aa: true, answer: []uint16{dns.TypeDS, dns.TypeRRSIG}},
		{desc: "sub-zone referral with in-zone glue", q: query{server: "delegated.com-ns1", name: "app.sub.delegated.com.", qtype: dns.TypeA},
			authority: []uint16{dns.TypeNS}, glue: true},
		{desc: "authoritative data", q: query{server: "healthy-signed.com-ns1", name: "www.healthy-signed.com.", qtype: dns.TypeA, do: true},
			aa: true, answer: []uint16{dns.TypeA, dns.TypeRRSIG}},
		{desc: "NODATA with SOA and NSEC", q: query{server: "healthy-signed.com-ns2", name: "www.healthy-signed.com.", qtype: dns.TypeAAAA, do: true},
			aa: true, authority: []uint16{dns.TypeSOA, dns.TypeNSEC}, negTTL: 300},
		{desc: "NXDOMAIN with SOA and two NSEC", q: query{server: "nxdomain.com-ns1", name: "missing.nxdomain.com.", qtype: dns.TypeA, do: true},
			rcode: dns.RcodeNameError, aa: true, authority: []uint16{dns.TypeSOA, dns.TypeNSEC}, negTTL: 300},
		{desc: "negative TTL is min(SOA TTL, MINIMUM)", q: query{server: "negttl.com-ns1", name: "nope.negttl.com.", qtype: dns.TypeA},
			rcode: dns.RcodeNameError, aa: true, authority: []uint16{dns.TypeSOA}, negTTL: 86400},
		{desc: "REFUSED outside every served zone", q: query{server: "healthy-unsigned.com-ns1", name: "www.example.org.", qtype: dns.TypeA},
			rcode: dns.RcodeRefused},
		{desc: "CNAME to another zone is not chased", q: query{server: "cname-src.com-ns1", name: "www.cname-src.com.", qtype: dns.TypeA},
			aa: true, answer: []uint16{dns.TypeCNAME},
			check: func(t *testing.T, r *dns.Msg) {
				if hasType(r.Answer, dns.TypeA) {
					t.Errorf("chased out of zone: %v", r.Answer)
				}
			}},
		{desc: "CNAME loop answered once, no hang", q: query{server: "cnameloop.com-ns1", name: "a.cnameloop.com.", qtype: dns.TypeA},
			aa: true, answer: []uint16{dns.TypeCNAME},
			check: func(t *testing.T, r *dns.Msg) {
				if len(r.Answer) != 2 {
					t.Errorf("answer has %d records, want the two CNAMEs", len(r.Answer))
				}
			}},
		{desc: "0x20 case echoed", q: query{server: "healthy-unsigned.com-ns1", name: "wWw.HeALThy-UnSigned.cOm.", qtype: dns.TypeA},
			aa: true, answer: []uint16{dns.TypeA},
			check: func(t *testing.T, r *dns.Msg) {
				if r.Question[0].Name != "wWw.HeALThy-UnSigned.cOm." || r.Answer[0].Header().Name != "wWw.HeALThy-UnSigned.cOm." {
					t.Errorf("case not preserved: %q / %q", r.Question[0].Name, r.Answer[0].Header().Name)
				}
			}},
		{desc: "large answer truncated over UDP", q: query{server: "bigrrset.com-ns1", name: "_acme-challenge.www.bigrrset.com.", qtype: dns.TypeTXT},
			aa: true, check: func(t *testing.T, r *dns.Msg) {
				if !r.Truncated {
					t.Errorf("TC not set on a %d-record answer", len(r.Answer))
				}
			}},
		{desc: "same answer complete over TCP", q: query{server: "bigrrset.com-ns1", name: "_acme-challenge.www.bigrrset.com.", qtype: dns.TypeTXT, net: "tcp"},
			aa: true, answer: []uint16{dns.TypeTXT}, check: func(t *testing.T, r *dns.Msg) {
				if r.Truncated || len(r.Answer) != 300 {
					t.Errorf("TC=%v with %d records, want 300", r.Truncated, len(r.Answer))
				}
			}},
		{desc: "no EDNS means a 512-byte limit", q: query{server: "manytxt.com-ns1", name: "_acme-challenge.www.manytxt.com.", qtype: dns.TypeTXT, noEDNS: true},
			aa: true, check: func(t *testing.T, r *dns.Msg) {
				if !r.Truncated || r.IsEdns0() != nil {
					t.Errorf("TC=%v EDNS=%v, want TC and no OPT", r.Truncated, r.IsEdns0() != nil)
				}
			}},
		{desc: "stale secondary serves the older serial", q: query{server: "stale.com-ns2", name: "stale.com.", qtype: dns.TypeSOA},
			aa: true, answer: []uint16{dns.TypeSOA}, check: func(t *testing.T, r *dns.Msg) {
				if s := r.Answer[0].(*dns.SOA).Serial; s != 1000 {
					t.Errorf("serial %d, want 1000", s)
				}
			}},
		{desc: "stale secondary lacks the new TXT", q: query{server: "txtprop.com-ns2", name: "_acme-challenge.www.txtprop.com.", qtype: dns.TypeTXT},
			rcode: dns.RcodeNameError, aa: true},
		{desc: "occluded TXT below a cut is not served by the parent", q: query{server: "wrongzone.com-ns1", name: "_acme-challenge.app.wrongzone.com.", qtype: dns.TypeTXT},
			authority: []uint16{dns.TypeNS}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			r, err := u.ask(t, c.q)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			if r.Rcode != c.rcode || r.Authoritative != c.aa {
				t.Errorf("rcode %s AA %v, want %s AA %v", dns.RcodeToString[r.Rcode], r.Authoritative, dns.RcodeToString[c.rcode], c.aa)
			}
			if r.RecursionAvailable {
				t.Errorf("RA set by an authoritative server")
			}
			for _, typ := range c.answer {
				if !hasType(r.Answer, typ) {
					t.Errorf("answer lacks %s: %v", dns.TypeToString[typ], r.Answer)
				}
			}
			for _, typ := range c.authority {
				if !hasType(r.Ns, typ) {
					t.Errorf("authority lacks %s: %v", dns.TypeToString[typ], r.Ns)
				}
			}
			if c.glue && !hasType(r.Extra, dns.TypeA) && !hasType(r.Extra, dns.TypeAAAA) {
				t.Errorf("no glue: %v", r.Extra)
			}
			if c.negTTL != 0 && soaTTL(r.Ns) != c.negTTL {
				t.Errorf("SOA TTL %d, want %d", soaTTL(r.Ns), c.negTTL)
			}
			if c.check != nil {
				c.check(t, r)
			}
		})
	}

	t.Run("AXFR of a parent that allows it shows the occluded TXT", func(t *testing.T) {
		tr := &dns.Transfer{DialTimeout: time.Second, ReadTimeout: 2 * time.Second}
		m := new(dns.Msg)
		m.SetAxfr("wrongzone.com.")
		ch, err := tr.In(m, u.ServerAddr("wrongzone.com-ns1"))
		if err != nil {
			t.Fatal(err)
		}
		var found bool
		var soas int
		for env := range ch {
			if env.Error != nil {
				t.Fatal(env.Error)
			}
			for _, rr := range env.RR {
				if rr.Header().Rrtype == dns.TypeSOA {
					soas++
				}
				if tx, ok := rr.(*dns.TXT); ok && tx.Hdr.Name == "_acme-challenge.app.wrongzone.com." && tx.Txt[0] == Token("dns01-wrong-zone") {
					found = true
				}
			}
		}
		if !found || soas != 2 {
			t.Errorf("occluded TXT found=%v, SOAs=%d (want true, 2)", found, soas)
		}
	})
	t.Run("AXFR refused where not allowed", func(t *testing.T) {
		m := new(dns.Msg)
		m.SetAxfr("healthy-unsigned.com.")
		c := &dns.Client{Net: "tcp", Timeout: 2 * time.Second}
		r, _, err := c.Exchange(m, u.ServerAddr("healthy-unsigned.com-ns1"))
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != dns.RcodeRefused {
			t.Errorf("rcode %s, want REFUSED", dns.RcodeToString[r.Rcode])
		}
	})
}

func testFaults(t *testing.T, u *Universe) {
	cases := []struct {
		desc  string
		q     query
		check func(t *testing.T, r *dns.Msg, err error)
	}{
		{desc: "servfail", q: query{server: "servfail.com-ns2", name: "www.servfail.com.", qtype: dns.TypeA},
			check: wantRcode(dns.RcodeServerFailure)},
		{desc: "NOTIMP for CAA only: CAA", q: query{server: "caa-notimp.com-ns1", name: "caa-notimp.com.", qtype: dns.TypeCAA},
			check: wantRcode(dns.RcodeNotImplemented)},
		{desc: "NOTIMP for CAA only: A still works", q: query{server: "caa-notimp.com-ns1", name: "www.caa-notimp.com.", qtype: dns.TypeA},
			check: wantRcode(dns.RcodeSuccess)},
		{desc: "lame server answers REFUSED", q: query{server: "lame-refused.com-ns2", name: "www.lame-refused.com.", qtype: dns.TypeA},
			check: wantRcode(dns.RcodeRefused)},
		{desc: "EDNS-intolerant: FORMERR with OPT", q: query{server: "edns.com-ns1", name: "www.edns.com.", qtype: dns.TypeA},
			check: wantRcode(dns.RcodeFormatError)},
		{desc: "EDNS-intolerant: fine without OPT", q: query{server: "edns.com-ns1", name: "www.edns.com.", qtype: dns.TypeA, noEDNS: true},
			check: wantRcode(dns.RcodeSuccess)},
		{desc: "wrong 0x20", q: query{server: "caps.com-ns1", name: "WWW.Caps.COM.", qtype: dns.TypeA},
			check: func(t *testing.T, r *dns.Msg, err error) {
				if err != nil {
					t.Fatal(err)
				}
				if r.Question[0].Name != "www.caps.com." {
					t.Errorf("question %q, want lower-cased", r.Question[0].Name)
				}
			}},
		{desc: "drop", q: query{server: "timeout.com-ns1", name: "www.timeout.com.", qtype: dns.TypeA},
			check: func(t *testing.T, _ *dns.Msg, err error) {
				var ne net.Error
				if !errors.As(err, &ne) || !ne.Timeout() {
					t.Errorf("err = %v, want a timeout", err)
				}
			}},
		{desc: "garbage", q: query{server: "garbage.com-ns1", name: "www.garbage.com.", qtype: dns.TypeA},
			check: func(t *testing.T, r *dns.Msg, err error) {
				// The garbage never unpacks.
				if err == nil {
					t.Errorf("garbage parsed as a valid reply: %v", r)
				}
			}},
		{desc: "no TCP: connection refused", q: query{server: "tcpfail.com-ns1", name: "www.tcpfail.com.", qtype: dns.TypeA, net: "tcp"},
			check: func(t *testing.T, _ *dns.Msg, err error) {
				if err == nil || !strings.Contains(err.Error(), "refused") {
					t.Errorf("err = %v, want connection refused", err)
				}
			}},
		{desc: "no denial: NODATA without NSEC", q: query{server: "nodenial.com-ns1", name: "www.nodenial.com.", qtype: dns.TypeCAA, do: true},
			check: func(t *testing.T, r *dns.Msg, err error) {
				if err != nil || r.Rcode != dns.RcodeSuccess || hasType(r.Ns, dns.TypeNSEC) || !hasType(r.Ns, dns.TypeSOA) {
					t.Errorf("err=%v answer %v, want NODATA with the SOA and no NSEC", err, r)
				}
			}},
		{desc: "no TCP: UDP answer is truncated", q: query{server: "tcpfail.com-ns1", name: "www.tcpfail.com.", qtype: dns.TypeA},
			check: func(t *testing.T, r *dns.Msg, err error) {
				if err != nil || !r.Truncated {
					t.Errorf("err=%v TC=%v, want a truncated answer", err, r != nil && r.Truncated)
				}
			}},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			r, err := u.ask(t, c.q)
			c.check(t, r, err)
		})
	}
}

// TestWrongID reads the raw reply: miekg's client (rightly) ignores a reply
// whose ID does not match and waits, so Exchange would only time out.
func testWrongID(t *testing.T, u *Universe) {
	co, err := dns.DialTimeout("udp", u.ServerAddr("wrongid.com-ns1"), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	m := new(dns.Msg)
	m.SetQuestion("www.wrongid.com.", dns.TypeA)
	if err := co.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := co.WriteMsg(m); err != nil {
		t.Fatal(err)
	}
	r, err := co.ReadMsg()
	if err != nil {
		t.Fatal(err)
	}
	if r.Id == m.Id {
		t.Errorf("reply ID %d matches the query's", r.Id)
	}
}

func wantRcode(rcode int) func(t *testing.T, r *dns.Msg, err error) {
	return func(t *testing.T, r *dns.Msg, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if r.Rcode != rcode {
			t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[rcode])
		}
	}
}

// rrsets splits a section into RRsets and their RRSIGs.
func rrsets(rrs []dns.RR) (sets map[uint16][]dns.RR, sigs map[uint16]*dns.RRSIG) {
	sets, sigs = map[uint16][]dns.RR{}, map[uint16]*dns.RRSIG{}
	for _, rr := range rrs {
		if s, ok := rr.(*dns.RRSIG); ok {
			sigs[s.TypeCovered] = s
			continue
		}
		sets[rr.Header().Rrtype] = append(sets[rr.Header().Rrtype], rr)
	}
	return sets, sigs
}

// verifyChain follows the chain of trust from the trust anchor file down to
// name's A RRset, with miekg's RRSIG.Verify, asking each zone's servers.
func verifyChain(t *testing.T, u *Universe, zones []struct{ zone, server string }, name string) error {
	t.Helper()
	anchor, err := os.ReadFile(u.TrustAnchorFile())
	if err != nil {
		return err
	}
	rr, err := dns.NewRR(string(anchor))
	if err != nil {
		return err
	}
	wantDS := rr.(*dns.DS)
	now := time.Now()
	var zsk []*dns.DNSKEY
	for i, z := range zones {
		r, err := u.ask(t, query{server: z.server, name: z.zone, qtype: dns.TypeDNSKEY, do: true})
		if err != nil {
			return err
		}
		sets, sigs := rrsets(r.Answer)
		var ksk *dns.DNSKEY
		for _, k := range sets[dns.TypeDNSKEY] {
			k := k.(*dns.DNSKEY)
			if ds := k.ToDS(wantDS.DigestType); ds != nil && k.Flags == 257 && strings.EqualFold(ds.Digest, wantDS.Digest) {
				ksk = k
			}
			if k.Flags == 256 {
				zsk = []*dns.DNSKEY{k}
			}
		}
		if ksk == nil {
			return errors.New(z.zone + ": no KSK matches the DS")
		}
		sig := sigs[dns.TypeDNSKEY]
		if sig == nil || sig.Verify(ksk, sets[dns.TypeDNSKEY]) != nil || !sig.ValidityPeriod(now) {
			return errors.New(z.zone + ": DNSKEY RRset signature does not verify")
		}
		if i+1 == len(zones) {
			break
		}
		// The child's DS, from this zone's server, signed by this ZSK.
		next := zones[i+1].zone
		r, err = u.ask(t, query{server: z.server, name: next, qtype: dns.TypeDS, do: true})
		if err != nil {
			return err
		}
		sets, sigs = rrsets(r.Answer)
		if len(sets[dns.TypeDS]) == 0 || sigs[dns.TypeDS] == nil {
			return errors.New(next + ": no signed DS at the parent")
		}
		if err := sigs[dns.TypeDS].Verify(zsk[0], sets[dns.TypeDS]); err != nil {
			return errors.New(next + ": DS signature: " + err.Error())
		}
		wantDS = sets[dns.TypeDS][0].(*dns.DS)
	}
	last := zones[len(zones)-1]
	r, err := u.ask(t, query{server: last.server, name: name, qtype: dns.TypeA, do: true})
	if err != nil {
		return err
	}
	sets, sigs := rrsets(r.Answer)
	sig := sigs[dns.TypeA]
	if sig == nil {
		return errors.New(name + ": A is not signed")
	}
	if err := sig.Verify(zsk[0], sets[dns.TypeA]); err != nil {
		return errors.New(name + ": A signature: " + err.Error())
	}
	if !sig.ValidityPeriod(now) {
		return errors.New(name + ": A signature expired or not yet valid")
	}
	return nil
}

func testDNSSEC(t *testing.T, u *Universe) {
	type zs = struct{ zone, server string }
	root, com := zs{".", "root-a"}, zs{"com.", "gtld-a"}
	cases := []struct {
		desc    string
		zones   []zs
		name    string
		wantErr string
	}{
		{desc: "signed zone chains to the anchor", zones: []zs{root, com, {"healthy-signed.com.", "healthy-signed.com-ns1"}},
			name: "www.healthy-signed.com."},
		{desc: "three signed cuts", zones: []zs{root, com, {"delegated.com.", "delegated.com-ns1"}, {"sub.delegated.com.", "sub.delegated.com-ns2"}},
			name: "app.sub.delegated.com."},
		{desc: "expired RRSIG", zones: []zs{root, com, {"dnssec-expired.com.", "dnssec-expired.com-ns1"}},
			name: "www.dnssec-expired.com.", wantErr: "expired"},
		{desc: "DS matching no key", zones: []zs{root, com, {"ds-mismatch.com.", "ds-mismatch.com-ns1"}},
			name: "www.ds-mismatch.com.", wantErr: "no KSK matches"},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			err := verifyChain(t, u, c.zones, c.name)
			switch {
			case c.wantErr == "" && err != nil:
				t.Errorf("chain: %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("chain error %v, want one containing %q", err, c.wantErr)
			}
		})
	}
	t.Run("NXDOMAIN proof covers the name and the wildcard", func(t *testing.T) {
		r, err := u.ask(t, query{server: "nxdomain.com-ns1", name: "missing.nxdomain.com.", qtype: dns.TypeA, do: true})
		if err != nil {
			t.Fatal(err)
		}
		covers := func(n *dns.NSEC, name string) bool {
			owner, next := n.Hdr.Name, n.NextDomain
			if canonicalLess(owner, next) {
				return canonicalLess(owner, name) && canonicalLess(name, next)
			}
			return canonicalLess(owner, name) || canonicalLess(name, next) // last NSEC wraps
		}
		var name, wild bool
		for _, rr := range r.Ns {
			if n, ok := rr.(*dns.NSEC); ok {
				name = name || covers(n, "missing.nxdomain.com.")
				wild = wild || covers(n, "*.nxdomain.com.")
			}
		}
		if !name || !wild {
			t.Errorf("covers name=%v wildcard=%v in %v", name, wild, r.Ns)
		}
	})
}

func testResolvers(t *testing.T, u *Universe) {
	cases := []struct {
		desc     string
		resolver string
		name     string
		rcode    int
		ad       bool
		ede      uint16 // 0: none expected
		addr     string // an A expected in the answer
		qtype    uint16 // 0: A
		count    int    // records of qtype expected in the answer, when non-zero
	}{
		{desc: "signed name validates (AD)", resolver: u.Resolver(), name: "www.healthy-signed.com.", ad: true, addr: WebAddr},
		{desc: "unsigned name resolves without AD", resolver: u.Resolver(), name: "www.healthy-unsigned.com.", addr: WebAddr},
		{desc: "signed NXDOMAIN validates", resolver: u.Resolver(), name: "missing.nxdomain.com.", rcode: dns.RcodeNameError, ad: true},
		{desc: "expired signature: SERVFAIL, EDE 7", resolver: u.Resolver(), name: "www.dnssec-expired.com.", rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeSignatureExpired},
		{desc: "DS mismatch: SERVFAIL, EDE 9", resolver: u.Resolver(), name: "www.ds-mismatch.com.", rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeDNSKEYMissing},
		{desc: "IPv6-only name server", resolver: u.Resolver(), name: "www.v6only.net.", addr: WebAddr},
		{desc: "split name, public view", resolver: u.Resolver(), name: "www.split.com.", addr: WebAddr},
		{desc: "split name, cluster view", resolver: u.ClusterResolver(), name: "www.split.com.", addr: SplitAddr},
		{desc: "referral loop: SERVFAIL", resolver: u.Resolver(), name: "www.refloop.com.", rcode: dns.RcodeServerFailure},
		{desc: "CNAME loop: SERVFAIL", resolver: u.Resolver(), name: "a.cnameloop.com.", rcode: dns.RcodeServerFailure},
		{desc: "truncation with TCP refused: SERVFAIL", resolver: u.Resolver(), name: "www.tcpfail.com.", rcode: dns.RcodeServerFailure},
		{desc: "CAA NOTIMP: SERVFAIL", resolver: u.Resolver(), name: "caa-notimp.com.", qtype: dns.TypeCAA, rcode: dns.RcodeServerFailure},
		{desc: "CAA of another CA", resolver: u.Resolver(), name: "caa-forbidden.com.", qtype: dns.TypeCAA, count: 1},
		{desc: "41 TXT over TCP", resolver: u.Resolver(), name: "_acme-challenge.www.manytxt.com.", qtype: dns.TypeTXT, count: 41},
		{desc: "300 TXT over TCP", resolver: u.Resolver(), name: "_acme-challenge.www.bigrrset.com.", qtype: dns.TypeTXT, count: 300},
		{desc: "dns-01 CNAME into a signed zone", resolver: u.Resolver(), name: "_acme-challenge.www.dns01-cname.com.", qtype: dns.TypeTXT, count: 1},
		{desc: "dangling dns-01 CNAME: NXDOMAIN", resolver: u.Resolver(), name: "_acme-challenge.www.cnamedangle.com.", qtype: dns.TypeTXT, rcode: dns.RcodeNameError},
		{desc: "private address stripped by the public view", resolver: u.Resolver(), name: "www.reserved.com."},
		// What Let's Encrypt's resolver makes of servers that mishandle
		// transport: the scenarios' severities rest on these.
		{desc: "EDNS-intolerant servers, unsigned zone: retried without EDNS", resolver: u.Resolver(), name: "www.edns-all.com.", addr: WebAddr},
		{desc: "EDNS-intolerant servers, signed zone: no signatures, SERVFAIL, EDE 10", resolver: u.Resolver(), name: "www.edns-signed.com.",
			rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeRRSIGsMissing},
		{desc: "one EDNS-intolerant server, signed zone: the other one validates", resolver: u.Resolver(), name: "www.edns-signed-one.com.", ad: true, addr: WebAddr},
		{desc: "no server keeps the 0x20 case: fallback", resolver: u.Resolver(), name: "www.caps-all.com.", addr: WebAddr},
		{desc: "no server keeps the 0x20 case, signed zone: fallback", resolver: u.Resolver(), name: "www.caps-signed.com.", ad: true, addr: WebAddr},
		{desc: "0x20 fallback meets servers that disagree: SERVFAIL", resolver: u.Resolver(), name: "www.caps-disagree.com.", qtype: dns.TypeCAA,
			rcode: dns.RcodeServerFailure},
		{desc: "truncated, one server refuses TCP: the other answers", resolver: u.Resolver(), name: "_acme-challenge.www.tcpfail-one.com.",
			qtype: dns.TypeTXT, count: 41},
		{desc: "CAA set too big for UDP, TCP refused: SERVFAIL", resolver: u.Resolver(), name: "caa-tcpfail.com.", qtype: dns.TypeCAA, rcode: dns.RcodeServerFailure},
		{desc: "CAA set too big for UDP at the name, TCP refused: SERVFAIL", resolver: u.Resolver(), name: "www.caa-tcpfail-txt.com.", qtype: dns.TypeCAA,
			rcode: dns.RcodeServerFailure},
		{desc: "TXT set too big for UDP, TCP refused: SERVFAIL", resolver: u.Resolver(), name: "_acme-challenge.www.txt-tcpfail.com.", qtype: dns.TypeTXT,
			rcode: dns.RcodeServerFailure},
		{desc: "CAA set too big for UDP over TCP", resolver: u.Resolver(), name: "caa-big.com.", qtype: dns.TypeCAA, count: 61},
		// Denial of existence without its proof.
		{desc: "NODATA without NSEC: CAA bogus, EDE 12", resolver: u.Resolver(), name: "www.nodenial.com.", qtype: dns.TypeCAA,
			rcode: dns.RcodeServerFailure, ede: dns.ExtendedErrorCodeNSECMissing},
		{desc: "NODATA without NSEC: AAAA bogus", resolver: u.Resolver(), name: "www.nodenial.com.", qtype: dns.TypeAAAA, rcode: dns.RcodeServerFailure},
		{desc: "the A that exists still validates", resolver: u.Resolver(), name: "www.nodenial.com.", ad: true, addr: WebAddr},
		{desc: "NXDOMAIN without NSEC: bogus", resolver: u.Resolver(), name: "missing.nodenial-nx.com.", rcode: dns.RcodeServerFailure,
			ede: dns.ExtendedErrorCodeNSECMissing},
		{desc: "dns-01 TXT NXDOMAIN without NSEC: bogus", resolver: u.Resolver(), name: "_acme-challenge.www.nodenial-txt.com.", qtype: dns.TypeTXT,
			rcode: dns.RcodeServerFailure},
		{desc: "one server without NSEC: the other one's proof validates", resolver: u.Resolver(), name: "nodenial-one.com.", qtype: dns.TypeCAA, ad: true},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			t.Parallel()
			m := new(dns.Msg)
			qtype := cmp.Or(c.qtype, dns.TypeA)
			m.SetQuestion(c.name, qtype)
			m.SetEdns0(4096, true)
			m.AuthenticatedData = true
			r, _, err := (&dns.Client{Net: "tcp", Timeout: 5 * time.Second}).Exchange(m, c.resolver)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != c.rcode || r.AuthenticatedData != c.ad {
				t.Errorf("rcode %s AD %v, want %s AD %v", dns.RcodeToString[r.Rcode], r.AuthenticatedData, dns.RcodeToString[c.rcode], c.ad)
			}
			if c.ede != 0 {
				var got []uint16
				if opt := r.IsEdns0(); opt != nil {
					for _, o := range opt.Option {
						if e, ok := o.(*dns.EDNS0_EDE); ok {
							got = append(got, e.InfoCode)
						}
					}
				}
				if !slices.Contains(got, c.ede) {
					t.Errorf("EDE codes %v, want %d", got, c.ede)
				}
			}
			var n int
			for _, rr := range r.Answer {
				if rr.Header().Rrtype == qtype {
					n++
				}
			}
			if c.count != 0 && n != c.count {
				t.Errorf("%d %s records, want %d", n, dns.TypeToString[qtype], c.count)
			}
			if c.addr == "" && c.count == 0 && qtype == dns.TypeA && c.rcode == dns.RcodeSuccess && n != 0 {
				t.Errorf("answer %v, want none", r.Answer)
			}
			if c.addr != "" {
				if !slices.ContainsFunc(r.Answer, func(rr dns.RR) bool { a, ok := rr.(*dns.A); return ok && a.A.String() == c.addr }) {
					t.Errorf("answer %v lacks A %s", r.Answer, c.addr)
				}
			}
		})
	}
}

func testSetTXT(t *testing.T, u *Universe) {
	const zone, name = "dns01-ok.com.", "_acme-challenge.new.dns01-ok.com."
	serial := func(server string) uint32 {
		r, err := u.ask(t, query{server: server, name: zone, qtype: dns.TypeSOA})
		if err != nil || len(r.Answer) == 0 {
			t.Fatalf("SOA from %s: %v", server, err)
		}
		return r.Answer[0].(*dns.SOA).Serial
	}
	before := serial("dns01-ok.com-ns1")
	if err := u.SetTXT(zone, name, []string{"v1"}, "dns01-ok.com-ns1"); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		desc   string
		server string
		rcode  int
		serial uint32
	}{
		{desc: "updated server has the signed TXT and a new serial", server: "dns01-ok.com-ns1", serial: before + 1},
		{desc: "lagging server still says NXDOMAIN", server: "dns01-ok.com-ns2", rcode: dns.RcodeNameError, serial: before},
	}
	for _, c := range cases {
		t.Run(c.desc, func(t *testing.T) {
			r, err := u.ask(t, query{server: c.server, name: name, qtype: dns.TypeTXT, do: true})
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != c.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[c.rcode])
			}
			if got := serial(c.server); got != c.serial {
				t.Errorf("serial %d, want %d", got, c.serial)
			}
			if c.rcode == dns.RcodeSuccess {
				sets, sigs := rrsets(r.Answer)
				keys, err := u.ask(t, query{server: c.server, name: zone, qtype: dns.TypeDNSKEY})
				if err != nil {
					t.Fatal(err)
				}
				var zsk *dns.DNSKEY
				for _, k := range keys.Answer {
					if k, ok := k.(*dns.DNSKEY); ok && k.Flags == 256 {
						zsk = k
					}
				}
				if sigs[dns.TypeTXT] == nil || zsk == nil || sigs[dns.TypeTXT].Verify(zsk, sets[dns.TypeTXT]) != nil {
					t.Errorf("TXT not re-signed: %v", r.Answer)
				}
			}
		})
	}
	t.Run("propagated everywhere, the resolver sees it", func(t *testing.T) {
		if err := u.SetTXT(zone, name, []string{"v2", "v3"}); err != nil {
			t.Fatal(err)
		}
		m := new(dns.Msg)
		m.SetQuestion(name, dns.TypeTXT)
		m.SetEdns0(4096, true)
		r, _, err := (&dns.Client{Timeout: 5 * time.Second}).Exchange(m, u.Resolver())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Answer) < 2 || !r.AuthenticatedData {
			t.Errorf("resolver answer %v AD=%v, want v2 and v3, validated", r.Answer, r.AuthenticatedData)
		}
	})
	t.Run("unknown server is an error", func(t *testing.T) {
		if err := u.SetTXT(zone, name, nil, "no-such-server"); err == nil {
			t.Error("no error")
		}
	})
}

func testDiagnoseArgs(t *testing.T, u *Universe) {
	var split Scenario
	for _, s := range Catalogue() {
		if s.UseClusterResolver {
			split = s
		}
	}
	args := u.DiagnoseArgs(split)
	joined := strings.Join(args, " ")
	for _, want := range []string{
		"--roots 127.53.0.1,127.53.0.2",
		"--dns-port " + strconv.Itoa(u.Port()),
		"--trust-anchor " + u.TrustAnchorFile(),
		"--resolver " + u.Resolver() + "," + u.ClusterResolver(),
		"--allow-address 127.0.0.0/8,::1/128",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("args %q lack %q", joined, want)
		}
	}
	if args[len(args)-1] != split.Domain {
		t.Errorf("last arg %q, want the domain %q", args[len(args)-1], split.Domain)
	}
}

func canonicalLess(a, b string) bool { return dnsserverCompare(a, b) < 0 }
