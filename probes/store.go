package probes

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Default store limits. 16 MiB holds the latest observation of every
// (name, vantage, kind) of a few thousand names, the history of fewer; it
// keeps the scheduler benchmark's RSS at about 90 MiB at 10,000 names × 4
// vantages, where 64 MiB of store (charged by estimate, held with the GC's
// headroom) made it about 165 MiB. Larger target lists that need every
// name's latest observation kept should raise store.max_bytes.
const (
	DefaultStorePerKey   = 32
	DefaultStoreMaxBytes = 16 << 20
)

// StoreLimits bound a Store.
type StoreLimits struct {
	PerKey   int   // observations kept per (name, vantage, kind); 0 → DefaultStorePerKey
	MaxBytes int64 // estimated bytes of all observations; 0 → DefaultStoreMaxBytes
}

// StoreStats describes a Store's contents.
type StoreStats struct {
	Observations int
	Bytes        int64 // estimated: ObservationSize of each plus the store's own bookkeeping
	Keys         int
	Dropped      int64 // observations evicted by the byte bound so far (not ring turnover)
}

// Bookkeeping the byte bound charges besides the observations themselves:
// per key its ring, map entries and name index; per observation its ring
// slot's extra fields and eviction-order entries (the order queue may hold
// up to twice as many entries as observations).
const (
	keyOverhead = 512
	obsOverhead = 64
)

// storeKey is one ring: a name as seen from one vantage by one probe kind.
type storeKey struct{ name, vantage, kind string }

// Store keeps recent observations: a ring buffer per (target name, vantage,
// kind), total memory bounded by an estimate of each observation's size;
// the oldest observations of all are dropped first when the bound is hit.
// Observations handed out share their slices with the store: read them,
// never modify them. Safe for concurrent use.
type Store struct {
	perKey   int
	maxBytes int64

	mu      sync.Mutex
	rings   map[storeKey]*ring
	byName  map[string]map[storeKey]*ring // normalized name → its rings
	order   []orderEntry                  // insertion order of every kept (and some dropped) observation
	head    int                           // order[head:] is live
	seq     uint64
	count   int
	bytes   int64
	dropped int64
}

// ring is one key's observations, oldest first from start.
type ring struct {
	key     storeKey
	buf     []storedObs
	start   int
	n       int
	bytes   int64
	removed bool
}

type storedObs struct {
	obs  Observation
	seq  uint64
	size int64
}

// orderEntry names one observation in global insertion order; it is stale
// once its ring dropped that observation (seq older than the ring's oldest)
// or the ring was removed.
type orderEntry struct {
	r   *ring
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
	return &Store{perKey: l.PerKey, maxBytes: l.MaxBytes, rings: map[storeKey]*ring{}, byName: map[string]map[storeKey]*ring{}}
}

// normName is the form names are indexed under: DNS names compare without
// case and without the root dot.
func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

func keyOf(o Observation) storeKey {
	return storeKey{name: normName(o.Target.Name), vantage: o.Vantage.Name, kind: o.Kind}
}

// Add records o, evicting the key's oldest when its ring is full and the
// oldest of all while the byte bound is exceeded. An observation larger
// than the whole bound is not kept.
func (s *Store) Add(o Observation) {
	size := ObservationSize(o) + obsOverhead
	s.mu.Lock()
	defer s.mu.Unlock()
	if size+keyOverhead > s.maxBytes {
		s.dropped++
		return
	}
	k := keyOf(o)
	r := s.rings[k]
	if r == nil {
		r = &ring{key: k, buf: make([]storedObs, 0, min(s.perKey, 4))}
		s.rings[k] = r
		s.bytes += keyOverhead
		m := s.byName[k.name]
		if m == nil {
			m = map[storeKey]*ring{}
			s.byName[k.name] = m
		}
		m[k] = r
	}
	if r.n == s.perKey {
		old := r.popOldest()
		s.count--
		s.bytes -= old.size
	}
	s.seq++
	r.push(storedObs{obs: o, seq: s.seq, size: size}, s.perKey)
	s.count++
	s.bytes += size
	s.order = append(s.order, orderEntry{r: r, seq: s.seq})
	for s.bytes > s.maxBytes && s.head < len(s.order) {
		e := s.order[s.head]
		s.order[s.head] = orderEntry{}
		s.head++
		if e.r.removed || e.r.n == 0 || e.r.oldestSeq() != e.seq {
			continue // stale: dropped by its ring already
		}
		old := e.r.popOldest()
		s.count--
		s.bytes -= old.size
		s.dropped++
		if e.r.n == 0 {
			s.forget(e.r)
		}
	}
	s.compact()
}

