package operators

import (
	"errors"
	"fmt"

	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/state"
)

// Header is a record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is a typed record passed between operators of a task.
type Record[K, V any] struct {
	Key   K
	Value V
	// Time is the event time in milliseconds since the Unix epoch.
	Time    int64
	Headers []Header
}

// Change is an update of a table row: the value before and after it.
// A row that did not exist has !HasOld; a deleted row has !HasNew.
type Change[V any] struct {
	New, Old       V
	HasNew, HasOld bool
}

// RawRecord is a serialized record of a topic, as read from the log or
// written to it. Its Key and Value are never modified once it is handed to
// a processor: a source may decode values that share their memory.
type RawRecord struct {
	Topic     string
	Partition int32
	Offset    int64
	Timestamp int64
	Key       []byte
	// Value nil is a tombstone.
	Value   []byte
	Headers []Header
}

// Processor receives typed records.
type Processor[K, V any] interface {
	Process(ctx *Context, r Record[K, V]) error
}

// RawProcessor receives serialized records: the sources of a Graph.
type RawProcessor interface {
	ProcessRaw(ctx *Context, r *RawRecord) error
}

// Finisher is implemented by operators that hold results back until
// stream-time passes a point (windows emitted on close). Finish is called
// at the end of bounded input, in topological order, and emits everything
// still held as if stream-time had reached the end of time.
type Finisher interface {
	Finish(ctx *Context) error
}

// Downstream forwards to the children of an operator.
type Downstream[K, V any] []Processor[K, V]

// Forward passes r to every child in order.
func (d Downstream[K, V]) Forward(ctx *Context, r Record[K, V]) error {
	for _, c := range d {
		if err := c.Process(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Stores opens the state stores of a task. The engine implements it: it
// adds the changelog and the cache size to cfg.
type Stores interface {
	KV(name string, cfg state.StoreConfig) (*state.KV, error)
	Window(name string, cfg state.StoreConfig) (*state.WindowStore, error)
}

// Context is a task's view of the world for its operators. One per task,
// used by the task's goroutine only.
type Context struct {
	// Partition is the task's partition number.
	Partition int32
	// Topic, InputPartition and Offset locate the input record being
	// processed; errors name them.
	Topic          string
	InputPartition int32
	Offset         int64
	// Operator names the operator running user code, for errors.
	Operator string
	Logger   hclog.Logger

	// Send writes a record to a topic in the task's open transaction.
	Send func(r RawRecord)
	// Partitions returns the partition count of a topic.
	Partitions func(topic string) int32
	// Late is called for every record an operator drops as late.
	Late func(operator string)
	// NilKey is set while a record whose key was nil in its topic passes
	// through the operators of its sub-topology. Stateful operators drop
	// such records, as Kafka Streams does: a nil key cannot be grouped or
	// joined. A re-keyed stream goes through a repartition topic first,
	// where its new key is never nil.
	NilKey bool
	// Dropped is called for every record a stateful operator drops for
	// its nil key.
	Dropped func(operator, reason string)
}

// dropNilKey reports whether the record being processed has a nil key and
// must be dropped by the stateful operator op, and reports the drop.
func dropNilKey(ctx *Context, op string) bool {
	if !ctx.NilKey {
		return false
	}
	if ctx.Dropped != nil {
		ctx.Dropped(op, "nil key")
	}
	return true
}

// Graph is a sub-topology instantiated for one task.
type Graph struct {
	// Sources maps each input topic to the operator that decodes it.
	Sources map[string]RawProcessor
	// Finishers in topological order.
	Finishers []Finisher
}

// DecodeError is returned when a record's key or value does not decode.
type DecodeError struct {
	Topic     string
	Partition int32
	Offset    int64
	Field     string // "key" or "value"
	Err       error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s of record %s/%d@%d: %v", e.Field, e.Topic, e.Partition, e.Offset, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// PanicError is a panic in user code, recovered.
type PanicError struct {
	Operator  string
	Topic     string
	Partition int32
	Offset    int64
	Value     any
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("panic in operator %q on record %s/%d@%d: %v", e.Operator, e.Topic, e.Partition, e.Offset, e.Value)
}

// ErrNilKey is wrapped by errors for records whose key must not be nil.
var ErrNilKey = errors.New("nil key")
