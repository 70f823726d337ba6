package operators

import (
	"fmt"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

// TableReader reads the rows of a table by key. Joins use it to look up
// the other side of a record. A reader belongs to one task and is not
// safe for concurrent use.
type TableReader[K, V any] interface {
	// Get returns the value of key's row and its timestamp, as of the
	// reader's TableView; ok is false when the table has no row for key.
	Get(key K) (value V, ts int64, ok bool, err error)
}

// TableView says which rows of a cached table a reader sees.
type TableView int

const (
	// Latest is the latest processed row, written to the table's store
	// but maybe not flushed downstream yet: what a stream-table join
	// reads (Kafka Streams' value getters read through the cache too).
	Latest TableView = iota
	// Forwarded is the row as the table last forwarded it downstream:
	// what a table-table join reads, so that each result it emits is the
	// join of rows both sides have forwarded, and a cached join converges
	// to the join of the final tables with exact old values.
	Forwarded
)

// ReadableTable is an operator whose table other operators of its task
// can read: TableSource, Aggregate, TableAggregate and TableJoin.
type ReadableTable[K, V any] interface {
	// Reader returns a new reader of the table's rows as of view. It is
	// valid once the operator's Init has run, for as long as the task
	// lives.
	Reader(view TableView) TableReader[K, V]
}

// storeReader reads a table materialized in a key-value store whose
// values are an 8-byte big-endian timestamp and the encoded value, as
// TableSource and Aggregate store them.
type storeReader[K, V any] struct {
	name       string
	store      *state.KV
	keySerde   serde.Serde[K]
	valueSerde serde.Serde[V]
	view       TableView
	// kbuf is the reader's own: a join holds a reader per table, so a
	// lookup never overwrites the key of an operator's write in progress.
	kbuf []byte
}

func (r *storeReader[K, V]) Get(key K) (V, int64, bool, error) {
	var zero V
	var err error
	if r.kbuf, err = r.keySerde.Encode(r.kbuf[:0], key); err != nil {
		return zero, 0, false, fmt.Errorf("store %s: encode key: %w", r.name, err)
	}
	get := r.store.Get
	if r.view == Forwarded {
		get = r.store.GetFlushed
	}
	b, ok, err := get(r.kbuf)
	if err != nil || !ok {
		return zero, 0, false, err
	}
	ts, v, err := decodeTimestamped(b, r.valueSerde)
	if err != nil {
		return zero, 0, false, fmt.Errorf("store %s: %w", r.name, err)
	}
	return v, ts, true, nil
}

// StreamTableJoin joins each record of a stream with the current row of
// its key in a table, as Kafka Streams' KStream-KTable join does with a
// non-versioned table (../shared/SEMANTICS-KS.md, rules 31-33):
//
//   - only stream records produce output; the table's changes reach the
//     operator through TableInput and are dropped (rule 31);
//   - a stream record joins the table's latest processed row, whatever
//     the two timestamps (rule 32), and the result carries the stream
//     record's timestamp and headers;
//   - a key the table has no row for, never written or deleted by a
//     tombstone (rule 33), gives nothing, or with LeftOuter
//     Joiner(key, v, zero, false).
//
// The operator keeps no state of its own: the table's store is the state,
// so restarts and restores need nothing more.
type StreamTableJoin[K, V, T, O any] struct {
	Name string
	// Table reads the table's rows; required.
	Table     TableReader[K, T]
	LeftOuter bool
	Joiner    func(key K, v V, t T, tableOK bool) O
	Out       Downstream[K, O]
}

// Process implements Processor for the stream's records.
func (j *StreamTableJoin[K, V, T, O]) Process(ctx *Context, r Record[K, V]) error {
	if dropNilKey(ctx, j.Name) {
		return nil
	}
	// A reader may run user code too (a table-table join's Joiner), and a
	// lookup may run other operators (a cache eviction flushes).
	ctx.Operator = j.Name
	t, _, ok, err := j.Table.Get(r.Key)
	if err != nil {
		return fmt.Errorf("operator %s: %w", j.Name, err)
	}
	if !ok && !j.LeftOuter {
		return nil
	}
	ctx.Operator = j.Name
	out := j.Joiner(r.Key, r.Value, t, ok)
	return j.Out.Forward(ctx, Record[K, O]{Key: r.Key, Value: out, Time: r.Time, Headers: r.Headers})
}

// TableInput returns the processor of the table's changes. It drops them:
// a table update never triggers a stream-table join (rule 31). It exists
// so that the table is an input of the join, in the join's task.
func (j *StreamTableJoin[K, V, T, O]) TableInput() Processor[K, Change[T]] {
	return dropChanges[K, T]{}
}

type dropChanges[K, V any] struct{}

func (dropChanges[K, V]) Process(*Context, Record[K, Change[V]]) error { return nil }

// TableJoin joins two co-partitioned tables by key, as Kafka Streams'
// KTable-KTable joins do (../shared/SEMANTICS-KS.md, rules 35-38). Left and
// Right return the processors of the two tables' changes. Each change of
// either side re-emits the join result of its key (rule 35), computed from
// the changed side's new and old values and the other side's current row,
// read with LeftTable or RightTable:
//
//   - a result exists when both rows exist, or only the left one in a left
//     (LeftOuter) or outer join, or only the right one in an outer join
//     (RightOuter); Joiner gets the zero value and false for a missing side;
//   - the emitted Change has the new result, or none (a tombstone) when the
//     changed side's new row gives no result, and as Old the result its old
//     row gave with the other side's current row, so that a downstream
//     aggregation can subtract exactly what it added;
//   - it is stamped with the change's timestamp, or the later of it and the
//     other row's timestamp when the other row exists. A delete's
//     timestamp is its tombstone's (rules 36, 37);
//   - nothing is emitted when neither the old nor the new row gives a
//     result and the other side has no row: an inner join emits nothing
//     while the other side is absent (rule 36), and an outer join's
//     tombstone comes only when both sides are gone (rule 38). As in Kafka
//     Streams, a delete of a row that did not exist while the other side
//     has one forwards an empty Change (a tombstone for a topic).
//
// Cached input tables forward a change when their cache flushes it. The
// other side is read as it was last forwarded (TableView Forwarded), not
// with its unflushed writes: every result is then the join of two rows
// that were both forwarded, the last result of a key always equals the
// join of both sides' last forwarded rows, and Old is exactly the result
// emitted before. Kafka Streams reads the other side through its cache,
// so with caching it can miss a tombstone: left L deleted and right R
// deleted then re-set to R2 within one commit; if the left delete is
// flushed first it sees no right row and emits nothing, and the right
// flush then sees no left row, so the L+R row is never retracted.
//
// The join's result is not materialized: Reader computes a row from both
// tables' rows, as Kafka Streams' join value getters do. The operator
// keeps no state of its own.
type TableJoin[K, L, R, O any] struct {
	Name string
	// LeftOuter gives results for left rows without a right row (left and
	// outer joins); RightOuter for right rows without a left row.
	LeftOuter, RightOuter bool
	// LeftTable and RightTable read the two input tables as Forwarded;
	// required. LatestLeft and LatestRight read them as Latest, for
	// Reader(Latest) (a stream-table join reading this join's result).
	LeftTable   TableReader[K, L]
	RightTable  TableReader[K, R]
	LatestLeft  TableReader[K, L]
	LatestRight TableReader[K, R]
	Joiner      Joiner[K, L, R, O]
	Out         Downstream[K, Change[O]]
}

// Left returns the processor of the left table's changes.
func (j *TableJoin[K, L, R, O]) Left() Processor[K, Change[L]] { return tableJoinLeft[K, L, R, O]{j} }

// Right returns the processor of the right table's changes.
func (j *TableJoin[K, L, R, O]) Right() Processor[K, Change[R]] {
	return tableJoinRight[K, L, R, O]{j}
}

type tableJoinLeft[K, L, R, O any] struct{ j *TableJoin[K, L, R, O] }

func (p tableJoinLeft[K, L, R, O]) Process(ctx *Context, r Record[K, Change[L]]) error {
	j := p.j
	ctx.Operator = j.Name
	rv, rts, rok, err := j.RightTable.Get(r.Key)
	if err != nil {
		return fmt.Errorf("operator %s: right table: %w", j.Name, err)
	}
	c := r.Value
	newOK := rok && c.HasNew || j.LeftOuter && c.HasNew || j.RightOuter && rok
	oldOK := rok && c.HasOld || j.LeftOuter && c.HasOld || j.RightOuter && rok
	if !newOK && !oldOK && !rok {
		return nil
	}
	ctx.Operator = j.Name // the lookup may have run other operators
	var out Change[O]
	if newOK {
		out.New, out.HasNew = j.Joiner(r.Key, c.New, c.HasNew, rv, rok), true
	}
	if oldOK {
		out.Old, out.HasOld = j.Joiner(r.Key, c.Old, c.HasOld, rv, rok), true
	}
	ts := r.Time
	if rok {
		ts = max(ts, rts)
	}
	return j.Out.Forward(ctx, Record[K, Change[O]]{Key: r.Key, Value: out, Time: ts, Headers: r.Headers})
}

type tableJoinRight[K, L, R, O any] struct{ j *TableJoin[K, L, R, O] }

func (p tableJoinRight[K, L, R, O]) Process(ctx *Context, r Record[K, Change[R]]) error {
	j := p.j
	ctx.Operator = j.Name
	lv, lts, lok, err := j.LeftTable.Get(r.Key)
	if err != nil {
		return fmt.Errorf("operator %s: left table: %w", j.Name, err)
	}
	c := r.Value
	newOK := lok && c.HasNew || j.RightOuter && c.HasNew || j.LeftOuter && lok
	oldOK := lok && c.HasOld || j.RightOuter && c.HasOld || j.LeftOuter && lok
	if !newOK && !oldOK && !lok {
		return nil
	}
	ctx.Operator = j.Name // the lookup may have run other operators
	var out Change[O]
	if newOK {
		out.New, out.HasNew = j.Joiner(r.Key, lv, lok, c.New, c.HasNew), true
	}
	if oldOK {
		out.Old, out.HasOld = j.Joiner(r.Key, lv, lok, c.Old, c.HasOld), true
	}
	ts := r.Time
	if lok {
		ts = max(ts, lts)
	}
	return j.Out.Forward(ctx, Record[K, Change[O]]{Key: r.Key, Value: out, Time: ts, Headers: r.Headers})
}

// Reader returns a reader of the join's result: for each key, the joined
// row of both tables' current rows, stamped with the later of their
// timestamps. Joiner is called on every Get.
//
// The join's LeftTable and RightTable must read the Forwarded view; the
// reader of view Latest needs LatestLeft and LatestRight.
func (j *TableJoin[K, L, R, O]) Reader(view TableView) TableReader[K, O] {
	if view == Latest {
		return tableJoinView[K, L, R, O]{j: j, left: j.LatestLeft, right: j.LatestRight}
	}
	return tableJoinView[K, L, R, O]{j: j, left: j.LeftTable, right: j.RightTable}
}

type tableJoinView[K, L, R, O any] struct {
	j     *TableJoin[K, L, R, O]
	left  TableReader[K, L]
	right TableReader[K, R]
}

func (v tableJoinView[K, L, R, O]) Get(key K) (O, int64, bool, error) {
	j := v.j
	var zero O
	lv, lts, lok, err := v.left.Get(key)
	if err != nil {
		return zero, 0, false, fmt.Errorf("operator %s: left table: %w", j.Name, err)
	}
	if !lok && !j.RightOuter {
		return zero, 0, false, nil
	}
	rv, rts, rok, err := v.right.Get(key)
	if err != nil {
		return zero, 0, false, fmt.Errorf("operator %s: right table: %w", j.Name, err)
	}
	var ts int64
	switch {
	case lok && rok:
		ts = max(lts, rts)
	case lok && j.LeftOuter:
		ts = lts
	case rok && j.RightOuter:
		ts = rts
	default:
		return zero, 0, false, nil
	}
	return j.Joiner(key, lv, lok, rv, rok), ts, true, nil
}
