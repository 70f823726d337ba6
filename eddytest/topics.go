package eddytest

import (
	"fmt"
	"slices"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/serde"
)

// Header is a record header.
type Header = broker.Header

// Record is a record of a topic, typed. Piped records use Key, Value, Time
// and Headers; records read from an output topic also carry their
// partition and offset.
type Record[K, V any] struct {
	Key   K
	Value V
	// Tombstone marks a record without a value: a table row's deletion.
	Tombstone bool
	// Time is the record's timestamp, in milliseconds since the epoch.
	Time    int64
	Headers []Header
	// Partition and Offset tell where an output record was read.
	Partition int32
	Offset    int64
}

// InputTopic pipes typed records into a topic.
type InputTopic[K, V any] struct {
	d     *Driver
	topic string
	ks    serde.Serde[K]
	vs    serde.Serde[V]
}

// Input returns the input topic named topic, written with ks and vs. It is
// a source topic of the topology, created by New with Options.Partitions
// partitions, or any other topic the test creates through the engine's log.
func Input[K, V any](d *Driver, topic string, ks serde.Serde[K], vs serde.Serde[V]) *InputTopic[K, V] {
	return &InputTopic[K, V]{d: d, topic: topic, ks: ks, vs: vs}
}

// Pipe writes a record with key, value and timestamp ts (milliseconds) to
// the partition Kafka's default partitioner gives the key, then, unless
// Options.ManualCommit, runs the topology until it has processed it.
func (in *InputTopic[K, V]) Pipe(key K, value V, ts int64) {
	in.d.t.Helper()
	in.PipeRecords(Record[K, V]{Key: key, Value: value, Time: ts})
}

// PipeTombstone writes a record with key and no value: the deletion of a
// table row.
func (in *InputTopic[K, V]) PipeTombstone(key K, ts int64) {
	in.d.t.Helper()
	in.PipeRecords(Record[K, V]{Key: key, Tombstone: true, Time: ts})
}

// PipeRecords writes records (their Partition and Offset are ignored)
// atomically, then, unless Options.ManualCommit, runs the topology until
// it has processed them.
func (in *InputTopic[K, V]) PipeRecords(recs ...Record[K, V]) {
	in.d.t.Helper()
	out := make([]broker.Record, len(recs))
	for i, r := range recs {
		k, err := in.ks.Encode(nil, r.Key)
		if err != nil {
			in.d.t.Fatalf("eddytest: pipe to %s: encode key %v: %v", in.topic, r.Key, err)
		}
		var v []byte
		if !r.Tombstone {
			if v, err = in.vs.Encode(make([]byte, 0, 16), r.Value); err != nil {
				in.d.t.Fatalf("eddytest: pipe to %s: encode value %v: %v", in.topic, r.Value, err)
			}
		}
		out[i] = broker.Record{Topic: in.topic, Partition: broker.AnyPartition, Key: k, Value: v, Timestamp: r.Time, Headers: r.Headers}
	}
	in.d.produce(out...)
}

// PipeRaw writes records of raw bytes, such as ones that do not decode.
func (in *InputTopic[K, V]) PipeRaw(key, value []byte, ts int64) {
	in.d.t.Helper()
	in.d.produce(broker.Record{Topic: in.topic, Partition: broker.AnyPartition, Key: key, Value: value, Timestamp: ts})
}

// OutputTopic reads the committed records of a topic, typed.
type OutputTopic[K, V any] struct {
	d     *Driver
	topic string
	ks    serde.Serde[K]
	vs    serde.Serde[V]
	pos   map[int32]int64
}

// Output returns the output topic named topic, read with ks and vs.
func Output[K, V any](d *Driver, topic string, ks serde.Serde[K], vs serde.Serde[V]) *OutputTopic[K, V] {
	return &OutputTopic[K, V]{d: d, topic: topic, ks: ks, vs: vs, pos: map[int32]int64{}}
}

// ReadRecords returns the committed records written to the topic since
// the last ReadRecords: partition by partition, each in offset order.
// Records of one key are in one partition, in the order they were
// written. It reads at read-committed, like a consumer of the topic.
func (o *OutputTopic[K, V]) ReadRecords() []Record[K, V] {
	o.d.t.Helper()
	var out []Record[K, V]
	err := o.d.readTopic(o.topic, o.pos, func(r broker.Record) error {
		k, err := o.ks.Decode(r.Key)
		if err != nil {
			return fmt.Errorf("%s/%d@%d: decode key: %w", r.Topic, r.Partition, r.Offset, err)
		}
		rec := Record[K, V]{Key: k, Time: r.Timestamp, Partition: r.Partition, Offset: r.Offset, Tombstone: r.Value == nil}
		if r.Value != nil {
			if rec.Value, err = o.vs.Decode(r.Value); err != nil {
				return fmt.Errorf("%s/%d@%d: decode value: %w", r.Topic, r.Partition, r.Offset, err)
			}
		}
		if len(r.Headers) > 0 {
			rec.Headers = slices.Clone(r.Headers)
		}
		out = append(out, rec)
		return nil
	})
	if err != nil {
		o.d.t.Fatalf("eddytest: read %s: %v", o.topic, err)
	}
	return out
}

// Latest folds records into a table: each key's last value, a tombstone
// deleting it. For the output of a table, ReadRecords then Latest gives
// the table's rows.
func Latest[K comparable, V any](recs []Record[K, V]) map[K]V {
	m := map[K]V{}
	for _, r := range recs {
		if r.Tombstone {
			delete(m, r.Key)
			continue
		}
		m[r.Key] = r.Value
	}
	return m
}
