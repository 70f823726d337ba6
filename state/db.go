package state

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/eddyflow/eddy/internal/pebbleguard"
	"github.com/hashicorp/go-hclog"
)

// ErrClosed is returned (wrapped) by operations on a closed DB or Task.
var ErrClosed = errors.New("state: closed")

// ErrStoreInUse is returned (wrapped) when a store partition is registered
// by another open task, or deleted while a task has it registered.
var ErrStoreInUse = errors.New("state: store partition in use")

const (
	defaultCacheBytes    = 64 << 20
	defaultMemTableBytes = 32 << 20
)

func (o *Options) ensureDefaults() {
	if o.CacheBytes == 0 {
		o.CacheBytes = defaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = defaultMemTableBytes
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.FS == nil {
		if o.InMemory {
			o.FS = vfs.NewMem()
		} else {
			o.FS = vfs.Default
		}
	}
}

func (o *Options) validate() error {
	if o.Dir == "" && !o.InMemory {
		return errors.New("options: Dir is required unless InMemory")
	}
	if o.CacheBytes < 0 {
		return fmt.Errorf("CacheBytes %d is negative", o.CacheBytes)
	}
	if o.WriteCacheBytes < 0 {
		return fmt.Errorf("WriteCacheBytes %d is negative", o.WriteCacheBytes)
	}
	return nil
}

// DB is the state DB of one engine instance: a single Pebble DB holding
// every store partition of every task. Its methods are safe for concurrent
// use; the Tasks it hands out are not (see Task).
//
// A failed write or sync of one of the DB's files, a failed flush or
// compaction, or a panic or fatal error of Pebble fails the DB: every
// later write (Task.Commit, Restore, DeleteStore) returns an error naming
// the first failure, and the DB must be closed and reopened. Nothing is
// retried: Pebble's write-ahead log and commit pipeline do not recover
// from a failed write, and what a failed write or sync left on disk is
// unknown. The DB still holds a prefix of the committed batches, which the
// changelog completes (see DisableWAL).
type DB struct {
	pdb    *pebble.DB
	dir    string // for errors; "(in-memory)" without a Dir
	opts   Options
	logger hclog.Logger

	// budget is the write-back caches' shared budget, nil if none
	// (Options.WriteCacheBytes).
	budget *budget

	// failed is the first failure (see DB). Pebble's goroutines set it
	// while holding Pebble's locks, so it is not guarded by mu.
	failed *pebbleguard.Failure
	// applyMu serializes batch applies, so that none enters Pebble's
	// commit pipeline after a failed one left it locked.
	applyMu sync.Mutex

	mu struct {
		sync.Mutex
		closed bool
		tasks  map[*Task]struct{}
		// stores maps each registered store partition to the open task
		// that owns it, so two tasks never write the same partition.
		stores map[storeID]*Task
	}
}

// statePackage is this package's import path: Pebble's Fatalf panics only
// when this package called into Pebble (see pebbleguard.NewLogger).
var statePackage = reflect.TypeFor[DB]().PkgPath()

// storeID names a store partition.
type storeID struct {
	name      string
	partition int32
}

// Open opens (creating if needed) the state DB described by opts.
func Open(opts Options) (*DB, error) {
	opts.ensureDefaults()
	dir := opts.Dir
	if dir == "" {
		dir = "(in-memory)"
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref() // the DB holds its own reference
	failed := pebbleguard.New(opts.Logger, "the state DB")
	gate := pebbleguard.NewGate()
	popts := &pebble.Options{
		FS:                 pebbleguard.FSExpendableWAL(opts.FS, failed),
		Cache:              cache,
		MemTableSize:       opts.MemTableBytes,
		DisableWAL:         opts.DisableWAL,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleguard.NewLogger(opts.Logger, failed, statePackage),
		EventListener: &pebble.EventListener{
			// Pebble retries a failed flush or compaction at once and
			// without end; if the disk stays broken, writes stall for
			// good. Failing the DB ends that with an error.
			BackgroundError: func(err error) { failed.Set(fmt.Errorf("pebble background error: %w", err)) },
			// The read that found the corruption returns an error; by
			// default Pebble would call Logger.Fatalf.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				failed.Set(fmt.Errorf("pebble: corruption in %s: %w", info.Path, info.Details))
			},
		},
	}
	// Pebble's default, spelled out: at most two memtables queued (and
	// one kept for reuse), which MemorySplit counts on.
	popts.MemTableStopWritesThreshold = 2
	// Pebble's Open would wait for the compactions it starts (see
	// pebbleguard.Gate): they start once it returned.
	popts.Experimental.CompactionScheduler = gate
	var pdb *pebble.DB
	err := pebbleguard.Guard(failed, func() (err error) {
		pdb, err = pebble.Open(opts.Dir, popts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	gate.Open()
	db := &DB{pdb: pdb, dir: dir, opts: opts, logger: opts.Logger, failed: failed}
	if opts.WriteCacheBytes > 0 {
		db.budget = &budget{limit: opts.WriteCacheBytes}
	}
	db.mu.tasks = make(map[*Task]struct{})
	db.mu.stores = make(map[storeID]*Task)
	return db, nil
}

// Close closes the DB. Every task must be closed first: with open tasks,
// Close returns an error naming one and leaves the DB open. Without a WAL,
// Close first flushes the memtables, so that committed state survives.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return fmt.Errorf("state: close %s: %w", db.dir, ErrClosed)
	}
	if n := len(db.mu.tasks); n > 0 {
		names := make([]string, 0, n)
		for t := range db.mu.tasks {
			names = append(names, t.name)
		}
		sort.Strings(names)
		return fmt.Errorf("state: close %s: %d tasks still open, e.g. %q", db.dir, n, names[0])
	}
	db.mu.closed = true
	var err error
	if db.opts.DisableWAL && db.failed.Err() == nil {
		// After a failure, the flush could only fail, or retry forever;
		// the changelog restores what the memtables held.
		err = db.failed.Wait(db.pdb.Flush)
	}
	if !errors.Is(err, pebbleguard.ErrAbandoned) {
		if cerr := db.failed.Wait(db.pdb.Close); err == nil {
			err = cerr
		}
	}
	if err != nil {
		if ferr := db.failed.Err(); ferr != nil && !errors.Is(err, pebbleguard.ErrAbandoned) {
			err = ferr // what failed first, not what it made fail
		}
		return fmt.Errorf("state: close %s: %w", db.dir, err)
	}
	return nil
}

// apply applies b to the DB, without syncing, unless the DB failed; a
// failure to apply fails the DB.
func (db *DB) apply(b *pebble.Batch) error {
	db.applyMu.Lock()
	defer db.applyMu.Unlock()
	if err := db.failed.Err(); err != nil {
		return fmt.Errorf("state DB %s failed: %w", db.dir, err)
	}
	err := pebbleguard.Guard(db.failed, func() error { return db.pdb.Apply(b, pebble.NoSync) })
	if err != nil {
		db.failed.Set(err)
		// A write that failed in the background shows here as whatever
		// Pebble made of it: report the first failure.
		return fmt.Errorf("state DB %s failed: %w", db.dir, db.failed.Err())
	}
	return nil
}

// NewTask returns a new task with no stores and an empty staged batch. name
// only appears in errors. On a closed DB it returns a closed task, whose
// every operation fails with ErrClosed. Safe for concurrent use.
func (db *DB) NewTask(name string) *Task {
	t := &Task{db: db, name: name, byName: make(map[string]*store)}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		t.closed = true
		return t
	}
	db.mu.tasks[t] = struct{}{}
	t.batch = db.pdb.NewIndexedBatch()
	return t
}

// DeleteStore deletes a store partition's data, metadata and committed
// offset, in one batch. It fails with ErrStoreInUse while an open task has
// the store partition registered. Safe for concurrent use.
func (db *DB) DeleteStore(name string, partition int32) error {
	if err := checkStoreID(name, partition); err != nil {
		return err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return fmt.Errorf("state: delete store %s/%d: %w", name, partition, ErrClosed)
	}
	if t, ok := db.mu.stores[storeID{name, partition}]; ok {
		return fmt.Errorf("state: delete store %s/%d: registered by task %s: %w", name, partition, t.name, ErrStoreInUse)
	}
	prefix := appendStorePrefix(nil, name, partition)
	b := db.pdb.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(prefix, prefixEnd(prefix), nil); err != nil {
		return fmt.Errorf("state: delete store %s/%d: %w", name, partition, err)
	}
	if err := b.Delete(appendOffsetKey(nil, name, partition), nil); err != nil {
		return fmt.Errorf("state: delete store %s/%d: %w", name, partition, err)
	}
	if err := db.apply(b); err != nil {
		return fmt.Errorf("state: delete store %s/%d: %w", name, partition, err)
	}
	return nil
}

// Metrics returns Pebble's metrics of the DB as a human-readable table.
// Safe for concurrent use.
func (db *DB) Metrics() string {
	return db.pdb.Metrics().String()
}

func (db *DB) register(t *Task, id storeID) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return ErrClosed
	}
	if owner, ok := db.mu.stores[id]; ok {
		return fmt.Errorf("registered by task %s: %w", owner.name, ErrStoreInUse)
	}
	db.mu.stores[id] = t
	return nil
}

