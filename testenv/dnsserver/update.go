package dnsserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"
	"go.uber.org/zap"
)

// Bounds on what one UPDATE may do (RFC 2136 leaves them to the server).
const (
	// maxUpdateRRs bounds the prerequisite plus update sections; lego sends
	// two records, cert-manager's rfc2136 solver one or two.
	maxUpdateRRs = 64
	// maxTXTBytes bounds the character-strings of one TXT record added by
	// UPDATE; a dns-01 value is 43 bytes.
	maxTXTBytes = 2048
	// maxRRsetByUpdate bounds a TXT RRset grown by UPDATE: a client that
	// never cleans up is refused before the zone grows without end.
	maxRRsetByUpdate = 64
	// maxPendingReplication bounds the change sets queued for one lagging
	// secondary; an UPDATE waits (within its own deadline) when it is full.
	maxPendingReplication = 256
	// maxLag bounds a replication lag, so a typo cannot park data forever.
	maxLag = 10 * time.Minute
	// tsigFudge is the fudge of signed replies, as BIND uses.
	tsigFudge = 300
	// replicationWait bounds how long an UPDATE waits for room in a full
	// replication queue before it is refused.
	replicationWait = 5 * time.Second
)

// TSIGKey is a shared secret that signs UPDATE messages (RFC 8945).
type TSIGKey struct {
	Name      string // key name, e.g. "acmediag-testenv-update."
	Algorithm string // e.g. dns.HmacSHA256 ("hmac-sha256.")
	Secret    string // base64
}

// tsigAlgorithms are the HMAC algorithms RFC 8945 §6 lists (MD5 left out,
// as modern servers do).
var tsigAlgorithms = map[string]func() hash.Hash{
	dns.HmacSHA1: sha1.New, dns.HmacSHA224: sha256.New224, dns.HmacSHA256: sha256.New,
	dns.HmacSHA384: sha512.New384, dns.HmacSHA512: sha512.New,
}

func (k TSIGKey) canonical() (TSIGKey, error) {
	k.Name = dns.CanonicalName(k.Name)
	k.Algorithm = dns.CanonicalName(k.Algorithm)
	if _, ok := dns.IsDomainName(k.Name); !ok || k.Name == "." {
		return k, fmt.Errorf("TSIG key name %q is not a domain name", k.Name)
	}
	if tsigAlgorithms[k.Algorithm] == nil {
		return k, fmt.Errorf("TSIG key %s: unsupported algorithm %q", k.Name, k.Algorithm)
	}
	raw, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil || len(raw) == 0 {
		return k, fmt.Errorf("TSIG key %s: secret is not base64", k.Name)
	}
	return k, nil
}

// Secondary is another server's copy of a zone that receives the changes
// an UPDATE makes on the primary, as a secondary fed by IXFR would.
type Secondary struct {
	Name string // for logs and SetReplicationLag, e.g. the server's id
	Zone *Zone
	Lag  time.Duration // delay before a change reaches it; 0 = before the UPDATE is answered
}

// rrsetChange is one RRset's new content after an UPDATE (nil rrs: gone).
type rrsetChange struct {
	name   string
	rrtype uint16
	rrs    []dns.RR
}

// changeSet is what one UPDATE changed, with the serial it produced.
type changeSet struct {
	changes []rrsetChange
	serial  uint32
	due     time.Time
}

// replica feeds one secondary, in order: immediately when it has no lag
// and nothing pending, otherwise through a queue drained by one goroutine.
type replica struct {
	name  string
	zone  *Zone
	queue chan changeSet

	mu      sync.Mutex // guards lag, pending and applying to zone in order
	lag     time.Duration
	pending int // change sets queued or being applied
}

// updateZone is the UPDATE configuration of one zone on its primary.
type updateZone struct {
	replicas []*replica
}

