package state

import (
	"fmt"
	"testing"
)

// benchKeys returns n 8-byte keys.
func benchKeys(n int) [][]byte {
	keys := make([][]byte, n)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%07d", i)
	}
	return keys
}

// BenchmarkKVPutCached updates hot keys in a cache large enough to hold
// them, flushing and committing every 10k updates like a commit interval.
func BenchmarkKVPutCached(b *testing.B) {
	for _, nkeys := range []int{100, 10_000} {
		for _, onFlush := range []bool{false, true} {
			b.Run(fmt.Sprintf("keys=%d/onflush=%v", nkeys, onFlush), func(b *testing.B) {
				db := openMem(b)
				task := db.NewTask("bench")
				cfg := StoreConfig{CacheBytes: 64 << 20, Changelog: func(_, _ []byte) {}}
				if onFlush {
					cfg.OnFlush = func(_, _, _ []byte) error { return nil }
				}
				kv := mustKV(b, task, "s", cfg)
				keys := benchKeys(nkeys)
				val := make([]byte, 8)
				b.SetBytes(int64(len(keys[0]) + len(val)))
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					if err := kv.Put(keys[i%nkeys], val); err != nil {
						b.Fatal(err)
					}
					if i%10_000 == 9_999 {
						commit(b, task, map[string]int64{"s": int64(i)})
					}
				}
			})
		}
	}
}

// BenchmarkKVGetHit reads keys held by the cache.
func BenchmarkKVGetHit(b *testing.B) {
	for _, nkeys := range []int{100, 10_000} {
		b.Run(fmt.Sprintf("keys=%d", nkeys), func(b *testing.B) {
			db := openMem(b)
			task := db.NewTask("bench")
			kv := mustKV(b, task, "s", StoreConfig{CacheBytes: 64 << 20})
			keys := benchKeys(nkeys)
			for _, k := range keys {
				must(b, kv.Put(k, make([]byte, 8)))
			}
			commit(b, task, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, ok, err := kv.Get(keys[i%nkeys]); !ok || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkKVGetMiss reads committed keys through the staged batch and the
// DB, with the cache disabled: the cost the cache saves.
func BenchmarkKVGetMiss(b *testing.B) {
	db := openMem(b)
	task := db.NewTask("bench")
	kv := mustKV(b, task, "s", StoreConfig{})
	keys := benchKeys(10_000)
	for _, k := range keys {
		must(b, kv.Put(k, make([]byte, 8)))
	}
	commit(b, task, nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		if _, ok, err := kv.Get(keys[i%len(keys)]); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}

// BenchmarkWindowPutCached updates windowed aggregates, as a windowed count
// does: Get then Put of (key, window start).
func BenchmarkWindowPutCached(b *testing.B) {
	db := openMem(b)
	task := db.NewTask("bench")
	w, err := task.Window("w", 0, StoreConfig{CacheBytes: 64 << 20, Changelog: func(_, _ []byte) {}})
	must(b, err)
	keys := benchKeys(1000)
	val := make([]byte, 8)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		k, start := keys[i%len(keys)], int64(i/100_000)*60_000
		if _, _, err := w.Get(k, start); err != nil {
			b.Fatal(err)
		}
		if err := w.Put(k, start, val); err != nil {
			b.Fatal(err)
		}
		if i%10_000 == 9_999 {
			commit(b, task, map[string]int64{"w": int64(i)})
		}
	}
}
