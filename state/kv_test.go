package state

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"
)

func openMem(t testing.TB) *DB {
	t.Helper()
	db, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		db.mu.Lock()
		tasks := make([]*Task, 0, len(db.mu.tasks))
		for task := range db.mu.tasks {
			tasks = append(tasks, task)
		}
		db.mu.Unlock()
		for _, task := range tasks {
			_ = task.Close()
		}
		_ = db.Close()
	})
	return db
}

func mustKV(t testing.TB, task *Task, name string, cfg StoreConfig) *KV {
	t.Helper()
	kv, err := task.KV(name, 0, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// commit flushes and commits task, with the given changelog end per store.
func commit(t testing.TB, task *Task, offsets map[string]int64) {
	t.Helper()
	must(t, task.Flush())
	must(t, task.Commit(offsets))
}

// record is a changelog record or an OnFlush call, as text.
type record = string

func rec(key, value []byte) record {
	if value == nil {
		return fmt.Sprintf("%q=<del>", key)
	}
	return fmt.Sprintf("%q=%q", key, value)
}

func flushRec(key, value, old []byte) record { return rec(key, value) + " old " + rec(nil, old)[3:] }

type recorder struct{ changelog, flushes []record }

func (r *recorder) config(cacheBytes int) StoreConfig {
	return StoreConfig{
		CacheBytes: cacheBytes,
		Changelog:  func(k, v []byte) { r.changelog = append(r.changelog, rec(k, v)) },
		OnFlush: func(k, v, old []byte) error {
			r.flushes = append(r.flushes, flushRec(k, v, old))
			return nil
		},
	}
}

func TestChangelogGetsWritesThatReachTheBatch(t *testing.T) {
	tests := []struct {
		name       string
		cacheBytes int
		ops        func(t *testing.T, kv *KV)
		want       []record
	}{{
		name: "cached: 100 puts of a key make one record", cacheBytes: 1 << 20,
		ops: func(t *testing.T, kv *KV) {
			for i := range 100 {
				must(t, kv.Put([]byte("k"), fmt.Appendf(nil, "v%d", i)))
			}
		},
		want: []record{`"\x01k"="v99"`},
	}, {
		name: "cached: put then delete is one delete", cacheBytes: 1 << 20,
		ops: func(t *testing.T, kv *KV) {
			must(t, kv.Put([]byte("k"), []byte("v")))
			must(t, kv.Delete([]byte("k")))
		},
		want: []record{`"\x01k"=<del>`},
	}, {
		name: "cached: flush order is the order keys became dirty", cacheBytes: 1 << 20,
		ops: func(t *testing.T, kv *KV) {
			for _, k := range []string{"c", "a", "b", "a", "c"} {
				must(t, kv.Put([]byte(k), []byte(k)))
			}
		},
		want: []record{`"\x01c"="c"`, `"\x01a"="a"`, `"\x01b"="b"`},
	}, {
		name: "cached: empty value is not a delete", cacheBytes: 1 << 20,
		ops: func(t *testing.T, kv *KV) {
			must(t, kv.Put([]byte("k"), []byte("v")))
			must(t, kv.Put([]byte("k"), []byte{}))
		},
		want: []record{`"\x01k"=""`},
	}, {
		name: "cached: meta is deduplicated too, in its namespace", cacheBytes: 1 << 20,
		ops: func(t *testing.T, kv *KV) {
			for i := range 100 {
				must(t, kv.PutMeta("time", fmt.Appendf(nil, "%d", i)))
			}
		},
		want: []record{`"\x00time"="99"`},
	}, {
		name: "cached: a read does not make a record", cacheBytes: 1 << 20,
		ops: func(t *testing.T, kv *KV) {
			_, _, err := kv.Get([]byte("k"))
			must(t, err)
		},
	}, {
		name: "cached: eviction writes the least recently used key", cacheBytes: 2*entryOverhead + 8,
		ops: func(t *testing.T, kv *KV) {
			must(t, kv.Put([]byte("a"), []byte("1")))
			must(t, kv.Put([]byte("b"), []byte("1")))
			must(t, kv.Put([]byte("a"), []byte("2"))) // b is now the LRU entry
			must(t, kv.Put([]byte("c"), []byte("1"))) // evicts b
		},
		want: []record{`"\x01b"="1"`, `"\x01a"="2"`, `"\x01c"="1"`},
	}, {
		name: "uncached: every write is a record",
		ops: func(t *testing.T, kv *KV) {
			for i := range 3 {
				must(t, kv.Put([]byte("k"), fmt.Appendf(nil, "v%d", i)))
			}
			must(t, kv.Delete([]byte("k")))
			must(t, kv.PutMeta("time", []byte("7")))
		},
		want: []record{`"\x01k"="v0"`, `"\x01k"="v1"`, `"\x01k"="v2"`, `"\x01k"=<del>`, `"\x00time"="7"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openMem(t)
			task := db.NewTask("t")
			var r recorder
			kv := mustKV(t, task, "s", r.config(tt.cacheBytes))
			tt.ops(t, kv)
			must(t, task.Flush())
			if diff := cmp.Diff(tt.want, r.changelog); diff != "" {
				t.Errorf("changelog (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOnFlush(t *testing.T) {
	type step struct {
		op         string // put, del, meta, flush, commit, abort, get
		key, value string
	}
	tests := []struct {
		name       string
		cacheBytes int
		steps      []step
		want       []record
	}{{
		name: "old is the value before the first write since the last flush", cacheBytes: 1 << 20,
		steps: []step{
			{op: "put", key: "k", value: "1"}, {op: "commit"},
			{op: "put", key: "k", value: "2"}, {op: "put", key: "k", value: "3"}, {op: "flush"},
			{op: "put", key: "k", value: "4"}, {op: "del", key: "k"}, {op: "flush"},
			{op: "put", key: "k", value: "5"}, {op: "flush"},
		},
		want: []record{
			`"k"="1" old <del>`,
			`"k"="3" old "1"`,
			`"k"=<del> old "3"`,
			`"k"="5" old <del>`,
		},
	}, {
		name: "old of a key read before its first write", cacheBytes: 1 << 20,
		steps: []step{
			{op: "put", key: "k", value: "1"}, {op: "commit"}, {op: "abort"}, // empties the cache
			{op: "get", key: "k"}, {op: "put", key: "k", value: "2"}, {op: "flush"},
		},
		want: []record{`"k"="1" old <del>`, `"k"="2" old "1"`},
	}, {
		name: "after an abort old is the committed value again", cacheBytes: 1 << 20,
		steps: []step{
			{op: "put", key: "k", value: "1"}, {op: "commit"},
			{op: "put", key: "k", value: "2"}, {op: "flush"}, {op: "abort"},
			{op: "put", key: "k", value: "3"}, {op: "flush"},
		},
		want: []record{`"k"="1" old <del>`, `"k"="2" old "1"`, `"k"="3" old "1"`},
	}, {
		name: "meta is not passed", cacheBytes: 1 << 20,
		steps: []step{{op: "meta", key: "time", value: "1"}, {op: "put", key: "k", value: "1"}, {op: "flush"}},
		want:  []record{`"k"="1" old <del>`},
	}, {
		name: "eviction flushes", cacheBytes: entryOverhead + 4,
		steps: []step{{op: "put", key: "a", value: "1"}, {op: "put", key: "b", value: "1"}},
		want:  []record{`"a"="1" old <del>`}, // b still cached
	}, {
		name: "uncached: every write",
		steps: []step{
			{op: "put", key: "k", value: "1"}, {op: "put", key: "k", value: "2"},
			{op: "meta", key: "time", value: "1"}, {op: "del", key: "k"},
		},
		want: []record{`"k"="1" old <del>`, `"k"="2" old "1"`, `"k"=<del> old "2"`},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openMem(t)
			task := db.NewTask("t")
			var r recorder
			kv := mustKV(t, task, "s", r.config(tt.cacheBytes))
			for _, s := range tt.steps {
				switch s.op {
				case "put":
					must(t, kv.Put([]byte(s.key), []byte(s.value)))
				case "del":
					must(t, kv.Delete([]byte(s.key)))
				case "meta":
					must(t, kv.PutMeta(s.key, []byte(s.value)))
				case "get":
					_, _, err := kv.Get([]byte(s.key))
					must(t, err)
				case "flush":
					must(t, task.Flush())
				case "commit":
					commit(t, task, nil)
				case "abort":
					task.Abort()
				}
			}
			if diff := cmp.Diff(tt.want, r.flushes); diff != "" {
				t.Errorf("OnFlush calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOnFlushErrorIsReturned(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	boom := errors.New("boom")
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 1 << 20, OnFlush: func(_, _, _ []byte) error { return boom }})
	must(t, kv.Put([]byte("k"), []byte("v")))
	if err := task.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush = %v, want %v", err, boom)
	}
	if err := task.Commit(nil); err == nil {
		t.Fatal("Commit after a failed Flush succeeded")
	}
	task.Abort()
	if _, ok, err := kv.Get([]byte("k")); ok || err != nil {
		t.Fatalf("after Abort: Get = %v, %v; want not found", ok, err)
	}
}

// TestFlushCascades checks that Flush repeats passes while OnFlush writes
// into other stores, earlier or later registered.
func TestFlushCascades(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	var got []record
	var first, third *KV
	first = mustKV(t, task, "first", StoreConfig{CacheBytes: 1 << 20, OnFlush: func(k, v, _ []byte) error {
		got = append(got, "first "+rec(k, v))
		return nil
	}})
	second := mustKV(t, task, "second", StoreConfig{CacheBytes: 1 << 20, OnFlush: func(k, v, _ []byte) error {
		got = append(got, "second "+rec(k, v))
		must(t, first.Put(k, append(v, '1')))
		return third.Put(k, append(v, '3'))
	}})
	third = mustKV(t, task, "third", StoreConfig{CacheBytes: 1 << 20, OnFlush: func(k, v, _ []byte) error {
		got = append(got, "third "+rec(k, v))
		return nil
	}})
	must(t, second.Put([]byte("k"), []byte("v")))
	must(t, task.Flush())
	want := []record{`second "k"="v"`, `third "k"="v3"`, `first "k"="v1"`}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OnFlush calls (-want +got):\n%s", diff)
	}
	must(t, task.Commit(nil))
}

func TestFlushMustSettle(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	var a, b *KV
	a = mustKV(t, task, "a", StoreConfig{CacheBytes: 1 << 20, OnFlush: func(k, v, _ []byte) error { return b.Put(k, v) }})
	b = mustKV(t, task, "b", StoreConfig{CacheBytes: 1 << 20, OnFlush: func(k, v, _ []byte) error { return a.Put(k, v) }})
	must(t, a.Put([]byte("k"), []byte("v")))
	if err := task.Flush(); err == nil || !strings.Contains(err.Error(), "did not settle") {
		t.Fatalf("Flush of a cycle = %v, want a did not settle error", err)
	}
}

func TestRangeAndMeta(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	for _, cacheBytes := range []int{0, 1 << 20} {
		var r recorder
		kv := mustKV(t, task, fmt.Sprint("s", cacheBytes), r.config(cacheBytes))
		for _, k := range []string{"b", "a", "d", "c"} {
			must(t, kv.Put([]byte(k), []byte("v"+k)))
		}
		must(t, kv.PutMeta("a", []byte("meta")))
		must(t, kv.Delete([]byte("c")))
		if v, ok, err := kv.GetMeta("a"); err != nil || !ok || string(v) != "meta" {
			t.Fatalf("GetMeta = %q, %v, %v", v, ok, err)
		}
		if _, ok, err := kv.GetMeta("none"); err != nil || ok {
			t.Fatalf("GetMeta of a missing name = %v, %v", ok, err)
		}
		if _, ok, err := kv.Get([]byte("a")); err != nil || !ok {
			t.Fatalf("meta hides data: Get = %v, %v", ok, err)
		}
		tests := []struct {
			start, end string
			nilStart   bool
			nilEnd     bool
			want       []kvPair
		}{
			{nilStart: true, nilEnd: true, want: []kvPair{{"a", "va"}, {"b", "vb"}, {"d", "vd"}}},
			{start: "b", nilEnd: true, want: []kvPair{{"b", "vb"}, {"d", "vd"}}},
			{nilStart: true, end: "b", want: []kvPair{{"a", "va"}}},
			{start: "a", end: "d", want: []kvPair{{"a", "va"}, {"b", "vb"}}},
			{start: "d", end: "a"},
			{start: "e", nilEnd: true},
		}
		for _, tt := range tests {
			var start, end []byte
			if !tt.nilStart {
				start = []byte(tt.start)
			}
			if !tt.nilEnd {
				end = []byte(tt.end)
			}
			var got []kvPair
			must(t, kv.Range(start, end, func(k, v []byte) error {
				got = append(got, kvPair{string(k), string(v)})
				return nil
			}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("cache %d: Range(%q, %q) (-want +got):\n%s", cacheBytes, start, end, diff)
			}
		}
		if cacheBytes > 0 && kv.ndirty != 0 {
			t.Errorf("Range left %d dirty entries", kv.ndirty)
		}
	}
}

func TestRangeStopsOnError(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv := mustKV(t, task, "s", StoreConfig{})
	for _, k := range []string{"a", "b", "c"} {
		must(t, kv.Put([]byte(k), []byte("v")))
	}
	stop := errors.New("stop")
	n := 0
	err := kv.Range(nil, nil, func(_, _ []byte) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Fatalf("Range = %v after %d calls, want stop after 1", err, n)
	}
}

// TestWritesDuringRange checks that fn may write to the store it ranges
// over, and that the iteration does not see those writes.
func TestWritesDuringRange(t *testing.T) {
	for _, cacheBytes := range []int{0, entryOverhead + 8, 1 << 20} {
		t.Run(fmt.Sprint("cache ", cacheBytes), func(t *testing.T) {
			db := openMem(t)
			task := db.NewTask("t")
			kv := mustKV(t, task, "s", StoreConfig{CacheBytes: cacheBytes})
			for _, k := range []string{"a", "b", "c"} {
				must(t, kv.Put([]byte(k), []byte("v")))
			}
			var seen []string
			must(t, kv.Range(nil, nil, func(k, _ []byte) error {
				seen = append(seen, string(k))
				if err := kv.Delete(k); err != nil {
					return err
				}
				return kv.Put(append([]byte("z"), k...), []byte("new"))
			}))
			if diff := cmp.Diff([]string{"a", "b", "c"}, seen); diff != "" {
				t.Errorf("Range saw (-want +got):\n%s", diff)
			}
			var after []string
			must(t, kv.Range(nil, nil, func(k, _ []byte) error {
				after = append(after, string(k))
				return nil
			}))
			if diff := cmp.Diff([]string{"za", "zb", "zc"}, after); diff != "" {
				t.Errorf("after Range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestAbortReturnsToLastCommit(t *testing.T) {
	for _, cacheBytes := range []int{0, 1 << 20} {
		t.Run(fmt.Sprint("cache ", cacheBytes), func(t *testing.T) {
			db := openMem(t)
			task := db.NewTask("t")
			kv := mustKV(t, task, "s", StoreConfig{CacheBytes: cacheBytes})
			must(t, kv.Put([]byte("a"), []byte("1")))
			must(t, kv.PutMeta("m", []byte("1")))
			commit(t, task, map[string]int64{"s": 1})
			must(t, kv.Put([]byte("a"), []byte("2")))
			must(t, kv.Put([]byte("b"), []byte("2")))
			must(t, kv.PutMeta("m", []byte("2")))
			must(t, task.Flush())
			must(t, kv.Delete([]byte("a")))
			task.Abort()
			got := map[string]string{}
			for _, k := range []string{"a", "b"} {
				if v, ok, err := kv.Get([]byte(k)); err != nil {
					t.Fatal(err)
				} else if ok {
					got[k] = string(v)
				}
			}
			m, _, err := kv.GetMeta("m")
			must(t, err)
			got["meta"] = string(m)
			if diff := cmp.Diff(map[string]string{"a": "1", "meta": "1"}, got); diff != "" {
				t.Errorf("after Abort (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRestore(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 1 << 20})
	if _, ok, err := kv.CommittedOffset(); ok || err != nil {
		t.Fatalf("CommittedOffset of a new store = %v, %v; want none", ok, err)
	}
	if _, _, err := kv.Get([]byte("a")); err != nil { // cached as absent
		t.Fatal(err)
	}
	must(t, kv.Restore([]ChangelogRecord{
		{Key: []byte("\x01gone"), Value: []byte("x")},
		{Key: []byte("\x01a"), Value: []byte("1")},
		{Key: []byte("\x00time"), Value: []byte("42")},
		{Key: []byte("\x01gone")}, // a delete
		{Key: []byte("\x01b"), Value: []byte("2")},
	}, 5))
	must(t, kv.Restore([]ChangelogRecord{{Key: []byte("\x01c"), Value: []byte{}}}, 6))

	off, ok, err := kv.CommittedOffset()
	if err != nil || !ok || off != 6 {
		t.Fatalf("CommittedOffset = %d, %v, %v; want 6", off, ok, err)
	}
	var got []kvPair
	must(t, kv.Range(nil, nil, func(k, v []byte) error {
		got = append(got, kvPair{string(k), string(v)})
		return nil
	}))
	if diff := cmp.Diff([]kvPair{{"a", "1"}, {"b", "2"}, {"c", ""}}, got); diff != "" {
		t.Errorf("restored data (-want +got):\n%s", diff)
	}
	if v, ok, err := kv.GetMeta("time"); err != nil || !ok || string(v) != "42" {
		t.Errorf("restored meta = %q, %v, %v", v, ok, err)
	}
	if v, ok, err := kv.Get([]byte("a")); err != nil || !ok || string(v) != "1" {
		t.Errorf("Get of a key cached as absent before Restore = %q, %v, %v; want 1", v, ok, err)
	}

	t.Run("refused with staged writes", func(t *testing.T) {
		must(t, kv.Put([]byte("x"), []byte("1")))
		if err := kv.Restore(nil, 7); err == nil {
			t.Error("Restore with a dirty cache succeeded")
		}
		must(t, task.Flush())
		if err := kv.Restore(nil, 7); err == nil {
			t.Error("Restore with staged writes succeeded")
		}
		must(t, task.Commit(nil))
		must(t, kv.Restore(nil, 7))
	})
	t.Run("refused with a bad namespace", func(t *testing.T) {
		for _, k := range []string{"", "\x02a"} {
			if err := kv.Restore([]ChangelogRecord{{Key: []byte(k), Value: []byte("v")}}, 8); err == nil {
				t.Errorf("Restore of key %q succeeded", k)
			}
		}
	})
}

func TestCommitErrors(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 1 << 20})
	tests := []struct {
		name    string
		prepare func()
		offsets map[string]int64
		wantErr string
	}{
		{"missing flush", func() { must(t, kv.Put([]byte("k"), []byte("v"))) }, nil, "unflushed"},
		{"unknown store", func() { must(t, task.Flush()) }, map[string]int64{"nope": 1}, "no store nope"},
		{"negative offset", func() {}, map[string]int64{"s": -1}, "negative offset"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.prepare()
			err := task.Commit(tt.offsets)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Commit = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
	// Nothing was applied.
	if _, ok, _ := kv.CommittedOffset(); ok {
		t.Error("a failed Commit wrote an offset")
	}
	must(t, task.Commit(map[string]int64{"s": 3}))
	if off, ok, err := kv.CommittedOffset(); err != nil || !ok || off != 3 {
		t.Fatalf("CommittedOffset = %d, %v, %v; want 3", off, ok, err)
	}
	commit(t, task, nil) // absent from the map: offset kept
	if off, _, _ := kv.CommittedOffset(); off != 3 {
		t.Fatalf("CommittedOffset after a commit without it = %d, want 3", off)
	}
}

func TestClosed(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 1 << 20})
	w, err := task.Window("w", 0, StoreConfig{})
	must(t, err)
	must(t, kv.Put([]byte("k"), []byte("v")))
	if err := db.Close(); err == nil || !strings.Contains(err.Error(), "still open") {
		t.Fatalf("DB.Close with an open task = %v", err)
	}
	must(t, task.Close())
	ops := map[string]func() error{
		"Get":             func() error { _, _, err := kv.Get([]byte("k")); return err },
		"Put":             func() error { return kv.Put([]byte("k"), []byte("v")) },
		"Delete":          func() error { return kv.Delete([]byte("k")) },
		"Range":           func() error { return kv.Range(nil, nil, func(_, _ []byte) error { return nil }) },
		"GetMeta":         func() error { _, _, err := kv.GetMeta("m"); return err },
		"PutMeta":         func() error { return kv.PutMeta("m", []byte("v")) },
		"CommittedOffset": func() error { _, _, err := kv.CommittedOffset(); return err },
		"Restore":         func() error { return kv.Restore(nil, 1) },
		"Window.Get":      func() error { _, _, err := w.Get([]byte("k"), 0); return err },
		"Window.Put":      func() error { return w.Put([]byte("k"), 0, []byte("v")) },
		"Window.Range":    func() error { return w.Range(0, 1, func(_ []byte, _ int64, _ []byte) error { return nil }) },
		"Task.KV":         func() error { _, err := task.KV("other", 0, StoreConfig{}); return err },
		"Task.Flush":      task.Flush,
		"Task.Commit":     func() error { return task.Commit(nil) },
		"Task.Close":      task.Close,
	}
	for name, op := range ops {
		if err := op(); !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
	task.Abort() // a no-op, not a panic

	// The closed task released its store partitions.
	task2 := db.NewTask("t2")
	kv2 := mustKV(t, task2, "s", StoreConfig{})
	if _, ok, err := kv2.Get([]byte("k")); ok || err != nil {
		t.Errorf("uncommitted write survived Close: %v, %v", ok, err)
	}
	must(t, task2.Close())
	must(t, db.Close())
	if err := db.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second DB.Close = %v, want ErrClosed", err)
	}
	if _, err := db.NewTask("late").KV("s", 0, StoreConfig{}); !errors.Is(err, ErrClosed) {
		t.Errorf("KV on a task of a closed DB = %v, want ErrClosed", err)
	}
}

func TestRegister(t *testing.T) {
	db := openMem(t)
	a, b := db.NewTask("a"), db.NewTask("b")
	mustKV(t, a, "s", StoreConfig{})
	tests := []struct {
		name      string
		task      *Task
		store     string
		partition int32
		cfg       StoreConfig
		wantErr   string
		wantIs    error
	}{
		{name: "empty name", task: a, wantErr: "name is empty"},
		{name: "negative partition", task: a, store: "x", partition: -1, wantErr: "negative partition"},
		{name: "negative cache", task: a, store: "x", cfg: StoreConfig{CacheBytes: -1}, wantErr: "negative CacheBytes"},
		{name: "same name twice in a task", task: a, store: "s", partition: 1, wantErr: "registered twice"},
		{name: "held by another task", task: b, store: "s", wantIs: ErrStoreInUse},
		{name: "other partition in another task", task: b, store: "s", partition: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.task.KV(tt.store, tt.partition, tt.cfg)
			switch {
			case tt.wantErr == "" && tt.wantIs == nil:
				if err != nil {
					t.Fatalf("KV = %v", err)
				}
			case tt.wantIs != nil:
				if !errors.Is(err, tt.wantIs) {
					t.Fatalf("KV = %v, want %v", err, tt.wantIs)
				}
			case err == nil || !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("KV = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPutNilValue(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv := mustKV(t, task, "s", StoreConfig{})
	w, err := task.Window("w", 0, StoreConfig{})
	must(t, err)
	for name, err := range map[string]error{
		"KV.Put":         kv.Put([]byte("k"), nil),
		"KV.PutMeta":     kv.PutMeta("m", nil),
		"Window.Put":     w.Put([]byte("k"), 1, nil),
		"Window.PutMeta": w.PutMeta("m", nil),
	} {
		if err == nil || !strings.Contains(err.Error(), "nil value") {
			t.Errorf("%s(nil) = %v, want a nil value error", name, err)
		}
	}
}

func TestDeleteStore(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	keep := mustKV(t, task, "s", StoreConfig{}) // partition 0
	other := db.NewTask("other")
	gone, err := other.KV("s", 1, StoreConfig{CacheBytes: 1 << 20})
	must(t, err)
	// A store whose name extends the deleted one's must survive.
	longer, err := other.KV("s\x00", 1, StoreConfig{})
	must(t, err)
	for _, kv := range []*KV{keep, gone, longer} {
		must(t, kv.Put([]byte("k"), []byte("v")))
		must(t, kv.PutMeta("m", []byte("v")))
	}
	commit(t, task, map[string]int64{"s": 10})
	commit(t, other, map[string]int64{"s": 10, "s\x00": 10})

	if err := db.DeleteStore("s", 1); !errors.Is(err, ErrStoreInUse) {
		t.Fatalf("DeleteStore of a registered store = %v, want ErrStoreInUse", err)
	}
	must(t, other.Close())
	must(t, db.DeleteStore("s", 1))

	other = db.NewTask("other")
	gone, err = other.KV("s", 1, StoreConfig{})
	must(t, err)
	longer, err = other.KV("s\x00", 1, StoreConfig{})
	must(t, err)
	type state struct {
		Data, Meta, Offset bool
	}
	look := func(kv *KV) state {
		_, d, err1 := kv.Get([]byte("k"))
		_, m, err2 := kv.GetMeta("m")
		_, o, err3 := kv.CommittedOffset()
		must(t, errors.Join(err1, err2, err3))
		return state{d, m, o}
	}
	got := map[string]state{"kept": look(keep), "deleted": look(gone), "longer name": look(longer)}
	want := map[string]state{"kept": {true, true, true}, "deleted": {}, "longer name": {true, true, true}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after DeleteStore (-want +got):\n%s", diff)
	}
}

func TestWindowStore(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	for _, cacheBytes := range []int{0, 1 << 20} {
		var r recorder
		w, err := task.Window(fmt.Sprint("w", cacheBytes), 0, r.config(cacheBytes))
		must(t, err)
		starts := []int64{math.MaxInt64, 1000, 0, -1, math.MinInt64, -1000, 1}
		for _, s := range starts {
			for _, k := range []string{"b", "a"} {
				must(t, w.Put([]byte(k), s, fmt.Appendf(nil, "%s@%d", k, s)))
			}
		}
		must(t, w.Delete([]byte("b"), 0))
		must(t, w.PutMeta("time", []byte("5")))
		if v, ok, err := w.Get([]byte("a"), -1000); err != nil || !ok || string(v) != "a@-1000" {
			t.Fatalf("Get(a, -1000) = %q, %v, %v", v, ok, err)
		}
		if _, ok, err := w.Get([]byte("b"), 0); err != nil || ok {
			t.Fatalf("Get of a deleted window = %v, %v", ok, err)
		}
		collect := func(from, to int64) []string {
			var got []string
			must(t, w.Range(from, to, func(k []byte, s int64, v []byte) error {
				got = append(got, fmt.Sprintf("%s@%d=%s", k, s, v))
				return nil
			}))
			return got
		}
		tests := []struct {
			from, to int64
			want     []string
		}{
			{math.MinInt64, math.MaxInt64, []string{
				"a@-9223372036854775808=a@-9223372036854775808", "b@-9223372036854775808=b@-9223372036854775808",
				"a@-1000=a@-1000", "b@-1000=b@-1000", "a@-1=a@-1", "b@-1=b@-1", "a@0=a@0",
				"a@1=a@1", "b@1=b@1", "a@1000=a@1000", "b@1000=b@1000"}},
			{-1, 1, []string{"a@-1=a@-1", "b@-1=b@-1", "a@0=a@0"}},
			{1000, math.MaxInt64, []string{"a@1000=a@1000", "b@1000=b@1000"}},
			{5, 5, nil},
			{5, -5, nil},
		}
		for _, tt := range tests {
			if diff := cmp.Diff(tt.want, collect(tt.from, tt.to)); diff != "" {
				t.Errorf("cache %d: Range(%d, %d) (-want +got):\n%s", cacheBytes, tt.from, tt.to, diff)
			}
		}
		// OnFlush receives window keys that DecodeWindowKey splits.
		for _, f := range r.flushes {
			if strings.Contains(f, "time") {
				t.Errorf("meta reached OnFlush: %s", f)
			}
		}
		must(t, task.Flush())
	}
}

func TestWindowOnFlushKey(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	var got []string
	w, err := task.Window("w", 0, StoreConfig{CacheBytes: 1 << 20, OnFlush: func(k, v, _ []byte) error {
		start, key, err := DecodeWindowKey(k)
		got = append(got, fmt.Sprintf("%s@%d=%s err %v", key, start, v, err))
		return nil
	}})
	must(t, err)
	must(t, w.Put([]byte("k"), -60_000, []byte("v")))
	must(t, task.Flush())
	if diff := cmp.Diff([]string{"k@-60000=v err <nil>"}, got); diff != "" {
		t.Errorf("OnFlush (-want +got):\n%s", diff)
	}
}

func TestWindowKey(t *testing.T) {
	tests := []struct {
		start int64
		key   string
	}{{0, ""}, {-1, "k"}, {1, "k"}, {math.MinInt64, "x"}, {math.MaxInt64, "\xff\x00"}}
	for _, tt := range tests {
		k := AppendWindowKey([]byte("prefix"), tt.start, []byte(tt.key))[len("prefix"):]
		start, key, err := DecodeWindowKey(k)
		if err != nil || start != tt.start || string(key) != tt.key {
			t.Errorf("round trip of (%d, %q) = (%d, %q, %v)", tt.start, tt.key, start, key, err)
		}
	}
	// Order by start, negatives first.
	order := []int64{math.MinInt64, -2, -1, 0, 1, math.MaxInt64}
	for i := 1; i < len(order); i++ {
		a, b := AppendWindowKey(nil, order[i-1], []byte("z")), AppendWindowKey(nil, order[i], []byte("a"))
		if bytes.Compare(a, b) >= 0 {
			t.Errorf("window key of %d does not sort before %d", order[i-1], order[i])
		}
	}
	for _, short := range [][]byte{nil, {}, {1, 2, 3, 4, 5, 6, 7}} {
		if _, _, err := DecodeWindowKey(short); err == nil {
			t.Errorf("DecodeWindowKey(%x) succeeded", short)
		}
	}
}

func FuzzDecodeWindowKey(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{1, 2, 3})
	f.Add(AppendWindowKey(nil, -5, []byte("key")))
	f.Fuzz(func(t *testing.T, k []byte) {
		start, key, err := DecodeWindowKey(k)
		if err != nil {
			if len(k) >= windowStartLen {
				t.Fatalf("DecodeWindowKey(%x) = %v", k, err)
			}
			return
		}
		if re := AppendWindowKey(nil, start, key); !bytes.Equal(re, k) {
			t.Fatalf("re-encoding %x gives %x", k, re)
		}
	})
}

// TestConcurrentTasks uses two tasks from two goroutines, for the race
// detector.
func TestConcurrentTasks(t *testing.T) {
	db := openMem(t)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range 2 {
		task := db.NewTask(fmt.Sprint("t", i))
		wg.Go(func() {
			errs[i] = func() error {
				kv, err := task.KV("s", int32(i), StoreConfig{CacheBytes: 4 << 10})
				if err != nil {
					return err
				}
				for n := range 2000 {
					k := fmt.Appendf(nil, "k%d", n%300)
					if err := kv.Put(k, fmt.Appendf(nil, "%d", n)); err != nil {
						return err
					}
					if _, _, err := kv.Get(k); err != nil {
						return err
					}
					if n%100 == 99 {
						if err := task.Flush(); err != nil {
							return err
						}
						if err := task.Commit(map[string]int64{"s": int64(n)}); err != nil {
							return err
						}
					}
				}
				off, _, err := kv.CommittedOffset()
				if err == nil && off != 1999 {
					err = fmt.Errorf("offset %d, want 1999", off)
				}
				if err == nil {
					err = task.Close()
				}
				return err
			}()
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("task %d: %v", i, err)
		}
	}
}

// TestCrashConsistency crashes the DB at random points, with and without
// a WAL, and checks that the recovered state is exactly the state of the
// commit whose offset the DB holds: offsets and data are in one batch.
func TestCrashConsistency(t *testing.T) {
	for _, disableWAL := range []bool{false, true} {
		t.Run(fmt.Sprint("DisableWAL=", disableWAL), func(t *testing.T) {
			seed := testSeed(t)
			rng := rand.New(rand.NewPCG(seed, 7))
			fs := vfs.NewCrashableMem()
			db, err := Open(Options{Dir: "db", FS: fs, DisableWAL: disableWAL, MemTableBytes: 1 << 20})
			must(t, err)
			task := db.NewTask("t")
			kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 2 << 10})
			// history[i] is the data after the commit with offset i.
			history := []map[string]string{{}}
			cur := map[string]string{}
			crashes, recoveredOffsets := 0, map[int64]bool{}
			for commitNo := int64(1); commitNo <= 300; commitNo++ {
				for range rng.IntN(40) {
					k := fmt.Sprintf("k%03d", rng.IntN(200))
					if rng.IntN(4) == 0 {
						must(t, kv.Delete([]byte(k)))
						delete(cur, k)
					} else {
						v := fmt.Sprintf("%d-%s", commitNo, strings.Repeat("x", rng.IntN(300)))
						must(t, kv.Put([]byte(k), []byte(v)))
						cur[k] = v
					}
				}
				commit(t, task, map[string]int64{"s": commitNo})
				history = append(history, maps(cur))
				if rng.IntN(10) == 0 {
					must(t, db.pdb.Flush())
				}
				if rng.IntN(15) != 0 {
					continue
				}
				crashes++
				crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), 1))})
				off, got := recoverState(t, crashed, disableWAL)
				recoveredOffsets[off] = true
				if off > commitNo {
					t.Fatalf("recovered offset %d after commit %d", off, commitNo)
				}
				if diff := cmp.Diff(history[off], got); diff != "" {
					t.Fatalf("crash after commit %d: state recovered with offset %d (-want +got):\n%s", commitNo, off, diff)
				}
			}
			t.Logf("%d crashes, recovered %d distinct offsets", crashes, len(recoveredOffsets))
			must(t, task.Close())
			must(t, db.Close())
		})
	}
}

// recoverState opens the DB on a crashed filesystem and returns the
// committed offset (0 if none) and the data of store s/0.
func recoverState(t *testing.T, fs vfs.FS, disableWAL bool) (int64, map[string]string) {
	t.Helper()
	db, err := Open(Options{Dir: "db", FS: fs, DisableWAL: disableWAL})
	must(t, err)
	defer func() { must(t, db.Close()) }()
	task := db.NewTask("recover")
	defer func() { must(t, task.Close()) }()
	kv := mustKV(t, task, "s", StoreConfig{})
	off, _, err := kv.CommittedOffset()
	must(t, err)
	got := map[string]string{}
	must(t, kv.Range(nil, nil, func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	}))
	return off, got
}

// TestCachedReadsDoNotAllocate checks the hot paths the engine relies on.
func TestCachedReadsDoNotAllocate(t *testing.T) {
	db := openMem(t)
	task := db.NewTask("t")
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 1 << 20})
	w, err := task.Window("w", 0, StoreConfig{CacheBytes: 1 << 20})
	must(t, err)
	key, val := []byte("key"), []byte("value")
	must(t, kv.Put(key, val))
	must(t, w.Put(key, 60_000, val))
	must(t, kv.PutMeta("time", val))
	tests := map[string]func(){
		"KV.Get hit":       func() { _, _, _ = kv.Get(key) },
		"KV.Put dirty hit": func() { _ = kv.Put(key, val) },
		"GetMeta hit":      func() { _, _, _ = kv.GetMeta("time") },
		"PutMeta":          func() { _ = kv.PutMeta("time", val) },
		"Window.Get hit":   func() { _, _, _ = w.Get(key, 60_000) },
		"Window.Put":       func() { _ = w.Put(key, 60_000, val) },
	}
	for name, fn := range tests {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocations, want 0", name, n)
		}
	}
}

// TestWindowStoreNewTaskMidWindow has a task take over a window store in
// the middle of its newest window, as after a rebalance, a restart or an
// abort, with caches that hold the whole window and caches that do not:
// every committed key reads back, and keys never written read absent.
func TestWindowStoreNewTaskMidWindow(t *testing.T) {
	for _, cacheBytes := range []int{64 << 10, 4 << 10, 600} {
		t.Run(fmt.Sprint(cacheBytes), func(t *testing.T) {
			db := openMem(t)
			first := db.NewTask("first")
			w, err := first.Window("w", 0, StoreConfig{CacheBytes: cacheBytes})
			must(t, err)
			want := map[string]string{}
			for _, start := range []int64{0, 60_000} {
				for i := range 40 {
					k := fmt.Sprintf("k%02d", i*2) // odd keys are never written
					v := fmt.Sprintf("%s@%d", k, start)
					must(t, w.Put([]byte(k), start, []byte(v)))
					want[v] = v
				}
			}
			must(t, first.Flush())
			must(t, first.Commit(nil))
			must(t, first.Close())

			next := db.NewTask("next")
			w, err = next.Window("w", 0, StoreConfig{CacheBytes: cacheBytes})
			must(t, err)
			for _, start := range []int64{60_000, 0} {
				for i := range 80 {
					k := fmt.Sprintf("k%02d", i)
					v, ok, err := w.Get([]byte(k), start)
					must(t, err)
					key := fmt.Sprintf("%s@%d", k, start)
					if _, written := want[key]; ok != written || (ok && string(v) != key) {
						t.Fatalf("Get(%s, %d) = %q, %v; written: %v", k, start, v, ok, written)
					}
				}
			}
		})
	}
}
