package state

// This file is the contract of package state. The engine and operators are
// written against it; keep the signatures and documented behaviour stable.

import (
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// Options configures a state DB. The zero value is valid apart from Dir.
type Options struct {
	// Dir is the directory of the Pebble DB. Required unless InMemory.
	Dir string
	// InMemory keeps the DB in memory; nothing survives Close. For tests.
	InMemory bool
	// FS overrides the filesystem, e.g. with an error-injecting vfs in
	// tests. nil: the OS filesystem, or vfs.NewMem() with InMemory.
	FS vfs.FS
	// CacheBytes is the size of Pebble's block cache. Default 64 MiB.
	// Pebble reserves its memtables inside it (see MemorySplit).
	CacheBytes int64
	// MemTableBytes is the size of one Pebble memtable. Default 32 MiB.
	// Pebble holds up to three: two queued, one kept for reuse.
	MemTableBytes uint64
	// WriteCacheBytes bounds the write-back caches of all the DB's store
	// partitions together (StoreConfig.CacheBytes bounds each one). When
	// a write or read pushes their total over it, the store written or
	// read evicts its own least recently used entries, if it holds more
	// than its fair share (WriteCacheBytes divided by the cached store
	// partitions), until the total is within the budget or the store
	// within its share; a store within its share evicts only once the
	// total passes 9/8 of WriteCacheBytes, so that idle stores holding
	// more cannot starve it. At Task.Commit, while the total is above 7/8
	// of it, a store above its share drops entries down to it. The total
	// thus stays within 9/8 of WriteCacheBytes. It counts each entry's
	// heap cost (see WriteCacheUsage), a little more than what the entry
	// counts against CacheBytes. Default 0: no shared bound.
	WriteCacheBytes int64
	// Logger receives Pebble's and the DB's logs. Default: a null logger.
	// Pebble's informational messages are logged at debug level.
	Logger hclog.Logger
	// DisableWAL runs Pebble without its write-ahead log. This is safe
	// because the changelog, not the DB, is the source of truth, and every
	// commit writes state and committed changelog offsets in one batch: after
	// a crash the DB holds the state of some earlier commit (the last one
	// whose memtable reached disk), and recovery replays a longer changelog
	// tail. Close flushes the memtables, so a clean shutdown loses nothing.
	// Default false: the WAL is written, unsynced, so a process crash that
	// the OS survives loses nothing and restore stays short.
	DisableWAL bool
}

// StoreConfig configures one store partition of a task.
type StoreConfig struct {
	// Changelog, when set, is called for every write that reaches the
	// staged batch (a cache flush or eviction, or a write on an uncached
	// store), with the namespaced store key; value nil is a delete. The
	// slices are only valid during the call; a non-nil empty value is a put
	// of an empty value, distinct from a delete. Restore feeds the same keys
	// and values back. Changelog must not call into the task.
	Changelog func(key, value []byte)
	// CacheBytes bounds the store's write-back cache (keys plus values,
	// including values kept for OnFlush's old, plus a fixed per-entry
	// overhead). When a write or a read pushes the cache over the bound,
	// the least recently used entries are evicted, dirty ones flushed first.
	// 0 disables the cache: writes go straight to the staged batch. The
	// DB's Options.WriteCacheBytes, if set, bounds the caches of all
	// store partitions together as well.
	CacheBytes int
	// OnFlush, when set, is called for every data entry (not meta) that a
	// write reaches the staged batch with: for a cached store when a dirty
	// entry is flushed at commit or evicted, for an uncached store on
	// every write. old is the value the entry had before the first write
	// since it was last flushed (nil if none), value the new one (nil for
	// a delete). It forwards updates downstream, throttled by the cache.
	// The slices are only valid during the call. Its error is returned by
	// the write, read (an eviction) or Flush that triggered it. OnFlush may
	// write to the task's other stores, not to the store it is called for.
	OnFlush func(key, value, old []byte) error
}
