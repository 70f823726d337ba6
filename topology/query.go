package topology

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

// StoreReader reads the rows of a store's partitions as raw bytes: what
// the queries of this file (Lookup, Rows, FetchWindows) decode with a
// table's serdes. The engine provides one that reads at read-committed
// (Engine.Stores), and package eddytest one that reads a test's stores.
type StoreReader interface {
	// StorePartitions returns the partition count of store's topology
	// and the partitions the reader holds, ascending: all of them in one
	// process, the ones assigned to this instance on Kafka.
	StorePartitions(ctx context.Context, store string) (total int32, local []int32, err error)
	// Get returns the value of key in a partition of store.
	Get(ctx context.Context, store string, partition int32, key []byte) (value []byte, ok bool, err error)
	// Range calls fn for the rows of a partition of store with from <=
	// key < to (nil: unbounded), in ascending key order. fn's slices are
	// valid only during the call.
	Range(ctx context.Context, store string, partition int32, from, to []byte, fn func(key, value []byte) error) error
}

// ErrNotLocal is returned (wrapped) by Lookup when the partition that
// holds a key is not held by the reader: on Kafka, another instance
// holds it (see the engine's instance lookup).
var ErrNotLocal = errors.New("topology: key's partition is not held here")

// ErrWrongKind is returned (wrapped) by a TextQuery asked for what its
// store's kind does not hold: a key's row of a windowed store, windows of
// a key-value store.
var ErrWrongKind = errors.New("the store's kind has no such query")

// Row is a row of a table as queries return it: its key, its value, and
// its timestamp (the newest input record's, as the table's output
// records carry it).
type Row[K, V any] struct {
	Key   K
	Value V
	Time  int64
}

// tableQuery tells how to read a materialized table's store. Table
// constructors that materialize a store set it; a Table without one
// (a view, such as a filtered table) cannot be queried.
type tableQuery struct {
	store string
	kind  StoreKind
	// index is a session table's index store ("<name>-index"), whose 'k'
	// entries list each key's sessions.
	index string
	// sizeMs is a time-windowed table's window size: End = Start+size.
	sizeMs int64
	// keySerde is the store's key serde: serde.Serde[K] of a key-value
	// table, of the grouping key of a windowed one.
	keySerde any
	// text reads the table with text keys and JSON-ready rows, for the
	// HTTP server; see TextQuery.
	text TextQuery
}

// Store returns the name of the table's store, or "" for a table that is
// not materialized (such as a filtered table, which is a view).
func (t Table[K, V]) Store() string {
	if t.q == nil {
		return ""
	}
	return t.q.store
}

func (t Table[K, V]) query(op string) (*tableQuery, error) {
	if t.b == nil {
		return nil, fmt.Errorf("topology: %s on a zero Table", op)
	}
	if t.q == nil {
		return nil, fmt.Errorf("topology: %s: table %q is not materialized in a store: query the table it derives from", op, t.n.name)
	}
	return t.q, nil
}

// materializedKV makes t, a table materialized in its node's key-value
// store, queryable.
func materializedKV[K, V any](t Table[K, V]) Table[K, V] {
	q := &tableQuery{store: t.n.store.name, kind: KeyValueStore, keySerde: t.keySerde}
	t.q = q
	q.text = kvText[K, V]{t}
	t.n.query = q
	return t
}

// materializedWindows makes t, a table materialized in its node's window
// or session store, queryable: ks is the grouping key's serde, sizeMs the
// windows' size (time windows), index the session index store.
func materializedWindows[K, V any](t Table[window.Windowed[K], V], ks serde.Serde[K], sizeMs int64, session bool, index string) Table[window.Windowed[K], V] {
	q := &tableQuery{store: t.n.store.name, kind: t.n.store.kind, index: index, sizeMs: sizeMs, keySerde: ks}
	t.q = q
	q.text = &windowQuery[K, V]{store: q.store, index: index, session: session, sizeMs: sizeMs, ks: ks, vs: t.valueSerde}
	t.n.query = q
	return t
}

