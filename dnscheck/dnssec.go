package dnscheck

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Security is a DNSSEC verdict in the terms of RFC 4033 §5 and RFC 4035 §4.3.
type Security int

const (
	// SecurityIndeterminate means nothing could be concluded: no trust anchor
	// for the first zone, malformed or inconsistent input, or a response that
	// carries nothing to validate (SERVFAIL, a referral). It is the zero value
	// so that an unset Validation never claims a verdict.
	SecurityIndeterminate Security = iota
	// SecurityInsecure means the data is provably not protected: a parent
	// proved that the zone has no DS, the zone uses only algorithms or digests
	// this validator does not support (RFC 4035 §5.2), or an NSEC3 opt-out
	// span or an over-long NSEC3 iteration count (RFC 9276) was met.
	SecurityInsecure
	// SecuritySecure means every signature from the trust anchor down to the
	// data verified at the given time.
	SecuritySecure
	// SecurityBogus means a link that should have been secure did not verify;
	// a validating resolver such as Let's Encrypt's answers SERVFAIL.
	SecurityBogus
)

// String returns the lower-case verdict name used in reports and JSON.
func (s Security) String() string {
	switch s {
	case SecurityInsecure:
		return "insecure"
	case SecuritySecure:
		return "secure"
	case SecurityBogus:
		return "bogus"
	default:
		return "indeterminate"
	}
}

// BogusReason says why a link of the chain or an answer failed validation. It
// is a stable machine-readable name (it ends up in finding evidence).
type BogusReason string

// Reasons. A few of them (unsupported_algorithm, unsupported_digest) also
// explain an Insecure verdict, because RFC 4035 §5.2 treats a zone signed only
// with unsupported algorithms as unsigned rather than bogus.
const (
	ReasonSignatureExpired     BogusReason = "signature_expired"
	ReasonSignatureNotYetValid BogusReason = "signature_not_yet_valid"
	ReasonDSMismatch           BogusReason = "ds_mismatch"
	ReasonUnsupportedAlgorithm BogusReason = "unsupported_algorithm"
	ReasonUnsupportedDigest    BogusReason = "unsupported_digest"
	ReasonMissingSignature     BogusReason = "missing_signature"
	ReasonBadSignature         BogusReason = "bad_signature"
	ReasonMissingDNSKEY        BogusReason = "missing_dnskey"
	ReasonBrokenDenial         BogusReason = "broken_denial"
	ReasonMissingDSProof       BogusReason = "missing_ds_proof"
)

// EDE returns the closest RFC 8914 Extended DNS Error code, so a finding can
// be matched against the "DNSSEC: Signature Expired"-style text Let's Encrypt
// shows (its Unbound reports EDE). Unbound may choose differently for denial
// failures; 0 means no code applies.
func (r BogusReason) EDE() uint16 {
	switch r {
	case ReasonUnsupportedAlgorithm:
		return dns.ExtendedErrorCodeUnsupportedDNSKEYAlgorithm
	case ReasonUnsupportedDigest:
		return dns.ExtendedErrorCodeUnsupportedDSDigestType
	case ReasonSignatureExpired:
		return dns.ExtendedErrorCodeSignatureExpired
	case ReasonSignatureNotYetValid:
		return dns.ExtendedErrorCodeSignatureNotYetValid
	case ReasonDSMismatch, ReasonMissingDNSKEY:
		return dns.ExtendedErrorCodeDNSKEYMissing
	case ReasonMissingSignature:
		return dns.ExtendedErrorCodeRRSIGsMissing
	case ReasonBrokenDenial, ReasonMissingDSProof:
		return dns.ExtendedErrorCodeNSECMissing
	case ReasonBadSignature:
		return dns.ExtendedErrorCodeDNSBogus
	default:
		return 0
	}
}

// ZoneLink is the raw DNSSEC material for one zone cut, gathered with DO=1
// and RD=0 from the authoritative servers during the delegation walk.
type ZoneLink struct {
	// Zone is the child apex (FQDN, "." for the root).
	Zone string
	// Parent is the parent zone; "" for the first link (and, for later
	// links, "" means the previous link's zone).
	Parent string
	// DS is the answer to "DS Zone" from a parent server: DS RRs and their RRSIGs.
	DS []dns.RR
	// NoDS is the authority section of the parent's NODATA (or referral) for
	// "DS Zone": NSEC/NSEC3 RRs and their RRSIGs, optionally the SOA.
	NoDS []dns.RR
	// DNSKEY is the answer to "DNSKEY Zone" from a child server: DNSKEYs and RRSIGs.
	DNSKEY []dns.RR
	// Server names who answered the DS question (at the parent), and
	// KeyServer who answered the DNSKEY question (at the zone), for messages.
	Server    string
	KeyServer string
}

// Validation is a DNSSEC verdict with the evidence a report needs.
type Validation struct {
	Security Security
	// Zone is where the chain broke — the zone whose signed data failed (the
	// parent for a bad DS RRset or a missing no-DS proof, the child for a
	// DNSKEY problem) — the zone proven insecure, or the last secure zone.
	Zone string
	// Reason is set when Security is Bogus, and when an unsupported algorithm
	// or digest made a zone Insecure.
	Reason BogusReason
	// Detail is human text: which RRset, which key tag, expired when.
	Detail string
	// Expires is the earliest time at which a signature this verdict relied
	// on stops being valid (zero if none): callers warn days ahead.
	Expires time.Time
	// Server is the server whose data decided the verdict, when known.
	Server string
	// Next is set by ValidateAnswer when a CNAME chain leaves the zone: the
	// target whose answer must be validated against its own zone's keys.
	Next string
}

// ChainKeys maps a zone (lower-case FQDN) to its validated DNSKEYs.
type ChainKeys map[string][]*dns.DNSKEY

// Bounds on hostile input. Every loop below is bounded by one of these or by
// the label count of a name (at most 127).
const (
	maxLinks          = 128 // a name has at most 127 labels below the root
	maxRRsetRRs       = 512 // RRs of one RRset considered
	maxSigsPerRRset   = 16  // RRSIGs over one RRset considered
	maxVerifications  = 32  // signature checks per RRset (KeyTrap, CVE-2023-50387)
	maxDS             = 32  // DS records considered per zone
	maxDNSKEYs        = 64  // DNSKEYs considered per zone
	maxCNAMEs         = 16  // CNAME hops followed inside one answer
	maxDenialRRsets   = 32  // NSEC/NSEC3 RRsets considered per response
	maxDenialRecords  = 64  // NSEC and NSEC3 records kept per response
	maxNSEC3Iters     = 150 // RFC 9276; Unbound 1.17's val-nsec3-keysize-iterations
	maxDetailListings = 8   // key tags / DS listed in one Detail
)

