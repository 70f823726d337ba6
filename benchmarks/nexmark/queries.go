package nexmark

import (
	"slices"
	"time"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// Topics names the topics of a query: its three inputs, keyed by person
// id, auction id and the bid's auction id (serde.Int64), with
// JSON values (serde.JSON of Person, Auction, Bid), and its output.
type Topics struct {
	Person, Auction, Bid string
	Output               string
}

// DefaultTopics returns the topics Run uses: "person", "auction", "bid",
// and the query's name as its output.
func DefaultTopics(query string) Topics {
	return Topics{Person: "person", Auction: "auction", Bid: "bid", Output: query}
}

// Window sizes of the queries: nexmark's, shortened as in its Flink
// version (windowSizeSec = 10; q5 hops every 2 s).
const (
	windowSize = 10 * time.Second
	hopAdvance = 2 * time.Second
	sessionGap = 10 * time.Second
	q2Modulus  = 123 // q2 keeps the bids of every 123rd auction
	q3Category = 10
	euroPerUSD = 0.908
	windowMs   = int64(windowSize / time.Millisecond)
	hopMs      = int64(hopAdvance / time.Millisecond)
)

// Grace periods. A windowed operator that reads an input topic directly
// sees its records at most MaxDelay behind the task's stream-time, so
// MaxDelay of grace drops nothing, as nexmark's 4 s watermark delay
// does. Behind a repartition, records of several upstream tasks
// interleave in the order the tasks ran, not in event time: skewGrace
// also covers how far one upstream task may run ahead of another. A
// record later than that is dropped and counted (Result.Late).
const (
	sourceGrace = MaxDelay
	skewGrace   = 30 * time.Second
)

var q3States = []string{"OR", "ID", "CA"}

func app(query string) string { return "nexmark-" + query }

func bids(b *topology.Builder, t Topics) topology.Stream[int64, Bid] {
	return topology.StreamFrom(b, t.Bid, serde.Int64(), serde.JSON[Bid]())
}

func auctions(b *topology.Builder, t Topics) topology.Stream[int64, Auction] {
	return topology.StreamFrom(b, t.Auction, serde.Int64(), serde.JSON[Auction]())
}

func persons(b *topology.Builder, t Topics) topology.Stream[int64, Person] {
	return topology.StreamFrom(b, t.Person, serde.Int64(), serde.JSON[Person]())
}

// Q0 passes every bid through: decoded and encoded again, keyed by
// auction (SELECT * FROM bid).
func Q0(t Topics) *topology.Builder {
	b := topology.New(app("q0"))
	bids(b, t).To(t.Output)
	return b
}

// EuroBid is a result of q1: a bid with its price in euros.
type EuroBid struct {
	Auction  int64   `json:"auction"`
	Bidder   int64   `json:"bidder"`
	Price    float64 `json:"price"`
	DateTime int64   `json:"dateTime"`
	Extra    string  `json:"extra"`
}

// Q1 converts every bid's price from dollars to euros (price * 0.908).
func Q1(t Topics) *topology.Builder {
	b := topology.New(app("q1"))
	topology.MapValues(bids(b, t), func(_ int64, v Bid) EuroBid {
		return EuroBid{Auction: v.Auction, Bidder: v.Bidder, Price: euroPerUSD * float64(v.Price), DateTime: v.DateTime, Extra: v.Extra}
	}).WithValueSerde(serde.JSON[EuroBid]()).To(t.Output)
	return b
}

// AuctionPrice is a result of q2.
type AuctionPrice struct {
	Auction int64 `json:"auction"`
	Price   int64 `json:"price"`
}

// Q2 selects the bids of every 123rd auction (auction % 123 = 0), with
// their price.
func Q2(t Topics) *topology.Builder {
	b := topology.New(app("q2"))
	sel := bids(b, t).Filter(func(_ int64, v Bid) bool { return v.Auction%q2Modulus == 0 })
	topology.MapValues(sel, func(_ int64, v Bid) AuctionPrice {
		return AuctionPrice{Auction: v.Auction, Price: v.Price}
	}).WithValueSerde(serde.JSON[AuctionPrice]()).To(t.Output)
	return b
}

// HotItems is a result of q5: the auctions with the most bids in the
// hopping window [Start, End), and how many bids each had.
type HotItems struct {
	Start    int64   `json:"start"`
	End      int64   `json:"end"`
	Count    int64   `json:"count"`
	Auctions []int64 `json:"auctions"`
}

// auctionCount is the bid count of an auction in a window.
type auctionCount struct {
	Auction int64 `json:"auction"`
	End     int64 `json:"end"`
	Count   int64 `json:"count"`
}

// Q5 finds the hot items: the auctions with the most bids in each 10 s
// window, every 2 s. It counts the bids of each auction in hopping
// windows (emitted when they close), then re-keys the counts by window
// and keeps, per window, the largest count and its auctions, in a table
// keyed by window start: the output holds its updates, the last one of a
// window is final.
func Q5(t Topics) *topology.Builder {
	b := topology.New(app("q5"))
	counts := topology.CountWindows(
		bids(b, t).GroupByKey().
			WindowedBy(window.Hopping(windowSize, hopAdvance).Grace(sourceGrace)).EmitOnWindowClose(),
		topology.Named("bids-per-auction"))
	byWindow := topology.Map(counts.ToStream(), func(w window.Windowed[int64], n int64) (int64, auctionCount) {
		return w.Start, auctionCount{Auction: w.Key, End: w.End, Count: n}
	}).WithKeySerde(serde.Int64()).WithValueSerde(serde.JSON[auctionCount]())
	topology.Aggregate(byWindow.GroupByKey(),
		func() HotItems { return HotItems{} },
		func(start int64, c auctionCount, h HotItems) HotItems {
			switch {
			case c.Count > h.Count:
				return HotItems{Start: start, End: c.End, Count: c.Count, Auctions: []int64{c.Auction}}
			case c.Count == h.Count:
				h.Auctions = insertSorted(h.Auctions, c.Auction)
			}
			return h
		},
		serde.JSON[HotItems](), topology.Named("hot-items")).To(t.Output)
	return b
}

// insertSorted adds v to the sorted set s.
func insertSorted(s []int64, v int64) []int64 {
	i, found := slices.BinarySearch(s, v)
	if found {
		return s
	}
	return slices.Insert(s, i, v)
}

// HighestBid is a result of q7: the bids with the highest price in the
// tumbling window [Start, End).
type HighestBid struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Price int64 `json:"price"`
	Bids  []Bid `json:"bids"`
}

