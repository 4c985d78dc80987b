package dnscheck

import (
	"crypto"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// secNow is the validation time of every test: signatures are made relative
// to it, so the tests do not depend on the clock.
var secNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// sigWindow is an RRSIG inception/expiration pair.
type sigWindow struct{ inc, exp time.Time }

var (
	validWindow   = sigWindow{secNow.Add(-time.Hour), secNow.Add(30 * 24 * time.Hour)}
	expiredWindow = sigWindow{secNow.Add(-30 * 24 * time.Hour), secNow.Add(-time.Hour)}
	futureWindow  = sigWindow{secNow.Add(time.Hour), secNow.Add(30 * 24 * time.Hour)}
)

// signedZone is a signed zone: a KSK that signs the DNSKEY RRset and a ZSK
// that signs everything else.
type signedZone struct {
	name             string
	ksk, zsk         *dns.DNSKEY
	kskPriv, zskPriv crypto.Signer
}

func genZoneKey(t testing.TB, name string, flags uint16, alg uint8) (*dns.DNSKEY, crypto.Signer) {
	t.Helper()
	k := &dns.DNSKEY{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags: flags, Protocol: 3, Algorithm: alg}
	bits := map[uint8]int{dns.RSASHA256: 1024, dns.ECDSAP256SHA256: 256, dns.ECDSAP384SHA384: 384, dns.ED25519: 256}[alg]
	priv, err := k.Generate(bits)
	if err != nil {
		t.Fatalf("generate %s key alg %d: %v", name, alg, err)
	}
	return k, priv.(crypto.Signer)
}

func newSignedZone(t testing.TB, name string, alg uint8) *signedZone {
	t.Helper()
	z := &signedZone{name: name}
	z.ksk, z.kskPriv = genZoneKey(t, name, dns.ZONE|dns.SEP, alg)
	z.zsk, z.zskPriv = genZoneKey(t, name, dns.ZONE, alg)
	return z
}

// signWith signs rrs (one RRset) with key over window w.
func (z *signedZone) signWith(t testing.TB, key *dns.DNSKEY, priv crypto.Signer, w sigWindow, rrs ...dns.RR) *dns.RRSIG {
	t.Helper()
	sig := &dns.RRSIG{Hdr: dns.RR_Header{Ttl: rrs[0].Header().Ttl}, Algorithm: key.Algorithm, KeyTag: key.KeyTag(),
		SignerName: z.name, Inception: uint32(w.inc.Unix()), Expiration: uint32(w.exp.Unix())}
	if err := sig.Sign(priv, rrs); err != nil {
		t.Fatalf("sign %s: %v", rrs[0].Header().Name, err)
	}
	return sig
}

// signed returns rrs (one RRset) followed by the ZSK's RRSIG over window w.
func (z *signedZone) signed(t testing.TB, w sigWindow, rrs ...dns.RR) []dns.RR {
	t.Helper()
	return append(slices.Clone(rrs), z.signWith(t, z.zsk, z.zskPriv, w, rrs...))
}

// keySet is the zone's DNSKEY RRset signed by the KSK.
func (z *signedZone) keySet(t testing.TB, w sigWindow) []dns.RR {
	t.Helper()
	return []dns.RR{z.ksk, z.zsk, z.signWith(t, z.ksk, z.kskPriv, w, z.ksk, z.zsk)}
}

func (z *signedZone) ds(digest uint8) *dns.DS { return z.ksk.ToDS(digest) }

func secRR(t testing.TB, s string) dns.RR {
	t.Helper()
	rr, err := dns.NewRR(s)
	if err != nil {
		t.Fatalf("parse %q: %v", s, err)
	}
	return rr
}

// secFixture is a signed hierarchy: . (RSASHA256) → com. (ECDSA P-256) →
// example.com. (Ed25519).
type secFixture struct{ root, com, example *signedZone }

func newSecFixture(t testing.TB) *secFixture {
	t.Helper()
	return &secFixture{
		root:    newSignedZone(t, ".", dns.RSASHA256),
		com:     newSignedZone(t, "com.", dns.ECDSAP256SHA256),
		example: newSignedZone(t, "example.com.", dns.ED25519),
	}
}

func (f *secFixture) anchors() []dns.RR { return []dns.RR{f.root.ds(dns.SHA256)} }

func (f *secFixture) links(t testing.TB) []ZoneLink {
	return []ZoneLink{
		{Zone: ".", DNSKEY: f.root.keySet(t, validWindow), Server: "a.root-servers.net"},
		{Zone: "com.", Parent: ".", DS: f.root.signed(t, validWindow, f.com.ds(dns.SHA256)),
			DNSKEY: f.com.keySet(t, validWindow), Server: "a.root-servers.net"},
		{Zone: "example.com.", Parent: "com.", DS: f.com.signed(t, validWindow, f.example.ds(dns.SHA256)),
			DNSKEY: f.example.keySet(t, validWindow), Server: "a.gtld-servers.net"},
	}
}

// keys validates the fixture's chain, failing the test unless it is secure.
func (f *secFixture) keys(t testing.TB) ChainKeys {
	t.Helper()
	keys, v := ValidateChain(f.anchors(), f.links(t), secNow)
	if v.Security != SecuritySecure {
		t.Fatalf("fixture chain: %v %s: %s", v.Security, v.Reason, v.Detail)
	}
	return keys
}

// nsec3Chain builds a complete NSEC3 chain for zone from owner → types.
func nsec3Chain(zone string, owners map[string][]uint16, iters uint16, optOut bool) []*dns.NSEC3 {
	type entry struct {
		hash  string
		types []uint16
	}
	var es []entry
	for o, ts := range owners {
		ts = append(slices.Clone(ts), dns.TypeRRSIG)
		slices.Sort(ts)
		es = append(es, entry{dns.HashName(o, dns.SHA1, iters, ""), slices.Compact(ts)})
	}
	sort.Slice(es, func(i, j int) bool { return es[i].hash < es[j].hash })
	var flags uint8
	if optOut {
		flags = 1
	}
	out := make([]*dns.NSEC3, len(es))
	for i, e := range es {
		out[i] = &dns.NSEC3{Hdr: dns.RR_Header{Name: strings.ToLower(e.hash) + "." + zone, Rrtype: dns.TypeNSEC3, Class: dns.ClassINET, Ttl: 300},
			Hash: dns.SHA1, Flags: flags, Iterations: iters, HashLength: 20,
			NextDomain: es[(i+1)%len(es)].hash, TypeBitMap: e.types}
	}
	return out
}

// signedNSEC3 signs each NSEC3 (each is its own RRset) except those whose
// hash covers or matches one of the names in skip.
func (z *signedZone) signedNSEC3(t testing.TB, w sigWindow, recs []*dns.NSEC3) []dns.RR {
	var out []dns.RR
	for _, r := range recs {
		out = append(out, z.signed(t, w, r)...)
	}
	return out
}

func withoutNSEC3Covering(recs []*dns.NSEC3, name string) []*dns.NSEC3 {
	return slices.DeleteFunc(slices.Clone(recs), func(r *dns.NSEC3) bool { return r.Cover(name) })
}

func TestValidateChain(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	other, _ := genZoneKey(t, "example.com.", dns.ZONE|dns.SEP, dns.ED25519)
	soa := secRR(t, "com. 900 IN SOA a.gtld-servers.net. nstld.verisign-grs.com. 1 1800 900 604800 86400")
	nsecNoDS := secRR(t, "example.com. 86400 IN NSEC f.com. NS RRSIG NSEC")
	nsecWithDS := secRR(t, "example.com. 86400 IN NSEC f.com. NS DS RRSIG NSEC")
	com3 := nsec3Chain("com.", map[string][]uint16{
		"com.":       {dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeNSEC3PARAM, dns.TypeRRSIG},
		"other.com.": {dns.TypeNS, dns.TypeDS, dns.TypeRRSIG},
	}, 0, true)
	com3NoOptOut := nsec3Chain("com.", map[string][]uint16{
		"com.":       {dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeNSEC3PARAM, dns.TypeRRSIG},
		"other.com.": {dns.TypeNS, dns.TypeDS, dns.TypeRRSIG},
	}, 0, false)
	soon := sigWindow{validWindow.inc, secNow.Add(48 * time.Hour)}

	tests := []struct {
		desc       string
		anchors    func() []dns.RR
		links      func(l []ZoneLink) []ZoneLink
		want       Security
		reason     BogusReason
		zone       string
		detail     string   // substring of Detail
		keyZones   []string // zones that must have validated keys
		noKeyZones []string // zones that must not
		expires    time.Time
	}{
		{desc: "secure chain root to example.com", want: SecuritySecure, zone: "example.com.",
			keyZones: []string{".", "com.", "example.com."}, expires: validWindow.exp},
		{desc: "DNSKEY trust anchor form", anchors: func() []dns.RR { return []dns.RR{f.root.ksk} },
			want: SecuritySecure, zone: "example.com.", keyZones: []string{".", "com.", "example.com."}},
		{desc: "earliest signature expiry on the path is reported",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = f.com.signed(t, soon, f.example.ds(dns.SHA256))
				return l
			},
			want: SecuritySecure, zone: "example.com.", expires: soon.exp},
		{desc: "expired RRSIG on the DNSKEY set",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DNSKEY = f.example.keySet(t, expiredWindow)
				return l
			},
			want: SecurityBogus, reason: ReasonSignatureExpired, zone: "example.com.", detail: "expired 2026-03-01T11:00:00Z",
			keyZones: []string{".", "com."}, noKeyZones: []string{"example.com."}},
		{desc: "not yet valid RRSIG on the DNSKEY set",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DNSKEY = f.example.keySet(t, futureWindow)
				return l
			},
			want: SecurityBogus, reason: ReasonSignatureNotYetValid, zone: "example.com.", detail: "not valid before"},
		{desc: "DS matches no DNSKEY",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = f.com.signed(t, validWindow, other.ToDS(dns.SHA256))
				return l
			},
			want: SecurityBogus, reason: ReasonDSMismatch, zone: "example.com.", detail: "matches no DNSKEY of example.com."},
		{desc: "DS-matched key did not sign the DNSKEY set",
			links: func(l []ZoneLink) []ZoneLink {
				z := f.example
				l[2].DNSKEY = []dns.RR{z.ksk, z.zsk, z.signWith(t, z.zsk, z.zskPriv, validWindow, z.ksk, z.zsk)}
				return l
			},
			want: SecurityBogus, reason: ReasonMissingSignature, zone: "example.com.", detail: "did not sign the DNSKEY RRset"},
		{desc: "DNSKEY set altered after signing",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DNSKEY = append(f.example.keySet(t, validWindow), other)
				return l
			},
			want: SecurityBogus, reason: ReasonBadSignature, zone: "example.com.", detail: "does not verify"},
		{desc: "child serves no DNSKEY",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DNSKEY = nil
				return l
			},
			want: SecurityBogus, reason: ReasonMissingDNSKEY, zone: "example.com.", detail: "returned no DNSKEY"},
		{desc: "DS without RRSIG at the parent",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = []dns.RR{f.example.ds(dns.SHA256)}
				return l
			},
			want: SecurityBogus, reason: ReasonMissingSignature, zone: "com.", detail: "no RRSIG by com."},
		{desc: "expired RRSIG over the DS at the parent",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = f.com.signed(t, expiredWindow, f.example.ds(dns.SHA256))
				return l
			},
			want: SecurityBogus, reason: ReasonSignatureExpired, zone: "com.", detail: "DS RRset for example.com."},
		{desc: "insecure delegation with a valid NSEC no-DS proof",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = nil
				l[2].NoDS = append(f.com.signed(t, validWindow, soa), f.com.signed(t, validWindow, nsecNoDS)...)
				return l
			},
			want: SecurityInsecure, zone: "example.com.", detail: "island of security",
			keyZones: []string{".", "com."}, noKeyZones: []string{"example.com."}},
		{desc: "insecure delegation inside an NSEC3 opt-out span",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS, l[2].DNSKEY = nil, nil
				l[2].NoDS = f.com.signedNSEC3(t, validWindow, com3)
				return l
			},
			want: SecurityInsecure, zone: "example.com.", detail: "opt-out"},
		{desc: "NSEC3 covers the delegation without opt-out",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = nil
				l[2].NoDS = f.com.signedNSEC3(t, validWindow, com3NoOptOut)
				return l
			},
			want: SecurityBogus, reason: ReasonMissingDSProof, zone: "com.", detail: "without opt-out"},
		{desc: "insecure delegation with no proof",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS, l[2].DNSKEY = nil, nil
				return l
			},
			want: SecurityBogus, reason: ReasonMissingDSProof, zone: "com.", detail: "no NSEC/NSEC3"},
		{desc: "no-DS NSEC lists DS",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = nil
				l[2].NoDS = f.com.signed(t, validWindow, nsecWithDS)
				return l
			},
			want: SecurityBogus, reason: ReasonMissingDSProof, zone: "com.", detail: "lists DS as present"},
		{desc: "no-DS NSEC without RRSIG",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = nil
				l[2].NoDS = []dns.RR{nsecNoDS}
				return l
			},
			want: SecurityBogus, reason: ReasonMissingSignature, zone: "com."},
		{desc: "only an unsupported DS algorithm: insecure",
			links: func(l []ZoneLink) []ZoneLink {
				ds := f.example.ds(dns.SHA256)
				ds.Algorithm = dns.RSASHA1NSEC3SHA1
				l[2].DS = f.com.signed(t, validWindow, ds)
				return l
			},
			want: SecurityInsecure, reason: ReasonUnsupportedAlgorithm, zone: "example.com.", detail: "RFC 4035 §5.2"},
		{desc: "only an unsupported DS digest type: insecure",
			links: func(l []ZoneLink) []ZoneLink {
				ds := f.example.ds(dns.SHA256)
				ds.DigestType = dns.GOST94
				l[2].DS = f.com.signed(t, validWindow, ds)
				return l
			},
			want: SecurityInsecure, reason: ReasonUnsupportedDigest, zone: "example.com."},
		{desc: "SHA-1 DS is ignored when a SHA-256 DS is present",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = f.com.signed(t, validWindow, f.example.ds(dns.SHA1), other.ToDS(dns.SHA256))
				return l
			},
			want: SecurityBogus, reason: ReasonDSMismatch, zone: "example.com."},
		{desc: "SHA-1 DS alone still validates",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = f.com.signed(t, validWindow, f.example.ds(dns.SHA1))
				return l
			},
			want: SecuritySecure, zone: "example.com."},
		{desc: "no trust anchor for the root", anchors: func() []dns.RR { return nil },
			want: SecurityIndeterminate, zone: ".", detail: "no trust anchor"},
		{desc: "wrong root trust anchor",
			anchors: func() []dns.RR { return DefaultTrustAnchors() },
			want:    SecurityBogus, reason: ReasonDSMismatch, zone: "."},
		{desc: "links out of order",
			links: func(l []ZoneLink) []ZoneLink {
				l[1], l[2] = l[2], l[1]
				return l
			},
			want: SecurityIndeterminate, detail: "does not follow"},
		{desc: "no links", links: func([]ZoneLink) []ZoneLink { return nil }, want: SecurityIndeterminate},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			anchors := f.anchors()
			if tc.anchors != nil {
				anchors = tc.anchors()
			}
			links := f.links(t)
			if tc.links != nil {
				links = tc.links(links)
			}
			keys, v := ValidateChain(anchors, links, secNow)
			t.Logf("%v zone=%s reason=%s: %s", v.Security, v.Zone, v.Reason, v.Detail)
			if v.Security != tc.want || v.Reason != tc.reason {
				t.Errorf("got %v/%q, want %v/%q", v.Security, v.Reason, tc.want, tc.reason)
			}
			if tc.zone != "" && v.Zone != tc.zone {
				t.Errorf("zone %q, want %q", v.Zone, tc.zone)
			}
			if !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", v.Detail, tc.detail)
			}
			if !tc.expires.IsZero() && !v.Expires.Equal(tc.expires) {
				t.Errorf("expires %v, want %v", v.Expires, tc.expires)
			}
			for _, z := range tc.keyZones {
				if len(keys[z]) == 0 {
					t.Errorf("no validated keys for %s", z)
				}
			}
			for _, z := range tc.noKeyZones {
				if len(keys[z]) != 0 {
					t.Errorf("keys for %s, want none", z)
				}
			}
		})
	}
}

