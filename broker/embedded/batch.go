package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"

	"github.com/eddyflow/eddy/broker"
)

// A batch is the value of one record key: the records one commit wrote to
// one partition. Layout (integers big-endian, varints as in encoding/binary):
//
//	version         u8   batchVersion
//	flags           u8   reserved, 0
//	crc             u32  CRC-32C (Castagnoli) of every byte after this field
//	count           u32  number of records
//	lastOffsetDelta u32  offset of the batch's last record minus its base offset
//	baseTimestamp   i64  timestamp of the first record (ms since the epoch)
//	maxTimestamp    i64  largest timestamp of the batch
//	records         count times:
//	    offsetDelta     uvarint  offset minus the base offset (the key holds the base)
//	    timestampDelta  varint   timestamp minus baseTimestamp
//	    keyLen          varint   -1 for a nil key
//	    key             keyLen bytes
//	    valueLen        varint   -1 for a nil value (a tombstone)
//	    value           valueLen bytes
//	    headerCount     uvarint
//	    headers         headerCount times:
//	        keyLen    uvarint
//	        key       keyLen bytes
//	        valueLen  varint  -1 for a nil value
//	        value     valueLen bytes
//
// Offset deltas strictly increase; compaction removes records and keeps
// lastOffsetDelta, so gaps may appear but the batch's span never changes.
const (
	batchVersion   = 1
	batchHeaderLen = 30
	// minRecordLen is the smallest encoded record: five one-byte varints.
	minRecordLen = 5
	// minHeaderLen is the smallest encoded header: two one-byte varints.
	minHeaderLen = 2
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by errors for stored data that fails its checks: a
// batch whose checksum or structure is wrong, or a metadata value that does
// not decode. The error names the topic, partition and base offset.
var ErrCorrupt = errors.New("corrupt data")

// batchHeader is the fixed part of a batch.
type batchHeader struct {
	count           uint32
	lastOffsetDelta uint32
	baseTimestamp   int64
	maxTimestamp    int64
}

// batchEncoder builds one batch value. The zero value is ready to use; reset
// makes it reusable without giving up its buffer.
type batchEncoder struct {
	buf   []byte
	h     batchHeader
	empty bool // no record added since reset; the zero value is empty too
}

func (e *batchEncoder) reset() {
	if cap(e.buf) < batchHeaderLen {
		e.buf = make([]byte, batchHeaderLen, 4096)
	}
	e.buf = e.buf[:batchHeaderLen]
	e.h = batchHeader{}
	e.empty = true
}

// len returns the encoded size so far.
func (e *batchEncoder) len() int { return len(e.buf) }

// add appends r with the given offset delta, which must be larger than the
// delta of the previous record.
func (e *batchEncoder) add(delta uint32, r *broker.Record) {
	if len(e.buf) < batchHeaderLen {
		e.reset()
	}
	if e.h.count == 0 {
		e.h.baseTimestamp = r.Timestamp
		e.h.maxTimestamp = r.Timestamp
	}
	e.empty = false
	e.h.count++
	e.h.lastOffsetDelta = delta
	e.h.maxTimestamp = max(e.h.maxTimestamp, r.Timestamp)
	b := e.buf
	b = binary.AppendUvarint(b, uint64(delta))
	b = binary.AppendVarint(b, r.Timestamp-e.h.baseTimestamp)
	b = appendBytes(b, r.Key)
	b = appendBytes(b, r.Value)
	b = binary.AppendUvarint(b, uint64(len(r.Headers)))
	for i := range r.Headers {
		h := &r.Headers[i]
		b = binary.AppendUvarint(b, uint64(len(h.Key)))
		b = append(b, h.Key...)
		b = appendBytes(b, h.Value)
	}
	e.buf = b
}

// appendBytes appends a length-prefixed byte slice; length -1 encodes nil.
func appendBytes(b, v []byte) []byte {
	if v == nil {
		return binary.AppendVarint(b, -1)
	}
	b = binary.AppendVarint(b, int64(len(v)))
	return append(b, v...)
}

// finish writes the header and checksum and returns the batch. The result
// aliases the encoder's buffer: it is valid until the next reset or add.
func (e *batchEncoder) finish() []byte {
	if len(e.buf) < batchHeaderLen {
		e.reset()
	}
	b := e.buf
	b[0] = batchVersion
	b[1] = 0
	binary.BigEndian.PutUint32(b[6:], e.h.count)
	binary.BigEndian.PutUint32(b[10:], e.h.lastOffsetDelta)
	binary.BigEndian.PutUint64(b[14:], uint64(e.h.baseTimestamp))
	binary.BigEndian.PutUint64(b[22:], uint64(e.h.maxTimestamp))
	binary.BigEndian.PutUint32(b[2:], crc32.Checksum(b[6:], castagnoli))
	return b
}

// errBatch describes why a batch failed to decode.
type errBatch string

func (e errBatch) Error() string { return string(e) }

// readBatchHeader checks b's version and checksum and returns its header.
func readBatchHeader(b []byte) (batchHeader, error) {
	if len(b) < batchHeaderLen {
		return batchHeader{}, errBatch(fmt.Sprintf("%d bytes, shorter than the %d-byte header", len(b), batchHeaderLen))
	}
	if b[0] != batchVersion {
		return batchHeader{}, errBatch(fmt.Sprintf("unknown batch version %d", b[0]))
	}
	if want, got := binary.BigEndian.Uint32(b[2:]), crc32.Checksum(b[6:], castagnoli); want != got {
		return batchHeader{}, errBatch(fmt.Sprintf("checksum mismatch: stored %#08x, computed %#08x", want, got))
	}
	h := batchHeader{
		count:           binary.BigEndian.Uint32(b[6:]),
		lastOffsetDelta: binary.BigEndian.Uint32(b[10:]),
		baseTimestamp:   int64(binary.BigEndian.Uint64(b[14:])),
		maxTimestamp:    int64(binary.BigEndian.Uint64(b[22:])),
	}
	if int(h.count) > (len(b)-batchHeaderLen)/minRecordLen {
		return batchHeader{}, errBatch(fmt.Sprintf("record count %d does not fit in %d bytes", h.count, len(b)))
	}
	return h, nil
}

// decodeBatch decodes the batch b stored at base offset base of tp and
// appends its records to dst. The records' Key, Value and header values
// alias b, so b must not be modified afterwards; header keys are copied.
// decodeBatch never panics, whatever b holds.
func decodeBatch(dst []broker.Record, b []byte, tp broker.TopicPartition, base int64) ([]broker.Record, batchHeader, error) {
	h, err := readBatchHeader(b)
	if err != nil {
		return dst, h, corruptBatch(tp, base, err)
	}
	d := decoder{b: b, off: batchHeaderLen}
	var slab []broker.Header // headers of this batch, carved out per record
	first := len(dst)
	prev := int64(-1)
	for i := uint32(0); i < h.count; i++ {
		delta := d.uvarint()
		tsDelta := d.varint()
		key := d.bytes()
		value := d.bytes()
		nh := d.uvarint()
		if d.err != nil {
			break
		}
		if int64(delta) <= prev || delta > uint64(h.lastOffsetDelta) {
			d.fail(fmt.Sprintf("record %d: offset delta %d after %d, last %d", i, delta, prev, h.lastOffsetDelta))
			break
		}
		prev = int64(delta)
		if nh > uint64(d.remaining()/minHeaderLen) {
			d.fail(fmt.Sprintf("record %d: header count %d does not fit", i, nh))
			break
		}
		var headers []broker.Header
		if nh > 0 {
			if cap(slab)-len(slab) < int(nh) {
				slab = make([]broker.Header, 0, max(int(nh), 16))
			}
			headers = slab[len(slab) : len(slab)+int(nh) : len(slab)+int(nh)]
			slab = slab[:len(slab)+int(nh)]
			for j := range headers {
				klen := d.uvarint()
				if d.err == nil && klen > uint64(d.remaining()) {
					d.fail(fmt.Sprintf("record %d: header key length %d", i, klen))
				}
				if d.err != nil {
					break
				}
				headers[j].Key = string(d.b[d.off : d.off+int(klen)])
				d.off += int(klen)
				headers[j].Value = d.bytes()
			}
			if d.err != nil {
				break
			}
		}
		dst = append(dst, broker.Record{
			Topic:     tp.Topic,
			Partition: tp.Partition,
			Offset:    base + int64(delta),
			Timestamp: h.baseTimestamp + tsDelta,
			Key:       key,
			Value:     value,
			Headers:   headers,
		})
	}
	if d.err == nil && d.off != len(b) {
		d.fail(fmt.Sprintf("%d trailing bytes", len(b)-d.off))
	}
	if d.err != nil {
		return dst[:first], h, corruptBatch(tp, base, d.err)
	}
	return dst, h, nil
}

func corruptBatch(tp broker.TopicPartition, base int64, err error) error {
	return fmt.Errorf("embedded: %s: batch at offset %d: %w: %w", tp, base, ErrCorrupt, err)
}

// decoder reads varints and length-prefixed bytes, remembering the first error.
type decoder struct {
	b   []byte
	off int
	err error
}

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) fail(msg string) {
	if d.err == nil {
		d.err = errBatch(msg)
	}
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b[d.off:])
	if n <= 0 {
		d.fail(fmt.Sprintf("bad uvarint at byte %d", d.off))
		return 0
	}
	d.off += n
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b[d.off:])
	if n <= 0 {
		d.fail(fmt.Sprintf("bad varint at byte %d", d.off))
		return 0
	}
	d.off += n
	return v
}

// bytes reads a length-prefixed slice (length -1: nil). The result's
// capacity is clipped so that appending to it never overwrites the batch.
func (d *decoder) bytes() []byte {
	n := d.varint()
	if d.err != nil {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < -1 || n > int64(d.remaining()) || n > math.MaxInt32 {
		d.fail(fmt.Sprintf("bad length %d at byte %d", n, d.off))
		return nil
	}
	v := d.b[d.off : d.off+int(n) : d.off+int(n)]
	d.off += int(n)
	return v
}