// supportedAlgorithm reports whether signatures with DNSKEY algorithm alg are
// verified: RSASHA256, RSASHA512, ECDSA P-256/P-384 and Ed25519.
func supportedAlgorithm(alg uint8) bool {
	switch alg {
	case dns.RSASHA256, dns.RSASHA512, dns.ECDSAP256SHA256, dns.ECDSAP384SHA384, dns.ED25519:
		return true
	}
	return false
}

// supportedDigest reports whether DS digest type d can be checked.
func supportedDigest(d uint8) bool {
	return d == dns.SHA1 || d == dns.SHA256 || d == dns.SHA384
}

// ValidateChain walks links from the trust anchor's zone (normally links[0].Zone
// == ".") downward, starting from the trust anchors (DS or DNSKEY RRs). It
// returns the validated DNSKEYs per secure zone and the chain verdict: Secure
// to the last link, Insecure from the first zone proven to have no DS (the
// NSEC/NSEC3 proof must verify), Bogus where a link breaks.
//
// A trust anchor for a zone further down replaces that zone's parent DS,
// as configured trust anchors do in Unbound.
func ValidateChain(anchors []dns.RR, links []ZoneLink, now time.Time) (ChainKeys, Validation) {
	if now.IsZero() {
		now = time.Now()
	}
	keys := ChainKeys{}
	var exp expiry
	done := func(v Validation) (ChainKeys, Validation) {
		v.Expires = exp.t
		return keys, v
	}
	if len(links) == 0 {
		return done(Validation{Detail: "no delegation links to validate"})
	}
	if len(links) > maxLinks {
		return done(Validation{Detail: fmt.Sprintf("%d delegation links: more than a name can have", len(links))})
	}
	ta := splitAnchors(anchors)
	prev := ""
	for i, l := range links {
		if !secValidName(l.Zone) {
			return done(Validation{Detail: fmt.Sprintf("link %d: invalid zone name %q", i, l.Zone), Server: l.Server})
		}
		zone := canonName(l.Zone)
		if i > 0 {
			parent := prev
			if l.Parent != "" {
				parent = canonName(l.Parent)
			}
			if parent != prev || !strictSubdomain(zone, prev) {
				return done(Validation{Zone: zone, Server: l.Server, Detail: fmt.Sprintf(
					"link %d: zone %s with parent %q does not follow zone %s", i, zone, l.Parent, prev)})
			}
		}
		var dsSet []*dns.DS
		var trusted []*dns.DNSKEY
		if a := ta[zone]; a != nil {
			trusted = a.keys
			if len(a.ds) > 0 {
				var why string
				var reason BogusReason
				dsSet, why, reason = usableDS(a.ds)
				if len(dsSet) == 0 && len(trusted) == 0 {
					return done(Validation{Security: SecurityInsecure, Zone: zone, Reason: reason, Server: l.Server,
						Detail: fmt.Sprintf("trust anchor for %s is unusable, so the zone is treated as unsigned: %s", zone, why)})
				}
			}
		} else if i == 0 {
			return done(Validation{Zone: zone, Server: l.Server, Detail: "no trust anchor for " + zone})
		} else {
			var v *Validation
			dsSet, v = validateDS(l, zone, prev, keys[prev], now, &exp)
			if v != nil {
				return done(*v)
			}
		}
		zk, v := validateDNSKEY(l, zone, dsSet, trusted, now, &exp)
		if v != nil {
			return done(*v)
		}
		keys[zone] = zk
		prev = zone
	}
	return done(Validation{Security: SecuritySecure, Zone: prev, Server: links[len(links)-1].Server,
		Detail: fmt.Sprintf("chain of trust verified from %s down to %s", canonName(links[0].Zone), prev)})
}

// anchorSet holds the trust anchors of one zone.
type anchorSet struct {
	ds   []*dns.DS
	keys []*dns.DNSKEY
}

func splitAnchors(anchors []dns.RR) map[string]*anchorSet {
	m := map[string]*anchorSet{}
	get := func(name string) *anchorSet {
		z := canonName(name)
		if m[z] == nil {
			m[z] = &anchorSet{}
		}
		return m[z]
	}
	for _, rr := range anchors {
		switch a := rr.(type) {
		case *dns.DS:
			if a != nil {
				s := get(a.Hdr.Name)
				s.ds = append(s.ds, a)
			}
		case *dns.DNSKEY:
			if a != nil {
				s := get(a.Hdr.Name)
				s.keys = append(s.keys, a)
			}
		}
	}
	return m
}

// validateDS checks the parent's DS RRset for zone (or its proof that there is
// none). It returns the DS records to match against the child's keys, or a
// final verdict (Bogus, or Insecure for a proven unsigned delegation).
func validateDS(l ZoneLink, zone, parent string, parentKeys []*dns.DNSKEY, now time.Time, exp *expiry) ([]*dns.DS, *Validation) {
	sets := groupRRsets(l.DS)
	ds := sets.get(zone, dns.TypeDS)
	if ds == nil || len(ds.rrs) == 0 {
		return nil, proveNoDS(l, zone, parent, parentKeys, now, exp)
	}
	sc := verifyRRset(ds, parent, parentKeys, now)
	if !sc.ok {
		return nil, &Validation{Security: SecurityBogus, Zone: parent, Reason: sc.reason, Server: l.Server,
			Detail: fmt.Sprintf("DS RRset for %s served by %s: %s", zone, secParentName(parent, l.Server), sc.detail)}
	}
	exp.add(sc.expires)
	var all []*dns.DS
	for _, rr := range ds.rrs {
		if d, ok := rr.(*dns.DS); ok && len(all) < maxDS {
			all = append(all, d)
		}
	}
	usable, why, reason := usableDS(all)
	if len(usable) == 0 {
		return nil, &Validation{Security: SecurityInsecure, Zone: zone, Reason: reason, Server: l.Server,
			Detail: fmt.Sprintf("%s: treated as unsigned (RFC 4035 §5.2): %s", zone, why)}
	}
	return usable, nil
}

// usableDS keeps the DS records whose algorithm and digest type are supported.
// When a SHA-256 or SHA-384 DS is present, SHA-1 DS records are ignored
// (RFC 4509 §3), so a stale SHA-1 DS cannot mask a broken SHA-256 one.
func usableDS(all []*dns.DS) ([]*dns.DS, string, BogusReason) {
	var usable []*dns.DS
	strong := false
	var badAlg, badDigest []string
	for _, d := range all {
		switch {
		case !supportedAlgorithm(d.Algorithm):
			badAlg = append(badAlg, dsString(d))
		case !supportedDigest(d.DigestType):
			badDigest = append(badDigest, dsString(d))
		default:
			usable = append(usable, d)
			if d.DigestType != dns.SHA1 {
				strong = true
			}
		}
	}
	if strong {
		usable = slices.DeleteFunc(usable, func(d *dns.DS) bool { return d.DigestType == dns.SHA1 })
	}
	if len(usable) > 0 {
		return usable, "", ""
	}
	if len(badAlg) > 0 {
		return nil, "every DS uses an unsupported DNSKEY algorithm (" + secList(badAlg) + "; supported 8, 10, 13, 14, 15)", ReasonUnsupportedAlgorithm
	}
	return nil, "every DS uses an unsupported digest type (" + secList(badDigest) + "; supported 1, 2, 4)", ReasonUnsupportedDigest
}

