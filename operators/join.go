package operators

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

// Joiner combines the values of a stream-stream join. In a left or outer
// join, a record that found no match is joined with the zero value of the
// other side, whose ok flag is then false.
type Joiner[K, L, R, O any] func(key K, left L, leftOK bool, right R, rightOK bool) O

// StreamJoin joins two co-partitioned streams by key within a time window,
// as Kafka Streams' KStream-KStream join does (../shared/SEMANTICS-KS.md,
// rules 19-30). A left record at tL joins every right record at tR with
// tL-BeforeMs <= tR <= tL+AfterMs, whichever of the two arrives first; a
// joined record is stamped max(tL, tR). Left and Right return the
// processors of the two inputs; both share the join's stream-time, the
// largest timestamp seen on either side.
//
// Each side keeps its records in a key-value store (LeftStore, RightStore)
// for BeforeMs+AfterMs+GraceMs (the retention, at least 1 ms) behind that
// side's largest timestamp: a record joins only the records of the other
// side still retained. Keys of a side store are
//
//	segment (8) | uvarint(len(key)) | key | time (8)
//
// with a list of the values that arrived for that key and time as the
// value, in arrival order. A lookup of one key within [from, to] is one
// range scan per segment it spans (at most two: a segment covers at least
// the retention), and expiry deletes whole segments once the side's
// stream-time has passed them, ranging over those segments only. Times and
// segment numbers are 8 bytes big-endian with the sign bit flipped, so
// that byte order is numeric order.
//
// In a left (LeftOuter) or outer (LeftOuter and RightOuter) join, a record
// of an outer side that finds no match is held back in HeldStore, keyed
//
//	time (8) | side (1: right 0, left 1) | key
//
// with its values as a list, until stream-time passes its time plus the
// look-ahead (AfterMs for a left record, BeforeMs for a right one) plus
// GraceMs. A later match deletes it. Due records are emitted, joined with
// the zero value of the other side, by the next record whose timestamp
// equals stream-time, before that record's own results; the held store is
// scanned in key order, which is time, then right before left, then key,
// then arrival, and only from the smallest held time on. A record that
// arrives after its own look-ahead has passed is not held: its unmatched
// result is emitted at once. Finish emits every held record.
//
// A record already past its own side's retention when it arrives still
// joins what the other side retains, but is not stored; it is counted by
// Context.Late. Stream-times, the segment size, expiry progress and the
// smallest held times are store metadata, changelogged with the data.
type StreamJoin[K, L, R, O any] struct {
	Name                  string
	LeftStore, RightStore string
	// HeldStore holds unmatched records of the outer sides; required when
	// LeftOuter or RightOuter is set.
	HeldStore                  string
	BeforeMs, AfterMs, GraceMs int64
	// LeftOuter emits left records without a match; RightOuter right ones.
	LeftOuter, RightOuter bool
	KeySerde              serde.Serde[K]
	LeftSerde             serde.Serde[L]
	RightSerde            serde.Serde[R]
	Joiner                Joiner[K, L, R, O]
	Out                   Downstream[K, O]

	sides     [2]joinSide
	held      *state.KV // nil for an inner join
	retention int64
	matches   []joinMatch
	arena     []byte // values of matches and held chunks
	chunk     []heldEntry
	// Buffers: kbuf and vbuf hold the current record's key and value
	// while it is processed; the others are scratch.
	kbuf, vbuf, lo, hi, hbuf, lbuf, mbuf []byte
}

// Sides of a join, indexes of StreamJoin.sides.
const (
	joinLeft  = 0
	joinRight = 1
)

// Meta keys of a join's stores.
const (
	metaExpiredBelow = "expired-below" // side stores: first segment not deleted
	metaSegmentMs    = "segment-ms"    // side stores: segment size in ms
)

// metaHeldMin names the lower bound of a side's held times in HeldStore.
var metaHeldMin = [2]string{"held-min-left", "held-min-right"}

// minSegmentMs is the smallest segment size: smaller segments would make
// expiry scan the store every few records of a dense stream.
const minSegmentMs = 1000

// heldChunk bounds the held records collected by one scan of HeldStore
// before they are emitted and deleted.
const heldChunk = 256

// errStopRange stops a Range early.
var errStopRange = errors.New("operators: stop range")

