package operators

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

// Table re-grouping and aggregation, as Kafka Streams' KTable.groupBy and
// KGroupedTable count, reduce and aggregate with an adder and a
// subtractor:
//
//	table --> TableGroupBy --> ChangeSink ==repartition topic==> ChangeSource --> TableAggregate
//
// TableGroupBy maps each row change of the input table to the rows of the
// new grouping, ChangeSink writes them, old and new value in one record,
// to a repartition topic keyed by the new key; ChangeSource reads them
// back on the task owning the new key, and TableAggregate retracts the old
// value (subtractor) and then folds in the new one (adder).
//
// A repartition record's value is a change record:
//
//	flags (1 byte) | payload
//
//	flags 0x01 (new only): payload = new value
//	flags 0x02 (old only): payload = old value
//	flags 0x03 (both):     payload = uvarint(len(new value)) | new value | old value
//
// the values encoded with the grouped table's value serde. Any other flags
// byte, an empty or nil value, or a length running past the end is
// corrupt: ChangeSource returns a *DecodeError naming the record.

// Flags of a change record.
const (
	changeHasNew byte = 1 << 0
	changeHasOld byte = 1 << 1
)

// errEmptyChange is returned for a change with neither an old nor a new
// value: there is nothing to write.
var errEmptyChange = errors.New("change has neither an old nor a new value")

// appendChange appends the change record of c (see the format above) to dst.
func appendChange[V any](dst []byte, s serde.Serde[V], c Change[V], scratch []byte) ([]byte, []byte, error) {
	var err error
	switch {
	case c.HasNew && c.HasOld:
		// The new value's length precedes it: encode it aside first.
		if scratch, err = s.Encode(scratch[:0], c.New); err != nil {
			return dst, scratch, err
		}
		dst = append(dst, changeHasNew|changeHasOld)
		dst = binary.AppendUvarint(dst, uint64(len(scratch)))
		dst = append(dst, scratch...)
		dst, err = s.Encode(dst, c.Old)
	case c.HasNew:
		dst, err = s.Encode(append(dst, changeHasNew), c.New)
	case c.HasOld:
		dst, err = s.Encode(append(dst, changeHasOld), c.Old)
	default:
		err = errEmptyChange
	}
	return dst, scratch, err
}

// decodeChange decodes a change record.
func decodeChange[V any](s serde.Serde[V], b []byte) (Change[V], error) {
	var c Change[V]
	if len(b) == 0 {
		return c, errors.New("empty change record: want a flags byte")
	}
	flags, p := b[0], b[1:]
	var newb, oldb []byte
	switch flags {
	case changeHasNew:
		newb = p
	case changeHasOld:
		oldb = p
	case changeHasNew | changeHasOld:
		n, w := binary.Uvarint(p)
		if w <= 0 {
			return c, errors.New("change record: bad length of the new value")
		}
		p = p[w:]
		if n > uint64(len(p)) {
			return c, fmt.Errorf("change record: new value of %d bytes runs past the end (%d bytes left)", n, len(p))
		}
		newb, oldb = p[:n], p[n:]
	default:
		return c, fmt.Errorf("change record: unknown flags 0x%02x", flags)
	}
	var err error
	if flags&changeHasNew != 0 {
		c.HasNew = true
		if c.New, err = s.Decode(newb); err != nil {
			return c, fmt.Errorf("change record: new value: %w", err)
		}
	}
	if flags&changeHasOld != 0 {
		c.HasOld = true
		if c.Old, err = s.Decode(oldb); err != nil {
			return c, fmt.Errorf("change record: old value: %w", err)
		}
	}
	return c, nil
}

