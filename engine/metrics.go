package engine

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/state"
)

// The engine's Prometheus metrics live in a registry of the Engine's own,
// never the default one: several engines may run in one process (tests
// do), each with metrics of the same names. Every metric has the namespace
// "eddy" and the constant label app, the application id.
//
// Nothing here costs a synchronized operation per record. A task counts
// the records of each source and sink topic in plain integers that only
// its worker's goroutine touches; the worker adds them to the Prometheus
// counters after each successful commit, so the counters only ever show
// committed work (what an aborted transaction did is never counted). Per
// poll, the worker observes one processing time; per commit, one commit
// time and the stores' cache counters. Consumer lag and cache sizes are
// published by the workers and read at scrape time; store sizes are read
// from the state DB at scrape time.

// lagRefresh bounds how often a worker reads the end offsets of its input
// partitions to compute consumer lag, on a log where that is a request to
// a broker (Kafka). On the embedded log it is a map lookup: lag is
// refreshed at every commit.
const lagRefresh = 5 * time.Second

// lagTimeout bounds the reads of end offsets for one refresh.
const lagTimeout = 5 * time.Second

// observer is what the engine tells about itself: its Prometheus metrics,
// and the health and readiness its HTTP server reports (see http.go). Its
// methods are safe for concurrent use, except where they say which
// goroutine calls them.
type observer struct {
	e   *Engine
	reg *prometheus.Registry
	// lagEvery is lagRefresh, or 0 on the embedded log.
	lagEvery time.Duration

	recordsIn, recordsOut                  *prometheus.CounterVec // by topic
	processSeconds, commitSeconds          prometheus.Histogram
	restored                               prometheus.Counter
	restoreRemaining                       prometheus.Gauge
	cacheHits, cacheMisses, cacheEvictions *prometheus.CounterVec // by store

	// reports are what each worker last published, by worker id.
	mu struct {
		sync.Mutex
		reports map[int]workerReport
	}

	// starting counts the workers that have not yet been through their
	// first assignment (tasks created and restored); restoring, the
	// stores whose changelog is being replayed. Both are read by /readyz.
	starting, restoring atomic.Int32
	// run is the state of Run: runIdle, runRunning or runDone.
	run atomic.Int32
	// failure is the first error a worker failed with (*error).
	failure atomic.Pointer[error]

	// addr is the address the HTTP server listens on, once it does.
	addr atomic.Pointer[string]
}

const (
	runIdle int32 = iota
	runRunning
	runDone
)

// workerReport is what a worker publishes for scrapes: the consumer lag of
// its input partitions and the caches of its tasks' stores, as of at.
type workerReport struct {
	at     time.Time
	tasks  int
	lag    map[broker.TopicPartition]int64
	caches []cacheReport
}

type cacheReport struct {
	store     string
	partition int32
	bytes     int
}

