package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// metricValues flattens metric families into "name{label="value",...}"
// (labels sorted, app left out) to value; a histogram gives name_count and
// name_sum. Every metric must carry app="<app>".
func metricValues(t *testing.T, mfs []*dto.MetricFamily, app string) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "eddy_") {
			continue // the Go runtime's and the process's, on /metrics
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			gotApp := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "app" {
					gotApp = l.GetValue()
					continue
				}
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			if gotApp != app {
				t.Errorf("%s: app label %q, want %q", mf.GetName(), gotApp, app)
			}
			slices.Sort(labels)
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[mf.GetName()+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[mf.GetName()+"_sum"] = m.GetHistogram().GetSampleSum()
			default:
				t.Errorf("%s: unexpected type %s", mf.GetName(), mf.GetType())
			}
		}
	}
	return out
}

// gather returns the engine's metrics as metricValues does.
func gather(t *testing.T, g prometheus.Gatherer, app string) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return metricValues(t, mfs, app)
}

// subset returns the entries of got whose keys want has (absent ones as
// -1), for a cmp.Diff with want.
func subset(want, got map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k := range want {
		v, ok := got[k]
		if !ok {
			v = -1
		}
		out[k] = v
	}
	return out
}

// metricsTopology counts records per key in tumbling windows without
// grace (so that a record older than its partition's stream-time window
// is late) and, through a repartition topic, per value parity.
func metricsTopology() *topology.Builder {
	b := topology.New("mt")
	in := topology.StreamFrom(b, "in", serde.String(), serde.Int64())
	topology.CountWindows(in.GroupByKey().WindowedBy(window.Tumbling(10*time.Millisecond).Grace(0)), topology.Named("windows")).
		ToStream().To("out")
	topology.GroupBy(in, func(_ string, v int64) string { return fmt.Sprint("p", v%2) }, serde.String()).
		Count(topology.Named("parity"))
	return b
}

