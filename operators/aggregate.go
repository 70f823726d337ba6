package operators

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

// Fold folds a record into an aggregate. found is false for the first
// record of a key (or window), when agg is the zero value.
type Fold[K, V, A any] func(key K, value V, agg A, found bool) A

// Stored aggregates are the 8-byte big-endian timestamp of the newest
// record folded in, then the encoded aggregate: a table row's output
// timestamp is the maximum of its inputs', as in Kafka Streams.
const tsLen = 8

func appendTimestamped[A any](dst []byte, ts int64, s serde.Serde[A], v A) ([]byte, error) {
	dst = binary.BigEndian.AppendUint64(dst, uint64(ts))
	return s.Encode(dst, v)
}

func decodeTimestamped[A any](b []byte, s serde.Serde[A]) (int64, A, error) {
	var zero A
	if len(b) < tsLen {
		return 0, zero, fmt.Errorf("stored aggregate too short: %d bytes", len(b))
	}
	v, err := s.Decode(b[tsLen:])
	return int64(binary.BigEndian.Uint64(b)), v, err
}

// changeOf decodes a flushed table row into a Change.
func changeOf[A any](s serde.Serde[A], value, old []byte) (Change[A], int64, error) {
	var c Change[A]
	var ts int64
	var err error
	if value != nil {
		c.HasNew = true
		if ts, c.New, err = decodeTimestamped(value, s); err != nil {
			return c, 0, err
		}
	}
	if old != nil {
		c.HasOld = true
		var oldTs int64
		if oldTs, c.Old, err = decodeTimestamped(old, s); err != nil {
			return c, 0, err
		}
		if value == nil {
			ts = oldTs
		}
	}
	return c, ts, nil
}

// forwardRows returns the OnFlush of a table's store (timestamped rows,
// see changeOf): it forwards each flushed row downstream as a Change.
func forwardRows[K, A any](ctx *Context, store string, ks serde.Serde[K], as serde.Serde[A], out Downstream[K, Change[A]]) func(key, value, old []byte) error {
	return func(key, value, old []byte) error {
		k, err := ks.Decode(key)
		if err != nil {
			return fmt.Errorf("store %s: decode key: %w", store, err)
		}
		c, ts, err := changeOf(as, value, old)
		if err != nil {
			return fmt.Errorf("store %s: %w", store, err)
		}
		return out.Forward(ctx, Record[K, Change[A]]{Key: k, Value: c, Time: ts})
	}
}

// foldStored folds r into the stored aggregate old (if found) and appends
// the encoded result, stamped with the newest input time, to dst.
func foldStored[K, V, A any](ctx *Context, op, store string, s serde.Serde[A], fold Fold[K, V, A], r Record[K, V], old []byte, found bool, dst []byte) ([]byte, error) {
	var agg A
	ts := r.Time
	if found {
		oldTs, prev, err := decodeTimestamped(old, s)
		if err != nil {
			return dst, fmt.Errorf("store %s: %w", store, err)
		}
		agg, ts = prev, max(ts, oldTs)
	}
	ctx.Operator = op
	agg = fold(r.Key, r.Value, agg, found)
	dst, err := appendTimestamped(dst, ts, s, agg)
	if err != nil {
		return dst, fmt.Errorf("operator %s: encode aggregate: %w", op, err)
	}
	return dst, nil
}

// Aggregate folds the records of each key into a table row.
type Aggregate[K, V, A any] struct {
	Name     string
	Store    string
	KeySerde serde.Serde[K]
	AggSerde serde.Serde[A]
	Fold     Fold[K, V, A]
	Out      Downstream[K, Change[A]]

	store      *state.KV
	kbuf, vbuf []byte
}

// Init opens the operator's store. Updates are forwarded when the store's
// cache flushes them, so hot keys are throttled to one update per commit.
func (a *Aggregate[K, V, A]) Init(ctx *Context, stores Stores) error {
	var err error
	a.store, err = stores.KV(a.Store, state.StoreConfig{OnFlush: forwardRows(ctx, a.Store, a.KeySerde, a.AggSerde, a.Out)})
	return err
}

