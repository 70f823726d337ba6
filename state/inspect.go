package state

// This file reads a state DB without a topology: what `eddy stores`
// shows of a stopped instance, and what `eddy reset` removes.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/internal/pebbleguard"
)

// ErrInUse is returned (wrapped) by OpenReadOnly and Remove when a
// process, this one or another, has the state DB open: Pebble's LOCK file
// of the directory is held.
var ErrInUse = errors.New("is in use by a running eddy instance (stop it first)")

// ErrNoDB is returned (wrapped) by OpenReadOnly for a directory that does
// not exist or holds no Pebble DB.
var ErrNoDB = errors.New("no state DB")

// prefixKind is the prefix of the keys recording store kinds (see
// SetStoreKind): 0x03 | name. It sorts after every store's data and
// committed offset, so no store prefix range covers it.
const prefixKind = 0x03

// inspectCacheBytes is the block cache of a read-only DB: inspection
// reads each block about once.
const inspectCacheBytes = 8 << 20

// OpenReadOnly opens the state DB in dir for inspection: Stores,
// ReadStore and Get work, every write fails, and nothing in dir is
// changed (Pebble replays its write-ahead log into memory only, so
// commits applied before a crash are read as well). It fails with an
// error wrapping ErrInUse while a process (this one included) has the DB
// open, as a running engine does, and with ErrNoDB when dir holds no DB.
// Close the DB when done.
func OpenReadOnly(dir string) (*DB, error) {
	return openReadOnly(dir, vfs.Default)
}

func openReadOnly(dir string, fsys vfs.FS) (*DB, error) {
	if err := checkDBDir(dir, fsys); err != nil {
		return nil, err
	}
	lock, err := pebble.LockDirectory(dir, fsys)
	if err != nil {
		return nil, fmt.Errorf("state dir %s %w (%v)", dir, ErrInUse, err)
	}
	// Open takes a reference of its own, which Close drops: ours can go
	// when Open returns, whatever it returns.
	defer lock.Close()
	logger := hclog.NewNullLogger()
	failed := pebbleguard.New(logger, "the state DB")
	cache := pebble.NewCache(inspectCacheBytes)
	defer cache.Unref()
	popts := &pebble.Options{
		FS:       fsys,
		Cache:    cache,
		ReadOnly: true,
		Lock:     lock,
		Logger:   pebbleguard.NewLogger(logger, failed, statePackage),
	}
	var pdb *pebble.DB
	err = pebbleguard.Guard(failed, func() (err error) {
		pdb, err = pebble.Open(dir, popts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("state: open %s read-only: %w", dir, err)
	}
	db := &DB{pdb: pdb, dir: dir, opts: Options{Dir: dir, FS: fsys, Logger: logger}, logger: logger, failed: failed}
	db.mu.tasks = make(map[*Task]struct{})
	db.mu.stores = make(map[storeID]*Task)
	return db, nil
}

// checkDBDir returns an error wrapping ErrNoDB unless dir holds a Pebble
// DB (a manifest marker), without creating anything.
func checkDBDir(dir string, fsys vfs.FS) error {
	names, err := fsys.List(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state: %s: %w: the directory does not exist", dir, ErrNoDB)
		}
		return fmt.Errorf("state: %s: %w", dir, err)
	}
	if !isPebbleDir(names) {
		return fmt.Errorf("state: %s: %w: the directory holds no Pebble DB", dir, ErrNoDB)
	}
	return nil
}

// isPebbleDir reports whether a directory with the files names holds a
// Pebble DB.
func isPebbleDir(names []string) bool {
	for _, n := range names {
		if strings.HasPrefix(n, "marker.manifest.") || strings.HasPrefix(n, "MANIFEST-") {
			return true
		}
	}
	return false
}

// CheckNotInUse returns an error wrapping ErrInUse if a process (this
// one included) has the state DB in dir open, and one wrapping ErrNoDB if
// dir holds files but no Pebble DB (Remove refuses it); nil otherwise,
// also when dir does not exist. It changes nothing in dir.
func CheckNotInUse(dir string) error {
	lock, err := lockForRemove(dir)
	if lock != nil {
		_ = lock.Close()
	}
	return err
}

// Remove deletes the state DB in dir and the directory, as a reset of
// the application does. It fails with an error wrapping ErrInUse while a
// process (this one included) has the DB open, and refuses a directory
// that holds files but no Pebble DB, so that a wrong path deletes
// nothing. A missing dir is not an error.
func Remove(dir string) error {
	lock, err := lockForRemove(dir)
	if err != nil {
		return err
	}
	if lock == nil { // missing or empty
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state: remove %s: %w", dir, err)
		}
		return nil
	}
	// Holding the lock while the files go keeps a starting instance out
	// until the directory is gone; it then creates a new one.
	err = os.RemoveAll(dir)
	if cerr := lock.Close(); err == nil && cerr != nil && !errors.Is(cerr, fs.ErrNotExist) {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("state: remove %s: %w", dir, err)
	}
	return nil
}

