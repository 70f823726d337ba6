package engine_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
)

// TestCheckpointInterval runs an engine until its output is complete and
// its commits are done, and checks how many of them were checkpoints: all
// with CheckpointInterval < 0, none with an hour. It then crashes it (a
// copy of its file system, with every write kept) and restarts it there:
// the state DB holds the checkpointed state at most, the restart restores
// the rest from the changelog, and the counts come out right.
func TestCheckpointInterval(t *testing.T) {
	seed := testSeed(t)
	// The output is visible once the log committed; the commit ends when
	// the state is applied (or deferred). The crash waits for that.
	var logCommits, stateCommits atomic.Int64
	engine.SetCrashHook(func(point string) {
		switch point {
		case "commit.after-log":
			logCommits.Add(1)
		case "commit.after-state":
			stateCommits.Add(1)
		}
	})
	defer engine.SetCrashHook(nil)
	for _, c := range []struct {
		name     string
		interval time.Duration
		// pad lengthens the counted values; with the cache off, 40 MB of
		// them fill the staged batches past their bound.
		pad        int
		cacheBytes int
		// want tells whether the checkpoints in commits are right.
		want func(checkpoints, commits int64) bool
	}{
		{"every commit", -1, 0, 0, func(ck, co int64) bool { return ck == co }},
		{"deferred", time.Hour, 0, 0, func(ck, co int64) bool { return ck == 0 }},
		{"staged batch full", time.Hour, 20_000, -1, func(ck, co int64) bool { return ck > 0 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 21))
			mem := vfs.NewCrashableMem()
			opts := engine.Options{
				StateDir: "d", FS: mem, Workers: 1 + r.IntN(2),
				CommitInterval: time.Millisecond, CheckpointInterval: c.interval, CacheBytes: c.cacheBytes,
			}
			eng, err := engine.Open(countTopology(), opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			var recs []broker.Record
			for i := range 2000 {
				v := fmt.Sprint("v", r.IntN(50), strings.Repeat("x", c.pad))
				want[v]++
				recs = append(recs, broker.Record{Topic: "in", Partition: broker.AnyPartition,
					Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v), Timestamp: int64(i)})
			}
			if err := eng.Log().Produce(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			deadline := time.Now().Add(time.Minute)
			for !cmp.Equal(want, lastCounts(t, eng.Log())) || stateCommits.Load() != logCommits.Load() {
				if time.Now().After(deadline) {
					t.Fatalf("seed %d: the output is not complete after a minute", seed)
				}
				time.Sleep(10 * time.Millisecond)
			}
			m := eng.Metrics()
			if m.Commits == 0 || !c.want(m.Checkpoints, m.Commits) {
				t.Errorf("seed %d: %d checkpoints in %d commits", seed, m.Checkpoints, m.Commits)
			}
			crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 100, RNG: rand.New(rand.NewPCG(seed, 22))})
			cancel()
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Fatal(err)
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}

			opts.FS, opts.Bounded = crashed, true
			restarted, err := engine.Open(countTopology(), opts)
			if err != nil {
				t.Fatal(err)
			}
			defer restarted.Close()
			if err := restarted.Run(context.Background()); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, lastCounts(t, restarted.Log())); diff != "" {
				t.Errorf("seed %d: final counts (-want +got):\n%s", seed, diff)
			}
			t.Logf("seed %d: %d checkpoints in %d commits; the restart restored %d changelog records",
				seed, m.Checkpoints, m.Commits, restarted.Metrics().RestoredRecords)
		})
	}
}

// lastCounts returns the last count countTopology output for each key.
func lastCounts(t *testing.T, log broker.Log) map[string]int64 {
	t.Helper()
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
	return got
}