// EnsureTSIGKey adds k to the keys this server accepts unless a key of the
// same name is already there, and returns the key the server now holds
// under that name: concurrent callers agree on one secret.
func (s *Server) EnsureTSIGKey(k TSIGKey) (TSIGKey, error) {
	k, err := k.canonical()
	if err != nil {
		return TSIGKey{}, fmt.Errorf("dns server %s: %w", s.cfg.Name, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.tsigKeys[k.Name]; ok {
		return old, nil
	}
	s.tsigKeys[k.Name] = k
	return k, nil
}

// AllowUpdate makes this server the primary of origin: it accepts
// TSIG-signed RFC 2136 UPDATEs of TXT RRsets in the zone and passes every
// change on to secondaries. A second call for the same origin changes
// nothing (the first configuration stays, queues included).
func (s *Server) AllowUpdate(origin string, secondaries ...Secondary) error {
	origin = dns.CanonicalName(origin)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.zones[origin] == nil {
		return fmt.Errorf("dns server %s: not authoritative for %s", s.cfg.Name, origin)
	}
	if s.updates[origin] != nil {
		return nil
	}
	uz := &updateZone{}
	for _, sec := range secondaries {
		if sec.Zone == nil || sec.Zone.Origin() != origin {
			return fmt.Errorf("dns server %s: secondary %s has no copy of %s", s.cfg.Name, sec.Name, origin)
		}
		if sec.Lag < 0 || sec.Lag > maxLag {
			return fmt.Errorf("dns server %s: secondary %s: lag %s outside [0, %s]", s.cfg.Name, sec.Name, sec.Lag, maxLag)
		}
		r := &replica{name: sec.Name, zone: sec.Zone, lag: sec.Lag, queue: make(chan changeSet, maxPendingReplication)}
		uz.replicas = append(uz.replicas, r)
		s.workers.Go(func() { s.replicate(r) })
	}
	s.updates[origin] = uz
	return nil
}

// SetReplicationLag sets the lag of the named secondaries of origin (none:
// all of them). Changes already queued keep their time; a change made
// after a lag is lowered still waits for the ones queued before it.
func (s *Server) SetReplicationLag(origin string, lag time.Duration, secondaries ...string) error {
	if lag < 0 || lag > maxLag {
		return fmt.Errorf("dns server %s: lag %s outside [0, %s]", s.cfg.Name, lag, maxLag)
	}
	origin = dns.CanonicalName(origin)
	s.mu.Lock()
	defer s.mu.Unlock()
	uz := s.updates[origin]
	if uz == nil {
		return fmt.Errorf("dns server %s: does not accept updates for %s", s.cfg.Name, origin)
	}
	matched := 0
	for _, r := range uz.replicas {
		if len(secondaries) == 0 || slices.Contains(secondaries, r.name) {
			r.mu.Lock()
			r.lag = lag
			r.mu.Unlock()
			matched++
		}
	}
	if matched == 0 && len(secondaries) > 0 {
		return fmt.Errorf("dns server %s: no secondary %v of %s", s.cfg.Name, secondaries, origin)
	}
	return nil
}

// replicate applies queued change sets to one secondary when they are due,
// in order, until the server closes.
func (s *Server) replicate(r *replica) {
	for {
		var cs changeSet
		select {
		case <-s.done:
			return
		case cs = <-r.queue:
		}
		if d := time.Until(cs.due); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-s.done:
				t.Stop()
				return
			case <-t.C:
			}
		}
		r.mu.Lock()
		if err := r.zone.applyChanges(cs.changes, cs.serial); err != nil {
			s.log.Warn("replication", zap.String("secondary", r.name), zap.Error(err))
		}
		r.pending--
		r.mu.Unlock()
		s.log.Debug("replicated", zap.String("secondary", r.name), zap.Uint32("serial", cs.serial))
	}
}