func newObserver(e *Engine) *observer {
	o := &observer{e: e, reg: prometheus.NewRegistry(), lagEvery: lagRefresh}
	if _, ok := e.log.(*embedded.Log); ok {
		o.lagEvery = 0
	}
	o.mu.reports = map[int]workerReport{}
	const ns = "eddy"
	o.recordsIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "records_consumed_total",
		Help: "Committed input records taken by the sources of the topology, by topic (stream, table and repartition topics), including those that did not decode.",
	}, []string{"topic"})
	o.recordsOut = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "records_produced_total",
		Help: "Committed records written by the sinks of the topology, by topic (output and repartition topics; not changelogs or dead letters).",
	}, []string{"topic"})
	o.processSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "process_batch_seconds",
		Help:    "Time a worker took to process the records of one poll (up to MaxPollRecords); the sum is the time spent processing.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15), // 100µs to 1.6s
	})
	o.commitSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: ns, Name: "commit_seconds",
		Help:    "Time a worker took to commit: the log transaction (output, changelogs, offsets) and applying the stores' state.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15),
	})
	o.restored = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: ns, Name: "restored_records_total",
		Help: "Changelog records replayed into stores when tasks started.",
	})
	o.restoreRemaining = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: ns, Name: "restore_remaining_records",
		Help: "Changelog records (offsets) still to replay by the restores under way.",
	})
	o.cacheHits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "store_cache_hits_total",
		Help: "Store reads answered by the store's write-back cache, by store.",
	}, []string{"store"})
	o.cacheMisses = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "store_cache_misses_total",
		Help: "Store reads the write-back cache could not answer, by store.",
	}, []string{"store"})
	o.cacheEvictions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: ns, Name: "store_cache_evictions_total",
		Help: "Entries evicted from the stores' write-back caches to stay within CacheBytes, by store.",
	}, []string{"store"})

	m := &e.metrics
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	reg := prometheus.WrapRegistererWith(prometheus.Labels{"app": e.topo.App()}, o.reg)
	reg.MustRegister(
		o.recordsIn, o.recordsOut, o.processSeconds, o.commitSeconds,
		o.restored, o.restoreRemaining, o.cacheHits, o.cacheMisses, o.cacheEvictions,
		counter("commits_total", "Commits of the workers' transactions.", &m.commits),
		counter("checkpoints_total", "Checkpoints: the tasks' committed state written to the state DB.", &m.checkpoints),
		counter("late_records_total", "Records dropped by windowed operators and joins because their window had closed.", &m.late),
		counter("skipped_records_total", "Input records skipped because they did not decode (DecodeSkip), or dropped by a stateful operator for their nil key.", &m.skipped),
		counter("dead_letter_records_total", "Input records that did not decode, written to the dead-letter topic.", &m.deadLetters),
		&scrapeCollector{o: o,
			lag: prometheus.NewDesc(ns+"_consumer_lag_records",
				"Records of an input partition past the position of the task reading it (log end offset minus position), as of the worker's last refresh.",
				[]string{"topic", "partition"}, nil),
			cache: prometheus.NewDesc(ns+"_store_cache_bytes",
				"Size of a store partition's write-back cache, as counted against CacheBytes.",
				[]string{"store", "partition"}, nil),
			disk: prometheus.NewDesc(ns+"_store_disk_bytes",
				"Estimated bytes a store partition takes in the state DB's files (memtable excluded), for every store partition the state DB holds.",
				[]string{"store", "partition"}, nil),
			tasks: prometheus.NewDesc(ns+"_tasks",
				"Tasks the workers of this instance run.", nil, nil),
		},
	)
	return o
}

// Gatherer returns the engine's Prometheus metrics, for an application to
// serve or to merge with its own (prometheus.Gatherers), or for a test to
// read. It holds the engine's metrics only; the HTTP server's /metrics
// adds the Go runtime's and the process's. Safe for concurrent use; valid
// from Open on.
func (e *Engine) Gatherer() prometheus.Gatherer { return e.obs.reg }

// failed records the first error a worker failed with: /healthz reports it.
func (o *observer) failed(err error) {
	o.failure.CompareAndSwap(nil, &err)
}