// compact drops stale entries from the order queue so that it stays
// proportional to the observations kept (rings turning over leave stale
// entries behind that eviction would otherwise only skip later).
func (s *Store) compact() {
	live := len(s.order) - s.head
	if live < 1024 || live < 2*s.count {
		return
	}
	out := make([]orderEntry, 0, s.count+s.count/2+16)
	for _, e := range s.order[s.head:] {
		if !e.r.removed && e.r.n > 0 && e.seq >= e.r.oldestSeq() {
			out = append(out, e)
		}
	}
	s.order, s.head = out, 0
}

// forget removes an empty or unwanted ring from the indexes.
func (s *Store) forget(r *ring) {
	r.removed = true
	s.bytes -= keyOverhead
	delete(s.rings, r.key)
	if m := s.byName[r.key.name]; m != nil {
		delete(m, r.key)
		if len(m) == 0 {
			delete(s.byName, r.key.name)
		}
	}
}

// Remove forgets every observation of one (name, vantage, kind): the
// scheduler calls it when a run leaves the work, so that the metrics
// describe configured targets only.
func (s *Store) Remove(name, vantage, kind string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.rings[storeKey{normName(name), vantage, kind}]
	if r == nil {
		return
	}
	s.count -= r.n
	s.bytes -= r.bytes
	s.forget(r)
	s.compact()
}

// Query returns the observations of name (every name when name is "")
// that started at or after since, oldest first.
func (s *Store) Query(name string, since time.Time) []Observation {
	s.mu.Lock()
	var out []Observation
	collect := func(r *ring) {
		r.each(func(so *storedObs) {
			if !so.obs.Start.Before(since) {
				out = append(out, so.obs)
			}
		})
	}
	if name == "" {
		for _, r := range s.rings {
			collect(r)
		}
	} else {
		for _, r := range s.byName[normName(name)] {
			collect(r)
		}
	}
	s.mu.Unlock()
	slices.SortStableFunc(out, func(a, b Observation) int { return a.Start.Compare(b.Start) })
	return out
}

// Latest returns the newest observation of every key, ordered by name,
// vantage and kind.
func (s *Store) Latest() []Observation {
	s.mu.Lock()
	out := make([]Observation, 0, len(s.rings))
	for _, r := range s.rings {
		if r.n > 0 {
			out = append(out, r.newest().obs)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Observation) int {
		ka, kb := keyOf(a), keyOf(b)
		if c := strings.Compare(ka.name, kb.name); c != 0 {
			return c
		}
		if c := strings.Compare(ka.vantage, kb.vantage); c != 0 {
			return c
		}
		return strings.Compare(ka.kind, kb.kind)
	})
	return out
}

// Stats counts what the store holds.
func (s *Store) Stats() StoreStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return StoreStats{Observations: s.count, Bytes: s.bytes, Keys: len(s.rings), Dropped: s.dropped}
}

func (r *ring) push(so storedObs, capacity int) {
	r.bytes += so.size
	if len(r.buf) < capacity && r.start == 0 && r.n == len(r.buf) {
		// Grow lazily: most keys never fill their ring.
		r.buf = append(r.buf, so)
		r.n++
		return
	}
	if len(r.buf) < capacity {
		// The ring wrapped before reaching capacity; straighten it first.
		flat := make([]storedObs, 0, capacity)
		r.each(func(o *storedObs) { flat = append(flat, *o) })
		r.buf, r.start = append(flat, so), 0
		r.n++
		return
	}
	r.buf[(r.start+r.n)%len(r.buf)] = so
	r.n++
}