// propagate hands a change set to every secondary of uz. Called with s.mu
// held, which keeps updates in order on every secondary; when a lagging
// secondary's queue is full it waits (bounded by ctx) for room.
func (s *Server) propagate(ctx context.Context, uz *updateZone, changes []rrsetChange, serial uint32) error {
	now := time.Now()
	var errs []error
	for _, r := range uz.replicas {
		r.mu.Lock()
		if r.lag == 0 && r.pending == 0 {
			if err := r.zone.applyChanges(changes, serial); err != nil {
				errs = append(errs, fmt.Errorf("secondary %s: %w", r.name, err))
			}
			r.mu.Unlock()
			continue
		}
		r.pending++ // before the send, so the worker's decrement never precedes it
		due := now.Add(r.lag)
		r.mu.Unlock()
		select {
		case r.queue <- changeSet{changes: changes, serial: serial, due: due}:
			continue
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("secondary %s: replication queue full: %w", r.name, ctx.Err()))
		case <-s.done:
			errs = append(errs, errors.New("server closed"))
		}
		r.mu.Lock()
		r.pending--
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

// acceptMsg is miekg/dns's default filter plus UPDATE, whose sections
// are bounded here, before anything is unpacked.
func acceptMsg(dh dns.Header) dns.MsgAcceptAction {
	const qr, opcodeShift = 1 << 15, 11
	if dh.Bits&qr != 0 || int(dh.Bits>>opcodeShift)&0xF != dns.OpcodeUpdate {
		return dns.DefaultMsgAcceptFunc(dh)
	}
	if dh.Qdcount != 1 || int(dh.Ancount)+int(dh.Nscount) > maxUpdateRRs || dh.Arcount > 2 {
		return dns.MsgReject
	}
	return dns.MsgAccept
}

// tsigProvider verifies and signs with the server's keys, checking that
// the algorithm is the key's own (miekg/dns's secret map does not).
type tsigProvider struct{ s *Server }

func (p tsigProvider) key(t *dns.TSIG) (TSIGKey, []byte, error) {
	p.s.mu.RLock()
	k, ok := p.s.tsigKeys[dns.CanonicalName(t.Hdr.Name)]
	p.s.mu.RUnlock()
	if !ok {
		return k, nil, dns.ErrSecret
	}
	if dns.CanonicalName(t.Algorithm) != k.Algorithm {
		return k, nil, dns.ErrKeyAlg
	}
	raw, err := base64.StdEncoding.DecodeString(k.Secret)
	if err != nil {
		return k, nil, fmt.Errorf("key %s: %w", k.Name, err)
	}
	return k, raw, nil
}

// Generate implements dns.TsigProvider.
func (p tsigProvider) Generate(msg []byte, t *dns.TSIG) ([]byte, error) {
	k, raw, err := p.key(t)
	if err != nil {
		return nil, err
	}
	h := hmac.New(tsigAlgorithms[k.Algorithm], raw)
	h.Write(msg)
	return h.Sum(nil), nil
}

// Verify implements dns.TsigProvider.
func (p tsigProvider) Verify(msg []byte, t *dns.TSIG) error {
	b, err := p.Generate(msg, t)
	if err != nil {
		return err
	}
	mac, err := hex.DecodeString(t.MAC)
	if err != nil || !hmac.Equal(b, mac) {
		return dns.ErrSig
	}
	return nil
}

// serveUpdate answers one UPDATE message (RFC 2136 §3): authentication
// first (unsigned → REFUSED as a server without an update policy for the
// client does; a bad key, signature or time → NOTAUTH with the TSIG error,
// unsigned, RFC 8945 §5.2), then zone, prerequisites, prescan and the
// atomic change, then propagation. The reply to a verified request is
// signed with the same key.
func (s *Server) serveUpdate(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Opcode = dns.OpcodeUpdate
	t := r.IsTsig()
	if t == nil {
		m.Rcode = dns.RcodeRefused
		s.log.Debug("update refused: unsigned", zap.String("zone", r.Question[0].Name))
		s.writeUpdate(w, m)
		return
	}
	if err := w.TsigStatus(); err != nil {
		s.log.Debug("update refused: tsig", zap.String("key", t.Hdr.Name), zap.Error(err))
		tsigErr := dns.RcodeBadSig
		switch {
		case errors.Is(err, dns.ErrSecret), errors.Is(err, dns.ErrKeyAlg):
			tsigErr = dns.RcodeBadKey
		case errors.Is(err, dns.ErrTime):
			tsigErr = dns.RcodeBadTime
		}
		m.Rcode = dns.RcodeNotAuth
		m.Extra = append(m.Extra, &dns.TSIG{
			Hdr:        dns.RR_Header{Name: t.Hdr.Name, Rrtype: dns.TypeTSIG, Class: dns.ClassANY},
			Algorithm:  t.Algorithm,
			TimeSigned: uint64(time.Now().Unix()),
			Fudge:      tsigFudge,
			OrigId:     r.Id,
			Error:      uint16(tsigErr),
		})
		// Unsigned: the server cannot (or must not) use the key.
		b, err := m.Pack()
		if err == nil {
			_, err = w.Write(b)
		}
		if err != nil {
			s.log.Debug("write", zap.Error(err))
		}
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), replicationWait)
	defer cancel()
	m.Rcode = s.update(ctx, r)
	m.SetTsig(t.Hdr.Name, t.Algorithm, tsigFudge, time.Now().Unix())
	s.writeUpdate(w, m)
}

func (s *Server) writeUpdate(w dns.ResponseWriter, m *dns.Msg) {
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("write", zap.Error(err))
	}
}

