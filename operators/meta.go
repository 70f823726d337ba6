package operators

import (
	"encoding/binary"
	"fmt"
)

// metaStore is the metadata of a store, where a stateful operator keeps
// its stream-time and bookkeeping, so that they are restored with it.
type metaStore interface {
	Name() string
	GetMeta(name string) ([]byte, bool, error)
	PutMeta(name string, value []byte) error
}

// getMetaInt returns the int64 meta name of s, or def if it was never set.
func getMetaInt(s metaStore, name string, def int64) (int64, error) {
	b, ok, err := s.GetMeta(name)
	switch {
	case err != nil:
		return 0, err
	case !ok:
		return def, nil
	case len(b) != 8:
		return 0, fmt.Errorf("store %s: meta %s: want 8 bytes, got %d", s.Name(), name, len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// putMetaInt sets the int64 meta name of s to v, encoding it in *buf,
// the caller's scratch space: stream-time moves with most records.
func putMetaInt(s metaStore, name string, v int64, buf *[]byte) error {
	*buf = binary.BigEndian.AppendUint64((*buf)[:0], uint64(v))
	return s.PutMeta(name, *buf)
}
