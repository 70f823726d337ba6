package state

import (
	"encoding/binary"
	"errors"
	"math"
)

// windowStartLen is the length of the encoded window start in a window key.
const windowStartLen = 8

// errShortWindowKey is returned by DecodeWindowKey.
var errShortWindowKey = errors.New("state: window key shorter than 8 bytes")

// AppendWindowKey appends the window key of (start, key) to dst: start as
// 8 bytes big-endian with the sign bit flipped, so that keys sort by start
// (negative ones first) and then by key, followed by key.
func AppendWindowKey(dst []byte, start int64, key []byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, uint64(start)^(1<<63))
	return append(dst, key...)
}

// DecodeWindowKey splits a window key made by AppendWindowKey. key aliases k.
func DecodeWindowKey(k []byte) (start int64, key []byte, err error) {
	if len(k) < windowStartLen {
		return 0, nil, errShortWindowKey
	}
	return int64(binary.BigEndian.Uint64(k) ^ (1 << 63)), k[windowStartLen:], nil
}

// WindowStore is a window store partition of a task: values keyed by
// (window start, key), ordered by start, then key. It is a KV whose data
// keys are window keys (see AppendWindowKey); its OnFlush and Changelog
// receive those keys. Like its task, a WindowStore is used by one
// goroutine at a time.
type WindowStore struct {
	store
}

// windowAfter returns the first window key of the window after k's: no
// key of k's window sorts at or above it.
func windowAfter(k []byte) []byte {
	start, _, err := DecodeWindowKey(k)
	if err != nil || start == math.MaxInt64 {
		return append(k, 0)
	}
	return AppendWindowKey(k[:0], start+1, nil)
}

// windowFirst returns the first window key of k's window.
func windowFirst(k []byte) []byte {
	start, _, err := DecodeWindowKey(k)
	if err != nil {
		return k
	}
	return AppendWindowKey(nil, start, nil)
}

func (w *WindowStore) windowKey(start int64, key []byte) []byte {
	w.wscratch = AppendWindowKey(w.wscratch[:0], start, key)
	return w.wscratch
}

// Get returns the value of key in the window starting at start; the rules
// of KV.Get apply.
func (w *WindowStore) Get(key []byte, start int64) ([]byte, bool, error) {
	v, ok, err := w.get(nsData, w.windowKey(start, key))
	if err != nil {
		return nil, false, w.fail("get", err)
	}
	return v, ok, nil
}

// Put sets key in the window starting at start to value, which must not be
// nil. The store copies key and value.
func (w *WindowStore) Put(key []byte, start int64, value []byte) error {
	if value == nil {
		return w.errorf("put: nil value (use Delete)")
	}
	if err := w.write(nsData, w.windowKey(start, key), value, false); err != nil {
		return w.fail("put", err)
	}
	return nil
}

// Delete deletes key in the window starting at start.
func (w *WindowStore) Delete(key []byte, start int64) error {
	if err := w.write(nsData, w.windowKey(start, key), nil, true); err != nil {
		return w.fail("delete", err)
	}
	return nil
}

// Range calls fn for the entries of the windows with fromStart <= start <
// toStart, ascending by start, then key. The rules of KV.Range apply: dirty
// entries are flushed first, fn's slices are only valid during the call, fn
// may read and write the store without the iteration seeing its writes.
func (w *WindowStore) Range(fromStart, toStart int64, fn func(key []byte, start int64, value []byte) error) error {
	if fromStart >= toStart {
		return nil
	}
	var b [2 * windowStartLen]byte
	lo := AppendWindowKey(b[:0], fromStart, nil)
	hi := AppendWindowKey(b[windowStartLen:windowStartLen], toStart, nil)
	return w.rangeData(lo, hi, func(k, v []byte) error {
		start, key, err := DecodeWindowKey(k)
		if err != nil {
			return w.errorf("range: %w", err)
		}
		return fn(key, start, v)
	})
}
