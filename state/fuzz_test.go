package state

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// FuzzCommittedOffset feeds arbitrary bytes to the decoder of a store
// partition's committed changelog offset: 8 bytes decode and re-encode to
// themselves, anything else is an error giving the value's size, never a
// panic. (It stays off the DB: Pebble's background goroutines would make
// coverage flaky. TestCommittedOffsetInDB covers the path through it.)
func FuzzCommittedOffset(f *testing.F) {
	for _, off := range []int64{0, 1, 4096, 1 << 40, -1} {
		f.Add(binary.BigEndian.AppendUint64(nil, uint64(off)))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7})
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Fuzz(func(t *testing.T, v []byte) {
		off, err := decodeOffset(v)
		switch {
		case len(v) != 8 && err == nil:
			t.Fatalf("decodeOffset(%x) = %d, want an error", v, off)
		case len(v) != 8 && err.Error() != fmt.Sprintf("corrupt value of %d bytes", len(v)):
			t.Fatalf("decodeOffset(%x): unclear error %q", v, err)
		case len(v) == 8 && err != nil:
			t.Fatalf("decodeOffset(%x): %v", v, err)
		case len(v) == 8 && !bytes.Equal(binary.BigEndian.AppendUint64(nil, uint64(off)), v):
			t.Fatalf("decodeOffset(%x) = %d, which encodes differently", v, off)
		}
	})
}

// TestCommittedOffsetInDB stores committed offsets in the DB, as bytes of
// every size and through both writers, Restore and Task.Commit, and reads
// them back with CommittedOffset: what the writers store reads back, and
// a corrupt value is an error naming the store partition and the size.
func TestCommittedOffsetInDB(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv, err := task.KV("s", 3, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for n := range 20 {
		v := bytes.Repeat([]byte{0x7f}, n)
		if err := db.pdb.Set(kv.offsetKey, v, pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		got, ok, err := kv.CommittedOffset()
		if n == 8 {
			if err != nil || !ok || got != 0x7f7f7f7f7f7f7f7f {
				t.Errorf("CommittedOffset of %x = %d, %v, %v", v, got, ok, err)
			}
			continue
		}
		want := fmt.Sprintf("state: task t: store s/3: committed offset: corrupt value of %d bytes", n)
		if err == nil || err.Error() != want {
			t.Errorf("CommittedOffset of %x = %d, %v, %v; want error %q", v, got, ok, err, want)
		}
	}
	for _, off := range []int64{0, 1, 4095, 1 << 40, math.MaxInt64} {
		if err := kv.Restore(nil, off); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := kv.CommittedOffset(); err != nil || !ok || got != off {
			t.Errorf("after Restore(nil, %d), CommittedOffset = %d, %v, %v", off, got, ok, err)
		}
		if err := task.Commit(map[string]int64{"s": off / 2}); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := kv.CommittedOffset(); err != nil || !ok || got != off/2 {
			t.Errorf("after Commit(%d), CommittedOffset = %d, %v, %v", off/2, got, ok, err)
		}
	}
	if err := kv.Restore(nil, -1); err == nil {
		t.Error("Restore(nil, -1) stored a negative offset")
	}
	if err := task.Commit(map[string]int64{"s": -1}); err == nil {
		t.Error("Commit stored a negative offset")
	}
}

// FuzzStoreKeys checks the key layout of two store partitions: each
// one's prefix is never a prefix of the other's, so the range DeleteStore
// deletes and the ranges Range scans hold one store partition's keys
// only, and their committed offsets have distinct keys outside every
// data range.
func FuzzStoreKeys(f *testing.F) {
	f.Add("s", int32(0), "s", int32(1))
	f.Add("s", int32(1), "s1", int32(0))
	f.Add("a\x00", int32(0), "a", int32(0))
	f.Add("", int32(-1), "\xff", int32(0x7fffffff))
	f.Add(strings.Repeat("n", 200), int32(7), strings.Repeat("n", 201), int32(7))
	f.Fuzz(func(t *testing.T, name1 string, p1 int32, name2 string, p2 int32) {
		a, b := appendStorePrefix(nil, name1, p1), appendStorePrefix(nil, name2, p2)
		oa, ob := appendOffsetKey(nil, name1, p1), appendOffsetKey(nil, name2, p2)
		if a[0] != prefixData || oa[0] != prefixOffset {
			t.Fatalf("store %q/%d: prefix %x, offset key %x: wrong kind byte", name1, p1, a, oa)
		}
		if end := prefixEnd(a); end != nil && bytes.Compare(oa, end) < 0 {
			t.Fatalf("store %q/%d: offset key %x inside its data range [%x, %x)", name1, p1, oa, a, end)
		}
		if name1 == name2 && p1 == p2 {
			if !bytes.Equal(a, b) || !bytes.Equal(oa, ob) {
				t.Fatalf("store %q/%d: keys not deterministic", name1, p1)
			}
			return
		}
		if bytes.HasPrefix(a, b) || bytes.HasPrefix(b, a) {
			t.Fatalf("stores %q/%d and %q/%d: prefixes %x and %x overlap", name1, p1, name2, p2, a, b)
		}
		if bytes.Equal(oa, ob) {
			t.Fatalf("stores %q/%d and %q/%d: same offset key %x", name1, p1, name2, p2, oa)
		}
	})
}
