package nexmark

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
)

// Config configures a Run. The zero value runs 1,000,000 events of seed 0
// with one worker and one input partition per core, in a temporary
// directory.
type Config struct {
	// Events is the number of events generated and loaded. Default
	// 1,000,000.
	Events int
	// Seed selects the event stream.
	Seed uint64
	// Partitions of each input topic. Default: Workers.
	Partitions int
	// Workers of the engine. Default: GOMAXPROCS.
	Workers int
	// StateDir holds the engine's state and embedded log. It must be
	// empty or absent; Run leaves it behind. Default: a temporary
	// directory, removed when Run returns.
	StateDir string
}

// Result is what a Run measured.
type Result struct {
	Query string
	// Events is the number of events loaded: people, auctions and bids.
	// A query reads only the topics it needs.
	Events int64
	// Outputs is the number of records in the query's output topic.
	Outputs int64
	// Load is how long generating and loading the events took (not part
	// of Elapsed).
	Load time.Duration
	// Elapsed is the time from the start of the engine's Run until every
	// event was processed and its results committed.
	Elapsed time.Duration
	// CPU is the CPU time (user and system) the process spent during
	// Elapsed.
	CPU time.Duration
	// Late counts the records the query's windows and joins dropped as
	// late (engine.Metrics.LateRecords). Nonzero means the output is not
	// exact: an upstream task ran further ahead of another than the
	// query's grace allows.
	Late int64
}

// Queries returns the names of the implemented queries, in order.
func Queries() []string {
	names := make([]string, len(queries))
	for i, q := range queries {
		names[i] = q.name
	}
	return names
}

// Run runs query on an embedded engine, exactly once, on disk: it
// generates cfg.Events events of cfg.Seed into the topics "person",
// "auction" and "bid" (DefaultTopics), untimed, then runs the engine
// as a bounded run until every event is processed and committed, timed.
// The results are in the topic named after the query.
func Run(ctx context.Context, query string, cfg Config) (Result, error) {
	q, err := lookup(query)
	if err != nil {
		return Result{}, err
	}
	switch {
	case cfg.Events < 0:
		return Result{}, fmt.Errorf("nexmark: Events must not be negative, got %d", cfg.Events)
	case cfg.Partitions < 0:
		return Result{}, fmt.Errorf("nexmark: Partitions must not be negative, got %d", cfg.Partitions)
	case cfg.Workers < 0:
		return Result{}, fmt.Errorf("nexmark: Workers must not be negative, got %d", cfg.Workers)
	}
	if cfg.Events == 0 {
		cfg.Events = 1_000_000
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = cfg.Workers
	}
	dir := cfg.StateDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "eddy-nexmark-"); err != nil {
			return Result{}, fmt.Errorf("nexmark: %w", err)
		}
		defer os.RemoveAll(dir)
	} else if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return Result{}, fmt.Errorf("nexmark: state dir %s is not empty: each run needs a fresh one", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Result{}, fmt.Errorf("nexmark: %w", err)
	}
	j := job{
		q: q, seed: cfg.Seed, events: cfg.Events, rate: FirstEventRate, partitions: int32(cfg.Partitions),
		opts: engine.Options{StateDir: dir, Workers: cfg.Workers},
	}
	return j.run(ctx)
}

// job is one run of a query: Run's, or a test's with other engine
// options and a slower event rate.
type job struct {
	q          *query
	seed       uint64
	events     int
	rate       int64
	partitions int32
	opts       engine.Options // Bounded is set by run
	// input, if set, is loaded instead of generated events.
	input []Event
	// inspect, if set, is called with the log once the run is over.
	inspect func(context.Context, broker.Log) error
}

func (j job) run(ctx context.Context) (res Result, err error) {
	topics := DefaultTopics(j.q.name)
	opts := j.opts
	opts.Bounded = true
	eng, err := engine.Open(j.q.build(topics), opts)
	if err != nil {
		return Result{}, fmt.Errorf("nexmark: %s: %w", j.q.name, err)
	}
	defer func() {
		if cerr := eng.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("nexmark: %s: close: %w", j.q.name, cerr)
		}
	}()
	log := eng.Log()
	var inputs []broker.TopicConfig
	for _, name := range []string{topics.Person, topics.Auction, topics.Bid} {
		inputs = append(inputs, broker.TopicConfig{Name: name, Partitions: j.partitions})
	}
	if err := log.CreateTopics(ctx, inputs...); err != nil {
		return Result{}, fmt.Errorf("nexmark: %s: %w", j.q.name, err)
	}
	start := time.Now()
	next, n := newGenerator(j.seed, j.rate).Next, j.events
	if j.input != nil {
		input := j.input
		next, n = func() Event { e := input[0]; input = input[1:]; return e }, len(input)
	}
	if err := load(ctx, log, topics, next, n); err != nil {
		return Result{}, fmt.Errorf("nexmark: %s: load: %w", j.q.name, err)
	}
	res = Result{Query: j.q.name, Events: int64(n), Load: time.Since(start)}

	cpu := processCPU()
	start = time.Now()
	if err := eng.Run(ctx); err != nil {
		return Result{}, fmt.Errorf("nexmark: %s: %w", j.q.name, err)
	}
	res.Elapsed = time.Since(start)
	res.CPU = processCPU() - cpu
	res.Late = eng.Metrics().LateRecords

	if res.Outputs, err = countRecords(ctx, log, topics.Output); err != nil {
		return Result{}, fmt.Errorf("nexmark: %s: %w", j.q.name, err)
	}
	if j.inspect != nil {
		if err := j.inspect(ctx, log); err != nil {
			return Result{}, err
		}
	}
	return res, nil
}

// load produces the n events next returns to their topics, keyed by
// person id, auction id and the bid's auction id, stamped with their
// event time.
func load(ctx context.Context, log broker.Log, t Topics, next func() Event, n int) error {
	const batchSize = 10_000
	batch := make([]broker.Record, 0, batchSize)
	var (
		keys = serde.Int64()
		ps   = serde.JSON[Person]()
		as   = serde.JSON[Auction]()
		bs   = serde.JSON[Bid]()
	)
	for i := range n {
		e := next()
		var (
			topic string
			key   int64
			value []byte
			err   error
		)
		switch {
		case e.Person != nil:
			topic, key = t.Person, e.Person.ID
			value, err = ps.Encode(nil, *e.Person)
		case e.Auction != nil:
			topic, key = t.Auction, e.Auction.ID
			value, err = as.Encode(nil, *e.Auction)
		default:
			topic, key = t.Bid, e.Bid.Auction
			value, err = bs.Encode(nil, *e.Bid)
		}
		if err != nil {
			return err
		}
		k, _ := keys.Encode(nil, key)
		batch = append(batch, broker.Record{Topic: topic, Partition: broker.AnyPartition, Key: k, Value: value, Timestamp: e.Time()})
		if len(batch) == batchSize || i == n-1 {
			if err := log.Produce(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// countRecords returns the number of committed records in topic.
func countRecords(ctx context.Context, log broker.Log, topic string) (int64, error) {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for p := range desc[topic].Partitions {
		off, err := log.Offsets(ctx, broker.TopicPartition{Topic: topic, Partition: p})
		if err != nil {
			return 0, err
		}
		n += off.End - off.Start
	}
	return n, nil
}
