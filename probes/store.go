package probes

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/acmediag/acmediag/reports"
)

// Default store limits. 16 MiB holds the latest observation of every
// (name, vantage, kind) of a few thousand names, the history of fewer; it
// keeps the scheduler benchmark's RSS at about 70 MiB at 10,000 names × 4
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
// slot's extra fields and eviction-order entries (the two queues may hold
// up to twice as many entries as observations).
const (
	keyOverhead = 512
	obsOverhead = 64
)

// storeKey is one ring: a name as seen from one vantage by one probe kind.
type storeKey struct{ name, vantage, kind string }

// Store keeps recent observations: a ring buffer per (target name, vantage,
// kind), total memory bounded by an estimate of each observation's size.
// When the bound is hit, history goes first: the oldest observation that
// is not its key's newest; only when every key is down to its newest does
// the key updated longest ago lose it. A key probed rarely (the canary,
// hourly) so keeps its latest observation while frequent probes turn
// their history over. Observations handed out share their slices with the
// store: read them, never modify them. Safe for concurrent use.
type Store struct {
	perKey   int
	maxBytes int64

	mu      sync.Mutex
	rings   map[storeKey]*ring
	byName  map[string][]*ring // normalized name → its rings (one per vantage and kind)
	history orderQueue         // observations that stopped being their key's newest, in that order
	newest  orderQueue         // each key's newest observation, in insertion order
	spare   *ring              // an emptied ring kept for the next new key (stale queue entries never match its new seqs)
	seq     uint64
	count   int
	bytes   int64
	dropped int64
}

// orderQueue is a FIFO of orderEntry whose stale entries are skipped when
// popped and dropped by compact.
type orderQueue struct {
	entries []orderEntry
	head    int // entries[head:] are queued
}

func (q *orderQueue) push(e orderEntry) { q.entries = append(q.entries, e) }

func (q *orderQueue) pop() (orderEntry, bool) {
	if q.head == len(q.entries) {
		return orderEntry{}, false
	}
	e := q.entries[q.head]
	q.entries[q.head] = orderEntry{}
	q.head++
	return e, true
}

// compact keeps the entries live says are still live, once the queue holds
// more than twice want (and at least 1024) entries.
func (q *orderQueue) compact(want int, live func(orderEntry) bool) {
	n := len(q.entries) - q.head
	if n < 1024 || n < 2*want {
		return
	}
	out := make([]orderEntry, 0, want+want/2+16)
	for _, e := range q.entries[q.head:] {
		if live(e) {
			out = append(out, e)
		}
	}
	q.entries, q.head = out, 0
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

// orderEntry names one observation of a ring; it is stale once the ring
// dropped that observation (seq older than the ring's oldest), or it left
// the queue it is in, or the ring was removed.
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
	return &Store{perKey: l.PerKey, maxBytes: l.MaxBytes, rings: map[storeKey]*ring{}, byName: map[string][]*ring{}}
}

// normName is the form names are indexed under: DNS names compare without
// case and without the root dot.
func normName(s string) string { return strings.ToLower(strings.TrimSuffix(s, ".")) }

func keyOf(o Observation) storeKey {
	return storeKey{name: normName(o.Target.Name), vantage: o.Vantage.Name, kind: o.Kind}
}

