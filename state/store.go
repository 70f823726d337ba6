package state

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"github.com/cockroachdb/pebble/v2"
)

// ChangelogRecord is one record of a store's changelog, as produced by
// StoreConfig.Changelog and consumed by Restore: Key is the namespaced store
// key, Value nil a delete.
type ChangelogRecord struct {
	Key, Value []byte
}

// CacheStats counts the work of a store's write-back cache since the store
// was registered.
type CacheStats struct {
	Hits, Misses uint64 // reads answered by the cache, or not
	Flushed      uint64 // dirty entries flushed (changelogged, forwarded)
	Evicted      uint64 // entries evicted to stay within CacheBytes
	Bytes        int    // current size, as counted against CacheBytes
	Entries      int    // current number of entries
}

// entryOverhead approximates the memory of an entry beyond its key and
// values (the entry struct and its map slot), counted against CacheBytes.
const entryOverhead = 96

// entry is a cached store key.
type entry struct {
	// key is the namespaced key (namespace byte, user key). Its bytes are
	// never modified: they are the map key.
	key string
	// val is the current value unless del. Its bytes are overwritten in
	// place by the next write when they fit.
	val []byte
	del bool
	// dirty: the entry was written since it was last flushed.
	dirty bool
	// pending: the entry's flushed value is in neither the staged batch
	// nor the DB: Task.Commit writes it there. Flushing at commit marks
	// entries pending rather than writing them to the (indexed) staged
	// batch, and a deferred commit keeps them so: a key updated in every
	// commit interval reaches the DB once per applied commit.
	pending bool
	// old is the value before the first write since the last flush, nil if
	// none. Kept only for data entries of stores with OnFlush.
	old []byte
	// prev and next link the LRU list; head is the most recently used.
	prev, next *entry
}

func (e *entry) size() int { return entryOverhead + len(e.key) + len(e.val) + len(e.old) }

func (e *entry) isDirty() bool   { return e.dirty }
func (e *entry) isPending() bool { return e.pending }

// dropStale removes from list, keeping the order, the entries that live
// rejects, once they make up most of it: list is a store's dirty or
// pending list, and live the number of entries in it that are still
// dirty or pending. The entries evicted since the last flush or commit
// then do not stay reachable through it, holding memory beyond the
// cache's bound until the next flush or applied commit. Amortized, the
// cost is constant per entry appended.
func dropStale(list []*entry, live int, keep func(*entry) bool) []*entry {
	if len(list) < 2*live+256 {
		return list
	}
	out := list[:0]
	for _, e := range list {
		if keep(e) {
			out = append(out, e)
		}
	}
	clear(list[len(out):])
	return out
}

// value returns the entry's value, nil if deleted.
func (e *entry) value() []byte {
	if e.del {
		return nil
	}
	return e.val
}

// keyBytes returns e.key's bytes without a copy; they must not be modified.
func (e *entry) keyBytes() []byte { return unsafe.Slice(unsafe.StringData(e.key), len(e.key)) }

