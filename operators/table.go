package operators

import (
	"encoding/binary"
	"fmt"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

// TableSource materializes a topic as a table: each record upserts its
// key, a tombstone deletes it. Changes are forwarded as the store's cache
// flushes them, stamped with the time of the record that made them: a
// delete with its tombstone's, as in Kafka Streams (a table-table join
// stamps its tombstones with it, rules 36 and 37).
type TableSource[K, V any] struct {
	Store      string
	KeySerde   serde.Serde[K]
	ValueSerde serde.Serde[V]
	Out        Downstream[K, Change[V]]

	store *state.KV
	vbuf  []byte
	// deleted holds the times of the tombstones the store has not flushed
	// yet, by key: a deleted row keeps no timestamp in the store. At most
	// one entry per dirty cache entry, emptied by every flush.
	deleted map[string]int64
}

// Init opens the table's store.
func (t *TableSource[K, V]) Init(ctx *Context, stores Stores) error {
	var err error
	t.store, err = stores.KV(t.Store, state.StoreConfig{OnFlush: func(key, value, old []byte) error {
		k, err := t.KeySerde.Decode(key)
		if err != nil {
			return fmt.Errorf("store %s: decode key: %w", t.Store, err)
		}
		c, ts, err := changeOf(t.ValueSerde, value, old)
		if err != nil {
			return fmt.Errorf("store %s: %w", t.Store, err)
		}
		if dt, ok := t.deleted[string(key)]; ok && value == nil {
			ts = dt
			delete(t.deleted, string(key))
		}
		return t.Out.Forward(ctx, Record[K, Change[V]]{Key: k, Value: c, Time: ts})
	}})
	return err
}

// ProcessRaw implements RawProcessor. Records with a nil key are dropped,
// as in Kafka Streams: a table row needs a key.
func (t *TableSource[K, V]) ProcessRaw(ctx *Context, r *RawRecord) error {
	if r.Key == nil {
		return nil
	}
	if _, err := t.KeySerde.Decode(r.Key); err != nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "key", err}
	}
	if r.Value == nil {
		if t.deleted == nil {
			t.deleted = map[string]int64{}
		}
		t.deleted[string(r.Key)] = r.Timestamp
		return t.store.Delete(r.Key)
	}
	if _, err := t.ValueSerde.Decode(r.Value); err != nil {
		return &DecodeError{r.Topic, r.Partition, r.Offset, "value", err}
	}
	if len(t.deleted) > 0 {
		delete(t.deleted, string(r.Key))
	}
	t.vbuf = binary.BigEndian.AppendUint64(t.vbuf[:0], uint64(r.Timestamp))
	t.vbuf = append(t.vbuf, r.Value...)
	return t.store.Put(r.Key, t.vbuf)
}

// Reader returns a reader of the table's rows, for joins (ReadableTable).
// It is valid once Init has run.
func (t *TableSource[K, V]) Reader(view TableView) TableReader[K, V] {
	return &storeReader[K, V]{name: t.Store, store: t.store, keySerde: t.KeySerde, valueSerde: t.ValueSerde, view: view}
}
