// Package state holds the local state of eddy's tasks: key-value and window
// stores on Pebble, with a write-back cache per store, changelog capture,
// and the committed changelog offset of every store partition kept inside
// the state itself.
//
// # Main types
//
// A DB is one Pebble DB per engine instance; it holds every store partition
// of every task, each under a key prefix of its own, so one block cache and
// one memtable budget bound the memory of all of them. A Task, one per
// engine task, groups the task's store partitions (KV, WindowStore), their
// caches, and one Pebble indexed batch of the writes staged since the last
// applied commit (evictions, uncached stores, Range). Reads see the cache,
// then that batch as an overlay over the DB.
//
// # Commit protocol
//
// The engine drives a task through its commit intervals:
//
//  1. Task.Flush flushes every store's dirty cache entries. For each write
//     it calls the store's Changelog func (the engine turns it into a
//     changelog record in its open log transaction) and, for data, OnFlush
//     (the engine forwards the update downstream). The entries stay in the
//     cache, pending.
//  2. The engine commits the log transaction and learns, per store, the
//     changelog offset after the store's last record.
//  3. Task.Commit writes the staged batch, the pending entries and those
//     offsets to the DB in one non-indexed batch, then starts a new staged
//     batch. Or Task.CommitDeferred notes the offsets and leaves the
//     writes where they are, for a later Commit to apply with its own: a
//     key updated in every commit interval then reaches Pebble once per
//     applied commit (the engine's Options.CheckpointInterval).
//
// If the log commit fails, Task.Abort drops the staged batch and every
// cache: the stores read the state of the last applied commit again, and
// after deferred commits the engine restores the changelog records since
// (Restore, from CommittedOffset) before it uses them.
//
// So the DB only ever holds committed state, and the state and the
// changelog offsets that describe it reach the DB in one atomic batch: the
// DB is always a consistent prefix of the changelog. After a crash, the
// engine replays only the changelog records from CommittedOffset on
// (Restore); it never has to wipe a store and restore it in full.
//
// The changelog, not the DB, is the source of truth. Commits are therefore
// applied without syncing, and Options.DisableWAL may turn Pebble's WAL off
// altogether: a crash then loses the commits whose memtable had not reached
// disk, leaving the DB at an earlier commit, which is just as consistent and
// only makes the changelog tail to replay longer.
//
// # Write-back cache
//
// Each store (StoreConfig.CacheBytes > 0) caches entries by key: reads that
// miss are cached too, including absent keys. A write marks the entry dirty
// and is only flushed at commit, so 100 updates of a key in one commit
// interval make one changelog record and one OnFlush call, with the value
// before the first of them as old. The cache is an LRU list: when
// it grows beyond CacheBytes, the least recently used entries are evicted:
// dirty ones are flushed first (with Changelog and OnFlush, as at commit)
// and written to the staged batch, as are pending ones. Flushes follow the order in which entries became
// dirty, so downstream updates come out in a deterministic order. Per-key
// order always holds, as a key has at most one dirty entry. A store without
// a cache writes straight to the staged batch.
//
// Options.WriteCacheBytes bounds the caches of all of a DB's store
// partitions together: each charges the budget, atomically, with what its
// entries take in the heap, and a store evicts its own entries when the
// total runs over, first those that hold more than their fair share (the
// budget divided by the cached store partitions). SplitMemory divides an
// engine's memory budget among this budget, the staged batches, and the
// Pebble DBs' caches and memtables.
//
// A miss costs a Pebble read only where the cache cannot vouch for the
// key: a store knows the largest key in its batch and DB (one seek when
// first needed) and the largest key its cache evicted, and a miss above
// both is an absent key. A window store's keys grow with the window start,
// so the first read of every key in a new window is free; and when a task
// starts in the middle of a window (a rebalance, a restart, an abort), the
// store caches that newest window whole at its first read or write if it
// fits in half the cache, so that the window's new keys are free too.
//
// # Key layout
//
// Store keys in the DB:
//
//	0x01 | uvarint(len(name)) | name | partition (4 bytes BE) | namespace | user key
//
// with namespace 0x01 for data and 0x00 for metadata (GetMeta, PutMeta).
// The length prefix makes a store partition's keys a contiguous range that
// no other store partition shares, which DeleteStore removes with one range
// delete. The committed offset of a store partition, 8 bytes BE, is at
//
//	0x02 | uvarint(len(name)) | name | partition (4 bytes BE)
//
// The kind of a store (SetStoreKind), which tools that read the DB without
// the topology use (OpenReadOnly, Stores), is at 0x03 | name.
//
// Changelog records and Restore use the namespaced key, namespace byte
// then user key, without the store prefix, so a changelog partition restores
// into the same store of any instance. A window store's user keys are
// window keys: the window start, 8 bytes BE with the sign bit flipped (so
// negative starts sort first), then the key; see AppendWindowKey.
//
// # Concurrency
//
// A DB is safe for concurrent use. A Task and its stores are used by one
// goroutine at a time; different tasks run concurrently. Callbacks (Changelog,
// OnFlush) run on the goroutine of the call that triggered them.
//
// # Usage
//
//	db, err := state.Open(state.Options{Dir: dir})
//	task := db.NewTask("0_1")
//	counts, err := task.KV("counts", 1, state.StoreConfig{
//		CacheBytes: 1 << 20,
//		Changelog:  func(k, v []byte) { /* append to the log transaction */ },
//	})
//	off, ok, err := counts.CommittedOffset() // replay the changelog from off
//	err = counts.Put([]byte("k"), []byte("v"))
//	err = task.Flush()
//	// commit the log transaction, learn the changelog end offsets
//	err = task.Commit(map[string]int64{"counts": end})
//
// The DB shares its Pebble wrappers with broker/embedded
// (internal/pebbleguard): the failure record, the file system that fails
// the DB on a failed write or sync, and a compaction scheduler that holds
// compactions back until Pebble's Open returned, so that reopening after a
// kill does not wait for the compaction debt to be paid.
package state
