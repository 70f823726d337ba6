package topology

import (
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// Grouped is a stream grouped by key, ready to aggregate.
type Grouped[K, V any] struct {
	s Stream[K, V]
}

// GroupByKey groups s by its current key. If the key changed since s was
// read from a topic, aggregating it inserts a repartition topic.
func (s Stream[K, V]) GroupByKey() Grouped[K, V] {
	s.mustBeBuilt("GroupByKey")
	return Grouped[K, V]{s}
}

// GroupBy groups s by a new key; aggregating it inserts a repartition
// topic, written with keySerde and the stream's value serde.
func GroupBy[K, V, K2 any](s Stream[K, V], key func(K, V) K2, keySerde serde.Serde[K2], opts ...Option) Grouped[K2, V] {
	return SelectKey(s, key, opts...).WithKeySerde(keySerde).GroupByKey()
}

// source returns the node a stateful operator named name reads from:
// the grouped stream itself, or a repartition topic when its key changed.
func (g Grouped[K, V]) source(op, name string, partitions int32) *node {
	s := g.s
	if !s.rekeyed {
		return s.n
	}
	b := s.b
	topic := b.app + "-" + name + "-repartition"
	sink := b.newNode(kindRepartitionSink, "repartition-sink", name+"-repartition-sink", s.n)
	sink.topic = topic
	sink.partitions = partitions
	if partitions < 0 {
		b.errorf("%s %q: Partitions(%d): want at least 1", op, name, partitions)
	}
	s.needSerdes(op+" (repartition)", sink)
	ks, vs := s.keySerde, s.valueSerde
	sink.build = func(bc *buildCtx) (any, error) {
		return &operators.Sink[K, V]{Topic: topic, KeySerde: ks, ValueSerde: vs}, nil
	}
	src := b.newNode(kindRepartitionSource, "repartition-source", name+"-repartition-source")
	src.topic = topic
	b.sources[topic] = src
	src.build = func(bc *buildCtx) (any, error) {
		return &operators.Source[K, V]{KeySerde: ks, ValueSerde: vs, Out: out[K, V](bc)}, nil
	}
	return src
}

// checkSerdes records the serdes an aggregation op of g named name lacks:
// the grouped stream's key serde, and its aggregate serde if aggMissing.
func (g Grouped[K, V]) checkSerdes(op, name string, aggMissing bool) {
	if g.s.keySerde == nil {
		g.s.b.errorf("%s %q: the grouped stream's key serde is unknown: set it with WithKeySerde", op, name)
	}
	if aggMissing {
		g.s.b.errorf("%s %q: missing aggregate serde", op, name)
	}
}

// aggregate adds a key-value aggregation of g.
func aggregate[K, V, A any](g Grouped[K, V], op string, fold operators.Fold[K, V, A], aggSerde serde.Serde[A], opts []Option) Table[K, A] {
	g.s.mustBeBuilt(op)
	b := g.s.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	from := g.source(op, name, o.partitions)
	n := b.newNode(kindProcessor, op, name, from)
	n.store = &storeSpec{name: name, kind: KeyValueStore}
	g.checkSerdes(op, name, aggSerde == nil)
	ks := g.s.keySerde
	n.build = func(bc *buildCtx) (any, error) {
		a := &operators.Aggregate[K, V, A]{Name: name, Store: name, KeySerde: ks, AggSerde: aggSerde, Fold: fold, Out: out[K, operators.Change[A]](bc)}
		return a, a.Init(bc.ctx, bc.stores)
	}
	return materializedKV(Table[K, A]{b: b, n: n, keySerde: ks, valueSerde: aggSerde})
}

// Count counts the records of each key into a table.
func (g Grouped[K, V]) Count(opts ...Option) Table[K, int64] {
	return aggregate(g, "count", countFold[K, V], serde.Int64(), opts)
}

// Reduce combines the values of each key with fn into a table; the first
// value of a key is kept as it is.
func (g Grouped[K, V]) Reduce(fn func(agg, value V) V, opts ...Option) Table[K, V] {
	return aggregate(g, "reduce", reduceFold[K](fn), g.s.valueSerde, opts)
}

// Aggregate folds the values of each key into a table: init gives the
// aggregate of a new key, add folds a value in.
func Aggregate[K, V, A any](g Grouped[K, V], init func() A, add func(key K, value V, agg A) A, aggSerde serde.Serde[A], opts ...Option) Table[K, A] {
	return aggregate(g, "aggregate", aggregateFold(init, add), aggSerde, opts)
}

func countFold[K, V any](_ K, _ V, n int64, _ bool) int64 { return n + 1 }

func reduceFold[K, V any](fn func(V, V) V) operators.Fold[K, V, V] {
	return func(_ K, v V, agg V, found bool) V {
		if !found {
			return v
		}
		return fn(agg, v)
	}
}

func aggregateFold[K, V, A any](init func() A, add func(K, V, A) A) operators.Fold[K, V, A] {
	return func(k K, v V, agg A, found bool) A {
		if !found {
			agg = init()
		}
		return add(k, v, agg)
	}
}

// WindowedStream is a grouped stream cut into time windows.
type WindowedStream[K, V any] struct {
	g         Grouped[K, V]
	spec      window.Spec
	emitFinal bool
}

// WindowedBy cuts g into the windows of spec. By default an aggregate
// emits every update (throttled by the cache); see EmitOnWindowClose.
func (g Grouped[K, V]) WindowedBy(spec window.Spec) WindowedStream[K, V] {
	g.s.mustBeBuilt("WindowedBy")
	if err := spec.Validate(); err != nil {
		g.s.b.errorf("WindowedBy after %q: %w", g.s.n.name, err)
	}
	return WindowedStream[K, V]{g: g, spec: spec}
}

// EmitOnWindowClose makes the aggregate emit each window once, with its
// final value, when stream-time passes the window's end plus grace.
func (w WindowedStream[K, V]) EmitOnWindowClose() WindowedStream[K, V] {
	w.emitFinal = true
	return w
}

func windowAggregate[K, V, A any](w WindowedStream[K, V], op string, fold operators.Fold[K, V, A], aggSerde serde.Serde[A], opts []Option) Table[window.Windowed[K], A] {
	if w.spec.Kind() == window.KindSliding {
		return slidingAggregate(w, op, fold, aggSerde, opts) // sliding.go
	}
	g := w.g
	g.s.mustBeBuilt(op)
	b := g.s.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	from := g.source(op, name, o.partitions)
	n := b.newNode(kindProcessor, "windowed-"+op, name, from)
	emit := emitMode(w.emitFinal)
	retention, retDetail := b.retentionMs(op, name, o, w.spec.SizeMs()+w.spec.GraceMs(), "its window size plus grace")
	n.store = &storeSpec{name: name, kind: WindowStore, detail: w.spec.String() + ", " + emit + retDetail}
	g.checkSerdes(op, name, aggSerde == nil)
	ks, spec, final := g.s.keySerde, w.spec, w.emitFinal
	late := lateRecords(g.s, n, op, name, o)
	n.build = func(bc *buildCtx) (any, error) {
		a := &operators.WindowAggregate[K, V, A]{
			Name: name, Store: name, Spec: spec, EmitFinal: final, RetentionMs: retention,
			KeySerde: ks, AggSerde: aggSerde, Fold: fold, Late: late(),
			Out: out[window.Windowed[K], operators.Change[A]](bc),
		}
		return a, a.Init(bc.ctx, bc.stores)
	}
	var wks serde.Serde[window.Windowed[K]]
	if ks != nil {
		wks = serde.Windowed(ks, spec.SizeMs())
	}
	return materializedWindows(Table[window.Windowed[K], A]{b: b, n: n, keySerde: wks, valueSerde: aggSerde}, ks, spec.SizeMs(), false, "")
}

// lateRecords records the LateRecordsTo option on n, the node of a
// windowed operator reading s, and returns a constructor of the per-task
// LateRecords (nil without the option).
func lateRecords[K, V any](s Stream[K, V], n *node, op, name string, o options) func() *operators.LateRecords[K, V] {
	topic := o.lateTopic
	if topic == "" {
		return func() *operators.LateRecords[K, V] { return nil }
	}
	n.lateTopic = topic
	ks, vs := s.keySerde, s.valueSerde
	if ks == nil || vs == nil {
		s.b.errorf("%s %q: LateRecordsTo(%q) needs the stream's key and value serdes: set them with WithKeySerde and WithValueSerde", op, name, topic)
	}
	return func() *operators.LateRecords[K, V] {
		return &operators.LateRecords[K, V]{Topic: topic, KeySerde: ks, ValueSerde: vs}
	}
}

// CountWindows counts the records of each key and window.
//
// The windowed aggregations are functions, not methods of WindowedStream:
// a method returning Table[window.Windowed[K], ...] would make Go
// instantiate windows of windows without end.
func CountWindows[K, V any](w WindowedStream[K, V], opts ...Option) Table[window.Windowed[K], int64] {
	return windowAggregate(w, "count", countFold[K, V], serde.Int64(), opts)
}

// ReduceWindows combines the values of each key and window with fn.
func ReduceWindows[K, V any](w WindowedStream[K, V], fn func(agg, value V) V, opts ...Option) Table[window.Windowed[K], V] {
	return windowAggregate(w, "reduce", reduceFold[K](fn), w.g.s.valueSerde, opts)
}

// AggregateWindows folds the values of each key and window: init gives
// the aggregate of a new window, add folds a value in.
func AggregateWindows[K, V, A any](w WindowedStream[K, V], init func() A, add func(key K, value V, agg A) A, aggSerde serde.Serde[A], opts ...Option) Table[window.Windowed[K], A] {
	return windowAggregate(w, "aggregate", aggregateFold(init, add), aggSerde, opts)
}

// Table is a changelog of rows by key: the result of an aggregation or a
// topic read with TableFrom.
type Table[K, V any] struct {
	b          *Builder
	n          *node
	keySerde   serde.Serde[K]
	valueSerde serde.Serde[V]
	// q reads the table's store; nil for a table that is not
	// materialized (see query.go).
	q *tableQuery
}

// TableFrom reads topic as a table: each record upserts its key, a
// tombstone (nil value) deletes it. The table is materialized in a store
// named after the source.
func TableFrom[K, V any](b *Builder, topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...Option) Table[K, V] {
	o := applyOptions(opts)
	n := b.newNode(kindTableSource, "table-source", o.name)
	b.addSource(n, topic, keySerde == nil, valueSerde == nil)
	n.store = &storeSpec{name: n.name, kind: KeyValueStore}
	n.build = func(bc *buildCtx) (any, error) {
		t := &operators.TableSource[K, V]{Store: n.name, KeySerde: keySerde, ValueSerde: valueSerde, Out: out[K, operators.Change[V]](bc)}
		return t, t.Init(bc.ctx, bc.stores)
	}
	return materializedKV(Table[K, V]{b: b, n: n, keySerde: keySerde, valueSerde: valueSerde})
}

// WithKeySerde returns t with its key serde set: the serde To writes keys
// with, e.g. to write a windowed key in another format.
func (t Table[K, V]) WithKeySerde(ks serde.Serde[K]) Table[K, V] {
	t.keySerde = ks
	return t
}

// WithValueSerde returns t with its value serde set: the serde To writes
// values with.
func (t Table[K, V]) WithValueSerde(vs serde.Serde[V]) Table[K, V] {
	t.valueSerde = vs
	return t
}

// ToStream returns the stream of the table's updates: each new value of a
// row. Deletions are not in it (a stream carries no null values); write
// the table with To to keep them as tombstones.
func (t Table[K, V]) ToStream(opts ...Option) Stream[K, V] {
	if t.b == nil {
		panic("topology: ToStream on a zero Table")
	}
	n := t.b.newNode(kindProcessor, "to-stream", applyOptions(opts).name, t.n)
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.ToStream[K, V]{Out: out[K, V](bc)}, nil
	}
	return Stream[K, V]{b: t.b, n: n, keySerde: t.keySerde, valueSerde: t.valueSerde}
}

// To writes the table's changes to topic: new values, and tombstones for
// deleted rows.
func (t Table[K, V]) To(topic string, opts ...Option) {
	if t.b == nil {
		panic("topology: To on a zero Table")
	}
	n := t.b.newNode(kindSink, "sink", applyOptions(opts).name, t.n)
	n.topic = topic
	if topic == "" {
		t.b.errorf("sink %q: empty topic name", n.name)
	}
	ks, vs := t.keySerde, t.valueSerde
	if ks == nil {
		t.b.errorf("To(%s) at %q: the table's key serde is unknown: set it with WithKeySerde", topic, n.name)
	}
	if vs == nil {
		t.b.errorf("To(%s) at %q: the table's value serde is unknown (a join's result has none): set it with WithValueSerde", topic, n.name)
	}
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.TableSink[K, V]{Sink: operators.Sink[K, V]{Topic: topic, KeySerde: ks, ValueSerde: vs}}, nil
	}
}