// store is the implementation shared by KV and WindowStore: one store
// partition of a task, with its write-back cache.
type store struct {
	t         *Task
	id        storeID
	cfg       StoreConfig
	offsetKey []byte
	plen      int // length of the store prefix at the start of scratch
	// scratch starts with the store prefix; full keys are built after it.
	// Code that calls out (Changelog, OnFlush) while holding a key built
	// here takes the buffer (see takeScratch), so a re-entrant call cannot
	// overwrite it.
	scratch  []byte
	scratch2 []byte // the other buffer of takeScratch
	// wscratch builds window keys (WindowStore).
	wscratch []byte

	// staged: the store wrote to the staged batch since the last applied
	// commit.
	staged bool
	// pending lists the entries that became pending, in that order; it may
	// hold entries that since reached the batch or left the cache: they
	// are skipped.
	pending  []*entry
	npending int

	cache      map[string]*entry // nil if uncached
	head, tail *entry            // LRU list
	size       int
	ndirty     int
	// dirty lists entries in the order they became dirty; flushes follow
	// it, so downstream sees updates in a deterministic order. It may hold
	// entries that were since flushed or evicted: they are skipped.
	dirty []*entry
	spare []*entry // the backing array of a finished flush, for reuse
	stats CacheStats
	// budget is the DB's shared budget of the caches, nil if none or
	// uncached; charged is what the cache holds against it (see grow).
	budget  *budget
	charged int64

	// absentFrom makes cache misses cheap: every data key at or above it
	// (user key order) that is not in the cache is in neither the staged
	// batch nor the DB, so a miss there needs no read. It starts past the
	// largest key of the batch and the DB, or at the newest window that
	// warm cached whole (found before the first data access after a
	// reset, see knowAbsent), and moves past every key the cache evicts;
	// empty when the store has no data. A window store's keys grow with
	// the window start, so new windows miss for free.
	absentFrom  []byte
	absentKnown bool
	// last is the entry the last get found or made: the write of a
	// read-modify-write finds it without a second map lookup. nil once it
	// leaves the cache.
	last *entry
	// after returns a key above k and every key that may sort between k
	// and it in use (a window store skips to the next window start).
	after func(k []byte) []byte
	// first, if set, returns the smallest key of k's group (a window
	// store's window), whose keys absent caches all at once (see warm).
	first func(k []byte) []byte
}

func (s *store) init(t *Task, id storeID, cfg StoreConfig) {
	s.t = t
	s.id = id
	s.cfg = cfg
	s.offsetKey = appendOffsetKey(nil, id.name, id.partition)
	s.scratch = appendStorePrefix(make([]byte, 0, 64), id.name, id.partition)
	s.plen = len(s.scratch)
	if cfg.CacheBytes > 0 {
		s.cache = make(map[string]*entry)
		if b := t.db.budget; b != nil {
			s.budget = b
			b.stores.Add(1)
		}
	}
	if s.after == nil {
		s.after = func(k []byte) []byte { return append(k, 0) }
	}
}

// absent reports whether the data key (user key), not in the cache, is
// absent from the staged batch and the DB (see absentFrom). knowAbsent
// must have run since the last reset.
func (s *store) absent(key []byte) bool {
	return bytes.Compare(key, s.absentFrom) >= 0
}

