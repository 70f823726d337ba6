package topology

import (
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
)

// GroupedTable is a table re-grouped by a new key, ready to aggregate
// with an adder and a subtractor: Kafka Streams' KGroupedTable. Get one
// from GroupTable.
type GroupedTable[K, V any] struct {
	b *Builder
	// n is the group-by node, which forwards the re-keyed changes.
	n          *node
	keySerde   serde.Serde[K]
	valueSerde serde.Serde[V]
	// name is the GroupTable's Named option, "" for none.
	name       string
	partitions int32
	// shared is the repartition source of a named grouping, made by its
	// first aggregation and read by all of them.
	shared *groupedTableSource
}

type groupedTableSource struct {
	src  *node
	sink *node
}

// GroupTable re-keys (and re-values) each row of t with fn and groups the
// rows by the new key, for Count, Reduce or AggregateTable: Kafka Streams'
// KTable.groupBy. The grouping always goes through a repartition topic,
// "<app>-<name>-repartition", written with keySerde and valueSerde. With
// Named(name), name names the group-by operator and the topic, which all
// aggregations of the grouping then share; without it, each aggregation
// has its own topic, named after the aggregation. Partitions(n) sets the
// topic's partition count (an aggregation's own Partitions overrides it).
//
// Each change of a row in t is sent as a retraction of its old value from
// the old row's group and an insertion of its new value into the new
// row's group; when both rows fall in the same group, they travel as one
// record (KIP-904), so the group's subtractor runs right before its adder
// and only the net result is emitted. fn must be deterministic: it is
// called again on a row's old value when the row changes.
func GroupTable[K, V, K2, V2 any](t Table[K, V], fn func(K, V) (K2, V2), keySerde serde.Serde[K2], valueSerde serde.Serde[V2], opts ...Option) GroupedTable[K2, V2] {
	if t.b == nil {
		panic("topology: GroupTable on a zero Table")
	}
	o := applyOptions(opts)
	b := t.b
	n := b.newNode(kindProcessor, "table-group-by", o.name, t.n)
	if fn == nil {
		b.errorf("GroupTable %q: nil grouping function", n.name)
	}
	if keySerde == nil {
		b.errorf("GroupTable %q: missing key serde", n.name)
	}
	if valueSerde == nil {
		b.errorf("GroupTable %q: missing value serde", n.name)
	}
	if o.partitions < 0 {
		b.errorf("GroupTable %q: Partitions(%d): want at least 1", n.name, o.partitions)
	}
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.TableGroupBy[K, V, K2, V2]{Name: n.name, Fn: fn, KeySerde: keySerde, Out: out[K2, operators.Change[V2]](bc)}, nil
	}
	return GroupedTable[K2, V2]{
		b: b, n: n, keySerde: keySerde, valueSerde: valueSerde,
		name: o.name, partitions: o.partitions, shared: &groupedTableSource{},
	}
}

// source returns the repartition source an aggregation named aggName
// reads: the grouping's shared one if it is named, else a new one.
func (g GroupedTable[K, V]) source(op, aggName string, partitions int32) *node {
	b := g.b
	if partitions == 0 {
		partitions = g.partitions
	}
	if s := g.shared; s.src != nil {
		if partitions != 0 && partitions != s.sink.partitions {
			b.errorf("%s %q: Partitions(%d): the repartition topic %s of grouping %q already has %d", op, aggName, partitions, s.sink.topic, g.name, s.sink.partitions)
		}
		return s.src
	}
	base := g.name
	if base == "" {
		base = aggName
	}
	topic := b.app + "-" + base + "-repartition"
	sink := b.newNode(kindRepartitionSink, "repartition-sink", base+"-repartition-sink", g.n)
	sink.topic = topic
	sink.partitions = partitions
	if partitions < 0 {
		b.errorf("%s %q: Partitions(%d): want at least 1", op, aggName, partitions)
	}
	ks, vs := g.keySerde, g.valueSerde
	sink.build = func(bc *buildCtx) (any, error) {
		return &operators.ChangeSink[K, V]{Name: sink.name, Sink: operators.Sink[K, V]{Topic: topic, KeySerde: ks, ValueSerde: vs}}, nil
	}
	src := b.newNode(kindRepartitionSource, "repartition-source", base+"-repartition-source")
	src.topic = topic
	b.sources[topic] = src
	src.build = func(bc *buildCtx) (any, error) {
		return &operators.ChangeSource[K, V]{KeySerde: ks, ValueSerde: vs, Out: out[K, operators.Change[V]](bc)}, nil
	}
	if g.name != "" {
		g.shared.src, g.shared.sink = src, sink
	}
	return src
}