// lockForRemove takes the lock of the state DB in dir, checking that dir
// holds a DB or nothing. It returns a nil lock and no error when dir does
// not exist, and for an empty dir (which it leaves as it is).
func lockForRemove(dir string) (*pebble.Lock, error) {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("state: %s: %w", dir, err)
	case len(entries) == 0:
		return nil, nil
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	if !isPebbleDir(names) {
		return nil, fmt.Errorf("state: %s: %w: the directory holds other files; not touching it", dir, ErrNoDB)
	}
	lock, err := pebble.LockDirectory(dir, vfs.Default)
	if err != nil {
		return nil, fmt.Errorf("state dir %s %w (%v)", dir, ErrInUse, err)
	}
	return lock, nil
}

// StoreInfo describes a store partition a DB holds.
type StoreInfo struct {
	Name      string
	Partition int32
	// Kind is the store's kind as recorded with SetStoreKind ("" if
	// none was): the engine records the topology's store kinds.
	Kind string
	// Offset is the committed changelog offset: the offset after the
	// last changelog record the stored state reflects, where a restore
	// continues. HasOffset is false if none was committed.
	Offset    int64
	HasOffset bool
	// DiskBytes estimates the space the partition's data and metadata
	// take in the DB's files; what is only in the write-ahead log is not
	// counted, so a small store may show 0.
	DiskBytes uint64
}

// Stores returns every store partition the DB holds, ordered by name and
// partition: those with a committed offset and those with data or
// metadata (one seek per store partition, not a scan of the data). Safe
// for concurrent use.
func (db *DB) Stores() ([]StoreInfo, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return nil, fmt.Errorf("state: stores of %s: %w", db.dir, ErrClosed)
	}
	found := map[storeID]*StoreInfo{}
	info := func(id storeID) *StoreInfo {
		si := found[id]
		if si == nil {
			si = &StoreInfo{Name: id.name, Partition: id.partition}
			found[id] = si
		}
		return si
	}
	// Committed offsets.
	err := db.iterate([]byte{prefixOffset}, []byte{prefixOffset + 1}, func(it *pebble.Iterator) (bool, error) {
		name, p, n, err := parseStoreKey(it.Key(), prefixOffset)
		if err != nil || n != len(it.Key()) {
			return false, fmt.Errorf("committed offset key %x: malformed", it.Key())
		}
		v, err := it.ValueAndErr()
		if err != nil {
			return false, err
		}
		off, err := decodeOffset(v)
		if err != nil {
			return false, fmt.Errorf("committed offset of store %s/%d: %w", name, p, err)
		}
		si := info(storeID{name, p})
		si.Offset, si.HasOffset = off, true
		return it.Next(), nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: stores of %s: %w", db.dir, err)
	}
	// Store prefixes: one seek past each.
	err = db.iterate([]byte{prefixData}, []byte{prefixData + 1}, func(it *pebble.Iterator) (bool, error) {
		name, p, n, err := parseStoreKey(it.Key(), prefixData)
		if err != nil {
			return false, fmt.Errorf("store key %x: %w", it.Key(), err)
		}
		info(storeID{name, p})
		end := prefixEnd(it.Key()[:n])
		if end == nil {
			return false, nil
		}
		return it.SeekGE(end), nil
	})
	if err != nil {
		return nil, fmt.Errorf("state: stores of %s: %w", db.dir, err)
	}
	kinds, err := db.storeKindsLocked()
	if err != nil {
		return nil, fmt.Errorf("state: stores of %s: %w", db.dir, err)
	}
	out := make([]StoreInfo, 0, len(found))
	var prefix []byte
	for id, si := range found {
		si.Kind = kinds[id.name]
		prefix = appendStorePrefix(prefix[:0], id.name, id.partition)
		if si.DiskBytes, err = db.pdb.EstimateDiskUsage(prefix, prefixEnd(prefix)); err != nil {
			return nil, fmt.Errorf("state: size of store %s/%d: %w", id.name, id.partition, err)
		}
		out = append(out, *si)
	}
	slices.SortFunc(out, func(a, b StoreInfo) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return int(a.Partition) - int(b.Partition)
	})
	return out, nil
}

// StoreKinds returns the kinds recorded with SetStoreKind, by store
// name, whether the DB holds data of the store or not. Safe for
// concurrent use.
func (db *DB) StoreKinds() (map[string]string, error) {
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return nil, fmt.Errorf("state: store kinds of %s: %w", db.dir, ErrClosed)
	}
	kinds, err := db.storeKindsLocked()
	if err != nil {
		return nil, fmt.Errorf("state: store kinds of %s: %w", db.dir, err)
	}
	return kinds, nil
}

func (db *DB) storeKindsLocked() (map[string]string, error) {
	kinds := map[string]string{}
	err := db.iterate([]byte{prefixKind}, []byte{prefixKind + 1}, func(it *pebble.Iterator) (bool, error) {
		v, err := it.ValueAndErr()
		if err != nil {
			return false, err
		}
		kinds[string(it.Key()[1:])] = string(v)
		return it.Next(), nil
	})
	return kinds, err
}