// knowAbsent finds absentFrom after a reset, warming the cache (see
// warm). It runs before a read or write of a data key looks the cache up,
// so that the entries it adds are seen.
func (s *store) knowAbsent() error {
	if s.cache == nil || s.absentKnown {
		return nil
	}
	n := s.plen + 1
	lower := append(s.scratch[:s.plen:s.plen], nsData)
	upper := append(s.scratch[:s.plen:s.plen], nsData+1)
	it, err := s.t.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	s.absentFrom = []byte{} // no data: every key
	if it.Last() {
		last := slices.Clone(it.Key()[n:])
		var lo []byte
		if s.first != nil {
			lo = s.first(last)
		}
		s.absentFrom = s.after(last) // may reuse last
		if lo != nil {
			s.warm(it, lo)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	s.absentKnown = true
	return nil
}

// warm caches the keys from lo (user key) to the end of the data, as clean
// entries (knowAbsent runs before any data key enters the cache after a
// reset, so none is there yet), and lowers absentFrom to lo
// if they all fit in half the cache: the cache then holds every key from
// lo on. A window store warms its newest window, so that a task that
// starts (after a rebalance, a restart or an abort) in the middle of a
// window does not read Pebble for each of the window's new keys.
func (s *store) warm(it *pebble.Iterator, lo []byte) {
	n := s.plen + 1
	seek := append(append(s.scratch[:s.plen:s.plen], nsData), lo...)
	for valid := it.SeekGE(seek); valid; valid = it.Next() {
		nk := it.Key()[s.plen:]
		v, err := it.ValueAndErr()
		if err != nil || s.size+entryOverhead+len(nk)+len(v) > s.warmLimit() {
			return // the keys cached so far are valid; absentFrom stays
		}
		s.insert(newEntry(nk, v))
	}
	if it.Error() == nil {
		s.absentFrom = slices.Clone(seek[n:])
	}
}

// evicted keeps absentFrom above the data key nk (namespaced) the cache
// dropped.
func (s *store) evicted(nk []byte) {
	if !s.absentKnown || nk[0] != nsData {
		return // found from the batch and the DB when needed
	}
	if k := nk[1:]; bytes.Compare(k, s.absentFrom) >= 0 {
		s.absentFrom = s.after(slices.Clone(k))
	}
}

// Name returns the store's name.
func (s *store) Name() string { return s.id.name }

// Partition returns the store's partition.
func (s *store) Partition() int32 { return s.id.partition }

// Stats returns the store's cache counters. Like every method of a store,
// it must not be called concurrently with the use of its task.
func (s *store) Stats() CacheStats {
	st := s.stats
	st.Bytes = s.size
	st.Entries = len(s.cache)
	return st
}

// GetMeta returns the store metadata value called name. Metadata (an
// operator's stream-time, say) lives beside the data in a namespace of its
// own: it goes through the cache and the changelog like data, but never
// reaches OnFlush or Range. The returned slice follows the rules of KV.Get.
func (s *store) GetMeta(name string) ([]byte, bool, error) {
	v, ok, err := s.get(nsMeta, unsafe.Slice(unsafe.StringData(name), len(name)))
	if err != nil {
		return nil, false, s.fail("get meta "+name, err)
	}
	return v, ok, nil
}

// PutMeta sets the store metadata value called name; value must not be nil.
// The store copies value.
func (s *store) PutMeta(name string, value []byte) error {
	if value == nil {
		return s.errorf("put meta %s: nil value", name)
	}
	if err := s.write(nsMeta, unsafe.Slice(unsafe.StringData(name), len(name)), value, false); err != nil {
		return s.fail("put meta "+name, err)
	}
	return nil
}

// CommittedOffset returns the committed changelog offset of the store
// partition, the offset restore continues from; ok is false if none was
// ever committed. It reads the DB, not the staged batch.
func (s *store) CommittedOffset() (offset int64, ok bool, err error) {
	if s.t.closed {
		return 0, false, s.errorf("committed offset: %w", ErrClosed)
	}
	v, closer, err := s.t.db.pdb.Get(s.offsetKey)
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, s.errorf("committed offset: %w", err)
	}
	defer closer.Close()
	off, err := decodeOffset(v)
	if err != nil {
		return 0, false, s.errorf("committed offset: %w", err)
	}
	return off, true, nil
}

// decodeOffset decodes a committed changelog offset as Task.Commit and
// Restore store it: 8 bytes, big-endian.
func decodeOffset(v []byte) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("corrupt value of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Restore writes changelog records (namespaced keys as given to
// StoreConfig.Changelog, nil value a delete) directly into the DB, together
// with the committed offset end, in one batch. It bypasses cache and staged
// batch, and is only valid while the task has nothing staged, dirty or
// deferred: before processing starts, or right after a Commit or Abort. It drops the
// store's cached entries, which the records may make stale.
func (s *store) Restore(records []ChangelogRecord, end int64) error {
	if s.t.closed {
		return s.errorf("restore: %w", ErrClosed)
	}
	if s.staged || s.ndirty > 0 || s.npending > 0 || s.t.deferred != nil {
		return s.errorf("restore: store has writes not applied to the DB")
	}
	if end < 0 {
		return s.errorf("restore: negative offset %d", end)
	}
	b := s.t.db.pdb.NewBatch()
	defer b.Close()
	var key []byte
	for i, r := range records {
		if len(r.Key) == 0 || (r.Key[0] != nsData && r.Key[0] != nsMeta) {
			return s.errorf("restore: record %d: key %q has no valid namespace", i, r.Key)
		}
		key = append(append(key[:0], s.scratch[:s.plen]...), r.Key...)
		var err error
		if r.Value == nil {
			err = b.Delete(key, nil)
		} else {
			err = b.Set(key, r.Value, nil)
		}
		if err != nil {
			return s.errorf("restore: %w", err)
		}
	}
	var val [8]byte
	binary.BigEndian.PutUint64(val[:], uint64(end))
	if err := b.Set(s.offsetKey, val[:], nil); err != nil {
		return s.errorf("restore: %w", err)
	}
	if err := s.t.db.apply(b); err != nil {
		return s.errorf("restore: %w", err)
	}
	s.reset()
	return nil
}

// fail records that an operation failed midway, leaving the staged batch
// and the cache in an unspecified state (Commit refuses until Abort), and
// returns err wrapped with op.
func (s *store) fail(op string, err error) error {
	if !errors.Is(err, ErrClosed) {
		s.t.failed = true
	}
	return s.errorf("%s: %w", op, err)
}

func (s *store) errorf(format string, args ...any) error {
	return fmt.Errorf("state: task %s: store %s/%d: "+format,
		append([]any{s.t.name, s.id.name, s.id.partition}, args...)...)
}

// fullKey builds the DB key of (ns, key) in scratch. The namespaced key is
// its tail from s.plen.
func (s *store) fullKey(ns byte, key []byte) []byte {
	b := append(s.scratch[:s.plen], ns)
	b = append(b, key...)
	s.scratch = b
	return b
}

// takeScratch hands the scratch buffer (holding the last key built) to a
// caller that calls out while using it; giveScratch returns it. Meanwhile a
// second buffer serves as scratch, so a re-entrant call cannot overwrite
// the key.
func (s *store) takeScratch() []byte {
	b := s.scratch
	if s.scratch2 == nil {
		s.scratch2 = append(make([]byte, 0, cap(b)), b[:s.plen]...)
	}
	s.scratch, s.scratch2 = s.scratch2, nil
	return b
}

func (s *store) giveScratch(b []byte) { s.scratch, s.scratch2 = b, s.scratch }

// readStaged reads a full key through the staged batch (which reads
// through to the DB) and returns a copy of the value, nil if absent.
func (s *store) readStaged(full []byte) ([]byte, error) {
	v, closer, err := s.t.batch.Get(full)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c := make([]byte, len(v)) // non-nil even when empty
	copy(c, v)
	return c, closer.Close()
}

// get reads (ns, key): cache, then staged batch, then DB.
func (s *store) get(ns byte, key []byte) ([]byte, bool, error) {
	if s.t.closed {
		return nil, false, ErrClosed
	}
	if ns == nsData {
		if err := s.knowAbsent(); err != nil {
			return nil, false, err
		}
	}
	full := s.fullKey(ns, key)
	if s.cache == nil {
		v, err := s.readStaged(full)
		return v, v != nil, err
	}
	if e, ok := s.cache[string(full[s.plen:])]; ok {
		s.stats.Hits++
		s.touch(e)
		s.last = e
		return e.value(), !e.del, nil
	}
	s.stats.Misses++
	if ns == nsData && s.absent(key) {
		return s.insertAbsent(full[s.plen:])
	}
	v, closer, err := s.t.batch.Get(full)
	var e *entry
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		e = newEntry(full[s.plen:], nil)
		e.del = true
	case err != nil:
		return nil, false, err
	default:
		e = newEntry(full[s.plen:], v)
		if err := closer.Close(); err != nil {
			return nil, false, err
		}
	}
	s.insert(e)
	s.last = e
	if err := s.evict(); err != nil {
		return nil, false, err
	}
	return e.value(), !e.del, nil
}

// insertAbsent caches the namespaced key nk as absent.
func (s *store) insertAbsent(nk []byte) ([]byte, bool, error) {
	e := newEntry(nk, nil)
	e.del = true
	s.insert(e)
	s.last = e
	return nil, false, s.evict()
}

// newEntry returns a clean entry for the namespaced key nk with a copy of
// value, key and value in one allocation.
func newEntry(nk, value []byte) *entry {
	buf := make([]byte, len(nk)+len(value))
	copy(buf, nk)
	copy(buf[len(nk):], value)
	return &entry{
		key: unsafe.String(unsafe.SliceData(buf), len(nk)),
		val: buf[len(nk):len(buf):len(buf)],
	}
}

// write puts (value non-nil) or deletes (del) (ns, key).
func (s *store) write(ns byte, key, value []byte, del bool) error {
	if s.t.closed {
		return ErrClosed
	}
	if ns == nsData {
		if err := s.knowAbsent(); err != nil {
			return err
		}
	}
	full := s.fullKey(ns, key)
	wantOld := ns == nsData && s.cfg.OnFlush != nil
	if s.cache == nil {
		return s.writeThrough(full, value, del, wantOld)
	}
	e, ok := s.last, s.last != nil && s.last.key == string(full[s.plen:])
	if !ok {
		e, ok = s.cache[string(full[s.plen:])]
	}
	if !ok {
		var old []byte
		if wantOld {
			if !s.absent(key) {
				var err error
				if old, err = s.readStaged(full); err != nil {
					return err
				}
			}
		}
		e = newEntry(full[s.plen:], value)
		e.del = del
		e.old = old
		s.insert(e)
	} else {
		before := e.size()
		if !e.dirty && wantOld {
			// The clean value is the staged one: it becomes old, and
			// the new value needs a buffer of its own.
			e.old = e.value()
			e.val = nil
		}
		e.del = del
		if e.val == nil || len(value) > cap(e.val) {
			e.val = make([]byte, len(value)) // non-nil even when empty
		} else {
			e.val = e.val[:len(value)]
		}
		copy(e.val, value)
		s.grow(e.size()-before, 0)
		s.touch(e)
	}
	if !e.dirty {
		e.dirty = true
		s.ndirty++
		s.dirty = append(dropStale(s.dirty, s.ndirty, (*entry).isDirty), e)
	}
	return s.evict()
}

// writeThrough writes to the staged batch of an uncached store.
func (s *store) writeThrough(full, value []byte, del, wantOld bool) error {
	var old []byte
	if wantOld {
		var err error
		if old, err = s.readStaged(full); err != nil {
			return err
		}
	}
	if del {
		value = nil
	}
	buf := s.takeScratch() // holds full
	err := s.stage(full[s.plen:], full, value, old)
	s.giveScratch(buf)
	return err
}

// stage writes the full key (nk its namespaced tail) to the staged batch and
// emits it (see emit). value nil is a delete.
func (s *store) stage(nk, full, value, old []byte) error {
	if err := s.put(s.t.batch, full, value); err != nil {
		return err
	}
	return s.emit(nk, value, old)
}

// put writes the full key to b, value nil a delete, and notes that the
// store has writes in the staged batch.
func (s *store) put(b *pebble.Batch, full, value []byte) error {
	var err error
	if value == nil {
		err = b.Delete(full, nil)
	} else {
		err = b.Set(full, value, nil)
	}
	s.staged = true
	return err
}

// emit calls Changelog and, for data, OnFlush with a flushed write of the
// namespaced key nk.
func (s *store) emit(nk, value, old []byte) error {
	if s.cfg.Changelog != nil {
		s.cfg.Changelog(nk, value)
	}
	if nk[0] == nsData && s.cfg.OnFlush != nil {
		return s.cfg.OnFlush(nk[1:], value, old)
	}
	return nil
}

// flushEntry flushes a dirty entry and marks it clean: it emits the write,
// and either writes it to the staged batch (toBatch) or marks it pending.
func (s *store) flushEntry(e *entry, cached, toBatch bool) error {
	e.dirty = false
	s.ndirty--
	s.stats.Flushed++
	old := e.old
	e.old = nil
	if cached {
		s.grow(-len(old), 0)
	}
	if !toBatch {
		if !e.pending {
			e.pending = true
			s.npending++
			s.pending = append(dropStale(s.pending, s.npending, (*entry).isPending), e)
		}
		return s.emit(e.keyBytes(), e.value(), old)
	}
	s.unpend(e)
	full := append(s.takeScratch()[:s.plen], e.key...)
	err := s.stage(e.keyBytes(), full, e.value(), old)
	s.giveScratch(full)
	return err
}

// unpend clears e's pending mark, once its value is (about to be) written
// to a batch.
func (s *store) unpend(e *entry) {
	if e.pending {
		e.pending = false
		s.npending--
	}
}

// writePending writes the pending entries to b, in the order they became
// pending, and clears their marks.
func (s *store) writePending(b *pebble.Batch) error {
	list := s.pending
	s.pending = list[:0]
	for i, e := range list {
		list[i] = nil
		if !e.pending {
			continue
		}
		s.unpend(e)
		full := append(s.scratch[:s.plen], e.key...)
		s.scratch = full
		if err := s.put(b, full, e.value()); err != nil {
			return err
		}
	}
	return nil
}

// flushOnce flushes the entries dirty when it starts, in the order they
// became dirty (see flushEntry for toBatch). Entries dirtied meanwhile (by
// an OnFlush) are left for the next pass.
func (s *store) flushOnce(toBatch bool) error {
	list := s.dirty
	s.dirty, s.spare = s.spare[:0], nil
	for i, e := range list {
		list[i] = nil
		if !e.dirty {
			continue
		}
		if err := s.flushEntry(e, true, toBatch); err != nil {
			return err
		}
	}
	if s.spare == nil {
		s.spare = list[:0]
	}
	return nil
}

// flush flushes until the store has no dirty entries, and writes them and
// the pending ones to the staged batch, so that an iterator over the batch
// sees the store's current contents.
func (s *store) flush() error {
	for range maxFlushPasses {
		if s.ndirty == 0 {
			return s.writePending(s.t.batch)
		}
		if err := s.flushOnce(true); err != nil {
			return err
		}
	}
	return fmt.Errorf("flush did not settle after %d passes", maxFlushPasses)
}

// reset drops the cache's contents.
func (s *store) reset() {
	clear(s.cache)
	clear(s.dirty)
	s.dirty = s.dirty[:0]
	clear(s.pending)
	s.pending = s.pending[:0]
	s.head, s.tail = nil, nil
	s.release()
	s.size, s.ndirty, s.npending = 0, 0, 0
	s.staged = false
	s.absentFrom, s.absentKnown = nil, false
	s.last = nil
}

// insert adds e to the cache as the most recently used entry.
func (s *store) insert(e *entry) {
	s.cache[e.key] = e
	s.grow(e.size(), 1)
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	} else {
		s.tail = e
	}
	s.head = e
}

