package embedded

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// FuzzDecodeOffset feeds arbitrary bytes to the decoder of a group's
// committed offset: it never panics, accepts exactly a version byte 1 and
// 8 bytes of offset followed by metadata, returns metadata that does not
// alias its input (Pebble owns the bytes it reads), and what it accepts
// re-encodes to the same bytes. Any offset and metadata survive
// encodeOffset and decodeOffset.
func FuzzDecodeOffset(f *testing.F) {
	f.Add(encodeOffset(broker.Offset{Offset: 42}), int64(42), []byte(nil))
	f.Add(encodeOffset(broker.Offset{Offset: 7, Metadata: []byte("stream-time")}), int64(-1), []byte{0})
	f.Add([]byte{}, int64(0), []byte{})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0}, int64(math.MaxInt64), []byte("m"))
	f.Add([]byte{2, 0, 0, 0, 0, 0, 0, 0, 9}, int64(math.MinInt64), []byte(nil))
	f.Fuzz(func(t *testing.T, v []byte, off int64, meta []byte) {
		o, ok := decodeOffset(v)
		if want := len(v) >= 9 && v[0] == 1; ok != want {
			t.Fatalf("decodeOffset(%x): ok = %v, want %v", v, ok, want)
		}
		if ok {
			if re := encodeOffset(o); !bytes.Equal(re, v) {
				t.Fatalf("decodeOffset(%x) = %+v, which encodes to %x", v, o, re)
			}
			if len(o.Metadata) > 0 {
				before := bytes.Clone(o.Metadata)
				for i := 9; i < len(v); i++ {
					v[i] ^= 0xff
				}
				if !bytes.Equal(o.Metadata, before) {
					t.Fatal("decodeOffset's metadata aliases its input")
				}
			}
		} else if o.Offset != 0 || o.Metadata != nil {
			t.Fatalf("decodeOffset(%x) failed but returned %+v", v, o)
		}

		in := broker.Offset{Offset: off, Metadata: meta}
		got, ok := decodeOffset(encodeOffset(in))
		if !ok || got.Offset != off || !bytes.Equal(got.Metadata, meta) {
			t.Fatalf("offset %+v decodes as %+v, %v", in, got, ok)
		}
	})
}

// FuzzDecodeTopic feeds arbitrary bytes to the decoder of a topic's
// metadata: it never panics; it rejects, with an error wrapping ErrCorrupt
// and naming the topic, every value but 18 bytes of version 1 with a
// positive partition count; and what it accepts re-encodes to the same
// bytes but for flag bits it does not know, which it ignores. Every topic
// CreateTopics accepts survives encodeTopic and decodeTopic.
func FuzzDecodeTopic(f *testing.F) {
	f.Add("t", encodeTopic(1, broker.TopicConfig{Name: "t", Partitions: 3}), uint32(1), int32(3), true, int64(0))
	f.Add("c", encodeTopic(7, broker.TopicConfig{Name: "c", Partitions: 1, Compacted: true, Retention: time.Hour}), uint32(0), int32(1), false, int64(time.Hour))
	f.Add("", []byte{}, uint32(math.MaxUint32), int32(math.MaxInt32), false, int64(math.MaxInt64))
	f.Add("z", make([]byte, topicValueLen), uint32(2), int32(0), true, int64(-1))
	f.Add("v2", append([]byte{2}, make([]byte, topicValueLen-1)...), uint32(3), int32(-5), false, int64(1))
	f.Fuzz(func(t *testing.T, name string, v []byte, id uint32, partitions int32, compacted bool, retention int64) {
		gotID, cfg, err := decodeTopic(name, v)
		valid := len(v) == topicValueLen && v[0] == 1 &&
			int32(binary.BigEndian.Uint32(v[5:])) > 0 && int32(binary.BigEndian.Uint32(v[5:])) <= MaxPartitions &&
			v[9]&^topicFlagCompacted == 0 && int64(binary.BigEndian.Uint64(v[10:])) >= 0
		switch {
		case valid && err != nil:
			t.Fatalf("decodeTopic(%q, %x): %v", name, v, err)
		case !valid && err == nil:
			t.Fatalf("decodeTopic(%q, %x) = %d, %+v; want an error", name, v, gotID, cfg)
		case err != nil && (!errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "topic "+name+":")):
			t.Fatalf("decodeTopic(%q, %x): error %q does not wrap ErrCorrupt or name the topic", name, v, err)
		case valid:
			if re := encodeTopic(gotID, cfg); !bytes.Equal(re, v) || cfg.Name != name {
				t.Fatalf("decodeTopic(%q, %x) = %d, %+v, which encodes to %x", name, v, gotID, cfg, re)
			}
		}

		in := broker.TopicConfig{Name: name, Partitions: partitions, Compacted: compacted, Retention: time.Duration(retention)}
		if validateTopic(in) != nil {
			return
		}
		gotID, cfg, err = decodeTopic(name, encodeTopic(id, in))
		if err != nil || gotID != id || cfg != in {
			t.Fatalf("topic %d %+v decodes as %d, %+v, %v", id, in, gotID, cfg, err)
		}
	})
}