// Process implements Processor.
func (a *Aggregate[K, V, A]) Process(ctx *Context, r Record[K, V]) error {
	if dropNilKey(ctx, a.Name) {
		return nil
	}
	var err error
	if a.kbuf, err = a.KeySerde.Encode(a.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", a.Name, err)
	}
	old, found, err := a.store.Get(a.kbuf)
	if err != nil {
		return err
	}
	if a.vbuf, err = foldStored(ctx, a.Name, a.Store, a.AggSerde, a.Fold, r, old, found, a.vbuf[:0]); err != nil {
		return err
	}
	return a.store.Put(a.kbuf, a.vbuf)
}

// Meta keys of windowed operators.
const (
	metaStreamTime = "stream-time"
	metaClosedUpTo = "closed-up-to"
	// metaExpiredUpTo is the deletion watermark of the operators that
	// keep closed windows for a retention period. A store without it
	// (written before retention existed, or never retaining) deleted
	// every closed window: it defaults to closed-up-to.
	metaExpiredUpTo = "expired-up-to"
)

// WindowAggregate folds records into tumbling or hopping windows per key.
//
// Stream-time is the largest timestamp the operator has seen. A record is
// added to every window containing it that is still open (end + grace >
// stream-time); it is late for the others, and counted late if it missed
// any. When stream-time passes a window's end plus grace, the window
// closes: with EmitFinal its final value is forwarded then, once; without,
// every update was already forwarded as the cache flushed it. A closed
// window is never updated nor forwarded again.
//
// A window stays in the store, readable, until stream-time reaches its
// start plus RetentionMs, as in Kafka Streams' window stores; then it is
// deleted, without forwarding anything. By default that is at close.
type WindowAggregate[K, V, A any] struct {
	Name      string
	Store     string
	Spec      window.Spec
	EmitFinal bool
	// RetentionMs is how long a window stays in Store, from its start:
	// it is deleted once stream-time >= start + RetentionMs. 0 means
	// size + grace, deletion at close; otherwise it must be at least
	// size + grace.
	RetentionMs int64
	KeySerde    serde.Serde[K]
	AggSerde    serde.Serde[A]
	Fold        Fold[K, V, A]
	Out         Downstream[window.Windowed[K], Change[A]]
	// Late receives the records that missed a window (nil: only counted).
	Late *LateRecords[K, V]

	store *state.WindowStore
	// streamTime, closedUpTo and expiredUpTo mirror the store's meta:
	// every window ending at or before closedUpTo has been closed, every
	// window ending at or before expiredUpTo deleted. expiryLag is
	// RetentionMs - size: a window is deleted once its end is at or
	// before stream-time - expiryLag, as it closes once its end is at or
	// before stream-time - grace.
	streamTime, closedUpTo, expiredUpTo int64
	expiryLag                           int64
	// expiredMeta tells that the store holds metaExpiredUpTo.
	expiredMeta      bool
	kbuf, vbuf, mbuf []byte
}

// retains tells whether closed windows outlive their close.
func (w *WindowAggregate[K, V, A]) retains() bool { return w.expiryLag > w.Spec.GraceMs() }

// Init opens the store and loads the operator's stream-time.
func (w *WindowAggregate[K, V, A]) Init(ctx *Context, stores Stores) error {
	cfg := state.StoreConfig{}
	if !w.EmitFinal {
		cfg.OnFlush = func(key, value, old []byte) error {
			if value == nil {
				return nil // a closed window expired: not an update
			}
			return w.forward(ctx, key, value, old)
		}
	}
	var err error
	if w.store, err = stores.Window(w.Store, cfg); err != nil {
		return err
	}
	if w.streamTime, err = getMetaInt(w.store, metaStreamTime, math.MinInt64); err != nil {
		return err
	}
	if w.closedUpTo, err = getMetaInt(w.store, metaClosedUpTo, math.MinInt64); err != nil {
		return err
	}
	size, grace := w.Spec.SizeMs(), w.Spec.GraceMs()
	switch {
	case w.RetentionMs == 0:
		w.expiryLag = grace
	case w.RetentionMs < size || w.RetentionMs-size < grace:
		return fmt.Errorf("operator %s: store %s: retention %dms is less than window size plus grace (%dms + %dms)", w.Name, w.Store, w.RetentionMs, size, grace)
	default:
		w.expiryLag = w.RetentionMs - size
	}
	_, w.expiredMeta, err = w.store.GetMeta(metaExpiredUpTo)
	if err != nil {
		return err
	}
	w.expiredUpTo, err = getMetaInt(w.store, metaExpiredUpTo, w.closedUpTo)
	return err
}