// TestValidateChainHostile feeds malformed and oversized material: the verdict
// must never be Secure and nothing may panic.
func TestValidateChainHostile(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	garbageSigs := func(n int) []dns.RR {
		z := f.example
		out := []dns.RR{z.ksk, z.zsk}
		for i := 0; i < n; i++ {
			s := z.signWith(t, z.ksk, z.kskPriv, validWindow, z.ksk, z.zsk)
			s.Signature = "AAAA" + s.Signature[4:]
			out = append(out, s)
		}
		return out
	}
	many := garbageSigs(200)
	badAnchor := f.root.ds(dns.SHA256)
	badAnchor.Algorithm = dns.RSASHA1NSEC3SHA1
	tests := []struct {
		desc    string
		anchors []dns.RR
		links   func(l []ZoneLink) []ZoneLink
		want    Security
		reason  BogusReason
	}{
		{desc: "nil records in every section",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DS = append([]dns.RR{nil}, l[2].DS...)
				l[2].NoDS = []dns.RR{nil}
				l[2].DNSKEY = []dns.RR{nil, nil}
				return l
			},
			want: SecurityBogus, reason: ReasonMissingDNSKEY},
		{desc: "DNSKEYs owned by another name",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DNSKEY = l[1].DNSKEY
				return l
			},
			want: SecurityBogus, reason: ReasonMissingDNSKEY},
		{desc: "two hundred bad signatures over the DNSKEY set",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].DNSKEY = many
				return l
			},
			want: SecurityBogus, reason: ReasonBadSignature},
		{desc: "invalid zone name",
			links: func(l []ZoneLink) []ZoneLink {
				l[2].Zone = "a..com."
				return l
			},
			want: SecurityIndeterminate},
		{desc: "more links than a name has labels",
			links: func(l []ZoneLink) []ZoneLink {
				for len(l) < 200 {
					l = append(l, l[2])
				}
				return l
			},
			want: SecurityIndeterminate},
		{desc: "trust anchor with an unsupported algorithm", anchors: []dns.RR{badAnchor},
			want: SecurityInsecure, reason: ReasonUnsupportedAlgorithm},
	}
	for _, tc := range tests {
		links := f.links(t)
		if tc.links != nil {
			links = tc.links(links)
		}
		anchors := f.anchors()
		if tc.anchors != nil {
			anchors = tc.anchors
		}
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			_, v := ValidateChain(anchors, links, secNow)
			t.Logf("%v zone=%s reason=%s: %s", v.Security, v.Zone, v.Reason, v.Detail)
			if v.Security != tc.want || v.Reason != tc.reason {
				t.Errorf("got %v/%q, want %v/%q", v.Security, v.Reason, tc.want, tc.reason)
			}
		})
	}
}

