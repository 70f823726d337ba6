package topology

import (
	"fmt"
	"time"

	"github.com/eddyflow/eddy/operators"
)

// JoinWindows bounds a stream-stream join: a left record at tL joins a
// right record at tR iff tL-Before <= tR <= tL+After, both ends inclusive.
// Grace is how long after tL+After (for a right record, tR+Before) a left
// or outer join waits for a match before it emits a record unmatched.
// Each side's records are kept Before+After+Grace behind that side's
// largest timestamp. Sizes are kept in milliseconds. The zero value joins
// records of equal timestamps, with no grace.
type JoinWindows struct {
	before, after, grace int64
}

// JoinTimeDifference returns windows joining records at most d apart, in
// either direction, with no grace: Kafka Streams'
// JoinWindows.ofTimeDifferenceWithNoGrace.
func JoinTimeDifference(d time.Duration) JoinWindows {
	ms := d.Milliseconds()
	return JoinWindows{before: ms, after: ms}
}

// Grace returns a copy of w that waits d after a record's window ends
// before emitting it unmatched (left and outer joins), and keeps records
// d longer.
func (w JoinWindows) Grace(d time.Duration) JoinWindows {
	w.grace = d.Milliseconds()
	return w
}

// Before returns a copy of w whose left records join right records at
// most d earlier. d may be negative as long as Before+After is not.
func (w JoinWindows) Before(d time.Duration) JoinWindows {
	w.before = d.Milliseconds()
	return w
}

// After returns a copy of w whose left records join right records at
// most d later. d may be negative as long as Before+After is not.
func (w JoinWindows) After(d time.Duration) JoinWindows {
	w.after = d.Milliseconds()
	return w
}

// BeforeMs returns the before bound in milliseconds.
func (w JoinWindows) BeforeMs() int64 { return w.before }

// AfterMs returns the after bound in milliseconds.
func (w JoinWindows) AfterMs() int64 { return w.after }

// GraceMs returns the grace period in milliseconds.
func (w JoinWindows) GraceMs() int64 { return w.grace }

// Validate reports windows that cannot be used.
func (w JoinWindows) Validate() error {
	switch {
	case w.before+w.after < 0:
		return fmt.Errorf("join windows: before+after must not be negative, got %dms+%dms", w.before, w.after)
	case w.grace < 0:
		return fmt.Errorf("join windows: grace must not be negative, got %dms", w.grace)
	}
	return nil
}