// mustBeBuilt panics on a zero GroupedTable, which has no Builder to
// record the misuse in.
func (g GroupedTable[K, V]) mustBeBuilt(op string) {
	if g.b == nil || g.n == nil {
		panic("topology: " + op + " on a zero GroupedTable: get one from GroupTable")
	}
}

// tableAggregate adds an aggregation of g with an adder and a subtractor.
func tableAggregate[K, V, A any](g GroupedTable[K, V], op string, add operators.Fold[K, V, A], sub func(K, V, A) A, aggSerde serde.Serde[A], opts []Option) Table[K, A] {
	g.mustBeBuilt(op)
	b := g.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	from := g.source(op, name, o.partitions)
	n := b.newNode(kindProcessor, op, name, from)
	n.store = &storeSpec{name: name, kind: KeyValueStore}
	if aggSerde == nil {
		b.errorf("%s %q: missing aggregate serde", op, name)
	}
	ks := g.keySerde
	n.build = func(bc *buildCtx) (any, error) {
		a := &operators.TableAggregate[K, V, A]{
			Name: name, Store: name, KeySerde: ks, AggSerde: aggSerde,
			Add: add, Sub: sub, Out: out[K, operators.Change[A]](bc),
		}
		return a, a.Init(bc.ctx, bc.stores)
	}
	return materializedKV(Table[K, A]{b: b, n: n, keySerde: ks, valueSerde: aggSerde})
}

// Count counts the rows of each group into a table: an insertion adds 1,
// a retraction subtracts 1. A group whose rows are all gone keeps its row
// with count 0, as in Kafka Streams.
func (g GroupedTable[K, V]) Count(opts ...Option) Table[K, int64] {
	return tableAggregate(g, "table-count", countFold[K, V], func(_ K, _ V, n int64) int64 { return n - 1 }, serde.Int64(), opts)
}

// Reduce combines the values of each group into a table: the first value
// of a group is kept as it is, adder folds in each inserted value and
// subtractor takes out each retracted one (the old value of an updated or
// deleted row), before the adder when a row changes within its group. A
// group whose rows are all gone keeps its row with whatever the
// subtractor left.
func (g GroupedTable[K, V]) Reduce(adder, subtractor func(agg, value V) V, opts ...Option) Table[K, V] {
	g.mustBeBuilt("Reduce")
	if adder == nil || subtractor == nil {
		g.b.errorf("table-reduce after %q: nil adder or subtractor", g.n.name)
	}
	sub := func(_ K, v V, agg V) V { return subtractor(agg, v) }
	return tableAggregate(g, "table-reduce", reduceFold[K](adder), sub, g.valueSerde, opts)
}

// AggregateTable folds the values of each group of g into a table: init
// gives the aggregate of a new group, adder folds in each inserted value,
// subtractor takes out each retracted one (the old value of an updated or
// deleted row), before the adder when a row changes within its group. A
// group whose rows are all gone keeps its row with whatever the
// subtractor left.
//
// It is a function, not a method, because Go methods cannot take type
// parameters of their own.
func AggregateTable[K, V, A any](g GroupedTable[K, V], init func() A, adder, subtractor func(key K, value V, agg A) A, aggSerde serde.Serde[A], opts ...Option) Table[K, A] {
	g.mustBeBuilt("AggregateTable")
	if init == nil || adder == nil || subtractor == nil {
		g.b.errorf("table-aggregate after %q: nil initializer, adder or subtractor", g.n.name)
	}
	return tableAggregate(g, "table-aggregate", aggregateFold(init, adder), subtractor, aggSerde, opts)
}
