package state

import (
	"fmt"
	"sync/atomic"
)

// MinMemoryBytes is the smallest memory budget SplitMemory divides: below
// it the Pebble memtables would be too small to write efficiently.
const MinMemoryBytes = 32 << 20

// MemorySplit divides the memory budget of an engine instance (the
// engine's Options.MemoryBytes) among its stores. The zero MemorySplit is
// no budget: every part takes its package's default.
//
// Pebble reserves its memtables inside its block cache: blocks are evicted
// to make room for them, so a Pebble DB holds at most its cache size in
// blocks and memtables together, as long as its memtables fit. Pebble
// keeps at most two memtables queued (it stalls writes at
// MemTableStopWritesThreshold = 2 times the memtable size) and one more,
// flushed, for reuse: three in all, so each memtable is a quarter of its
// DB's cache, which leaves a quarter or more for blocks. Pebble allocates
// both with C's malloc, outside the Go heap: no GC headroom, but the
// allocator keeps memory around the blocks Pebble frees (glibc, even with
// its free pages returned to the OS every second: measured 18% more than
// the caches held under a 512 MiB budget, 45% under 128 MiB), so a cache
// gets four fifths of its DB's part, the last fifth being the
// allocator's.
//
// The write-back caches, the staged batches and the log's compaction map
// are Go heap: with GOGC=100 the heap may reach twice what is live before
// a collection, so they are given half of the memory they are budgeted,
// the other half being their GC headroom.
type MemorySplit struct {
	// StateCacheBytes is the state DB's block cache (Options.CacheBytes),
	// its memtables included.
	StateCacheBytes int64
	// StateMemTableBytes is one memtable of the state DB
	// (Options.MemTableBytes): a quarter of StateCacheBytes.
	StateMemTableBytes uint64
	// LogCacheBytes and LogMemTableBytes are the embedded log's (its
	// Options.CacheBytes and MemTableBytes), 0 when the engine does not
	// open the embedded log.
	LogCacheBytes    int64
	LogMemTableBytes uint64
	// LogCompactBytes bounds the key map of the embedded log's
	// compactions (its Options.CompactBytes), 0 when the engine does not
	// open the embedded log.
	LogCompactBytes int64
	// WriteCacheBytes bounds the write-back caches of every store
	// partition together (Options.WriteCacheBytes); 0 when caching is off.
	WriteCacheBytes int64
	// StagedBytes bounds the staged batches of every task together: the
	// writes that cache evictions and uncached stores hold in memory until
	// the next checkpoint, as Task.StagedBytes counts them. The engine
	// checkpoints early when its tasks' staged batches pass it. A staged
	// batch's index (a skiplist node per write) about doubles what it
	// counts, and a checkpoint copies it into the batch it applies: so
	// StagedBytes is a sixth of their part of the budget (three times it
	// held, as much again of GC headroom).
	StagedBytes int64
}

// Shares of the budget, in thousandths. A Pebble DB's cache is four
// fifths of its part, the rest being C's allocator's; the heap parts are
// budgeted twice what they may hold: GC headroom (see MemorySplit).
const (
	stateShare     = 450 // the state DB's Pebble: 360 cache, 90 allocator
	logShare       = 200 // the embedded log's Pebble, when the engine opens it: 160 cache, 40 allocator
	compactShare   = 50  // the log's compaction map: 25 held, 25 GC headroom
	writeBackShare = 200 // the write-back caches: 100 held, 100 GC headroom
	stagedShare    = 100 // the staged batches: 50 held with their index and copy, 50 GC headroom
)

// SplitMemory divides total bytes among the stores of an engine instance
// (see MemorySplit): embeddedLog says whether the engine opens the
// embedded log (whose shares otherwise go to the state DB), caching
// whether its stores have write-back caches (whose share otherwise goes
// to the state DB's block cache). With embedded log and caching:
//
//	state DB's Pebble     36% block cache and memtables, 9% C allocator
//	embedded log's Pebble 16% block cache and memtables, 4% C allocator
//	write-back caches     10% held, 10% GC headroom
//	staged batches         5% held (with index and copy), 5% GC headroom
//	log's compaction map 2.5% held, 2.5% GC headroom
//
// A total of 0 returns the zero MemorySplit (no budget); a total below
// MinMemoryBytes or negative is an error.
func SplitMemory(total int64, embeddedLog, caching bool) (MemorySplit, error) {
	switch {
	case total == 0:
		return MemorySplit{}, nil
	case total < 0:
		return MemorySplit{}, fmt.Errorf("state: memory budget %d is negative", total)
	case total < MinMemoryBytes:
		return MemorySplit{}, fmt.Errorf("state: memory budget of %d bytes is below the minimum of %d (32 MiB)", total, MinMemoryBytes)
	}
	part := func(thousandths int64) int64 { return total / 1000 * thousandths }
	state := int64(stateShare)
	var m MemorySplit
	if embeddedLog {
		m.LogCacheBytes = part(logShare) / 5 * 4
		m.LogMemTableBytes = uint64(m.LogCacheBytes / 4)
		m.LogCompactBytes = part(compactShare) / 2
	} else {
		state += logShare + compactShare
	}
	if caching {
		m.WriteCacheBytes = part(writeBackShare) / 2
	} else {
		state += writeBackShare
	}
	m.StagedBytes = part(stagedShare) / 6
	m.StateCacheBytes = part(state) / 5 * 4
	m.StateMemTableBytes = uint64(m.StateCacheBytes / 4)
	return m, nil
}