// produceMetricsInput writes n records with timestamps 0..n-1 to each of
// partitions 0 and 1 of "in", then one late record (timestamp 0) to each.
func produceMetricsInput(t *testing.T, log broker.Log, n int) int {
	t.Helper()
	var recs []broker.Record
	for p := range int32(2) {
		for i := range n {
			recs = append(recs, broker.Record{Topic: "in", Partition: p, Key: fmt.Appendf(nil, "k%d", p), Value: be64(int64(i)), Timestamp: int64(i)})
		}
		recs = append(recs, broker.Record{Topic: "in", Partition: p, Key: fmt.Appendf(nil, "k%d", p), Value: be64(7), Timestamp: 0})
	}
	if err := log.Produce(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
	return len(recs)
}

// TestMetrics runs a bounded topology with a repartition topic, two
// stores and two late records, and checks the Prometheus metrics against
// the input, the topics' contents and Engine.Metrics. With aborted commits
// (the log aborts a share of the transactions) the record counts must not
// change: only committed work is counted.
func TestMetrics(t *testing.T) {
	for _, abort := range []bool{false, true} {
		t.Run(fmt.Sprintf("aborts=%v", abort), func(t *testing.T) { testMetrics(t, abort) })
	}
}

func testMetrics(t *testing.T, abort bool) {
	ctx := context.Background()
	raw, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	var log broker.Log = raw
	var aborting *abortingLog
	if abort {
		aborting = &abortingLog{Log: raw, r: rand.New(rand.NewPCG(1, 2)), share: 0.3}
		log = aborting
	}
	eng, err := engine.Open(metricsTopology(), engine.Options{InMemory: true, Log: log, Bounded: true,
		Workers: 2, CommitInterval: time.Nanosecond, MaxPollRecords: 20}) // many commits
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	input := produceMetricsInput(t, log, n)

	// Without Options.HTTPAddr, no server.
	var mu sync.Mutex
	addrs := map[string]bool{}
	engine.SetCrashHook(func(point string) {
		if point == "commit.after-state" {
			mu.Lock()
			addrs[eng.HTTPAddr()] = true
			mu.Unlock()
		}
	})
	defer engine.SetCrashHook(nil)
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if eng.HTTPAddr() != "" || len(addrs) != 1 || !addrs[""] {
		t.Errorf("HTTPAddr without Options.HTTPAddr: during Run %v, after %q; want empty", addrs, eng.HTTPAddr())
	}

	m := eng.Metrics()
	got := gather(t, eng.Gatherer(), "mt")
	repartition := "mt-parity-repartition"
	outs := 0
	for _, p := range readAll(t, log, "out") {
		outs += len(p)
	}
	want := map[string]float64{
		`eddy_records_consumed_total{topic="in"}`:                  float64(input),
		`eddy_records_consumed_total{topic="` + repartition + `"}`: float64(input),
		`eddy_records_produced_total{topic="` + repartition + `"}`: float64(input),
		`eddy_records_produced_total{topic="out"}`:                 float64(outs),
		`eddy_late_records_total`:                                  2,
		`eddy_skipped_records_total`:                               0,
		`eddy_dead_letter_records_total`:                           0,
		`eddy_commits_total`:                                       float64(m.Commits),
		`eddy_commit_seconds_count`:                                float64(m.Commits),
		`eddy_checkpoints_total`:                                   float64(m.Checkpoints),
		`eddy_restored_records_total`:                              float64(m.RestoredRecords),
		`eddy_restore_remaining_records`:                           0,
		// Run returned: the workers withdrew their tasks' lag and caches.
		`eddy_tasks`: 0,
	}
	if diff := gocmp.Diff(want, subset(want, got)); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	if m.RecordsIn != int64(2*input) || m.RecordsOut != int64(input+outs) || m.LateRecords != 2 {
		t.Errorf("Metrics() = %+v, want RecordsIn %d, RecordsOut %d, LateRecords 2", m, 2*input, input+outs)
	}
	if abort && aborting.aborted == 0 {
		t.Errorf("no commit was aborted (%d commits)", m.Commits)
	}
	if got[`eddy_process_batch_seconds_count`] == 0 || got[`eddy_commit_seconds_sum`] <= 0 {
		t.Errorf("no processing or commit time observed: %v", got)
	}
	for _, s := range []string{"windows", "parity"} {
		hits, misses := got[fmt.Sprintf(`eddy_store_cache_hits_total{store=%q}`, s)], got[fmt.Sprintf(`eddy_store_cache_misses_total{store=%q}`, s)]
		if hits == 0 || misses == 0 {
			t.Errorf("store %s: %v cache hits, %v misses; want some of each", s, hits, misses)
		}
	}
	// The parity count reads its store once per record, and misses once
	// per key (p0, p1); after an abort its new task reads a cold cache
	// again.
	hits, misses := got[`eddy_store_cache_hits_total{store="parity"}`], got[`eddy_store_cache_misses_total{store="parity"}`]
	if !abort && (hits+misses != float64(input) || misses != 2) {
		t.Errorf("parity store: %v hits, %v misses; want %d reads, 2 misses", hits, misses, input)
	}
	// Every store partition with data has a size (0: it is small enough
	// to be in the memtable still); none has lag or a cache any more.
	wantSeries := []string{
		`eddy_store_disk_bytes{partition="0",store="windows"} 0`,
		`eddy_store_disk_bytes{partition="1",store="windows"} 0`,
	}
	for p, recs := range readAll(t, log, repartition) {
		if len(recs) > 0 {
			wantSeries = append(wantSeries, fmt.Sprintf(`eddy_store_disk_bytes{partition="%d",store="parity"} 0`, p))
		}
	}
	var gotSeries []string
	for k, v := range got {
		for _, name := range []string{"eddy_store_disk_bytes{", "eddy_consumer_lag_records{", "eddy_store_cache_bytes{"} {
			if strings.HasPrefix(k, name) {
				gotSeries = append(gotSeries, fmt.Sprint(k, " ", v))
			}
		}
	}
	slices.Sort(wantSeries)
	slices.Sort(gotSeries)
	if diff := gocmp.Diff(wantSeries, gotSeries); diff != "" {
		t.Errorf("store and lag series (-want +got):\n%s", diff)
	}
}