// TableGroupBy maps every row of a table to a row of a new grouping: Fn
// gives the new key and value of a row. It is Kafka Streams'
// KTableRepartitionMap, with KIP-904: a change whose old and new rows map
// to the same key (equal encodings under KeySerde) is forwarded as one
// change carrying both, so that the aggregate retracts the old value and
// adds the new one in one step, on one partition. Otherwise the old row is
// forwarded first, as a retraction, then the new row, as an insertion;
// they may go to different partitions. A delete forwards only the
// retraction, an insert only the insertion, a delete of an absent row
// nothing. Every record keeps the change's time and headers.
type TableGroupBy[K, V, K2, V2 any] struct {
	Name string
	Fn   func(K, V) (K2, V2)
	// KeySerde encodes the new keys, to compare them; a key it cannot
	// encode is an error.
	KeySerde serde.Serde[K2]
	Out      Downstream[K2, Change[V2]]

	nbuf, obuf []byte
}

// Process implements Processor.
func (g *TableGroupBy[K, V, K2, V2]) Process(ctx *Context, r Record[K, Change[V]]) error {
	c := r.Value
	var nk, ok K2
	var nv, ov V2
	var err error
	// As in Kafka Streams, the new row is mapped before the old one.
	if c.HasNew {
		ctx.Operator = g.Name
		nk, nv = g.Fn(r.Key, c.New)
		if g.nbuf, err = g.KeySerde.Encode(g.nbuf[:0], nk); err != nil {
			return fmt.Errorf("operator %s: encode grouping key: %w", g.Name, err)
		}
	}
	if c.HasOld {
		ctx.Operator = g.Name
		ok, ov = g.Fn(r.Key, c.Old)
		if g.obuf, err = g.KeySerde.Encode(g.obuf[:0], ok); err != nil {
			return fmt.Errorf("operator %s: encode grouping key: %w", g.Name, err)
		}
	}
	if c.HasNew && c.HasOld && bytes.Equal(g.nbuf, g.obuf) {
		both := Change[V2]{New: nv, Old: ov, HasNew: true, HasOld: true}
		return g.Out.Forward(ctx, Record[K2, Change[V2]]{Key: nk, Value: both, Time: r.Time, Headers: r.Headers})
	}
	if c.HasOld {
		retract := Change[V2]{Old: ov, HasOld: true}
		if err := g.Out.Forward(ctx, Record[K2, Change[V2]]{Key: ok, Value: retract, Time: r.Time, Headers: r.Headers}); err != nil {
			return err
		}
	}
	if c.HasNew {
		insert := Change[V2]{New: nv, HasNew: true}
		return g.Out.Forward(ctx, Record[K2, Change[V2]]{Key: nk, Value: insert, Time: r.Time, Headers: r.Headers})
	}
	return nil
}

// ChangeSink writes changes to a topic as change records (see the format
// at the top of this file), partitioned by the murmur2 hash of the encoded
// key: the sink of a table re-grouping's repartition topic.
type ChangeSink[K, V any] struct {
	Name string
	// Sink holds the topic and serdes; its ValueSerde encodes the old and
	// new values inside the change record.
	Sink Sink[K, V]

	scratch []byte
}

// Process implements Processor.
func (s *ChangeSink[K, V]) Process(ctx *Context, r Record[K, Change[V]]) error {
	// Key and value share one allocation; the log keeps both until commit.
	buf, err := s.Sink.KeySerde.Encode(make([]byte, 0, 64), r.Key)
	if err != nil {
		return fmt.Errorf("operator %s: encode key: %w", s.Name, err)
	}
	kl := len(buf)
	if buf, s.scratch, err = appendChange(buf, s.Sink.ValueSerde, r.Value, s.scratch); err != nil {
		return fmt.Errorf("operator %s: encode change: %w", s.Name, err)
	}
	s.Sink.send(ctx, buf[:kl:kl], buf[kl:], r.Time, r.Headers)
	return nil
}

// ChangeSource reads a topic of change records written by ChangeSink and
// forwards the changes.
type ChangeSource[K, V any] struct {
	KeySerde   serde.Serde[K]
	ValueSerde serde.Serde[V]
	Out        Downstream[K, Change[V]]
}