// budgetEntryExtra is what a cached entry costs beyond what it counts
// against its store's CacheBytes (entryOverhead, key and values): its
// slot in the cache's map, its places in the dirty and pending lists, and
// the rounding of its two allocations to Go's size classes. Measured: an
// entry of an 8-byte key and value takes about 175 bytes of heap and
// counts 112 against CacheBytes. The shared budget counts what the heap
// holds; CacheBytes keeps its historical measure.
const budgetEntryExtra = 64

// budget is the DB-wide account of the write-back caches' memory
// (Options.WriteCacheBytes). Stores of different tasks, used
// concurrently, charge it atomically. When the total is over the budget,
// a store written or read that holds more than its fair share (the budget
// divided by the cached store partitions) evicts its own least recently
// used entries until the total is within the budget or the store within
// its share (Kafka Streams' ThreadCache evicts from the cache written
// too); a store within its share evicts only once the total passes 9/8
// of the budget, so that stores holding more, but idle, do not starve it.
// And a store above its share gives the excess back at Task.Commit while
// the total is above 7/8 of the budget. So the total stays within 9/8 of
// the budget, plus the entry each task is adding.
type budget struct {
	limit int64
	used  atomic.Int64
	// stores counts the registered store partitions with a cache.
	stores atomic.Int64
}

// over reports whether a store charging charged must evict (see budget).
func (b *budget) over(charged int64) bool {
	used := b.used.Load()
	return used > b.limit && (charged > b.share() || used > b.limit+b.limit/8)
}

// tight reports whether the caches hold more than 7/8 of the budget: the
// point at which stores above their fair share give the excess back.
func (b *budget) tight() bool { return b.used.Load() > b.limit-b.limit/8 }

// share returns a store partition's fair share of the budget.
func (b *budget) share() int64 { return b.limit / max(b.stores.Load(), 1) }

// WriteCacheUsage returns the memory the write-back caches of all store
// partitions hold together, as charged against Options.WriteCacheBytes,
// and that budget; both 0 without one. The total stays within 9/8 of the
// budget (see Options.WriteCacheBytes), plus an entry per task being
// written at that moment. Safe for concurrent use.
func (db *DB) WriteCacheUsage() (used, limit int64) {
	if db.budget == nil {
		return 0, 0
	}
	return db.budget.used.Load(), db.budget.limit
}

// grow adds delta to the cache's size, as counted against CacheBytes, and
// entries times budgetEntryExtra more to its charge against the DB's
// shared budget, if any.
func (s *store) grow(delta, entries int) {
	s.size += delta
	if s.budget != nil {
		c := int64(delta + entries*budgetEntryExtra)
		s.charged += c
		s.budget.used.Add(c)
	}
}

// release returns the cache's whole charge to the DB's budget, once the
// cache is emptied.
func (s *store) release() {
	if s.budget != nil {
		s.budget.used.Add(-s.charged)
		s.charged = 0
	}
}

// full reports whether the cache must evict: it is over its CacheBytes, or
// over the shared budget (see budget).
func (s *store) full() bool {
	return s.size > s.cfg.CacheBytes || (s.budget != nil && s.budget.over(s.charged))
}

// warmLimit is the most a cache warms (see warm): half of the store's
// bound, its CacheBytes or, when lower, its fair share of the budget.
func (s *store) warmLimit() int {
	limit := s.cfg.CacheBytes
	if s.budget != nil {
		limit = int(min(int64(limit), s.budget.share()))
	}
	return limit / 2
}

// trim gives the charge of a store above its fair share back to a budget
// that runs short, evicting least recently used entries. Task.Commit calls
// it once every entry is clean and written: eviction only drops them.
func (s *store) trim() error {
	b := s.budget
	if b == nil || !b.tight() {
		return nil
	}
	share := b.share()
	for s.tail != nil && s.charged > share {
		if err := s.evictTail(); err != nil {
			return err
		}
	}
	return nil
}
