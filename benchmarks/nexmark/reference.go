package nexmark

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// query is one Nexmark query: its topology, how to read its output as text
// lines, and a naive reference computing the same lines from the events.
type query struct {
	name  string
	build func(Topics) *topology.Builder
	// table: the output is a table's changes; only the last record of
	// each key counts (a tombstone deletes it). Otherwise every record is
	// a result.
	table bool
	// lines turns an output record into result lines.
	lines func(key, value []byte) ([]string, error)
	// reference computes the result lines from all events in memory,
	// with plain Go: no eddy code.
	reference func([]Event) []string
}

// queries are the implemented queries, in nexmark's order.
var queries = []query{
	{name: "q0", build: Q0, lines: bidLines, reference: refQ0},
	{name: "q1", build: Q1, lines: q1Lines, reference: refQ1},
	{name: "q2", build: Q2, lines: q2Lines, reference: refQ2},
	{name: "q3", build: Q3, table: true, lines: q3Lines, reference: refQ3},
	{name: "q4", build: Q4, table: true, lines: q4Lines, reference: refQ4},
	{name: "q5", build: Q5, table: true, lines: q5Lines, reference: refQ5},
	{name: "q7", build: Q7, table: true, lines: q7Lines, reference: refQ7},
	{name: "q8", build: Q8, table: true, lines: q8Lines, reference: refQ8},
	{name: "q11", build: Q11, lines: q11Lines, reference: refQ11},
}

func lookup(name string) (*query, error) {
	for i := range queries {
		if queries[i].name == name {
			return &queries[i], nil
		}
	}
	return nil, fmt.Errorf("nexmark: unknown query %q (have %s)", name, strings.Join(Queries(), ", "))
}

// readOutput returns the result lines of q in topic, sorted.
func readOutput(ctx context.Context, log broker.Log, q *query, topic string) ([]string, error) {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	cfg, ok := desc[topic]
	if !ok {
		return nil, fmt.Errorf("nexmark: %s: output topic %s: %w", q.name, topic, broker.ErrUnknownTopic)
	}
	var out []string
	latest := map[string][]byte{} // table outputs: key -> last value
	for p := range cfg.Partitions {
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return nil, err
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error {
			if q.table {
				if r.Value == nil {
					delete(latest, string(r.Key))
				} else {
					latest[string(r.Key)] = r.Value
				}
				return nil
			}
			ls, err := q.lines(r.Key, r.Value)
			if err != nil {
				return fmt.Errorf("nexmark: %s: %s@%d: %w", q.name, tp, r.Offset, err)
			}
			out = append(out, ls...)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	for k, v := range latest {
		ls, err := q.lines([]byte(k), v)
		if err != nil {
			return nil, fmt.Errorf("nexmark: %s: key %x: %w", q.name, k, err)
		}
		out = append(out, ls...)
	}
	slices.Sort(out)
	return out, nil
}

func decode[T any](b []byte) (T, error) { return serde.JSON[T]().Decode(b) }

func decodeKey(b []byte) (int64, error) { return serde.Int64().Decode(b) }

func bidLine(b Bid) string {
	return fmt.Sprintf("%d\t%d\t%d\t%d\t%s\t%s\t%s", b.Auction, b.Bidder, b.Price, b.DateTime, b.Channel, b.URL, b.Extra)
}

// bidLines reads q0: "key auction bidder price dateTime channel url extra".
func bidLines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	b, err := decode[Bid](v)
	if err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%d\t%s", key, bidLine(b))}, nil
}

func refQ0(events []Event) []string {
	var out []string
	for _, e := range events {
		if b := e.Bid; b != nil {
			out = append(out, fmt.Sprintf("%d\t%s", b.Auction, bidLine(*b)))
		}
	}
	return sorted(out)
}

func euroLine(key int64, b EuroBid) string {
	return fmt.Sprintf("%d\t%d\t%d\t%s\t%d\t%s", key, b.Auction, b.Bidder, strconv.FormatFloat(b.Price, 'f', 3, 64), b.DateTime, b.Extra)
}

// q1Lines reads q1: "key auction bidder euros dateTime extra".
func q1Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	b, err := decode[EuroBid](v)
	if err != nil {
		return nil, err
	}
	return []string{euroLine(key, b)}, nil
}

