package probes

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/acmediag/acmediag/reports"
)

// Default store limits: the history kept besides every key's latest
// observation (which is kept whatever the bound). 8 MiB of history is
// minutes of every probe's runs at 10,000 names × 4 vantages, hours at a
// few hundred names: enough to explain a canary order that failed an hour
// ago, small enough that the 10,000-name daemon stays under 100 MiB.
const (
	DefaultStorePerKey   = 32
	DefaultStoreMaxBytes = 8 << 20
)

// StoreLimits bound a Store's history. Zero fields take the defaults.
type StoreLimits struct {
	// PerKey is how many observations a (name, vantage, kind) keeps, its
	// latest included; 0 → DefaultStorePerKey.
	PerKey int
	// MaxBytes bounds the estimated bytes of history (every observation
	// but each key's latest); 0 → DefaultStoreMaxBytes.
	MaxBytes int64
}

// StoreStats describes a Store's contents.
type StoreStats struct {
	Observations int   // latest and history
	Bytes        int64 // estimated bytes of all of them and the store's bookkeeping
	HistoryBytes int64 // of Bytes, the history's: at most StoreLimits.MaxBytes
	Keys         int
	Dropped      int64 // history evicted by the byte bound so far (not ring turnover)
}

// Bookkeeping charged besides the observations: a key's slot and its
// name's index entry; a history entry's ring slot and queue entry.
const (
	slotOverhead = int64(unsafe.Sizeof(slot{})) + 16
	nameOverhead = int64(unsafe.Sizeof(nameEntry{})) + 64
	histOverhead = int64(unsafe.Sizeof(histObs{}) + unsafe.Sizeof(histRef{}))
)

// Store keeps observations per (name, vantage, kind). The latest of each
// key is always kept, outside the byte bound: it is what the metrics, the
// report and the page are made of, and a name must never read as pending
// because other names were busy. It is kept compact (a slot holds only
// what the key does not say: the name, challenge and vantage are its
// name's and an interned vantage's), so that 100,000 names × 4 vantages ×
// the probe kinds fit. Older observations are history, in a ring per key
// (PerKey) under a total byte bound (MaxBytes): when it is hit, the oldest
// history of all keys goes first. Sizes are counted by construction
// (SizeOf), not measured. Observations handed out share their slices with
// the store: read them, never modify them. Safe for concurrent use.
type Store struct {
	perKey   int
	maxBytes int64

	mu          sync.Mutex
	names       map[string]*nameEntry                // normalized name → its keys
	vantages    map[reports.Vantage]*reports.Vantage // interned: a handful, shared by every slot
	queue       []histRef                            // history in the order it was made, oldest first; stale entries are skipped
	head        int                                  // queue[head:] are live candidates
	seq         uint64
	keys, hist  int
	latestBytes int64
	histBytes   int64
	dropped     int64
}

// nameEntry is one name's keys.
type nameEntry struct {
	name      string // as the latest observation spelled it
	challenge reports.Challenge
	slots     []*slot
}

// slot is one key: its latest observation, compact, and its history.
type slot struct {
	vantage    *reports.Vantage
	kind       reports.Kind
	start      int64 // Unix nanoseconds (noStart: zero)
	duration   time.Duration
	findings   []reports.Finding
	checks     []reports.Check
	trace      *reports.Trace // nil: nothing traced
	tls        *reports.TLSFacts
	ring       *history // nil until the key has history
	latestSize int32
	ok         bool
	removed    bool
}

// noStart stands for a zero start time in a slot.
const noStart = math.MinInt64

func packTime(t time.Time) int64 {
	if t.IsZero() {
		return noStart
	}
	return t.UnixNano()
}

