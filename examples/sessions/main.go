// Command sessions groups a click stream into user sessions, a session-
// windowed aggregation:
//
//	go run ./examples/sessions
//
// It generates clicks of a few users into the embedded log, keyed by user,
// slightly out of order. A session is a run of one user's clicks with no
// pause longer than Gap (5 minutes) between consecutive ones: a click
// within Gap of a session extends it, and a click that bridges two
// sessions merges them. Each session is emitted once, when it closes:
// when stream-time passes its last click plus Gap plus Grace (1 minute,
// longer than the input's disorder, so no click is late), or at the end of
// the bounded input. The printed table has one row per session: its first
// and last click, how long it lasted, its clicks and the distinct pages
// they visited.
package main

import (
	"cmp"
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

// Click is one page a user opened.
type Click struct {
	User string `json:"user"`
	Page string `json:"page"`
}

// Visit is the aggregate of a session: its clicks and the distinct pages
// they opened, sorted.
type Visit struct {
	Clicks int64    `json:"clicks"`
	Pages  []string `json:"pages"`
}

// Gap is the inactivity gap that ends a session.
const Gap = 5 * time.Minute

// Grace is how long a session stays open past its gap for clicks that
// arrive out of order.
const Grace = time.Minute

// Jitter bounds how far the generated clicks are out of order; it is
// below Grace, so no click is late.
const Jitter = 30 * time.Second

// Topology builds the pipeline: clicks per user in session windows,
// aggregated into Visits, each emitted once when its session closes, to
// "sessions".
func Topology() *topology.Builder { return topologyFor("") }

// topologyFor suffixes the application and its topics: on Kafka, where
// topics outlive the example, every run uses fresh ones.
func topologyFor(suffix string) *topology.Builder {
	b, _ := build(suffix)
	return b
}

// build builds the topology of topologyFor and returns its sessions
// table too, for the tests' store queries.
func build(suffix string) (*topology.Builder, topology.Table[window.Windowed[string], Visit]) {
	b := topology.New("sessions" + suffix)
	clicks := topology.StreamFrom(b, "clicks"+suffix, serde.String(), serde.JSON[Click]())
	sessions := topology.AggregateSessions(
		clicks.GroupByKey().SessionWindowedBy(window.Sessions(Gap).Grace(Grace)).EmitOnWindowClose(),
		func() Visit { return Visit{} },
		func(_ string, c Click, v Visit) Visit {
			return Visit{Clicks: v.Clicks + 1, Pages: union(v.Pages, []string{c.Page})}
		},
		func(_ string, a, b Visit) Visit {
			return Visit{Clicks: a.Clicks + b.Clicks, Pages: union(a.Pages, b.Pages)}
		},
		serde.JSON[Visit](), topology.Named("visits"))
	// Table.To writes deletions as tombstones (ToStream would drop
	// them): emitted on close, sessions are never retracted, so there
	// are none.
	sessions.To("sessions" + suffix)
	return b, sessions
}

// union returns the sorted distinct strings of a and b, in a new slice:
// aggregates must not share memory with the values they were made from.
func union(a, b []string) []string {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}

// Start is the event time of the first generated click.
var Start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Partitions is the partition count of the clicks topic.
const Partitions = 2

var (
	users = []string{"alice", "bob", "carol", "dave", "erin"}
	pages = []string{"/", "/search", "/product/1", "/product/2", "/product/3", "/cart", "/checkout"}
)

// Generate returns n clicks of a few users, deterministic for a seed. Each
// user's clicks start in the first ten minutes after Start; four in five
// follow the user's previous click by 5 s to Gap (a few by exactly Gap,
// which keeps the session going), the others by more than Gap, up to 40
// minutes (a new session). The records are in time order but for up to
// Jitter of disorder.
func Generate(seed uint64, n int) []broker.Record { return generate(seed, n, "") }

func generate(seed uint64, n int, suffix string) []broker.Record {
	r := rand.New(rand.NewPCG(seed, 0))
	ms := func(d time.Duration) int64 { return d.Milliseconds() }
	next := make([]int64, len(users)) // each user's next click time
	for i := range next {
		next[i] = Start.UnixMilli() + r.Int64N(ms(10*time.Minute))
	}
	type arrival struct {
		rec broker.Record
		at  int64 // when it reaches the topic
	}
	clicks := make([]arrival, n)
	for i := range clicks {
		u := r.IntN(len(users))
		c := Click{User: users[u], Page: pages[r.IntN(len(pages))]}
		v, _ := serde.JSON[Click]().Encode(nil, c)
		ts := next[u]
		clicks[i] = arrival{
			rec: broker.Record{Topic: "clicks" + suffix, Partition: broker.AnyPartition, Key: []byte(c.User), Value: v, Timestamp: ts},
			at:  ts + r.Int64N(ms(Jitter)+1),
		}
		switch k := r.IntN(20); {
		case k < 4: // a pause: the next click starts a new session
			next[u] += ms(Gap) + 1 + r.Int64N(ms(40*time.Minute-Gap))
		case k == 4: // exactly Gap: still the same session
			next[u] += ms(Gap)
		default:
			next[u] += ms(5*time.Second) + r.Int64N(ms(Gap-5*time.Second))
		}
	}
	slices.SortStableFunc(clicks, func(a, b arrival) int { return cmp.Compare(a.at, b.at) })
	recs := make([]broker.Record, n)
	for i, c := range clicks {
		recs[i] = c.rec
	}
	return recs
}

// Result is one session of a user.
type Result struct {
	User       string
	Start, End time.Time // the first and last click
	Clicks     int64
	Pages      int // distinct pages
}

// Config is the example's settings.
type Config struct {
	Dir    string // state dir; "" for a temporary one
	Events int    // clicks to generate
	Seed   uint64
	// Brokers runs on Apache Kafka instead of the embedded log, with
	// topics suffixed by the run's start time.
	Brokers []string
	// cacheBytes is the engine's CacheBytes: the test turns the cache
	// off (-1), which would let every update of a session through if
	// the sessions were not emitted on close.
	cacheBytes int
}

// Run generates the input, processes it to the end and returns the
// sessions sorted by user then start, and the engine's metrics.
func Run(ctx context.Context, cfg Config) ([]Result, engine.Metrics, error) {
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eddy-sessions-")
		if err != nil {
			return nil, engine.Metrics{}, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	opts, suffix := engine.Options{StateDir: dir, Bounded: true, CacheBytes: cfg.cacheBytes}, ""
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
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "clicks" + suffix, Partitions: Partitions}); err != nil {
		return nil, engine.Metrics{}, err
	}
	if err := log.Produce(ctx, generate(cfg.Seed, cfg.Events, suffix)...); err != nil {
		return nil, engine.Metrics{}, err
	}
	if err := eng.Run(ctx); err != nil {
		return nil, engine.Metrics{}, err
	}
	results, err := readResults(ctx, log, "sessions"+suffix)
	return results, eng.Metrics(), err
}

