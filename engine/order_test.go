package engine_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

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
