package operators

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

// Meta keys of SlidingAggregate's window store (besides metaStreamTime).
const (
	metaUnemittedFrom = "unemitted-from" // EmitFinal: smallest start not yet emitted
	metaPurgedBelow   = "purged-below"   // windows starting before it are deleted
)

// minPurgeStepMs is the smallest span of window starts one expiry pass of
// SlidingAggregate deletes. Expiry ranges over the window store, which
// flushes its cache; passes at every record would forward every update at
// once and defeat the cache.
const minPurgeStepMs = 1000

// SlidingAggregate folds records into Kafka Streams' sliding windows per
// key (window.Sliding; ../shared/SEMANTICS-KS.md rules 8-12), as Kafka
// Streams' KStreamSlidingWindowAggregate does. With d = Spec.SizeMs():
//
//   - Windows are [start, start+d], both ends inclusive. A record at t has
//     a left window [t-d, t], and a right window [t+1, t+1+d] once a
//     record after t falls in it; no other window exists. Records with
//     t < d share the window [0, d] instead of left windows of their own.
//   - A new window starts from the aggregate of the key's neighbouring
//     window that holds the same earlier (left window) or later (right
//     window) records, so its aggregate folds its records in arrival
//     order, like every other aggregate. A copy lacks a record that was
//     too late for the window it copies, as in Kafka Streams.
//   - Stream-time is the largest timestamp seen; closeTime is stream-time
//     minus grace. A window is open while end >= closeTime. A record with
//     t+d < closeTime is in no open window: it is dropped (Late). Any other
//     record is added to every open window containing it; if its own left
//     window is closed (max(t, d) < closeTime) that window is not created,
//     and the record also goes to Late, once, as in WindowAggregate.
//   - With EmitFinal, a window's final aggregate is forwarded once, when
//     closeTime passes its end, in start then key order; without, every
//     update is forwarded when the store's cache flushes it (with no
//     cache: every write, in the order Kafka Streams forwards them, but a
//     window that is both the previous record's right window and the new
//     record's left window is written once, where Kafka Streams forwards
//     the same value twice). A new window's update has no old value.
//   - A result is stamped with the largest timestamp in its window. Records
//     with a negative timestamp are in no window and are ignored.
//
// Store is a window store of the aggregates, keyed (start, key), each the
// 8-byte timestamp then the encoded aggregate, as WindowAggregate's.
// IndexStore is a key-value store with an empty value per window, keyed
//
//	uvarint(len(key)) | key | start (8 bytes, bits inverted: descending)
//
// A record's lookup is one range over its own key's index entries, from
// t+1 down to the first window that ends before t (reading each window's
// aggregate from Store): it touches the windows that contain t, which it
// must update anyway, and at most two more, whatever other keys hold.
// Store's cache is not flushed by lookups, only by closing and expiry,
// which range over Store from the smallest start still due and so read
// each window about twice in its life.
//
// Closed windows are not deleted at once: a later record of the key builds
// its windows from them (its left window from the window just before it,
// even a closed one). They are kept, never updated nor emitted again,
// while they can still shape an accepted record's windows, until their
// start is below closeTime - 2d - 1; expiry deletes them in steps of at
// least max(d, 1s) of starts, so state stays bounded. Stream-time and the
// emission and expiry progress are metadata of Store.
//
// RetentionMs keeps closed windows longer, readable in Store: a window is
// not deleted before stream-time reaches its start plus RetentionMs (at
// least 2d + grace, Kafka Streams' minimum and default). As expiry goes
// by steps, and a window is kept at least while it can shape later ones
// (until stream-time passes start + 2d + grace + 1), a window may stay up
// to max(d, 1s) longer.
type SlidingAggregate[K, V, A any] struct {
	Name string
	// Store names the window store of the aggregates, IndexStore the
	// key-value store listing each key's windows.
	Store, IndexStore string
	// Spec is a window.Sliding spec.
	Spec      window.Spec
	EmitFinal bool
	// RetentionMs is how long a window stays in Store at least, from its
	// start: it is not deleted before stream-time >= start + RetentionMs.
	// 0 keeps the windows only as long as they can shape later ones;
	// otherwise it must be at least 2*size + grace, as in Kafka Streams.
	RetentionMs int64
	KeySerde    serde.Serde[K]
	AggSerde    serde.Serde[A]
	Fold        Fold[K, V, A]
	Out         Downstream[window.Windowed[K], Change[A]]
	// Late receives the records that missed a window (nil: only counted).
	Late *LateRecords[K, V]

	store *state.WindowStore
	index *state.KV
	// streamTime, unemitted and purgedBelow mirror the store's meta.
	// unemitted is the smallest start of a window not emitted yet
	// (EmitFinal; MaxInt64: none), purgedBelow bounds the deleted starts.
	streamTime, unemitted, purgedBelow int64
	closeTime                          int64 // of the record being processed
	// starts lists the windows of the current lookup, descending.
	starts []int64
	// kbuf: the record's encoded key; lbuf, rbuf, cbuf: copies of the
	// left, right and combined neighbours; the others are scratch.
	kbuf, vbuf, lbuf, rbuf, cbuf, ibuf, lo, hi, mbuf []byte
}

