package benchmarks

import (
	"context"
	"flag"
	"syscall"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
)

var (
	wa1Events     = flag.Int("wa1.events", 1_000_000, "WA1: events")
	wa1Keys       = flag.Int("wa1.keys", 100_000, "WA1: keys")
	wa1Partitions = flag.Int("wa1.partitions", 2, "WA1: input partitions")
	wa1Results    = flag.String("wa1.results", "", "WA1: write the final results to FILE.eddy (BenchmarkWA1) and FILE.loop (BenchmarkWA1Loop), sorted, one \"key<TAB>windowStartMillis<TAB>count\" a line")
)

// loadWA1 produces WA1's events into topic.
func loadWA1(ctx context.Context, log broker.Log, topic string, seed uint64, n, k int) error {
	batch := make([]broker.Record, 0, 10000)
	var err error
	flush := func() {
		if err == nil {
			err = log.Produce(ctx, batch...)
		}
		batch = batch[:0]
	}
	WA1(seed, n, k, func(e WA1Event) {
		batch = append(batch, broker.Record{Topic: topic, Partition: broker.AnyPartition,
			Key: []byte(e.Key), Value: append([]byte(nil), e.Value...), Timestamp: e.Timestamp})
		if len(batch) == cap(batch) {
			flush()
		}
	})
	flush()
	return err
}

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
		if err := loadWA1(ctx, log, "events", 1, *wa1Events, *wa1Keys); err != nil {
			b.Fatal(err)
		}
		b.Logf("loaded %d events in %s", *wa1Events, time.Since(load).Round(time.Millisecond))
		b.StartTimer()
		start, cpu0 := time.Now(), cpuTime()
		if err := eng.Run(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed, cpu := time.Since(start), cpuTime()-cpu0
		b.StopTimer()
		b.ReportMetric(float64(*wa1Events)/cpu.Seconds(), "events/cpu-s")
		m := eng.Metrics()
		if m.RecordsIn != int64(*wa1Events) {
			b.Fatalf("processed %d events, want %d", m.RecordsIn, *wa1Events)
		}
		b.ReportMetric(float64(*wa1Events)/elapsed.Seconds(), "events/s")
		b.ReportMetric(float64(m.RecordsOut), "results")
		if *wa1Results != "" {
			results, err := ReadWA1Results(ctx, log, "counts")
			if err != nil {
				b.Fatal(err)
			}
			writeResultsFile(b, *wa1Results+".eddy", results)
		}
		if err := eng.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// cpuTime returns the CPU time the process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
