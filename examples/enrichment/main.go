// Command enrichment enriches orders with the customer who placed them, a
// stream-table left join:
//
//	go run ./examples/enrichment
//
// It generates half an hour of customer records and orders into the
// embedded log, both keyed by customer id. The customers topic is read as
// a table: a record creates or updates its customer (a new tier, a new
// name), a tombstone deletes it. Each order is joined with its customer
// as the table holds it when the order is processed, and the engine
// processes a task's inputs in timestamp order, so an order sees the
// latest customer version older than the order: an upgrade made after
// the order does not apply to it, and an order from a customer not
// created yet, or deleted, is shown as "unknown customer". Only orders
// give results; table updates change what later orders see.
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
)

// Customer is one version of a customer.
type Customer struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Tier string `json:"tier"`
}

// Order is an order placed by a customer.
type Order struct {
	ID       string `json:"id"`
	Customer string `json:"customer"`
	Amount   int64  `json:"amount"` // in cents
}

// Enriched is one output record: an order and its customer, nil when the
// customer is unknown at the order's time.
type Enriched struct {
	Order    Order     `json:"order"`
	Customer *Customer `json:"customer,omitempty"`
}

// Topology builds the pipeline: orders left-joined with the customers
// table, to "orders-enriched".
func Topology() *topology.Builder { return topologyFor("") }

// topologyFor suffixes the application and its topics: on Kafka, where
// topics outlive the example, every run uses fresh ones.
func topologyFor(suffix string) *topology.Builder {
	b, _ := build(suffix)
	return b
}

// build builds the topology of topologyFor and returns its customers
// table too, for the tests' store queries.
func build(suffix string) (*topology.Builder, topology.Table[string, Customer]) {
	b := topology.New("enrichment" + suffix)
	customers := topology.TableFrom(b, "customers"+suffix, serde.String(), serde.JSON[Customer]())
	orders := topology.StreamFrom(b, "orders"+suffix, serde.String(), serde.JSON[Order]())
	enriched := topology.LeftJoinTable(orders, customers, func(_ string, o Order, c Customer, known bool) Enriched {
		if !known {
			return Enriched{Order: o}
		}
		return Enriched{Order: o, Customer: &c}
	}, topology.Named("orders-customers"))
	enriched.WithValueSerde(serde.JSON[Enriched]()).To("orders-enriched" + suffix)
	return b, customers
}

// Start is the event time of the first generated record.
var Start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Span is the time the generated records cover.
const Span = 30 * time.Minute

// Partitions is the partition count of both input topics: the join needs
// them co-partitioned, and both are keyed by customer id.
const Partitions = 2

var (
	names = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka", "Cyberdyne", "Tyrell"}
	tiers = []string{"bronze", "silver", "gold"}
)

// Generate returns the customers' records and n orders, deterministic for
// a seed, each topic in time order. Customers c-01 to c-10 are created at
// random times in the first quarter of Span, some upgraded (a tier up) or
// renamed later; two are deleted (a tombstone) after their last update
// and past the middle of Span. c-11 never exists. Orders come from any of them, evenly over Span.
// Customer records are stamped on whole seconds and orders half a second
// off, so no order has the timestamp of a customer record: which version
// an order sees does not depend on how ties are broken.
func Generate(seed uint64, n int) []broker.Record { return generate(seed, n, "") }

func generate(seed uint64, n int, suffix string) []broker.Record {
	r := rand.New(rand.NewPCG(seed, 0))
	second := time.Second.Milliseconds()
	half := Span.Milliseconds() / second / 2 // in seconds
	var customers, orders []broker.Record
	put := func(at int64, c Customer, deleted bool) {
		var v []byte
		if !deleted {
			v, _ = serde.JSON[Customer]().Encode(nil, c)
		}
		customers = append(customers, broker.Record{Topic: "customers" + suffix, Partition: broker.AnyPartition,
			Key: []byte(c.ID), Value: v, Timestamp: Start.UnixMilli() + at*second})
	}
	deleted := r.Perm(len(names))[:2]
	for i, name := range names {
		c := Customer{ID: fmt.Sprintf("c-%02d", i+1), Name: name, Tier: tiers[0]}
		at := r.Int64N(half / 2)
		put(at, c, false)
		for range r.IntN(3) {
			at += 1 + r.Int64N(half/2)
			if r.IntN(3) == 0 {
				c.Name += " Corp"
			} else {
				c.Tier = tiers[min(len(tiers)-1, slices.Index(tiers, c.Tier)+1)]
			}
			put(at, c, false)
		}
		if slices.Contains(deleted, i) {
			put(max(at, half)+1+r.Int64N(half/2), c, true)
		}
	}
	for i := range n {
		o := Order{ID: fmt.Sprintf("o-%04d", i+1), Customer: fmt.Sprintf("c-%02d", 1+r.IntN(len(names)+1)), Amount: 500 + 5*r.Int64N(2000)}
		at := Start.UnixMilli() + (int64(i)*Span.Milliseconds()/int64(n))/second*second + second/2
		v, _ := serde.JSON[Order]().Encode(nil, o)
		orders = append(orders, broker.Record{Topic: "orders" + suffix, Partition: broker.AnyPartition,
			Key: []byte(o.Customer), Value: v, Timestamp: at})
	}
	slices.SortStableFunc(customers, func(a, b broker.Record) int { return cmp.Compare(a.Timestamp, b.Timestamp) })
	return append(customers, orders...)
}