func refQ1(events []Event) []string {
	var out []string
	for _, e := range events {
		if b := e.Bid; b != nil {
			eb := EuroBid{Auction: b.Auction, Bidder: b.Bidder, Price: float64(b.Price) * 0.908, DateTime: b.DateTime, Extra: b.Extra}
			out = append(out, euroLine(b.Auction, eb))
		}
	}
	return sorted(out)
}

// q2Lines reads q2: "key auction price".
func q2Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	a, err := decode[AuctionPrice](v)
	if err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%d\t%d\t%d", key, a.Auction, a.Price)}, nil
}

func refQ2(events []Event) []string {
	var out []string
	for _, e := range events {
		if b := e.Bid; b != nil && b.Auction%123 == 0 {
			out = append(out, fmt.Sprintf("%d\t%d\t%d", b.Auction, b.Auction, b.Price))
		}
	}
	return sorted(out)
}

// q3Lines reads q3: one "person name city state auction" per auction.
func q3Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	l, err := decode[LocalItems](v)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range l.Auctions {
		out = append(out, fmt.Sprintf("%d\t%s\t%s\t%s\t%d", key, l.Name, l.City, l.State, a))
	}
	return out, nil
}

func refQ3(events []Event) []string {
	people := map[int64]*Person{}
	for _, e := range events {
		if p := e.Person; p != nil && (p.State == "OR" || p.State == "ID" || p.State == "CA") {
			people[p.ID] = p
		}
	}
	var out []string
	for _, e := range events {
		if a := e.Auction; a != nil && a.Category == 10 {
			if p := people[a.Seller]; p != nil {
				out = append(out, fmt.Sprintf("%d\t%s\t%s\t%s\t%d", p.ID, p.Name, p.City, p.State, a.ID))
			}
		}
	}
	return sorted(out)
}

// q4Lines reads q4: "category auctions sum average", for the categories
// with at least one auction.
func q4Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	c, err := decode[CategoryPrice](v)
	if err != nil || c.Auctions == 0 {
		return nil, err
	}
	return []string{fmt.Sprintf("%d\t%d\t%d\t%d", key, c.Auctions, c.Sum, c.Average)}, nil
}

func refQ4(events []Event) []string {
	auctions := map[int64]*Auction{}
	for _, e := range events {
		if a := e.Auction; a != nil {
			auctions[a.ID] = a
		}
	}
	final := map[int64]int64{} // auction -> highest bid in its time
	for _, e := range events {
		b := e.Bid
		if b == nil {
			continue
		}
		if a := auctions[b.Auction]; a != nil && a.DateTime <= b.DateTime && b.DateTime <= a.Expires {
			if p, ok := final[a.ID]; !ok || b.Price > p {
				final[a.ID] = b.Price
			}
		}
	}
	type sum struct{ n, total int64 }
	perCategory := map[int64]sum{}
	for id, price := range final {
		s := perCategory[auctions[id].Category]
		perCategory[auctions[id].Category] = sum{s.n + 1, s.total + price}
	}
	var out []string
	for c, s := range perCategory {
		out = append(out, fmt.Sprintf("%d\t%d\t%d\t%d", c, s.n, s.total, s.total/s.n))
	}
	return sorted(out)
}

// q5Lines reads q5: one "start end auction count" per hot auction.
func q5Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	h, err := decode[HotItems](v)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, a := range h.Auctions {
		out = append(out, fmt.Sprintf("%d\t%d\t%d\t%d", key, h.End, a, h.Count))
	}
	return out, nil
}

