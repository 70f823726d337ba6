package topology

import (
	"fmt"

	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// SessionStore holds the aggregates of session windows, keyed as Kafka
// Streams' session stores are: key, then end, then start.
const SessionStore StoreKind = "session"

// SessionWindowedStream is a grouped stream cut into session windows.
type SessionWindowedStream[K, V any] struct {
	g         Grouped[K, V]
	spec      window.SessionSpec
	emitFinal bool
}

// SessionWindowedBy cuts g into the session windows of s: the records of
// a key at most s's gap apart form one session. By default an aggregate
// emits every update (throttled by the cache), and a tombstone for every
// session a merge replaces; see EmitOnWindowClose.
func (g Grouped[K, V]) SessionWindowedBy(s window.SessionSpec) SessionWindowedStream[K, V] {
	g.s.mustBeBuilt("SessionWindowedBy")
	if err := s.Validate(); err != nil {
		g.s.b.errorf("SessionWindowedBy after %q: %w", g.s.n.name, err)
	}
	return SessionWindowedStream[K, V]{g: g, spec: s}
}

// EmitOnWindowClose makes the aggregate emit each session once, with its
// final value, when stream-time passes the session's end plus gap plus
// grace.
func (w SessionWindowedStream[K, V]) EmitOnWindowClose() SessionWindowedStream[K, V] {
	w.emitFinal = true
	return w
}

// sessionAggregate adds a session-windowed aggregation of w. The
// operator keeps its aggregates in the store "<name>" and their indexes
// in "<name>-index", which belongs to a node of its own in front of the
// aggregation (a node declares one store); that node passes the records
// to the operator the aggregation node builds.
func sessionAggregate[K, V, A any](w SessionWindowedStream[K, V], op string, merge operators.SessionMerge[K, A], add operators.Fold[K, V, A], aggSerde serde.Serde[A], opts []Option) Table[window.Windowed[K], A] {
	g := w.g
	g.s.mustBeBuilt(op)
	b := g.s.b
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	from := g.source(op, name, o.partitions)
	idx := b.newNode(kindProcessor, "session-index", name+"-index", from)
	idx.store = &storeSpec{name: name + "-index", kind: KeyValueStore, detail: "sessions of " + name + " by key and by end"}
	n := b.newNode(kindProcessor, "session-"+op, name, idx)
	emit := emitMode(w.emitFinal)
	retention, retDetail := b.retentionMs(op, name, o, w.spec.GapMs()+w.spec.GraceMs(), "its inactivity gap plus grace")
	n.store = &storeSpec{name: name, kind: SessionStore, detail: w.spec.String() + ", " + emit + retDetail}
	g.checkSerdes(op, name, aggSerde == nil)
	ks, spec, final := g.s.keySerde, w.spec, w.emitFinal
	late := lateRecords(g.s, n, op, name, o)
	// The aggregation node is built first (children before parents); the
	// index node then passes its records to the operator.
	n.build = func(bc *buildCtx) (any, error) {
		a := &operators.SessionAggregate[K, V, A]{
			Name: name, Store: name, IndexStore: idx.store.name, Spec: spec, EmitFinal: final,
			RetentionMs: retention, KeySerde: ks, AggSerde: aggSerde, Merge: merge, Add: add, Late: late(),
			Out: out[window.Windowed[K], operators.Change[A]](bc),
		}
		return a, a.Init(bc.ctx, bc.stores)
	}
	idx.build = func(bc *buildCtx) (any, error) {
		a, ok := bc.built[n].(*operators.SessionAggregate[K, V, A])
		if !ok {
			return nil, fmt.Errorf("%s %q is not built", op, name)
		}
		return sessionInput[K, V]{a}, nil
	}
	var wks serde.Serde[window.Windowed[K]]
	if ks != nil {
		wks = serde.SessionWindowed(ks)
	}
	return materializedWindows(Table[window.Windowed[K], A]{b: b, n: n, keySerde: wks, valueSerde: aggSerde}, ks, 0, true, idx.store.name)
}

// sessionInput is the index node's processor: it feeds the operator, and
// hides its Finish, which the aggregation node already registers.
type sessionInput[K, V any] struct{ p operators.Processor[K, V] }

func (s sessionInput[K, V]) Process(ctx *operators.Context, r operators.Record[K, V]) error {
	return s.p.Process(ctx, r)
}

// CountSessions counts the records of each key and session.
func CountSessions[K, V any](w SessionWindowedStream[K, V], opts ...Option) Table[window.Windowed[K], int64] {
	merge := func(_ K, n int64, _ bool, session int64) int64 { return n + session }
	return sessionAggregate(w, "count", merge, countFold[K, V], serde.Int64(), opts)
}

// ReduceSessions combines the values of each key and session with fn:
// a session's first value is kept as it is, and when a record merges
// sessions, their aggregates are combined with fn in the order of their
// ends, then the record's value.
func ReduceSessions[K, V any](w SessionWindowedStream[K, V], fn func(agg, value V) V, opts ...Option) Table[window.Windowed[K], V] {
	merge := func(_ K, agg V, found bool, session V) V {
		if !found {
			return session
		}
		return fn(agg, session)
	}
	return sessionAggregate(w, "reduce", merge, reduceFold[K](fn), w.g.s.valueSerde, opts)
}

// AggregateSessions folds the values of each key and session: init gives
// the aggregate of a new session, add folds a value in. When a record
// merges sessions, its aggregate is add(key, value, merge(...merge(init(),
// a1)..., an)), a1..an the merged sessions' aggregates in the order of
// their ends, as in Kafka Streams.
func AggregateSessions[K, V, A any](w SessionWindowedStream[K, V], init func() A, add func(key K, value V, agg A) A, merge func(key K, a, b A) A, aggSerde serde.Serde[A], opts ...Option) Table[window.Windowed[K], A] {
	m := func(k K, agg A, found bool, session A) A {
		if !found {
			agg = init()
		}
		return merge(k, agg, session)
	}
	return sessionAggregate(w, "aggregate", m, aggregateFold(init, add), aggSerde, opts)
}
