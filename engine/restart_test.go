package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// countTopology re-keys records by value and counts them per new key.
func countTopology() *topology.Builder {
	b := topology.New("restart")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	topology.GroupBy(in, func(_, v string) string { return v }, serde.String()).
		Count(topology.Named("counts")).
		ToStream().To("out")
	return b
}

// countSequences reads the output of countTopology, run with the cache
// off, and checks that every key's counts are 1, 2, ..., n: a duplicate
// would repeat a count, a gap skip one. It returns n per key and the
// number of outputs.
func countSequences(t *testing.T, log broker.Log) (map[string]int64, int) {
	t.Helper()
	return countSequencesOf(t, log, "out")
}

func countSequencesOf(t *testing.T, log broker.Log, topic string) (map[string]int64, int) {
	t.Helper()
	got := map[string]int64{}
	outputs := 0
	for _, part := range readAll(t, log, topic) {
		for _, rec := range part {
			n, err := serde.Int64().Decode(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			k := string(rec.Key)
			if n != got[k]+1 {
				t.Fatalf("key %s: count %d follows %d (offset %d): duplicate or gap", k, n, got[k], rec.Offset)
			}
			got[k] = n
			outputs++
		}
	}
	return got, outputs
}

// TestStopRestartExactlyOnce stops the engine mid-stream several times
// while input keeps arriving, restarts it on the same state dir, and
// checks that with the cache off every key's output counts are exactly
// 1, 2, ..., n: a duplicate would repeat a count, a gap skip one.
func TestStopRestartExactlyOnce(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 2))
	dir := t.TempDir()
	ctx := context.Background()
	want := map[string]int64{}
	produced := 0
	open := func(bounded bool) *engine.Engine {
		eng, err := engine.Open(countTopology(), engine.Options{
			StateDir: dir, Bounded: bounded, Workers: 1 + r.IntN(2), CacheBytes: -1,
			CommitInterval: time.Duration(1+r.IntN(10)) * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	produce := func(eng *engine.Engine, n int) {
		recs := make([]broker.Record, n)
		for i := range recs {
			v := fmt.Sprintf("v%d", r.IntN(30))
			want[v]++
			recs[i] = broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "k%d", produced), Value: []byte(v), Timestamp: int64(produced)}
			produced++
		}
		if err := eng.Log().Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	stops := 0
	for i := range 6 {
		eng := open(false)
		if i == 0 {
			if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 3}); err != nil {
				t.Fatal(err)
			}
		}
		produce(eng, 500)
		runCtx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- eng.Run(runCtx) }()
		for range 3 {
			time.Sleep(time.Duration(r.IntN(15)) * time.Millisecond)
			produce(eng, 200)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		stops++
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
	}
	eng := open(true)
	defer eng.Close()
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got, _ := countSequences(t, eng.Log())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("final counts (-want +got):\n%s", diff)
	}
	t.Logf("%d records, %d stops", produced, stops)
}

// TestRestoreFromChangelog rewinds the local state to an older copy (so
// the engine must replay the changelog's tail), or deletes it (so it must
// replay the whole changelog), and checks counts continue exactly.
func TestRestoreFromChangelog(t *testing.T) {
	for _, mode := range []string{"tail", "wiped"} {
		t.Run(mode, func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 3))
			dir := t.TempDir()
			ctx := context.Background()
			want := map[string]int64{}
			produced := 0
			// run produces n records and processes all input, then stops.
			run := func(n int) {
				eng, err := engine.Open(countTopology(), engine.Options{StateDir: dir, Bounded: true, CacheBytes: -1})
				if err != nil {
					t.Fatal(err)
				}
				defer eng.Close()
				if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
					t.Fatal(err)
				}
				recs := make([]broker.Record, n)
				for i := range recs {
					v := fmt.Sprintf("v%d", r.IntN(10))
					want[v]++
					recs[i] = broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: []byte("k"), Value: []byte(v), Timestamp: int64(produced)}
					produced++
				}
				if err := eng.Log().Produce(ctx, recs...); err != nil {
					t.Fatal(err)
				}
				if err := eng.Run(ctx); err != nil {
					t.Fatal(err)
				}
			}
			run(300)
			old := t.TempDir()
			if err := os.CopyFS(old, os.DirFS(filepath.Join(dir, "state"))); err != nil {
				t.Fatal(err)
			}
			run(300)
			if err := os.RemoveAll(filepath.Join(dir, "state")); err != nil {
				t.Fatal(err)
			}
			if mode == "tail" {
				if err := os.CopyFS(filepath.Join(dir, "state"), os.DirFS(old)); err != nil {
					t.Fatal(err)
				}
			}
			run(300)
			eng, err := engine.Open(countTopology(), engine.Options{StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			got, _ := countSequences(t, eng.Log())
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("final counts (-want +got):\n%s", diff)
			}
		})
	}
}