// answerCase is one response to validate against the fixture's example.com.
type answerCase struct {
	desc   string
	zone   string // default example.com.
	qname  string
	qtype  uint16
	msg    func() *dns.Msg
	want   Security
	reason BogusReason
	detail string
	next   string
}

func secResponse(qname string, qtype uint16, rcode int, answer, ns []dns.RR) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(qname, qtype)
	m.Response, m.Authoritative, m.Rcode = true, true, rcode
	m.Answer, m.Ns = answer, ns
	return m
}

// answerCases builds the responses once, so the fuzz target can reuse them as seeds.
func answerCases(t testing.TB, f *secFixture) []answerCase {
	ex := f.example
	rr := func(s string) dns.RR { return secRR(t, s) }
	sg := func(w sigWindow, rrs ...dns.RR) []dns.RR { return ex.signed(t, w, rrs...) }
	cat := func(sets ...[]dns.RR) []dns.RR { return slices.Concat(sets...) }

	www := rr("www.example.com. 300 IN A 192.0.2.1")
	soa := rr("example.com. 300 IN SOA ns1.example.com. hostmaster.example.com. 1 7200 3600 1209600 300")
	// The zone: example.com., *.w (a wildcard), a, cname, w (ENT-free: has A), www.
	nsecApex := rr("example.com. 300 IN NSEC a.example.com. NS SOA RRSIG NSEC DNSKEY")
	nsecA := rr("a.example.com. 300 IN NSEC cname.example.com. A RRSIG NSEC")
	nsecCname := rr("cname.example.com. 300 IN NSEC w.example.com. CNAME RRSIG NSEC")
	// w.example.com. (A) NSEC *.w.example.com. is not needed by any case.
	nsecWild := rr("*.w.example.com. 300 IN NSEC www.example.com. A RRSIG NSEC")
	nsecWww := rr("www.example.com. 300 IN NSEC example.com. A RRSIG NSEC")

	// A wildcard answer: signed at *.w.example.com., served as x.w.example.com.
	wild := rr("*.w.example.com. 300 IN A 192.0.2.9")
	wildSig := ex.signWith(t, ex.zsk, ex.zskPriv, validWindow, wild)
	wild.Header().Name, wildSig.Hdr.Name = "x.w.example.com.", "x.w.example.com."

	tampered := sg(validWindow, rr("www.example.com. 300 IN A 192.0.2.1"))
	tampered[0].(*dns.A).A[3] = 66

	stranger := newSignedZone(t, "example.com.", dns.ED25519)

	owners := map[string][]uint16{
		"example.com.":     {dns.TypeSOA, dns.TypeNS, dns.TypeDNSKEY, dns.TypeNSEC3PARAM, dns.TypeRRSIG},
		"a.example.com.":   {dns.TypeA, dns.TypeRRSIG},
		"www.example.com.": {dns.TypeA, dns.TypeRRSIG},
	}
	n3 := nsec3Chain("example.com.", owners, 0, false)
	n3OptOut := nsec3Chain("example.com.", owners, 0, true)
	n3Costly := nsec3Chain("example.com.", owners, 500, false)
	sg3 := func(recs []*dns.NSEC3) []dns.RR { return ex.signedNSEC3(t, validWindow, recs) }

	return []answerCase{
		{desc: "positive A", qname: "www.example.com.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.com.", dns.TypeA, 0, sg(validWindow, www), nil) },
			want: SecuritySecure, detail: "www.example.com./A"},
		{desc: "mixed-case owner (0x20) still validates", qname: "WwW.Example.COM.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				a := rr("WwW.Example.COM. 300 IN A 192.0.2.1")
				s := ex.signWith(t, ex.zsk, ex.zskPriv, validWindow, rr("www.example.com. 300 IN A 192.0.2.1"))
				s.Hdr.Name = "WwW.Example.COM."
				return secResponse("WwW.Example.COM.", dns.TypeA, 0, []dns.RR{a, s}, nil)
			},
			want: SecuritySecure},
		{desc: "expired RRSIG on the answer", qname: "www.example.com.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.com.", dns.TypeA, 0, sg(expiredWindow, www), nil) },
			want: SecurityBogus, reason: ReasonSignatureExpired, detail: "expired 2026-03-01T11:00:00Z"},
		{desc: "not yet valid RRSIG on the answer", qname: "www.example.com.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.com.", dns.TypeA, 0, sg(futureWindow, www), nil) },
			want: SecurityBogus, reason: ReasonSignatureNotYetValid},
		{desc: "answer without RRSIG", qname: "www.example.com.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.com.", dns.TypeA, 0, []dns.RR{www}, nil) },
			want: SecurityBogus, reason: ReasonMissingSignature},
		{desc: "answer altered after signing", qname: "www.example.com.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.com.", dns.TypeA, 0, tampered, nil) },
			want: SecurityBogus, reason: ReasonBadSignature},
		{desc: "answer signed by a key not in the DNSKEY set", qname: "www.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeA, 0, stranger.signed(t, validWindow, www), nil)
			},
			want: SecurityBogus, reason: ReasonMissingDNSKEY, detail: "not among the DNSKEYs of example.com."},
		{desc: "answer signed by the parent instead of the zone", qname: "www.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeA, 0, f.com.signed(t, validWindow, www), nil)
			},
			want: SecurityBogus, reason: ReasonMissingSignature, detail: "signed by com."},
		{desc: "RRSIG with an unsupported algorithm", qname: "www.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				s := ex.signWith(t, ex.zsk, ex.zskPriv, validWindow, www)
				s.Algorithm = dns.RSASHA1
				return secResponse("www.example.com.", dns.TypeA, 0, []dns.RR{www, s}, nil)
			},
			want: SecurityBogus, reason: ReasonUnsupportedAlgorithm},
		{desc: "CNAME inside the zone", qname: "cname.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("cname.example.com.", dns.TypeA, 0,
					cat(sg(validWindow, rr("cname.example.com. 300 IN CNAME www.example.com.")), sg(validWindow, www)), nil)
			},
			want: SecuritySecure, detail: "cname.example.com./CNAME → www.example.com./A"},
		{desc: "CNAME leaving the zone", qname: "cname.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("cname.example.com.", dns.TypeA, 0,
					sg(validWindow, rr("cname.example.com. 300 IN CNAME target.example.net.")), nil)
			},
			want: SecuritySecure, next: "target.example.net."},
		{desc: "wildcard answer with NSEC proof of no closer match", qname: "x.w.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("x.w.example.com.", dns.TypeA, 0, []dns.RR{wild, wildSig}, sg(validWindow, nsecWild))
			},
			want: SecuritySecure, detail: "from *.w.example.com."},
		{desc: "wildcard answer without denial proof", qname: "x.w.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("x.w.example.com.", dns.TypeA, 0, []dns.RR{wild, wildSig}, nil)
			},
			want: SecurityBogus, reason: ReasonBrokenDenial},
		{desc: "wildcard answer with NSEC3 proof", qname: "x.w.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				w3 := nsec3Chain("example.com.", map[string][]uint16{
					"example.com.": {dns.TypeSOA}, "w.example.com.": {dns.TypeA}, "*.w.example.com.": {dns.TypeA}}, 0, false)
				return secResponse("x.w.example.com.", dns.TypeA, 0, []dns.RR{wild, wildSig}, sg3(w3))
			},
			want: SecuritySecure},
		{desc: "NXDOMAIN with valid NSEC proof", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg(validWindow, nsecA), sg(validWindow, nsecApex)))
			},
			want: SecuritySecure, detail: "wildcard *.example.com."},
		{desc: "NXDOMAIN proven by the last NSEC wrapping to the apex", qname: "zzz.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("zzz.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg(validWindow, nsecWww), sg(validWindow, nsecApex)))
			},
			want: SecuritySecure},
		{desc: "NXDOMAIN without the wildcard NSEC", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg(validWindow, nsecA)))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial, detail: "wildcard *.example.com."},
		{desc: "NXDOMAIN with an NSEC that does not cover the name", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg(validWindow, nsecCname), sg(validWindow, nsecApex)))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial, detail: "no NSEC covers b.example.com."},
		{desc: "NXDOMAIN for a name the NSEC shows exists", qname: "a.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("a.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg(validWindow, nsecA)))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial, detail: "exists"},
		{desc: "NXDOMAIN with an expired NSEC signature", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg(expiredWindow, nsecA), sg(validWindow, nsecApex)))
			},
			want: SecurityBogus, reason: ReasonSignatureExpired, detail: "NSEC a.example.com."},
		{desc: "NXDOMAIN without any NSEC", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil, sg(validWindow, soa))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial, detail: "no NSEC or NSEC3"},
		{desc: "NODATA with NSEC", qname: "www.example.com.", qtype: dns.TypeTXT,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeTXT, 0, nil, cat(sg(validWindow, soa), sg(validWindow, nsecWww)))
			},
			want: SecuritySecure, detail: "lacks TXT"},
		{desc: "NODATA for CAA at the apex with NSEC", qname: "example.com.", qtype: dns.TypeCAA,
			msg: func() *dns.Msg {
				return secResponse("example.com.", dns.TypeCAA, 0, nil, cat(sg(validWindow, soa), sg(validWindow, nsecApex)))
			},
			want: SecuritySecure},
		{desc: "NODATA whose NSEC lists the type", qname: "www.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeA, 0, nil, cat(sg(validWindow, soa), sg(validWindow, nsecWww)))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial, detail: "lists A as present"},
		{desc: "NODATA with an NSEC for another name", qname: "www.example.com.", qtype: dns.TypeTXT,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeTXT, 0, nil, cat(sg(validWindow, soa), sg(validWindow, nsecA)))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial},
		{desc: "NODATA with an unsigned SOA", qname: "www.example.com.", qtype: dns.TypeTXT,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeTXT, 0, nil, cat([]dns.RR{soa}, sg(validWindow, nsecWww)))
			},
			want: SecurityBogus, reason: ReasonMissingSignature, detail: "SOA"},
		{desc: "NSEC3 NXDOMAIN", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil, cat(sg(validWindow, soa), sg3(n3)))
			},
			want: SecuritySecure, detail: "closest encloser example.com."},
		{desc: "NSEC3 NXDOMAIN without the next closer cover", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil,
					cat(sg(validWindow, soa), sg3(withoutNSEC3Covering(n3, "b.example.com."))))
			},
			want: SecurityBogus, reason: ReasonBrokenDenial},
		{desc: "NSEC3 NODATA", qname: "www.example.com.", qtype: dns.TypeTXT,
			msg: func() *dns.Msg {
				return secResponse("www.example.com.", dns.TypeTXT, 0, nil, cat(sg(validWindow, soa), sg3(n3)))
			},
			want: SecuritySecure, detail: "lacks TXT"},
		{desc: "NSEC3 opt-out NXDOMAIN is insecure", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil, cat(sg(validWindow, soa), sg3(n3OptOut)))
			},
			want: SecurityInsecure, detail: "opt-out"},
		{desc: "NSEC3 with 500 iterations is insecure", qname: "b.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("b.example.com.", dns.TypeA, dns.RcodeNameError, nil, cat(sg(validWindow, soa), sg3(n3Costly)))
			},
			want: SecurityInsecure, detail: "RFC 9276"},
		{desc: "zone without validated keys is insecure", zone: "insecure.com.", qname: "www.insecure.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("www.insecure.com.", dns.TypeA, 0, []dns.RR{rr("www.insecure.com. 300 IN A 192.0.2.3")}, nil)
			},
			want: SecurityInsecure},
		{desc: "nil message", qname: "www.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg { return nil }, want: SecurityIndeterminate},
		{desc: "SERVFAIL has nothing to validate", qname: "www.example.com.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.com.", dns.TypeA, dns.RcodeServerFailure, nil, nil) },
			want: SecurityIndeterminate, detail: "SERVFAIL"},
		{desc: "name outside the zone", qname: "www.example.net.", qtype: dns.TypeA,
			msg:  func() *dns.Msg { return secResponse("www.example.net.", dns.TypeA, 0, sg(validWindow, www), nil) },
			want: SecurityIndeterminate, detail: "not inside zone"},
		{desc: "referral to a child zone", qname: "www.sub.example.com.", qtype: dns.TypeA,
			msg: func() *dns.Msg {
				return secResponse("www.sub.example.com.", dns.TypeA, 0, nil, []dns.RR{rr("sub.example.com. 300 IN NS ns.sub.example.com.")})
			},
			want: SecurityIndeterminate, detail: "referral"},
	}
}