func (r *ring) popOldest() storedObs {
	so := r.buf[r.start]
	r.buf[r.start] = storedObs{} // let the observation be collected
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	r.bytes -= so.size
	if r.n == 0 {
		r.start = 0
		r.buf = r.buf[:0]
	}
	return so
}

func (r *ring) oldestSeq() uint64 { return r.buf[r.start].seq }

func (r *ring) newest() *storedObs { return &r.buf[(r.start+r.n-1)%len(r.buf)] }

func (r *ring) each(fn func(*storedObs)) {
	for i := range r.n {
		fn(&r.buf[(r.start+i)%len(r.buf)])
	}
}

// Bounds of the size estimate's walk: an observation deeper or wider than
// this is charged sizeWalkOverflow for the rest, so hostile traces cannot
// make the estimate itself expensive.
const (
	sizeWalkMaxNodes = 20000
	sizeWalkMaxDepth = 24
	sizeWalkOverflow = 64 << 10
)

// ObservationSize estimates the bytes an observation holds: its struct, its
// strings, findings, checks, evidence and trace, walked by reflection within
// fixed bounds. Memory shared between the trace and the observation (a
// dnscheck.Result's findings are the observation's) is counted twice, which
// errs toward keeping less.
func ObservationSize(o Observation) int64 {
	var w sizeWalker
	n := int64(unsafe.Sizeof(o)) + w.walk(reflect.ValueOf(o), 0)
	if w.overflow {
		n += sizeWalkOverflow
	}
	return n
}

type sizeWalker struct {
	nodes    int
	overflow bool
	seen     map[uintptr]bool
}

// walk returns the bytes v refers to outside its own inline size.
func (w *sizeWalker) walk(v reflect.Value, depth int) int64 {
	w.nodes++
	if w.nodes > sizeWalkMaxNodes || depth > sizeWalkMaxDepth {
		w.overflow = true
		return 0
	}
	switch v.Kind() {
	case reflect.String:
		return int64(v.Len())
	case reflect.Struct:
		var n int64
		for i := range v.NumField() {
			n += w.walk(v.Field(i), depth+1)
		}
		return n
	case reflect.Array:
		var n int64
		for i := range v.Len() {
			n += w.walk(v.Index(i), depth+1)
		}
		return n
	case reflect.Slice:
		if v.IsNil() {
			return 0
		}
		n := int64(v.Cap()) * int64(v.Type().Elem().Size())
		if hasPointers(v.Type().Elem()) {
			for i := range v.Len() {
				n += w.walk(v.Index(i), depth+1)
				if w.overflow {
					break
				}
			}
		}
		return n
	case reflect.Map:
		if v.IsNil() {
			return 0
		}
		kt, vt := v.Type().Key(), v.Type().Elem()
		n := int64(48) + int64(v.Len())*int64(kt.Size()+vt.Size()+8)
		it := v.MapRange()
		for it.Next() {
			n += w.walk(it.Key(), depth+1) + w.walk(it.Value(), depth+1)
			if w.overflow {
				break
			}
		}
		return n
	case reflect.Pointer:
		if v.IsNil() {
			return 0
		}
		p := v.Pointer()
		if w.seen[p] {
			return 0
		}
		if w.seen == nil {
			w.seen = map[uintptr]bool{}
		}
		w.seen[p] = true
		return int64(v.Type().Elem().Size()) + w.walk(v.Elem(), depth+1)
	case reflect.Interface:
		if v.IsNil() {
			return 0
		}
		e := v.Elem()
		// A value boxed in an interface lives on the heap with its own size.
		return int64(e.Type().Size()) + w.walk(e, depth+1)
	}
	return 0
}

// hasPointers reports whether values of t can refer to more memory, so a
// slice of plain numbers (netip.Addr is not one) is charged by capacity alone.
func hasPointers(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return false
	case reflect.Array:
		return hasPointers(t.Elem())
	}
	return true
}
