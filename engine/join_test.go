package engine_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// TestJoinReference runs random stream-stream joins (inner, left, outer)
// on the embedded log, bounded, on two partitions, and compares the output
// with a naive model: every pair of records within the window, plus, for
// left and outer joins, the records that have no pair. Grace is longer
// than the whole input, so nothing expires.
func TestJoinReference(t *testing.T) {
	for i, kind := range []string{"inner", "left", "outer", "inner", "left", "outer"} {
		mode := []string{"topics", "branch"}[i/3]
		t.Run(kind+"-"+mode, func(t *testing.T) { joinReference(t, testSeed(t), nil, kind, mode) })
	}
}

// TestKafkaJoinReference runs the join reference check on kfake.
func TestKafkaJoinReference(t *testing.T) {
	for _, tc := range []struct{ kind, mode string }{{"outer", "topics"}, {"left", "branch"}} {
		t.Run(tc.kind+"-"+tc.mode, func(t *testing.T) {
			joinReference(t, testSeed(t), openKafka(t, newKfake(t)), tc.kind, tc.mode)
		})
	}
}

// joinRecord is an input record of one side.
type joinRecord struct {
	Left       bool
	Key, Value string
	Time       int64
}

// joinRow is an output record.
type joinRow struct {
	Key, Value string
	Time       int64
}

