package engine_test

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

type kv struct {
	Key   string
	Value int64
}

func sortKVs(s []kv) []kv {
	slices.SortFunc(s, func(a, b kv) int { return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Value, b.Value)) })
	return s
}

// TestOperatorsReference runs every stateless operator, Reduce, Aggregate,
// Count and a table source on random input and checks each output topic
// against a naive model of the same pipeline.
func TestOperatorsReference(t *testing.T) {
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { testOperatorsReference(t, testSeed(t)) })
	}
}

func testOperatorsReference(t *testing.T, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 4))
	var peeked atomic.Int64
	b := topology.New("ops")
	in := topology.StreamFrom(b, "in", serde.String(), serde.Int64())
	br := in.Branch(
		func(_ string, v int64) bool { return v%3 == 0 },
		func(_ string, v int64) bool { return v%3 == 1 },
	)
	m := topology.Map(br[0], func(_ string, v int64) (string, int64) { return fmt.Sprintf("m%d", v%10), 2 * v }).
		WithKeySerde(serde.String()).WithValueSerde(serde.Int64())
	merged := m.Merge(topology.MapValues(br[1], func(_ string, v int64) int64 { return v + 1 }).WithValueSerde(serde.Int64())).
		Peek(func(string, int64) { peeked.Add(1) })
	flat := topology.FlatMap(merged.Filter(func(_ string, v int64) bool { return v%7 != 0 }),
		func(k string, v int64) []topology.KV[string, int64] {
			return []topology.KV[string, int64]{{Key: k, Value: v}, {Key: k + "x", Value: v}}
		}).WithKeySerde(serde.String()).WithValueSerde(serde.Int64())
	flat.To("flat")
	topology.Aggregate(flat.GroupByKey(), func() int64 { return 0 },
		func(_ string, v, sum int64) int64 { return sum + v }, serde.Int64(), topology.Named("sums")).To("sums")
	flat.GroupByKey().Reduce(func(a, v int64) int64 { return max(a, v) }, topology.Named("maxes")).To("maxes")
	topology.SelectKey(in, func(_ string, v int64) string { return fmt.Sprint(v % 4) }).
		WithKeySerde(serde.String()).GroupByKey().Count(topology.Named("mod4")).To("mod4")
	tbl := topology.TableFrom(b, "tbl", serde.String(), serde.Int64(), topology.Named("tbl"))
	tbl.To("tbl-copy")
	tbl.ToStream().To("tbl-stream")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Bounded: true, CacheBytes: -1, Workers: 1 + r.IntN(2)})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 3}, broker.TopicConfig{Name: "tbl", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	var input, tblIn []broker.Record
	for i := range 1000 {
		v := r.Int64N(1000)
		input = append(input, broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "k%d", r.IntN(50)), Value: be64(v), Timestamp: int64(i)})
		rec := broker.Record{Topic: "tbl", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "t%d", r.IntN(20)), Value: be64(v), Timestamp: int64(i)}
		if r.IntN(5) == 0 {
			rec.Value = nil // tombstone
		}
		tblIn = append(tblIn, rec)
	}
	if err := log.Produce(ctx, append(input, tblIn...)...); err != nil {
		t.Fatal(err)
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The model.
	var wantFlat []kv
	wantSums, wantMaxes, wantMod4 := map[string]int64{}, map[string]int64{}, map[string]int64{}
	var wantPeeked int64
	for _, rec := range input {
		k, v := string(rec.Key), int64(binary.BigEndian.Uint64(rec.Value))
		wantMod4[fmt.Sprint(v%4)]++
		switch v % 3 {
		case 0:
			k, v = fmt.Sprintf("m%d", v%10), 2*v
		case 1:
			v++
		default:
			continue
		}
		wantPeeked++
		if v%7 == 0 {
			continue
		}
		for _, fk := range []string{k, k + "x"} {
			wantFlat = append(wantFlat, kv{fk, v})
			if _, ok := wantMaxes[fk]; !ok || v > wantMaxes[fk] {
				wantMaxes[fk] = v
			}
			wantSums[fk] += v
		}
	}
	// Outputs, last value per key (a key lives in one partition, in order).
	decode := func(topic string) (all []kv, last map[string]int64, tombstones int) {
		last = map[string]int64{}
		for _, part := range readAll(t, log, topic) {
			for _, rec := range part {
				if rec.Value == nil {
					tombstones++
					delete(last, string(rec.Key))
					continue
				}
				v := int64(binary.BigEndian.Uint64(rec.Value))
				all = append(all, kv{string(rec.Key), v})
				last[string(rec.Key)] = v
			}
		}
		return all, last, tombstones
	}
	gotFlat, _, _ := decode("flat")
	if diff := gocmp.Diff(sortKVs(wantFlat), sortKVs(gotFlat)); diff != "" {
		t.Errorf("flat (-want +got):\n%s", diff)
	}
	for topic, want := range map[string]map[string]int64{"sums": wantSums, "maxes": wantMaxes, "mod4": wantMod4} {
		if _, got, _ := decode(topic); !gocmp.Equal(want, got) {
			t.Errorf("%s (-want +got):\n%s", topic, gocmp.Diff(want, got))
		}
	}
	if got := peeked.Load(); got != wantPeeked {
		t.Errorf("Peek saw %d records, want %d", got, wantPeeked)
	}
	// The table: To keeps every update and deletion, ToStream the updates only.
	var wantUpdates []kv
	wantTable := map[string]int64{}
	wantTombstones := 0
	for _, rec := range tblIn {
		if rec.Value == nil {
			wantTombstones++
			delete(wantTable, string(rec.Key))
			continue
		}
		v := int64(binary.BigEndian.Uint64(rec.Value))
		wantUpdates = append(wantUpdates, kv{string(rec.Key), v})
		wantTable[string(rec.Key)] = v
	}
	gotUpdates, gotTable, gotTombstones := decode("tbl-copy")
	if diff := gocmp.Diff(wantTable, gotTable); diff != "" {
		t.Errorf("tbl-copy final table (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(sortKVs(wantUpdates), sortKVs(gotUpdates)); diff != "" {
		t.Errorf("tbl-copy updates (-want +got):\n%s", diff)
	}
	if gotTombstones != wantTombstones {
		t.Errorf("tbl-copy: %d tombstones, want %d", gotTombstones, wantTombstones)
	}
	gotStream, _, streamTombstones := decode("tbl-stream")
	if diff := gocmp.Diff(sortKVs(wantUpdates), sortKVs(gotStream)); diff != "" {
		t.Errorf("tbl-stream (-want +got):\n%s", diff)
	}
	if streamTombstones != 0 {
		t.Errorf("tbl-stream has %d tombstones: ToStream must drop deletions", streamTombstones)
	}
}
