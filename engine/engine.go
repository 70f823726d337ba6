package engine

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/internal/cmalloc"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
)

// Engine runs one topology. Open it, Run it once, Close it.
type Engine struct {
	opts    Options
	topo    *topology.Topology
	log     broker.Log
	ownsLog bool
	db      *state.DB

	// partitions of every topic the topology touches, and of each
	// sub-topology's tasks; set by Run before workers start, then read-only.
	partitions map[string]int32
	subParts   []int32

	progress *progress // bounded runs only
	metrics  metrics
	running  atomic.Bool
	// tasks tells which worker runs each task, for store queries.
	tasks taskRegistry
	// stepper is set when a Stepper drives the engine instead of Run.
	stepper *Stepper
	// mem is the split of Options.MemoryBytes, zero without it.
	mem state.MemorySplit
	// stopTrim stops returning C's free memory to the OS; nil without
	// MemoryBytes.
	stopTrim func()
	// obs holds the Prometheus metrics, health and readiness (metrics.go,
	// http.go).
	obs *observer
	// sessions are the workers' sessions, for Instances (instances.go).
	sessions sessionRegistry
}

// Open validates the topology of b and opens the state DB and, unless
// opts.Log is set, the embedded log.
func Open(b *topology.Builder, opts Options) (*Engine, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	topo, err := b.Build()
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, topo: topo, log: opts.Log}
	e.mem, _ = opts.memorySplit() // Validate checked it
	if e.log == nil && opts.Kafka != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ko := *opts.Kafka
		if ko.Logger == nil {
			ko.Logger = opts.Logger.Named("kafka")
		}
		l, err := kafka.Open(ctx, ko)
		if err != nil {
			return nil, fmt.Errorf("engine: open kafka: %w", err)
		}
		e.log, e.ownsLog = l, true
	}
	if e.log == nil {
		l, err := embedded.Open(embedded.Options{
			Dir:      filepath.Join(opts.StateDir, "log"),
			InMemory: opts.InMemory,
			FS:       opts.FS,
			Logger:   opts.Logger.Named("log"),
			// 0 without MemoryBytes: the log's defaults.
			CacheBytes:    e.mem.LogCacheBytes,
			MemTableBytes: e.mem.LogMemTableBytes,
			CompactBytes:  e.mem.LogCompactBytes,
		})
		if err != nil {
			return nil, fmt.Errorf("engine: open embedded log: %w", err)
		}
		e.log, e.ownsLog = l, true
	}
	e.obs = newObserver(e)
	e.db, err = state.Open(state.Options{
		Dir:      filepath.Join(opts.StateDir, "state"),
		InMemory: opts.InMemory,
		FS:       opts.FS,
		Logger:   opts.Logger.Named("state"),
		// 0 without MemoryBytes: the state DB's defaults, no shared bound.
		CacheBytes:      e.mem.StateCacheBytes,
		MemTableBytes:   e.mem.StateMemTableBytes,
		WriteCacheBytes: e.mem.WriteCacheBytes,
	})
	if err != nil {
		if e.ownsLog {
			e.log.Close()
		}
		return nil, fmt.Errorf("engine: open state: %w", err)
	}
	recordStoreKinds(e.db, topo, opts.Logger) // for eddy stores (reset.go)
	if opts.MemoryBytes > 0 {
		// glibc's malloc keeps the cache blocks Pebble frees, in
		// per-thread arenas, far past the budget (see cmalloc).
		e.stopTrim = cmalloc.StartTrimming()
	}
	return e, nil
}

// Log returns the log the engine runs on: write input and read output
// through it.
func (e *Engine) Log() broker.Log { return e.log }

// Topology returns the running topology.
func (e *Engine) Topology() *topology.Topology { return e.topo }

// Close releases the state DB and the embedded log the engine opened.
// Run must have returned.
func (e *Engine) Close() error {
	if e.stopTrim != nil {
		e.stopTrim()
	}
	err := e.db.Close()
	if e.ownsLog {
		err = errors.Join(err, e.log.Close())
	}
	return err
}