func refQ5(events []Event) []string {
	type window struct{ start, auction int64 }
	counts := map[window]int64{}
	for _, e := range events {
		b := e.Bid
		if b == nil {
			continue
		}
		// The windows [s, s+10s) with s a multiple of 2 s, s >= 0, that
		// hold the bid.
		for s := b.DateTime - mod(b.DateTime, hopMs); s > b.DateTime-windowMs && s >= 0; s -= hopMs {
			counts[window{s, b.Auction}]++
		}
	}
	highest := map[int64]int64{}
	for w, n := range counts {
		highest[w.start] = max(highest[w.start], n)
	}
	var out []string
	for w, n := range counts {
		if n == highest[w.start] {
			out = append(out, fmt.Sprintf("%d\t%d\t%d\t%d", w.start, w.start+windowMs, w.auction, n))
		}
	}
	return sorted(out)
}

// q7Lines reads q7: one "start end price bid" per highest bid.
func q7Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	h, err := decode[HighestBid](v)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, b := range h.Bids {
		out = append(out, fmt.Sprintf("%d\t%d\t%d\t%s", key, h.End, h.Price, bidLine(b)))
	}
	return out, nil
}

func refQ7(events []Event) []string {
	highest := map[int64]int64{}
	for _, e := range events {
		if b := e.Bid; b != nil {
			s := windowStart(b.DateTime)
			if p, ok := highest[s]; !ok || b.Price > p {
				highest[s] = b.Price
			}
		}
	}
	var out []string
	for _, e := range events {
		if b := e.Bid; b != nil {
			if s := windowStart(b.DateTime); b.Price == highest[s] {
				out = append(out, fmt.Sprintf("%d\t%d\t%d\t%s", s, s+windowMs, b.Price, bidLine(*b)))
			}
		}
	}
	return sorted(out)
}

// q8Lines reads q8: "person name windowStart".
func q8Lines(k, v []byte) ([]string, error) {
	key, err := decodeKey(k)
	if err != nil {
		return nil, err
	}
	u, err := decode[NewUser](v)
	if err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%d\t%s\t%d", key, u.Name, u.Start)}, nil
}

func refQ8(events []Event) []string {
	type sellerWindow struct{ seller, start int64 }
	sold := map[sellerWindow]bool{}
	for _, e := range events {
		if a := e.Auction; a != nil {
			sold[sellerWindow{a.Seller, windowStart(a.DateTime)}] = true
		}
	}
	var out []string
	for _, e := range events {
		if p := e.Person; p != nil && sold[sellerWindow{p.ID, windowStart(p.DateTime)}] {
			out = append(out, fmt.Sprintf("%d\t%s\t%d", p.ID, p.Name, windowStart(p.DateTime)))
		}
	}
	return sorted(out)
}

// q11Lines reads q11: "bidder first last count" per session, first and
// last the times of its first and last bid.
func q11Lines(k, v []byte) ([]string, error) {
	w, err := serde.SessionWindowed(serde.Int64()).Decode(k)
	if err != nil {
		return nil, err
	}
	n, err := serde.Int64().Decode(v)
	if err != nil {
		return nil, err
	}
	return []string{fmt.Sprintf("%d\t%d\t%d\t%d", w.Key, w.Start, w.End, n)}, nil
}

func refQ11(events []Event) []string {
	times := map[int64][]int64{} // bidder -> bid times
	for _, e := range events {
		if b := e.Bid; b != nil {
			times[b.Bidder] = append(times[b.Bidder], b.DateTime)
		}
	}
	gap := sessionGap.Milliseconds()
	var out []string
	for bidder, ts := range times {
		slices.Sort(ts)
		first, n := 0, 0
		for i, t := range ts {
			// A bid at most gap after the previous one extends the
			// session, as in Kafka Streams.
			if i > 0 && t-ts[i-1] > gap {
				out = append(out, fmt.Sprintf("%d\t%d\t%d\t%d", bidder, ts[first], ts[i-1], n))
				first, n = i, 0
			}
			n++
		}
		if n > 0 {
			out = append(out, fmt.Sprintf("%d\t%d\t%d\t%d", bidder, ts[first], ts[len(ts)-1], n))
		}
	}
	return sorted(out)
}

func sorted(lines []string) []string {
	slices.Sort(lines)
	return lines
}
