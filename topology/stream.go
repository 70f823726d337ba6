package topology

import (
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
)

// KV is a key and a value, as FlatMap returns them.
type KV[K, V any] = operators.KV[K, V]

// Stream is a typed stream of records. Its zero value is unusable; get
// one from StreamFrom or an operation on another Stream.
type Stream[K, V any] struct {
	b          *Builder
	n          *node
	keySerde   serde.Serde[K]
	valueSerde serde.Serde[V]
	// rekeyed is set once the key may have changed since the last topic:
	// a stateful operator downstream then needs a repartition.
	rekeyed bool
}

// StreamFrom reads topic as a stream. Tombstones (records with a nil
// value) are skipped: a stream carries values.
func StreamFrom[K, V any](b *Builder, topic string, keySerde serde.Serde[K], valueSerde serde.Serde[V], opts ...Option) Stream[K, V] {
	o := applyOptions(opts)
	n := b.newNode(kindSource, "source", o.name)
	b.addSource(n, topic, keySerde == nil, valueSerde == nil)
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.Source[K, V]{KeySerde: keySerde, ValueSerde: valueSerde, Out: out[K, V](bc)}, nil
	}
	return Stream[K, V]{b: b, n: n, keySerde: keySerde, valueSerde: valueSerde}
}

func (b *Builder) addSource(n *node, topic string, noKeySerde, noValueSerde bool) {
	n.topic = topic
	switch {
	case topic == "":
		b.errorf("%s %q: empty topic name", n.kind, n.name)
	case b.sources[topic] != nil:
		b.errorf("topic %q is read by both %s %q and %s %q: read it once and share the stream", topic, b.sources[topic].kind, b.sources[topic].name, n.kind, n.name)
	default:
		b.sources[topic] = n
	}
	if noKeySerde {
		b.errorf("%s %q (topic %q): missing key serde", n.kind, n.name, topic)
	}
	if noValueSerde {
		b.errorf("%s %q (topic %q): missing value serde", n.kind, n.name, topic)
	}
}

// mustBeBuilt panics on a zero Stream: it has no Builder to record the
// misuse in, so it cannot wait for Validate.
func (s Stream[K, V]) mustBeBuilt(op string) {
	if s.b == nil || s.n == nil {
		panic("topology: " + op + " on a zero Stream: get streams from StreamFrom")
	}
}

// WithKeySerde returns s with its key serde set: needed after an operation
// that changes the key type when the stream is written to a topic or
// repartitioned.
func (s Stream[K, V]) WithKeySerde(ks serde.Serde[K]) Stream[K, V] {
	s.keySerde = ks
	return s
}

// WithValueSerde returns s with its value serde set.
func (s Stream[K, V]) WithValueSerde(vs serde.Serde[V]) Stream[K, V] {
	s.valueSerde = vs
	return s
}

// Filter keeps the records for which keep returns true.
func (s Stream[K, V]) Filter(keep func(K, V) bool, opts ...Option) Stream[K, V] {
	s.mustBeBuilt("Filter")
	n := s.b.newNode(kindProcessor, "filter", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.Filter[K, V]{Name: n.name, Fn: keep, Out: out[K, V](bc)}, nil
	}
	s.n = n
	return s
}

// Peek calls fn on every record and passes it on unchanged.
func (s Stream[K, V]) Peek(fn func(K, V), opts ...Option) Stream[K, V] {
	s.mustBeBuilt("Peek")
	n := s.b.newNode(kindProcessor, "peek", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.Peek[K, V]{Name: n.name, Fn: fn, Out: out[K, V](bc)}, nil
	}
	s.n = n
	return s
}

// Merge returns the records of s and other, as one stream. Records keep
// their order within each input; nothing is promised between inputs.
func (s Stream[K, V]) Merge(other Stream[K, V], opts ...Option) Stream[K, V] {
	s.mustBeBuilt("Merge")
	other.mustBeBuilt("Merge")
	if other.b != s.b {
		s.b.errorf("Merge: stream %q comes from another Builder (%s)", other.n.name, other.b.app)
		return s
	}
	n := s.b.newNode(kindProcessor, "merge", applyOptions(opts).name, s.n, other.n)
	n.build = func(bc *buildCtx) (any, error) { return &pass[K, V]{out[K, V](bc)}, nil }
	s.n = n
	s.rekeyed = s.rekeyed || other.rekeyed
	if s.keySerde == nil {
		s.keySerde = other.keySerde
	}
	if s.valueSerde == nil {
		s.valueSerde = other.valueSerde
	}
	return s
}