// iterate runs step over the keys in [lower, upper), starting at the
// first, until step returns false or an error. step moves the iterator.
// db.mu is held by the caller, so that Close waits.
func (db *DB) iterate(lower, upper []byte, step func(it *pebble.Iterator) (bool, error)) error {
	it, err := db.pdb.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return err
	}
	for valid := it.First(); valid; {
		if valid, err = step(it); err != nil {
			_ = it.Close()
			return err
		}
	}
	return it.Close() // the iteration's error, if any
}

// parseStoreKey parses the store partition that a key with the given
// prefix byte (prefixData or prefixOffset) starts with, and returns the
// length of that part: the store prefix of a data key, the whole of an
// offset key.
func parseStoreKey(k []byte, prefix byte) (name string, partition int32, n int, err error) {
	if len(k) == 0 || k[0] != prefix {
		return "", 0, 0, errors.New("bad prefix")
	}
	l, w := binary.Uvarint(k[1:])
	if w <= 0 || l == 0 || uint64(len(k)-1-w) < l+4 {
		return "", 0, 0, errors.New("bad length")
	}
	n = 1 + w + int(l)
	return string(k[1+w : n]), int32(binary.BigEndian.Uint32(k[n:])), n + 4, nil
}

// ReadStore calls fn for the committed data rows (not the metadata) of a
// store partition with from <= key < to (nil: unbounded), in ascending
// key order. Keys and values are the operators' bytes: a window store's
// keys are window keys (see DecodeWindowKey). It reads what commits
// applied to the DB, not what open tasks stage or cache; after a clean
// stop that is everything committed. fn's slices are valid only during
// the call; an error from fn stops the iteration and is returned as is.
// A store partition the DB does not hold reads as empty. Safe for
// concurrent use, but fn must not call the DB's methods: the read holds
// the DB's lock, so that Close waits for it. Meant for inspection: a long
// read delays the registration of stores by new tasks.
func (db *DB) ReadStore(name string, partition int32, from, to []byte, fn func(key, value []byte) error) error {
	if err := checkStoreID(name, partition); err != nil {
		return err
	}
	if from != nil && to != nil && bytes.Compare(from, to) >= 0 {
		return nil
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return fmt.Errorf("state: read store %s/%d: %w", name, partition, ErrClosed)
	}
	base := append(appendStorePrefix(nil, name, partition), nsData)
	n := len(base)
	lower := append(slices.Clip(base), from...)
	var upper []byte
	if to != nil {
		upper = append(slices.Clip(base), to...)
	} else {
		upper = append(base[:n-1:n-1], nsData+1)
	}
	var ferr error
	err := db.iterate(lower, upper, func(it *pebble.Iterator) (bool, error) {
		v, err := it.ValueAndErr()
		if err != nil {
			return false, err
		}
		if ferr = fn(it.Key()[n:], v); ferr != nil {
			return false, nil
		}
		return it.Next(), nil
	})
	if ferr != nil {
		return ferr
	}
	if err != nil {
		return fmt.Errorf("state: read store %s/%d: %w", name, partition, err)
	}
	return nil
}

// Get returns a copy of the committed value of key in a store partition's
// data; the rules of ReadStore apply. Safe for concurrent use.
func (db *DB) Get(name string, partition int32, key []byte) ([]byte, bool, error) {
	if err := checkStoreID(name, partition); err != nil {
		return nil, false, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return nil, false, fmt.Errorf("state: get from store %s/%d: %w", name, partition, ErrClosed)
	}
	k := append(append(appendStorePrefix(nil, name, partition), nsData), key...)
	v, closer, err := db.pdb.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("state: get from store %s/%d: %w", name, partition, err)
	}
	defer closer.Close()
	return bytes.Clone(v), true, nil
}

// SetStoreKind records the kind of the store called name (all its
// partitions), a short string the DB does not interpret, which Stores
// reports: it tells an inspecting tool how to read the store's keys and
// values. The engine records the topology's store kinds when it opens.
// It writes only when the recorded kind differs, without syncing: like a
// commit, the write reaches the disk before any later commit does. Safe
// for concurrent use.
func (db *DB) SetStoreKind(name, kind string) error {
	if name == "" {
		return errors.New("state: set store kind: empty store name")
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return fmt.Errorf("state: set kind of store %s: %w", name, ErrClosed)
	}
	key := append([]byte{prefixKind}, name...)
	v, closer, err := db.pdb.Get(key)
	switch {
	case err == nil:
		same := string(v) == kind
		closer.Close()
		if same {
			return nil
		}
	case !errors.Is(err, pebble.ErrNotFound):
		return fmt.Errorf("state: set kind of store %s: %w", name, err)
	}
	b := db.pdb.NewBatch()
	defer b.Close()
	if err := b.Set(key, []byte(kind), nil); err != nil {
		return fmt.Errorf("state: set kind of store %s: %w", name, err)
	}
	if err := db.apply(b); err != nil {
		return fmt.Errorf("state: set kind of store %s: %w", name, err)
	}
	return nil
}