// release forgets t and the store partitions it registered.
func (db *DB) release(t *Task) {
	db.mu.Lock()
	defer db.mu.Unlock()
	for _, s := range t.stores {
		if db.mu.stores[s.id] == t {
			delete(db.mu.stores, s.id)
		}
	}
	delete(db.mu.tasks, t)
}

func checkStoreID(name string, partition int32) error {
	if name == "" {
		return errors.New("state: store name is empty")
	}
	if partition < 0 {
		return fmt.Errorf("state: store %s: negative partition %d", name, partition)
	}
	return nil
}

// Key layout (see doc.go).
const (
	prefixData   = 0x01 // store keys: 0x01 | uvarint(len(name)) | name | partition BE4 | ns | user key
	prefixOffset = 0x02 // committed offsets: 0x02 | uvarint(len(name)) | name | partition BE4

	nsMeta = 0x00
	nsData = 0x01
)

// appendStorePrefix appends the prefix all keys of a store partition share.
// The name is length-prefixed, so no store's prefix is a prefix of another's.
func appendStorePrefix(dst []byte, name string, partition int32) []byte {
	dst = append(dst, prefixData)
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}

func appendOffsetKey(dst []byte, name string, partition int32) []byte {
	dst = append(dst, prefixOffset)
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	return binary.BigEndian.AppendUint32(dst, uint32(partition))
}

// prefixEnd returns the smallest key greater than every key with prefix p,
// or nil if there is none (p is all 0xff).
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}
