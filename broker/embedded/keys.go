package embedded

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// Key layout of the log's Pebble DB. Every key starts with a one-byte kind;
// integers are big-endian so that keys sort numerically. Topics are named
// in keys by a uint32 id assigned at creation, which keeps record keys short
// and lets DeleteTopics drop a topic's records and offsets with range
// deletions.
//
//	"v"                                  format version (u8)
//	'm' name                             topic: see encodeTopic
//	'o' id(u32) partition(u32) group     committed offset of a group: see encodeOffset
//	'p' id(u32) partition(u32)           partition bounds written by Clean: start(u64) end(u64)
//	'r' id(u32) partition(u32) base(u64) record batch: see batch.go
const (
	kindTopic     = 'm'
	kindOffset    = 'o'
	kindPartition = 'p'
	kindRecords   = 'r'

	formatVersion = 1

	tpKeyLen     = 1 + 4 + 4
	recordKeyLen = tpKeyLen + 8
)

var versionKey = []byte("v")

// tpKey returns kind id partition.
func tpKey(kind byte, id uint32, partition int32) []byte {
	return appendTPKey(make([]byte, 0, recordKeyLen), kind, id, partition)
}

func appendTPKey(b []byte, kind byte, id uint32, partition int32) []byte {
	b = append(b, kind)
	b = binary.BigEndian.AppendUint32(b, id)
	return binary.BigEndian.AppendUint32(b, uint32(partition))
}

// appendRecordKey appends the key of the batch of id/partition at base.
func appendRecordKey(b []byte, id uint32, partition int32, base int64) []byte {
	b = appendTPKey(b, kindRecords, id, partition)
	return binary.BigEndian.AppendUint64(b, uint64(base))
}

// recordKeyBase returns the base offset of a record key of tp prefix.
func recordKeyBase(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[tpKeyLen:]))
}

// prefixEnd returns the smallest key larger than every key with prefix p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil // p is all 0xff: no upper bound
}

// topicKey returns the metadata key of a topic.
func topicKey(name string) []byte {
	return append([]byte{kindTopic}, name...)
}

// Topic values: version u8, id u32, partitions u32, flags u8 (bit 0:
// compacted), retention i64 (nanoseconds).
const (
	topicValueLen      = 1 + 4 + 4 + 1 + 8
	topicFlagCompacted = 1
	// MaxPartitions bounds a topic's partition count: the log keeps a
	// small struct per partition in memory.
	MaxPartitions = 1 << 16
)

func encodeTopic(id uint32, cfg broker.TopicConfig) []byte {
	b := make([]byte, 0, topicValueLen)
	b = append(b, 1)
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, uint32(cfg.Partitions))
	var flags byte
	if cfg.Compacted {
		flags |= topicFlagCompacted
	}
	b = append(b, flags)
	return binary.BigEndian.AppendUint64(b, uint64(cfg.Retention))
}

func decodeTopic(name string, v []byte) (uint32, broker.TopicConfig, error) {
	if len(v) != topicValueLen || v[0] != 1 {
		return 0, broker.TopicConfig{}, fmt.Errorf("embedded: topic %s: metadata of %d bytes: %w", name, len(v), ErrCorrupt)
	}
	cfg := broker.TopicConfig{
		Name:       name,
		Partitions: int32(binary.BigEndian.Uint32(v[5:])),
		Compacted:  v[9]&topicFlagCompacted != 0,
		Retention:  time.Duration(binary.BigEndian.Uint64(v[10:])),
	}
	switch {
	case cfg.Partitions <= 0 || cfg.Partitions > MaxPartitions:
		return 0, cfg, fmt.Errorf("embedded: topic %s: %d partitions: %w", name, cfg.Partitions, ErrCorrupt)
	case v[9]&^topicFlagCompacted != 0:
		return 0, cfg, fmt.Errorf("embedded: topic %s: unknown flags %#x: %w", name, v[9], ErrCorrupt)
	case cfg.Retention < 0:
		return 0, cfg, fmt.Errorf("embedded: topic %s: negative retention: %w", name, ErrCorrupt)
	}
	return binary.BigEndian.Uint32(v[1:]), cfg, nil
}

// offsetKey returns the key of group's committed offset of a partition.
func offsetKey(id uint32, partition int32, group string) []byte {
	b := make([]byte, 0, tpKeyLen+len(group))
	b = appendTPKey(b, kindOffset, id, partition)
	return append(b, group...)
}

// Offset values: version u8, offset i64, metadata (the rest).
func encodeOffset(o broker.Offset) []byte {
	b := make([]byte, 0, 9+len(o.Metadata))
	b = append(b, 1)
	b = binary.BigEndian.AppendUint64(b, uint64(o.Offset))
	return append(b, o.Metadata...)
}

func decodeOffset(v []byte) (broker.Offset, bool) {
	if len(v) < 9 || v[0] != 1 {
		return broker.Offset{}, false
	}
	o := broker.Offset{Offset: int64(binary.BigEndian.Uint64(v[1:]))}
	if len(v) > 9 {
		o.Metadata = append([]byte(nil), v[9:]...)
	}
	return o, true
}

// Partition bounds values: start u64, end u64.
func encodeBounds(start, end int64) []byte {
	b := make([]byte, 0, 16)
	b = binary.BigEndian.AppendUint64(b, uint64(start))
	return binary.BigEndian.AppendUint64(b, uint64(end))
}

func decodeBounds(v []byte) (start, end int64, ok bool) {
	if len(v) != 16 {
		return 0, 0, false
	}
	start, end = int64(binary.BigEndian.Uint64(v)), int64(binary.BigEndian.Uint64(v[8:]))
	if start < 0 || end < start {
		return 0, 0, false
	}
	return start, end, true
}
