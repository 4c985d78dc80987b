package probes

import (
	"cmp"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/acmediag/acmediag/reports"
)

// Default store limits: the history kept besides every key's latest
// observation.
const (
	DefaultStorePerKey   = 32
	DefaultStoreMaxBytes = 16 << 20
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
	slotOverhead = int64(unsafe.Sizeof(slot{})) + 64
	histOverhead = int64(unsafe.Sizeof(histObs{}) + unsafe.Sizeof(histRef{}))
)

// Store keeps observations per (name, vantage, kind). The latest of each
// key is always kept, outside the byte bound: it is what the metrics, the
// report and the page are made of, and a name must never read as pending
// because other names were busy. Older observations are history, in a
// ring per key (PerKey) under a total byte bound (MaxBytes): when it is
// hit, the oldest history of all keys goes first. Sizes are counted by
// construction (SizeOf), not measured. Observations handed out share
// their slices with the store: read them, never modify them. Safe for
// concurrent use.
type Store struct {
	perKey   int
	maxBytes int64

	mu          sync.Mutex
	names       map[string][]*slot // normalized name → its keys
	queue       []histRef          // history in the order it was made, oldest first; stale entries are skipped
	head        int                // queue[head:] are live candidates
	seq         uint64
	keys, hist  int
	latestBytes int64
	histBytes   int64
	dropped     int64
}

// slot is one key: its latest observation and its history ring.
type slot struct {
	vantage    string
	kind       reports.Kind
	latest     reports.Observation
	latestSize int64
	ring       []histObs // history, oldest first from start
	start, n   int
	removed    bool
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
	return &Store{perKey: l.PerKey, maxBytes: l.MaxBytes, names: map[string][]*slot{}}
}

// normName is the form names are indexed under: DNS names compare without
// case and without the root dot.
func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

// Add records o as its key's latest; the one it replaces becomes history.
func (s *Store) Add(o reports.Observation) {
	size := SizeOf(o)
	name := normName(o.Name)
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.slot(name, o.Vantage.Name, o.Kind)
	if sl == nil {
		sl = &slot{vantage: o.Vantage.Name, kind: o.Kind}
		s.names[name] = append(s.names[name], sl)
		s.keys++
		s.latest(sl, o, size)
		return
	}
	if s.perKey > 1 {
		s.seq++
		s.pushHistory(sl, histObs{obs: sl.latest, seq: s.seq, size: sl.latestSize})
	}
	s.latestBytes -= sl.latestSize
	s.latest(sl, o, size)
	for s.histBytes > s.maxBytes && s.head < len(s.queue) {
		ref := s.queue[s.head]
		s.queue[s.head] = histRef{}
		s.head++
		if ref.s.removed || ref.s.n == 0 || ref.seq != ref.s.ring[ref.s.start].seq {
			continue // stale: dropped by its ring already, or not the oldest
		}
		s.dropOldest(ref.s)
		s.dropped++
	}
	s.compact()
}

func (s *Store) latest(sl *slot, o reports.Observation, size int64) {
	sl.latest, sl.latestSize = o, size
	s.latestBytes += size
}

func (s *Store) slot(name, vantage string, kind reports.Kind) *slot {
	for _, sl := range s.names[name] {
		if sl.vantage == vantage && sl.kind == kind {
			return sl
		}
	}
	return nil
}

// pushHistory appends h to sl's ring, dropping the ring's oldest when it
// holds PerKey-1 already.
func (s *Store) pushHistory(sl *slot, h histObs) {
	capacity := s.perKey - 1
	if sl.n == capacity {
		s.dropOldest(sl)
	}
	if sl.n == len(sl.ring) {
		// Grow lazily, doubling up to capacity: most keys never fill it.
		grown := make([]histObs, 0, min(capacity, max(2*len(sl.ring), 1)))
		for i := range sl.n {
			grown = append(grown, sl.ring[(sl.start+i)%len(sl.ring)])
		}
		sl.ring, sl.start = grown[:cap(grown)], 0
	}
	sl.ring[(sl.start+sl.n)%len(sl.ring)] = h
	sl.n++
	s.hist++
	s.histBytes += h.size + histOverhead
	s.queue = append(s.queue, histRef{s: sl, seq: h.seq})
}

