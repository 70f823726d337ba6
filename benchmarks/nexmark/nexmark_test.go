package nexmark

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (0: random); replay one case with -run and -seed")

// Test inputs: testEvents events at testRate events per second of event
// time, so that they span 64 s: several tumbling windows, 32 hops of q5,
// auctions that last seconds, q11's sessions and q8's joined records
// closed and expired before the end (their grace is 30 s).
const (
	testEvents = 8000
	testRate   = 125
)

// testSeeds returns the seeds of a randomized test: the -seed flag's, or
// three random ones, each logged with how to replay it.
func testSeeds(t *testing.T) []uint64 {
	t.Helper()
	if *seedFlag != 0 {
		return []uint64{*seedFlag}
	}
	return []uint64{rand.Uint64(), rand.Uint64(), rand.Uint64()}
}

// TestQueries runs every query on the embedded engine, in memory, over
// generated events, and compares its output with the naive reference.
// Each seed also picks 1 to 3 input partitions.
func TestQueries(t *testing.T) {
	ctx := context.Background()
	for _, seed := range testSeeds(t) {
		events := generate(seed, testRate, testEvents)
		partitions := 1 + int32(seed%3)
		t.Logf("seed %d: %d partitions (replay with -run '^TestQueries$' -seed=%d)", seed, partitions, seed)
		for i := range queries {
			q := &queries[i]
			t.Run(fmt.Sprintf("%s/seed=%d", q.name, seed), func(t *testing.T) {
				want := q.reference(events)
				if len(want) == 0 {
					t.Fatalf("the reference of %s has no result for seed %d: the test would prove nothing", q.name, seed)
				}
				var got []string
				j := testJob(q, seed, partitions)
				j.inspect = func(ctx context.Context, log broker.Log) (err error) {
					got, err = readOutput(ctx, log, q, q.name)
					return err
				}
				res, err := j.run(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if res.Late != 0 {
					t.Errorf("%d records dropped as late", res.Late)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s output (-want +got):\n%s", q.name, diff)
				}
				t.Logf("%d result lines, %d output records, %s", len(want), res.Outputs, res.Elapsed.Round(time.Millisecond))
			})
		}
	}
}

// testJob returns a job on an in-memory engine with one worker that polls
// few records at a time, so that upstream tasks advance together: in a
// test, one poll would otherwise take all of a task's input, and the
// repartitioned records of one task could run past the grace of the next.
func testJob(q *query, seed uint64, partitions int32) job {
	return job{
		q: q, seed: seed, events: testEvents, rate: testRate, partitions: partitions,
		opts: engine.Options{InMemory: true, Workers: 1, MaxPollRecords: 100, CommitInterval: 20 * time.Millisecond},
	}
}

func TestQueriesList(t *testing.T) {
	got := strings.Join(Queries(), " ")
	if want := "q0 q1 q2 q3 q4 q5 q7 q8 q11"; got != want {
		t.Errorf("Queries() = %q, want %q", got, want)
	}
}

// TestGenerator checks the generated stream against nexmark's rules.
func TestGenerator(t *testing.T) {
	for _, seed := range testSeeds(t) {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			const n = 50_000
			events := generate(seed, FirstEventRate, n)
			if diff := cmp.Diff(events[:200], generate(seed, FirstEventRate, 200)); diff != "" {
				t.Fatalf("same seed, other events (-first +second):\n%s", diff)
			}
			if cmp.Equal(events[:200], generate(seed+1, FirstEventRate, 200)) {
				t.Fatalf("seeds %d and %d generate the same events", seed, seed+1)
			}
			var (
				kinds                        [3]int
				nextPerson, nextAuction      int64 = 1000, 1000
				delayed, hotBids, hotBidders int
				sizes                        [3]int
				maxDelay                     = MaxDelay.Milliseconds()
				epoch                        = Epoch.UnixMilli()
				maxAuctionMs                 = int64(2 * (1666*1000/FirstEventRate + 1))
				lastAuctionID, lastPersonID  int64
			)
			for i, e := range events {
				inOrder := epoch + int64(i)/10 // 100 µs per event
				if d := inOrder - e.Time(); d < 0 || d > maxDelay {
					t.Fatalf("event %d at %d: %d ms before its in-order time %d, want 0 to %d", i, e.Time(), d, inOrder, maxDelay)
				} else if d > 0 {
					delayed++
				}
				kind := 2
				if r := i % 50; r < 1 {
					kind = 0
				} else if r < 4 {
					kind = 1
				}
				kinds[kind]++
				switch kind {
				case 0:
					p := e.Person
					if p == nil || p.ID != nextPerson {
						t.Fatalf("event %d: want person %d, got %+v", i, nextPerson, e)
					}
					lastPersonID = p.ID
					nextPerson++
					sizes[0] += 8 + len(p.Name) + len(p.EmailAddress) + len(p.CreditCard) + len(p.City) + len(p.State) + len(p.Extra)
				case 1:
					a := e.Auction
					if a == nil || a.ID != nextAuction {
						t.Fatalf("event %d: want auction %d, got %+v", i, nextAuction, e)
					}
					lastAuctionID = a.ID
					nextAuction++
					if a.Expires <= a.DateTime || a.Expires > a.DateTime+maxAuctionMs {
						t.Fatalf("auction %d lasts %d ms, want 1 to %d", a.ID, a.Expires-a.DateTime, maxAuctionMs)
					}
					if a.Category < 10 || a.Category > 14 || a.Seller < 1000 || a.Seller > lastPersonID+10 || a.Reserve < a.InitialBid {
						t.Fatalf("auction %+v: category, seller or reserve out of range", a)
					}
					sizes[1] += 8 + len(a.ItemName) + len(a.Description) + 40 + len(a.Extra)
				case 2:
					b := e.Bid
					if b == nil {
						t.Fatalf("event %d: want a bid, got %+v", i, e)
					}
					if b.Auction == (lastAuctionID-1000)/100*100+1000 {
						hotBids++
					}
					if b.Bidder == (lastPersonID-1000)/100*100+1001 {
						hotBidders++
					}
					if b.Price < 100 || b.Price > 100_000_000 || b.Bidder < 1000 || b.Bidder > lastPersonID+10 {
						t.Fatalf("bid %+v: price or bidder out of range", b)
					}
					sizes[2] += 32 + len(b.Extra)
				}
			}
			if want := [3]int{n / 50, 3 * n / 50, 46 * n / 50}; kinds != want {
				t.Errorf("people, auctions, bids: %v, want %v", kinds, want)
			}
			for i, avg := range []int{200, 500, 100} {
				if got := sizes[i] / kinds[i]; got < avg*95/100 || got > avg*105/100 {
					t.Errorf("average size of kind %d: %d bytes, want about %d", i, got, avg)
				}
			}
			// Shares: delayed 1/10; hot auction at least 1/2, hot bidder
			// at least 3/4 (random picks can hit them too).
			within := func(what string, got int, of int, lo, hi float64) {
				if f := float64(got) / float64(of); f < lo || f > hi {
					t.Errorf("%s: %.3f of %d, want %.2f to %.2f", what, f, of, lo, hi)
				}
			}
			within("delayed events", delayed, n, 0.09, 0.11)
			within("bids for the hot auction", hotBids, kinds[2], 0.49, 0.56)
			within("bids of the hot bidder", hotBidders, kinds[2], 0.74, 0.78)
		})
	}
}

