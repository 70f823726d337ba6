package engine_test

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// TestSlidingReference and TestSessionReference run sliding-window and
// session-window counts on random input, out of order but within grace,
// on the embedded log, and compare the result table with a naive model
// computed from all the input: the final windows do not depend on the
// order records arrive in when none is late. The operators' exact update
// sequences are checked by their model tests in package operators.
func TestSlidingReference(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { windowsReference(t, testSeed(t), nil, "sliding") })
	}
}

func TestSessionReference(t *testing.T) {
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) { windowsReference(t, testSeed(t), nil, "session") })
	}
}

// TestKafkaWindowsReference runs both on kfake.
func TestKafkaWindowsReference(t *testing.T) {
	for _, kind := range []string{"sliding", "session"} {
		t.Run(kind, func(t *testing.T) { windowsReference(t, testSeed(t), openKafka(t, newKfake(t)), kind) })
	}
}

// winRow is a window of the result table and its count.
type winRow struct {
	Key        string
	Start, End int64
	Count      int64
}

func windowsReference(t *testing.T, seed uint64, log broker.Log, kind string) {
	r := rand.New(rand.NewPCG(seed, 7))
	parts := int32(1 + r.IntN(3))
	d := int64(5 + r.IntN(40)) // sliding: max difference; session: gap
	const disorder = 60
	final := r.IntN(2) == 0
	cache := []int{-1, 256, 1 << 20}[r.IntN(3)]
	rekey := r.IntN(2) == 0
	// Within a partition records are at most disorder ms out of order.
	// Through a repartition topic, the tasks upstream write at their own
	// pace, so a record can arrive after any later one: then windows
	// close only at the end of input.
	grace := int64(500)
	if rekey {
		grace = time.Hour.Milliseconds()
	}
	t.Logf("kind=%s partitions=%d d=%dms final=%v cache=%d rekey=%v", kind, parts, d, final, cache, rekey)

	b := topology.New("wr")
	in := topology.StreamFrom(b, "in", serde.String(), serde.Int64())
	g := in.GroupByKey()
	if rekey {
		g = topology.GroupBy(in, func(k string, _ int64) string { return "g" + k }, serde.String())
	}
	var keys serde.Serde[window.Windowed[string]]
	var counts topology.Table[window.Windowed[string], int64]
	switch kind {
	case "sliding":
		w := g.WindowedBy(window.Sliding(time.Duration(d) * time.Millisecond).Grace(time.Duration(grace) * time.Millisecond))
		if final {
			w = w.EmitOnWindowClose()
		}
		counts = topology.CountWindows(w, topology.Named("counts"))
		keys = serde.Windowed(serde.String(), d)
	case "session":
		w := g.SessionWindowedBy(window.Sessions(time.Duration(d) * time.Millisecond).Grace(time.Duration(grace) * time.Millisecond))
		if final {
			w = w.EmitOnWindowClose()
		}
		counts = topology.CountSessions(w, topology.Named("counts"))
		keys = serde.SessionWindowed(serde.String())
	}
	counts.To("out")

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
	byKey := map[string][]int64{}
	n := 200 + r.IntN(1500)
	var recs []broker.Record
	ts := int64(0)
	for i := range n {
		ts += r.Int64N(1 + 2*d/3)
		rts := ts
		if r.IntN(8) == 0 {
			rts = max(0, ts-r.Int64N(disorder))
		}
		k := fmt.Sprintf("k%d", r.IntN(8))
		group := k
		if rekey {
			group = "g" + k
		}
		byKey[group] = append(byKey[group], rts)
		recs = append(recs, broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: []byte(k), Value: be64(int64(i)), Timestamp: rts})
		if len(recs) == 100 || i == n-1 {
			if err := log.Produce(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if m := eng.Metrics(); m.LateRecords != 0 {
		t.Errorf("%d late records, want 0 (disorder %dms < grace %dms)", m.LateRecords, disorder, grace)
	}

	var want []winRow
	for k, times := range byKey {
		slices.Sort(times)
		if kind == "sliding" {
			want = append(want, slidingModel(k, times, d)...)
		} else {
			want = append(want, sessionModel(k, times, d)...)
		}
	}
	// The output as a table: the last record of each window wins, a
	// tombstone deletes it. Emitted on close, each window comes once.
	table := map[winRow]int64{}
	seen := map[winRow]int{}
	for _, part := range readAll(t, log, "out") {
		for _, rec := range part {
			w, err := keys.Decode(rec.Key)
			if err != nil {
				t.Fatal(err)
			}
			id := winRow{Key: w.Key, Start: w.Start, End: w.End}
			seen[id]++
			if rec.Value == nil {
				delete(table, id)
				continue
			}
			c, err := serde.Int64().Decode(rec.Value)
			if err != nil {
				t.Fatal(err)
			}
			table[id] = c
		}
	}
	var got []winRow
	for id, c := range table {
		id.Count = c
		got = append(got, id)
	}
	byWindow := func(a, b winRow) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
	}
	slices.SortFunc(want, byWindow)
	slices.SortFunc(got, byWindow)
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("result windows (-want +got):\n%s", diff)
	}
	if final {
		for id, n := range seen {
			if n != 1 {
				t.Errorf("window %+v emitted %d times on close, want once", id, n)
			}
		}
	}
}

// slidingModel returns the sliding windows of one key's sorted record
// times (SEMANTICS-KS.md rules 8, 9): each record's left window [t-d, t],
// [0, d] for t < d, and its right window [t+1, t+1+d] if that holds a
// record; each counts the records within its inclusive bounds.
func slidingModel(key string, times []int64, d int64) []winRow {
	starts := map[int64]bool{}
	for _, t := range times {
		starts[max(0, t-d)] = true
		// The first record after t, if within d, puts t's right window.
		i, _ := slices.BinarySearch(times, t+1)
		if i < len(times) && times[i] <= t+1+d {
			starts[t+1] = true
		}
	}
	var out []winRow
	for s := range starts {
		lo, _ := slices.BinarySearch(times, s)
		hi, _ := slices.BinarySearch(times, s+d+1)
		out = append(out, winRow{Key: key, Start: s, End: s + d, Count: int64(hi - lo)})
	}
	return out
}

// sessionModel returns the sessions of one key's sorted record times
// (rule 13): records at most gap apart are in one session [first, last].
func sessionModel(key string, times []int64, gap int64) []winRow {
	var out []winRow
	for i, t := range times {
		if i > 0 && t-times[i-1] <= gap {
			s := &out[len(out)-1]
			s.End, s.Count = t, s.Count+1
			continue
		}
		out = append(out, winRow{Key: key, Start: t, End: t, Count: 1})
	}
	return out
}