// validateDNSKEY matches the DS (or DNSKEY anchors) against the child's
// DNSKEY RRset and verifies that a matching key signed the set.
func validateDNSKEY(l ZoneLink, zone string, dsSet []*dns.DS, trusted []*dns.DNSKEY, now time.Time, exp *expiry) ([]*dns.DNSKEY, *Validation) {
	bogus := func(r BogusReason, format string, args ...any) *Validation {
		return &Validation{Security: SecurityBogus, Zone: zone, Reason: r, Server: l.KeyServer, Detail: fmt.Sprintf(format, args...)}
	}
	set := groupRRsets(l.DNSKEY).get(zone, dns.TypeDNSKEY)
	var served []*dns.DNSKEY
	if set != nil {
		for _, rr := range set.rrs {
			if k, ok := rr.(*dns.DNSKEY); ok && len(served) < maxDNSKEYs {
				served = append(served, k)
			}
		}
	}
	if len(served) == 0 {
		what := "its trust anchor"
		if len(dsSet) > 0 {
			what = "DS " + secList(secMap(dsSet, dsString)) + " at the parent"
		}
		return nil, bogus(ReasonMissingDNSKEY, "%s has %s, but %s returned no DNSKEY RRset for it", zone, what, secServerName(l.KeyServer))
	}

	var matched []*dns.DNSKEY
	for _, k := range served {
		if !zoneKey(k) {
			continue
		}
		for _, d := range dsSet {
			if dsMatches(d, k) {
				matched = append(matched, k)
				break
			}
		}
	}
	// A DNSKEY anchor is trusted as such; it must still have signed the set.
	for _, a := range trusted {
		if zoneKey(a) && supportedAlgorithm(a.Algorithm) {
			matched = append(matched, a)
		}
	}
	if len(matched) == 0 {
		if len(dsSet) == 0 && len(trusted) > 0 {
			return nil, &Validation{Security: SecurityInsecure, Zone: zone, Reason: ReasonUnsupportedAlgorithm, Server: l.KeyServer,
				Detail: fmt.Sprintf("%s: no DNSKEY trust anchor with a supported algorithm", zone)}
		}
		return nil, bogus(ReasonDSMismatch, "DS %s matches no DNSKEY of %s (DNSKEYs served by %s: %s)",
			secList(secMap(dsSet, dsString)), zone, secServerName(l.KeyServer), secList(secMap(served, keyString)))
	}

	// Say which of the three DNSKEY failures it is: no key matched (above), the
	// matching key did not sign the set, or its signature is not valid now.
	signedByMatched := false
	for _, s := range set.sigs {
		for _, k := range matched {
			if s.KeyTag == k.KeyTag() && s.Algorithm == k.Algorithm {
				signedByMatched = true
			}
		}
	}
	if !signedByMatched {
		return nil, bogus(ReasonMissingSignature, "the DS-matched key %s of %s did not sign the DNSKEY RRset (RRSIGs present: %s)",
			secList(secMap(matched, keyString)), zone, secList(secMap(set.sigs, sigString)))
	}
	sc := verifyRRset(set, zone, matched, now)
	if !sc.ok {
		return nil, bogus(sc.reason, "DNSKEY RRset of %s served by %s: %s", zone, secServerName(l.KeyServer), sc.detail)
	}
	exp.add(sc.expires)
	var out []*dns.DNSKEY
	for _, k := range served {
		// RFC 5011 §2.1: a revoked key must not validate anything but the DNSKEY set.
		if zoneKey(k) && k.Flags&dns.REVOKE == 0 {
			out = append(out, k)
		}
	}
	return out, nil
}

func zoneKey(k *dns.DNSKEY) bool {
	return k != nil && k.Flags&dns.ZONE != 0 && k.Protocol == 3
}

func dsMatches(d *dns.DS, k *dns.DNSKEY) bool {
	if d == nil || k == nil || d.Algorithm != k.Algorithm || d.KeyTag != k.KeyTag() {
		return false
	}
	kd := k.ToDS(d.DigestType)
	return kd != nil && strings.EqualFold(kd.Digest, d.Digest)
}

// proveNoDS checks the parent's proof that zone has no DS.
func proveNoDS(l ZoneLink, zone, parent string, parentKeys []*dns.DNSKEY, now time.Time, exp *expiry) *Validation {
	records := make([]dns.RR, 0, len(l.NoDS)+len(l.DS))
	records = append(records, l.NoDS...)
	records = append(records, l.DS...)
	den, v := collectDenial(groupRRsets(records), parent, parentKeys, now)
	if v != nil {
		v.Detail = fmt.Sprintf("proof that %s has no DS, served by %s: %s", zone, secParentName(parent, l.Server), v.Detail)
		v.Zone, v.Server = parent, l.Server
		return v
	}
	if den.empty() {
		return &Validation{Security: SecurityBogus, Zone: parent, Reason: ReasonMissingDSProof, Server: l.Server,
			Detail: fmt.Sprintf("%s returned no DS for %s and no NSEC/NSEC3 proving it has none", secParentName(parent, l.Server), zone)}
	}
	exp.add(den.expires)
	p := den.proveNoData(zone, dns.TypeDS)
	switch p.sec {
	case SecuritySecure, SecurityInsecure:
		detail := fmt.Sprintf("%s has no DS at %s: %s", zone, parent, p.detail)
		if groupRRsets(l.DNSKEY).get(zone, dns.TypeDNSKEY) != nil {
			detail += "; the zone serves DNSKEYs, but without a DS at the parent they are not used (island of security)"
		}
		return &Validation{Security: SecurityInsecure, Zone: zone, Server: l.Server, Detail: detail}
	default:
		return &Validation{Security: SecurityBogus, Zone: parent, Reason: ReasonMissingDSProof, Server: l.Server,
			Detail: fmt.Sprintf("%s returned no DS for %s, and its NSEC/NSEC3 do not prove there is none: %s",
				secParentName(parent, l.Server), zone, p.detail)}
	}
}

