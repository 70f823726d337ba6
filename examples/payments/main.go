// Command payments matches orders with their payments, a stream-stream
// left join:
//
//	go run ./examples/payments
//
// It generates an hour of orders and payments into the embedded log, both
// keyed by order id, and joins every order with the payments made within
// ten minutes of it, before or after (a payment can be authorized before
// the order is confirmed). An order with no such payment is reported
// UNPAID, but only once its window has closed: the join holds it back
// until stream-time passes the order's time plus ten minutes plus grace,
// in case a payment is still on its way. A payment made twice gives two
// rows; a payment made too late matches nothing. The results are stamped
// with the later of the two records' times, and the order's own time when
// unpaid. The end of the bounded input closes the windows still open.
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

// Order is an order placed by a user.
type Order struct {
	ID     string `json:"id"`
	User   string `json:"user"`
	Amount int64  `json:"amount"` // in cents
	Item   string `json:"item"`
}

// Payment is a payment for an order.
type Payment struct {
	OrderID string `json:"order_id"`
	Amount  int64  `json:"amount"` // in cents
	Method  string `json:"method"`
}

// Settlement is one output record: an order and one of its payments, or
// an order that nobody paid within the window (Payment nil).
type Settlement struct {
	Order   Order    `json:"order"`
	Payment *Payment `json:"payment,omitempty"`
}

// Window is how far apart an order and its payment may be, either way.
const Window = 10 * time.Minute

// Grace is how long past its window an unpaid order waits for a payment
// that arrives out of order.
const Grace = time.Minute

// Topology builds the pipeline: orders left-joined with payments within
// Window of each other, to "payments-matched".
func Topology() *topology.Builder { return topologyFor("") }

// topologyFor suffixes the application and its topics: on Kafka, where
// topics outlive the example, every run uses fresh ones.
func topologyFor(suffix string) *topology.Builder {
	b := topology.New("payments" + suffix)
	orders := topology.StreamFrom(b, "orders"+suffix, serde.String(), serde.JSON[Order]())
	payments := topology.StreamFrom(b, "payments"+suffix, serde.String(), serde.JSON[Payment]())
	settled := topology.LeftJoin(orders, payments, topology.JoinTimeDifference(Window).Grace(Grace),
		func(_ string, o Order, p Payment, paid bool) Settlement {
			if !paid {
				return Settlement{Order: o}
			}
			return Settlement{Order: o, Payment: &p}
		}, topology.Named("order-payments"))
	settled.WithValueSerde(serde.JSON[Settlement]()).To("payments-matched" + suffix)
	return b
}

// Start is the event time of the first generated order.
var Start = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

var (
	users   = []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	items   = []string{"book", "lamp", "mug", "chair", "desk", "pen", "kettle", "rug"}
	methods = []string{"card", "paypal", "transfer", "voucher"}
)

// Partitions is the partition count of both input topics: the join needs
// them co-partitioned, and both are keyed by order id.
const Partitions = 2

// Generate returns n orders, one about every minute from Start, and their
// payments, deterministic for a seed. Most orders are paid once, from
// three minutes before to ten minutes after the order; one in ten is never
// paid, one in ten is paid 10 to 20 minutes after the order (too late),
// and one in ten is paid twice within the window. Each topic's records are
// in time order.
func Generate(seed uint64, n int) []broker.Record { return generate(seed, n, "") }

