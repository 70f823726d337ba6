package topology

import (
	"fmt"

	"github.com/eddyflow/eddy/operators"
)

// JoinTable joins each record of s with the current row of its key in t:
// a record whose key has a row gives one record joiner(key, v, row),
// stamped with the stream record's time; a record whose key has none gives
// nothing. Only stream records produce output: the table's updates and
// deletes never do, they only change what later records join (Kafka
// Streams' KStream-KTable join, rules 31-33 of SEMANTICS-KS.md). A record
// joins the latest row the task has processed, whatever the timestamps;
// eddy has no versioned tables, so there is no join against the row valid
// at the record's time.
//
// The table is read from its store, so it must be materialized: a table
// read with TableFrom, an aggregation, or a table-table join (read through
// its inputs). Windowed tables cannot be joined. The table's key is its
// topic's key; if s's key changed since it was read, s is repartitioned
// first (as for an aggregation) into the table's sub-topology, and the
// engine checks that the stream's and the table's topics have the same
// partition count (co-partitioning); the repartition topic takes the
// table's count unless Partitions sets one.
//
// Named(name) names the join's processors, name and "<name>-table" (the
// table's input, which drops its changes), and the repartition topic,
// "<app>-<name>-repartition". The result has s's key serde and no value
// serde.
func JoinTable[K, V, T, O any](s Stream[K, V], t Table[K, T], joiner func(key K, v V, t T) O, opts ...Option) Stream[K, O] {
	return streamTableJoin(s, t, "stream-table-join", false, func(k K, v V, tv T, _ bool) O { return joiner(k, v, tv) }, opts)
}

// LeftJoinTable is JoinTable, plus one record joiner(key, v, zero, false)
// for each stream record whose key has no row in t.
func LeftJoinTable[K, V, T, O any](s Stream[K, V], t Table[K, T], joiner func(key K, v V, t T, tableOK bool) O, opts ...Option) Stream[K, O] {
	return streamTableJoin(s, t, "stream-table-left-join", true, joiner, opts)
}

// joinableTable panics on a zero Table (it has no Builder to record the
// misuse in), records the misuse of t as an input of the join name in b,
// and reports whether t can be wired into the join.
func joinableTable[K, V any](b *Builder, t Table[K, V], op, name string) bool {
	if t.b == nil || t.n == nil {
		panic("topology: " + op + " on a zero Table: get tables from TableFrom or an aggregation")
	}
	if t.b != b {
		b.errorf("%s %q: table %q comes from another Builder (%s)", op, name, t.n.name, t.b.app)
		return false
	}
	if t.n.store != nil && t.n.store.kind == WindowStore {
		b.errorf("%s %q: table %q is windowed: only key-value tables can be joined", op, name, t.n.name)
	}
	return true
}

// streamTableJoin adds a stream-table join. The join node reads s (or its
// repartition topic) and a node that takes the table's changes and drops
// them: that edge puts the table in the join's sub-topology, while the
// join reads the table's rows through the table operator's reader.
func streamTableJoin[K, V, T, O any](s Stream[K, V], t Table[K, T], op string, leftOuter bool, joiner func(K, V, T, bool) O, opts []Option) Stream[K, O] {
	s.mustBeBuilt(op)
	b := s.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	if !joinableTable(b, t, op, name) {
		return Stream[K, O]{b: b, n: s.n}
	}
	from := Grouped[K, V]{s}.source(op, name, o.partitions)
	tn := b.newNode(kindProcessor, "join-table", name+"-table", t.n)
	n := b.newNode(kindProcessor, op, name, from, tn)
	table := t.n
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.StreamTableJoin[K, V, T, O]{
			Name: name, Table: &lazyReader[K, T]{bc: bc, table: table, join: name, view: operators.Latest},
			LeftOuter: leftOuter, Joiner: joiner, Out: out[K, O](bc),
		}, nil
	}
	// The join node is built first (children before parents).
	tn.build = func(bc *buildCtx) (any, error) {
		j, ok := bc.built[n].(*operators.StreamTableJoin[K, V, T, O])
		if !ok {
			return nil, fmt.Errorf("%s %q is not built", op, name)
		}
		return j.TableInput(), nil
	}
	return Stream[K, O]{b: b, n: n, keySerde: s.keySerde}
}

// JoinTables joins two tables by key: each update of either table re-emits
// the join result of its key, joiner(key, l, r), while both have a row,
// stamped with the later of the two rows' timestamps. Deleting a row of
// either side emits a tombstone stamped with the later of the tombstone's
// time and the other row's, if the other side has a row; otherwise
// nothing (Kafka Streams' KTable-KTable join, rules 35 and 36 of
// SEMANTICS-KS.md). Each update carries the key's previous join result as
// its old value, for an aggregation downstream to subtract.
//
// Both tables must be materialized (see JoinTable) and co-partitioned:
// they are read in one sub-topology, whose topics the engine checks have
// the same partition count. The result is not materialized: it has no
// store of its own, and a join that reads it (a stream-table join, another
// table-table join) computes its rows from both tables' current rows, as
// Kafka Streams' join value getters do. It has l's key serde and no value
// serde: set one with WithValueSerde before To.
//
// Named(name) names the join's processors: name, "<name>-left" and
// "<name>-right" (the inputs).
func JoinTables[K, L, R, O any](l Table[K, L], r Table[K, R], joiner func(key K, l L, r R) O, opts ...Option) Table[K, O] {
	return tableJoin(l, r, "table-join", false, false, func(k K, lv L, _ bool, rv R, _ bool) O { return joiner(k, lv, rv) }, opts)
}