// Lookup returns the row of key in the key-value table t (an
// aggregation or a TableFrom), read through r. It looks in the partition
// Kafka's default partitioner gives the key first, then in r's other
// partitions (a source topic may be partitioned otherwise). With a
// reader that does not hold the key's default partition and does not
// find it elsewhere, the error wraps ErrNotLocal.
func Lookup[K, V any](ctx context.Context, r StoreReader, t Table[K, V], key K) (Row[K, V], bool, error) {
	var row Row[K, V]
	q, err := t.query("Lookup")
	if err != nil {
		return row, false, err
	}
	if q.kind != KeyValueStore {
		return row, false, fmt.Errorf("topology: Lookup: store %s is a %s store: use FetchWindows", q.store, q.kind)
	}
	ks := q.keySerde.(serde.Serde[K])
	k, err := ks.Encode(nil, key)
	if err != nil {
		return row, false, fmt.Errorf("topology: Lookup in %s: encode key: %w", q.store, err)
	}
	v, ok, err := lookupRaw(ctx, r, q.store, k)
	if err != nil || !ok {
		return row, false, err
	}
	ts, val, err := decodeStored(v, t.storeValueSerde())
	if err != nil {
		return row, false, fmt.Errorf("topology: Lookup in %s: %w", q.store, err)
	}
	return Row[K, V]{Key: key, Value: val, Time: ts}, true, nil
}

// lookupRaw finds k in store: in its default partition, then in the
// reader's others.
func lookupRaw(ctx context.Context, r StoreReader, store string, k []byte) ([]byte, bool, error) {
	total, local, err := r.StorePartitions(ctx, store)
	if err != nil {
		return nil, false, err
	}
	if total <= 0 {
		return nil, false, fmt.Errorf("topology: store %s has no partitions", store)
	}
	home := int32(murmur2.Partition(k, total))
	order := make([]int32, 0, len(local))
	if slices.Contains(local, home) {
		order = append(order, home)
	}
	for _, p := range local {
		if p != home {
			order = append(order, p)
		}
	}
	for _, p := range order {
		v, ok, err := r.Get(ctx, store, p, k)
		if err != nil {
			return nil, false, fmt.Errorf("topology: store %s partition %d: %w", store, p, err)
		}
		if ok {
			return v, true, nil
		}
	}
	if !slices.Contains(local, home) {
		return nil, false, fmt.Errorf("topology: store %s: key %x: partition %d: %w", store, k, home, ErrNotLocal)
	}
	return nil, false, nil
}

