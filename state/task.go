package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// maxFlushPasses bounds Task.Flush: OnFlush of one store may dirty another,
// whose OnFlush may dirty a third, and so on; a topology is a DAG, so this
// settles after at most as many passes as the task has stores.
const maxFlushPasses = 100

// Task groups the store partitions of one engine task, their write-back
// caches, and the batch of writes staged since the last commit. A Task is
// used by one goroutine at a time, and so are its stores; different Tasks
// may be used concurrently.
//
// After an error from a write, a read, Range, Flush or Commit (other than
// ErrClosed or a rejected argument), the staged state is unspecified:
// Commit refuses until Abort.
type Task struct {
	db     *DB
	name   string
	closed bool
	// failed: an operation failed midway since the last Commit or Abort.
	failed bool
	// batch holds the writes staged since the last applied commit (cache
	// evictions, uncached stores, Range); the caches' pending entries
	// hold the rest. Reads see it as an overlay over the DB.
	batch *pebble.Batch
	// deferred holds the changelog offsets of the commits made with
	// CommitDeferred since the last applied one.
	deferred map[string]int64
	stores   []*store // in registration order
	byName   map[string]*store
}

// KV registers the key-value store partition (name, partition) with the
// task and returns it. name must be non-empty and not yet registered by this
// task (a task holds one partition of each of its stores), partition
// non-negative, and no other open task may hold the same store partition.
func (t *Task) KV(name string, partition int32, cfg StoreConfig) (*KV, error) {
	kv := &KV{}
	if err := t.register(&kv.store, name, partition, cfg); err != nil {
		return nil, err
	}
	return kv, nil
}

// Window registers the window store partition (name, partition) with the
// task and returns it; the rules of KV apply.
func (t *Task) Window(name string, partition int32, cfg StoreConfig) (*WindowStore, error) {
	w := &WindowStore{}
	w.after, w.first = windowAfter, windowFirst
	if err := t.register(&w.store, name, partition, cfg); err != nil {
		return nil, err
	}
	return w, nil
}

func (t *Task) register(s *store, name string, partition int32, cfg StoreConfig) error {
	if err := checkStoreID(name, partition); err != nil {
		return fmt.Errorf("state: task %s: %w", t.name, err)
	}
	if t.closed {
		return fmt.Errorf("state: task %s: register store %s/%d: %w", t.name, name, partition, ErrClosed)
	}
	if cfg.CacheBytes < 0 {
		return fmt.Errorf("state: task %s: store %s/%d: negative CacheBytes %d", t.name, name, partition, cfg.CacheBytes)
	}
	if _, dup := t.byName[name]; dup {
		return fmt.Errorf("state: task %s: store %s registered twice", t.name, name)
	}
	id := storeID{name, partition}
	if err := t.db.register(t, id); err != nil {
		return fmt.Errorf("state: task %s: register store %s/%d: %w", t.name, name, partition, err)
	}
	s.init(t, id, cfg)
	t.stores = append(t.stores, s)
	t.byName[name] = s
	return nil
}

// Flush flushes the dirty entries of every store's cache, calling the
// stores' Changelog and OnFlush funcs, in the order the stores were
// registered. Flushed entries stay in the cache, pending: Commit writes
// them to the DB. As OnFlush may write to other stores, earlier or
// later registered, it repeats passes until no store has dirty entries, and
// fails if that takes more than 100 passes (OnFlush writes in a cycle).
func (t *Task) Flush() error {
	if t.closed {
		return fmt.Errorf("state: task %s: flush: %w", t.name, ErrClosed)
	}
	for range maxFlushPasses {
		dirty := false
		for _, s := range t.stores {
			if s.ndirty == 0 {
				continue
			}
			dirty = true
			if err := s.flushOnce(false); err != nil {
				t.failed = true
				return fmt.Errorf("state: task %s: flush store %s: %w", t.name, s.id.name, err)
			}
		}
		if !dirty {
			return nil
		}
	}
	t.failed = true
	return fmt.Errorf("state: task %s: flush did not settle after %d passes", t.name, maxFlushPasses)
}