// ValidateAnswer validates one response for qname/qtype coming from zone
// `zone`: a positive RRset (following CNAME RRsets inside that zone, wildcard
// expansions included), or a negative answer (NXDOMAIN / NODATA) proven by
// NSEC or NSEC3 in the authority section. keys are the validated keys from
// ValidateChain; when zone has none there, the zone is insecure and so is
// the answer. DNAME synthesis is not validated.
func ValidateAnswer(keys ChainKeys, zone, qname string, qtype uint16, msg *dns.Msg, now time.Time) Validation {
	if msg == nil {
		return Validation{Detail: "no response to validate"}
	}
	if now.IsZero() {
		now = time.Now()
	}
	if !secValidName(zone) || !secValidName(qname) {
		return Validation{Detail: fmt.Sprintf("invalid zone %q or name %q", zone, qname)}
	}
	zone, qname = canonName(zone), canonName(qname)
	if !dns.IsSubDomain(zone, qname) {
		return Validation{Zone: zone, Detail: fmt.Sprintf("%s is not inside zone %s", qname, zone)}
	}
	zk := keys[zone]
	if len(zk) == 0 {
		return Validation{Security: SecurityInsecure, Zone: zone,
			Detail: fmt.Sprintf("zone %s has no validated DNSKEYs (insecure delegation, or outside the validated chain)", zone)}
	}
	if msg.Rcode != dns.RcodeSuccess && msg.Rcode != dns.RcodeNameError {
		return Validation{Zone: zone, Detail: fmt.Sprintf("rcode %s: nothing to validate", secRcodeName(msg.Rcode))}
	}

	var exp expiry
	answer := groupRRsets(msg.Answer)
	auth := groupRRsets(msg.Ns)
	// The authority section is verified once, however many wildcard
	// expansions the CNAME chain has.
	var den *denial
	var denFail *Validation
	denialOnce := func() (*denial, *Validation) {
		if den == nil && denFail == nil {
			den, denFail = collectDenial(auth, zone, zk, now)
			if den != nil {
				exp.add(den.expires)
			}
		}
		if denFail != nil {
			v := *denFail
			return nil, &v
		}
		return den, nil
	}
	var steps []string
	cur := qname
	for hop := 0; ; hop++ {
		if hop > maxCNAMEs {
			return Validation{Zone: zone, Detail: fmt.Sprintf("more than %d CNAMEs from %s", maxCNAMEs, qname)}
		}
		set := answer.get(cur, qtype)
		var cname *rrset
		if set == nil && qtype != dns.TypeCNAME {
			cname = answer.get(cur, dns.TypeCNAME)
		}
		if set == nil && cname == nil {
			break // negative answer for cur
		}
		if set == nil {
			set = cname
		}
		sc := verifyRRset(set, zone, zk, now)
		what := fmt.Sprintf("%s/%s", cur, secTypeName(set.rrtype))
		if !sc.ok {
			return Validation{Security: SecurityBogus, Zone: zone, Reason: sc.reason, Expires: exp.t,
				Detail: fmt.Sprintf("%s: %s", what, sc.detail)}
		}
		exp.add(sc.expires)
		if sc.wildcard != "" {
			// RFC 4035 §5.3.4: an expanded wildcard needs proof that no closer match exists.
			den, v := denialOnce()
			if v != nil {
				v.Zone, v.Expires = zone, exp.t
				v.Detail = fmt.Sprintf("%s (wildcard expansion): %s", what, v.Detail)
				return *v
			}
			p := den.proveWildcardExpansion(cur, sc.wildcard)
			if p.sec != SecuritySecure {
				p.v.Zone, p.v.Expires = zone, exp.t
				p.v.Detail = fmt.Sprintf("%s expanded from *.%s: %s", what, sc.wildcard, p.detail)
				return p.v
			}
			what += " (from *." + sc.wildcard + ", " + p.detail + ")"
		}
		steps = append(steps, what)
		if set.rrtype == qtype {
			if msg.Rcode == dns.RcodeNameError {
				return Validation{Zone: zone, Expires: exp.t, Detail: fmt.Sprintf("NXDOMAIN response that carries %s", what)}
			}
			return Validation{Security: SecuritySecure, Zone: zone, Expires: exp.t,
				Detail: "verified " + strings.Join(steps, " → ")}
		}
		target := ""
		if c, ok := set.rrs[0].(*dns.CNAME); ok && secValidName(c.Target) {
			target = canonName(c.Target)
		}
		if target == "" {
			return Validation{Zone: zone, Expires: exp.t, Detail: what + ": CNAME without a valid target"}
		}
		if !dns.IsSubDomain(zone, target) {
			return Validation{Security: SecuritySecure, Zone: zone, Expires: exp.t, Next: target,
				Detail: fmt.Sprintf("verified %s; %s is outside %s and must be validated against its own zone",
					strings.Join(steps, " → "), target, zone)}
		}
		cur = target
	}

	// Negative answer for cur.
	if v := checkReferral(auth, zone, cur); v != nil {
		v.Expires = exp.t
		return *v
	}
	if soa := auth.get(zone, dns.TypeSOA); soa != nil {
		sc := verifyRRset(soa, zone, zk, now)
		if !sc.ok {
			return Validation{Security: SecurityBogus, Zone: zone, Reason: sc.reason, Expires: exp.t,
				Detail: fmt.Sprintf("SOA of %s in the negative answer: %s", zone, sc.detail)}
		}
		exp.add(sc.expires)
	}
	den, v := denialOnce()
	if v != nil {
		v.Zone, v.Expires = zone, exp.t
		return *v
	}
	kind := "NODATA"
	if msg.Rcode == dns.RcodeNameError {
		kind = "NXDOMAIN"
	}
	prefix := fmt.Sprintf("%s for %s/%s", kind, cur, secTypeName(qtype))
	if len(steps) > 0 {
		prefix = "verified " + strings.Join(steps, " → ") + "; " + prefix
	}
	if den.empty() {
		return Validation{Security: SecurityBogus, Zone: zone, Reason: ReasonBrokenDenial, Expires: exp.t,
			Detail: prefix + ": no NSEC or NSEC3 records in the authority section"}
	}
	var p proof
	if msg.Rcode == dns.RcodeNameError {
		p = den.proveNXDomain(cur)
	} else {
		p = den.proveNoData(cur, qtype)
	}
	p.v.Zone, p.v.Expires = zone, exp.t
	p.v.Detail = prefix + ": " + p.detail
	return p.v
}

// checkReferral recognises a referral to a child zone, which is not an answer
// from zone at all: the child must be validated through ValidateChain.
func checkReferral(auth rrsets, zone, name string) *Validation {
	if auth.get(zone, dns.TypeSOA) != nil {
		return nil
	}
	for _, k := range auth.order {
		if k.rrtype == dns.TypeNS && k.name != zone && strictSubdomain(k.name, zone) && dns.IsSubDomain(k.name, name) {
			return &Validation{Zone: zone, Detail: fmt.Sprintf("referral from %s to %s: validate %s in the child zone", zone, k.name, name)}
		}
	}
	return nil
}

// --- RRsets and signatures ---------------------------------------------------

type rrsetKey struct {
	name   string
	rrtype uint16
}

// rrset is one RRset (owner lower-cased) and the RRSIGs covering it.
type rrset struct {
	name   string
	rrtype uint16
	rrs    []dns.RR
	sigs   []*dns.RRSIG
}