// touch makes e the most recently used entry.
func (s *store) touch(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	e.next = s.head
	s.head.prev = e
	s.head = e
}

func (s *store) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

// evict removes least recently used entries, flushing dirty ones and
// writing pending ones to the staged batch, until the cache is within
// CacheBytes and, if it must give way (see budget), the caches of the DB
// within their shared budget. An entry larger than CacheBytes is thus
// written through at once, and so may be the writes of a store while the
// caches of others hold the budget.
func (s *store) evict() error {
	for s.tail != nil && s.full() {
		if err := s.evictTail(); err != nil {
			return err
		}
	}
	return nil
}

// evictTail evicts the least recently used entry (see evict).
func (s *store) evictTail() error {
	e := s.tail
	s.unlink(e)
	delete(s.cache, e.key)
	if e == s.last {
		s.last = nil
	}
	s.grow(-e.size(), -1)
	s.stats.Evicted++
	s.evicted(e.keyBytes())
	switch {
	case e.dirty:
		return s.flushEntry(e, false, true)
	case e.pending:
		// Flushed already: it only needs to stay readable.
		s.unpend(e)
		full := append(s.takeScratch()[:s.plen], e.key...)
		err := s.put(s.t.batch, full, e.value())
		s.giveScratch(full)
		return err
	}
	return nil
}

