package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
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

// tableEvent is an input record of a table or stream topic; Value nil is a
// tombstone.
type tableEvent struct {
	Topic string
	Key   string
	Value []byte
	Time  int64
}

func (e tableEvent) record() broker.Record {
	return broker.Record{Topic: e.Topic, Partition: broker.AnyPartition, Key: []byte(e.Key), Value: e.Value, Timestamp: e.Time}
}

// produceAll writes events in order, 100 a call.
func produceAll(t *testing.T, log broker.Log, events []tableEvent) {
	t.Helper()
	var recs []broker.Record
	for i, e := range events {
		recs = append(recs, e.record())
		if len(recs) == 100 || i == len(events)-1 {
			if err := log.Produce(context.Background(), recs...); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
}

// finalTable reads topic as a table: the last value of each key, absent
// after a tombstone.
func finalTable(t *testing.T, log broker.Log, topic string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, part := range readAll(t, log, topic) {
		for _, rec := range part {
			if rec.Value == nil {
				delete(out, string(rec.Key))
			} else {
				out[string(rec.Key)] = string(rec.Value)
			}
		}
	}
	return out
}

// TestStreamTableJoinReference joins a stream with a table (inner and
// left) on the embedded log. The table topic is produced entirely before
// the stream topic, and both have random timestamps, so the result
// depends on the engine taking each task's inputs in timestamp order:
// the model replays each partition pair exactly so (the buffered record
// with the lowest timestamp first), and joins every stream record with
// the table's latest processed value (SEMANTICS-KS.md rules 31-33).
func TestStreamTableJoinReference(t *testing.T) {
	for i, kind := range []string{"inner", "left", "inner", "left"} {
		t.Run(fmt.Sprint(kind, i), func(t *testing.T) { streamTableReference(t, testSeed(t), nil, kind) })
	}
}

// TestKafkaTablesReference runs the stream-table, table-table and table
// aggregation reference checks on kfake.
func TestKafkaTablesReference(t *testing.T) {
	for _, kind := range []string{"inner", "left"} {
		t.Run("stream-table-"+kind, func(t *testing.T) {
			streamTableReference(t, testSeed(t), openKafka(t, newKfake(t)), kind)
		})
	}
	for _, kind := range []string{"inner", "left", "outer"} {
		t.Run("table-table-"+kind, func(t *testing.T) {
			tableTableReference(t, testSeed(t), openKafka(t, newKfake(t)), kind)
		})
	}
	t.Run("table-group", func(t *testing.T) {
		tableGroupReference(t, testSeed(t), openKafka(t, newKfake(t)))
	})
}

func streamTableReference(t *testing.T, seed uint64, log broker.Log, kind string) {
	r := rand.New(rand.NewPCG(seed, 8))
	parts := int32(1 + r.IntN(3))
	t.Logf("kind=%s partitions=%d", kind, parts)
	b := topology.New("st")
	str := topology.StreamFrom(b, "str", serde.String(), serde.String())
	tbl := topology.TableFrom(b, "tbl", serde.String(), serde.String())
	var out topology.Stream[string, string]
	if kind == "inner" {
		out = topology.JoinTable(str, tbl, func(_, s, v string) string { return s + "|" + v })
	} else {
		out = topology.LeftJoinTable(str, tbl, func(_, s, v string, ok bool) string {
			if !ok {
				v = "null"
			}
			return s + "|" + v
		})
	}
	out.WithValueSerde(serde.String()).To("out")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Bounded: true, Workers: 1 + r.IntN(2),
		CacheBytes: []int{-1, 256, 1 << 20}[r.IntN(3)], MaxTaskIdle: time.Minute,
		CommitInterval: time.Duration(1+r.IntN(20)) * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log = eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "str", Partitions: parts}, broker.TopicConfig{Name: "tbl", Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	// Table records at even times, stream records at odd ones: no ties.
	var tblIn, strIn []tableEvent
	for i := range 300 + r.IntN(500) {
		e := tableEvent{Topic: "tbl", Key: fmt.Sprintf("k%d", r.IntN(12)), Value: fmt.Appendf(nil, "v%d", i), Time: 2 * r.Int64N(1000)}
		if r.IntN(8) == 0 {
			e.Value = nil
		}
		tblIn = append(tblIn, e)
	}
	for i := range 300 + r.IntN(500) {
		strIn = append(strIn, tableEvent{Topic: "str", Key: fmt.Sprintf("k%d", r.IntN(14)), Value: fmt.Appendf(nil, "s%d", i), Time: 2*r.Int64N(1000) + 1})
	}
	produceAll(t, log, tblIn)
	produceAll(t, log, strIn)
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}

	// The model: per partition, the two queues merged by timestamp.
	partOf := func(k string) int32 { return murmur2.Partition([]byte(k), parts) }
	want := map[string][]string{} // key -> joined values in order
	for p := range parts {
		var tq, sq []tableEvent
		for _, e := range tblIn {
			if partOf(e.Key) == p {
				tq = append(tq, e)
			}
		}
		for _, e := range strIn {
			if partOf(e.Key) == p {
				sq = append(sq, e)
			}
		}
		table := map[string]string{}
		for len(tq) > 0 || len(sq) > 0 {
			if len(sq) == 0 || (len(tq) > 0 && tq[0].Time < sq[0].Time) {
				e := tq[0]
				tq = tq[1:]
				if e.Value == nil {
					delete(table, e.Key)
				} else {
					table[e.Key] = string(e.Value)
				}
				continue
			}
			e := sq[0]
			sq = sq[1:]
			v, ok := table[e.Key]
			switch {
			case ok:
				want[e.Key] = append(want[e.Key], string(e.Value)+"|"+v)
			case kind == "left":
				want[e.Key] = append(want[e.Key], string(e.Value)+"|null")
			}
		}
	}
	got := map[string][]string{}
	for _, part := range readAll(t, log, "out") {
		for _, rec := range part {
			got[string(rec.Key)] = append(got[string(rec.Key)], string(rec.Value))
		}
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("joined records per key, in order (-want +got):\n%s", diff)
	}
}

// TestTableTableJoinReference joins two tables (inner, left, outer) with
// random upserts and deletes on the embedded log; the result table must
// end as the join of the inputs' final contents (rules 35-38), whatever
// the interleaving and the cache.
func TestTableTableJoinReference(t *testing.T) {
	for _, kind := range []string{"inner", "left", "outer"} {
		t.Run(kind, func(t *testing.T) { tableTableReference(t, testSeed(t), nil, kind) })
	}
}

func tableTableReference(t *testing.T, seed uint64, log broker.Log, kind string) {
	r := rand.New(rand.NewPCG(seed, 9))
	parts := int32(1 + r.IntN(3))
	t.Logf("kind=%s partitions=%d", kind, parts)
	b := topology.New("tt")
	l := topology.TableFrom(b, "l", serde.String(), serde.String())
	rt := topology.TableFrom(b, "r", serde.String(), serde.String())
	orNull := func(v string, ok bool) string {
		if !ok {
			return "null"
		}
		return v
	}
	var out topology.Table[string, string]
	switch kind {
	case "inner":
		out = topology.JoinTables(l, rt, func(_, a, b string) string { return a + "+" + b })
	case "left":
		out = topology.LeftJoinTables(l, rt, func(_, a, b string, ok bool) string { return a + "+" + orNull(b, ok) })
	case "outer":
		out = topology.OuterJoinTables(l, rt, func(_, a string, aok bool, b string, bok bool) string {
			return orNull(a, aok) + "+" + orNull(b, bok)
		})
	}
	out.WithKeySerde(serde.String()).WithValueSerde(serde.String()).To("out")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Bounded: true, Workers: 1 + r.IntN(2),
		CacheBytes: []int{-1, 256, 1 << 20}[r.IntN(3)], CommitInterval: time.Duration(1+r.IntN(20)) * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log = eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "l", Partitions: parts}, broker.TopicConfig{Name: "r", Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	var events []tableEvent
	final := map[string]map[string]string{"l": {}, "r": {}}
	for i := range 200 + r.IntN(800) {
		e := tableEvent{Topic: []string{"l", "r"}[r.IntN(2)], Key: fmt.Sprintf("k%d", r.IntN(15)), Value: fmt.Appendf(nil, "v%d", i), Time: int64(i)}
		if r.IntN(6) == 0 {
			e.Value = nil
			delete(final[e.Topic], e.Key)
		} else {
			final[e.Topic][e.Key] = string(e.Value)
		}
		events = append(events, e)
	}
	produceAll(t, log, events)
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for k := range 15 {
		key := fmt.Sprintf("k%d", k)
		a, aok := final["l"][key]
		c, cok := final["r"][key]
		switch {
		case aok && cok:
			want[key] = a + "+" + c
		case aok && kind != "inner":
			want[key] = a + "+null"
		case cok && kind == "outer":
			want[key] = "null+" + c
		}
	}
	if diff := gocmp.Diff(want, finalTable(t, log, "out")); diff != "" {
		t.Errorf("joined table (-want +got):\n%s", diff)
	}
}

// TestTableGroupReference re-groups a table with random upserts and
// deletes and sums, counts and concatenates its rows per group with adder
// and subtractor; every group's final aggregate must equal the aggregate
// of the input table's final rows.
func TestTableGroupReference(t *testing.T) {
	for i := range 3 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { tableGroupReference(t, testSeed(t), nil) })
	}
}

