package state

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func openBudget(t testing.TB, budget int64) *DB {
	t.Helper()
	db, err := Open(Options{InMemory: true, WriteCacheBytes: budget})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// partitionKV registers partition p of the KV store "s" with task.
func partitionKV(t testing.TB, task *Task, p int32, cfg StoreConfig) *KV {
	t.Helper()
	kv, err := task.KV("s", p, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// cacheSum returns the sum of the caches' sizes as Stats counts them and
// as the budget charges them.
func cacheSum(stores []*KV) (bytes int, charged int64) {
	for _, s := range stores {
		bytes += s.Stats().Bytes
		charged += s.charged
	}
	return bytes, charged
}

// TestSharedBudgetBoundsManyStores opens many store partitions, each in a
// task of its own, with a shared budget far below what their own
// CacheBytes allow, writes and reads random keys, and checks after every
// operation that the caches together stay within the budget (plus the
// entry the operation added, which it evicts next time), that the budget's
// account matches the stores' charges, and that every read sees the last
// write.
func TestSharedBudgetBoundsManyStores(t *testing.T) {
	tests := []struct {
		name             string
		stores           int
		budget           int64
		valueLen, keys   int
		ops, commitEvery int
	}{
		{name: "64 stores, 16 KiB", stores: 64, budget: 16 << 10, valueLen: 8, keys: 200, ops: 20000, commitEvery: 500},
		{name: "64 stores, budget of a few entries", stores: 64, budget: 1000, valueLen: 8, keys: 50, ops: 5000, commitEvery: 100},
		{name: "8 stores, large values", stores: 8, budget: 64 << 10, valueLen: 2000, keys: 100, ops: 5000, commitEvery: 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed := testSeed(t)
			rng := rand.New(rand.NewPCG(seed, 1))
			db := openBudget(t, tc.budget)
			var tasks []*Task
			var stores []*KV
			for i := range tc.stores {
				task := db.NewTask(fmt.Sprint("0_", i))
				t.Cleanup(func() { _ = task.Close() })
				tasks = append(tasks, task)
				stores = append(stores, partitionKV(t, task, int32(i), StoreConfig{CacheBytes: 1 << 20, OnFlush: func(_, _, _ []byte) error { return nil }}))
			}
			want := make([]map[string]string, tc.stores)
			for i := range want {
				want[i] = map[string]string{}
			}
			maxEntry := int64(entryOverhead + budgetEntryExtra + 2*tc.valueLen + 16)
			for op := range tc.ops {
				i := rng.IntN(tc.stores)
				s := stores[i]
				key := fmt.Sprint("k", rng.IntN(tc.keys))
				if rng.IntN(3) == 0 {
					v, ok, err := s.Get([]byte(key))
					must(t, err)
					if w, wok := want[i][key]; ok != wok || string(v) != w {
						t.Fatalf("op %d: store %d: Get(%s) = %q, %v; want %q, %v", op, i, key, v, ok, w, wok)
					}
				} else {
					v := strings.Repeat(string(rune('a'+rng.IntN(26))), tc.valueLen)
					must(t, s.Put([]byte(key), []byte(v)))
					want[i][key] = v
				}
				bytes, charged := cacheSum(stores)
				used, limit := db.WriteCacheUsage()
				if used != charged {
					t.Fatalf("op %d: the budget counts %d bytes, the stores charged %d", op, used, charged)
				}
				if limit != tc.budget {
					t.Fatalf("op %d: WriteCacheUsage limit %d, want %d", op, limit, tc.budget)
				}
				if bound := tc.budget + tc.budget/8 + maxEntry; used > bound || int64(bytes) > bound {
					t.Fatalf("op %d: the caches hold %d bytes (charged %d), over 9/8 of the budget %d by more than an entry (%d)", op, bytes, used, tc.budget, maxEntry)
				}
				if op%tc.commitEvery == tc.commitEvery-1 {
					for _, task := range tasks {
						commit(t, task, nil)
					}
				}
			}
			// After a Commit, while the budget is tight, no store holds
			// more than its fair share: idle stores give back.
			for _, task := range tasks {
				commit(t, task, nil)
			}
			if used, _ := db.WriteCacheUsage(); used > tc.budget-tc.budget/8 {
				share := tc.budget / int64(tc.stores)
				for i, s := range stores {
					if s.charged > share {
						t.Errorf("after Commit store %d charges %d, more than its fair share %d of a tight budget (%d of %d used)", i, s.charged, share, used, tc.budget)
					}
				}
			}
			// Closing the tasks gives everything back.
			for _, task := range tasks {
				must(t, task.Close())
			}
			if used, _ := db.WriteCacheUsage(); used != 0 {
				t.Errorf("after every task closed, the budget counts %d bytes, want 0", used)
			}
			if n := db.budget.stores.Load(); n != 0 {
				t.Errorf("after every task closed, the budget counts %d stores, want 0", n)
			}
		})
	}
}

// TestSharedBudgetConcurrent writes from several goroutines, each with a
// task of its own, as the engine's workers do: the budget holds within
// one entry per goroutine, for the race detector too.
func TestSharedBudgetConcurrent(t *testing.T) {
	const budget, goroutines, ops = 32 << 10, 4, 5000
	db := openBudget(t, budget)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var maxSeen int64
	for g := range goroutines {
		task := db.NewTask(fmt.Sprint("0_", g))
		kv := partitionKV(t, task, int32(g), StoreConfig{CacheBytes: budget})
		wg.Go(func() {
			defer task.Close()
			for i := range ops {
				if err := kv.Put(fmt.Appendf(nil, "k%d", i%700), []byte("value")); err != nil {
					t.Error(err)
					return
				}
				used, _ := db.WriteCacheUsage()
				mu.Lock()
				maxSeen = max(maxSeen, used)
				mu.Unlock()
				if i%200 == 199 {
					if err := task.Flush(); err != nil {
						t.Error(err)
						return
					}
					if err := task.Commit(nil); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if slack := int64(goroutines * (entryOverhead + budgetEntryExtra + 16)); maxSeen > budget+budget/8+slack {
		t.Errorf("the caches held %d bytes at most, over 9/8 of the budget %d by more than an entry per goroutine (%d)", maxSeen, budget, slack)
	}
	if used, _ := db.WriteCacheUsage(); used != 0 {
		t.Errorf("after every task closed, the budget counts %d bytes, want 0", used)
	}
}

// TestSharedBudgetTrim checks that a store holding more than its fair
// share of a tight budget gives the excess back at Commit, so that an idle
// store does not starve an active one; and that Abort returns a store's
// charge.
func TestSharedBudgetTrim(t *testing.T) {
	const budget = 8 << 10
	db := openBudget(t, budget)
	idleTask, activeTask := db.NewTask("idle"), db.NewTask("active")
	defer idleTask.Close()
	defer activeTask.Close()
	idle := mustKV(t, idleTask, "s", StoreConfig{CacheBytes: budget})
	active := partitionKV(t, activeTask, 1, StoreConfig{CacheBytes: budget})
	for i := range 200 {
		must(t, idle.Put(fmt.Appendf(nil, "k%03d", i), []byte("v")))
	}
	if used, _ := db.WriteCacheUsage(); used < budget*7/8 {
		t.Fatalf("the idle store alone charges %d of %d: the test needs it near the budget", used, budget)
	}
	commit(t, idleTask, nil)
	if idle.charged > budget/2 {
		t.Errorf("after Commit the idle store charges %d, more than its fair share %d of a tight budget", idle.charged, budget/2)
	}
	// The active store now keeps what it writes, up to its share.
	for i := range 20 {
		must(t, active.Put(fmt.Appendf(nil, "k%03d", i), []byte("v")))
	}
	if st := active.Stats(); st.Entries != 20 || st.Evicted != 0 {
		t.Errorf("the active store holds %d entries and evicted %d, want 20 and 0", st.Entries, st.Evicted)
	}
	activeTask.Abort()
	if active.charged != 0 || active.Stats().Bytes != 0 {
		t.Errorf("after Abort the store charges %d (%d bytes), want 0", active.charged, active.Stats().Bytes)
	}
	if used, _ := db.WriteCacheUsage(); used != idle.charged {
		t.Errorf("the budget counts %d, the idle store alone charges %d", used, idle.charged)
	}
}

// TestSharedBudgetOff checks that without WriteCacheBytes nothing is
// charged: each store is bounded by its CacheBytes alone.
func TestSharedBudgetOff(t *testing.T) {
	db := openBudget(t, 0)
	task := db.NewTask("t")
	defer task.Close()
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: 1 << 20})
	for i := range 100 {
		must(t, kv.Put(fmt.Appendf(nil, "k%d", i), []byte("v")))
	}
	if used, limit := db.WriteCacheUsage(); used != 0 || limit != 0 {
		t.Errorf("WriteCacheUsage = %d, %d; want 0, 0", used, limit)
	}
	if st := kv.Stats(); st.Entries != 100 || st.Evicted != 0 {
		t.Errorf("%d entries, %d evicted; want 100 and 0", st.Entries, st.Evicted)
	}
	if _, err := Open(Options{InMemory: true, WriteCacheBytes: -1}); err == nil || !strings.Contains(err.Error(), "WriteCacheBytes -1 is negative") {
		t.Errorf("Open with WriteCacheBytes -1: %v", err)
	}
}

func TestSplitMemory(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name              string
		total             int64
		embedded, caching bool
		want              MemorySplit
		err               string
	}{
		{name: "no budget", total: 0, embedded: true, caching: true},
		{name: "negative", total: -1, err: "negative"},
		{name: "below the minimum", total: 31 * mib, embedded: true, caching: true, err: "below the minimum"},
		{name: "embedded log, caching", total: 1000 * mib, embedded: true, caching: true, want: MemorySplit{
			StateCacheBytes: 360 * mib, StateMemTableBytes: 90 * mib,
			LogCacheBytes: 160 * mib, LogMemTableBytes: 40 * mib, LogCompactBytes: 25 * mib,
			WriteCacheBytes: 100 * mib, StagedBytes: 100 * mib / 6}},
		{name: "another log", total: 1000 * mib, embedded: false, caching: true, want: MemorySplit{
			StateCacheBytes: 560 * mib, StateMemTableBytes: 140 * mib,
			WriteCacheBytes: 100 * mib, StagedBytes: 100 * mib / 6}},
		{name: "no caches", total: 1000 * mib, embedded: true, caching: false, want: MemorySplit{
			StateCacheBytes: 520 * mib, StateMemTableBytes: 130 * mib,
			LogCacheBytes: 160 * mib, LogMemTableBytes: 40 * mib, LogCompactBytes: 25 * mib,
			StagedBytes: 100 * mib / 6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SplitMemory(tc.total, tc.embedded, tc.caching)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("SplitMemory(%d) = %v, want an error with %q", tc.total, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("SplitMemory(%d) (-want +got):\n%s", tc.total, diff)
			}
			// What may be resident: Pebble's caches (memtables inside)
			// and a quarter more for C's allocator, and twice the heap
			// parts (GC headroom), the staged batches' three times again
			// (their index, a checkpoint's copy).
			if sum := (got.StateCacheBytes+got.LogCacheBytes)*5/4 + 2*(got.WriteCacheBytes+got.LogCompactBytes+3*got.StagedBytes); sum > tc.total {
				t.Errorf("the parts add up to %d, over the budget %d", sum, tc.total)
			}
			// Three memtables fit in their cache.
			if 3*got.StateMemTableBytes > uint64(got.StateCacheBytes) || 3*got.LogMemTableBytes > uint64(got.LogCacheBytes) {
				t.Errorf("three memtables do not fit in their cache: %+v", got)
			}
		})
	}
}

// TestEvictedEntriesAreDropped checks that the dirty and pending lists do
// not keep entries the cache evicted reachable until the next flush or
// applied commit: they would hold memory past the cache's bound.
func TestEvictedEntriesAreDropped(t *testing.T) {
	db := openBudget(t, 0)
	task := db.NewTask("t")
	defer task.Close()
	// The cache holds fewer than 20 entries, so fewer are dirty or
	// pending: the lists may hold up to 2*20+256 entries, plus the one
	// appended.
	const entries, bound = 20, 2*20 + 257
	kv := mustKV(t, task, "s", StoreConfig{CacheBytes: entries * entryOverhead, OnFlush: func(_, _, _ []byte) error { return nil }})
	// Writes without a flush: evicted dirty entries.
	for i := range 5000 {
		must(t, kv.Put(fmt.Appendf(nil, "a%d", i), []byte("v")))
		if n := len(kv.dirty); n > bound {
			t.Fatalf("write %d: the dirty list holds %d entries, %d of them dirty", i, n, kv.ndirty)
		}
	}
	commit(t, task, nil)
	// Deferred commits: the flushed entries stay pending until evicted.
	for i := range 5000 {
		must(t, kv.Put(fmt.Appendf(nil, "b%d", i), []byte("v")))
		if i%5 == 4 {
			must(t, task.Flush())
			must(t, task.CommitDeferred(nil))
			if n := len(kv.pending); n > bound {
				t.Fatalf("write %d: the pending list holds %d entries, %d of them pending", i, n, kv.npending)
			}
		}
	}
	commit(t, task, nil)
}
