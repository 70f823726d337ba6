package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// TestTimestampOrder checks that a task reading two topics processes
// their records in timestamp order, although the input is produced one
// topic after the other and fetched a few records at a time.
func TestTimestampOrder(t *testing.T) {
	t.Run("embedded", func(t *testing.T) { testTimestampOrder(t, nil, 7) })
	// franz-go hands out a fetched partition's records before the next
	// partition's: a task buffers at most 4 polls' worth while it waits
	// (so that memory stays bounded), and 7 per poll would be too few.
	t.Run("kfake", func(t *testing.T) { testTimestampOrder(t, openKafka(t, newKfake(t)), 100) })
}

func testTimestampOrder(t *testing.T, log broker.Log, pollRecords int) {
	b := topology.New("order")
	var seen []int64
	a := topology.StreamFrom(b, "a", serde.String(), serde.String())
	c := topology.StreamFrom(b, "c", serde.String(), serde.String())
	a.Merge(c).Peek(func(_, v string) {
		var ts int64
		fmt.Sscan(v, &ts)
		seen = append(seen, ts)
	}).To("out")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Bounded: true, Workers: 1, MaxPollRecords: pollRecords})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log = eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "a", Partitions: 1}, broker.TopicConfig{Name: "c", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	const n = 300
	for _, topic := range []string{"a", "c"} {
		var recs []broker.Record
		for i := range n {
			ts := int64(2 * i)
			if topic == "c" {
				ts++
			}
			recs = append(recs, broker.Record{Topic: topic, Partition: 0, Key: []byte("k"), Value: fmt.Append(nil, ts), Timestamp: ts})
			if len(recs) == 50 {
				if err := log.Produce(ctx, recs...); err != nil {
					t.Fatal(err)
				}
				recs = recs[:0]
			}
		}
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2*n {
		t.Fatalf("processed %d records, want %d", len(seen), 2*n)
	}
	if !slices.IsSorted(seen) {
		for i := 1; i < len(seen); i++ {
			if seen[i] < seen[i-1] {
				t.Fatalf("record at %d processed after one at %d (position %d of %d)", seen[i], seen[i-1], i, len(seen))
			}
		}
	}
}

// TestKafkaOrderPastMarkers joins a stream with a table whose topic was
// written in a transaction, so that its last offset is a commit marker:
// the table's input then looks one record short of its end. The stream's
// records are all later than the table's, so the task takes them only
// once the table input counts as caught up; with MaxTaskIdle at an hour,
// the join produces its output only if the task sees that the gap holds
// no record rather than waiting for one.
func TestKafkaOrderPastMarkers(t *testing.T) {
	brokers := newKfake(t)
	log := openKafka(t, brokers)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "str", Partitions: 1}, broker.TopicConfig{Name: "tbl", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	tx, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID("table-writer"), kgo.DefaultProduceTopic("tbl"))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	if err := tx.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		r := &kgo.Record{Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i), Timestamp: time.UnixMilli(int64(i))}
		if err := tx.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	const n = 20
	var recs []broker.Record
	for i := range n {
		recs = append(recs, broker.Record{Topic: "str", Partition: 0, Key: fmt.Appendf(nil, "k%d", i%5), Value: fmt.Appendf(nil, "s%d", i), Timestamp: int64(1000 + i)})
	}
	if err := log.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}

	b := topology.New("markers")
	str := topology.StreamFrom(b, "str", serde.String(), serde.String())
	tbl := topology.TableFrom(b, "tbl", serde.String(), serde.String())
	topology.JoinTable(str, tbl, func(_, s, v string) string { return s + "|" + v }).WithValueSerde(serde.String()).To("out")
	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Workers: 1, MaxTaskIdle: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	deadline := time.Now().Add(30 * time.Second)
	got := 0
	for time.Now().Before(deadline) && got < n {
		time.Sleep(50 * time.Millisecond)
		if d, err := log.DescribeTopics(ctx, "out"); err != nil || len(d) == 0 {
			continue
		}
		got = 0
		for _, part := range readAll(t, log, "out") {
			got += len(part)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got != n {
		t.Fatalf("%d joined records after 30s, want %d: the task waited for records past a commit marker", got, n)
	}
}