// String describes w, e.g. "join(before=10s, after=10s, grace=0s)".
func (w JoinWindows) String() string {
	d := func(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
	return fmt.Sprintf("join(before=%s, after=%s, grace=%s)", d(w.before), d(w.after), d(w.grace))
}

// Join joins left and right by key within w: every pair of a left and a
// right record of one key whose timestamps fall within w gives one record
// joiner(key, l, r), stamped with the later timestamp, as soon as the
// second of the two arrives. Records with no match give nothing.
//
// Both streams need key and value serdes: the join stores each side's
// records. A stream whose key changed since it was read is repartitioned
// first (as for an aggregation), and both inputs must then be
// co-partitioned: the engine checks that their topics have the same
// partition count. The result has left's key serde and no value serde.
//
// Named(name) names the join's processors and its stores,
// "<name>-left-store" and "<name>-right-store", and so their changelogs;
// Partitions applies to both repartition topics. The semantics are Kafka
// Streams' (docs/SEMANTICS.md).
func Join[K, L, R, O any](left Stream[K, L], right Stream[K, R], w JoinWindows, joiner func(key K, l L, r R) O, opts ...Option) Stream[K, O] {
	return join(left, right, w, "join", false, false, func(k K, l L, _ bool, r R, _ bool) O { return joiner(k, l, r) }, opts)
}

// LeftJoin is Join, plus one record joiner(key, l, zero, false) for each
// left record that matched no right record by the time stream-time passed
// its timestamp plus w's after and grace. Such records are held back until
// then (Kafka Streams' KIP-633 behaviour), in a third store,
// "<name>-held-store"; a left record that arrives after its window has
// ended gets its unmatched result at once. The end of a bounded input
// emits every record still held.
func LeftJoin[K, L, R, O any](left Stream[K, L], right Stream[K, R], w JoinWindows, joiner func(key K, l L, r R, rightOK bool) O, opts ...Option) Stream[K, O] {
	return join(left, right, w, "left-join", true, false, func(k K, l L, _ bool, r R, rok bool) O { return joiner(k, l, r, rok) }, opts)
}

// OuterJoin is LeftJoin for both sides: an unmatched right record gives
// joiner(key, zero, false, r, true) once stream-time has passed its
// timestamp plus w's before and grace.
func OuterJoin[K, L, R, O any](left Stream[K, L], right Stream[K, R], w JoinWindows, joiner func(key K, l L, leftOK bool, r R, rightOK bool) O, opts ...Option) Stream[K, O] {
	return join(left, right, w, "outer-join", true, true, operators.Joiner[K, L, R, O](joiner), opts)
}

// join adds a stream-stream join: one processor per input, each with the
// store of its side's records, feeding the join node, which owns the
// operator (and, for left and outer joins, the held-back store). The join
// node has both inputs as parents, so they end up in one sub-topology.
func join[K, L, R, O any](left Stream[K, L], right Stream[K, R], w JoinWindows, op string, leftOuter, rightOuter bool, joiner operators.Joiner[K, L, R, O], opts []Option) Stream[K, O] {
	left.mustBeBuilt(op)
	right.mustBeBuilt(op)
	b := left.b
	if right.b != b {
		b.errorf("%s: stream %q comes from another Builder (%s)", op, right.n.name, right.b.app)
		return Stream[K, O]{b: b, n: left.n}
	}
	o := applyOptions(opts)
	name := b.operatorName(op, o)
	if err := w.Validate(); err != nil {
		b.errorf("%s %q: %w", op, name, err)
	}
	for _, side := range []struct {
		what           string
		noKey, noValue bool
	}{
		{"left", left.keySerde == nil, left.valueSerde == nil},
		{"right", right.keySerde == nil, right.valueSerde == nil},
	} {
		if side.noKey {
			b.errorf("%s %q: the %s stream's key serde is unknown: set it with WithKeySerde", op, name, side.what)
		}
		if side.noValue {
			b.errorf("%s %q: the %s stream's value serde is unknown: set it with WithValueSerde", op, name, side.what)
		}
	}
	lfrom := Grouped[K, L]{left}.source(op, name+"-left", o.partitions)
	rfrom := Grouped[K, R]{right}.source(op, name+"-right", o.partitions)

	detail := w.String()
	ln := b.newNode(kindProcessor, "join-left", name+"-left", lfrom)
	ln.store = &storeSpec{name: name + "-left-store", kind: KeyValueStore, detail: "left records, " + detail}
	rn := b.newNode(kindProcessor, "join-right", name+"-right", rfrom)
	rn.store = &storeSpec{name: name + "-right-store", kind: KeyValueStore, detail: "right records, " + detail}
	n := b.newNode(kindProcessor, op, name, ln, rn)
	held := ""
	if leftOuter || rightOuter {
		held = name + "-held-store"
		n.store = &storeSpec{name: held, kind: KeyValueStore, detail: "unmatched records held until their window closes"}
	}

	ks, lvs, rvs := left.keySerde, left.valueSerde, right.valueSerde
	// The join node is built first (children before parents); the input
	// processors then take their side of its operator.
	n.build = func(bc *buildCtx) (any, error) {
		j := &operators.StreamJoin[K, L, R, O]{
			Name: name, LeftStore: ln.store.name, RightStore: rn.store.name, HeldStore: held,
			BeforeMs: w.before, AfterMs: w.after, GraceMs: w.grace,
			LeftOuter: leftOuter, RightOuter: rightOuter,
			KeySerde: ks, LeftSerde: lvs, RightSerde: rvs,
			Joiner: joiner, Out: out[K, O](bc),
		}
		return j, j.Init(bc.ctx, bc.stores)
	}
	joinOf := func(bc *buildCtx) (*operators.StreamJoin[K, L, R, O], error) {
		j, ok := bc.built[n].(*operators.StreamJoin[K, L, R, O])
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
	return Stream[K, O]{b: b, n: n, keySerde: ks}
}