// TestRun runs a small Run on disk, as the eddy bench command does.
func TestRun(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	res, err := Run(ctx, "q0", Config{Events: 2000, Seed: 7, Partitions: 2, Workers: 2, StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	bids := int64(0)
	for _, e := range generate(7, FirstEventRate, 2000) {
		if e.Bid != nil {
			bids++
		}
	}
	if res.Query != "q0" || res.Events != 2000 || res.Outputs != bids || res.Late != 0 {
		t.Errorf("Run = %+v, want q0 over 2000 events with %d outputs, none late", res, bids)
	}
	if res.Load <= 0 || res.Elapsed <= 0 || res.CPU <= 0 {
		t.Errorf("Run = %+v: want positive load, elapsed and CPU times", res)
	}
	if _, err := Run(ctx, "q0", Config{Events: 10, StateDir: dir}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Run in a used state dir: err = %v, want one saying it is not empty", err)
	}
	for _, c := range []struct {
		query string
		cfg   Config
		want  string
	}{
		{"q6", Config{}, `unknown query "q6"`},
		{"q0", Config{Events: -1}, "Events must not be negative"},
		{"q0", Config{Partitions: -1}, "Partitions must not be negative"},
		{"q0", Config{Workers: -1}, "Workers must not be negative"},
	} {
		if _, err := Run(ctx, c.query, c.cfg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Run(%s, %+v): err = %v, want %q", c.query, c.cfg, err, c.want)
		}
	}
}

// handmade returns a few events that hit the queries' edge cases; times
// are ms after Epoch. Per topic, they are in this order.
func handmade() []Event {
	t0 := Epoch.UnixMilli()
	person := func(id int64, name, city, state string, t int64) Event {
		return Event{Person: &Person{ID: id, Name: name, City: city, State: state, DateTime: t0 + t}}
	}
	auction := func(id, seller, category, t, expires int64) Event {
		return Event{Auction: &Auction{ID: id, Seller: seller, Category: category, DateTime: t0 + t, Expires: t0 + expires}}
	}
	bid := func(auction, bidder, price, t int64) Event {
		return Event{Bid: &Bid{Auction: auction, Bidder: bidder, Price: price, Channel: "Apple", DateTime: t0 + t}}
	}
	return []Event{
		person(1000, "Ann", "Portland", "OR", 1000),
		person(1001, "Bob", "Los Angeles", "CA", 2000),
		person(1002, "Cy", "Seattle", "WA", 3000),
		auction(1000, 1000, 10, 1500, 5000),
		auction(1001, 1001, 10, 11000, 20000),
		// Delayed: its bids at 2550 and 4000 come before it.
		auction(1002, 1002, 11, 2500, 4500),
		auction(1003, 1000, 10, 20000, 25000),
		bid(1000, 1001, 300, 1500),
		bid(1107, 1002, 42, 2000),  // no such auction; q2 selects it
		bid(1002, 1002, 800, 2499), // before its auction started
		bid(1002, 1002, 700, 2550),
		bid(1002, 1002, 900, 4000),  // ties with the bid at 5001 in q7
		bid(1000, 1002, 500, 5000),  // exactly at expiry: counts in q4
		bid(1000, 1002, 900, 5001),  // after expiry
		bid(1001, 1001, 101, 11500), // 10 s after 1500: one session
		bid(1001, 1001, 100, 21501), // 10.001 s after: another
	}
}

// TestQueriesHandmade runs every query on handmade events: its output must
// equal the reference's, and hold the lines written here by hand, which
// check the references too.
func TestQueriesHandmade(t *testing.T) {
	t0 := Epoch.UnixMilli()
	at := func(format string, ms ...int64) string {
		args := make([]any, len(ms))
		for i, m := range ms {
			args[i] = t0 + m
		}
		return fmt.Sprintf(format, args...)
	}
	bid := func(auction, bidder, price, t int64) string {
		return fmt.Sprintf("%d\t%d\t%d\t%d\tApple\t\t", auction, bidder, price, t0+t)
	}
	for _, c := range []struct {
		query string
		// exact: the whole output; else lines it must contain.
		exact bool
		want  []string
	}{
		{"q2", true, []string{"1107\t1107\t42"}},
		{"q3", true, []string{"1000\tAnn\tPortland\tOR\t1000", "1000\tAnn\tPortland\tOR\t1003", "1001\tBob\tLos Angeles\tCA\t1001"}},
		{"q4", true, []string{"10\t2\t601\t300", "11\t1\t900\t900"}},
		{"q5", false, []string{at("%d\t%d\t1000\t3", 0, 10000), at("%d\t%d\t1002\t3", 0, 10000), at("%d\t%d\t1002\t3", 2000, 12000)}},
		{"q7", true, []string{
			at("%d\t%d\t900\t", 0, 10000) + bid(1000, 1002, 900, 5001),
			at("%d\t%d\t900\t", 0, 10000) + bid(1002, 1002, 900, 4000),
			at("%d\t%d\t101\t", 10000, 20000) + bid(1001, 1001, 101, 11500),
			at("%d\t%d\t100\t", 20000, 30000) + bid(1001, 1001, 100, 21501),
		}},
		{"q8", true, []string{at("1000\tAnn\t%d", 0), at("1002\tCy\t%d", 0)}},
		{"q11", true, []string{at("1001\t%d\t%d\t2", 1500, 11500), at("1001\t%d\t%d\t1", 21501, 21501), at("1002\t%d\t%d\t6", 2000, 5001)}},
		{"q0", false, nil},
		{"q1", false, nil},
	} {
		t.Run(c.query, func(t *testing.T) {
			q, err := lookup(c.query)
			if err != nil {
				t.Fatal(err)
			}
			events := handmade()
			ref := q.reference(events)
			var got []string
			j := testJob(q, 0, 1)
			j.input = events
			j.inspect = func(ctx context.Context, log broker.Log) (err error) {
				got, err = readOutput(ctx, log, q, q.name)
				return err
			}
			res, err := j.run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if res.Late != 0 {
				t.Errorf("%d records dropped as late", res.Late)
			}
			if diff := cmp.Diff(ref, got); diff != "" {
				t.Errorf("output (-reference +got):\n%s", diff)
			}
			for name, lines := range map[string][]string{"output": got, "reference": ref} {
				if c.exact {
					if diff := cmp.Diff(sorted(c.want), lines); diff != "" {
						t.Errorf("%s (-want +got):\n%s", name, diff)
					}
					continue
				}
				for _, w := range c.want {
					if !slices.Contains(lines, w) {
						t.Errorf("%s lacks %q:\n%s", name, w, strings.Join(lines, "\n"))
					}
				}
			}
		})
	}
}

var verifyEvents = flag.Int("nexmark.verify", 0, "TestQueriesAtScale: events to check every query on, on disk with the default workers and partitions (0: skip)")

// TestQueriesAtScale checks the queries' output against the references at
// benchmark scale, as Run runs them (on disk, GOMAXPROCS workers, as many
// partitions, nexmark's event rate). It is skipped unless -nexmark.verify
// gives a number of events; q11 takes minutes at 1M.
func TestQueriesAtScale(t *testing.T) {
	if *verifyEvents == 0 {
		t.Skip("-nexmark.verify not set")
	}
	seed := *seedFlag
	t.Logf("seed %d, %d events", seed, *verifyEvents)
	events := generate(seed, FirstEventRate, *verifyEvents)
	for i := range queries {
		q := &queries[i]
		t.Run(q.name, func(t *testing.T) {
			want := q.reference(events)
			var got []string
			j := job{q: q, seed: seed, events: *verifyEvents, rate: FirstEventRate, partitions: int32(runtime.GOMAXPROCS(0)),
				opts: engine.Options{StateDir: t.TempDir()}}
			j.inspect = func(ctx context.Context, log broker.Log) (err error) {
				got, err = readOutput(ctx, log, q, q.name)
				return err
			}
			res, err := j.run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d result lines, %d output records, %d late, processed in %s", len(want), res.Outputs, res.Late, res.Elapsed.Round(time.Millisecond))
			if diff := cmp.Diff(want, got); diff != "" {
				if len(diff) > 4000 {
					diff = diff[:4000] + "\n..."
				}
				t.Errorf("%s output (-want +got):\n%s", q.name, diff)
			}
		})
	}
}