func readResults(ctx context.Context, log broker.Log, topic string) ([]Result, error) {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	keys := serde.SessionWindowed(serde.String())
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
			// Emitted on close, a session is never retracted: a
			// tombstone here fails to decode, as it should.
			v, err := serde.JSON[Visit]().Decode(r.Value)
			if err != nil {
				return fmt.Errorf("%s@%d: %w", tp, r.Offset, err)
			}
			out = append(out, resultOf(k, v))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return sortResults(out), nil
}

func resultOf(k window.Windowed[string], v Visit) Result {
	return Result{User: k.Key, Start: time.UnixMilli(k.Start).UTC(), End: time.UnixMilli(k.End).UTC(), Clicks: v.Clicks, Pages: len(v.Pages)}
}

func sortResults(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int {
		return cmp.Or(strings.Compare(a.User, b.User), a.Start.Compare(b.Start), a.End.Compare(b.End))
	})
	return rs
}

// Print writes results as a table.
func Print(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-6s %-8s %-8s %8s %6s %5s\n", "user", "start", "end", "duration", "clicks", "pages")
	for _, r := range results {
		fmt.Fprintf(w, "%-6s %-8s %-8s %8s %6d %5d\n", r.User, r.Start.Format("15:04:05"), r.End.Format("15:04:05"),
			r.End.Sub(r.Start).Round(time.Second), r.Clicks, r.Pages)
	}
}

// describeTopology prints the topology as the -describe flag asks, as
// text or as a Mermaid flowchart, and returns the exit status. Every
// example has the flag: it is how `eddy describe sessions` gets the topology
// (see `eddy describe -h`).
func describeTopology(stdout, stderr io.Writer, format string) int {
	t, err := Topology().Build()
	if err != nil {
		fmt.Fprintln(stderr, "sessions:", err)
		return 1
	}
	text, err := t.Describe().Format(format)
	if err != nil {
		fmt.Fprintf(stderr, "sessions: -describe: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, text)
	return 0
}

func main() {
	cfg := Config{}
	flag.StringVar(&cfg.Dir, "dir", "", "state dir (default: a temporary dir, removed at exit)")
	flag.IntVar(&cfg.Events, "events", 60, "clicks to generate")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "generator seed")
	brokers := flag.String("brokers", "", "run on Apache Kafka at these comma-separated brokers instead of the embedded log")
	describe := flag.String("describe", "", "print the topology as `text` or mermaid and exit, without running it (for eddy describe)")
	flag.Parse()
	if *describe != "" {
		os.Exit(describeTopology(os.Stdout, os.Stderr, *describe))
	}
	if *brokers != "" {
		cfg.Brokers = strings.Split(*brokers, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	results, m, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(1)
	}
	Print(os.Stdout, results)
	var longest time.Duration
	for _, r := range results {
		longest = max(longest, r.End.Sub(r.Start))
	}
	fmt.Printf("\n%d sessions from %d clicks, the longest %s; %d records processed, %d late, %d commits\n",
		len(results), cfg.Events, longest.Round(time.Second), m.RecordsIn, m.LateRecords, m.Commits)
}