func unpackTime(n int64) time.Time {
	if n == noStart {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// history is a key's older observations, oldest first from start.
type history struct {
	buf      []histObs
	start, n int
}

type histObs struct {
	obs  reports.Observation
	seq  uint64
	size int64
}

// histRef names one history observation of a slot; it is stale once the
// slot dropped it or was removed.
type histRef struct {
	s   *slot
	seq uint64
}

// NewStore returns an empty store with limits l (zero fields take defaults).
func NewStore(l StoreLimits) *Store {
	if l.PerKey <= 0 {
		l.PerKey = DefaultStorePerKey
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultStoreMaxBytes
	}
	return &Store{perKey: l.PerKey, maxBytes: l.MaxBytes, names: map[string]*nameEntry{}, vantages: map[reports.Vantage]*reports.Vantage{}}
}

// normName is the form names are indexed under: DNS names compare without
// case and without the root dot.
func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// Add records o as its key's latest; the one it replaces becomes history.
func (s *Store) Add(o reports.Observation) {
	size := contentSize(o)
	name := normName(o.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.names[name]
	if e == nil {
		e = &nameEntry{}
		s.names[name] = e
	}
	e.name, e.challenge = o.Name, o.Challenge
	sl := e.slot(o.Vantage.Name, o.Kind)
	if sl == nil {
		sl = &slot{vantage: s.intern(o.Vantage), kind: o.Kind}
		e.slots = append(e.slots, sl)
		s.keys++
	} else {
		if s.perKey > 1 {
			s.seq++
			h := sl.observation(e)
			s.pushHistory(sl, histObs{obs: h, seq: s.seq, size: SizeOf(h)})
		}
		s.latestBytes -= int64(sl.latestSize)
	}
	sl.vantage = s.intern(o.Vantage)
	sl.start, sl.duration, sl.ok, sl.findings, sl.checks, sl.latestSize = packTime(o.Start), o.Duration, o.OK, o.Findings, o.Checks, int32(min(size, math.MaxInt32))
	sl.trace, sl.tls = nil, o.TLS
	if !o.Trace.IsZero() {
		tr := o.Trace
		sl.trace = &tr
	}
	s.latestBytes += int64(sl.latestSize)
	for s.histBytes > s.maxBytes && s.head < len(s.queue) {
		ref := s.queue[s.head]
		s.queue[s.head] = histRef{}
		s.head++
		r := ref.s.ring
		if ref.s.removed || r == nil || r.n == 0 || ref.seq != r.buf[r.start].seq {
			continue // stale: dropped by its ring already, or not the oldest
		}
		s.dropOldest(ref.s)
		s.dropped++
	}
	s.compact()
}

// intern returns the store's one copy of v.
func (s *Store) intern(v reports.Vantage) *reports.Vantage {
	if p, ok := s.vantages[v]; ok {
		return p
	}
	if len(s.vantages) > 4*MaxVantages {
		// Vantages come and go with reloads: start over rather than grow.
		clear(s.vantages)
	}
	p := &v
	s.vantages[v] = p
	return p
}

func (e *nameEntry) slot(vantage string, kind reports.Kind) *slot {
	for _, sl := range e.slots {
		if sl.vantage.Name == vantage && sl.kind == kind {
			return sl
		}
	}
	return nil
}

// observation is the slot's latest as an Observation of e's name.
func (sl *slot) observation(e *nameEntry) reports.Observation {
	o := reports.Observation{Name: e.name, Challenge: e.challenge, Vantage: *sl.vantage, Kind: sl.kind, Start: unpackTime(sl.start),
		Duration: sl.duration, OK: sl.ok, Findings: sl.findings, Checks: sl.checks}
	if sl.trace != nil {
		o.Trace = *sl.trace
	}
	o.TLS = sl.tls
	return o
}

// pushHistory appends h to sl's ring, dropping the ring's oldest when it
// holds PerKey-1 already.
func (s *Store) pushHistory(sl *slot, h histObs) {
	capacity := s.perKey - 1
	if sl.ring != nil && sl.ring.n == capacity {
		s.dropOldest(sl)
	}
	if sl.ring == nil {
		sl.ring = &history{}
	}
	r := sl.ring
	if r.n == len(r.buf) {
		// Grow lazily, doubling up to capacity: most keys never fill it.
		grown := make([]histObs, 0, min(capacity, max(2*len(r.buf), 1)))
		for i := range r.n {
			grown = append(grown, r.buf[(r.start+i)%len(r.buf)])
		}
		r.buf, r.start = grown[:cap(grown)], 0
	}
	r.buf[(r.start+r.n)%len(r.buf)] = h
	r.n++
	s.hist++
	s.histBytes += h.size + histOverhead
	s.queue = append(s.queue, histRef{s: sl, seq: h.seq})
}

func (s *Store) dropOldest(sl *slot) {
	r := sl.ring
	h := r.buf[r.start]
	r.buf[r.start] = histObs{} // let the observation be collected
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	s.hist--
	s.histBytes -= h.size + histOverhead
	if r.n == 0 {
		sl.ring = nil
	}
}

// compact drops the queue's stale entries once it holds more than twice
// the history (and at least 1024): rings turning over leave entries
// behind that eviction would otherwise only skip later.
func (s *Store) compact() {
	n := len(s.queue) - s.head
	if n < 1024 || n < 2*s.hist {
		return
	}
	out := make([]histRef, 0, s.hist+s.hist/2+16)
	for _, ref := range s.queue[s.head:] {
		if !ref.s.removed && ref.s.holds(ref.seq) {
			out = append(out, ref)
		}
	}
	s.queue, s.head = out, 0
}

// holds reports whether seq is still in the slot's history.
func (sl *slot) holds(seq uint64) bool {
	r := sl.ring
	return r != nil && r.n > 0 && seq >= r.buf[r.start].seq && seq <= r.buf[(r.start+r.n-1)%len(r.buf)].seq
}

// Remove forgets every observation of one (name, vantage, kind): the
// scheduler calls it when a run leaves the work, so that the metrics
// describe configured targets only.
func (s *Store) Remove(name, vantage string, kind reports.Kind) {
	name = normName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.names[name]
	if e == nil {
		return
	}
	i := slices.IndexFunc(e.slots, func(sl *slot) bool { return sl.vantage.Name == vantage && sl.kind == kind })
	if i < 0 {
		return
	}
	sl := e.slots[i]
	for sl.ring != nil {
		s.dropOldest(sl)
	}
	sl.removed = true
	s.latestBytes -= int64(sl.latestSize)
	s.keys--
	if e.slots = slices.Delete(e.slots, i, i+1); len(e.slots) == 0 {
		delete(s.names, name)
	}
	s.compact()
}

// Query returns the observations of name (every name when name is "")
// that started at or after since, oldest first.
func (s *Store) Query(name string, since time.Time) []reports.Observation {
	var out []reports.Observation
	collect := func(e *nameEntry) {
		for _, sl := range e.slots {
			if r := sl.ring; r != nil {
				for i := range r.n {
					if o := r.buf[(r.start+i)%len(r.buf)].obs; !o.Start.Before(since) {
						out = append(out, o)
					}
				}
			}
			if !unpackTime(sl.start).Before(since) {
				out = append(out, sl.observation(e))
			}
		}
	}
	s.mu.Lock()
	if name == "" {
		for _, e := range s.names {
			collect(e)
		}
	} else if e := s.names[normName(name)]; e != nil {
		collect(e)
	}
	s.mu.Unlock()
	slices.SortStableFunc(out, func(a, b reports.Observation) int { return a.Start.Compare(b.Start) })
	return out
}

// Latest returns the newest observation of every key of name (every name
// when name is ""), ordered by name, vantage and kind.
func (s *Store) Latest(name string) []reports.Observation {
	s.mu.Lock()
	var out []reports.Observation
	if name == "" {
		out = make([]reports.Observation, 0, s.keys)
		for _, e := range s.names {
			out = e.latest(out)
		}
	} else if e := s.names[normName(name)]; e != nil {
		out = e.latest(out)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b reports.Observation) int {
		return cmp.Or(strings.Compare(normName(a.Name), normName(b.Name)), strings.Compare(a.Vantage.Name, b.Vantage.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

func (e *nameEntry) latest(out []reports.Observation) []reports.Observation {
	for _, sl := range e.slots {
		out = append(out, sl.observation(e))
	}
	return out
}

// EachName calls fn with every name (normalized) and its keys' latest
// observations, one name at a time and outside the store's lock: a scrape
// of the metrics over 100,000 names holds a few observations at a time,
// not all of them.
func (s *Store) EachName(fn func(name string, latest []reports.Observation)) {
	s.mu.Lock()
	names := make([]string, 0, len(s.names))
	for n := range s.names {
		names = append(names, n)
	}
	s.mu.Unlock()
	slices.Sort(names)
	var buf []reports.Observation
	for _, n := range names {
		s.mu.Lock()
		e := s.names[n]
		buf = buf[:0]
		if e != nil {
			buf = e.latest(buf)
		}
		s.mu.Unlock()
		if len(buf) > 0 {
			fn(n, buf)
		}
	}
}

// Stats counts what the store holds.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{Observations: s.keys + s.hist, Bytes: s.latestBytes + int64(s.keys)*slotOverhead + int64(len(s.names))*nameOverhead + s.histBytes,
		HistoryBytes: s.histBytes, Keys: s.keys, Dropped: s.dropped}
}

// Sizes of the fixed parts SizeOf counts.
const (
	sizeofObservation = int64(unsafe.Sizeof(reports.Observation{}))
	sizeofFinding     = int64(unsafe.Sizeof(reports.Finding{}))
	sizeofCheck       = int64(unsafe.Sizeof(reports.Check{}))
	sizeofProblem     = int64(unsafe.Sizeof(reports.Problem{}))
	sizeofTLSFacts    = int64(unsafe.Sizeof(reports.TLSFacts{}))
	sizeofServedCert  = int64(unsafe.Sizeof(reports.ServedCert{}))
	sizeofMapEntry    = 48 // a string key, an interface value and the map's own share
)

// SizeOf is the estimated bytes an observation holds, counted by
// construction: its struct, the bytes of its strings, its findings, checks
// and trace. Strings it shares with others (the catalogue's summaries, the
// plan's names) are counted as if they were its own, which errs toward
// keeping less.
func SizeOf(o reports.Observation) int64 {
	return sizeofObservation + int64(len(o.Name)+len(o.Challenge)+len(o.Vantage.Name)+len(o.Vantage.Kind)+
		len(o.Vantage.Region)+len(o.Vantage.RIR)+len(o.Kind)) + contentSize(o)
}

// contentSize is what an observation holds beyond its struct and the
// strings its key says (name, challenge, vantage, kind): its findings,
// checks and trace. A key's latest is charged this and its slot.
func contentSize(o reports.Observation) int64 {
	n := int64(cap(o.Findings)) * sizeofFinding
	for i := range o.Findings {
		n += findingSize(&o.Findings[i])
	}
	n += int64(cap(o.Checks)) * sizeofCheck
	for i := range o.Checks {
		c := &o.Checks[i]
		n += int64(len(c.Name) + len(c.Target) + len(c.Vantage) + len(c.Server) + len(c.Status) + len(c.Note))
	}
	n += problemSize(o.Trace.Problem) + int64(cap(o.Trace.Lines))*16
	for _, l := range o.Trace.Lines {
		n += int64(len(l))
	}
	return n + tlsSize(o.TLS)
}

// tlsSize is what a tls run's facts hold: each served leaf's strings.
func tlsSize(t *reports.TLSFacts) int64 {
	if t == nil {
		return 0
	}
	n := sizeofTLSFacts + int64(cap(t.Served))*sizeofServedCert + int64(len(t.ARISerial))
	for i := range t.Served {
		l := &t.Served[i].Leaf
		n += int64(len(t.Served[i].Vantage) + len(l.Subject) + len(l.Issuer) + len(l.Serial) + len(l.KeyType) + len(l.SHA256) + len(l.AKI))
		for _, s := range l.DNSNames {
			n += 16 + int64(len(s))
		}
		for _, s := range l.IPs {
			n += 16 + int64(len(s))
		}
	}
	if t.ARI != nil {
		n += int64(unsafe.Sizeof(*t.ARI)) + int64(len(t.ARI.ExplanationURL))
	}
	return n
}

func findingSize(f *reports.Finding) int64 {
	n := int64(len(f.Code)+len(f.Name)+len(f.Vantage)+len(f.Summary)+len(f.Detail)+len(f.Fix)) + problemSize(f.Problem)
	for k, v := range f.Evidence {
		n += sizeofMapEntry + int64(len(k)) + valueSize(v)
	}
	return n
}

func problemSize(p *reports.Problem) int64 {
	if p == nil {
		return 0
	}
	return sizeofProblem + int64(len(p.Type)+len(p.Detail))
}

// valueSize is an evidence value's bytes beyond its interface word: the
// shapes findings use (strings, lists of strings, numbers, bools); anything
// else is charged a fixed guess.
func valueSize(v any) int64 {
	switch v := v.(type) {
	case string:
		return 16 + int64(len(v))
	case []string:
		n := int64(24 + 16*cap(v))
		for _, s := range v {
			n += int64(len(s))
		}
		return n
	case bool, int, int64, float64, uint16:
		return 8
	}
	return 256
}