type rrsets struct {
	m     map[rrsetKey]*rrset
	order []rrsetKey
}

func (s rrsets) get(name string, t uint16) *rrset {
	return s.m[rrsetKey{canonName(name), t}]
}

// groupRRsets groups class-IN records by owner and type. Owners are
// lower-cased on copies, so 0x20-mixed case still forms one RRset.
func groupRRsets(rrs []dns.RR) rrsets {
	s := rrsets{m: map[rrsetKey]*rrset{}}
	add := func(k rrsetKey) *rrset {
		r := s.m[k]
		if r == nil {
			r = &rrset{name: k.name, rrtype: k.rrtype}
			s.m[k] = r
			s.order = append(s.order, k)
		}
		return r
	}
	for _, rr := range rrs {
		if rr == nil {
			continue
		}
		h := rr.Header()
		if h == nil || h.Class != dns.ClassINET || !secValidName(h.Name) {
			continue
		}
		name := canonName(h.Name)
		if sig, ok := rr.(*dns.RRSIG); ok {
			r := add(rrsetKey{name, sig.TypeCovered})
			if len(r.sigs) < maxSigsPerRRset {
				r.sigs = append(r.sigs, sig)
			}
			continue
		}
		r := add(rrsetKey{name, h.Rrtype})
		if len(r.rrs) < maxRRsetRRs {
			c := dns.Copy(rr)
			c.Header().Name = name
			r.rrs = append(r.rrs, c)
		}
	}
	return s
}

// sigCheck is the outcome of verifying one RRset.
type sigCheck struct {
	ok      bool
	expires time.Time // latest expiration among the signatures that verified
	// wildcard is the closest encloser ("w.example.com." for *.w.example.com.)
	// when the RRset was synthesised from a wildcard; "" otherwise.
	wildcard string
	reason   BogusReason
	detail   string
}

// Failure ranks: when no signature verifies, the most telling failure is reported.
var reasonRank = map[BogusReason]int{
	ReasonMissingSignature:     1,
	ReasonUnsupportedAlgorithm: 2,
	ReasonMissingDNSKEY:        3,
	ReasonBadSignature:         4,
	ReasonSignatureNotYetValid: 5,
	ReasonSignatureExpired:     6,
}

// verifyRRset verifies set with any of keys; signatures must be made by signer.
func verifyRRset(set *rrset, signer string, keys []*dns.DNSKEY, now time.Time) sigCheck {
	best := sigCheck{reason: ReasonMissingSignature,
		detail: fmt.Sprintf("no RRSIG by %s over %s/%s", signer, set.name, secTypeName(set.rrtype))}
	failed := false
	fail := func(r BogusReason, d string) {
		if !failed || reasonRank[r] > reasonRank[best.reason] {
			best.reason, best.detail, failed = r, d, true
		}
	}
	if len(set.rrs) == 0 {
		best.detail = fmt.Sprintf("RRSIG over %s/%s without the RRset", set.name, secTypeName(set.rrtype))
		return best
	}
	labels := dns.CountLabel(set.name)
	if strings.HasPrefix(set.name, "*.") {
		// RFC 4034 §3.1.3: the Labels field does not count a leading "*";
		// the wildcard owner itself is not an expansion.
		labels--
	}
	var res sigCheck
	checks := 0
	for _, s := range set.sigs {
		if canonName(s.SignerName) != signer {
			fail(ReasonMissingSignature, fmt.Sprintf("%s/%s is signed by %s, not by the zone %s", set.name, secTypeName(set.rrtype), s.SignerName, signer))
			continue
		}
		if int(s.Labels) > labels {
			fail(ReasonBadSignature, fmt.Sprintf("RRSIG %s has labels %d, more than the owner %s has", sigString(s), s.Labels, set.name))
			continue
		}
		if !supportedAlgorithm(s.Algorithm) {
			fail(ReasonUnsupportedAlgorithm, fmt.Sprintf("RRSIG %s uses unsupported algorithm %d", sigString(s), s.Algorithm))
			continue
		}
		found := false
		for _, k := range keys {
			if k == nil || k.Algorithm != s.Algorithm || k.KeyTag() != s.KeyTag {
				continue
			}
			found = true
			if checks >= maxVerifications {
				break
			}
			checks++
			if err := s.Verify(k, set.rrs); err != nil {
				fail(ReasonBadSignature, fmt.Sprintf("RRSIG %s does not verify with key %s: %v", sigString(s), keyString(k), err))
				continue
			}
			if !s.ValidityPeriod(now) {
				inc, exp := serialTime(s.Inception, now), serialTime(s.Expiration, now)
				if now.Before(inc) {
					fail(ReasonSignatureNotYetValid, fmt.Sprintf("RRSIG %s is not valid before %s (now %s)", sigString(s), secStamp(inc), secStamp(now)))
				} else {
					fail(ReasonSignatureExpired, fmt.Sprintf("RRSIG %s expired %s (now %s)", sigString(s), secStamp(exp), secStamp(now)))
				}
				continue
			}
			e := serialTime(s.Expiration, now)
			if !res.ok || e.After(res.expires) {
				res.expires = e
			}
			if int(s.Labels) < labels {
				// Expanded from *.<last Labels labels of the owner>.
				if !res.ok || res.wildcard != "" {
					res.wildcard = lastLabels(set.name, int(s.Labels))
				}
			} else {
				res.wildcard = ""
			}
			res.ok = true
			break
		}
		if !found {
			fail(ReasonMissingDNSKEY, fmt.Sprintf("RRSIG %s was made by key tag %d, which is not among the DNSKEYs of %s (%s)",
				sigString(s), s.KeyTag, signer, secList(secMap(keys, keyString))))
		}
	}
	if res.ok {
		return res
	}
	return best
}

// expiry tracks the earliest signature expiry a verdict relies on.
type expiry struct{ t time.Time }

func (e *expiry) add(t time.Time) {
	if !t.IsZero() && (e.t.IsZero() || t.Before(e.t)) {
		e.t = t
	}
}

// serialTime turns an RRSIG time field into the absolute time closest to now
// (RFC 4034 §3.1.5 serial arithmetic, as RRSIG.ValidityPeriod does).
func serialTime(v uint32, now time.Time) time.Time {
	n := now.Unix()
	return time.Unix(n+int64(int32(v-uint32(n))), 0).UTC()
}

// --- Denial of existence -------------------------------------------------------

// denial holds the verified NSEC and NSEC3 records of one response.
type denial struct {
	zone    string
	nsec    []*dns.NSEC
	nsec3   []*dns.NSEC3
	expires time.Time
	// NSEC3 parameters taken from the first usable record; others are ignored (RFC 5155 §7.2).
	hashes map[string]string
	iters  uint16
	salt   string
	// insecure is set when the NSEC3 parameters make the proof unusable
	// (RFC 9276 iteration limit): the answer is treated as insecure.
	insecure string
}

