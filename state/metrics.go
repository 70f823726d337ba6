package state

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// StoreSize is the approximate disk usage of one store partition.
type StoreSize struct {
	Name      string
	Partition int32
	// Bytes estimates the space the partition's data and metadata take
	// in the DB's files (Pebble's EstimateDiskUsage over its key prefix).
	// What is still in the memtable, and so only in the write-ahead log,
	// is not counted: a small store may show 0 until a flush.
	Bytes uint64
}

// StoreSizes returns the approximate disk usage of every store partition
// the DB holds, whether a task has it registered or not, ordered by name
// and partition; the engine reports it as a metric. A store partition is
// listed once it has a committed offset, which its first Commit or Restore
// writes. It reads no data, only the index of the DB's files: cheap enough
// for every metrics scrape. Safe for concurrent use.
func (db *DB) StoreSizes() ([]StoreSize, error) {
	// Holding mu keeps Close (which takes it) from closing Pebble under
	// the estimates: Pebble panics on a closed DB.
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.mu.closed {
		return nil, fmt.Errorf("state: store sizes of %s: %w", db.dir, ErrClosed)
	}
	it, err := db.pdb.NewIter(&pebble.IterOptions{
		LowerBound: []byte{prefixOffset},
		UpperBound: []byte{prefixOffset + 1},
	})
	if err != nil {
		return nil, fmt.Errorf("state: store sizes of %s: %w", db.dir, err)
	}
	var sizes []StoreSize
	var prefix []byte
	for ok := it.First(); ok; ok = it.Next() {
		name, partition, err := parseOffsetKey(it.Key())
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("state: store sizes of %s: %w", db.dir, err)
		}
		prefix = appendStorePrefix(prefix[:0], name, partition)
		n, err := db.pdb.EstimateDiskUsage(prefix, prefixEnd(prefix))
		if err != nil {
			it.Close()
			return nil, fmt.Errorf("state: size of store %s/%d: %w", name, partition, err)
		}
		sizes = append(sizes, StoreSize{Name: name, Partition: partition, Bytes: n})
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("state: store sizes of %s: %w", db.dir, err)
	}
	return sizes, nil
}

// parseOffsetKey returns the store partition of a committed-offset key
// (see appendOffsetKey).
func parseOffsetKey(k []byte) (string, int32, error) {
	if len(k) == 0 || k[0] != prefixOffset {
		return "", 0, fmt.Errorf("offset key %x: bad prefix", k)
	}
	n, w := binary.Uvarint(k[1:])
	if w <= 0 || uint64(len(k)-1-w) != n+4 {
		return "", 0, fmt.Errorf("offset key %x: bad length", k)
	}
	name := string(k[1+w : 1+w+int(n)])
	return name, int32(binary.BigEndian.Uint32(k[1+w+int(n):])), nil
}