// FuzzDecodeBounds feeds arbitrary bytes to the decoder of the partition
// bounds Clean stores: it never panics, accepts exactly 16 bytes holding
// 0 <= start <= end, and what it accepts re-encodes to the same bytes.
func FuzzDecodeBounds(f *testing.F) {
	f.Add(encodeBounds(0, 0))
	f.Add(encodeBounds(10, 4096))
	f.Add([]byte{})
	f.Add(make([]byte, 15))
	f.Add(make([]byte, 17))
	f.Fuzz(func(t *testing.T, v []byte) {
		start, end, ok := decodeBounds(v)
		valid := len(v) == 16 && int64(binary.BigEndian.Uint64(v)) >= 0 && int64(binary.BigEndian.Uint64(v[8:])) >= int64(binary.BigEndian.Uint64(v))
		if ok != valid {
			t.Fatalf("decodeBounds(%x): ok = %v", v, ok)
		}
		if ok {
			if re := encodeBounds(start, end); !bytes.Equal(re, v) {
				t.Fatalf("decodeBounds(%x) = %d, %d, which encodes to %x", v, start, end, re)
			}
		}
	})
}

// FuzzRecordKey checks the keys of record batches and group offsets: a
// key isRecordKeyOf accepts has a base offset recordKeyBase reads without
// panicking and that rebuilds the key; every batch key round-trips; keys of
// one partition sort by base offset (the log finds a partition's last
// batch and the batch holding an offset by seeking); and a group's offset
// key starts with its partition's prefix, as DeleteTopics' range deletion
// of the partition's offsets assumes.
func FuzzRecordKey(f *testing.F) {
	f.Add(appendRecordKey(nil, 1, 2, 3), uint32(1), int32(2), int64(3), int64(4), "g")
	f.Add([]byte{kindRecords}, uint32(0), int32(0), int64(0), int64(0), "")
	f.Add(tpKey(kindOffset, 5, 1), uint32(5), int32(1), int64(1<<40), int64(1<<40+1), "app")
	f.Add(appendRecordKey(nil, math.MaxUint32, math.MaxInt32, math.MaxInt64), uint32(math.MaxUint32), int32(math.MaxInt32), int64(math.MaxInt64), int64(0), "\xff")
	f.Fuzz(func(t *testing.T, k []byte, id uint32, partition int32, base, base2 int64, group string) {
		if isRecordKeyOf(k, id, partition) {
			if re := appendRecordKey(nil, id, partition, recordKeyBase(k)); !bytes.Equal(re, k) {
				t.Fatalf("record key %x of %d/%d rebuilds as %x", k, id, partition, re)
			}
		}

		key := appendRecordKey(nil, id, partition, base)
		if !isRecordKeyOf(key, id, partition) || recordKeyBase(key) != base {
			t.Fatalf("record key %x of %d/%d at %d: isRecordKeyOf %v, base %d",
				key, id, partition, base, isRecordKeyOf(key, id, partition), recordKeyBase(key))
		}
		if base >= 0 && base2 >= 0 {
			key2 := appendRecordKey(nil, id, partition, base2)
			if c := bytes.Compare(key, key2); c != cmp.Compare(base, base2) {
				t.Fatalf("record keys at %d and %d compare %d", base, base2, c)
			}
		}

		ok := offsetKey(id, partition, group)
		if !bytes.HasPrefix(ok, tpKey(kindOffset, id, partition)) || string(ok[tpKeyLen:]) != group {
			t.Fatalf("offset key %x of %d/%d, group %q", ok, id, partition, group)
		}
		if isRecordKeyOf(ok, id, partition) {
			t.Fatalf("offset key %x taken for a record key", ok)
		}
		if tk := topicKey(group); tk[0] != kindTopic || string(tk[1:]) != group {
			t.Fatalf("topic key %x of %q", tk, group)
		}
	})
}