type joinSide struct {
	store      *state.KV
	storeName  string
	streamTime int64 // largest timestamp of this side; MinInt64 before the first
	// segMs is the segment size, fixed when the store is first written so
	// that a change of window keeps reading the stored layout.
	segMs        int64
	segPersisted bool
	// expiredBelow: segments below it have been deleted (MinInt64: none).
	expiredBelow int64
	// A record of this side at t joins records of the other side at
	// [t-lookBefore, t+lookAfter].
	lookBefore, lookAfter int64
	outer                 bool
	// heldMin is at most the time of every record of this side in the
	// held store; MaxInt64 when there is none.
	heldMin int64
}

// joinMatch is a value of the other side, at arena[off:off+n].
type joinMatch struct {
	time   int64
	off, n int
}

// heldEntry is a held store entry collected for emission: its key and
// value lists at arena offsets.
type heldEntry struct {
	koff, kn, voff, vn int
}

// Init opens the join's stores and loads its stream-times.
func (j *StreamJoin[K, L, R, O]) Init(ctx *Context, stores Stores) error {
	switch {
	case j.BeforeMs+j.AfterMs < 0:
		return fmt.Errorf("operator %s: join window before+after must not be negative, got %d+%d ms", j.Name, j.BeforeMs, j.AfterMs)
	case j.GraceMs < 0:
		return fmt.Errorf("operator %s: join grace must not be negative, got %d ms", j.Name, j.GraceMs)
	case (j.LeftOuter || j.RightOuter) && j.HeldStore == "":
		return fmt.Errorf("operator %s: an outer join needs a held store", j.Name)
	}
	j.retention = joinRetention(j.BeforeMs, j.AfterMs, j.GraceMs)
	j.sides[joinLeft] = joinSide{storeName: j.LeftStore, lookBefore: j.BeforeMs, lookAfter: j.AfterMs, outer: j.LeftOuter}
	j.sides[joinRight] = joinSide{storeName: j.RightStore, lookBefore: j.AfterMs, lookAfter: j.BeforeMs, outer: j.RightOuter}
	for i := range j.sides {
		s := &j.sides[i]
		var err error
		if s.store, err = stores.KV(s.storeName, state.StoreConfig{}); err != nil {
			return err
		}
		if s.streamTime, err = getMetaInt(s.store, metaStreamTime, math.MinInt64); err != nil {
			return fmt.Errorf("store %s: %w", s.storeName, err)
		}
		if s.expiredBelow, err = getMetaInt(s.store, metaExpiredBelow, math.MinInt64); err != nil {
			return fmt.Errorf("store %s: %w", s.storeName, err)
		}
		if s.segMs, err = getMetaInt(s.store, metaSegmentMs, 0); err != nil {
			return fmt.Errorf("store %s: %w", s.storeName, err)
		}
		if s.segMs < 0 {
			return fmt.Errorf("store %s: meta %s: negative segment size %d", s.storeName, metaSegmentMs, s.segMs)
		}
		s.segPersisted = s.segMs != 0
		if !s.segPersisted {
			s.segMs = max(j.retention, minSegmentMs)
		}
		s.heldMin = math.MaxInt64
	}
	if !j.LeftOuter && !j.RightOuter {
		return nil
	}
	var err error
	if j.held, err = stores.KV(j.HeldStore, state.StoreConfig{}); err != nil {
		return err
	}
	for i := range j.sides {
		if j.sides[i].outer {
			if j.sides[i].heldMin, err = getMetaInt(j.held, metaHeldMin[i], math.MaxInt64); err != nil {
				return fmt.Errorf("store %s: %w", j.HeldStore, err)
			}
		}
	}
	return nil
}

// joinRetention is how far behind a side's stream-time its records stay
// joinable: before+after+grace, as in Kafka Streams, but at least 1 ms so
// that a zero window joins records of equal timestamps.
func joinRetention(before, after, grace int64) int64 {
	return max(before+after+grace, 1)
}

func (j *StreamJoin[K, L, R, O]) putMetaInt(s metaStore, name string, v int64) error {
	return putMetaInt(s, name, v, &j.mbuf)
}

// Left returns the processor of the left input.
func (j *StreamJoin[K, L, R, O]) Left() Processor[K, L] { return joinLeftInput[K, L, R, O]{j} }

// Right returns the processor of the right input.
func (j *StreamJoin[K, L, R, O]) Right() Processor[K, R] { return joinRightInput[K, L, R, O]{j} }