func (w *WindowAggregate[K, V, A]) putMeta(name string, v int64) error {
	return putMetaInt(w.store, name, v, &w.mbuf)
}

func (w *WindowAggregate[K, V, A]) forward(ctx *Context, wkey, value, old []byte) error {
	start, kb, err := state.DecodeWindowKey(wkey)
	if err != nil {
		return fmt.Errorf("store %s: %w", w.Store, err)
	}
	return forwardWindow(ctx, w.Out, w.Store, w.KeySerde, w.AggSerde, start, start+w.Spec.SizeMs(), kb, value, old)
}

// forwardWindow sends the stored aggregate value (old: the one before)
// of the window [start, end) of the encoded key kb downstream, as a
// windowed aggregation of store does.
func forwardWindow[K, A any](ctx *Context, out Downstream[window.Windowed[K], Change[A]], store string,
	keys serde.Serde[K], aggs serde.Serde[A], start, end int64, kb, value, old []byte) error {
	k, err := keys.Decode(kb)
	if err != nil {
		return fmt.Errorf("store %s: decode key: %w", store, err)
	}
	c, ts, err := changeOf(aggs, value, old)
	if err != nil {
		return fmt.Errorf("store %s: %w", store, err)
	}
	key := window.Windowed[K]{Key: k, Start: start, End: end}
	return out.Forward(ctx, Record[window.Windowed[K], Change[A]]{Key: key, Value: c, Time: ts})
}

// Process implements Processor.
func (w *WindowAggregate[K, V, A]) Process(ctx *Context, r Record[K, V]) error {
	if dropNilKey(ctx, w.Name) {
		return nil
	}
	var err error
	if r.Time > w.streamTime {
		w.streamTime = r.Time
		if err = w.putMeta(metaStreamTime, w.streamTime); err != nil {
			return err
		}
	}
	closeTime := w.streamTime - w.Spec.GraceMs()
	if closeTime > w.streamTime { // underflow: nothing has closed
		closeTime = math.MinInt64
	}
	if w.kbuf, err = w.KeySerde.Encode(w.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", w.Name, err)
	}
	late := false
	size, adv := w.Spec.SizeMs(), w.Spec.AdvanceMs()
	// Windows start at 0 or later (rule 1) and end by math.MaxInt64: a
	// record outside them lands in no window. The bounds also keep
	// FirstStart from walking up from a very negative time, and start
	// from overflowing (adv <= size).
	first, last := int64(0), min(r.Time, math.MaxInt64-size)
	if r.Time >= 0 {
		first = w.Spec.FirstStart(r.Time)
	}
	for start := first; start <= last; start += adv {
		if start+size <= closeTime {
			late = true
			continue
		}
		if err := w.add(ctx, r, start); err != nil {
			return err
		}
	}
	if late {
		if err := w.Late.Drop(ctx, w.Name, r); err != nil {
			return fmt.Errorf("operator %s: late records: %w", w.Name, err)
		}
	}
	if closeTime >= w.Spec.NextEnd(w.closedUpTo) {
		if err := w.close(ctx, closeTime); err != nil {
			return err
		}
	}
	if w.retains() {
		if expireTime := satSub(w.streamTime, w.expiryLag); expireTime >= w.Spec.NextEnd(w.expiredUpTo) {
			return w.expire(expireTime)
		}
	}
	return nil
}