func (d *denial) empty() bool { return len(d.nsec) == 0 && len(d.nsec3) == 0 && d.insecure == "" }

// proof is the outcome of a denial check.
type proof struct {
	sec    Security
	detail string
	v      Validation
}

func proved(sec Security, detail string) proof {
	return proof{sec: sec, detail: detail, v: Validation{Security: sec}}
}

func broken(detail string) proof {
	return proof{sec: SecurityBogus, detail: detail, v: Validation{Security: SecurityBogus, Reason: ReasonBrokenDenial}}
}

// collectDenial verifies every NSEC and NSEC3 RRset in sets that belongs to
// zone. Like Unbound, a denial RRset whose signature fails makes the whole
// response bogus, with that signature's reason.
func collectDenial(sets rrsets, zone string, keys []*dns.DNSKEY, now time.Time) (*denial, *Validation) {
	d := &denial{zone: zone, hashes: map[string]string{}}
	var exp expiry
	seen := 0
	for _, k := range sets.order {
		if k.rrtype != dns.TypeNSEC && k.rrtype != dns.TypeNSEC3 {
			continue
		}
		if !dns.IsSubDomain(zone, k.name) {
			continue
		}
		if seen++; seen > maxDenialRRsets {
			break
		}
		set := sets.m[k]
		sc := verifyRRset(set, zone, keys, now)
		if !sc.ok {
			return nil, &Validation{Security: SecurityBogus, Reason: sc.reason,
				Detail: fmt.Sprintf("%s %s: %s", secTypeName(k.rrtype), k.name, sc.detail)}
		}
		if sc.wildcard != "" {
			continue // a denial record is never synthesised from a wildcard
		}
		exp.add(sc.expires)
		for _, rr := range set.rrs {
			switch r := rr.(type) {
			case *dns.NSEC:
				if secValidName(r.NextDomain) && len(d.nsec) < maxDenialRecords {
					d.nsec = append(d.nsec, r)
				}
			case *dns.NSEC3:
				if len(d.nsec3) < maxDenialRecords {
					d.addNSEC3(r)
				}
			}
		}
	}
	d.expires = exp.t
	return d, nil
}

func (d *denial) addNSEC3(r *dns.NSEC3) {
	// RFC 5155 §8.2: ignore unknown hash algorithms and flags other than opt-out.
	if r.Hash != dns.SHA1 || r.Flags&^1 != 0 {
		return
	}
	// The owner must be <hash>.<zone>: exactly one label below the apex.
	if dns.CountLabel(r.Hdr.Name) != dns.CountLabel(d.zone)+1 {
		return
	}
	if len(d.nsec3) == 0 && d.insecure == "" {
		if r.Iterations > maxNSEC3Iters {
			d.insecure = fmt.Sprintf("NSEC3 %s uses %d iterations, more than %d (RFC 9276): treated as insecure",
				r.Hdr.Name, r.Iterations, maxNSEC3Iters)
			return
		}
		d.iters, d.salt = r.Iterations, strings.ToUpper(r.Salt)
	} else if d.insecure != "" || r.Iterations != d.iters || !strings.EqualFold(r.Salt, d.salt) {
		return
	}
	d.nsec3 = append(d.nsec3, r)
}

// --- NSEC (RFC 4035 §5.4) ---

// nsecCovers reports whether n proves name does not exist: owner < name < next
// in canonical order, the last NSEC wrapping around to the apex.
func nsecCovers(n *dns.NSEC, name string) bool {
	o, ok1 := canonicalCompare(n.Hdr.Name, name)
	x, ok2 := canonicalCompare(name, n.NextDomain)
	w, ok3 := canonicalCompare(n.NextDomain, n.Hdr.Name)
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	return o < 0 && (x < 0 || w <= 0)
}

// nsecFromAbove reports whether n was made on the parent side of a
// delegation (or at a DNAME) above name, so it proves nothing below it.
func nsecFromAbove(types []uint16, owner, name string) bool {
	if !strictSubdomain(name, canonName(owner)) {
		return false
	}
	return (slices.Contains(types, dns.TypeNS) && !slices.Contains(types, dns.TypeSOA)) ||
		slices.Contains(types, dns.TypeDNAME)
}

func (d *denial) nsecCovering(name string) *dns.NSEC {
	for _, n := range d.nsec {
		if nsecCovers(n, name) && !nsecFromAbove(n.TypeBitMap, n.Hdr.Name, name) {
			return n
		}
	}
	return nil
}

func (d *denial) nsecAt(name string) *dns.NSEC {
	for _, n := range d.nsec {
		if canonName(n.Hdr.Name) == name {
			return n
		}
	}
	return nil
}

// nsecCloseEncloser is the closest encloser implied by a covering NSEC: the
// longest common ancestor of name with the NSEC's owner or next name.
func nsecClosestEncloser(n *dns.NSEC, name string) string {
	a := dns.CompareDomainName(name, n.Hdr.Name)
	b := dns.CompareDomainName(name, n.NextDomain)
	return lastLabels(name, max(a, b))
}

func nsecString(n *dns.NSEC) string {
	return fmt.Sprintf("NSEC %s→%s", canonName(n.Hdr.Name), canonName(n.NextDomain))
}

// typesOK checks a bitmap at an existing name for a NODATA proof.
func typesOK(types []uint16, qtype uint16, apex bool) string {
	switch {
	case slices.Contains(types, qtype):
		return "lists " + secTypeName(qtype) + " as present"
	case qtype != dns.TypeCNAME && slices.Contains(types, dns.TypeCNAME):
		return "lists a CNAME, which the answer should have carried"
	case qtype == dns.TypeDS && slices.Contains(types, dns.TypeSOA) && !apex:
		return "comes from the child zone's apex (SOA present), not from the parent"
	case qtype == dns.TypeDS && !slices.Contains(types, dns.TypeNS) && !apex:
		return "has no NS: the name is not a delegation"
	case qtype != dns.TypeDS && slices.Contains(types, dns.TypeNS) && !slices.Contains(types, dns.TypeSOA) && !apex:
		return "is a delegation point: the data lives in the child zone"
	}
	return ""
}

func (d *denial) proveNXDomain(name string) proof {
	if len(d.nsec) == 0 {
		return d.proveNXDomain3(name)
	}
	if m := d.nsecAt(name); m != nil {
		return broken(fmt.Sprintf("%s shows that %s exists", nsecString(m), name))
	}
	c := d.nsecCovering(name)
	if c == nil {
		return broken(fmt.Sprintf("no NSEC covers %s (have %s)", name, secList(secMap(d.nsec, nsecString))))
	}
	ce := nsecClosestEncloser(c, name)
	if !dns.IsSubDomain(d.zone, ce) {
		ce = d.zone
	}
	wc := wildcardAt(ce)
	if m := d.nsecAt(wc); m != nil {
		return broken(fmt.Sprintf("%s shows that wildcard %s exists, so %s should have been answered", nsecString(m), wc, name))
	}
	w := d.nsecCovering(wc)
	if w == nil {
		return broken(fmt.Sprintf("%s covers the name, but no NSEC proves that wildcard %s does not exist", nsecString(c), wc))
	}
	return proved(SecuritySecure, fmt.Sprintf("proven by %s (name) and %s (wildcard %s)", nsecString(c), nsecString(w), wc))
}

