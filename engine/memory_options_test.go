package engine_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

func memoryLog(t *testing.T) *embedded.Log {
	t.Helper()
	log, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return log
}

// TestOptionsMemoryBytes checks how MemoryBytes and CacheBytes combine:
// the default CacheBytes becomes the budget's write-back part, an explicit
// one must fit in it, and a budget must be at least 32 MiB.
func TestOptionsMemoryBytes(t *testing.T) {
	const mib = 1 << 20
	other := memoryLog(t)
	split := func(embedded bool) int {
		m, err := state.SplitMemory(256*mib, embedded, true)
		if err != nil {
			t.Fatal(err)
		}
		return int(m.WriteCacheBytes)
	}
	tests := []struct {
		name      string
		opts      engine.Options
		wantCache int    // CacheBytes after EnsureDefaults
		err       string // "" for a valid configuration
	}{
		{name: "no budget", opts: engine.Options{}, wantCache: 8 * mib},
		{name: "budget, embedded log", opts: engine.Options{MemoryBytes: 256 * mib}, wantCache: split(true)},
		{name: "budget, another log", opts: engine.Options{MemoryBytes: 256 * mib, Log: other}, wantCache: split(false)},
		{name: "budget, explicit CacheBytes within it", opts: engine.Options{MemoryBytes: 256 * mib, CacheBytes: mib}, wantCache: mib},
		{name: "budget, caching off", opts: engine.Options{MemoryBytes: 256 * mib, CacheBytes: -1}, wantCache: -1},
		{name: "budget, CacheBytes above its write-back part", opts: engine.Options{MemoryBytes: 256 * mib, CacheBytes: 64 * mib},
			wantCache: 64 * mib, err: fmt.Sprintf("CacheBytes 67108864 exceeds the write-back caches' part of MemoryBytes 268435456 (%d)", split(true))},
		{name: "negative budget", opts: engine.Options{MemoryBytes: -1}, wantCache: 8 * mib, err: "memory budget -1 is negative"},
		{name: "budget below the minimum", opts: engine.Options{MemoryBytes: 16 * mib}, wantCache: 8 * mib, err: "below the minimum of 33554432 (32 MiB)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.EnsureDefaults()
			if opts.CacheBytes != tc.wantCache {
				t.Errorf("CacheBytes after EnsureDefaults = %d, want %d", opts.CacheBytes, tc.wantCache)
			}
			err := opts.Validate()
			if tc.err == "" && err != nil {
				t.Errorf("Validate = %v, want nil", err)
			}
			if tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("Validate = %v, want an error with %q", err, tc.err)
			}
			opts = tc.opts
			opts.InMemory = true
			eng, err := engine.Open(countTopology(), opts)
			if err == nil {
				eng.Close()
			}
			if (err == nil) != (tc.err == "") {
				t.Errorf("Open = %v, want error %v", err, tc.err != "")
			}
		})
	}
}

// TestOptionsMemoryBudgetRun counts a state larger than the budget's
// write-back caches with two workers under the smallest budget: the
// caches evict, the workers checkpoint early to bound the evicted writes
// they hold, and every key's final count is still right.
func TestOptionsMemoryBudgetRun(t *testing.T) {
	const keys, passes = 60_000, 2
	ctx := context.Background()
	log := memoryLog(t)
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	var recs []broker.Record
	for p := range passes {
		for i := range keys {
			v := fmt.Sprint("v", (i*7919+p)%keys)
			recs = append(recs, broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: []byte(v), Value: []byte(v)})
		}
	}
	if err := log.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	// Checkpoints are due once an hour: those the run makes before its
	// end are the budget's.
	eng, err := engine.Open(countTopology(), engine.Options{InMemory: true, Log: log, Bounded: true, Workers: 2,
		MemoryBytes: 32 << 20, CheckpointInterval: time.Hour, CommitInterval: time.Millisecond, MaxPollRecords: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The run's end makes about one checkpoint per task and worker (5
	// when the budget's bound on staged writes is off); the evictions of
	// 60k keys through a 3 MiB cache pass the bound several times more.
	t.Logf("%d checkpoints", eng.Metrics().Checkpoints)
	if m := eng.Metrics(); m.Checkpoints < 9 {
		t.Errorf("%d checkpoints, want at least 9: the staged writes' bound does not make workers checkpoint early", m.Checkpoints)
	}
	got := map[string]int64{}
	for _, part := range readAll(t, log, "out") {
		for _, rec := range part {
			n, err := serde.Int64().Decode(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			got[string(rec.Key)] = n
		}
	}
	bad := 0
	for i := range keys {
		if k := fmt.Sprint("v", i); got[k] != passes {
			if bad++; bad < 5 {
				t.Errorf("key %s: final count %d, want %d", k, got[k], passes)
			}
		}
	}
	if diff := cmp.Diff(keys, len(got)); diff != "" {
		t.Errorf("keys counted (-want +got):\n%s", diff)
	}
}