// Add records o, evicting the key's oldest when its ring is full and, while
// the byte bound is exceeded, the oldest history of all, then the newest
// observations of the keys updated longest ago. An observation larger than
// the whole bound is not kept.
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
		// One slot to start: at the byte bound most keys hold one or two
		// observations, and a slot is some 330 bytes. At the bound, each
		// new key's ring is usually the one eviction just emptied.
		if r = s.spare; r != nil {
			s.spare = nil
			*r = ring{key: k, buf: r.buf[:0]}
		} else {
			r = &ring{key: k, buf: make([]storedObs, 0, 1)}
		}
		s.rings[k] = r
		s.bytes += keyOverhead
		s.byName[k.name] = append(s.byName[k.name], r)
	}
	if r.n == s.perKey {
		old := r.popOldest()
		s.count--
		s.bytes -= old.size
	}
	if r.n > 0 {
		s.history.push(orderEntry{r: r, seq: r.newest().seq})
	}
	s.seq++
	r.push(storedObs{obs: o, seq: s.seq, size: size}, s.perKey)
	s.count++
	s.bytes += size
	s.newest.push(orderEntry{r: r, seq: s.seq})
	for s.bytes > s.maxBytes {
		e, ok := s.history.pop()
		if ok && !inHistory(e) {
			continue // stale: dropped by its ring already
		}
		if !ok {
			if e, ok = s.newest.pop(); !ok {
				break
			}
			if !isNewest(e) {
				continue
			}
		}
		s.evictOldest(e.r)
	}
	s.compact()
}

// inHistory: e is a queued observation of its ring that is not its newest.
func inHistory(e orderEntry) bool {
	return !e.r.removed && e.r.n > 1 && e.seq >= e.r.oldestSeq() && e.seq != e.r.newest().seq
}

// isNewest: e is its ring's newest observation.
func isNewest(e orderEntry) bool {
	return !e.r.removed && e.r.n > 0 && e.r.newest().seq == e.seq
}

// evictOldest drops r's oldest observation for the byte bound, and r itself
// once empty.
func (s *Store) evictOldest(r *ring) {
	old := r.popOldest()
	s.count--
	s.bytes -= old.size
	s.dropped++
	if r.n == 0 {
		s.forget(r)
		if cap(r.buf) <= 4 {
			s.spare = r
		}
	}
}

// compact drops stale entries from the queues so that they stay
// proportional to the observations kept (rings turning over leave stale
// entries behind that eviction would otherwise only skip later).
func (s *Store) compact() {
	s.history.compact(s.count-len(s.rings), inHistory)
	s.newest.compact(len(s.rings), isNewest)
}

