package benchmarks

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
)

// TestWA1LoopReference checks the hand-written loop against the plainest
// model: WA1's disorder (at most 2 s) is below its grace (5 s), so no
// event is late and the final results are the count of every key in
// every minute.
func TestWA1LoopReference(t *testing.T) {
	events := WA1Events(3, 300_000, 5_000)
	got, late := WA1Loop(events)
	if late != 0 {
		t.Errorf("%d late events, want 0", late)
	}
	type window struct {
		key   string
		start int64
	}
	counts := map[window]int64{}
	for _, e := range events {
		counts[window{e.Key, e.Timestamp - e.Timestamp%time.Minute.Milliseconds()}]++
	}
	var want []WA1Result
	for w, n := range counts {
		want = append(want, WA1Result{Key: w.key, Start: w.start, Count: n})
	}
	var wantFile, gotFile bytes.Buffer
	if err := WriteWA1Results(&wantFile, want); err != nil {
		t.Fatal(err)
	}
	if err := WriteWA1Results(&gotFile, got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wantFile.String(), gotFile.String()); diff != "" {
		t.Errorf("results (-model +loop):\n%s", diff)
	}
}

// TestWA1ResultsMatch runs WA1 on eddy (embedded log, two partitions)
// and in the hand-written loop, and requires byte-identical results
// files, as the benchmark's comparison of systems does with cmp.
func TestWA1ResultsMatch(t *testing.T) {
	const seed, n, k = 5, 200_000, 10_000
	ctx := context.Background()
	eng, err := engine.Open(WA1Topology("events", "counts"), engine.Options{InMemory: true, Bounded: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "events", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if err := loadWA1(ctx, log, "events", seed, n, k); err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	eddy, err := ReadWA1Results(ctx, log, "counts")
	if err != nil {
		t.Fatal(err)
	}
	loop, _ := WA1Loop(WA1Events(seed, n, k))
	var eddyFile, loopFile bytes.Buffer
	if err := WriteWA1Results(&eddyFile, eddy); err != nil {
		t.Fatal(err)
	}
	if err := WriteWA1Results(&loopFile, loop); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(eddyFile.Bytes(), loopFile.Bytes()) {
		t.Errorf("results differ: eddy %d windows (%d bytes), loop %d windows (%d bytes)\n%s",
			len(eddy), eddyFile.Len(), len(loop), loopFile.Len(), cmp.Diff(loopFile.String(), eddyFile.String()))
	}
	if len(loop) == 0 {
		t.Fatal("no results")
	}
}

// BenchmarkWA1Loop measures the hand-written loop on WA1's events, held
// in memory before the clock starts: the ceiling eddy's WA1 is compared
// with. -wa1.results FILE writes its results.
func BenchmarkWA1Loop(b *testing.B) {
	events := WA1Events(1, *wa1Events, *wa1Keys)
	for b.Loop() {
		start := time.Now()
		results, late := WA1Loop(events)
		elapsed := time.Since(start)
		b.ReportMetric(float64(len(events))/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(len(results)), "results")
		b.ReportMetric(float64(late), "late")
		if *wa1Results != "" {
			writeResultsFile(b, *wa1Results+".loop", results)
		}
	}
}

func writeResultsFile(b *testing.B, path string, results []WA1Result) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := WriteWA1Results(f, results); err != nil {
		b.Fatal(err)
	}
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
}