// Rows returns the rows of the table t held by r: every row in one
// process. Rows of a key-value table are ordered by encoded key; rows of
// a windowed table by window start, then encoded key (by end, then start,
// then key for sessions). With from and to set (non-nil), a key-value
// table's rows are limited to from <= key < to in encoded-key order.
func Rows[K, V any](ctx context.Context, r StoreReader, t Table[K, V], from, to *K) ([]Row[K, V], error) {
	q, err := t.query("Rows")
	if err != nil {
		return nil, err
	}
	var lo, hi []byte
	if from != nil || to != nil {
		if q.kind != KeyValueStore {
			return nil, fmt.Errorf("topology: Rows of %s: bounds apply to key-value tables only", q.store)
		}
		ks := q.keySerde.(serde.Serde[K])
		if from != nil {
			if lo, err = ks.Encode(nil, *from); err != nil {
				return nil, fmt.Errorf("topology: Rows of %s: encode from: %w", q.store, err)
			}
		}
		if to != nil {
			if hi, err = ks.Encode(nil, *to); err != nil {
				return nil, fmt.Errorf("topology: Rows of %s: encode to: %w", q.store, err)
			}
		}
	}
	decode, err := t.rowDecoder(q)
	if err != nil {
		return nil, err
	}
	type raw struct {
		order []byte
		row   Row[K, V]
	}
	_, local, err := r.StorePartitions(ctx, q.store)
	if err != nil {
		return nil, err
	}
	var rows []raw
	for _, p := range local {
		err := r.Range(ctx, q.store, p, lo, hi, func(k, v []byte) error {
			row, err := decode(k, v)
			if err != nil {
				return fmt.Errorf("topology: Rows of %s partition %d: key %x: %w", q.store, p, k, err)
			}
			rows = append(rows, raw{bytes.Clone(k), row})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(rows, func(a, b raw) int { return bytes.Compare(a.order, b.order) })
	out := make([]Row[K, V], len(rows))
	for i, x := range rows {
		out[i] = x.row
	}
	return out, nil
}

// rowDecoder returns the function decoding a raw row of t's store.
func (t Table[K, V]) rowDecoder(q *tableQuery) (func(k, v []byte) (Row[K, V], error), error) {
	vs := t.storeValueSerde()
	switch q.kind {
	case KeyValueStore:
		ks, ok := q.keySerde.(serde.Serde[K])
		if !ok {
			return nil, fmt.Errorf("topology: store %s: key serde of the wrong type", q.store)
		}
		return func(k, v []byte) (Row[K, V], error) {
			key, err := ks.Decode(k)
			if err != nil {
				return Row[K, V]{}, fmt.Errorf("decode key: %w", err)
			}
			ts, val, err := decodeStored(v, vs)
			return Row[K, V]{Key: key, Value: val, Time: ts}, err
		}, nil
	case WindowStore, SessionStore:
		// K is window.Windowed[G]: the windowed query decodes it.
		wd, ok := q.text.(interface {
			decodeAny(k, v []byte) (any, any, int64, error)
		})
		if !ok {
			return nil, fmt.Errorf("topology: store %s: not a windowed store", q.store)
		}
		return func(k, v []byte) (Row[K, V], error) {
			key, val, ts, err := wd.decodeAny(k, v)
			if err != nil {
				return Row[K, V]{}, err
			}
			return Row[K, V]{Key: key.(K), Value: val.(V), Time: ts}, nil
		}, nil
	}
	return nil, fmt.Errorf("topology: store %s: cannot read a %s store", q.store, q.kind)
}

// storeValueSerde is the serde of the values in t's store: the serde the
// table was made with (WithValueSerde only changes what To writes).
func (t Table[K, V]) storeValueSerde() serde.Serde[V] {
	if t.q != nil && t.q.text != nil {
		if vs, ok := t.q.text.(interface{ valueSerde() any }); ok {
			if s, ok := vs.valueSerde().(serde.Serde[V]); ok {
				return s
			}
		}
	}
	return t.valueSerde
}

// decodeStored splits a stored row value: 8 bytes of big-endian timestamp
// then the encoded value.
func decodeStored[V any](b []byte, vs serde.Serde[V]) (int64, V, error) {
	var zero V
	if len(b) < 8 {
		return 0, zero, fmt.Errorf("stored value too short: %d bytes", len(b))
	}
	if vs == nil {
		return 0, zero, errors.New("the table's value serde is unknown")
	}
	v, err := vs.Decode(b[8:])
	if err != nil {
		return 0, zero, fmt.Errorf("decode value: %w", err)
	}
	return int64(binary.BigEndian.Uint64(b)), v, nil
}

// FetchWindows returns the windows of key in the windowed table t (time
// or session windows) that overlap [from, to] (milliseconds, inclusive),
// ordered by window start (sessions: by end, then start), like Kafka
// Streams' fetch of a window or session store. A time-windowed fetch
// ranges over the windows starting in [from-size, to], every key's: it
// is a query, not a per-record path.
func FetchWindows[K, V any](ctx context.Context, r StoreReader, t Table[window.Windowed[K], V], key K, from, to int64) ([]Row[window.Windowed[K], V], error) {
	q, err := t.query("FetchWindows")
	if err != nil {
		return nil, err
	}
	wq, ok := q.text.(*windowQuery[K, V])
	if !ok {
		return nil, fmt.Errorf("topology: FetchWindows: store %s is a %s store: use Lookup", q.store, q.kind)
	}
	return wq.fetch(ctx, r, key, from, to)
}

// TextQuery reads a materialized table with keys given as text and rows
// returned as JSON-ready values: what the engine's HTTP server serves. A
// key of type string is taken as is; a key of any other type is parsed as
// JSON into the key type.
type TextQuery interface {
	// Kind is the store's kind.
	Kind() StoreKind
	// Get returns the row of key (key-value tables).
	Get(ctx context.Context, r StoreReader, key string) (any, bool, error)
	// Rows returns up to limit rows (0: all), from the first row whose
	// key is at or after from (key-value tables; "" from the first).
	Rows(ctx context.Context, r StoreReader, from string, limit int) ([]any, error)
	// Windows returns key's windows overlapping [from, to] (windowed
	// tables).
	Windows(ctx context.Context, r StoreReader, key string, from, to int64) ([]any, error)
	// EncodeKey returns the store's encoding of key (of a windowed
	// table, of its grouping key): what the key's partition is
	// computed from.
	EncodeKey(key string) ([]byte, error)
}

// KeyError is a key given as text that does not parse or encode.
type KeyError struct {
	Key string
	Err error
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %q: %v", e.Key, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// encodeTextKey parses key as parseTextKey does and encodes it with ks.
func encodeTextKey[K any](key string, ks serde.Serde[K]) ([]byte, error) {
	k, err := parseTextKey[K](key)
	if err != nil {
		return nil, err
	}
	b, err := ks.Encode(nil, k)
	if err != nil {
		return nil, &KeyError{key, err}
	}
	return b, nil
}

// Queries returns the text queries of the topology's materialized
// tables, by store name.
func (t *Topology) Queries() map[string]TextQuery {
	m := map[string]TextQuery{}
	for _, n := range t.nodes {
		if n.query != nil && n.query.text != nil {
			m[n.query.store] = n.query.text
		}
	}
	return m
}

// jsonRow is a row as the HTTP server renders it.
type jsonRow struct {
	Key    any   `json:"key"`
	Window *jwin `json:"window,omitempty"`
	Value  any   `json:"value"`
	Time   int64 `json:"timestamp"`
}

type jwin struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
}

// parseTextKey parses a key given as text: a string as is, any other
// type as JSON.
func parseTextKey[K any](s string) (K, error) {
	var k K
	if p, ok := any(&k).(*string); ok {
		*p = s
		return k, nil
	}
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return k, &KeyError{s, fmt.Errorf("not a JSON %T: %w", k, err)}
	}
	return k, nil
}

// kvText is the TextQuery of a key-value table.
type kvText[K, V any] struct {
	t Table[K, V]
}

func (q kvText[K, V]) Kind() StoreKind { return KeyValueStore }
func (q kvText[K, V]) EncodeKey(key string) ([]byte, error) {
	return encodeTextKey(key, q.t.q.keySerde.(serde.Serde[K]))
}
func (q kvText[K, V]) valueSerde() any { return q.t.valueSerde }

func (q kvText[K, V]) Get(ctx context.Context, r StoreReader, key string) (any, bool, error) {
	k, err := parseTextKey[K](key)
	if err != nil {
		return nil, false, err
	}
	row, ok, err := Lookup(ctx, r, q.t, k)
	if err != nil || !ok {
		return nil, ok, err
	}
	return jsonRow{Key: row.Key, Value: row.Value, Time: row.Time}, true, nil
}

func (q kvText[K, V]) Rows(ctx context.Context, r StoreReader, from string, limit int) ([]any, error) {
	var lo *K
	if from != "" {
		k, err := parseTextKey[K](from)
		if err != nil {
			return nil, err
		}
		lo = &k
	}
	rows, err := Rows(ctx, r, q.t, lo, nil)
	if err != nil {
		return nil, err
	}
	if limit > 0 && len(rows) > limit {
		rows = rows[:limit]
	}
	out := make([]any, len(rows))
	for i, row := range rows {
		out[i] = jsonRow{Key: row.Key, Value: row.Value, Time: row.Time}
	}
	return out, nil
}

func (q kvText[K, V]) Windows(context.Context, StoreReader, string, int64, int64) ([]any, error) {
	return nil, fmt.Errorf("store %s is a key-value store: it has no windows: %w", q.t.q.store, ErrWrongKind)
}

// windowQuery reads a windowed table (time or session windows) grouped
// by keys of type K.
type windowQuery[K, V any] struct {
	store, index string
	session      bool
	sizeMs       int64
	ks           serde.Serde[K]
	vs           serde.Serde[V]
}

func (q *windowQuery[K, V]) Kind() StoreKind {
	if q.session {
		return SessionStore
	}
	return WindowStore
}

func (q *windowQuery[K, V]) valueSerde() any { return q.vs }

func (q *windowQuery[K, V]) EncodeKey(key string) ([]byte, error) { return encodeTextKey(key, q.ks) }

// decodeAny decodes a raw row of the store into a window.Windowed[K] key
// and a V value.
func (q *windowQuery[K, V]) decodeAny(k, v []byte) (any, any, int64, error) {
	w, val, ts, err := q.decode(k, v)
	return w, val, ts, err
}

func (q *windowQuery[K, V]) decode(k, v []byte) (window.Windowed[K], V, int64, error) {
	var w window.Windowed[K]
	var zero V
	var kb []byte
	if q.session {
		// key | end (8) | start (8), raw big-endian.
		if len(k) < 16 {
			return w, zero, 0, fmt.Errorf("session key too short: %d bytes", len(k))
		}
		kb = k[:len(k)-16]
		w.End = int64(binary.BigEndian.Uint64(k[len(k)-16:]))
		w.Start = int64(binary.BigEndian.Uint64(k[len(k)-8:]))
	} else {
		start, key, err := state.DecodeWindowKey(k)
		if err != nil {
			return w, zero, 0, err
		}
		kb, w.Start, w.End = key, start, start+q.sizeMs
	}
	key, err := q.ks.Decode(kb)
	if err != nil {
		return w, zero, 0, fmt.Errorf("decode key: %w", err)
	}
	w.Key = key
	ts, val, err := decodeStored(v, q.vs)
	return w, val, ts, err
}

func (q *windowQuery[K, V]) fetch(ctx context.Context, r StoreReader, key K, from, to int64) ([]Row[window.Windowed[K], V], error) {
	kb, err := q.ks.Encode(nil, key)
	if err != nil {
		return nil, fmt.Errorf("topology: fetch from %s: encode key: %w", q.store, err)
	}
	_, local, err := r.StorePartitions(ctx, q.store)
	if err != nil {
		return nil, err
	}
	var out []Row[window.Windowed[K], V]
	add := func(p int32, k, v []byte) error {
		w, val, ts, err := q.decode(k, v)
		if err != nil {
			return fmt.Errorf("topology: fetch from %s partition %d: key %x: %w", q.store, p, k, err)
		}
		out = append(out, Row[window.Windowed[K], V]{Key: w, Value: val, Time: ts})
		return nil
	}
	for _, p := range local {
		if q.session {
			err = q.fetchSessions(ctx, r, p, kb, from, to, add)
		} else {
			// Windows overlapping [from, to] start in [from-size, to].
			lo := state.AppendWindowKey(nil, satSub(from, q.sizeMs), nil)
			var hi []byte
			if to < 1<<62 {
				hi = state.AppendWindowKey(nil, to+1, nil)
			}
			err = r.Range(ctx, q.store, p, lo, hi, func(k, v []byte) error {
				start, kk, err := state.DecodeWindowKey(k)
				if err != nil {
					return err
				}
				if !bytes.Equal(kk, kb) || start+q.sizeMs < from {
					return nil
				}
				return add(p, k, v)
			})
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// fetchSessions reads key's sessions ending at or after from and starting
// by to, through the session index's by-key entries:
// 'k' | uvarint(len(key)) | key | end (8) | start (8), times sign-flipped.
func (q *windowQuery[K, V]) fetchSessions(ctx context.Context, r StoreReader, p int32, kb []byte, from, to int64, add func(int32, []byte, []byte) error) error {
	prefix := append([]byte{'k'}, binary.AppendUvarint(nil, uint64(len(kb)))...)
	prefix = append(prefix, kb...)
	lo := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(from)^(1<<63))
	hi := append(bytes.Clone(prefix), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
	type span struct{ end, start int64 }
	var spans []span
	err := r.Range(ctx, q.index, p, lo, hi, func(k, _ []byte) error {
		t := k[len(prefix):]
		if len(t) != 16 {
			return fmt.Errorf("topology: session index %s: malformed entry %x", q.index, k)
		}
		end := int64(binary.BigEndian.Uint64(t) ^ (1 << 63))
		start := int64(binary.BigEndian.Uint64(t[8:]) ^ (1 << 63))
		if start <= to {
			spans = append(spans, span{end, start})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, s := range spans {
		dk := binary.BigEndian.AppendUint64(bytes.Clone(kb), uint64(s.end))
		dk = binary.BigEndian.AppendUint64(dk, uint64(s.start))
		v, ok, err := r.Get(ctx, q.store, p, dk)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("topology: store %s partition %d: session [%d,%d] is indexed but missing", q.store, p, s.start, s.end)
		}
		if err := add(p, dk, v); err != nil {
			return err
		}
	}
	return nil
}

func satSub(a, b int64) int64 {
	if a < -1<<62 {
		return a
	}
	return a - b
}

func (q *windowQuery[K, V]) Get(context.Context, StoreReader, string) (any, bool, error) {
	return nil, false, fmt.Errorf("store %s is a %s store: ask for a key's windows: %w", q.store, q.Kind(), ErrWrongKind)
}

func (q *windowQuery[K, V]) Rows(ctx context.Context, r StoreReader, from string, limit int) ([]any, error) {
	if from != "" {
		return nil, fmt.Errorf("store %s is a %s store: from applies to key-value stores: %w", q.store, q.Kind(), ErrWrongKind)
	}
	_, local, err := r.StorePartitions(ctx, q.store)
	if err != nil {
		return nil, err
	}
	var out []any
	for _, p := range local {
		err := r.Range(ctx, q.store, p, nil, nil, func(k, v []byte) error {
			if limit > 0 && len(out) >= limit {
				return errLimit
			}
			w, val, ts, err := q.decode(k, v)
			if err != nil {
				return err
			}
			out = append(out, jsonRow{Key: w.Key, Window: &jwin{w.Start, w.End}, Value: val, Time: ts})
			return nil
		})
		if err != nil && !errors.Is(err, errLimit) {
			return nil, err
		}
	}
	return out, nil
}

var errLimit = errors.New("limit reached")

func (q *windowQuery[K, V]) Windows(ctx context.Context, r StoreReader, key string, from, to int64) ([]any, error) {
	k, err := parseTextKey[K](key)
	if err != nil {
		return nil, err
	}
	rows, err := q.fetch(ctx, r, k, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]any, len(rows))
	for i, row := range rows {
		out[i] = jsonRow{Key: row.Key.Key, Window: &jwin{row.Key.Start, row.Key.End}, Value: row.Value, Time: row.Time}
	}
	return out, nil
}
