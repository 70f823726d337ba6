package operators

import "github.com/eddyflow/eddy/serde"

// LateRecords is what a windowed operator does with a record it drops as
// late (past its window's end plus grace): count it through ctx.Late and,
// when Topic is set, write it unchanged (key, value, timestamp, headers)
// to Topic in the task's transaction, so that it is there exactly once.
// A nil *LateRecords only counts.
type LateRecords[K, V any] struct {
	Topic      string
	KeySerde   serde.Serde[K]
	ValueSerde serde.Serde[V]
	sink       Sink[K, V]
}

// Drop records r as dropped late by operator op.
func (l *LateRecords[K, V]) Drop(ctx *Context, op string, r Record[K, V]) error {
	if ctx.Late != nil {
		ctx.Late(op)
	}
	if l == nil || l.Topic == "" {
		return nil
	}
	if l.sink.Topic == "" {
		l.sink = Sink[K, V]{Topic: l.Topic, KeySerde: l.KeySerde, ValueSerde: l.ValueSerde}
	}
	return l.sink.Process(ctx, r)
}