func TestValidateAnswer(t *testing.T) {
	t.Parallel()
	f := newSecFixture(t)
	keys := f.keys(t)
	for _, tc := range answerCases(t, f) {
		// Built here: the builders sign with the parent test's t.
		msg := tc.msg()
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			zone := tc.zone
			if zone == "" {
				zone = "example.com."
			}
			v := ValidateAnswer(keys, zone, tc.qname, tc.qtype, msg, secNow)
			t.Logf("%v reason=%s: %s", v.Security, v.Reason, v.Detail)
			if v.Security != tc.want || v.Reason != tc.reason {
				t.Errorf("got %v/%q, want %v/%q", v.Security, v.Reason, tc.want, tc.reason)
			}
			if !strings.Contains(v.Detail, tc.detail) {
				t.Errorf("detail %q does not contain %q", v.Detail, tc.detail)
			}
			if v.Next != tc.next {
				t.Errorf("next %q, want %q", v.Next, tc.next)
			}
			if v.Security == SecuritySecure && !v.Expires.Equal(validWindow.exp) {
				t.Errorf("expires %v, want %v", v.Expires, validWindow.exp)
			}
		})
	}
}

func TestParseTrustAnchors(t *testing.T) {
	t.Parallel()
	const ksk2017 = "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU="
	tests := []struct {
		desc    string
		in      string
		wantErr string // substring; "" means success
		want    []string
	}{
		{desc: "DS lines with comments and blank lines",
			in: "; root anchors\n\n. IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n" +
				". 172800 IN DS 38696 8 2 683D2D0ACB8C9B712A1948B27F741219298D0A450D612C483AF444A4C0FB2B16 ; KSK-2024\n",
			want: []string{"DS 20326 8 2", "DS 38696 8 2"}},
		{desc: "DNSKEY form over several lines (Unbound root.key)",
			in:   "; autotrust trust anchor file\n$TTL 172800\n. IN DNSKEY 257 3 8 (\n  " + ksk2017[:100] + "\n  " + ksk2017[100:] + "\n  ) ; KSK; alg = RSASHA256 ; key id = 20326\n",
			want: []string{"DNSKEY 257 3 8"}},
		{desc: "garbage", in: "hello world this is not a zone file\n", wantErr: "anchors.txt: dns: "},
		{desc: "wrong owner names the line",
			in:      ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n\nexample. IN DS 1 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\n",
			wantErr: "anchors.txt:3: DS record for example."},
		{desc: "other record type", in: ". IN A 192.0.2.1\n", wantErr: "anchors.txt:1: A record"},
		{desc: "digest length does not fit the type",
			in: ". IN DS 20326 8 2 E06D44B80B8F1D39\n", wantErr: "needs 64"},
		{desc: "DNSKEY without the zone flag", in: ". IN DNSKEY 1 3 8 " + ksk2017 + "\n", wantErr: "not a zone key"},
		{desc: "empty file", in: "; nothing here\n", wantErr: "no DS or DNSKEY records"},
		{desc: "oversized input", in: strings.Repeat(";", maxAnchorFile+1), wantErr: "larger than"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			rrs, err := ParseTrustAnchors(strings.NewReader(tc.in), "anchors.txt")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(rrs) != len(tc.want) {
				t.Fatalf("%d records, want %d: %v", len(rrs), len(tc.want), rrs)
			}
			for i, w := range tc.want {
				if !strings.Contains(strings.Join(strings.Fields(rrs[i].String()), " "), w) {
					t.Errorf("record %d %q does not contain %q", i, rrs[i], w)
				}
			}
			if k, ok := rrs[0].(*dns.DNSKEY); ok && k.KeyTag() != 20326 {
				t.Errorf("key tag %d, want 20326", k.KeyTag())
			}
		})
	}
}