// Branch splits s: each record goes to the stream of the first predicate
// it satisfies, or nowhere. It returns one stream per predicate.
func (s Stream[K, V]) Branch(preds ...func(K, V) bool) []Stream[K, V] {
	s.mustBeBuilt("Branch")
	if len(preds) == 0 {
		s.b.errorf("Branch after %q: no predicates", s.n.name)
	}
	n := s.b.newNode(kindProcessor, "branch", "", s.n)
	outs := make([]Stream[K, V], len(preds))
	branches := make([]*node, len(preds))
	for i := range preds {
		bn := s.b.newNode(kindProcessor, "branch-out", "", n)
		bn.build = func(bc *buildCtx) (any, error) { return &pass[K, V]{out[K, V](bc)}, nil }
		branches[i] = bn
		outs[i] = s
		outs[i].n = bn
	}
	n.build = func(bc *buildCtx) (any, error) {
		b := &operators.Branch[K, V]{Name: n.name, Preds: preds}
		for _, bn := range branches {
			b.Outs = append(b.Outs, downstream[K, V](bc, []*node{bn}))
		}
		return b, nil
	}
	return outs
}

// To writes the stream to topic, partitioned by the murmur2 hash of the
// encoded key (as Kafka's Java clients do). The stream's serdes are used;
// set them with WithKeySerde and WithValueSerde after a type change.
func (s Stream[K, V]) To(topic string, opts ...Option) {
	s.mustBeBuilt("To")
	n := s.b.newNode(kindSink, "sink", applyOptions(opts).name, s.n)
	n.topic = topic
	if topic == "" {
		s.b.errorf("sink %q: empty topic name", n.name)
	}
	s.needSerdes("To("+topic+")", n)
	ks, vs := s.keySerde, s.valueSerde
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.Sink[K, V]{Topic: topic, KeySerde: ks, ValueSerde: vs}, nil
	}
}

func (s Stream[K, V]) needSerdes(op string, n *node) {
	if s.keySerde == nil {
		s.b.errorf("%s at %q: the stream's key serde is unknown after a key change: set it with WithKeySerde", op, n.name)
	}
	if s.valueSerde == nil {
		s.b.errorf("%s at %q: the stream's value serde is unknown after a value change: set it with WithValueSerde", op, n.name)
	}
}

// Map replaces every record's key and value. The new stream has no serdes
// until WithKeySerde and WithValueSerde set them.
func Map[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) (K2, V2), opts ...Option) Stream[K2, V2] {
	s.mustBeBuilt("Map")
	n := s.b.newNode(kindProcessor, "map", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.Map[K, V, K2, V2]{Name: n.name, Fn: fn, Out: out[K2, V2](bc)}, nil
	}
	return Stream[K2, V2]{b: s.b, n: n, rekeyed: true}
}

// MapValues replaces every record's value, keeping its key (and so its
// partitioning: no repartition follows).
func MapValues[K, V, V2 any](s Stream[K, V], fn func(K, V) V2, opts ...Option) Stream[K, V2] {
	s.mustBeBuilt("MapValues")
	n := s.b.newNode(kindProcessor, "map-values", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		mapKV := func(k K, v V) (K, V2) { return k, fn(k, v) }
		return &operators.Map[K, V, K, V2]{Name: n.name, Fn: mapKV, Out: out[K, V2](bc)}, nil
	}
	return Stream[K, V2]{b: s.b, n: n, keySerde: s.keySerde, rekeyed: s.rekeyed}
}

// SelectKey replaces every record's key, keeping its value.
func SelectKey[K, V, K2 any](s Stream[K, V], fn func(K, V) K2, opts ...Option) Stream[K2, V] {
	s.mustBeBuilt("SelectKey")
	n := s.b.newNode(kindProcessor, "select-key", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		mapKV := func(k K, v V) (K2, V) { return fn(k, v), v }
		return &operators.Map[K, V, K2, V]{Name: n.name, Fn: mapKV, Out: out[K2, V](bc)}, nil
	}
	return Stream[K2, V]{b: s.b, n: n, valueSerde: s.valueSerde, rekeyed: true}
}

// FlatMap replaces every record by the records fn returns, each stamped
// with the input record's time.
func FlatMap[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) []KV[K2, V2], opts ...Option) Stream[K2, V2] {
	s.mustBeBuilt("FlatMap")
	n := s.b.newNode(kindProcessor, "flat-map", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		return &operators.FlatMap[K, V, K2, V2]{Name: n.name, Fn: fn, Out: out[K2, V2](bc)}, nil
	}
	return Stream[K2, V2]{b: s.b, n: n, rekeyed: true}
}

// FlatMapValues replaces every record by one record per value fn
// returns, keeping the key.
func FlatMapValues[K, V, V2 any](s Stream[K, V], fn func(K, V) []V2, opts ...Option) Stream[K, V2] {
	s.mustBeBuilt("FlatMapValues")
	n := s.b.newNode(kindProcessor, "flat-map-values", applyOptions(opts).name, s.n)
	n.build = func(bc *buildCtx) (any, error) {
		flat := func(k K, v V) []KV[K, V2] {
			vs := fn(k, v)
			kvs := make([]KV[K, V2], len(vs))
			for i, v2 := range vs {
				kvs[i] = KV[K, V2]{Key: k, Value: v2}
			}
			return kvs
		}
		return &operators.FlatMap[K, V, K, V2]{Name: n.name, Fn: flat, Out: out[K, V2](bc)}, nil
	}
	return Stream[K, V2]{b: s.b, n: n, keySerde: s.keySerde, rekeyed: s.rekeyed}
}
