package engine_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// TestTransactionBytesBound checks that a worker commits once what it sent
// into the open transaction passes its bound (8 MiB), well before the
// commit interval: a FlatMap turns each input record into 100 KiB of
// output, so each poll of 100 records sends 10 MiB, and a run whose
// interval is an hour must still commit after every poll. The output must
// be whole and exact.
func TestTransactionBytesBound(t *testing.T) {
	const records, fanOut, size, pollRecords = 1000, 10, 10 << 10, 100
	b := topology.New("txnbound")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	topology.FlatMapValues(in, func(_, v string) []string {
		out := make([]string, fanOut)
		for i := range out {
			out[i] = fmt.Sprintf("%s/%d/%s", v, i, bytes.Repeat([]byte("x"), size))
		}
		return out
	}).WithValueSerde(serde.String()).To("out")
	eng, err := engine.Open(b, engine.Options{InMemory: true, Bounded: true, Workers: 1,
		CommitInterval: time.Hour, MaxPollRecords: pollRecords})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var recs []broker.Record
	for i := range records {
		recs = append(recs, broker.Record{Topic: "in", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, "v%d", i), Timestamp: int64(i)})
	}
	if err := eng.Log().Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	m := eng.Metrics()
	// A poll sends 100 * 100 KiB = 10 MiB, past the bound: a commit per
	// poll, 10 in all, and the final one. Without the bound the run
	// commits only when it finishes.
	if m.Commits < records/pollRecords {
		t.Errorf("%d commits, want at least %d: the transaction's bytes do not bound it", m.Commits, records/pollRecords)
	}
	off, err := eng.Log().Offsets(ctx, broker.TopicPartition{Topic: "out", Partition: 0})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	err = eng.Log().Read(ctx, broker.TopicPartition{Topic: "out", Partition: 0}, off.Start, off.End, func(r broker.Record) error {
		want := fmt.Sprintf("v%d/%d/", n/fanOut, n%fanOut)
		if !bytes.HasPrefix(r.Value, []byte(want)) || len(r.Value) != len(want)+size {
			return fmt.Errorf("output %d at offset %d: %.20q..., want %q and %d x", n, r.Offset, r.Value, want, size)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != records*fanOut {
		t.Errorf("%d output records, want %d", n, records*fanOut)
	}
}
