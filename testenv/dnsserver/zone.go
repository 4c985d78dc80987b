package dnsserver

import (
	"crypto"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxZoneRecords bounds a zone so a mistaken catalogue entry cannot eat the
// test machine; real test zones hold a few dozen records.
const maxZoneRecords = 10000

// Keys is a zone's signing key pair. Every copy of a zone (one per server)
// shares one Keys, so the DS in the parent matches all of them.
type Keys struct {
	KSK     *dns.DNSKEY // flags 257, signs the DNSKEY RRset
	ZSK     *dns.DNSKEY // flags 256, signs everything else
	kskPriv crypto.Signer
	zskPriv crypto.Signer
}

// NewKeys generates an ECDSAP256SHA256 (algorithm 13) KSK and ZSK for origin.
func NewKeys(origin string) (*Keys, error) {
	origin = dns.CanonicalName(origin)
	k := &Keys{}
	var err error
	if k.KSK, k.kskPriv, err = newKey(origin, dns.ZONE|dns.SEP); err != nil {
		return nil, fmt.Errorf("ksk for %s: %w", origin, err)
	}
	if k.ZSK, k.zskPriv, err = newKey(origin, dns.ZONE); err != nil {
		return nil, fmt.Errorf("zsk for %s: %w", origin, err)
	}
	return k, nil
}

func newKey(origin string, flags uint16) (*dns.DNSKEY, crypto.Signer, error) {
	key := &dns.DNSKEY{
		Hdr:       dns.RR_Header{Name: origin, Rrtype: dns.TypeDNSKEY, Class: dns.ClassINET, Ttl: 3600},
		Flags:     flags,
		Protocol:  3,
		Algorithm: dns.ECDSAP256SHA256,
	}
	priv, err := key.Generate(256)
	if err != nil {
		return nil, nil, fmt.Errorf("generate: %w", err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, nil, errors.New("generated key is not a crypto.Signer")
	}
	return key, signer, nil
}

// DS is the SHA-256 DS record of the KSK, as the parent publishes it.
func (k *Keys) DS() *dns.DS {
	ds := k.KSK.ToDS(dns.SHA256)
	ds.Hdr.Ttl = 86400
	return ds
}

// SigFaultKind says how a signature is broken.
type SigFaultKind int

// The ways a zone's signatures can be broken on purpose.
const (
	SigExpired     SigFaultKind = iota + 1 // expiration in the past
	SigNotYetValid                         // inception in the future
	SigMissing                             // no RRSIG at all
)

// SigFault breaks the signatures of one RRset, of every RRset at one owner
// (Type 0), or of the whole zone (Name "").
type SigFault struct {
	Kind SigFaultKind
	Name string
	Type uint16
}

func (f SigFault) matches(name string, t uint16) bool {
	return (f.Name == "" || strings.EqualFold(dns.Fqdn(f.Name), name)) && (f.Type == 0 || f.Type == t)
}

// ZoneConfig describes one copy of a zone as one server serves it.
type ZoneConfig struct {
	Origin    string
	Records   []dns.RR
	Keys      *Keys // nil: unsigned
	SigFaults []SigFault
	AllowAXFR bool             // answer AXFR over TCP
	Now       func() time.Time // signing reference time; nil → time.Now
}

type rrKey struct {
	name string
	t    uint16
}

// Zone is one server's copy of a zone: its data, and when signed, the RRSIGs
// and the NSEC chain derived from it. It is safe for concurrent use; every
// change re-signs the whole zone, which takes a millisecond for test zones.
type Zone struct {
	origin    string
	keys      *Keys
	sigFaults []SigFault
	allowAXFR bool
	now       func() time.Time

	mu    sync.RWMutex
	data  map[string]map[uint16][]dns.RR // lower-case owner → type → RRset
	sigs  map[rrKey][]dns.RR
	nsecs []*dns.NSEC // canonical order
}

// ParseZone reads zone-file text ($ORIGIN, $TTL and relative names allowed)
// with origin as the default origin.
func ParseZone(origin, text string) ([]dns.RR, error) {
	zp := dns.NewZoneParser(strings.NewReader(text), dns.Fqdn(origin), "")
	var out []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		out = append(out, rr)
		if len(out) > maxZoneRecords {
			return nil, fmt.Errorf("zone %s: more than %d records", origin, maxZoneRecords)
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("zone %s: %w", origin, err)
	}
	return out, nil
}

// NewZone builds and, when Keys is set, signs a zone. The records must
// contain exactly one SOA, at the origin, and every record must be at or
// below the origin.
func NewZone(cfg ZoneConfig) (*Zone, error) {
	z := &Zone{
		origin:    dns.CanonicalName(cfg.Origin),
		keys:      cfg.Keys,
		sigFaults: cfg.SigFaults,
		allowAXFR: cfg.AllowAXFR,
		now:       cfg.Now,
		data:      map[string]map[uint16][]dns.RR{},
	}
	if z.now == nil {
		z.now = time.Now
	}
	for _, rr := range cfg.Records {
		if err := z.add(rr); err != nil {
			return nil, err
		}
	}
	if len(z.data[z.origin][dns.TypeSOA]) != 1 {
		return nil, fmt.Errorf("zone %s: want exactly one SOA at the apex, have %d", z.origin, len(z.data[z.origin][dns.TypeSOA]))
	}
	if z.keys != nil {
		z.data[z.origin][dns.TypeDNSKEY] = []dns.RR{dns.Copy(z.keys.KSK), dns.Copy(z.keys.ZSK)}
	}
	if err := z.sign(); err != nil {
		return nil, err
	}
	return z, nil
}

func (z *Zone) add(rr dns.RR) error {
	rr = dns.Copy(rr)
	h := rr.Header()
	h.Name = dns.CanonicalName(h.Name)
	if !dns.IsSubDomain(z.origin, h.Name) {
		return fmt.Errorf("zone %s: record %s is outside the zone", z.origin, h.Name)
	}
	if h.Rrtype == dns.TypeRRSIG || h.Rrtype == dns.TypeNSEC || (z.keys != nil && h.Rrtype == dns.TypeDNSKEY) {
		return nil // derived when signing
	}
	n := z.data[h.Name]
	if n == nil {
		n = map[uint16][]dns.RR{}
		z.data[h.Name] = n
	}
	for _, old := range n[h.Rrtype] {
		if dns.IsDuplicate(old, rr) {
			return nil
		}
	}
	n[h.Rrtype] = append(n[h.Rrtype], rr)
	return nil
}

// Origin is the zone's apex, lower-case FQDN.
func (z *Zone) Origin() string { return z.origin }

// Signed reports whether the zone carries DNSSEC signatures.
func (z *Zone) Signed() bool { return z.keys != nil }

// Serial is the SOA serial this copy serves.
func (z *Zone) Serial() uint32 {
	z.mu.RLock()
	defer z.mu.RUnlock()
	return z.soa().Serial
}

func (z *Zone) soa() *dns.SOA { return z.data[z.origin][dns.TypeSOA][0].(*dns.SOA) }

// SetRRset replaces the RRset name/rrtype with rrs (an empty rrs removes
// it), bumps the serial when bump is set and re-signs. It is the primitive
// that TXT propagation and RFC 2136 UPDATE build on.
func (z *Zone) SetRRset(name string, rrtype uint16, rrs []dns.RR, bump bool) error {
	name = dns.CanonicalName(name)
	if !dns.IsSubDomain(z.origin, name) {
		return fmt.Errorf("zone %s: %s is outside the zone", z.origin, name)
	}
	if rrtype == dns.TypeSOA || rrtype == dns.TypeRRSIG || rrtype == dns.TypeNSEC {
		return fmt.Errorf("zone %s: %s is managed by the zone itself", z.origin, dns.TypeToString[rrtype])
	}
	for _, rr := range rrs {
		if !strings.EqualFold(rr.Header().Name, name) || rr.Header().Rrtype != rrtype {
			return fmt.Errorf("zone %s: record %s does not belong to RRset %s/%s", z.origin, rr, name, dns.TypeToString[rrtype])
		}
	}
	z.mu.Lock()
	defer z.mu.Unlock()
	if n := z.data[name]; n != nil {
		delete(n, rrtype)
		if len(n) == 0 {
			delete(z.data, name)
		}
	}
	for _, rr := range rrs {
		if err := z.add(rr); err != nil {
			return err
		}
	}
	if bump {
		z.soa().Serial++
	}
	return z.sign()
}

// BumpSerial increments the SOA serial and re-signs.
func (z *Zone) BumpSerial() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.soa().Serial++
	return z.sign()
}

// Records returns every record of the zone, signatures and NSEC included,
// SOA first (the order AXFR needs, minus the closing SOA).
func (z *Zone) Records() []dns.RR {
	z.mu.RLock()
	defer z.mu.RUnlock()
	out := []dns.RR{dns.Copy(z.soa())}
	for _, name := range z.sortedNames() {
		for _, t := range sortedTypes(z.data[name]) {
			if name == z.origin && t == dns.TypeSOA {
				continue
			}
			for _, rr := range z.data[name][t] {
				out = append(out, dns.Copy(rr))
			}
		}
	}
	for _, n := range z.nsecs {
		out = append(out, dns.Copy(n))
	}
	for _, sigs := range z.sigs {
		for _, s := range sigs {
			out = append(out, dns.Copy(s))
		}
	}
	return out
}

func (z *Zone) sortedNames() []string {
	names := make([]string, 0, len(z.data))
	for n := range z.data {
		names = append(names, n)
	}
	slices.SortFunc(names, CanonicalCompare)
	return names
}

func sortedTypes(n map[uint16][]dns.RR) []uint16 {
	ts := make([]uint16, 0, len(n))
	for t := range n {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return ts
}

// cutAbove returns the highest delegation point at or above name (strictly
// below the apex), or "" when name is authoritative data of this zone.
func (z *Zone) cutAbove(name string) string {
	labels := dns.SplitDomainName(name)
	apexLabels := dns.CountLabel(z.origin)
	for k := apexLabels + 1; k <= len(labels); k++ {
		cand := dns.Fqdn(strings.Join(labels[len(labels)-k:], "."))
		if _, ok := z.data[cand][dns.TypeNS]; ok {
			return cand
		}
	}
	return ""
}

// hasDescendant reports whether some owner name lies strictly below name
// (name is then an empty non-terminal when it owns nothing itself).
func (z *Zone) hasDescendant(name string) bool {
	suffix := "." + name
	if name == "." {
		suffix = "."
	}
	for n := range z.data {
		if n != name && strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}

// negTTL is the negative-caching TTL of RFC 2308 §5: min(SOA TTL, MINIMUM).
func (z *Zone) negTTL() uint32 {
	soa := z.soa()
	return min(soa.Hdr.Ttl, soa.Minttl)
}

// sign recomputes the NSEC chain and every RRSIG. Called with mu held.
func (z *Zone) sign() error {
	z.sigs = map[rrKey][]dns.RR{}
	z.nsecs = nil
	if z.keys == nil {
		return nil
	}
	var names []string
	for _, n := range z.sortedNames() {
		if cut := z.cutAbove(n); cut != "" && cut != n {
			continue // glue and occluded data are not part of the chain
		}
		names = append(names, n)
	}
	ttl := z.negTTL()
	for i, n := range names {
		next := names[(i+1)%len(names)]
		types := []uint16{dns.TypeNSEC, dns.TypeRRSIG}
		delegation := n != z.origin && len(z.data[n][dns.TypeNS]) > 0
		for t := range z.data[n] {
			if delegation && t != dns.TypeNS && t != dns.TypeDS {
				continue
			}
			types = append(types, t)
		}
		slices.Sort(types)
		z.nsecs = append(z.nsecs, &dns.NSEC{
			Hdr:        dns.RR_Header{Name: n, Rrtype: dns.TypeNSEC, Class: dns.ClassINET, Ttl: ttl},
			NextDomain: next,
			TypeBitMap: types,
		})
	}
	now := z.now()
	for _, n := range names {
		delegation := n != z.origin && len(z.data[n][dns.TypeNS]) > 0
		for t, rrs := range z.data[n] {
			if delegation && t != dns.TypeDS {
				continue // the child signs its own NS; glue is never signed
			}
			if err := z.signSet(n, t, rrs, now); err != nil {
				return err
			}
		}
	}
	for _, nsec := range z.nsecs {
		if err := z.signSet(nsec.Hdr.Name, dns.TypeNSEC, []dns.RR{nsec}, now); err != nil {
			return err
		}
	}
	return nil
}

func (z *Zone) signSet(name string, t uint16, rrs []dns.RR, now time.Time) error {
	inception, expiration := now.Add(-time.Hour), now.Add(14*24*time.Hour)
	for _, f := range z.sigFaults {
		if !f.matches(name, t) {
			continue
		}
		switch f.Kind {
		case SigMissing:
			return nil
		case SigExpired:
			// Far enough in the past that no validator's clock-skew allowance
			// (Unbound's default is up to a day) rescues it.
			inception, expiration = now.Add(-30*24*time.Hour), now.Add(-3*24*time.Hour)
		case SigNotYetValid:
			inception, expiration = now.Add(3*24*time.Hour), now.Add(30*24*time.Hour)
		}
	}
	key, priv := z.keys.ZSK, z.keys.zskPriv
	if t == dns.TypeDNSKEY {
		key, priv = z.keys.KSK, z.keys.kskPriv
	}
	sig := &dns.RRSIG{
		Hdr:        dns.RR_Header{Name: name, Rrtype: dns.TypeRRSIG, Class: dns.ClassINET, Ttl: rrs[0].Header().Ttl},
		Algorithm:  key.Algorithm,
		KeyTag:     key.KeyTag(),
		SignerName: z.origin,
		Inception:  uint32(inception.Unix()),
		Expiration: uint32(expiration.Unix()),
	}
	if err := sig.Sign(priv, rrs); err != nil {
		return fmt.Errorf("zone %s: sign %s/%s: %w", z.origin, name, dns.TypeToString[t], err)
	}
	z.sigs[rrKey{name, t}] = []dns.RR{sig}
	return nil
}
