// Command pageviews counts page views per region per minute.
//
// It generates ten minutes of page views into the embedded log, counts
// them per region in one-minute tumbling windows (grace 10 s, emitted once
// per window when it closes), prints the results and exits:
//
//	go run ./examples/pageviews
//
// The views topic has one partition, written in time order with a few
// seconds of jitter, as a single upstream service would; re-keying by
// region spreads the counting over four partitions.
//
// With -http ADDR it keeps running once the views are counted, serving the
// engine's HTTP endpoints (engine.Options.HTTPAddr: the counts table,
// metrics, health, the topology) until interrupted, then prints:
//
//	go run ./examples/pageviews -http localhost:8080 &
//	curl -s localhost:8080/stores/views-per-region/windows/eu-north
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// PageView is one view of a page by a user.
type PageView struct {
	User   string `json:"user"`
	Page   string `json:"page"`
	Region string `json:"region"` // empty when unknown
}

// Topology builds the pipeline: drop views without a region, re-key by
// region, count per one-minute window, emit each window once it closes,
// keep the windows an hour for queries.
func Topology() *topology.Builder { return topologyFor("") }

// topologyFor suffixes the application and its topics: on Kafka, where
// topics outlive the example, every run uses fresh ones.
func topologyFor(suffix string) *topology.Builder {
	b, _ := build(suffix)
	return b
}

// build builds the topology of topologyFor and returns its windowed
// counts table too, for the tests' store queries.
func build(suffix string) (*topology.Builder, topology.Table[window.Windowed[string], int64]) {
	b := topology.New("pageviews" + suffix)
	views := topology.StreamFrom(b, "views"+suffix, serde.String(), serde.JSON[PageView]())
	byRegion := topology.GroupBy(
		views.Filter(func(_ string, v PageView) bool { return v.Region != "" }),
		func(_ string, v PageView) string { return v.Region }, serde.String())
	counts := topology.CountWindows(
		byRegion.WindowedBy(window.Tumbling(time.Minute).Grace(10*time.Second)).EmitOnWindowClose(),
		// Retention keeps closed windows queryable (-http) for an hour
		// of event time; by default they are deleted once they close.
		topology.Named("views-per-region"), topology.Partitions(4), topology.Retention(time.Hour))
	counts.ToStream().To("views-per-region" + suffix)
	return b, counts
}

// Regions the generator draws from; "" is a view with no known region.
var regions = []string{"eu-west", "eu-north", "us-east", "us-west", "ap-south", ""}

// Start is the event time of the first generated view.
var Start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Generate returns n page views over ten minutes from Start, in time
// order with up to 3 s of jitter, deterministic for a seed.
func Generate(seed uint64, n int) []broker.Record { return generate(seed, n, "views") }

func generate(seed uint64, n int, topic string) []broker.Record {
	r := rand.New(rand.NewPCG(seed, 0))
	span := (10 * time.Minute).Milliseconds()
	recs := make([]broker.Record, n)
	for i := range recs {
		ts := Start.UnixMilli() + int64(i)*span/int64(n) - r.Int64N(3000)
		v := PageView{
			User:   fmt.Sprintf("user-%d", r.IntN(500)),
			Page:   fmt.Sprintf("/page/%d", r.IntN(50)),
			Region: regions[r.IntN(len(regions))],
		}
		value, _ := serde.JSON[PageView]().Encode(nil, v)
		recs[i] = broker.Record{Topic: topic, Partition: 0, Key: []byte(v.User), Value: value, Timestamp: ts}
	}
	return recs
}

// Result is the count of one region in one window.
type Result struct {
	Region string
	Start  time.Time
	Count  int64
}

// Config is the example's settings.
type Config struct {
	Dir    string // state dir; "" for a temporary one
	Events int
	Seed   uint64
	// Brokers runs on Apache Kafka instead of the embedded log, with
	// topics suffixed by the run's start time.
	Brokers []string
	// HTTPAddr, if set, serves the engine's HTTP endpoints there
	// (engine.Options.HTTPAddr) and keeps the pipeline running after its
	// input, until ctx ends; Serving, if set, is then called with the
	// address the server listens on once it does.
	HTTPAddr string
	Serving  func(addr string)
}