// add folds bid into h, keeping the bids of the highest price.
func (h HighestBid) add(bids ...Bid) HighestBid {
	for _, bid := range bids {
		switch {
		case len(h.Bids) == 0 || bid.Price > h.Price:
			h.Price, h.Bids = bid.Price, []Bid{bid}
		case bid.Price == h.Price:
			h.Bids = append(h.Bids, bid)
		}
	}
	return h
}

// Q7 finds the highest bid of each 10 s tumbling window. Nexmark joins
// the bids with the window maxima; here the maximum is taken in two
// steps, as a combiner would: per auction and window (bids are keyed by
// auction, so without a repartition, emitted when the window closes),
// then per window, in a table keyed by window start whose last update
// of a window is final. Bids of equal highest price are all kept.
func Q7(t Topics) *topology.Builder {
	b := topology.New(app("q7"))
	perAuction := topology.AggregateWindows(
		bids(b, t).GroupByKey().WindowedBy(window.Tumbling(windowSize).Grace(sourceGrace)).EmitOnWindowClose(),
		func() HighestBid { return HighestBid{} },
		func(_ int64, v Bid, h HighestBid) HighestBid { return h.add(v) },
		serde.JSON[HighestBid](), topology.Named("highest-per-auction"))
	byWindow := topology.Map(perAuction.ToStream(), func(w window.Windowed[int64], h HighestBid) (int64, HighestBid) {
		h.Start, h.End = w.Start, w.End
		return w.Start, h
	}).WithKeySerde(serde.Int64()).WithValueSerde(serde.JSON[HighestBid]())
	topology.Aggregate(byWindow.GroupByKey(),
		func() HighestBid { return HighestBid{} },
		func(_ int64, v, h HighestBid) HighestBid {
			h = h.add(v.Bids...)
			h.Start, h.End = v.Start, v.End
			return h
		},
		serde.JSON[HighestBid](), topology.Named("highest-per-window")).To(t.Output)
	return b
}

// Q11 counts the bids of each bidder's sessions: runs of bids at most
// 10 s apart. Bids are re-keyed by bidder (a repartition), counted in
// session windows and emitted when a session closes. The output key is
// the bidder and the session's first and last bid times,
// serde.SessionWindowed(serde.Int64()); the value the count.
func Q11(t Topics) *topology.Builder {
	b := topology.New(app("q11"))
	byBidder := topology.SelectKey(bids(b, t), func(_ int64, v Bid) int64 { return v.Bidder }).
		WithKeySerde(serde.Int64())
	topology.CountSessions(
		byBidder.GroupByKey().SessionWindowedBy(window.Sessions(sessionGap).Grace(skewGrace)).EmitOnWindowClose(),
		topology.Named("bids-per-session")).
		ToStream().To(t.Output)
	return b
}

// seller is what q3 keeps of a person.
type seller struct {
	Name  string `json:"name"`
	City  string `json:"city"`
	State string `json:"state"`
}