// rangeData calls fn for the data entries with start <= user key < end (nil:
// unbounded) in ascending order, after flushing the store's dirty entries.
// fn's errors are returned as is, others wrapped.
func (s *store) rangeData(start, end []byte, fn func(key, value []byte) error) error {
	if s.t.closed {
		return s.errorf("range: %w", ErrClosed)
	}
	if start != nil && end != nil && bytes.Compare(start, end) >= 0 {
		return nil
	}
	if err := s.flush(); err != nil {
		return s.fail("range", err)
	}
	n := s.plen + 1
	// The bounds must stay put while the iterator lives: not in scratch.
	bounds := make([]byte, 0, 2*n+len(start)+len(end)+1)
	bounds = append(append(bounds, s.scratch[:s.plen]...), nsData)
	lower := append(bounds, start...)
	var upper []byte
	if end != nil {
		upper = append(append(lower[len(lower):], bounds[:n]...), end...)
	} else {
		upper = append(append(lower[len(lower):], bounds[:s.plen]...), nsData+1)
	}
	it, err := s.t.batch.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return s.errorf("range: %w", err)
	}
	for valid := it.First(); valid; valid = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return s.errorf("range: %w", err)
		}
		if err := fn(it.Key()[n:], v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil { // Close returns the iteration's error
		return s.errorf("range: %w", err)
	}
	return nil
}