// joinReference runs one random join on log (the in-memory embedded log
// if nil). In mode "topics" the sides are two topics, and the right one
// may be re-keyed through a repartition topic; the engine interleaves
// them freely, so a left or outer join may report a record unmatched
// early (its window had ended when it arrived, rule 28) and then match
// it. In mode "branch" both sides are branches of one topic, processed in
// its order, and the input's disorder is at most the window, so no record
// arrives after its window: the output is exactly the model's.
func joinReference(t *testing.T, seed uint64, log broker.Log, kind, mode string) {
	r := rand.New(rand.NewPCG(seed, 3))
	before, after := 1+r.Int64N(30), 1+r.Int64N(30)
	disorder := min(before, after)
	if mode == "topics" {
		disorder = 50
	}
	rekey := mode == "topics" && r.IntN(2) == 0
	cache := []int{-1, 64, 1 << 20}[r.IntN(3)]
	workers := 1 + r.IntN(2)
	n := 200 + r.IntN(800)
	grace := time.Duration(4*n+100) * time.Millisecond // longer than the input
	w := topology.JoinTimeDifference(0).Before(time.Duration(before) * time.Millisecond).
		After(time.Duration(after) * time.Millisecond).Grace(grace)
	t.Logf("kind=%s mode=%s window=%s rekey=%v cache=%d workers=%d records=%d", kind, mode, w, rekey, cache, workers, n)

	b := topology.New("jref")
	var left, right topology.Stream[string, string]
	if mode == "branch" {
		in := topology.StreamFrom(b, "in", serde.String(), serde.String())
		sides := in.Branch(
			func(_, v string) bool { return strings.HasPrefix(v, "l") },
			func(_, v string) bool { return strings.HasPrefix(v, "r") })
		left, right = sides[0], sides[1]
	} else {
		left = topology.StreamFrom(b, "jl", serde.String(), serde.String())
		right = topology.StreamFrom(b, "jr", serde.String(), serde.String())
		if rekey {
			right = topology.SelectKey(right, func(k, _ string) string { return k }).WithKeySerde(serde.String())
		}
	}
	orNull := func(v string, ok bool) string {
		if !ok {
			return "null"
		}
		return v
	}
	// No Partitions option: a re-keyed side's repartition topic takes
	// the other side's partition count, as in Kafka Streams.
	opts := []topology.Option{topology.Named("j")}
	var joined topology.Stream[string, string]
	switch kind {
	case "inner":
		joined = topology.Join(left, right, w, func(_, l, r string) string { return l + "+" + r }, opts...)
	case "left":
		joined = topology.LeftJoin(left, right, w, func(_, l, r string, rok bool) string { return l + "+" + orNull(r, rok) }, opts...)
	case "outer":
		joined = topology.OuterJoin(left, right, w, func(_, l string, lok bool, r string, rok bool) string {
			return orNull(l, lok) + "+" + orNull(r, rok)
		}, opts...)
	}
	joined.WithValueSerde(serde.String()).To("out")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Bounded: true, Workers: workers,
		CacheBytes: cache, CommitInterval: time.Duration(1+r.IntN(20)) * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log = eng.Log()
	topics := []string{"jl", "jr"}
	if mode == "branch" {
		topics = []string{"in"}
	}
	for _, topic := range topics {
		if err := log.CreateTopics(ctx, broker.TopicConfig{Name: topic, Partitions: 2}); err != nil {
			t.Fatal(err)
		}
	}

	// Input: keys k0..k9, times rising by 0-3ms, each record up to
	// disorder earlier than the time reached.
	var input []joinRecord
	var batch []broker.Record
	ts := int64(0)
	for i := range n {
		ts += r.Int64N(4)
		rec := joinRecord{Left: r.IntN(2) == 0, Key: fmt.Sprintf("k%d", r.IntN(10)), Time: max(0, ts-r.Int64N(disorder+1))}
		topic := "jl"
		rec.Value = fmt.Sprintf("l%d", i)
		if !rec.Left {
			topic, rec.Value = "jr", fmt.Sprintf("r%d", i)
		}
		if mode == "branch" {
			topic = "in"
		}
		input = append(input, rec)
		batch = append(batch, broker.Record{Topic: topic, Partition: broker.AnyPartition, Key: []byte(rec.Key), Value: []byte(rec.Value), Timestamp: rec.Time})
		if len(batch) == 100 || i == n-1 {
			if err := log.Produce(ctx, batch...); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The model: all pairs within the window; records without a pair.
	var pairs, unmatched []joinRow
	matched := map[string]bool{} // values that have a pair
	for _, l := range input {
		if !l.Left {
			continue
		}
		for _, rr := range input {
			if !rr.Left && rr.Key == l.Key && l.Time-before <= rr.Time && rr.Time <= l.Time+after {
				pairs = append(pairs, joinRow{l.Key, l.Value + "+" + rr.Value, max(l.Time, rr.Time)})
				matched[l.Value], matched[rr.Value] = true, true
			}
		}
	}
	for _, rec := range input {
		switch {
		case matched[rec.Value]:
		case rec.Left && kind != "inner":
			unmatched = append(unmatched, joinRow{rec.Key, rec.Value + "+null", rec.Time})
		case !rec.Left && kind == "outer":
			unmatched = append(unmatched, joinRow{rec.Key, "null+" + rec.Value, rec.Time})
		}
	}

	var gotPairs, gotUnmatched []joinRow
	for p, part := range readAll(t, log, "out") {
		for _, rec := range part {
			row := joinRow{string(rec.Key), string(rec.Value), rec.Timestamp}
			if want := murmur2.Partition(rec.Key, 2); int32(p) != want {
				t.Errorf("output %v in partition %d, want %d", row, p, want)
			}
			if strings.Contains(row.Value, "null") {
				gotUnmatched = append(gotUnmatched, row)
			} else {
				gotPairs = append(gotPairs, row)
			}
		}
	}
	byAll := func(a, b joinRow) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value), cmp.Compare(a.Time, b.Time))
	}
	for _, rows := range [][]joinRow{pairs, unmatched, gotPairs, gotUnmatched} {
		slices.SortFunc(rows, byAll)
	}
	if diff := gocmp.Diff(pairs, gotPairs); diff != "" {
		t.Fatalf("joined records (-want +got):\n%s", diff)
	}
	if mode == "branch" || kind == "inner" {
		if diff := gocmp.Diff(unmatched, gotUnmatched); diff != "" {
			t.Fatalf("unmatched records (-want +got):\n%s", diff)
		}
		t.Logf("%d joined, %d unmatched", len(gotPairs), len(gotUnmatched))
		return
	}
	// Interleaved topics: every record without a pair is reported once;
	// a record with a pair at most once, when it arrived after its window
	// and before its pair.
	seen := map[joinRow]int{}
	for _, row := range gotUnmatched {
		seen[row]++
	}
	early := 0
	for _, row := range unmatched {
		if seen[row] != 1 {
			t.Errorf("unmatched record %v reported %d times, want once", row, seen[row])
		}
		delete(seen, row)
	}
	for row, c := range seen {
		v := strings.TrimSuffix(strings.TrimPrefix(row.Value, "null+"), "+null")
		if !matched[v] || c != 1 {
			t.Errorf("unexpected unmatched record %v (%d times; has a pair: %v)", row, c, matched[v])
		}
		early++
	}
	t.Logf("%d joined, %d unmatched, %d reported unmatched before their pair arrived", len(gotPairs), len(unmatched), early)
}