func (d *denial) proveNoData(name string, qtype uint16) proof {
	if len(d.nsec) == 0 {
		return d.proveNoData3(name, qtype)
	}
	apex := name == d.zone
	if m := d.nsecAt(name); m != nil {
		if bad := typesOK(m.TypeBitMap, qtype, apex); bad != "" {
			return broken(fmt.Sprintf("%s %s", nsecString(m), bad))
		}
		return proved(SecuritySecure, fmt.Sprintf("proven by %s, whose type bitmap lacks %s", nsecString(m), secTypeName(qtype)))
	}
	c := d.nsecCovering(name)
	if c == nil {
		return broken(fmt.Sprintf("no NSEC matches or covers %s (have %s)", name, secList(secMap(d.nsec, nsecString))))
	}
	// Empty non-terminal: the next name lies below name (RFC 7129 §3.1).
	if strictSubdomain(canonName(c.NextDomain), name) {
		return proved(SecuritySecure, fmt.Sprintf("%s is an empty non-terminal (%s)", name, nsecString(c)))
	}
	ce := nsecClosestEncloser(c, name)
	wc := wildcardAt(ce)
	if m := d.nsecAt(wc); m != nil && qtype != dns.TypeDS {
		if bad := typesOK(m.TypeBitMap, qtype, false); bad != "" {
			return broken(fmt.Sprintf("wildcard %s %s", nsecString(m), bad))
		}
		return proved(SecuritySecure, fmt.Sprintf("wildcard NODATA: %s covers the name, %s lacks %s", nsecString(c), nsecString(m), secTypeName(qtype)))
	}
	return broken(fmt.Sprintf("%s covers %s: the name does not exist, yet the response claims NODATA", nsecString(c), name))
}

// proveWildcardExpansion checks that no closer match than *.ce exists for name.
func (d *denial) proveWildcardExpansion(name, ce string) proof {
	if d.insecure != "" && len(d.nsec) == 0 {
		return proved(SecurityInsecure, d.insecure)
	}
	if len(d.nsec) > 0 {
		c := d.nsecCovering(name)
		if c == nil {
			return broken(fmt.Sprintf("no NSEC proves that %s itself does not exist", name))
		}
		return proved(SecuritySecure, "no closer match by "+nsecString(c))
	}
	if len(d.nsec3) == 0 {
		return broken("no NSEC or NSEC3 proves that no closer match exists")
	}
	nc := nextCloser(name, ce)
	c := d.nsec3Covering(nc)
	if c == nil {
		return broken(fmt.Sprintf("no NSEC3 covers the next closer name %s", nc))
	}
	if c.Flags&1 != 0 {
		return proved(SecurityInsecure, fmt.Sprintf("next closer %s is in an opt-out span (%s)", nc, nsec3String(c)))
	}
	return proved(SecuritySecure, fmt.Sprintf("no closer match: %s covers %s", nsec3String(c), nc))
}

// --- NSEC3 (RFC 5155 §8) ---

func (d *denial) hash(name string) string {
	name = canonName(name)
	if h, ok := d.hashes[name]; ok {
		return h
	}
	h := dns.HashName(name, dns.SHA1, d.iters, d.salt)
	d.hashes[name] = h
	return h
}

// ownerHash returns the first label of an NSEC3 owner, upper-cased.
func ownerHash(r *dns.NSEC3) string {
	name := r.Hdr.Name
	if i := strings.IndexByte(name, '.'); i > 0 {
		return strings.ToUpper(name[:i])
	}
	return ""
}

func (d *denial) nsec3Matching(name string) *dns.NSEC3 {
	h := d.hash(name)
	if h == "" {
		return nil
	}
	for _, r := range d.nsec3 {
		if ownerHash(r) == h {
			return r
		}
	}
	return nil
}

// nsec3Covering finds an NSEC3 whose hash interval strictly contains name's
// hash. Base32hex preserves byte order, so hashes compare as strings.
func (d *denial) nsec3Covering(name string) *dns.NSEC3 {
	h := d.hash(name)
	if h == "" {
		return nil
	}
	for _, r := range d.nsec3 {
		o, n := ownerHash(r), strings.ToUpper(r.NextDomain)
		if o == "" || h == o {
			continue
		}
		if (o < h && h < n) || (n <= o && (h > o || h < n)) {
			return r
		}
	}
	return nil
}

func nsec3String(r *dns.NSEC3) string {
	return fmt.Sprintf("NSEC3 %s→%s", ownerHash(r), strings.ToUpper(r.NextDomain))
}

// nextCloser is the name one label longer than ce on the way to name.
func nextCloser(name, ce string) string {
	return lastLabels(name, dns.CountLabel(ce)+1)
}

// closestEncloser runs the closest encloser proof for name (RFC 5155 §8.3):
// the longest existing ancestor, and the NSEC3 covering the next closer name.
func (d *denial) closestEncloser(name string) (ce string, ceRec, ncRec *dns.NSEC3, why string) {
	n := dns.CountLabel(name)
	for l := n - 1; l >= dns.CountLabel(d.zone); l-- {
		cand := lastLabels(name, l)
		m := d.nsec3Matching(cand)
		if m == nil {
			continue
		}
		// An encloser that is a delegation (NS without SOA) or a DNAME proves
		// nothing about names below it: they are not in this zone's data.
		if (slices.Contains(m.TypeBitMap, dns.TypeNS) && !slices.Contains(m.TypeBitMap, dns.TypeSOA)) ||
			slices.Contains(m.TypeBitMap, dns.TypeDNAME) {
			return "", nil, nil, fmt.Sprintf("closest encloser %s is a delegation or DNAME (%s)", cand, nsec3String(m))
		}
		nc := nextCloser(name, cand)
		c := d.nsec3Covering(nc)
		if c == nil {
			return "", nil, nil, fmt.Sprintf("closest encloser %s found, but no NSEC3 covers the next closer name %s", cand, nc)
		}
		return cand, m, c, ""
	}
	return "", nil, nil, fmt.Sprintf("no NSEC3 matches any ancestor of %s", name)
}