// Init opens the stores and loads the operator's progress.
func (s *SlidingAggregate[K, V, A]) Init(ctx *Context, stores Stores) error {
	// Kafka Streams' minimum: closed windows shape later ones that long.
	if d, grace := s.Spec.SizeMs(), s.Spec.GraceMs(); s.RetentionMs != 0 && (s.RetentionMs < 2*d || s.RetentionMs-2*d < grace) {
		return fmt.Errorf("operator %s: store %s: retention %dms is less than twice the maximum time difference plus grace (2*%dms + %dms)", s.Name, s.Store, s.RetentionMs, d, grace)
	}
	cfg := state.StoreConfig{}
	if !s.EmitFinal {
		cfg.OnFlush = func(key, value, old []byte) error {
			if value == nil {
				return nil // an expired window: not an update
			}
			start, kb, err := state.DecodeWindowKey(key)
			if err != nil {
				return fmt.Errorf("store %s: %w", s.Store, err)
			}
			return s.forward(ctx, start, kb, value, old)
		}
	}
	var err error
	if s.store, err = stores.Window(s.Store, cfg); err != nil {
		return err
	}
	if s.index, err = stores.KV(s.IndexStore, state.StoreConfig{}); err != nil {
		return err
	}
	if s.streamTime, err = getMetaInt(s.store, metaStreamTime, math.MinInt64); err != nil {
		return err
	}
	if s.unemitted, err = getMetaInt(s.store, metaUnemittedFrom, math.MaxInt64); err != nil {
		return err
	}
	s.purgedBelow, err = getMetaInt(s.store, metaPurgedBelow, 0)
	return err
}

func (s *SlidingAggregate[K, V, A]) putMeta(name string, v int64) error {
	return putMetaInt(s.store, name, v, &s.mbuf)
}

// forward sends the aggregate of window (start, kb) downstream.
func (s *SlidingAggregate[K, V, A]) forward(ctx *Context, start int64, kb, value, old []byte) error {
	return forwardWindow(ctx, s.Out, s.Store, s.KeySerde, s.AggSerde, start, start+s.Spec.SizeMs(), kb, value, old)
}

// Process implements Processor.
func (s *SlidingAggregate[K, V, A]) Process(ctx *Context, r Record[K, V]) error {
	if dropNilKey(ctx, s.Name) {
		return nil
	}
	if r.Time < 0 {
		return nil // windows start at 0: no window can hold it
	}
	if r.Time > s.streamTime {
		s.streamTime = r.Time
		if err := s.putMeta(metaStreamTime, s.streamTime); err != nil {
			return err
		}
	}
	d := s.Spec.SizeMs()
	s.closeTime = s.streamTime - s.Spec.GraceMs()
	if r.Time < s.closeTime-d {
		// Every window that could hold r has closed (rule 10).
		if err := s.Late.Drop(ctx, s.Name, r); err != nil {
			return fmt.Errorf("operator %s: late records: %w", s.Name, err)
		}
		return nil
	}
	var err error
	if s.kbuf, err = s.KeySerde.Encode(s.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", s.Name, err)
	}
	if r.Time < d {
		err = s.processEarly(ctx, r)
	} else {
		err = s.processInOrder(ctx, r)
	}
	if err != nil {
		return err
	}
	if max(r.Time, d) < s.closeTime {
		// r's own left window is closed: r missed it.
		if err := s.Late.Drop(ctx, s.Name, r); err != nil {
			return fmt.Errorf("operator %s: late records: %w", s.Name, err)
		}
	}
	return s.expire(ctx, s.closeTime)
}