type joinLeftInput[K, L, R, O any] struct{ j *StreamJoin[K, L, R, O] }

func (p joinLeftInput[K, L, R, O]) Process(ctx *Context, r Record[K, L]) error {
	if dropNilKey(ctx, p.j.Name) {
		return nil
	}
	return p.j.processLeft(ctx, r)
}

type joinRightInput[K, L, R, O any] struct{ j *StreamJoin[K, L, R, O] }

func (p joinRightInput[K, L, R, O]) Process(ctx *Context, r Record[K, R]) error {
	if dropNilKey(ctx, p.j.Name) {
		return nil
	}
	return p.j.processRight(ctx, r)
}

func (j *StreamJoin[K, L, R, O]) processLeft(ctx *Context, r Record[K, L]) error {
	var err error
	if j.kbuf, err = j.KeySerde.Encode(j.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", j.Name, err)
	}
	if j.vbuf, err = j.LeftSerde.Encode(j.vbuf[:0], r.Value); err != nil {
		return fmt.Errorf("operator %s: encode left value: %w", j.Name, err)
	}
	if err := j.begin(ctx, joinLeft, r.Time); err != nil {
		return err
	}
	for i := range j.matches {
		m := j.matches[i]
		if err := j.unhold(joinRight, i); err != nil {
			return err
		}
		v, err := j.RightSerde.Decode(j.arena[m.off : m.off+m.n])
		if err != nil {
			return fmt.Errorf("store %s: decode value: %w", j.RightStore, err)
		}
		ctx.Operator = j.Name
		out := j.Joiner(r.Key, r.Value, true, v, true)
		if err := j.Out.Forward(ctx, Record[K, O]{Key: r.Key, Value: out, Time: max(r.Time, m.time), Headers: r.Headers}); err != nil {
			return err
		}
	}
	if len(j.matches) == 0 && j.LeftOuter {
		held, err := j.holdBack(joinLeft, r.Time)
		if err != nil {
			return err
		}
		if !held {
			var zero R
			ctx.Operator = j.Name
			out := j.Joiner(r.Key, r.Value, true, zero, false)
			if err := j.Out.Forward(ctx, Record[K, O]{Key: r.Key, Value: out, Time: r.Time, Headers: r.Headers}); err != nil {
				return err
			}
		}
	}
	return j.keep(ctx, joinLeft, r.Time)
}

// processRight mirrors processLeft.
func (j *StreamJoin[K, L, R, O]) processRight(ctx *Context, r Record[K, R]) error {
	var err error
	if j.kbuf, err = j.KeySerde.Encode(j.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", j.Name, err)
	}
	if j.vbuf, err = j.RightSerde.Encode(j.vbuf[:0], r.Value); err != nil {
		return fmt.Errorf("operator %s: encode right value: %w", j.Name, err)
	}
	if err := j.begin(ctx, joinRight, r.Time); err != nil {
		return err
	}
	for i := range j.matches {
		m := j.matches[i]
		if err := j.unhold(joinLeft, i); err != nil {
			return err
		}
		v, err := j.LeftSerde.Decode(j.arena[m.off : m.off+m.n])
		if err != nil {
			return fmt.Errorf("store %s: decode value: %w", j.LeftStore, err)
		}
		ctx.Operator = j.Name
		out := j.Joiner(r.Key, v, true, r.Value, true)
		if err := j.Out.Forward(ctx, Record[K, O]{Key: r.Key, Value: out, Time: max(r.Time, m.time), Headers: r.Headers}); err != nil {
			return err
		}
	}
	if len(j.matches) == 0 && j.RightOuter {
		held, err := j.holdBack(joinRight, r.Time)
		if err != nil {
			return err
		}
		if !held {
			var zero L
			ctx.Operator = j.Name
			out := j.Joiner(r.Key, zero, false, r.Value, true)
			if err := j.Out.Forward(ctx, Record[K, O]{Key: r.Key, Value: out, Time: r.Time, Headers: r.Headers}); err != nil {
				return err
			}
		}
	}
	return j.keep(ctx, joinRight, r.Time)
}

// streamTime returns the join's stream-time: the largest timestamp of
// either side.
func (j *StreamJoin[K, L, R, O]) streamTime() int64 {
	return max(j.sides[joinLeft].streamTime, j.sides[joinRight].streamTime)
}

