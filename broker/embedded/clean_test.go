package embedded

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func TestRetention(t *testing.T) {
	mem := vfs.NewMem()
	base := time.UnixMilli(1_700_000_000_000)
	clock := &fakeClock{now: base}
	l := openTest(t, Options{FS: mem, Dir: "log", Now: clock.Now})
	ctx := context.Background()
	createTopics(t, l,
		broker.TopicConfig{Name: "events", Partitions: 1, Retention: time.Hour},
		broker.TopicConfig{Name: "forever", Partitions: 1})
	// Three commits (batches) with records 0-1 at base, 2-3 at base+30m,
	// 4 at base+90m.
	at := func(d time.Duration, v string) broker.Record {
		return broker.Record{Topic: "events", Timestamp: base.Add(d).UnixMilli(), Value: []byte(v)}
	}
	for _, batch := range [][]broker.Record{
		{at(0, "a"), at(time.Minute, "b")},
		{at(30*time.Minute, "c"), at(31*time.Minute, "d")},
		{at(90*time.Minute, "e")},
	} {
		if err := l.Produce(ctx, batch...); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Produce(ctx, broker.Record{Topic: "forever", Timestamp: base.UnixMilli(), Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	s := join(t, l, "g", "m", "events")
	poll(t, s, 0) // position 0

	steps := []struct {
		now    time.Duration
		bounds broker.PartitionOffsets
		values []string
	}{
		{now: 30 * time.Minute, bounds: broker.PartitionOffsets{Start: 0, End: 5}, values: []string{"a", "b", "c", "d", "e"}},
		// The first batch's newest record (base+1m) is older than an hour.
		{now: 61*time.Minute + time.Second, bounds: broker.PartitionOffsets{Start: 2, End: 5}, values: []string{"c", "d", "e"}},
		{now: 91 * time.Minute, bounds: broker.PartitionOffsets{Start: 2, End: 5}, values: []string{"c", "d", "e"}},
		{now: 200 * time.Minute, bounds: broker.PartitionOffsets{Start: 5, End: 5}, values: nil},
	}
	for i, st := range steps {
		clock.set(base.Add(st.now))
		if err := l.Clean(ctx); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.bounds, offsets(t, l, tp("events", 0))); diff != "" {
			t.Errorf("step %d: bounds (-want +got):\n%s", i, diff)
		}
		if diff := cmp.Diff(st.values, values(readAll(t, l, tp("events", 0)))); diff != "" {
			t.Errorf("step %d: values (-want +got):\n%s", i, diff)
		}
		if i == 1 {
			// A session behind the start continues at the start.
			if got := offsetsOf(pollRecords(t, s, 3)); !cmp.Equal(got, []int64{2, 3, 4}) {
				t.Errorf("offsets polled after retention = %v, want [2 3 4]", got)
			}
		}
	}
	if got := values(readAll(t, l, tp("forever", 0))); !cmp.Equal(got, []string{"old"}) {
		t.Errorf("topic without retention = %q, want [old]", got)
	}
	// Offsets continue after the end, also after reopening a log whose
	// partition retention emptied.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, Options{FS: mem, Dir: "log", Now: clock.Now})
	if diff := cmp.Diff(broker.PartitionOffsets{Start: 5, End: 5}, offsets(t, l, tp("events", 0))); diff != "" {
		t.Errorf("bounds after reopening (-want +got):\n%s", diff)
	}
	if err := l.Produce(ctx, at(300*time.Minute, "f")); err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(readAll(t, l, tp("events", 0))); !cmp.Equal(got, []int64{5}) {
		t.Errorf("offsets after producing again = %v, want [5]", got)
	}
}

func TestCompaction(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "changelog", Partitions: 1, Compacted: true})
	produce := func(recs ...broker.Record) {
		t.Helper()
		if err := l.Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	r := func(key, value string) broker.Record {
		rr := rec("changelog", 0, key, value)
		if value == "<tombstone>" {
			rr.Value = nil
		}
		if key == "<nil>" {
			rr.Key = nil
		}
		return rr
	}
	produce(r("a", "a1"), r("b", "b1"), r("c", "c1")) // offsets 0-2
	produce(r("a", "a2"), r("<nil>", "n1"))           // 3-4
	produce(r("b", "<tombstone>"), r("c", "c2"))      // 5-6
	produce(r("d", "d1"))                             // 7

	// A reader in the middle of the first batch, before compaction.
	s := join(t, l, "g", "m", "changelog")
	poll(t, s, 0)
	if got := offsetsOf(pollRecords(t, s, 1)); !cmp.Equal(got, []int64{0}) {
		t.Fatalf("first offset = %v", got)
	}

	if err := l.Clean(ctx); err != nil {
		t.Fatal(err)
	}
	type kv struct {
		Offset int64
		Key    string
		Value  string
	}
	show := func(recs []broker.Record) []kv {
		var out []kv
		for _, r := range recs {
			k, v := string(r.Key), string(r.Value)
			if r.Key == nil {
				k = "<nil>"
			}
			if r.Value == nil {
				v = "<tombstone>"
			}
			out = append(out, kv{r.Offset, k, v})
		}
		return out
	}
	want := []kv{
		{3, "a", "a2"},
		{4, "<nil>", "n1"},
		{5, "b", "<tombstone>"},
		{6, "c", "c2"},
		{7, "d", "d1"},
	}
	if diff := cmp.Diff(want, show(readAll(t, l, tp("changelog", 0)))); diff != "" {
		t.Errorf("compacted records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(broker.PartitionOffsets{Start: 0, End: 8}, offsets(t, l, tp("changelog", 0))); diff != "" {
		t.Errorf("bounds (-want +got):\n%s", diff)
	}
	// The reader continues in order: the records it had buffered before
	// compaction, then the compacted log.
	var got []int64
	for len(got) == 0 || got[len(got)-1] < 7 {
		got = append(got, offsetsOf(pollRecords(t, s, 1))...)
	}
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			t.Fatalf("offsets after compaction out of order: %v", got)
		}
	}
	// Reading from an offset compaction removed starts at the next record.
	var from2 []int64
	if err := l.Read(ctx, tp("changelog", 0), 2, 100, func(r broker.Record) error {
		from2 = append(from2, r.Offset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(from2, []int64{3, 4, 5, 6, 7}) {
		t.Errorf("Read from 2 = %v, want [3 4 5 6 7]", from2)
	}
	// Compacting again changes nothing; new records are compacted next time.
	if err := l.Clean(ctx); err != nil {
		t.Fatal(err)
	}
	produce(r("d", "d2"))
	if err := l.Clean(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want[:len(want)-1], kv{8, "d", "d2"})
	if diff := cmp.Diff(want, show(readAll(t, l, tp("changelog", 0)))); diff != "" {
		t.Errorf("records after the second compaction (-want +got):\n%s", diff)
	}
}

// TestCleanConcurrent runs the cleaner in the background while sessions
// consume and commit, for the race detector and for offsets that stay
// in order.
func TestCleanConcurrent(t *testing.T) {
	l := openTest(t, Options{CleanInterval: time.Millisecond})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "cl", Partitions: 2, Compacted: true})
	s := join(t, l, "g", "m", "cl")
	poll(t, s, 0)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 200 {
			if err := l.Produce(ctx, rec("cl", int32(i%2), fmt.Sprint(i%7), fmt.Sprint(i))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	last := map[int32]int64{0: -1, 1: -1}
	for last[0] < 99 || last[1] < 99 { // 100 records per partition; compaction keeps the last
		for _, r := range pollRecords(t, s, 1) {
			if r.Offset <= last[r.Partition] {
				t.Fatalf("%s: offset %d after %d", tp(r.Topic, r.Partition), r.Offset, last[r.Partition])
			}
			last[r.Partition] = r.Offset
			// The value says which record this is: i with i%2 = partition.
			var i int64
			fmt.Sscan(string(r.Value), &i)
			if i/2 != r.Offset {
				t.Fatalf("%s offset %d holds record %d", tp(r.Topic, r.Partition), r.Offset, i)
			}
		}
	}
	wg.Wait()
}