// update checks and applies an authenticated UPDATE; it returns the rcode.
func (s *Server) update(ctx context.Context, r *dns.Msg) int {
	q := r.Question[0]
	origin := dns.CanonicalName(q.Name)
	if q.Qtype != dns.TypeSOA || q.Qclass != dns.ClassINET {
		return dns.RcodeFormatError
	}
	if len(r.Answer)+len(r.Ns) > maxUpdateRRs {
		return dns.RcodeRefused
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	z := s.zones[origin]
	if z == nil {
		return dns.RcodeNotAuth // RFC 2136 §3.1.1: not authoritative for the zone
	}
	uz := s.updates[origin]
	if uz == nil {
		return dns.RcodeRefused // a secondary, or a zone without an update policy
	}
	rcode, changes, serial := z.update(r.Answer, r.Ns)
	if rcode != dns.RcodeSuccess || len(changes) == 0 {
		return rcode
	}
	s.log.Debug("update applied", zap.String("zone", origin), zap.Uint32("serial", serial), zap.Int("rrsets", len(changes)))
	if err := s.propagate(ctx, uz, changes, serial); err != nil {
		// The primary has the change; a secondary will miss it, as a
		// real secondary misses a notify. Say so, the client sees success.
		s.log.Warn("propagation", zap.String("zone", origin), zap.Error(err))
	}
	return dns.RcodeSuccess
}

// update applies RFC 2136 prerequisites and updates atomically to this
// copy, for TXT RRsets only. It returns the rcode, the RRsets it changed
// (their new content) and the new serial (bumped once when anything
// changed, §3.6).
func (z *Zone) update(prereqs, updates []dns.RR) (int, []rrsetChange, uint32) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if rc := z.checkPrereqs(prereqs); rc != dns.RcodeSuccess {
		return rc, nil, z.soa().Serial
	}
	if rc := z.prescan(updates); rc != dns.RcodeSuccess {
		return rc, nil, z.soa().Serial
	}
	// Work on copies of the touched RRsets, then commit them all.
	work := map[rrKey][]dns.RR{}
	var order []rrKey
	get := func(k rrKey) []dns.RR {
		if v, ok := work[k]; ok {
			return v
		}
		v := slices.Clone(z.data[k.name][k.t])
		work[k] = v
		order = append(order, k)
		return v
	}
	for _, rr := range updates {
		h := rr.Header()
		k := rrKey{dns.CanonicalName(h.Name), h.Rrtype}
		set := get(k)
		switch h.Class {
		case dns.ClassINET:
			add := dns.Copy(rr)
			add.Header().Name = k.name
			if !slices.ContainsFunc(set, func(old dns.RR) bool { return dns.IsDuplicate(old, add) }) {
				set = append(set, add)
			}
		case dns.ClassANY:
			set = nil
		case dns.ClassNONE:
			del := dns.Copy(rr)
			del.Header().Name, del.Header().Class = k.name, dns.ClassINET
			set = slices.DeleteFunc(set, func(old dns.RR) bool { return dns.IsDuplicate(old, del) })
		}
		if len(set) > maxRRsetByUpdate {
			return dns.RcodeRefused, nil, z.soa().Serial
		}
		work[k] = set
	}
	var changes []rrsetChange
	for _, k := range order {
		if sameRRset(z.data[k.name][k.t], work[k]) {
			continue
		}
		changes = append(changes, rrsetChange{name: k.name, rrtype: k.t, rrs: work[k]})
	}
	if len(changes) == 0 {
		return dns.RcodeSuccess, nil, z.soa().Serial
	}
	serial := z.soa().Serial + 1
	if err := z.commit(changes, serial); err != nil {
		return dns.RcodeServerFailure, nil, z.soa().Serial
	}
	return dns.RcodeSuccess, changes, serial
}

// applyChanges is what a secondary does with a change set from its
// primary: replace those RRsets, take the primary's serial, re-sign.
func (z *Zone) applyChanges(changes []rrsetChange, serial uint32) error {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.commit(changes, serial)
}

// commit writes changed RRsets and the serial and re-signs. Called with mu
// held. Records are copied: change sets are shared between copies.
func (z *Zone) commit(changes []rrsetChange, serial uint32) error {
	total := 0
	for _, n := range z.data {
		for _, set := range n {
			total += len(set)
		}
	}
	for _, c := range changes {
		total += len(c.rrs) - len(z.data[c.name][c.rrtype])
	}
	if total > maxZoneRecords {
		return fmt.Errorf("zone %s: more than %d records", z.origin, maxZoneRecords)
	}
	for _, c := range changes {
		if n := z.data[c.name]; n != nil {
			delete(n, c.rrtype)
			if len(n) == 0 {
				delete(z.data, c.name)
			}
		}
		for _, rr := range c.rrs {
			if err := z.add(rr); err != nil {
				return err
			}
		}
	}
	z.soa().Serial = serial
	return z.sign()
}