// ProcessRaw implements RawProcessor. A record whose key or change does
// not decode, a nil key or a tombstone (ChangeSink writes neither) is a
// *DecodeError.
func (s *ChangeSource[K, V]) ProcessRaw(ctx *Context, r *RawRecord) error {
	if r.Key == nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "key", ErrNilKey}
	}
	k, err := s.KeySerde.Decode(r.Key)
	if err != nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "key", err}
	}
	if r.Value == nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "value", errors.New("tombstone in a topic of change records")}
	}
	c, err := decodeChange(s.ValueSerde, r.Value)
	if err != nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "value", err}
	}
	return s.Out.Forward(ctx, Record[K, Change[V]]{Key: k, Value: c, Time: r.Timestamp, Headers: r.Headers})
}

// TableAggregate aggregates the rows of a re-grouped table per key, as
// Kafka Streams' KTableAggregate and KTableReduce: for each change it
// first retracts the old value with Sub, if the change has one and the
// key has an aggregate, then folds in the new value with Add (found false
// for a key without an aggregate: Add initializes it). A key's row is
// never deleted: a count that falls to 0 stays 0, as in Kafka Streams,
// where the subtractor's result is stored like any other.
//
// The stored value is the 8-byte big-endian timestamp then the encoded
// aggregate. The timestamp is the change's time for a new key, else the
// larger of it and the stored one (Kafka Streams does the same, so a
// table aggregate's time never goes back, even when the newest row
// leaves the group). Updates are forwarded when the store's cache flushes
// them, with the aggregate before the first write since the last flush as
// the old value.
//
// A retraction for a key with no aggregate changes nothing and writes
// nothing. It cannot happen while the input table and the aggregate agree
// (Kafka Streams writes a null aggregate then, which it forwards as a
// tombstone only when caching is off).
type TableAggregate[K, V, A any] struct {
	Name     string
	Store    string
	KeySerde serde.Serde[K]
	AggSerde serde.Serde[A]
	// Add folds a new value into the aggregate (the adder).
	Add Fold[K, V, A]
	// Sub retracts an old value from the aggregate (the subtractor).
	Sub func(key K, value V, agg A) A
	Out Downstream[K, Change[A]]

	store      *state.KV
	kbuf, vbuf []byte
}

// Init opens the operator's store.
func (a *TableAggregate[K, V, A]) Init(ctx *Context, stores Stores) error {
	var err error
	a.store, err = stores.KV(a.Store, state.StoreConfig{OnFlush: forwardRows(ctx, a.Store, a.KeySerde, a.AggSerde, a.Out)})
	return err
}

// Process implements Processor.
func (a *TableAggregate[K, V, A]) Process(ctx *Context, r Record[K, Change[V]]) error {
	c := r.Value
	if !c.HasNew && !c.HasOld {
		return nil
	}
	var err error
	if a.kbuf, err = a.KeySerde.Encode(a.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", a.Name, err)
	}
	stored, found, err := a.store.Get(a.kbuf)
	if err != nil {
		return err
	}
	if !found && !c.HasNew {
		return nil // a retraction from nothing
	}
	var agg A
	ts := r.Time
	if found {
		oldTs, prev, err := decodeTimestamped(stored, a.AggSerde)
		if err != nil {
			return fmt.Errorf("store %s: %w", a.Store, err)
		}
		agg, ts = prev, max(ts, oldTs)
	}
	ctx.Operator = a.Name
	if c.HasOld && found {
		agg = a.Sub(r.Key, c.Old, agg)
	}
	if c.HasNew {
		agg = a.Add(r.Key, c.New, agg, found)
	}
	if a.vbuf, err = appendTimestamped(a.vbuf[:0], ts, a.AggSerde, agg); err != nil {
		return fmt.Errorf("operator %s: encode aggregate: %w", a.Name, err)
	}
	return a.store.Put(a.kbuf, a.vbuf)
}

// Reader returns a reader of the aggregates, for joins (ReadableTable).
// It is valid once Init has run.
func (a *TableAggregate[K, V, A]) Reader(view TableView) TableReader[K, A] {
	return &storeReader[K, A]{name: a.Store, store: a.store, keySerde: a.KeySerde, valueSerde: a.AggSerde, view: view}
}
