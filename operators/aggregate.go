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
)

// WindowAggregate folds records into tumbling or hopping windows per key.
//
// Stream-time is the largest timestamp the operator has seen. A record is
// added to every window containing it that is still open (end + grace >
// stream-time); it is late for the others, and counted late if it missed
// any. When stream-time passes a window's end plus grace, the window
// closes: with EmitFinal its final value is forwarded then, once; without,
// every update was already forwarded as the cache flushed it. Closed
// windows are deleted from the store.
type WindowAggregate[K, V, A any] struct {
	Name      string
	Store     string
	Spec      window.Spec
	EmitFinal bool
	KeySerde  serde.Serde[K]
	AggSerde  serde.Serde[A]
	Fold      Fold[K, V, A]
	Out       Downstream[window.Windowed[K], Change[A]]
	// Late receives the records that missed a window (nil: only counted).
	Late *LateRecords[K, V]

	store *state.WindowStore
	// streamTime and closedUpTo mirror the store's meta: every window
	// ending at or before closedUpTo has been closed.
	streamTime, closedUpTo int64
	kbuf, vbuf, mbuf       []byte
}

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
	w.closedUpTo, err = getMetaInt(w.store, metaClosedUpTo, math.MinInt64)
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
		return w.close(ctx, closeTime)
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

// close closes every window ending at or before closeTime: forwards its
// final value when emitting on close, then deletes it.
func (w *WindowAggregate[K, V, A]) close(ctx *Context, closeTime int64) error {
	size := w.Spec.SizeMs()
	from := int64(math.MinInt64)
	if w.closedUpTo != math.MinInt64 {
		from = w.closedUpTo - size + 1
	}
	to := closeTime - size + 1 // windows with start+size <= closeTime
	if closeTime == math.MaxInt64 {
		to = math.MaxInt64
	}
	type closed struct {
		key   []byte
		start int64
	}
	var done []closed
	err := w.store.Range(from, to, func(key []byte, start int64, value []byte) error {
		done = append(done, closed{append([]byte(nil), key...), start})
		if !w.EmitFinal {
			return nil
		}
		return w.forward(ctx, state.AppendWindowKey(nil, start, key), value, nil)
	})
	if err != nil {
		return err
	}
	for _, d := range done {
		if err := w.store.Delete(d.key, d.start); err != nil {
			return err
		}
	}
	w.closedUpTo = closeTime
	return w.putMeta(metaClosedUpTo, closeTime)
}

// Finish closes every window, as if stream-time had reached the end of time.
func (w *WindowAggregate[K, V, A]) Finish(ctx *Context) error {
	return w.close(ctx, math.MaxInt64)
}

// Reader returns a reader of the aggregates, for joins (ReadableTable).
// It is valid once Init has run.
func (a *Aggregate[K, V, A]) Reader(view TableView) TableReader[K, A] {
	return &storeReader[K, A]{name: a.Store, store: a.store, keySerde: a.KeySerde, valueSerde: a.AggSerde, view: view}
}