func (d *denial) proveNXDomain3(name string) proof {
	if d.insecure != "" {
		return proved(SecurityInsecure, d.insecure)
	}
	if m := d.nsec3Matching(name); m != nil {
		return broken(fmt.Sprintf("%s matches %s: the name exists", nsec3String(m), name))
	}
	ce, ceRec, nc, why := d.closestEncloser(name)
	if ce == "" {
		return broken(why)
	}
	wc := wildcardAt(ce)
	if m := d.nsec3Matching(wc); m != nil {
		return broken(fmt.Sprintf("%s matches wildcard %s, so %s should have been answered", nsec3String(m), wc, name))
	}
	w := d.nsec3Covering(wc)
	if nc.Flags&1 != 0 {
		// Unbound treats an opt-out NXDOMAIN as insecure: an unsigned delegation may hide there.
		return proved(SecurityInsecure, fmt.Sprintf("next closer %s is in an opt-out span (%s): insecure", nextCloser(name, ce), nsec3String(nc)))
	}
	if w == nil {
		return broken(fmt.Sprintf("closest encloser %s proven, but no NSEC3 covers wildcard %s", ce, wc))
	}
	return proved(SecuritySecure, fmt.Sprintf("proven by %s (closest encloser %s), %s (next closer), %s (wildcard)",
		nsec3String(ceRec), ce, nsec3String(nc), nsec3String(w)))
}

func (d *denial) proveNoData3(name string, qtype uint16) proof {
	if d.insecure != "" {
		return proved(SecurityInsecure, d.insecure)
	}
	if len(d.nsec3) == 0 {
		return broken("no usable NSEC3 records")
	}
	if m := d.nsec3Matching(name); m != nil {
		if bad := typesOK(m.TypeBitMap, qtype, name == d.zone); bad != "" {
			return broken(fmt.Sprintf("%s for %s %s", nsec3String(m), name, bad))
		}
		return proved(SecuritySecure, fmt.Sprintf("proven by %s, whose type bitmap lacks %s", nsec3String(m), secTypeName(qtype)))
	}
	ce, _, nc, why := d.closestEncloser(name)
	if ce == "" {
		return broken(why)
	}
	if qtype == dns.TypeDS {
		if nc.Flags&1 != 0 {
			// RFC 5155 §8.6: an unsigned delegation inside an opt-out span.
			return proved(SecurityInsecure, fmt.Sprintf("%s is in an opt-out span (%s)", name, nsec3String(nc)))
		}
		return broken(fmt.Sprintf("%s covers %s without opt-out: the delegation does not exist", nsec3String(nc), name))
	}
	wc := wildcardAt(ce)
	if m := d.nsec3Matching(wc); m != nil {
		if bad := typesOK(m.TypeBitMap, qtype, false); bad != "" {
			return broken(fmt.Sprintf("wildcard %s %s", wc, bad))
		}
		return proved(SecuritySecure, fmt.Sprintf("wildcard NODATA: %s matches %s and lacks %s", nsec3String(m), wc, secTypeName(qtype)))
	}
	return broken(fmt.Sprintf("no NSEC3 matches %s: %s covers it, so the name does not exist, yet the response claims NODATA",
		name, nsec3String(nc)))
}

// --- names -------------------------------------------------------------------

func secValidName(s string) bool {
	if s == "" || len(s) > 1024 {
		return false
	}
	_, ok := dns.IsDomainName(s)
	return ok
}

func canonName(s string) string { return dns.CanonicalName(s) }

// strictSubdomain reports whether child is below parent (and not equal to it).
func strictSubdomain(child, parent string) bool {
	return child != parent && dns.IsSubDomain(parent, child)
}

// lastLabels returns the ancestor of name made of its last n labels.
func lastLabels(name string, n int) string {
	idx := dns.Split(name)
	if n <= 0 || len(idx) == 0 {
		return "."
	}
	if n >= len(idx) {
		return name
	}
	return name[idx[len(idx)-n]:]
}

// wireLabels returns the labels of name in wire form with ASCII lower-cased,
// so escapes such as \065 compare as the octets they stand for.
func wireLabels(name string) ([][]byte, bool) {
	buf := make([]byte, 256)
	n, err := dns.PackDomainName(dns.Fqdn(name), buf, 0, nil, false)
	if err != nil {
		return nil, false
	}
	buf = buf[:n]
	var labels [][]byte
	for off := 0; off < len(buf) && buf[off] != 0; {
		l := int(buf[off])
		if off+1+l > len(buf) {
			return nil, false
		}
		lab := buf[off+1 : off+1+l]
		for i, c := range lab {
			if c >= 'A' && c <= 'Z' {
				lab[i] = c + ('a' - 'A')
			}
		}
		labels = append(labels, lab)
		off += 1 + l
	}
	return labels, true
}

// canonicalCompare orders two names as RFC 4034 §6.1 does: label by label
// from the root, each label as lower-cased octets, an absent label first.
func canonicalCompare(a, b string) (int, bool) {
	la, ok1 := wireLabels(a)
	lb, ok2 := wireLabels(b)
	if !ok1 || !ok2 {
		return 0, false
	}
	for i := 1; i <= len(la) && i <= len(lb); i++ {
		if c := strings.Compare(string(la[len(la)-i]), string(lb[len(lb)-i])); c != 0 {
			return c, true
		}
	}
	switch {
	case len(la) < len(lb):
		return -1, true
	case len(la) > len(lb):
		return 1, true
	}
	return 0, true
}

// --- formatting ----------------------------------------------------------------

func dsString(d *dns.DS) string {
	return fmt.Sprintf("%d/%d/%d", d.KeyTag, d.Algorithm, d.DigestType)
}

func keyString(k *dns.DNSKEY) string {
	if k == nil {
		return "?"
	}
	return fmt.Sprintf("%d/%d flags %d", k.KeyTag(), k.Algorithm, k.Flags)
}

func sigString(s *dns.RRSIG) string {
	return fmt.Sprintf("%s/%s %d/%d", canonName(s.Hdr.Name), secTypeName(s.TypeCovered), s.KeyTag, s.Algorithm)
}

func secTypeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return fmt.Sprintf("TYPE%d", t)
}

func secRcodeName(r int) string {
	if s, ok := dns.RcodeToString[r]; ok {
		return s
	}
	return fmt.Sprintf("RCODE%d", r)
}

func secStamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func secServerName(s string) string {
	if s == "" {
		return "the server"
	}
	return s
}

func secParentName(parent, server string) string {
	if server == "" {
		return parent
	}
	return parent + " (" + server + ")"
}

func secMap[T any](in []T, f func(T) string) []string {
	out := make([]string, 0, min(len(in), maxDetailListings+1))
	for i, v := range in {
		if i == maxDetailListings {
			out = append(out, fmt.Sprintf("and %d more", len(in)-i))
			break
		}
		out = append(out, f(v))
	}
	return out
}

func secList(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// wildcardAt is the wildcard name directly below encloser (an FQDN): "*."
// below the root, "*.example.com." below example.com.
func wildcardAt(encloser string) string {
	if encloser == "." {
		return "*."
	}
	return "*." + encloser
}