// KV is a key-value store partition of a task. Like its task, a KV is used
// by one goroutine at a time.
type KV struct {
	store
}

// Get returns the value of key: from the cache, else the staged batch, else
// the DB. The returned slice must not be modified, and is valid until the
// next write to this store.
func (s *KV) Get(key []byte) (value []byte, ok bool, err error) {
	v, ok, err := s.get(nsData, key)
	if err != nil {
		return nil, false, s.fail("get", err)
	}
	return v, ok, nil
}

// GetFlushed returns the value of key as of the store's last flush: what
// OnFlush has forwarded downstream, ignoring writes still dirty in the
// cache. Without a cache it is Get; a cached store needs OnFlush (which
// makes it keep the flushed value of a dirty entry). It does not load key
// into the cache. The returned slice is a copy.
func (s *KV) GetFlushed(key []byte) (value []byte, ok bool, err error) {
	if s.t.closed {
		return nil, false, s.fail("get flushed", ErrClosed)
	}
	full := s.fullKey(nsData, key)
	if s.cache != nil {
		if s.cfg.OnFlush == nil {
			return nil, false, s.errorf("get flushed: a cached store without OnFlush does not keep flushed values")
		}
		if e, ok := s.cache[string(full[s.plen:])]; ok {
			v := e.value()
			if e.dirty {
				v = e.old // nil: absent
			}
			if v == nil {
				return nil, false, nil
			}
			return slices.Clone(v), true, nil
		}
	}
	v, err := s.readStaged(full)
	if err != nil {
		return nil, false, s.fail("get flushed", err)
	}
	return v, v != nil, nil
}

// Put sets key to value. value must not be nil (use Delete); it may be
// empty. The store copies key and value.
func (s *KV) Put(key, value []byte) error {
	if value == nil {
		return s.errorf("put: nil value (use Delete)")
	}
	if err := s.write(nsData, key, value, false); err != nil {
		return s.fail("put", err)
	}
	return nil
}

// Delete deletes key.
func (s *KV) Delete(key []byte) error {
	if err := s.write(nsData, key, nil, true); err != nil {
		return s.fail("delete", err)
	}
	return nil
}

// Range calls fn for each entry with start <= key < end, in ascending key
// order; a nil start begins at the first key, a nil end runs to the last.
// It first flushes the store's dirty cache entries into the staged batch
// (calling Changelog and OnFlush), then iterates the batch merged over the
// DB. fn's slices are only valid during the call. fn may read the store
// and may write to it (Put, Delete): the iteration does not see those
// writes. An error from fn stops the iteration and is returned as is.
func (s *KV) Range(start, end []byte, fn func(key, value []byte) error) error {
	return s.rangeData(start, end, fn)
}