func tableGroupReference(t *testing.T, seed uint64, log broker.Log) {
	r := rand.New(rand.NewPCG(seed, 10))
	parts := int32(1 + r.IntN(3))
	cache := []int{-1, 256, 1 << 20}[r.IntN(3)]
	t.Logf("partitions=%d cache=%d", parts, cache)
	b := topology.New("tg")
	in := topology.TableFrom(b, "in", serde.String(), serde.String())
	// A row "g:n" belongs to group g with the number n.
	split := func(v string) (string, int64) {
		g, n, _ := strings.Cut(v, ":")
		x, _ := strconv.ParseInt(n, 10, 64)
		return g, x
	}
	grouped := topology.GroupTable(in, func(_ string, v string) (string, int64) { return split(v) }, serde.String(), serde.Int64())
	grouped.Count(topology.Named("count")).To("count")
	grouped.Reduce(func(a, v int64) int64 { return a + v }, func(a, v int64) int64 { return a - v }, topology.Named("sum")).To("sum")

	eng, err := engine.Open(b, engine.Options{InMemory: true, Log: log, Bounded: true, Workers: 1 + r.IntN(2),
		CacheBytes: cache, CommitInterval: time.Duration(1+r.IntN(20)) * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	log = eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: parts}); err != nil {
		t.Fatal(err)
	}
	var events []tableEvent
	rows := map[string]string{}
	touched := map[string]bool{}
	for i := range 200 + r.IntN(800) {
		e := tableEvent{Topic: "in", Key: fmt.Sprintf("k%d", r.IntN(25)), Time: int64(i)}
		if r.IntN(6) == 0 {
			delete(rows, e.Key)
		} else {
			e.Value = fmt.Appendf(nil, "g%d:%d", r.IntN(5), r.IntN(100))
			rows[e.Key] = string(e.Value)
			g, _ := split(string(e.Value))
			touched[g] = true
		}
		events = append(events, e)
	}
	produceAll(t, log, events)
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The groups holding rows at the end, with their count and sum.
	wantCount, wantSum := map[string]int64{}, map[string]int64{}
	for _, v := range rows {
		g, n := split(v)
		wantCount[g]++
		wantSum[g] += n
	}
	decode := func(m map[string]string) map[string]int64 {
		out := map[string]int64{}
		for k, v := range m {
			n, err := serde.Int64().Decode([]byte(v))
			if err != nil {
				t.Fatalf("group %s: %v", k, err)
			}
			out[k] = n
		}
		return out
	}
	// A group whose rows all left keeps its row with 0 (as in Kafka
	// Streams). Uncached, every group that ever had a row saw it; with a
	// cache, a row that joined and left a group between two flushes never
	// reached the group, so such a group may be absent.
	gotCount := decode(finalTable(t, log, "count"))
	gotSum := decode(finalTable(t, log, "sum"))
	for g := range touched {
		if _, ok := wantCount[g]; ok {
			continue
		}
		if _, seen := gotCount[g]; cache < 0 || seen {
			wantCount[g], wantSum[g] = 0, 0
		}
	}
	if diff := gocmp.Diff(wantCount, gotCount); diff != "" {
		t.Errorf("counts (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(wantSum, gotSum); diff != "" {
		t.Errorf("sums (-want +got):\n%s", diff)
	}
}