// LeftJoinTables is JoinTables, plus joiner(key, l, zero, false) for each
// left row without a right row: a right delete re-emits it, and a left
// delete emits a tombstone, stamped with the tombstone's own time if the
// right side has no row (rule 37).
func LeftJoinTables[K, L, R, O any](l Table[K, L], r Table[K, R], joiner func(key K, l L, r R, rightOK bool) O, opts ...Option) Table[K, O] {
	return tableJoin(l, r, "table-left-join", true, false, func(k K, lv L, _ bool, rv R, rok bool) O { return joiner(k, lv, rv, rok) }, opts)
}

// OuterJoinTables is LeftJoinTables for both sides: a right row without a
// left row gives joiner(key, zero, false, r, true). Deleting one side while
// the other has a row re-emits the other's result; a tombstone comes only
// once both sides are gone (rule 38).
func OuterJoinTables[K, L, R, O any](l Table[K, L], r Table[K, R], joiner func(key K, l L, leftOK bool, r R, rightOK bool) O, opts ...Option) Table[K, O] {
	return tableJoin(l, r, "table-outer-join", true, true, operators.Joiner[K, L, R, O](joiner), opts)
}

// tableJoin adds a table-table join: one processor per input table feeding
// the join node, which owns the operator, as for stream-stream joins.
func tableJoin[K, L, R, O any](l Table[K, L], r Table[K, R], op string, leftOuter, rightOuter bool, joiner operators.Joiner[K, L, R, O], opts []Option) Table[K, O] {
	if l.b == nil || l.n == nil {
		panic("topology: " + op + " on a zero Table: get tables from TableFrom or an aggregation")
	}
	b := l.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	if !joinableTable(b, l, op, name) || !joinableTable(b, r, op, name) {
		return Table[K, O]{b: b, n: l.n}
	}
	ln := b.newNode(kindProcessor, "table-join-left", name+"-left", l.n)
	rn := b.newNode(kindProcessor, "table-join-right", name+"-right", r.n)
	n := b.newNode(kindProcessor, op, name, ln, rn)
	lt, rt := l.n, r.n
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.TableJoin[K, L, R, O]{
			Name: name, LeftOuter: leftOuter, RightOuter: rightOuter,
			LeftTable:   &lazyReader[K, L]{bc: bc, table: lt, join: name, view: operators.Forwarded},
			RightTable:  &lazyReader[K, R]{bc: bc, table: rt, join: name, view: operators.Forwarded},
			LatestLeft:  &lazyReader[K, L]{bc: bc, table: lt, join: name, view: operators.Latest},
			LatestRight: &lazyReader[K, R]{bc: bc, table: rt, join: name, view: operators.Latest},
			Joiner:      joiner, Out: out[K, operators.Change[O]](bc),
		}, nil
	}
	joinOf := func(bc *buildCtx) (*operators.TableJoin[K, L, R, O], error) {
		j, ok := bc.built[n].(*operators.TableJoin[K, L, R, O])
		if !ok {
			return nil, fmt.Errorf("%s %q is not built", op, name)
		}
		return j, nil
	}
	ln.build = func(bc *buildCtx) (any, error) {
		j, err := joinOf(bc)
		if err != nil {
			return nil, err
		}
		return j.Left(), nil
	}
	rn.build = func(bc *buildCtx) (any, error) {
		j, err := joinOf(bc)
		if err != nil {
			return nil, err
		}
		return j.Right(), nil
	}
	ks := l.keySerde
	if ks == nil {
		ks = r.keySerde
	}
	return Table[K, O]{b: b, n: n, keySerde: ks}
}

// lazyReader reads the table of node table for the join named join. A
// join node is built before its input tables (NewGraph builds children
// first), so the reader takes the table operator's own reader at its
// first Get, once the whole sub-topology is built.
type lazyReader[K, V any] struct {
	bc    *buildCtx
	table *node
	join  string
	view  operators.TableView
	r     operators.TableReader[K, V]
}

func (l *lazyReader[K, V]) Get(key K) (V, int64, bool, error) {
	if l.r == nil {
		t, ok := l.bc.built[l.table].(operators.ReadableTable[K, V])
		if !ok {
			var zero V
			return zero, 0, false, fmt.Errorf("join %q: table %q (%s) cannot be read: it has no store", l.join, l.table.name, l.table.op)
		}
		l.r = t.Reader(l.view)
	}
	return l.r.Get(key)
}
