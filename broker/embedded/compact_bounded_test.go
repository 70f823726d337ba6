package embedded

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
)

var compactSeed = flag.Uint64("compact.seed", 0, "TestCompactionBoundedMemory: seed; 0 picks one (printed)")

// TestCompactionBoundedMemory compacts with a key map far smaller than the
// keys (Options.CompactBytes): each Clean maps a part of the records appended
// since the last one, and after enough Cleans the partition holds exactly
// the latest record of every key, in offset order, as a compaction with
// an unbounded map would leave it. Random keys, batches and Clean points.
func TestCompactionBoundedMemory(t *testing.T) {
	seed := *compactSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -compact.seed=%d)", seed, seed)
	r := rand.New(rand.NewPCG(seed, 0))
	maxKeys := 1 + r.IntN(8)
	l := openTest(t, Options{CompactBytes: int64(maxKeys * compactKeyBytes)})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "cl", Partitions: 1, Compacted: true})
	latest := map[string]int64{} // key: offset of its latest record
	var nilKeys []int64          // offsets of records without a key
	off := int64(0)
	for range 30 {
		batch := make([]broker.Record, 1+r.IntN(10))
		for i := range batch {
			key := fmt.Sprint("k", r.IntN(40))
			batch[i] = rec("cl", 0, key, fmt.Sprint(off))
			if r.IntN(10) == 0 {
				batch[i].Key = nil
				nilKeys = append(nilKeys, off)
			} else {
				latest[key] = off
			}
			off++
		}
		if err := l.Produce(ctx, batch...); err != nil {
			t.Fatal(err)
		}
		if r.IntN(3) == 0 {
			if err := l.Clean(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Each Clean maps at least one batch of the rest: 30 make it whole.
	for range 30 {
		if err := l.Clean(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int64]bool{}
	for _, o := range latest {
		want[o] = true
	}
	for _, o := range nilKeys {
		want[o] = true
	}
	var got []int64
	for _, rec := range readAll(t, l, tp("cl", 0)) {
		if string(rec.Value) != fmt.Sprint(rec.Offset) {
			t.Fatalf("offset %d holds the value of record %s", rec.Offset, rec.Value)
		}
		got = append(got, rec.Offset)
	}
	var wantOffsets []int64
	for o := range off {
		if want[o] {
			wantOffsets = append(wantOffsets, o)
		}
	}
	if diff := cmp.Diff(wantOffsets, got); diff != "" {
		t.Errorf("offsets kept with a map of %d keys (-want +got):\n%s", maxKeys, diff)
	}
}