// Run generates the input, processes it to the end and returns the results
// sorted by window then region, and the engine's metrics.
func Run(ctx context.Context, cfg Config) ([]Result, engine.Metrics, error) {
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eddy-pageviews-")
		if err != nil {
			return nil, engine.Metrics{}, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	opts, suffix := engine.Options{StateDir: dir, Bounded: cfg.HTTPAddr == "", HTTPAddr: cfg.HTTPAddr}, ""
	if len(cfg.Brokers) > 0 {
		opts.Kafka = &kafka.Options{Brokers: cfg.Brokers}
		suffix = fmt.Sprintf("-%d", time.Now().UnixNano())
	}
	eng, err := engine.Open(topologyFor(suffix), opts)
	if err != nil {
		return nil, engine.Metrics{}, err
	}
	defer eng.Close()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "views" + suffix, Partitions: 1}); err != nil {
		return nil, engine.Metrics{}, err
	}
	if err := log.Produce(ctx, generate(cfg.Seed, cfg.Events, "views"+suffix)...); err != nil {
		return nil, engine.Metrics{}, err
	}
	if err := run(ctx, eng, cfg.Serving); err != nil {
		return nil, engine.Metrics{}, err
	}
	// When serving, ctx has ended: the results are read without it.
	results, err := readResults(context.WithoutCancel(ctx), log, "views-per-region"+suffix)
	return results, eng.Metrics(), err
}

// run runs eng until it returns, calling serving, if set, with the HTTP
// server's address once it listens.
func run(ctx context.Context, eng *engine.Engine, serving func(addr string)) error {
	if serving == nil {
		return eng.Run(ctx)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-tick.C:
			if addr := eng.HTTPAddr(); addr != "" {
				serving(addr)
				return <-done
			}
		}
	}
}

func readResults(ctx context.Context, log broker.Log, topic string) ([]Result, error) {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	keys := serde.Windowed(serde.String(), time.Minute.Milliseconds())
	var out []Result
	for p := range desc[topic].Partitions {
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return nil, err
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error {
			k, err := keys.Decode(r.Key)
			if err != nil {
				return fmt.Errorf("%s@%d: %w", tp, r.Offset, err)
			}
			n, err := serde.Int64().Decode(r.Value)
			if err != nil {
				return fmt.Errorf("%s@%d: %w", tp, r.Offset, err)
			}
			out = append(out, Result{Region: k.Key, Start: time.UnixMilli(k.Start).UTC(), Count: n})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return sortResults(out), nil
}

func sortResults(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return strings.Compare(a.Region, b.Region)
	})
	return rs
}

// Print writes results as a table.
func Print(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-8s %-10s %6s\n", "window", "region", "views")
	for _, r := range results {
		fmt.Fprintf(w, "%-8s %-10s %6d\n", r.Start.Format("15:04"), r.Region, r.Count)
	}
}

// describeTopology prints the topology as the -describe flag asks, as
// text or as a Mermaid flowchart, and returns the exit status. Every
// example has the flag: it is how `eddy describe pageviews` gets the topology
// (see `eddy describe -h`).
func describeTopology(stdout, stderr io.Writer, format string) int {
	t, err := Topology().Build()
	if err != nil {
		fmt.Fprintln(stderr, "pageviews:", err)
		return 1
	}
	text, err := t.Describe().Format(format)
	if err != nil {
		fmt.Fprintf(stderr, "pageviews: -describe: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, text)
	return 0
}

func main() {
	cfg := Config{}
	flag.StringVar(&cfg.Dir, "dir", "", "state dir (default: a temporary dir, removed at exit)")
	flag.IntVar(&cfg.Events, "events", 20000, "page views to generate")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "generator seed")
	brokers := flag.String("brokers", "", "run on Apache Kafka at these comma-separated brokers instead of the embedded log")
	describe := flag.String("describe", "", "print the topology as `text` or mermaid and exit, without running it (for eddy describe)")
	flag.StringVar(&cfg.HTTPAddr, "http", "", "serve the counts, metrics and health over HTTP at `ADDR` (such as localhost:8080) and keep running until interrupted")
	flag.Parse()
	if *describe != "" {
		os.Exit(describeTopology(os.Stdout, os.Stderr, *describe))
	}
	if *brokers != "" {
		cfg.Brokers = strings.Split(*brokers, ",")
	}
	if cfg.HTTPAddr != "" {
		cfg.Serving = func(addr string) {
			fmt.Fprintf(os.Stderr, "pageviews: serving http://%s (try: curl -s %s/stores/views-per-region/windows/eu-north); Ctrl-C prints the results and exits\n", addr, addr)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, m, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pageviews:", err)
		os.Exit(1)
	}
	Print(os.Stdout, results)
	fmt.Printf("\n%d windows; %d records processed (views, then re-keyed views), %d late, %d commits\n", len(results), m.RecordsIn, m.LateRecords, m.Commits)
}