// processInOrder adds a record at t >= d: it updates the open windows
// containing t, newest first, then creates the right window of the
// previous record, its own left window and its own right window, as far
// as they hold records and do not exist yet.
func (s *SlidingAggregate[K, V, A]) processInOrder(ctx *Context, r Record[K, V]) error {
	t, d := r.Time, s.Spec.SizeMs()
	// The windows from t+1 (t's right window) down to the first one that
	// ends before t, which starts at t-2d at the earliest.
	if err := s.lookup(max(0, t-2*d), t+1, t-d); err != nil {
		return err
	}
	var (
		leftDone, rightDone, hasRight, hasPrev bool
		prev                                   int64 // the latest record before t
	)
	for _, start := range s.starts {
		if start == t+1 {
			rightDone = true
			continue
		}
		val, err := s.get(start)
		if err != nil {
			return err
		}
		maxTs, err := s.storedTime(val)
		if err != nil {
			return err
		}
		switch end := start + d; {
		case end > t: // contains t; the first is the latest
			if !hasRight {
				s.rbuf, hasRight = append(s.rbuf[:0], val...), true
			}
			if err := s.update(ctx, r, start, val, true, false); err != nil {
				return err
			}
		case end == t: // t's left window exists
			leftDone = true
			if err := s.update(ctx, r, start, val, true, false); err != nil {
				return err
			}
			if maxTs >= t {
				// Another record at t created every window t needs.
				return nil
			}
			prev, hasPrev = maxTs, true
		default: // ends before t: the last window listed
			s.lbuf = append(s.lbuf[:0], val...)
			prev, hasPrev = maxTs, true
		}
	}
	// The previous record's right window, if it now holds t. When it is
	// t's left window, that is created just below, with the same value.
	if hasPrev {
		ps := prev + 1
		if ps+d >= t && ps != t-d && !slices.Contains(s.starts, ps) {
			if err := s.update(ctx, r, ps, nil, false, true); err != nil {
				return err
			}
		}
	}
	if !leftDone {
		// The window before t's holds exactly the earlier records of
		// t's left window, if the previous record is in it.
		var err error
		if hasPrev && prev >= t-d {
			err = s.update(ctx, r, t-d, s.lbuf, true, true)
		} else {
			err = s.update(ctx, r, t-d, nil, false, true)
		}
		if err != nil {
			return err
		}
	}
	return s.createRight(rightDone, hasRight, t)
}

