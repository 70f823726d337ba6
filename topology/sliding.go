package topology

import (
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// slidingAggregate adds an aggregation of w over sliding windows
// (window.Sliding), for windowAggregate: CountWindows, ReduceWindows and
// AggregateWindows of a stream windowed by a sliding spec come here.
//
// The operator, operators.SlidingAggregate, keeps two stores: the
// aggregates in a window store named after the operator, and an index of
// each key's windows, "<name>-index", so that a record reads only its own
// key's windows. A node holds one store, so the index belongs to a node of
// its own, "<name>-index", which passes the grouped records on to the
// aggregation (as a join's sides feed the join). Both stores get a
// changelog. The result's key serde writes the window start only, as
// Kafka Streams' does, and reads it back with End = Start + maxDiff.
func slidingAggregate[K, V, A any](w WindowedStream[K, V], op string, fold operators.Fold[K, V, A], aggSerde serde.Serde[A], opts []Option) Table[window.Windowed[K], A] {
	g := w.g
	g.s.mustBeBuilt(op)
	b := g.s.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	from := g.source(op, name, o.partitions)
	emit := emitMode(w.emitFinal)
	retention, retDetail := b.retentionMs(op, name, o, 2*w.spec.SizeMs()+w.spec.GraceMs(), "twice its maximum time difference plus grace")
	detail := w.spec.String() + ", " + emit + retDetail
	idx := b.newNode(kindProcessor, "sliding-index", name+"-index", from)
	idx.store = &storeSpec{name: name + "-index", kind: KeyValueStore, detail: "windows by key, " + detail}
	n := b.newNode(kindProcessor, "windowed-"+op, name, idx)
	n.store = &storeSpec{name: name, kind: WindowStore, detail: detail}
	g.checkSerdes(op, name, aggSerde == nil)
	ks, spec, final := g.s.keySerde, w.spec, w.emitFinal
	late := lateRecords(g.s, n, op, name, o)
	n.build = func(bc *buildCtx) (any, error) {
		a := &operators.SlidingAggregate[K, V, A]{
			Name: name, Store: name, IndexStore: idx.store.name, Spec: spec, EmitFinal: final,
			RetentionMs: retention, KeySerde: ks, AggSerde: aggSerde, Fold: fold, Late: late(),
			Out: out[window.Windowed[K], operators.Change[A]](bc),
		}
		return a, a.Init(bc.ctx, bc.stores)
	}
	// The index node passes records to the aggregation, built first.
	idx.build = func(bc *buildCtx) (any, error) {
		return &pass[K, V]{out: out[K, V](bc)}, nil
	}
	var wks serde.Serde[window.Windowed[K]]
	if ks != nil {
		wks = serde.Windowed(ks, spec.SizeMs())
	}
	return materializedWindows(Table[window.Windowed[K], A]{b: b, n: n, keySerde: wks, valueSerde: aggSerde}, ks, spec.SizeMs(), false, "")
}
