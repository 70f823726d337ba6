package operators

import (
	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/serde"
)

// Source decodes the records of one topic and forwards them.
type Source[K, V any] struct {
	KeySerde   serde.Serde[K]
	ValueSerde serde.Serde[V]
	Out        Downstream[K, V]

	// ownedValues decodes values without a copy (RawRecord bytes are
	// never modified); nil: ValueSerde does not offer it.
	ownedValues serde.OwnedDecoder[V]
	checked     bool
}

func (s *Source[K, V]) decodeValue(b []byte) (V, error) {
	if !s.checked {
		s.ownedValues, _ = s.ValueSerde.(serde.OwnedDecoder[V])
		s.checked = true
	}
	if s.ownedValues != nil {
		return s.ownedValues.DecodeOwned(b)
	}
	return s.ValueSerde.Decode(b)
}

// ProcessRaw implements RawProcessor. Tombstones (nil values) carry no
// value to a stream and are skipped. A nil key decodes like an empty one
// for stateless operators; ctx.NilKey tells stateful ones to drop it.
func (s *Source[K, V]) ProcessRaw(ctx *Context, r *RawRecord) error {
	if r.Value == nil {
		return nil
	}
	ctx.NilKey = r.Key == nil
	k, err := s.KeySerde.Decode(r.Key)
	if err != nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "key", err}
	}
	v, err := s.decodeValue(r.Value)
	if err != nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "value", err}
	}
	err = s.Out.Forward(ctx, Record[K, V]{Key: k, Value: v, Time: r.Timestamp, Headers: r.Headers})
	ctx.NilKey = false
	return err
}

// Sink encodes records and sends them to a topic, partitioned by the
// murmur2 hash of the encoded key as Kafka's Java clients do.
type Sink[K, V any] struct {
	Topic      string
	KeySerde   serde.Serde[K]
	ValueSerde serde.Serde[V]
	partitions int32
}

// Process implements Processor.
func (s *Sink[K, V]) Process(ctx *Context, r Record[K, V]) error {
	// Key and value share one allocation; the log keeps both until commit.
	buf, err := s.KeySerde.Encode(make([]byte, 0, 64), r.Key)
	if err != nil {
		return err
	}
	kl := len(buf)
	buf, err = s.ValueSerde.Encode(buf, r.Value)
	if err != nil {
		return err
	}
	s.send(ctx, buf[:kl:kl], buf[kl:], r.Time, r.Headers)
	return nil
}

func (s *Sink[K, V]) send(ctx *Context, key, value []byte, ts int64, h []Header) {
	if s.partitions == 0 {
		s.partitions = ctx.Partitions(s.Topic)
	}
	ctx.Send(RawRecord{
		Topic:     s.Topic,
		Partition: murmur2.Partition(key, s.partitions),
		Timestamp: ts,
		Key:       key,
		Value:     value,
		Headers:   h,
	})
}

// TableSink writes a table's changes to a topic: new values, and
// tombstones for deleted rows.
type TableSink[K, V any] struct {
	Sink Sink[K, V]
}

// Process implements Processor.
func (s *TableSink[K, V]) Process(ctx *Context, r Record[K, Change[V]]) error {
	if r.Value.HasNew {
		return s.Sink.Process(ctx, Record[K, V]{Key: r.Key, Value: r.Value.New, Time: r.Time, Headers: r.Headers})
	}
	key, err := s.Sink.KeySerde.Encode(nil, r.Key)
	if err != nil {
		return err
	}
	s.Sink.send(ctx, key, nil, r.Time, r.Headers)
	return nil
}

// Map replaces each record's key and value.
type Map[K, V, K2, V2 any] struct {
	Name string
	Fn   func(K, V) (K2, V2)
	Out  Downstream[K2, V2]
}

// Process implements Processor.
func (m *Map[K, V, K2, V2]) Process(ctx *Context, r Record[K, V]) error {
	ctx.Operator = m.Name
	k, v := m.Fn(r.Key, r.Value)
	return m.Out.Forward(ctx, Record[K2, V2]{Key: k, Value: v, Time: r.Time, Headers: r.Headers})
}

// Filter forwards the records its predicate keeps.
type Filter[K, V any] struct {
	Name string
	Fn   func(K, V) bool
	Out  Downstream[K, V]
}

// Process implements Processor.
func (f *Filter[K, V]) Process(ctx *Context, r Record[K, V]) error {
	ctx.Operator = f.Name
	if !f.Fn(r.Key, r.Value) {
		return nil
	}
	return f.Out.Forward(ctx, r)
}

// KV is a key and a value, the unit FlatMap emits.
type KV[K, V any] struct {
	Key   K
	Value V
}

// FlatMap replaces each record by zero or more records, stamped with the
// input's time.
type FlatMap[K, V, K2, V2 any] struct {
	Name string
	Fn   func(K, V) []KV[K2, V2]
	Out  Downstream[K2, V2]
}

// Process implements Processor.
func (f *FlatMap[K, V, K2, V2]) Process(ctx *Context, r Record[K, V]) error {
	ctx.Operator = f.Name
	for _, kv := range f.Fn(r.Key, r.Value) {
		if err := f.Out.Forward(ctx, Record[K2, V2]{Key: kv.Key, Value: kv.Value, Time: r.Time, Headers: r.Headers}); err != nil {
			return err
		}
	}
	return nil
}

// Peek calls a function on each record and forwards it unchanged.
type Peek[K, V any] struct {
	Name string
	Fn   func(K, V)
	Out  Downstream[K, V]
}

// Process implements Processor.
func (p *Peek[K, V]) Process(ctx *Context, r Record[K, V]) error {
	ctx.Operator = p.Name
	p.Fn(r.Key, r.Value)
	return p.Out.Forward(ctx, r)
}

// Branch sends each record to the first branch whose predicate holds;
// records no predicate holds for are dropped.
type Branch[K, V any] struct {
	Name  string
	Preds []func(K, V) bool
	Outs  []Downstream[K, V]
}

// Process implements Processor.
func (b *Branch[K, V]) Process(ctx *Context, r Record[K, V]) error {
	ctx.Operator = b.Name
	for i, p := range b.Preds {
		if p(r.Key, r.Value) {
			return b.Outs[i].Forward(ctx, r)
		}
	}
	return nil
}

// ToStream turns a table's changes into a stream of its new values;
// deletions are not forwarded (a stream carries no null values).
type ToStream[K, V any] struct {
	Out Downstream[K, V]
}

// Process implements Processor.
func (t *ToStream[K, V]) Process(ctx *Context, r Record[K, Change[V]]) error {
	if !r.Value.HasNew {
		return nil
	}
	return t.Out.Forward(ctx, Record[K, V]{Key: r.Key, Value: r.Value.New, Time: r.Time, Headers: r.Headers})
}
