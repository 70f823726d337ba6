package eddytest

import (
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// Lookup returns the row of key in the key-value table t (an
// aggregation or a TableFrom), as processing left it.
func Lookup[K, V any](d *Driver, t topology.Table[K, V], key K) (topology.Row[K, V], bool) {
	d.t.Helper()
	row, ok, err := topology.Lookup(d.ctx, d.Stores(), t, key)
	if err != nil {
		d.t.Fatalf("eddytest: lookup %v: %v", key, err)
	}
	return row, ok
}

// Rows returns every row of the table t: of a key-value table in encoded
// key order, of a windowed table by window, then key.
func Rows[K, V any](d *Driver, t topology.Table[K, V]) []topology.Row[K, V] {
	d.t.Helper()
	rows, err := topology.Rows(d.ctx, d.Stores(), t, nil, nil)
	if err != nil {
		d.t.Fatalf("eddytest: rows: %v", err)
	}
	return rows
}

// Range returns the rows of the key-value table t with from <= key < to,
// in encoded-key order.
func Range[K, V any](d *Driver, t topology.Table[K, V], from, to K) []topology.Row[K, V] {
	d.t.Helper()
	rows, err := topology.Rows(d.ctx, d.Stores(), t, &from, &to)
	if err != nil {
		d.t.Fatalf("eddytest: range: %v", err)
	}
	return rows
}

// Windows returns the windows of key in the windowed table t (time or
// session windows) that overlap [from, to], in milliseconds.
func Windows[K, V any](d *Driver, t topology.Table[window.Windowed[K], V], key K, from, to int64) []topology.Row[window.Windowed[K], V] {
	d.t.Helper()
	rows, err := topology.FetchWindows(d.ctx, d.Stores(), t, key, from, to)
	if err != nil {
		d.t.Fatalf("eddytest: windows of %v: %v", key, err)
	}
	return rows
}