// Run processes records until ctx is done (then it commits what it did
// and returns nil), a task fails (it returns the error), or, with
// Options.Bounded, all input is processed. Run may be called once.
func (e *Engine) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("engine: Run called twice")
	}
	stopServing, err := e.serve()
	if err != nil {
		return err
	}
	defer stopServing()
	if err := e.prepareTopics(ctx); err != nil {
		return err
	}
	e.tasks.setParts(e.subParts)
	if e.opts.Bounded {
		p, err := newProgress(ctx, e)
		if err != nil {
			return err
		}
		e.progress = p
	}
	var topics []string
	for _, s := range e.topo.SubTopologies() {
		topics = append(topics, s.Sources...)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workers := make([]*worker, e.opts.Workers)
	for i := range workers {
		// A worker rejoins with this same cfg (worker.rejoin).
		cfg := broker.SessionConfig{
			Group:       e.topo.App(),
			Member:      fmt.Sprintf("%s-%s-%d", e.topo.App(), e.opts.InstanceID, i),
			Topics:      topics,
			AtLeastOnce: e.opts.Guarantee == AtLeastOnce,
			Endpoint:    e.advertised(),
		}
		sess, err := e.log.NewSession(ctx, cfg)
		if err != nil {
			for _, w := range workers[:i] {
				w.sess.Close(ctx)
			}
			return fmt.Errorf("engine: join group %s: %w", e.topo.App(), err)
		}
		workers[i] = newWorker(e, i, cfg, sess)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for _, w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.run(ctx); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
				e.obs.failed(err)
				cancel()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// prepareTopics checks the source topics, resolves partition counts and
// creates the internal and sink topics that are missing.
func (e *Engine) prepareTopics(ctx context.Context) error {
	existing, err := e.log.DescribeTopics(ctx)
	if err != nil {
		return fmt.Errorf("engine: describe topics: %w", err)
	}
	e.partitions = map[string]int32{}
	for name, tc := range existing {
		e.partitions[name] = tc.Partitions
	}
	topics := e.topo.Topics()
	for _, t := range topics {
		if t.Role == topology.RoleSource && existing[t.Name].Partitions == 0 {
			return fmt.Errorf("engine: source topic %q does not exist: create it first (eddy topics create, or Log().CreateTopics)", t.Name)
		}
	}
	// A sub-topology's partition count depends on its writers' when it
	// reads new repartition topics: resolve them in dependency order.
	subs := e.topo.SubTopologies()
	e.subParts = make([]int32, len(subs))
	resolved := make([]bool, len(subs))
	var create []broker.TopicConfig
	for left := len(subs); left > 0; {
		progress := false
		for _, s := range subs {
			if resolved[s.ID] {
				continue
			}
			n, newTopics, ready, err := e.subPartitions(s, topics, resolved)
			if err != nil {
				return err
			}
			if !ready {
				continue
			}
			resolved[s.ID], progress = true, true
			left--
			e.subParts[s.ID] = n
			create = append(create, newTopics...)
			for _, st := range s.Stores {
				if p, ok := e.partitions[st.Changelog]; ok && p != n {
					return fmt.Errorf("engine: changelog %q has %d partitions, its store %q needs %d: reset the application or restore the topic", st.Changelog, p, st.Name, n)
				}
				if _, ok := e.partitions[st.Changelog]; !ok {
					e.partitions[st.Changelog] = n
					create = append(create, broker.TopicConfig{Name: st.Changelog, Partitions: n, Compacted: true})
				}
			}
			for _, sink := range s.Sinks {
				if topicNamed(topics, sink).Role == topology.RoleRepartition {
					continue // sized by the sub-topology that reads it, above
				}
				if _, ok := e.partitions[sink]; !ok {
					e.partitions[sink] = n
					create = append(create, broker.TopicConfig{Name: sink, Partitions: n})
				}
			}
		}
		if !progress {
			return fmt.Errorf("engine: the sub-topologies' repartition topics form a cycle: cannot size them")
		}
	}
	if e.opts.OnDecodeError == DecodeDeadLetter {
		dl, err := e.deadLetterTopic(topics)
		if err != nil {
			return err
		}
		if dl != nil {
			create = append(create, *dl)
		}
	}
	if len(create) > 0 {
		if err := e.log.CreateTopics(ctx, create...); err != nil {
			return fmt.Errorf("engine: create topics: %w", err)
		}
	}
	return nil
}

// deadLetterTopic resolves Options.DeadLetterTopic (default
// "<app>-dead-letters") and returns its config if it must be created, with
// 1 partition: records are dead letters by exception, and one partition
// keeps them in one sequence. An existing topic keeps its count; see
// Options.DeadLetterTopic for the partition a dead letter goes to.
func (e *Engine) deadLetterTopic(topics []topology.Topic) (*broker.TopicConfig, error) {
	if e.opts.DeadLetterTopic == "" {
		e.opts.DeadLetterTopic = e.topo.App() + "-dead-letters"
	}
	name := e.opts.DeadLetterTopic
	for _, t := range topics {
		if t.Name == name {
			// A source would read its own dead letters back; any other
			// topic of the topology would mix them with its records.
			return nil, fmt.Errorf("engine: dead-letter topic %q is a %s topic of the topology: choose another DeadLetterTopic", name, t.Role)
		}
	}
	if _, ok := e.partitions[name]; ok {
		return nil, nil
	}
	e.partitions[name] = 1
	return &broker.TopicConfig{Name: name, Partitions: 1}, nil
}

// subPartitions resolves the partition count of sub-topology s, and of
// the new repartition topics it reads, which it returns to be created.
// Topics that exist, or whose count the topology fixes (Partitions), come
// first and must agree (co-partitioning). A new repartition topic without
// a fixed count then gets the same count, as Kafka Streams' co-partitioning
// does for a join; if all of s's inputs are such topics, they get their
// writer's task count, and s is not ready until its writer is resolved.
func (e *Engine) subPartitions(s *topology.SubTopology, topics []topology.Topic, resolved []bool) (n int32, create []broker.TopicConfig, ready bool, err error) {
	fixed := map[string]int32{}
	var open []string
	for _, src := range s.Sources {
		if p, ok := e.partitions[src]; ok {
			fixed[src] = p
			continue
		}
		t := topicNamed(topics, src)
		if t.Partitions > 0 {
			fixed[src] = t.Partitions
			continue
		}
		open = append(open, src)
	}
	for _, src := range s.Sources {
		p, ok := fixed[src]
		if !ok {
			continue
		}
		if n != 0 && p != n {
			counts := make([]string, 0, len(s.Sources))
			for _, src := range s.Sources {
				if p, ok := fixed[src]; ok {
					counts = append(counts, fmt.Sprintf("%s has %d partitions", src, p))
				}
			}
			return 0, nil, false, fmt.Errorf("engine: sub-topology %d reads topics that are not co-partitioned: %s", s.ID, strings.Join(counts, ", "))
		}
		n = p
	}
	if n == 0 {
		// Only new repartition topics: their writers' task counts.
		for _, src := range open {
			w := topicNamed(topics, src).Writer
			if w < 0 || !resolved[w] {
				return 0, nil, false, nil
			}
			p := e.subParts[w]
			if n != 0 && p != n {
				return 0, nil, false, fmt.Errorf("engine: sub-topology %d reads repartition topics whose writers have %d and %d tasks: set their partitions with topology.Partitions", s.ID, n, p)
			}
			n = p
		}
	}
	for _, src := range open {
		fixed[src] = n
		e.partitions[src] = n
		create = append(create, broker.TopicConfig{Name: src, Partitions: n})
	}
	for src, p := range fixed {
		if _, ok := e.partitions[src]; !ok {
			e.partitions[src] = p
			create = append(create, broker.TopicConfig{Name: src, Partitions: p})
		}
	}
	return n, create, true, nil
}

// topicNamed returns the topology's topic called name (Writer -1 if none).
func topicNamed(topics []topology.Topic, name string) topology.Topic {
	for _, t := range topics {
		if t.Name == name {
			return t
		}
	}
	return topology.Topic{Name: name, Writer: -1}
}

// Metrics are counters readable while the engine runs.
type Metrics struct {
	RecordsIn, RecordsOut, LateRecords, Commits int64
	// Checkpoints counts the times a worker wrote its tasks' committed
	// state to the state DB (see Options.CheckpointInterval).
	Checkpoints int64
	// RestoredRecords counts the changelog records replayed into stores
	// when tasks start: after a crash, only the tail past what the state
	// DB committed.
	RestoredRecords int64
	// SkippedRecords and DeadLetterRecords count the committed input
	// records that did not decode and were skipped (DecodeSkip) or written
	// to the dead-letter topic (DecodeDeadLetter). RecordsIn counts them
	// too. SkippedRecords also counts, once per stateful operator, the
	// records an aggregation or join dropped for their nil key (as Kafka
	// Streams drops null keys there).
	SkippedRecords, DeadLetterRecords int64
}

type metrics struct {
	recordsIn, recordsOut, late, commits, restored atomic.Int64
	checkpoints                                    atomic.Int64
	skipped, deadLetters                           atomic.Int64
}

// Metrics returns the engine's counters so far.
func (e *Engine) Metrics() Metrics {
	return Metrics{
		RecordsIn:   e.metrics.recordsIn.Load(),
		RecordsOut:  e.metrics.recordsOut.Load(),
		LateRecords: e.metrics.late.Load(),
		Commits:     e.metrics.commits.Load(),
		Checkpoints: e.metrics.checkpoints.Load(),

		RestoredRecords:   e.metrics.restored.Load(),
		SkippedRecords:    e.metrics.skipped.Load(),
		DeadLetterRecords: e.metrics.deadLetters.Load(),
	}
}