// forget removes an empty or unwanted ring from the indexes.
func (s *Store) forget(r *ring) {
	r.removed = true
	s.bytes -= keyOverhead
	delete(s.rings, r.key)
	rs := s.byName[r.key.name]
	if i := slices.Index(rs, r); i >= 0 {
		rs = slices.Delete(rs, i, i+1)
	}
	if len(rs) == 0 {
		delete(s.byName, r.key.name)
	} else {
		s.byName[r.key.name] = rs
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
	if r.n < len(r.buf) {
		// A free slot: the oldest were dropped.
		r.buf[(r.start+r.n)%len(r.buf)] = so
		r.n++
		return
	}
	if r.start == 0 && len(r.buf) < cap(r.buf) {
		r.buf = append(r.buf, so)
		r.n++
		return
	}
	// Full: grow lazily (most keys never fill their ring), doubling up to
	// capacity, oldest first again. (The caller dropped the oldest of a
	// ring at capacity, so a full ring here is below it.)
	grown := make([]storedObs, 0, min(capacity, max(2*len(r.buf), 1)))
	r.each(func(o *storedObs) { grown = append(grown, *o) })
	r.buf, r.start = append(grown, so), 0
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
	if n, ok := w.plain(&o); ok {
		return n
	}
	w = sizeWalker{}
	n := int64(unsafe.Sizeof(o)) + w.walk(reflect.ValueOf(o), 0)
	if w.overflow {
		n += sizeWalkOverflow
	}
	return n
}

type sizeWalker struct {
	nodes    int
	overflow bool
	seen     []uintptr // pointers counted already; a few per observation
	seenMap  map[uintptr]bool
}

// Sizes the plain walk needs, as the reflective walk sees them.
var (
	sizeofFinding    = int64(reflect.TypeFor[reports.Finding]().Size())
	sizeofCheck      = int64(reflect.TypeFor[reports.Check]().Size())
	sizeofAddrDetail = addrDetailSize()
)

// addrDetailSize is the size of what a valid netip.Addr points to (its
// unique.Handle's value), which the reflective walk charges.
func addrDetailSize() int64 {
	z, ok := reflect.TypeFor[netip.Addr]().FieldByName("z")
	if !ok || z.Type.Kind() != reflect.Struct || z.Type.NumField() != 1 || z.Type.Field(0).Type.Kind() != reflect.Pointer {
		return -1 // unknown layout: plain declines every observation
	}
	return int64(z.Type.Field(0).Type.Elem().Size())
}

// plain computes, without reflection, the same estimate as the reflective
// walk for the common shape of an observation: no trace, no resolvers, no
// problem or evidence in any finding. Each step below counts the nodes and
// bytes the reflective walk would; TestObservationSizePlain holds them
// equal. ok is false for any other shape, or one near the node bound.
func (w *sizeWalker) plain(o *Observation) (n int64, ok bool) {
	if o.Trace != nil || o.Vantage.Resolvers != nil || sizeofAddrDetail < 0 || len(o.Findings)+len(o.Checks) > 1000 {
		return 0, false
	}
	for i := range o.Findings {
		if o.Findings[i].Problem != nil || o.Findings[i].Evidence != nil {
			return 0, false
		}
	}
	t, v := &o.Target, &o.Vantage
	n = int64(unsafe.Sizeof(*o))
	// Observation, Target and its 5 strings, Vantage and its 4 strings, Kind.
	w.nodes += 1 + 6 + 5 + 1
	n += int64(len(t.Name) + len(t.Challenge) + len(t.Token) + len(t.KeyAuth) + len(t.ExpectTXT))
	n += int64(len(v.Name) + len(v.Kind) + len(v.Region) + len(v.RIR) + len(o.Kind))
	// SourceAddr: Addr, its uint128 (hi, lo), its handle and the handle's
	// pointer; a valid address points to its detail (isV6, zone).
	w.nodes += 6
	if v.SourceAddr.IsValid() {
		w.nodes += 3
		n += sizeofAddrDetail + int64(len(v.SourceAddr.Zone()))
	}
	w.nodes++ // Resolvers, nil
	// Start: Time, wall, ext, loc; loc is nil for UTC, else a *Location
	// walked as the reflective walk would.
	w.nodes += 3
	if loc := o.Start.Location(); loc == time.UTC {
		w.nodes++
	} else {
		n += w.walk(reflect.ValueOf(loc), 2)
	}
	w.nodes += 2 // Duration, OK
	w.nodes++    // Findings
	if o.Findings != nil {
		n += int64(cap(o.Findings)) * sizeofFinding
		for i := range o.Findings {
			f := &o.Findings[i]
			// Finding, Code, Severity, 5 strings, Problem (nil), Evidence (nil).
			w.nodes += 10
			n += int64(len(f.Code) + len(f.Name) + len(f.Vantage) + len(f.Summary) + len(f.Detail) + len(f.Fix))
		}
	}
	w.nodes++ // Checks
	if o.Checks != nil {
		n += int64(cap(o.Checks)) * sizeofCheck
		for i := range o.Checks {
			c := &o.Checks[i]
			// Check, 3 strings, Status, Duration, Note.
			w.nodes += 7
			n += int64(len(c.Name) + len(c.Target) + len(c.Vantage) + len(c.Status) + len(c.Note))
		}
	}
	w.nodes++ // Trace, nil
	if w.overflow || w.nodes > sizeWalkMaxNodes {
		return 0, false
	}
	return n, true
}

// markSeen records p and reports whether it was recorded before.
func (w *sizeWalker) markSeen(p uintptr) bool {
	if w.seenMap != nil {
		if w.seenMap[p] {
			return true
		}
		w.seenMap[p] = true
		return false
	}
	if slices.Contains(w.seen, p) {
		return true
	}
	if len(w.seen) < 16 {
		w.seen = append(w.seen, p)
		return false
	}
	w.seenMap = make(map[uintptr]bool, 2*len(w.seen))
	for _, q := range w.seen {
		w.seenMap[q] = true
	}
	w.seenMap[p] = true
	return false
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
		if w.markSeen(v.Pointer()) {
			return 0
		}
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