// LocalItems is a result of q3: a seller in OR, ID or CA and the
// auctions of category 10 they put up so far, sorted.
type LocalItems struct {
	Person   int64   `json:"person"`
	Name     string  `json:"name"`
	City     string  `json:"city"`
	State    string  `json:"state"`
	Auctions []int64 `json:"auctions"`
}

// Q3 suggests local items: who sells in OR, ID or CA in category 10, and
// which auctions. Nexmark's SQL is an unbounded inner join of auctions and
// people; here both sides are tables, joined by person id: the people of
// those states (latest row per id) and, per seller, the set of their
// category-10 auctions (an aggregation after re-keying auctions by
// seller). Every change of either side re-emits the seller's row; the
// last row of a seller is final, whatever order the inputs were
// processed in.
func Q3(t Topics) *topology.Builder {
	b := topology.New(app("q3"))
	local := persons(b, t).Filter(func(_ int64, p Person) bool { return slices.Contains(q3States, p.State) })
	sellers := topology.MapValues(local, func(_ int64, p Person) seller {
		return seller{Name: p.Name, City: p.City, State: p.State}
	}).WithValueSerde(serde.JSON[seller]()).
		GroupByKey().Reduce(func(_, v seller) seller { return v }, topology.Named("local-sellers"))
	items := topology.Map(
		auctions(b, t).Filter(func(_ int64, a Auction) bool { return a.Category == q3Category }),
		func(_ int64, a Auction) (int64, int64) { return a.Seller, a.ID }).
		WithKeySerde(serde.Int64()).WithValueSerde(serde.Int64())
	bySeller := topology.Aggregate(items.GroupByKey(),
		func() []int64 { return nil },
		func(_ int64, id int64, ids []int64) []int64 { return insertSorted(ids, id) },
		serde.JSON[[]int64](), topology.Named("auctions-by-seller"))
	topology.JoinTables(sellers, bySeller, func(id int64, s seller, ids []int64) LocalItems {
		return LocalItems{Person: id, Name: s.Name, City: s.City, State: s.State, Auctions: ids}
	}, topology.Named("local-items")).
		WithValueSerde(serde.JSON[LocalItems]()).To(t.Output)
	return b
}

// NewUser is a result of q8: a person who put up an auction in the 10 s
// tumbling window they registered in, which starts at Start.
type NewUser struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Start int64  `json:"start"`
}

// q8Side is a person (Person set) or an auction of the seller ID, in the
// window starting at Start.
type q8Side struct {
	ID     int64  `json:"id"`
	Name   string `json:"name,omitempty"`
	Start  int64  `json:"start"`
	Person bool   `json:"person,omitempty"`
}

// q8Match is a joined person and auction; Same if their windows are one.
type q8Match struct {
	User NewUser `json:"user"`
	Same bool    `json:"same"`
}

// Q8 monitors new users: people who put up an auction in the 10 s window
// in which they registered. People and auctions (re-keyed by seller) are
// joined by person id within 9.999 s (a stream-stream join), and the
// pairs in one tumbling window kept; a table keyed by person removes the
// duplicates of a person with several auctions.
//
// Both inputs are merged before they are re-keyed, so that the join's
// two repartition topics are written by the same tasks, in timestamp
// order: re-keyed on their own, people would reach the join far ahead of
// the auctions (the engine polls each input partition equally, and people
// are a third as frequent), and the join would drop the auctions of
// people it no longer holds.
func Q8(t Topics) *topology.Builder {
	b := topology.New(app("q8"))
	people := topology.Map(persons(b, t), func(id int64, p Person) (int64, q8Side) {
		return id, q8Side{ID: id, Name: p.Name, Start: windowStart(p.DateTime), Person: true}
	})
	sellers := topology.Map(auctions(b, t), func(_ int64, a Auction) (int64, q8Side) {
		return a.Seller, q8Side{ID: a.Seller, Start: windowStart(a.DateTime)}
	})
	both := people.Merge(sellers).WithKeySerde(serde.Int64()).WithValueSerde(serde.JSON[q8Side]())
	sides := both.Branch(
		func(_ int64, s q8Side) bool { return s.Person },
		func(_ int64, s q8Side) bool { return !s.Person })
	joined := topology.Join(sides[0], sides[1],
		topology.JoinTimeDifference(windowSize-time.Millisecond).Grace(skewGrace),
		func(id int64, p, a q8Side) q8Match {
			return q8Match{User: NewUser{ID: id, Name: p.Name, Start: p.Start}, Same: p.Start == a.Start}
		}, topology.Named("people-auctions"))
	users := topology.MapValues(joined.Filter(func(_ int64, m q8Match) bool { return m.Same }),
		func(_ int64, m q8Match) NewUser { return m.User }).WithValueSerde(serde.JSON[NewUser]())
	users.GroupByKey().Reduce(func(first, _ NewUser) NewUser { return first }, topology.Named("new-users")).
		To(t.Output)
	return b
}