func sameRRset(a, b []dns.RR) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y dns.RR) bool { return dns.IsDuplicate(x, y) }) {
			return false
		}
	}
	return true
}

// checkPrereqs evaluates the prerequisite section (RFC 2136 §3.2). Called
// with mu held.
func (z *Zone) checkPrereqs(prereqs []dns.RR) int {
	// Value-dependent prerequisites are compared per RRset as a whole.
	want := map[rrKey][]dns.RR{}
	for _, rr := range prereqs {
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		if h.Ttl != 0 {
			return dns.RcodeFormatError
		}
		if !dns.IsSubDomain(z.origin, name) {
			return dns.RcodeNotZone
		}
		node := z.data[name]
		switch h.Class {
		case dns.ClassANY:
			if hasRdata(rr) {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if len(node) == 0 { // "name is in use"
					return dns.RcodeNameError
				}
			} else if len(node[h.Rrtype]) == 0 { // "RRset exists (value independent)"
				return dns.RcodeNXRrset
			}
		case dns.ClassNONE:
			if hasRdata(rr) {
				return dns.RcodeFormatError
			}
			if h.Rrtype == dns.TypeANY {
				if len(node) > 0 { // "name is not in use"
					return dns.RcodeYXDomain
				}
			} else if len(node[h.Rrtype]) > 0 { // "RRset does not exist"
				return dns.RcodeYXRrset
			}
		case dns.ClassINET:
			c := dns.Copy(rr)
			c.Header().Name, c.Header().Ttl = name, 0
			k := rrKey{name, h.Rrtype}
			want[k] = append(want[k], c)
		default:
			return dns.RcodeFormatError
		}
	}
	for k, set := range want {
		have := make([]dns.RR, 0, len(z.data[k.name][k.t]))
		for _, rr := range z.data[k.name][k.t] {
			c := dns.Copy(rr)
			c.Header().Ttl = 0
			have = append(have, c)
		}
		if !sameRRset(dedupe(set), have) {
			return dns.RcodeNXRrset
		}
	}
	return dns.RcodeSuccess
}

func dedupe(rrs []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if !slices.ContainsFunc(out, func(o dns.RR) bool { return dns.IsDuplicate(o, rr) }) {
			out = append(out, rr)
		}
	}
	return out
}

// prescan checks the update section before anything changes (RFC 2136
// §3.4.1): names in the zone, TXT only (anything else is REFUSED: the
// universe's update policy, like a BIND update-policy granting TXT), TTL 0
// and no rdata on deletions, bounded TXT size. Called with mu held.
func (z *Zone) prescan(updates []dns.RR) int {
	for _, rr := range updates {
		h := rr.Header()
		if !dns.IsSubDomain(z.origin, dns.CanonicalName(h.Name)) {
			return dns.RcodeNotZone
		}
		switch h.Class {
		case dns.ClassINET, dns.ClassNONE:
			if h.Rrtype != dns.TypeTXT {
				return dns.RcodeRefused
			}
			txt, ok := rr.(*dns.TXT)
			if !ok || !hasRdata(rr) {
				return dns.RcodeFormatError
			}
			if h.Class == dns.ClassNONE && h.Ttl != 0 {
				return dns.RcodeFormatError
			}
			size := 0
			for _, s := range txt.Txt {
				size += len(s)
			}
			if size > maxTXTBytes {
				return dns.RcodeRefused
			}
		case dns.ClassANY:
			if h.Ttl != 0 || hasRdata(rr) {
				return dns.RcodeFormatError
			}
			if h.Rrtype != dns.TypeTXT { // includes ANY: "delete all RRsets of a name"
				return dns.RcodeRefused
			}
		default:
			return dns.RcodeFormatError
		}
	}
	return dns.RcodeSuccess
}

// hasRdata reports whether rr, as received, carried rdata: miekg/dns
// unpacks an RR with RDLENGTH 0 into its type with empty fields and keeps
// RDLENGTH in the header (*dns.ANY is how a client builds such a record).
func hasRdata(rr dns.RR) bool {
	if _, ok := rr.(*dns.ANY); ok {
		return false
	}
	return rr.Header().Rdlength != 0
}