// processEarly adds a record at 0 <= t < d, whose left window is the
// shared [0, d]. It updates the windows containing t, oldest first, then
// creates its right window and the previous record's, and updates or
// creates [0, d] last, in Kafka Streams' order.
func (s *SlidingAggregate[K, V, A]) processEarly(ctx *Context, r Record[K, V]) error {
	t := r.Time
	if err := s.lookup(0, t+1, math.MinInt64); err != nil {
		return err
	}
	slices.Reverse(s.starts)
	var (
		hasCombined, rightDone, hasRight, hasPrev bool
		prev                                      int64
	)
	for _, start := range s.starts {
		switch {
		case start == t+1:
			rightDone = true
		case start == 0:
			val, err := s.get(start)
			if err != nil {
				return err
			}
			maxTs, err := s.storedTime(val)
			if err != nil {
				return err
			}
			s.cbuf, hasCombined = append(s.cbuf[:0], val...), true
			if maxTs < t {
				prev, hasPrev = maxTs, true
			}
		default: // 0 < start <= t: contains t; the last is the latest
			val, err := s.get(start)
			if err != nil {
				return err
			}
			s.rbuf, hasRight = append(s.rbuf[:0], val...), true
			if err := s.update(ctx, r, start, val, true, false); err != nil {
				return err
			}
		}
	}
	if !hasRight && hasCombined {
		// No window starts between 0 and t, so the records of [0, d]
		// after t are those of t's right window.
		if ts, err := s.storedTime(s.cbuf); err != nil {
			return err
		} else if ts > t {
			s.rbuf, hasRight = append(s.rbuf[:0], s.cbuf...), true
		}
	}
	if err := s.createRight(rightDone, hasRight, t); err != nil {
		return err
	}
	if hasPrev && !slices.Contains(s.starts, prev+1) {
		if err := s.update(ctx, r, prev+1, nil, false, true); err != nil {
			return err
		}
	}
	if hasCombined {
		return s.update(ctx, r, 0, s.cbuf, true, false)
	}
	return s.update(ctx, r, 0, nil, false, true)
}

// createRight creates t's right window from s.rbuf, the aggregate of the
// latest window containing t before t was added, if it holds records
// after t. The window is open: t+1+d > closeTime, as t was not dropped.
func (s *SlidingAggregate[K, V, A]) createRight(exists, hasRight bool, t int64) error {
	if exists || !hasRight {
		return nil
	}
	ts, err := s.storedTime(s.rbuf)
	if err != nil || ts <= t {
		return err
	}
	if err := s.created(t + 1); err != nil {
		return err
	}
	return s.store.Put(s.kbuf, t+1, s.rbuf)
}

// update folds r into the window of the record's key starting at start,
// whose stored aggregate is base (found) or nothing, if the window is
// open. create tells that the window is new.
func (s *SlidingAggregate[K, V, A]) update(ctx *Context, r Record[K, V], start int64, base []byte, found, create bool) error {
	if start < s.closeTime-s.Spec.SizeMs() {
		return nil // closed: r is late for it, which Process reports
	}
	var err error
	if s.vbuf, err = foldStored(ctx, s.Name, s.Store, s.AggSerde, s.Fold, r, base, found, s.vbuf[:0]); err != nil {
		return err
	}
	if create {
		if err := s.created(start); err != nil {
			return err
		}
	}
	return s.store.Put(s.kbuf, start, s.vbuf)
}

// created indexes a new window of the record's key.
func (s *SlidingAggregate[K, V, A]) created(start int64) error {
	s.ibuf = appendSlidingIndexKey(s.ibuf[:0], s.kbuf, start)
	if err := s.index.Put(s.ibuf, []byte{}); err != nil {
		return err
	}
	if s.EmitFinal && start < s.unemitted {
		s.unemitted = start
		return s.putMeta(metaUnemittedFrom, start)
	}
	return nil
}

// get returns the stored aggregate of the record's key in the window
// starting at start, which the index lists.
func (s *SlidingAggregate[K, V, A]) get(start int64) ([]byte, error) {
	v, ok, err := s.store.Get(s.kbuf, start)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("operator %s: store %s has no window at %d that %s lists", s.Name, s.Store, start, s.IndexStore)
	}
	return v, nil
}