func windowStart(t int64) int64 { return t - mod(t, windowMs) }

func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// q4Event is an auction's window or a bid's price, for q4.
type q4Event struct {
	Auction *q4Auction `json:"auction,omitempty"`
	Bid     *q4Bid     `json:"bid,omitempty"`
}

type q4Auction struct {
	Category int64 `json:"category"`
	DateTime int64 `json:"dateTime"`
	Expires  int64 `json:"expires"`
}

type q4Bid struct {
	Price    int64 `json:"price"`
	DateTime int64 `json:"dateTime"`
}

// closing is q4's state of one auction: its window once known, the
// highest price of its bids in the window (-1: none), and, until the
// auction is known, its bids.
type closing struct {
	Known   bool      `json:"known"`
	Auction q4Auction `json:"auction"`
	Price   int64     `json:"price"`
	Pending []q4Bid   `json:"pending,omitempty"`
}

func (c closing) addBid(b q4Bid) closing {
	if !c.Known {
		c.Pending = append(c.Pending, b)
	} else if c.Auction.DateTime <= b.DateTime && b.DateTime <= c.Auction.Expires {
		c.Price = max(c.Price, b.Price)
	}
	return c
}

// CategoryPrice is a result of q4: the average closing price of the
// auctions of a category that had a bid in time, over Auctions auctions
// whose closing prices sum to Sum; Average is Sum/Auctions, rounded
// toward zero (Flink's AVG of a BIGINT).
type CategoryPrice struct {
	Category int64 `json:"category"`
	Auctions int64 `json:"auctions"`
	Sum      int64 `json:"sum"`
	Average  int64 `json:"average"`
}

// Q4 computes the average closing price per category: the closing price
// of an auction is its highest bid between its start and its expiry,
// both included. Nexmark's SQL joins auctions and bids; here they are
// co-grouped: both are keyed by auction, so they are merged without a
// repartition and folded into one row per auction (a bid that comes
// before its auction waits in the row), whose closing price is exact
// whatever order auctions and bids are processed in. The rows are then
// grouped by category in a table aggregation that subtracts an auction's
// previous closing price when it rises: the last row of each category is
// final.
//
// A windowed stream-stream join (auction, then its bids within the
// longest auction) is exact on a trickle of input but not on a backlog:
// the engine polls the auction and bid partitions equally, auctions are
// 15 times sparser, so they are processed far ahead of their bids and
// leave the join's window before the bids arrive (on 1M events, 72% of
// the matches were lost, none counted as late). A stream-table join
// misses the bids processed before their auction, which the SQL join
// matches.
func Q4(t Topics) *topology.Builder {
	b := topology.New(app("q4"))
	as := topology.MapValues(auctions(b, t), func(_ int64, a Auction) q4Event {
		return q4Event{Auction: &q4Auction{Category: a.Category, DateTime: a.DateTime, Expires: a.Expires}}
	})
	bs := topology.MapValues(bids(b, t), func(_ int64, v Bid) q4Event {
		return q4Event{Bid: &q4Bid{Price: v.Price, DateTime: v.DateTime}}
	})
	events := as.Merge(bs).WithValueSerde(serde.JSON[q4Event]())
	closings := topology.Aggregate(events.GroupByKey(),
		func() closing { return closing{Price: -1} },
		func(_ int64, e q4Event, c closing) closing {
			if e.Bid != nil {
				return c.addBid(*e.Bid)
			}
			c.Known, c.Auction = true, *e.Auction
			pending := c.Pending
			c.Pending = nil
			for _, p := range pending {
				c = c.addBid(p)
			}
			return c
		},
		serde.JSON[closing](), topology.Named("closing-prices"))
	// Auctions with no closing price yet count in no category.
	byCategory := topology.GroupTable(closings, func(_ int64, c closing) (int64, int64) {
		return c.Auction.Category, c.Price
	}, serde.Int64(), serde.Int64())
	topology.AggregateTable(byCategory,
		func() CategoryPrice { return CategoryPrice{} },
		func(cat int64, price int64, a CategoryPrice) CategoryPrice { return a.with(cat, price, +1) },
		func(cat int64, price int64, a CategoryPrice) CategoryPrice { return a.with(cat, price, -1) },
		serde.JSON[CategoryPrice](), topology.Named("average-per-category")).To(t.Output)
	return b
}

// with adds (sign +1) or removes (-1) an auction's closing price.
func (a CategoryPrice) with(cat, price, sign int64) CategoryPrice {
	if price < 0 {
		return a // no closing price
	}
	a.Category = cat
	a.Auctions += sign
	a.Sum += sign * price
	a.Average = 0
	if a.Auctions != 0 {
		a.Average = a.Sum / a.Auctions
	}
	return a
}
