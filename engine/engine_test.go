package engine_test

import (
	"cmp"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: random)")

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -seed=%d)", seed, seed)
	return seed
}

// readAll returns every committed record of topic, partition by partition.
func readAll(t *testing.T, log broker.Log, topic string) [][]broker.Record {
	t.Helper()
	ctx := context.Background()
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]broker.Record, desc[topic].Partitions)
	for p := range out {
		tp := broker.TopicPartition{Topic: topic, Partition: int32(p)}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			t.Fatal(err)
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error {
			r.Key = slices.Clone(r.Key)
			r.Value = slices.Clone(r.Value)
			out[p] = append(out[p], r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func be64(v int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(v)) }

// windowRow is one windowed result.
type windowRow struct {
	Key        string
	Start, End int64
	Count      int64
	Time       int64
}

// TestWindowedCountReference runs filter, re-key and windowed count on
// random input with late and out-of-order records, and checks the output
// against a naive model fed the repartition topic in its committed order
// (the order the counting tasks saw).
func TestWindowedCountReference(t *testing.T) {
	for i := range 6 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { testWindowedCountReference(t, testSeed(t), nil) })
	}
}

// testWindowedCountReference runs on log, or on the in-memory embedded log
// when log is nil.
func testWindowedCountReference(t *testing.T, seed uint64, log broker.Log) {
	r := rand.New(rand.NewPCG(seed, 1))
	parts := int32(1 + r.IntN(4))
	size := time.Duration(10+r.IntN(50)) * time.Millisecond
	spec := window.Tumbling(size)
	if r.IntN(2) == 0 {
		spec = window.Hopping(size, time.Duration(1+r.Int64N(int64(size/time.Millisecond)))*time.Millisecond)
	}
	spec = spec.Grace(time.Duration(r.IntN(30)) * time.Millisecond)
	final := r.IntN(2) == 0
	cache := []int{-1, 64, 1 << 20}[r.IntN(3)]
	workers := 1 + r.IntN(3)
	t.Logf("partitions=%d window=%s final=%v cache=%d workers=%d", parts, spec, final, cache, workers)

	b := topology.New("wc")
	in := topology.StreamFrom(b, "in", serde.String(), serde.Int64())
	w := topology.GroupBy(in.Filter(func(_ string, v int64) bool { return v%5 != 0 }),
		func(_ string, v int64) string { return fmt.Sprintf("g%d", v%7) }, serde.String()).
		WindowedBy(spec)
	if final {
		w = w.EmitOnWindowClose()
	}
	topology.CountWindows(w, topology.Named("counts")).ToStream().To("out")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Bounded: true, Workers: workers,
		CacheBytes: cache, CommitInterval: time.Duration(1+r.IntN(20)) * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log = eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	n := 200 + r.IntN(2000)
	var recs, input []broker.Record
	ts := int64(0)
	for i := range n {
		ts += r.Int64N(4)
		rts := ts
		if r.IntN(10) == 0 {
			rts = max(0, ts-r.Int64N(80)) // out of order, sometimes late
		}
		recs = append(recs, broker.Record{Topic: "in", Partition: broker.AnyPartition,
			Key: fmt.Appendf(nil, "k%d", r.IntN(20)), Value: be64(int64(r.IntN(1000))), Timestamp: rts})
		input = append(input, recs[len(recs)-1])
		if len(recs) == 100 || i == n-1 {
			if err := log.Produce(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The naive model, per repartition partition in offset order.
	type wkey struct {
		key   string
		start int64
	}
	want := map[wkey]*windowRow{}
	var updates []windowRow // every accepted update, in order, per partition
	var late int64          // records dropped from at least one window
	for _, part := range readAll(t, log, "wc-counts-repartition") {
		stream := int64(math.MinInt64)
		for _, rec := range part {
			stream = max(stream, rec.Timestamp)
			dropped := false
			for s := int64(0); s <= rec.Timestamp; s += spec.AdvanceMs() {
				if rec.Timestamp >= s+spec.SizeMs() {
					continue
				}
				if s+spec.SizeMs() <= stream-spec.GraceMs() {
					dropped = true
					continue
				}
				k := wkey{string(rec.Key), s}
				row := want[k]
				if row == nil {
					row = &windowRow{Key: k.key, Start: s, End: s + spec.SizeMs()}
					want[k] = row
				}
				row.Count++
				row.Time = max(row.Time, rec.Timestamp)
				updates = append(updates, *row)
			}
			if dropped {
				late++
			}
		}
	}
	var got []windowRow
	for _, part := range readAll(t, log, "out") {
		for _, rec := range part {
			k, err := serde.Windowed(serde.String(), spec.SizeMs()).Decode(rec.Key)
			if err != nil {
				t.Fatal(err)
			}
			c, err := serde.Int64().Decode(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, windowRow{k.Key, k.Start, k.End, c, rec.Timestamp})
		}
	}
	byWindow := func(a, b windowRow) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start), cmp.Compare(a.Count, b.Count))
	}
	switch {
	case final:
		// Each window exactly once, with its final count and max timestamp.
		var rows []windowRow
		for _, row := range want {
			rows = append(rows, *row)
		}
		slices.SortFunc(rows, byWindow)
		slices.SortFunc(got, byWindow)
		if diff := gocmp.Diff(rows, got); diff != "" {
			t.Fatalf("final results (-want +got):\n%s", diff)
		}
	case cache < 0:
		// No cache: every accepted update is emitted.
		slices.SortFunc(updates, byWindow)
		slices.SortFunc(got, byWindow)
		if diff := gocmp.Diff(updates, got); diff != "" {
			t.Fatalf("updates (-want +got):\n%s", diff)
		}
	default:
		// Cached: updates are throttled, but the last one of every window is its final value.
		last := map[wkey]windowRow{}
		for _, row := range got {
			if prev, ok := last[wkey{row.Key, row.Start}]; ok && row.Count <= prev.Count {
				t.Fatalf("window %s@%d: count %d after %d", row.Key, row.Start, row.Count, prev.Count)
			}
			last[wkey{row.Key, row.Start}] = row
		}
		for k, row := range want {
			if diff := gocmp.Diff(*row, last[k]); diff != "" {
				t.Fatalf("last update of %v (-want +got):\n%s", k, diff)
			}
		}
		if len(last) != len(want) {
			t.Fatalf("got updates for %d windows, want %d", len(last), len(want))
		}
	}
	if got := eng.Metrics().LateRecords; got != late {
		t.Errorf("late records: got %d, want %d", got, late)
	}
	// The repartition topic holds exactly the filtered, re-keyed input.
	type kvt struct {
		Key   string
		Value int64
		Time  int64
	}
	var wantRe, gotRe []kvt
	for _, rec := range input {
		v := int64(binary.BigEndian.Uint64(rec.Value))
		if v%5 != 0 {
			wantRe = append(wantRe, kvt{fmt.Sprintf("g%d", v%7), v, rec.Timestamp})
		}
	}
	for _, part := range readAll(t, log, "wc-counts-repartition") {
		for _, rec := range part {
			gotRe = append(gotRe, kvt{string(rec.Key), int64(binary.BigEndian.Uint64(rec.Value)), rec.Timestamp})
		}
	}
	byAll := func(a, b kvt) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value), cmp.Compare(a.Time, b.Time))
	}
	slices.SortFunc(wantRe, byAll)
	slices.SortFunc(gotRe, byAll)
	if diff := gocmp.Diff(wantRe, gotRe); diff != "" {
		t.Errorf("repartition topic (-want +got):\n%s", diff)
	}
}