func (w *WindowAggregate[K, V, A]) add(ctx *Context, r Record[K, V], start int64) error {
	old, found, err := w.store.Get(w.kbuf, start)
	if err != nil {
		return err
	}
	if w.vbuf, err = foldStored(ctx, w.Name, w.Store, w.AggSerde, w.Fold, r, old, found, w.vbuf[:0]); err != nil {
		return err
	}
	return w.store.Put(w.kbuf, start, w.vbuf)
}

// startsUpTo returns the range of window starts [from, to) of the windows
// ending after after and at or before upTo.
func (w *WindowAggregate[K, V, A]) startsUpTo(after, upTo int64) (from, to int64) {
	size := w.Spec.SizeMs()
	from, to = math.MinInt64, math.MaxInt64
	if after != math.MinInt64 {
		from = after - size + 1
	}
	if upTo != math.MaxInt64 {
		to = upTo - size + 1 // windows with start+size <= upTo
	}
	return from, to
}

// close closes every window ending at or before closeTime: forwards its
// final value when emitting on close, then, unless they are retained,
// deletes it (and any window an earlier, longer retention kept).
func (w *WindowAggregate[K, V, A]) close(ctx *Context, closeTime int64) error {
	from, to := w.startsUpTo(w.closedUpTo, closeTime)
	deleting := !w.retains()
	if deleting || w.EmitFinal {
		rangeFrom := from
		if deleting && w.expiredUpTo < w.closedUpTo {
			rangeFrom, _ = w.startsUpTo(w.expiredUpTo, closeTime)
		}
		var done []windowRef
		err := w.store.Range(rangeFrom, to, func(key []byte, start int64, value []byte) error {
			if deleting {
				done = append(done, windowRef{append([]byte(nil), key...), start})
			}
			if !w.EmitFinal || start < from {
				return nil
			}
			return w.forward(ctx, state.AppendWindowKey(nil, start, key), value, nil)
		})
		if err != nil {
			return err
		}
		if err := w.deleteWindows(done); err != nil {
			return err
		}
	}
	w.closedUpTo = closeTime
	if err := w.putMeta(metaClosedUpTo, closeTime); err != nil {
		return err
	}
	if !deleting && !w.expiredMeta {
		// Without the meta, a restart would take every closed window
		// for deleted.
		w.expiredMeta = true
		return w.putMeta(metaExpiredUpTo, w.expiredUpTo)
	}
	if deleting {
		w.expiredUpTo = closeTime
		if w.expiredMeta { // left by a longer retention: keep it true
			return w.putMeta(metaExpiredUpTo, closeTime)
		}
	}
	return nil
}

// windowRef names a stored window.
type windowRef struct {
	key   []byte
	start int64
}

func (w *WindowAggregate[K, V, A]) deleteWindows(done []windowRef) error {
	for _, d := range done {
		if err := w.store.Delete(d.key, d.start); err != nil {
			return err
		}
	}
	return nil
}

// expire deletes every retained window ending at or before expireTime,
// closed already (expireTime <= the close time), forwarding nothing.
func (w *WindowAggregate[K, V, A]) expire(expireTime int64) error {
	from, to := w.startsUpTo(w.expiredUpTo, expireTime)
	var done []windowRef
	err := w.store.Range(from, to, func(key []byte, start int64, _ []byte) error {
		done = append(done, windowRef{append([]byte(nil), key...), start})
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.deleteWindows(done); err != nil {
		return err
	}
	w.expiredUpTo, w.expiredMeta = expireTime, true
	return w.putMeta(metaExpiredUpTo, expireTime)
}

// Finish closes every window, as if stream-time had reached the end of
// time, and deletes every window, their retention over too.
func (w *WindowAggregate[K, V, A]) Finish(ctx *Context) error {
	if err := w.close(ctx, math.MaxInt64); err != nil {
		return err
	}
	if w.retains() {
		return w.expire(math.MaxInt64)
	}
	return nil
}

// Reader returns a reader of the aggregates, for joins (ReadableTable).
// It is valid once Init has run.
func (a *Aggregate[K, V, A]) Reader(view TableView) TableReader[K, A] {
	return &storeReader[K, A]{name: a.Store, store: a.store, keySerde: a.KeySerde, valueSerde: a.AggSerde, view: view}
}