// storedTime returns the timestamp of a stored aggregate.
func (s *SlidingAggregate[K, V, A]) storedTime(v []byte) (int64, error) {
	if len(v) < tsLen {
		return 0, fmt.Errorf("store %s: stored aggregate too short: %d bytes", s.Store, len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// lookup lists in s.starts the record key's windows with lo <= start <=
// hi, descending, up to and including the first one starting before
// stopBelow.
func (s *SlidingAggregate[K, V, A]) lookup(lo, hi, stopBelow int64) error {
	s.starts = s.starts[:0]
	s.lo = appendSlidingIndexKey(s.lo[:0], s.kbuf, hi)
	s.hi = appendSlidingIndexKey(s.hi[:0], s.kbuf, lo-1) // descending: lo-1 sorts after lo
	err := s.index.Range(s.lo, s.hi, func(k, _ []byte) error {
		start, err := slidingIndexStart(k)
		if err != nil {
			return fmt.Errorf("store %s: %w", s.IndexStore, err)
		}
		s.starts = append(s.starts, start)
		if start < stopBelow {
			return errStopRange
		}
		return nil
	})
	if errors.Is(err, errStopRange) {
		return nil
	}
	return err
}

// expire emits (EmitFinal) the windows that closeTime has closed and
// deletes the windows no accepted record can look up any more.
func (s *SlidingAggregate[K, V, A]) expire(ctx *Context, closeTime int64) error {
	d := s.Spec.SizeMs()
	// A window is closed once end < closeTime: start < closeTime-d.
	if s.EmitFinal && s.unemitted < closeTime-d {
		if err := s.emit(ctx, closeTime-d); err != nil {
			return err
		}
	}
	// An accepted record has t >= closeTime-d. It updates or copies the
	// windows containing t, starting at t-d >= closeTime-2d or later, and
	// reads the window before those, whose latest record p matters only if
	// p's right window [p+1, p+1+d] is open: p >= closeTime-d-1, so that
	// window starts at closeTime-2d-1 or later. A window within its
	// retention (stream-time < start+RetentionMs) stays too.
	below := closeTime - 2*d - 1
	if s.RetentionMs != 0 {
		below = min(below, s.streamTime-s.RetentionMs+1)
	}
	if below-max(d, minPurgeStepMs) >= s.purgedBelow {
		if err := s.purge(below); err != nil {
			return err
		}
		s.purgedBelow = below
		return s.putMeta(metaPurgedBelow, below)
	}
	return nil
}

// emit forwards the final aggregate of every window starting before
// before, in start then key order, from the first one not yet emitted.
func (s *SlidingAggregate[K, V, A]) emit(ctx *Context, before int64) error {
	next := int64(math.MaxInt64)
	err := s.store.Range(s.unemitted, math.MaxInt64, func(key []byte, start int64, value []byte) error {
		if start >= before {
			next = start
			return errStopRange
		}
		return s.forward(ctx, start, key, value, nil)
	})
	if err != nil && !errors.Is(err, errStopRange) {
		return err
	}
	s.unemitted = next
	return s.putMeta(metaUnemittedFrom, next)
}

// purge deletes every window starting before below from both stores.
func (s *SlidingAggregate[K, V, A]) purge(below int64) error {
	return s.store.Range(s.purgedBelow, below, func(key []byte, start int64, _ []byte) error {
		s.ibuf = appendSlidingIndexKey(s.ibuf[:0], key, start)
		if err := s.index.Delete(s.ibuf); err != nil {
			return err
		}
		return s.store.Delete(key, start)
	})
}

// Finish emits (EmitFinal) every window not emitted yet, as if stream-time
// had reached the end of time, and deletes every window.
func (s *SlidingAggregate[K, V, A]) Finish(ctx *Context) error {
	if s.EmitFinal && s.unemitted != math.MaxInt64 {
		if err := s.emit(ctx, math.MaxInt64); err != nil {
			return err
		}
	}
	return s.purge(math.MaxInt64)
}

// appendSlidingIndexKey appends the index key of (key, start) to dst:
// uvarint(len(key)), key, then start as 8 bytes big-endian with the sign
// bit flipped and every bit inverted, so that one key's entries are
// contiguous and sort by descending start.
func appendSlidingIndexKey(dst, key []byte, start int64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	return binary.BigEndian.AppendUint64(dst, ^(uint64(start) ^ 1<<63))
}

// slidingIndexStart returns the start of an index key.
func slidingIndexStart(k []byte) (int64, error) {
	n, w := binary.Uvarint(k)
	if w <= 0 || uint64(len(k)-w) != n+8 {
		return 0, fmt.Errorf("corrupt sliding window index key %x", k)
	}
	return int64(^binary.BigEndian.Uint64(k[len(k)-8:]) ^ 1<<63), nil
}