// err returns the first error a worker failed with, or nil.
func (o *observer) err() error {
	if p := o.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// workerObs is a worker's bookkeeping for the observer. Its worker's
// goroutine only uses it.
type workerObs struct {
	started bool      // through its first assignment
	lagAt   time.Time // last lag refresh
	lag     map[broker.TopicPartition]int64
}

// started marks the worker as through its first assignment: its tasks are
// created and restored, so it counts as ready (see /readyz).
func (w *worker) started() {
	if !w.obs.started {
		w.obs.started = true
		w.e.obs.starting.Add(-1)
	}
}

// processed observes the time the worker took to process the n records of
// a poll, from start.
func (w *worker) processed(start time.Time, n int) {
	if n > 0 {
		w.e.obs.processSeconds.Observe(time.Since(start).Seconds())
	}
}

// report publishes the worker's consumer lag (refreshed when due) and its
// stores' cache sizes, and adds the caches' counters to the Prometheus
// ones. It runs at the start of every commit, so an idle worker reports
// too.
func (w *worker) report(ctx context.Context) {
	o := w.e.obs
	now := time.Now()
	if now.Sub(w.obs.lagAt) >= o.lagEvery {
		w.obs.lagAt = now
		w.obs.lag = w.readLag(ctx)
	}
	var caches []cacheReport
	for _, t := range w.tasks {
		caches = t.counts.foldStores(t, caches)
	}
	o.mu.Lock()
	o.mu.reports[w.id] = workerReport{at: now, tasks: len(w.tasks), lag: w.obs.lag, caches: caches}
	o.mu.Unlock()
}

// unreport withdraws the worker's report when it has closed its tasks for
// good (it stops): it no longer runs them, so it reports no lag or cache
// for them.
func (w *worker) unreport() {
	o := w.e.obs
	o.mu.Lock()
	delete(o.mu.reports, w.id)
	o.mu.Unlock()
}

// readLag reads the end offset of every input partition of the worker's
// tasks, and returns how far each task's position is behind it. A
// partition whose end does not read is left out, until the next refresh.
func (w *worker) readLag(ctx context.Context) map[broker.TopicPartition]int64 {
	ctx, cancel := context.WithTimeout(ctx, lagTimeout)
	defer cancel()
	lag := make(map[broker.TopicPartition]int64, len(w.byTP))
	for _, t := range w.tasks {
		for tp, pos := range t.pos {
			b, err := w.e.log.Offsets(ctx, tp)
			if err != nil {
				w.logger.Debug("consumer lag: read end offset", "partition", tp.String(), "error", err)
				continue
			}
			lag[tp] = max(b.End-pos, 0)
		}
	}
	return lag
}

// foldCounts adds the record counts of the commit that just succeeded to
// the Prometheus counters, and observes the commit's duration from start.
func (w *worker) foldCounts(start time.Time) {
	for _, t := range w.tasks {
		t.counts.fold()
	}
	w.e.obs.commitSeconds.Observe(time.Since(start).Seconds())
}

// taskCounts are a task's counts since its last commit. Only its worker's
// goroutine touches them.
type taskCounts struct {
	in     []*countedSource
	out    []sinkCount
	stores map[string]*storeCounts
}

// countedSource counts the records a source of the graph takes.
type countedSource struct {
	operators.RawProcessor
	n int64
	c prometheus.Counter
}

// ProcessRaw implements operators.RawProcessor.
func (s *countedSource) ProcessRaw(ctx *operators.Context, r *operators.RawRecord) error {
	s.n++
	return s.RawProcessor.ProcessRaw(ctx, r)
}

// sinkCount counts the records sent to one topic.
type sinkCount struct {
	topic string
	n     int64
	c     prometheus.Counter
}

// storeCounts remembers a store's cache counters as last added to the
// Prometheus ones; CacheStats count from the store's registration.
type storeCounts struct {
	hits, misses, evicted    uint64
	cHits, cMisses, cEvicted prometheus.Counter
}

// countSources wraps the sources of t's graph so that they count the
// records they take.
func (t *task) countSources() {
	for topic, src := range t.graph.Sources {
		c := &countedSource{RawProcessor: src, c: t.w.e.obs.recordsIn.WithLabelValues(topic)}
		t.graph.Sources[topic] = c
		t.counts.in = append(t.counts.in, c)
	}
}

// send is the task's operators.Context.Send: it counts r for its topic and
// hands it to the worker. A task's sinks write a handful of topics, whose
// names are the same strings every time: the scan is a few comparisons.
func (t *task) send(r operators.RawRecord) {
	c := &t.counts
	i := 0
	for i < len(c.out) && c.out[i].topic != r.Topic {
		i++
	}
	if i == len(c.out) {
		c.out = append(c.out, sinkCount{topic: r.Topic, c: t.w.e.obs.recordsOut.WithLabelValues(r.Topic)})
	}
	c.out[i].n++
	t.w.send(r)
}

// fold adds the records counted since the last commit to the Prometheus
// counters and resets the counts.
func (c *taskCounts) fold() {
	for _, s := range c.in {
		if s.n != 0 {
			s.c.Add(float64(s.n))
			s.n = 0
		}
	}
	for i := range c.out {
		if s := &c.out[i]; s.n != 0 {
			s.c.Add(float64(s.n))
			s.n = 0
		}
	}
}

// foldStores adds what t's stores' caches counted since the last call to
// the Prometheus counters, and appends their sizes to caches.
func (c *taskCounts) foldStores(t *task, caches []cacheReport) []cacheReport {
	o := t.w.e.obs
	for name, s := range t.stores {
		var st state.CacheStats
		switch s := s.(type) {
		case windowRaw:
			st = s.ws.Stats()
		case interface{ Stats() state.CacheStats }: // *state.KV
			st = s.Stats()
		default:
			continue
		}
		sc := c.stores[name]
		if sc == nil {
			if c.stores == nil {
				c.stores = map[string]*storeCounts{}
			}
			sc = &storeCounts{
				cHits:    o.cacheHits.WithLabelValues(name),
				cMisses:  o.cacheMisses.WithLabelValues(name),
				cEvicted: o.cacheEvictions.WithLabelValues(name),
			}
			c.stores[name] = sc
		}
		addDelta(sc.cHits, &sc.hits, st.Hits)
		addDelta(sc.cMisses, &sc.misses, st.Misses)
		addDelta(sc.cEvicted, &sc.evicted, st.Evicted)
		caches = append(caches, cacheReport{store: name, partition: t.id.partition, bytes: st.Bytes})
	}
	return caches
}

// addDelta adds to c what cur counts past *last, and moves *last to cur.
func addDelta(c prometheus.Counter, last *uint64, cur uint64) {
	if cur > *last {
		c.Add(float64(cur - *last))
	}
	*last = cur
}

// restoreProgress tracks one store's restore for the restore metrics and
// readiness: the gauge of remaining records goes up by the changelog span
// at the start and down as batches are applied.
type restoreProgress struct {
	o        *observer
	pos, end int64
}

// restoreStarted records that a store starts to replay its changelog from
// offset from to end.
func (o *observer) restoreStarted(from, end int64) *restoreProgress {
	o.restoring.Add(1)
	o.restoreRemaining.Add(float64(end - from))
	return &restoreProgress{o: o, pos: from, end: end}
}

// applied records that n records up to offset next were restored.
func (p *restoreProgress) applied(n int, next int64) {
	p.o.restored.Add(float64(n))
	p.o.restoreRemaining.Sub(float64(next - p.pos))
	p.pos = next
}

// done records that the restore ended, completed or not.
func (p *restoreProgress) done() {
	p.o.restoreRemaining.Sub(float64(p.end - p.pos))
	p.pos = p.end
	p.o.restoring.Add(-1)
}

// scrapeCollector reports, at scrape time, what the workers published and
// the state DB's store sizes.
type scrapeCollector struct {
	o                       *observer
	lag, cache, disk, tasks *prometheus.Desc
}

// Describe implements prometheus.Collector.
func (c *scrapeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lag
	ch <- c.cache
	ch <- c.disk
	ch <- c.tasks
}

// Collect implements prometheus.Collector.
func (c *scrapeCollector) Collect(ch chan<- prometheus.Metric) {
	type storePart struct {
		store     string
		partition int32
	}
	type dated[T any] struct {
		v  T
		at time.Time
	}
	// After a rebalance, a partition may be in the reports of two workers
	// until the one that lost it commits: the newest report wins.
	lag := map[broker.TopicPartition]dated[int64]{}
	caches := map[storePart]dated[int]{}
	tasks := 0
	c.o.mu.Lock()
	for _, r := range c.o.mu.reports {
		tasks += r.tasks
		for tp, n := range r.lag {
			if d, ok := lag[tp]; !ok || r.at.After(d.at) {
				lag[tp] = dated[int64]{n, r.at}
			}
		}
		for _, cr := range r.caches {
			k := storePart{cr.store, cr.partition}
			if d, ok := caches[k]; !ok || r.at.After(d.at) {
				caches[k] = dated[int]{cr.bytes, r.at}
			}
		}
	}
	c.o.mu.Unlock()

	ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(tasks))
	for tp, d := range lag {
		ch <- prometheus.MustNewConstMetric(c.lag, prometheus.GaugeValue, float64(d.v),
			tp.Topic, strconv.Itoa(int(tp.Partition)))
	}
	for k, d := range caches {
		ch <- prometheus.MustNewConstMetric(c.cache, prometheus.GaugeValue, float64(d.v),
			k.store, strconv.Itoa(int(k.partition)))
	}
	sizes, err := c.o.e.db.StoreSizes()
	if err != nil {
		// The DB is closed: the engine is, too.
		c.o.e.opts.Logger.Debug("metrics: store sizes", "error", err)
		return
	}
	for _, s := range sizes {
		ch <- prometheus.MustNewConstMetric(c.disk, prometheus.GaugeValue, float64(s.Bytes),
			s.Name, strconv.Itoa(int(s.Partition)))
	}
}