// Commit applies the writes of the log commit that just succeeded, and of
// the deferred ones before it (CommitDeferred), to the DB: the staged
// batch, the caches' pending entries, and each store's committed
// changelog offset. changelogEnd maps a store name to the offset after its
// last changelog record, the one restore starts from. Stores absent from
// the map (and from the deferred commits) keep their previous offset.
// Commit is called after Flush and after the log transaction holding the
// changelog records has committed; it fails if a cache holds unflushed
// writes or the map names a store the task does not have, without
// applying anything. The apply does not sync: the changelog is the source
// of truth (see the package doc). A new staged batch is started; the
// caches keep their (now committed) contents, except that with a shared
// budget (Options.WriteCacheBytes) running short, a cache above its fair
// share of it (the budget divided by the cached store partitions) drops
// its least recently used entries down to that share.
func (t *Task) Commit(changelogEnd map[string]int64) error {
	if err := t.checkCommit(changelogEnd); err != nil {
		return err
	}
	for name, off := range t.deferred {
		if _, ok := changelogEnd[name]; !ok {
			if changelogEnd == nil {
				changelogEnd = map[string]int64{}
			}
			changelogEnd[name] = off
		}
	}
	// The staged batch is indexed, for reads; the batch applied is not,
	// as indexing the pending entries would be wasted.
	b := t.db.pdb.NewBatch()
	defer b.Close()
	if !t.batch.Empty() {
		if err := b.Apply(t.batch, nil); err != nil {
			t.failed = true
			return fmt.Errorf("state: task %s: commit: %w", t.name, err)
		}
	}
	for _, s := range t.stores {
		if err := s.writePending(b); err != nil {
			t.failed = true
			return fmt.Errorf("state: task %s: commit: store %s: %w", t.name, s.id.name, err)
		}
	}
	var val [8]byte
	for name, off := range changelogEnd {
		s := t.byName[name]
		binary.BigEndian.PutUint64(val[:], uint64(off))
		if err := b.Set(s.offsetKey, val[:], nil); err != nil {
			t.failed = true
			return fmt.Errorf("state: task %s: commit: %w", t.name, err)
		}
	}
	if !b.Empty() {
		if err := t.db.apply(b); err != nil {
			t.failed = true
			return fmt.Errorf("state: task %s: commit: %w", t.name, err)
		}
	}
	if !t.batch.Empty() {
		t.newBatch()
	}
	for _, s := range t.stores {
		s.staged = false
		if err := s.trim(); err != nil { // every entry is clean: cannot fail
			t.failed = true
			return fmt.Errorf("state: task %s: commit: store %s: %w", t.name, s.id.name, err)
		}
	}
	t.deferred = nil
	return nil
}

// CommitDeferred records that the log commit holding the flushed writes
// succeeded, like Commit, but leaves them out of the DB: they stay in the
// caches (pending) and the staged batch, where reads find them, until a
// later Commit applies them with its own. A key updated in every commit
// interval then reaches the DB once per applied commit rather than once
// per commit. The DB stays a consistent prefix of the changelog, only an
// older one: after an Abort (or a crash) the stores read the last applied
// commit, and the changelog records since must be restored (Restore, from
// CommittedOffset) before they are used again.
func (t *Task) CommitDeferred(changelogEnd map[string]int64) error {
	if err := t.checkCommit(changelogEnd); err != nil {
		return err
	}
	if t.deferred == nil {
		t.deferred = map[string]int64{}
	}
	for name, off := range changelogEnd {
		t.deferred[name] = off
	}
	return nil
}

// StagedBytes returns the size of the staged batch: the writes of uncached
// stores and cache evictions since the last applied commit, which only an
// applied commit (Commit) releases.
func (t *Task) StagedBytes() int {
	if t.closed {
		return 0
	}
	return len(t.batch.Repr())
}

// checkCommit refuses a commit (see Commit) without changing anything.
func (t *Task) checkCommit(changelogEnd map[string]int64) error {
	if t.closed {
		return fmt.Errorf("state: task %s: commit: %w", t.name, ErrClosed)
	}
	if t.failed {
		return fmt.Errorf("state: task %s: commit: an operation failed since the last commit (Abort first)", t.name)
	}
	for _, s := range t.stores {
		if s.ndirty > 0 {
			return fmt.Errorf("state: task %s: commit: store %s has %d unflushed writes (Flush first)", t.name, s.id.name, s.ndirty)
		}
	}
	for name, off := range changelogEnd {
		if _, ok := t.byName[name]; !ok {
			return fmt.Errorf("state: task %s: commit: no store %s", t.name, name)
		}
		if off < 0 {
			return fmt.Errorf("state: task %s: commit: store %s: negative offset %d", t.name, name, off)
		}
	}
	return nil
}

// Abort discards the staged batch and the contents of every cache. The
// stores stay usable and read the state of the last applied commit: after
// CommitDeferred, the changelog holds more (see there).
func (t *Task) Abort() {
	if t.closed {
		return
	}
	for _, s := range t.stores {
		s.reset()
	}
	t.failed = false
	t.deferred = nil
	t.newBatch()
}

// Close aborts uncommitted work, releases the task's resources and its store
// partitions (another task may then register them). Further use of the
// task or its stores fails with ErrClosed.
func (t *Task) Close() error {
	if t.closed {
		return fmt.Errorf("state: task %s: close: %w", t.name, ErrClosed)
	}
	for _, s := range t.stores {
		s.reset()
		if s.budget != nil {
			s.budget.stores.Add(-1)
		}
	}
	t.deferred = nil
	t.closed = true
	err := t.batch.Close()
	t.batch = nil
	t.db.release(t)
	if err != nil {
		return fmt.Errorf("state: task %s: close: %w", t.name, err)
	}
	return nil
}

// newBatch replaces the staged batch with an empty one. A batch that was
// applied may be retained by Pebble (large batches become memtables), so it
// is closed and a new one taken from Pebble's pool rather than reset.
func (t *Task) newBatch() {
	_ = t.batch.Close() // only fails on a double close
	t.batch = t.db.pdb.NewIndexedBatch()
}
