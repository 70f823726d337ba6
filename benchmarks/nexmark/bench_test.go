package nexmark

import (
	"context"
	"flag"
	"testing"
	"time"
)

var (
	benchEvents     = flag.Int("nexmark.events", 1_000_000, "BenchmarkNexmark: events per run")
	benchSeed       = flag.Uint64("nexmark.seed", 1, "BenchmarkNexmark: seed of the events")
	benchPartitions = flag.Int("nexmark.partitions", 0, "BenchmarkNexmark: input partitions (0: as many as workers)")
	benchWorkers    = flag.Int("nexmark.workers", 0, "BenchmarkNexmark: engine workers (0: GOMAXPROCS)")
)

// BenchmarkNexmark runs each query with Run: exactly once on the embedded
// log on disk, the events loaded before the clock starts. It reports
// events/s (events over the time to process and commit them all) and
// events/core-s (events over the CPU time spent meanwhile), and the
// run's output records and late records. ns/op is the processing time,
// loading excluded.
//
//	go test -run '^$' -bench Nexmark -benchtime 1x ./benchmarks/nexmark/ -nexmark.events 1000000
func BenchmarkNexmark(b *testing.B) {
	ctx := context.Background()
	for _, name := range Queries() {
		b.Run(name, func(b *testing.B) {
			var elapsed, cpu time.Duration
			var events, outputs, late int64
			for b.Loop() {
				res, err := Run(ctx, name, Config{
					Events: *benchEvents, Seed: *benchSeed, Partitions: *benchPartitions,
					Workers: *benchWorkers, StateDir: b.TempDir(),
				})
				if err != nil {
					b.Fatal(err)
				}
				b.Logf("%s: %d events loaded in %s, processed in %s, %s CPU, %d outputs, %d late",
					name, res.Events, res.Load.Round(time.Millisecond), res.Elapsed.Round(time.Millisecond),
					res.CPU.Round(time.Millisecond), res.Outputs, res.Late)
				elapsed += res.Elapsed
				cpu += res.CPU
				events += res.Events
				outputs += res.Outputs
				late += res.Late
			}
			n := float64(b.N)
			b.ReportMetric(float64(elapsed.Nanoseconds())/n, "ns/op")
			b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
			if cpu > 0 {
				b.ReportMetric(float64(events)/cpu.Seconds(), "events/core-s")
			}
			b.ReportMetric(float64(outputs)/n, "outputs")
			b.ReportMetric(float64(late)/n, "late")
		})
	}
}