// TestDefaultTrustAnchors checks the built-in DS digests against the root KSK
// public keys as IANA publishes them (root-anchors.xml, also in BIND's bind.keys).
func TestDefaultTrustAnchors(t *testing.T) {
	t.Parallel()
	published := map[uint16]string{
		20326: "AwEAAaz/tAm8yTn4Mfeh5eyI96WSVexTBAvkMgJzkKTOiW1vkIbzxeF3+/4RgWOq7HrxRixHlFlExOLAJr5emLvN7SWXgnLh4+B5xQlNVz8Og8kvArMtNROxVQuCaSnIDdD5LKyWbRd2n9WGe2R8PzgCmr3EgVLrjyBxWezF0jLHwVN8efS3rCj/EWgvIWgb9tarpVUDK/b58Da+sqqls3eNbuv7pr+eoZG+SrDK6nWeL3c6H5Apxz7LjVc1uTIdsIXxuOLYA4/ilBmSVIzuDWfdRUfhHdY6+cn8HFRm+2hM8AnXGXws9555KrUB5qihylGa8subX2Nn6UwNR1AkUTV74bU=",
		38696: "AwEAAa96jeuknZlaeSrvyAJj6ZHv28hhOKkx3rLGXVaC6rXTsDc449/cidltpkyGwCJNnOAlFNKF2jBosZBU5eeHspaQWOmOElZsjICMQMC3aeHbGiShvZsx4wMYSjH8e7Vrhbu6irwCzVBApESjbUdpWWmEnhathWu1jo+siFUiRAAxm9qyJNg/wOZqqzL/dL/q8PkcRU5oUKEpUge71M3ej2/7CPqpdVwuMoTvoB+ZOT4YeGyxMvHmbrxlFzGOHOijtzN+u1TQNatX2XBuzZNQ1K+s2CXkPIZo7s6JgZyvaBevYtxPvYLw4z9mR7K2vaF18UYH9Z9GNUUeayffKC73PYc=",
	}
	anchors := DefaultTrustAnchors()
	if len(anchors) != len(published) {
		t.Fatalf("%d anchors, want %d", len(anchors), len(published))
	}
	for _, rr := range anchors {
		ds, ok := rr.(*dns.DS)
		if !ok {
			t.Fatalf("%v is not a DS", rr)
		}
		t.Run(dsString(ds), func(t *testing.T) {
			key := &dns.DNSKEY{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET},
				Flags: 257, Protocol: 3, Algorithm: dns.RSASHA256, PublicKey: published[ds.KeyTag]}
			if key.KeyTag() != ds.KeyTag {
				t.Errorf("published key has tag %d, anchor says %d", key.KeyTag(), ds.KeyTag)
			}
			if !dsMatches(ds, key) {
				t.Errorf("digest %s does not match the published key (want %s)", ds.Digest, key.ToDS(dns.SHA256).Digest)
			}
			// The anchors must survive a round trip through the file format.
			back, err := ParseTrustAnchors(strings.NewReader(ds.String()), "roundtrip")
			if err != nil || len(back) != 1 || !dns.IsDuplicate(back[0], ds) {
				t.Errorf("round trip of %s: %v %v", ds, back, err)
			}
		})
	}
}