func (s *Store) dropOldest(sl *slot) {
	h := sl.ring[sl.start]
	sl.ring[sl.start] = histObs{} // let the observation be collected
	sl.start = (sl.start + 1) % len(sl.ring)
	sl.n--
	s.hist--
	s.histBytes -= h.size + histOverhead
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

// holds reports whether seq is still in the ring.
func (sl *slot) holds(seq uint64) bool {
	return sl.n > 0 && seq >= sl.ring[sl.start].seq && seq <= sl.ring[(sl.start+sl.n-1)%len(sl.ring)].seq
}

// Remove forgets every observation of one (name, vantage, kind): the
// scheduler calls it when a run leaves the work, so that the metrics
// describe configured targets only.
func (s *Store) Remove(name, vantage string, kind reports.Kind) {
	name = normName(name)
	s.mu.Lock()
	defer s.mu.Unlock()
	slots := s.names[name]
	i := slices.IndexFunc(slots, func(sl *slot) bool { return sl.vantage == vantage && sl.kind == kind })
	if i < 0 {
		return
	}
	sl := slots[i]
	for sl.n > 0 {
		s.dropOldest(sl)
	}
	sl.removed = true
	s.latestBytes -= sl.latestSize
	s.keys--
	if slots = slices.Delete(slots, i, i+1); len(slots) == 0 {
		delete(s.names, name)
	} else {
		s.names[name] = slots
	}
	s.compact()
}

// Query returns the observations of name (every name when name is "")
// that started at or after since, oldest first.
func (s *Store) Query(name string, since time.Time) []reports.Observation {
	var out []reports.Observation
	collect := func(sl *slot) {
		for i := range sl.n {
			if o := sl.ring[(sl.start+i)%len(sl.ring)].obs; !o.Start.Before(since) {
				out = append(out, o)
			}
		}
		if !sl.latest.Start.Before(since) {
			out = append(out, sl.latest)
		}
	}
	s.mu.Lock()
	if name == "" {
		for _, slots := range s.names {
			for _, sl := range slots {
				collect(sl)
			}
		}
	} else {
		for _, sl := range s.names[normName(name)] {
			collect(sl)
		}
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
		for _, slots := range s.names {
			for _, sl := range slots {
				out = append(out, sl.latest)
			}
		}
	} else {
		for _, sl := range s.names[normName(name)] {
			out = append(out, sl.latest)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b reports.Observation) int {
		return cmp.Or(strings.Compare(normName(a.Name), normName(b.Name)), strings.Compare(a.Vantage.Name, b.Vantage.Name), cmp.Compare(a.Kind, b.Kind))
	})
	return out
}

// Stats counts what the store holds.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{Observations: s.keys + s.hist, Bytes: s.latestBytes + int64(s.keys)*slotOverhead + s.histBytes,
		HistoryBytes: s.histBytes, Keys: s.keys, Dropped: s.dropped}
}

// Sizes of the fixed parts SizeOf counts.
const (
	sizeofObservation = int64(unsafe.Sizeof(reports.Observation{}))
	sizeofFinding     = int64(unsafe.Sizeof(reports.Finding{}))
	sizeofCheck       = int64(unsafe.Sizeof(reports.Check{}))
	sizeofProblem     = int64(unsafe.Sizeof(reports.Problem{}))
	sizeofMapEntry    = 48 // a string key, an interface value and the map's own share
)

// SizeOf is the estimated bytes an observation holds, counted by
// construction: its struct, the bytes of its strings, its findings, checks
// and trace. Strings it shares with others (the catalogue's summaries, the
// plan's names) are counted as if they were its own, which errs toward
// keeping less.
func SizeOf(o reports.Observation) int64 {
	n := sizeofObservation + int64(len(o.Name)+len(o.Challenge)+len(o.Vantage.Name)+len(o.Vantage.Kind)+
		len(o.Vantage.Region)+len(o.Vantage.RIR)+len(o.Kind))
	n += int64(cap(o.Findings)) * sizeofFinding
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