func generate(seed uint64, n int, suffix string) []broker.Record {
	r := rand.New(rand.NewPCG(seed, 0))
	minute := time.Minute.Milliseconds()
	var orders, payments []broker.Record
	for i := range n {
		o := Order{
			ID:     fmt.Sprintf("o-%04d", i+1),
			User:   users[r.IntN(len(users))],
			Amount: 500 + 5*r.Int64N(2000),
			Item:   items[r.IntN(len(items))],
		}
		ts := Start.UnixMilli() + int64(i)*minute + r.Int64N(minute)
		v, _ := serde.JSON[Order]().Encode(nil, o)
		orders = append(orders, broker.Record{Topic: "orders" + suffix, Partition: broker.AnyPartition, Key: []byte(o.ID), Value: v, Timestamp: ts})
		pay := func(at int64) {
			p := Payment{OrderID: o.ID, Amount: o.Amount, Method: methods[r.IntN(len(methods))]}
			v, _ := serde.JSON[Payment]().Encode(nil, p)
			payments = append(payments, broker.Record{Topic: "payments" + suffix, Partition: broker.AnyPartition, Key: []byte(o.ID), Value: v, Timestamp: at})
		}
		switch k := r.IntN(10); {
		case k == 0: // never paid
		case k == 1: // paid too late
			pay(ts + 10*minute + 1 + r.Int64N(10*minute))
		case k == 2: // paid twice: a retry within the window
			pay(ts + r.Int64N(4*minute))
			pay(ts + 5*minute + r.Int64N(4*minute))
		default:
			pay(ts - 3*minute + r.Int64N(13*minute+1))
		}
	}
	byTime := func(a, b broker.Record) int { return cmp.Compare(a.Timestamp, b.Timestamp) }
	slices.SortStableFunc(payments, byTime)
	return append(orders, payments...)
}

// Result is one output row: an order, paid by Method or unpaid.
type Result struct {
	Order  string
	User   string
	Amount int64 // in cents
	Paid   bool
	Method string
	Time   time.Time // the result's timestamp
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
// sorted by order then time, and the engine's metrics.
func Run(ctx context.Context, cfg Config) ([]Result, engine.Metrics, error) {
	dir := cfg.Dir
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eddy-payments-")
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
	for _, topic := range []string{"orders", "payments"} {
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
	results, err := readResults(ctx, log, "payments-matched"+suffix)
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
			s, err := serde.JSON[Settlement]().Decode(r.Value)
			if err != nil {
				return fmt.Errorf("%s@%d: %w", tp, r.Offset, err)
			}
			out = append(out, resultOf(s, r.Timestamp))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return sortResults(out), nil
}

func resultOf(s Settlement, ts int64) Result {
	r := Result{Order: s.Order.ID, User: s.Order.User, Amount: s.Order.Amount, Time: time.UnixMilli(ts).UTC()}
	if s.Payment != nil {
		r.Paid, r.Method = true, s.Payment.Method
	}
	return r
}

func sortResults(rs []Result) []Result {
	slices.SortFunc(rs, func(a, b Result) int {
		return cmp.Or(strings.Compare(a.Order, b.Order), a.Time.Compare(b.Time), strings.Compare(a.Method, b.Method))
	})
	return rs
}

// Print writes results as a table.
func Print(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-7s %-6s %9s  %-17s %s\n", "order", "user", "amount", "status", "at")
	for _, r := range results {
		status := "UNPAID"
		if r.Paid {
			status = "paid by " + r.Method
		}
		fmt.Fprintf(w, "%-7s %-6s %9s  %-17s %s\n", r.Order, r.User, fmt.Sprintf("$%d.%02d", r.Amount/100, r.Amount%100), status, r.Time.Format("15:04:05"))
	}
}

// Summarize counts the paid rows, one per matched payment, and the unpaid
// ones, one per order nobody paid in time.
func Summarize(results []Result) (paid, unpaid int) {
	for _, r := range results {
		if r.Paid {
			paid++
		} else {
			unpaid++
		}
	}
	return paid, unpaid
}

// describeTopology prints the topology as the -describe flag asks, as
// text or as a Mermaid flowchart, and returns the exit status. Every
// example has the flag: it is how `eddy describe payments` gets the topology
// (see `eddy describe -h`).
func describeTopology(stdout, stderr io.Writer, format string) int {
	t, err := Topology().Build()
	if err != nil {
		fmt.Fprintln(stderr, "payments:", err)
		return 1
	}
	text, err := t.Describe().Format(format)
	if err != nil {
		fmt.Fprintf(stderr, "payments: -describe: %v\n", err)
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
		fmt.Fprintln(os.Stderr, "payments:", err)
		os.Exit(1)
	}
	Print(os.Stdout, results)
	paid, unpaid := Summarize(results)
	fmt.Printf("\n%d orders: %d payments matched, %d orders unpaid; %d records processed, %d late, %d commits\n",
		cfg.Events, paid, unpaid, m.RecordsIn, m.LateRecords, m.Commits)
}