// begin advances stream-time with a record of side this at t, emits the
// held records that are due if t is the stream-time, and collects the
// record's matches on the other side (key j.kbuf) into j.matches, in time
// then arrival order.
func (j *StreamJoin[K, L, R, O]) begin(ctx *Context, this int, t int64) error {
	s, o := &j.sides[this], &j.sides[1-this]
	if t > s.streamTime {
		s.streamTime = t
		if err := j.putMetaInt(s.store, metaStreamTime, t); err != nil {
			return err
		}
	}
	if now := j.streamTime(); t == now && j.held != nil && j.heldDue(now) {
		if err := j.emitHeld(ctx, now, false); err != nil {
			return err
		}
	}
	j.matches, j.arena = j.matches[:0], j.arena[:0]
	from := max(satSub(t, s.lookBefore), visibleFrom(o.streamTime, j.retention))
	to := satAdd(t, s.lookAfter)
	if from > to {
		return nil
	}
	// The window spans at most two segments: segments are at least as
	// long as the retention, which bounds to-from.
	for seg := max(floorDiv(from, o.segMs), o.expiredBelow); seg <= floorDiv(to, o.segMs); seg++ {
		j.lo = appendSideKey(j.lo[:0], seg, j.kbuf, from)
		j.hi = append(appendSideKey(j.hi[:0], seg, j.kbuf, to), 0)
		err := o.store.Range(j.lo, j.hi, func(k, v []byte) error {
			tm := decodeJoinTime(k[len(k)-8:])
			return forEachListItem(v, func(item []byte) error {
				j.matches = append(j.matches, joinMatch{time: tm, off: len(j.arena), n: len(item)})
				j.arena = append(j.arena, item...)
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("store %s: %w", o.storeName, err)
		}
	}
	return nil
}

// unhold deletes the held records of side other that match j.matches[i]
// (same key and time), unless an earlier match had the same time.
func (j *StreamJoin[K, L, R, O]) unhold(other, i int) error {
	o := &j.sides[other]
	tm := j.matches[i].time
	if !o.outer || tm < o.heldMin || (i > 0 && j.matches[i-1].time == tm) {
		return nil
	}
	j.hbuf = appendHeldKey(j.hbuf[:0], tm, other, j.kbuf)
	_, found, err := j.held.Get(j.hbuf)
	if err != nil || !found {
		return err
	}
	return j.held.Delete(j.hbuf)
}

// holdBack holds the unmatched record (j.kbuf, j.vbuf) of side this at t
// until its window closes, and reports whether it did: a record whose
// window has already ended (t+lookAfter < stream-time) is not held but
// emitted at once, as in Kafka Streams.
func (j *StreamJoin[K, L, R, O]) holdBack(this int, t int64) (bool, error) {
	s := &j.sides[this]
	if satAdd(t, s.lookAfter) < j.streamTime() {
		return false, nil
	}
	j.hbuf = appendHeldKey(j.hbuf[:0], t, this, j.kbuf)
	if err := j.appendItem(j.held, j.hbuf, j.vbuf); err != nil {
		return false, err
	}
	if t < s.heldMin {
		s.heldMin = t
		if err := j.putMetaInt(j.held, metaHeldMin[this], t); err != nil {
			return false, err
		}
	}
	return true, nil
}

// appendItem appends item to the value list of key in kv.
func (j *StreamJoin[K, L, R, O]) appendItem(kv *state.KV, key, item []byte) error {
	old, _, err := kv.Get(key)
	if err != nil {
		return err
	}
	j.lbuf = appendListItem(append(j.lbuf[:0], old...), item)
	return kv.Put(key, j.lbuf)
}

// keep stores the record (j.kbuf, j.vbuf) of side this at t, unless it is
// already past retention (it is then counted late: it joined what it
// found, but no later record will find it), and deletes the segments that
// expired.
func (j *StreamJoin[K, L, R, O]) keep(ctx *Context, this int, t int64) error {
	s := &j.sides[this]
	vis := visibleFrom(s.streamTime, j.retention)
	if t < vis && ctx.Late != nil {
		ctx.Late(j.Name)
	}
	if t >= vis {
		if !s.segPersisted {
			if err := j.putMetaInt(s.store, metaSegmentMs, s.segMs); err != nil {
				return err
			}
			s.segPersisted = true
		}
		j.lo = appendSideKey(j.lo[:0], floorDiv(t, s.segMs), j.kbuf, t)
		if err := j.appendItem(s.store, j.lo, j.vbuf); err != nil {
			return err
		}
	}
	live := floorDiv(vis, s.segMs)
	if live <= s.expiredBelow {
		return nil
	}
	// Delete the segments entirely below the retention.
	j.lo = appendJoinTime(j.lo[:0], s.expiredBelow)
	j.hi = appendJoinTime(j.hi[:0], live)
	err := s.store.Range(j.lo, j.hi, func(k, _ []byte) error { return s.store.Delete(k) })
	if err != nil {
		return fmt.Errorf("store %s: expire: %w", s.storeName, err)
	}
	s.expiredBelow = live
	return j.putMetaInt(s.store, metaExpiredBelow, live)
}

// heldDue reports whether some held record may be due at stream-time now.
func (j *StreamJoin[K, L, R, O]) heldDue(now int64) bool {
	for i := range j.sides {
		s := &j.sides[i]
		if s.outer && s.heldMin != math.MaxInt64 && now > satAdd(satAdd(s.heldMin, s.lookAfter), j.GraceMs) {
			return true
		}
	}
	return false
}

// emitHeld emits and deletes the held records that are due at stream-time
// now (all of them if all), in held-store order: time, right before left,
// key, arrival. It scans from the smallest held time and stops at the
// first time at which no side can be due.
func (j *StreamJoin[K, L, R, O]) emitHeld(ctx *Context, now int64, all bool) error {
	var dueBefore [2]int64 // a held record of side s is due iff its time < dueBefore[s]
	stopAt, start := int64(math.MinInt64), int64(math.MaxInt64)
	for i := range j.sides {
		s := &j.sides[i]
		if !s.outer {
			continue
		}
		dueBefore[i] = satSub(satSub(now, s.lookAfter), j.GraceMs)
		stopAt = max(stopAt, dueBefore[i])
		start = min(start, s.heldMin)
	}
	if start == math.MaxInt64 {
		return nil
	}
	kept := [2]int64{math.MaxInt64, math.MaxInt64} // smallest time left held, per side
	startKey := appendJoinTime(nil, start)
	for {
		j.chunk, j.arena = j.chunk[:0], j.arena[:0]
		more := false
		err := j.held.Range(startKey, nil, func(k, v []byte) error {
			t, side, _, err := decodeHeldKey(k)
			if err != nil {
				return err
			}
			if !all && t >= stopAt {
				kept[joinLeft] = min(kept[joinLeft], t)
				kept[joinRight] = min(kept[joinRight], t)
				return errStopRange
			}
			if !all && t >= dueBefore[side] {
				kept[side] = min(kept[side], t)
				return nil
			}
			if len(j.chunk) == heldChunk {
				more = true
				startKey = append(startKey[:0], k...)
				return errStopRange
			}
			e := heldEntry{koff: len(j.arena), kn: len(k)}
			j.arena = append(j.arena, k...)
			e.voff, e.vn = len(j.arena), len(v)
			j.arena = append(j.arena, v...)
			j.chunk = append(j.chunk, e)
			return nil
		})
		if err != nil && err != errStopRange {
			return fmt.Errorf("store %s: %w", j.HeldStore, err)
		}
		for _, e := range j.chunk {
			if err := j.emitHeldEntry(ctx, j.arena[e.koff:e.koff+e.kn], j.arena[e.voff:e.voff+e.vn]); err != nil {
				return err
			}
		}
		if !more {
			break
		}
	}
	for i := range j.sides {
		s := &j.sides[i]
		if s.outer && kept[i] != s.heldMin {
			s.heldMin = kept[i]
			if err := j.putMetaInt(j.held, metaHeldMin[i], kept[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// emitHeldEntry emits the values of one held key, joined with the zero
// value of the other side, stamped with their own time, and deletes it.
func (j *StreamJoin[K, L, R, O]) emitHeldEntry(ctx *Context, hk, list []byte) error {
	t, side, kb, err := decodeHeldKey(hk)
	if err != nil {
		return fmt.Errorf("store %s: %w", j.HeldStore, err)
	}
	key, err := j.KeySerde.Decode(kb)
	if err != nil {
		return fmt.Errorf("store %s: decode key: %w", j.HeldStore, err)
	}
	err = forEachListItem(list, func(item []byte) error {
		var out O
		if side == joinLeft {
			v, err := j.LeftSerde.Decode(item)
			if err != nil {
				return fmt.Errorf("store %s: decode left value: %w", j.HeldStore, err)
			}
			var zero R
			ctx.Operator = j.Name
			out = j.Joiner(key, v, true, zero, false)
		} else {
			v, err := j.RightSerde.Decode(item)
			if err != nil {
				return fmt.Errorf("store %s: decode right value: %w", j.HeldStore, err)
			}
			var zero L
			ctx.Operator = j.Name
			out = j.Joiner(key, zero, false, v, true)
		}
		return j.Out.Forward(ctx, Record[K, O]{Key: key, Value: out, Time: t})
	})
	if err != nil {
		return err
	}
	return j.held.Delete(hk)
}

// Finish emits every held record, as if stream-time had reached the end
// of time.
func (j *StreamJoin[K, L, R, O]) Finish(ctx *Context) error {
	if j.held == nil {
		return nil
	}
	return j.emitHeld(ctx, math.MaxInt64, true)
}

// visibleFrom is the smallest time a side with stream-time st retains.
// retention is at least 1.
func visibleFrom(st, retention int64) int64 {
	if st < math.MinInt64+retention {
		return math.MinInt64 // st-retention+1 <= MinInt64: everything
	}
	return st - retention + 1
}

// appendJoinTime appends t as 8 bytes big-endian with the sign bit
// flipped, so that byte order is numeric order (negative times first).
func appendJoinTime(dst []byte, t int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(t)^(1<<63))
}

func decodeJoinTime(b []byte) int64 { return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)) }

// appendSideKey appends the side store key of (segment, key, time). The
// key's length prefix keeps one key's entries contiguous even when
// another key extends it.
func appendSideKey(dst []byte, seg int64, key []byte, t int64) []byte {
	dst = appendJoinTime(dst, seg)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return appendJoinTime(dst, t)
}

// decodeSideKey splits a key made by appendSideKey; key aliases k.
func decodeSideKey(k []byte) (seg int64, key []byte, t int64, err error) {
	if len(k) < 17 {
		return 0, nil, 0, fmt.Errorf("join store key too short: %d bytes", len(k))
	}
	seg = decodeJoinTime(k)
	n, w := binary.Uvarint(k[8:])
	if w <= 0 || uint64(len(k)-8-w-8) != n {
		return 0, nil, 0, fmt.Errorf("join store key: bad key length")
	}
	key = k[8+w : len(k)-8]
	return seg, key, decodeJoinTime(k[len(k)-8:]), nil
}

// appendHeldKey appends the held store key of (time, side, key). Right
// sorts before left at equal times, as Kafka Streams emits them.
func appendHeldKey(dst []byte, t int64, side int, key []byte) []byte {
	dst = appendJoinTime(dst, t)
	dst = append(dst, byte(1-side)) // left 1, right 0
	return append(dst, key...)
}

// decodeHeldKey splits a key made by appendHeldKey; key aliases k.
func decodeHeldKey(k []byte) (t int64, side int, key []byte, err error) {
	if len(k) < 9 || k[8] > 1 {
		return 0, 0, nil, fmt.Errorf("held store key: malformed %x", k)
	}
	return decodeJoinTime(k), 1 - int(k[8]), k[9:], nil
}

// appendListItem appends one item to a value list: uvarint length, bytes.
func appendListItem(dst, item []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(item)))
	return append(dst, item...)
}

// forEachListItem calls fn with each item of a value list, in order.
func forEachListItem(b []byte, fn func(item []byte) error) error {
	for len(b) > 0 {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)-w) {
			return fmt.Errorf("join value list: corrupt item length")
		}
		if err := fn(b[w : w+int(n)]); err != nil {
			return err
		}
		b = b[w+int(n):]
	}
	return nil
}

// floorDiv divides rounding toward negative infinity; b > 0.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// satAdd adds, saturating at the int64 bounds.
func satAdd(a, b int64) int64 {
	s := a + b
	switch {
	case b > 0 && s < a:
		return math.MaxInt64
	case b < 0 && s > a:
		return math.MinInt64
	}
	return s
}

// satSub subtracts, saturating at the int64 bounds.
func satSub(a, b int64) int64 {
	if b == math.MinInt64 {
		if a >= 0 {
			return math.MaxInt64
		}
		return a - b
	}
	return satAdd(a, -b)
}
