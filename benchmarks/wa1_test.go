package benchmarks

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
)

var (
	wa1Events     = flag.Int("wa1.events", 1_000_000, "WA1: events")
	wa1Keys       = flag.Int("wa1.keys", 100_000, "WA1: keys")
	wa1Partitions = flag.Int("wa1.partitions", 2, "WA1: input partitions")
)

// BenchmarkWA1 runs WA1 exactly once on the embedded log on disk. The
// input is loaded before the clock starts; the reported time covers
// processing every event and committing the final results.
func BenchmarkWA1(b *testing.B) {
	ctx := context.Background()
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		eng, err := engine.Open(WA1Topology("events", "counts"), engine.Options{StateDir: dir, Bounded: true})
		if err != nil {
			b.Fatal(err)
		}
		log := eng.Log()
		if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "events", Partitions: int32(*wa1Partitions)}); err != nil {
			b.Fatal(err)
		}
		load := time.Now()
		batch := make([]broker.Record, 0, 10000)
		flush := func() {
			if err := log.Produce(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
		WA1(1, *wa1Events, *wa1Keys, func(e WA1Event) {
			batch = append(batch, broker.Record{Topic: "events", Partition: broker.AnyPartition,
				Key: []byte(e.Key), Value: append([]byte(nil), e.Value...), Timestamp: e.Timestamp})
			if len(batch) == cap(batch) {
				flush()
			}
		})
		flush()
		b.Logf("loaded %d events in %s", *wa1Events, time.Since(load).Round(time.Millisecond))
		b.StartTimer()
		start := time.Now()
		if err := eng.Run(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		m := eng.Metrics()
		if m.RecordsIn != int64(*wa1Events) {
			b.Fatalf("processed %d events, want %d", m.RecordsIn, *wa1Events)
		}
		b.ReportMetric(float64(*wa1Events)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(m.RecordsOut), "results")
		if err := eng.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