// Result is one output row: an order and its customer, if known.
type Result struct {
	Order    string
	Time     time.Time
	Customer string // the order's customer id
	Known    bool
	Name     string
	Tier     string
	Amount   int64 // in cents
}

// Config is the example's settings.
type Config struct {
	Dir    string // state dir; "" for a temporary one
	Events int    // orders to generate
	Seed   uint64
	// Brokers runs on Apache Kafka instead of the embedded log, with
	// topics suffixed by the run's start time.
	Brokers []string
}

// Run generates the input, processes it to the end and returns the results
// sorted by order, and the engine's metrics.
func Run(ctx context.Context, cfg Config) ([]Result, engine.Metrics, error) {
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eddy-enrichment-")
		if err != nil {
			return nil, engine.Metrics{}, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	opts, suffix := engine.Options{StateDir: dir, Bounded: true}, ""
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
	for _, topic := range []string{"customers", "orders"} {
		if err := log.CreateTopics(ctx, broker.TopicConfig{Name: topic + suffix, Partitions: Partitions}); err != nil {
			return nil, engine.Metrics{}, err
		}
	}
	if err := log.Produce(ctx, generate(cfg.Seed, cfg.Events, suffix)...); err != nil {
		return nil, engine.Metrics{}, err
	}
	if err := eng.Run(ctx); err != nil {
		return nil, engine.Metrics{}, err
	}
	results, err := readResults(ctx, log, "orders-enriched"+suffix)
	return results, eng.Metrics(), err
}

func readResults(ctx context.Context, log broker.Log, topic string) ([]Result, error) {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	var out []Result
	for p := range desc[topic].Partitions {
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return nil, err
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error {
			e, err := serde.JSON[Enriched]().Decode(r.Value)
			if err != nil {
				return fmt.Errorf("%s@%d: %w", tp, r.Offset, err)
			}
			out = append(out, resultOf(e, r.Timestamp))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return sortResults(out), nil
}

func resultOf(e Enriched, ts int64) Result {
	r := Result{Order: e.Order.ID, Time: time.UnixMilli(ts).UTC(), Customer: e.Order.Customer, Amount: e.Order.Amount}
	if e.Customer != nil {
		r.Known, r.Name, r.Tier = true, e.Customer.Name, e.Customer.Tier
	}
	return r
}

func sortResults(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int {
		return cmp.Or(strings.Compare(a.Order, b.Order), a.Time.Compare(b.Time))
	})
	return rs
}

// Print writes results as a table.
func Print(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-7s %-12s %-5s %-16s %-7s %9s\n", "order", "at", "cust", "name", "tier", "amount")
	for _, r := range results {
		name, tier := r.Name, r.Tier
		if !r.Known {
			name, tier = "unknown customer", "-"
		}
		fmt.Fprintf(w, "%-7s %-12s %-5s %-16s %-7s %9s\n", r.Order, r.Time.Format("15:04:05.000"), r.Customer, name, tier,
			fmt.Sprintf("$%d.%02d", r.Amount/100, r.Amount%100))
	}
}

// Summarize counts the orders per tier of their customer, "" for unknown
// customers.
func Summarize(results []Result) map[string]int {
	n := map[string]int{}
	for _, r := range results {
		n[r.Tier]++
	}
	return n
}

// describeTopology prints the topology as the -describe flag asks, as
// text or as a Mermaid flowchart, and returns the exit status. Every
// example has the flag: it is how `eddy describe enrichment` gets the topology
// (see `eddy describe -h`).
func describeTopology(stdout, stderr io.Writer, format string) int {
	t, err := Topology().Build()
	if err != nil {
		fmt.Fprintln(stderr, "enrichment:", err)
		return 1
	}
	text, err := t.Describe().Format(format)
	if err != nil {
		fmt.Fprintf(stderr, "enrichment: -describe: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, text)
	return 0
}

func main() {
	cfg := Config{}
	flag.StringVar(&cfg.Dir, "dir", "", "state dir (default: a temporary dir, removed at exit)")
	flag.IntVar(&cfg.Events, "events", 30, "orders to generate")
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
		fmt.Fprintln(os.Stderr, "enrichment:", err)
		os.Exit(1)
	}
	Print(os.Stdout, results)
	n := Summarize(results)
	fmt.Printf("\n%d orders: %d gold, %d silver, %d bronze, %d unknown customer; %d records processed, %d commits\n",
		len(results), n["gold"], n["silver"], n["bronze"], n[""], m.RecordsIn, m.Commits)
}