func TestCanonicalOrder(t *testing.T) {
	t.Parallel()
	// RFC 4034 §6.1's example, in order.
	names := []string{"example.", "a.example.", "yljkjljk.a.example.", "Z.a.example.", "zABC.a.EXAMPLE.",
		"z.example.", `\001.z.example.`, "*.z.example.", `\200.z.example.`}
	for i := 0; i+1 < len(names); i++ {
		c, ok := canonicalCompare(names[i], names[i+1])
		if !ok || c >= 0 {
			t.Errorf("%s vs %s: %d %v, want < 0", names[i], names[i+1], c, ok)
		}
		if c, _ := canonicalCompare(names[i+1], names[i]); c <= 0 {
			t.Errorf("%s vs %s: %d, want > 0", names[i+1], names[i], c)
		}
	}
	if c, ok := canonicalCompare("A.Example.", `\097.example.`); !ok || c != 0 {
		t.Errorf("escaped equal names compare %d %v", c, ok)
	}
}

func TestReasonEDE(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc   string
		reason BogusReason
		want   uint16
	}{
		{desc: "expired", reason: ReasonSignatureExpired, want: 7},
		{desc: "DS mismatch is reported by Unbound as DNSKEY missing", reason: ReasonDSMismatch, want: 9},
		{desc: "unknown", reason: "", want: 0},
	}
	for _, tc := range tests {
		if got := tc.reason.EDE(); got != tc.want {
			t.Errorf("%s: EDE %d, want %d", tc.desc, got, tc.want)
		}
	}
	if SecurityBogus.String() != "bogus" || Security(0).String() != "indeterminate" {
		t.Errorf("Security strings: %s %s", SecurityBogus, Security(0))
	}
}
