package embedded

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/internal/murmur2"
)

func TestProduceReadRoundTrip(t *testing.T) {
	l := openTest(t, Options{})
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2})
	want := []broker.Record{
		{Topic: "in", Partition: 1, Timestamp: 10, Key: []byte("k"), Value: []byte("v")},
		{Topic: "in", Partition: 1, Timestamp: 11, Key: nil, Value: nil},
		{Topic: "in", Partition: 1, Timestamp: 12, Key: []byte{}, Value: []byte{}},
		{Topic: "in", Partition: 1, Timestamp: 9, Key: []byte("k"), Value: []byte("v2"),
			Headers: []broker.Header{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: nil}, {Key: "h3", Value: []byte{}}}},
	}
	ctx := context.Background()
	if err := l.Produce(ctx, want[:2]...); err != nil {
		t.Fatal(err)
	}
	if err := l.Produce(ctx, want[2:]...); err != nil {
		t.Fatal(err)
	}
	for i := range want {
		want[i].Offset = int64(i)
	}
	got := readAll(t, l, tp("in", 1))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(broker.PartitionOffsets{Start: 0, End: 4}, offsets(t, l, tp("in", 1))); diff != "" {
		t.Errorf("offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(broker.PartitionOffsets{}, offsets(t, l, tp("in", 0))); diff != "" {
		t.Errorf("offsets of the empty partition (-want +got):\n%s", diff)
	}
}

func TestProduceCopiesRecords(t *testing.T) {
	l := openTest(t, Options{})
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
	value := []byte("before")
	if err := l.Produce(context.Background(), broker.Record{Topic: "in", Value: value}); err != nil {
		t.Fatal(err)
	}
	copy(value, "AFTER!")
	if got := values(readAll(t, l, tp("in", 0))); !cmp.Equal(got, []string{"before"}) {
		t.Errorf("values = %q, want [before]", got)
	}
}

// TestReadRanges reads sub-ranges that start and end inside batches, with
// batches split by a small MaxBatchBytes.
func TestReadRanges(t *testing.T) {
	l := openTest(t, Options{MaxBatchBytes: 100})
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
	ctx := context.Background()
	for b := 0; b < 5; b++ {
		var recs []broker.Record
		for i := 0; i < 10; i++ {
			recs = append(recs, rec("in", 0, "k", fmt.Sprint(b*10+i)))
		}
		if err := l.Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	if n := countBatches(t, l, "in", 0); n <= 5 {
		t.Errorf("%d batches, want more than 5: MaxBatchBytes should split commits", n)
	}
	tests := []struct{ from, to int64 }{
		{0, 50}, {0, 1}, {3, 17}, {9, 10}, {10, 11}, {49, 50}, {45, 1000}, {-5, 2}, {50, 60}, {20, 20}, {30, 25},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d", tt.from, tt.to), func(t *testing.T) {
			var want []int64
			for o := max(tt.from, 0); o < min(tt.to, 50); o++ {
				want = append(want, o)
			}
			var got []int64
			err := l.Read(ctx, tp("in", 0), tt.from, tt.to, func(r broker.Record) error {
				if string(r.Value) != fmt.Sprint(r.Offset) {
					t.Errorf("record %d has value %q", r.Offset, r.Value)
				}
				got = append(got, r.Offset)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("offsets (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("fn error stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := l.Read(ctx, tp("in", 0), 0, 50, func(r broker.Record) error {
			n++
			if n == 3 {
				return stop
			}
			return nil
		})
		if err != stop || n != 3 {
			t.Errorf("Read = %v after %d records, want %v after 3", err, n, stop)
		}
	})
}

func countBatches(t *testing.T, l *Log, topic string, p int32) int {
	t.Helper()
	l.mu.Lock()
	tt := l.mu.topics[topic]
	l.mu.Unlock()
	it, err := l.partitionIter(tt, p)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for valid := it.First(); valid; valid = it.Next() {
		n++
	}
	return n
}

func TestProduceAnyPartition(t *testing.T) {
	l := openTest(t, Options{})
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 3})
	ctx := context.Background()
	keys := []string{"alice", "bob", "carol", "dave", "erin"}
	for _, k := range keys {
		if err := l.Produce(ctx, broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: []byte(k), Value: []byte(k)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 6; i++ {
		if err := l.Produce(ctx, broker.Record{Topic: "in", Partition: broker.AnyPartition, Value: []byte("nil-key")}); err != nil {
			t.Fatal(err)
		}
	}
	want := map[int32][]string{}
	for _, k := range keys {
		p := murmur2.Partition([]byte(k), 3)
		want[p] = append(want[p], k)
	}
	for p := int32(0); p < 3; p++ {
		want[p] = append(want[p], "nil-key", "nil-key") // round robin: 6 over 3
	}
	got := map[int32][]string{}
	for p := int32(0); p < 3; p++ {
		got[p] = values(readAll(t, l, tp("in", p)))
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("values per partition (-want +got):\n%s", diff)
	}
}

func TestProduceAtomic(t *testing.T) {
	l := openTest(t, Options{})
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2})
	err := l.Produce(context.Background(), rec("in", 0, "a", "1"), rec("in", 2, "b", "2"))
	if err == nil || !strings.Contains(err.Error(), "partition 2 out of range") {
		t.Fatalf("Produce = %v, want a partition out of range error", err)
	}
	if got := offsets(t, l, tp("in", 0)); got.End != 0 {
		t.Errorf("partition 0 ends at %d after a failed Produce, want 0", got.End)
	}
}

func TestTopicErrors(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "views", Partitions: 4})
	tests := []struct {
		name   string
		err    error
		is     error
		substr string
	}{
		{
			name:   "mismatch",
			err:    l.CreateTopics(ctx, broker.TopicConfig{Name: "views", Partitions: 8}),
			is:     broker.ErrTopicMismatch,
			substr: "create topic views with 8 partitions: it exists with 4",
		},
		{
			name:   "mismatch within one call",
			err:    l.CreateTopics(ctx, broker.TopicConfig{Name: "x", Partitions: 1}, broker.TopicConfig{Name: "x", Partitions: 2}),
			is:     broker.ErrTopicMismatch,
			substr: "create topic x with 2 partitions: it exists with 1",
		},
		{
			name:   "produce unknown",
			err:    l.Produce(ctx, rec("clicks", 0, "k", "v")),
			is:     broker.ErrUnknownTopic,
			substr: "topic clicks",
		},
		{
			name: "offsets unknown",
			err: func() error {
				_, err := l.Offsets(ctx, tp("clicks", 0))
				return err
			}(),
			is:     broker.ErrUnknownTopic,
			substr: "topic clicks",
		},
		{
			name:   "read unknown",
			err:    l.Read(ctx, tp("clicks", 0), 0, 1, func(broker.Record) error { return nil }),
			is:     broker.ErrUnknownTopic,
			substr: "topic clicks",
		},
		{
			name: "session unknown",
			err: func() error {
				_, err := l.NewSession(ctx, broker.SessionConfig{Group: "g", Member: "m", Topics: []string{"views", "clicks"}})
				return err
			}(),
			is:     broker.ErrUnknownTopic,
			substr: "subscribes to clicks",
		},
		{
			name: "partition out of range",
			err: func() error {
				_, err := l.Offsets(ctx, tp("views", 4))
				return err
			}(),
			substr: "topic views has 4 partitions, no partition 4",
		},
		{
			name:   "zero partitions",
			err:    l.CreateTopics(ctx, broker.TopicConfig{Name: "z"}),
			substr: "create topic z: 0 partitions",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(tt.err, tt.is) {
				t.Errorf("err = %v, want one wrapping %v", tt.err, tt.is)
			}
			if !strings.Contains(tt.err.Error(), tt.substr) {
				t.Errorf("err = %q, want it to contain %q", tt.err, tt.substr)
			}
		})
	}
	// The failed call created nothing, not even the valid topic before
	// the mismatch.
	got, err := l.DescribeTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]broker.TopicConfig{"views": {Name: "views", Partitions: 4}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
}

func TestCreateTopicsIdempotent(t *testing.T) {
	l := openTest(t, Options{})
	cfg := broker.TopicConfig{Name: "t", Partitions: 2, Compacted: true, Retention: time.Hour}
	createTopics(t, l, cfg)
	if err := l.Produce(context.Background(), rec("t", 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	createTopics(t, l, broker.TopicConfig{Name: "t", Partitions: 2})
	got, err := l.DescribeTopics(context.Background(), "t", "missing")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]broker.TopicConfig{"t": cfg}, got); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
	if o := offsets(t, l, tp("t", 1)); o.End != 1 {
		t.Errorf("end = %d after creating again, want 1", o.End)
	}
}

func TestDeleteTopics(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "a", Partitions: 1}, broker.TopicConfig{Name: "b", Partitions: 1})
	if err := l.Produce(ctx, rec("a", 0, "k", "a1"), rec("b", 0, "k", "b1")); err != nil {
		t.Fatal(err)
	}
	s := join(t, l, "g", "m", "a")
	poll(t, s, 0) // assigned
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{tp("a", 0): {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteTopics(ctx, "a", "missing"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Offsets(ctx, tp("a", 0)); !errors.Is(err, broker.ErrUnknownTopic) {
		t.Errorf("Offsets of a deleted topic: %v, want ErrUnknownTopic", err)
	}
	// A new topic of the same name starts empty, with no committed offsets.
	createTopics(t, l, broker.TopicConfig{Name: "a", Partitions: 1})
	if got := readAll(t, l, tp("a", 0)); len(got) != 0 {
		t.Errorf("recreated topic holds %d records, want 0", len(got))
	}
	s2 := join(t, l, "g", "m2", "a")
	f := poll(t, s2, 0)
	if diff := cmp.Diff(broker.Fetch{Assigned: []broker.TopicPartition{tp("a", 0)}}, f); diff != "" {
		t.Errorf("fetch after recreating (-want +got):\n%s", diff)
	}
	if got := values(readAll(t, l, tp("b", 0))); !cmp.Equal(got, []string{"b1"}) {
		t.Errorf("topic b = %q, want [b1]", got)
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	l, err := Open(Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2, Compacted: true}, broker.TopicConfig{Name: "out", Partitions: 1})
	for i := 0; i < 3; i++ {
		if err := l.Produce(ctx, rec("in", 0, "k", fmt.Sprint(i)), rec("in", 1, "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	s := join(t, l, "app", "w1", "in")
	poll(t, s, 0)
	recs := pollRecords(t, s, 6)
	for _, r := range recs {
		s.Send(broker.Record{Topic: "out", Partition: 0, Timestamp: r.Timestamp, Key: r.Key, Value: append([]byte("out-"), r.Value...)})
	}
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{
		tp("in", 0): {Offset: 3, Metadata: []byte("st=1000")},
		tp("in", 1): {Offset: 2},
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l, err = Open(Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	topics, err := l.DescribeTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantTopics := map[string]broker.TopicConfig{
		"in":  {Name: "in", Partitions: 2, Compacted: true},
		"out": {Name: "out", Partitions: 1},
	}
	if diff := cmp.Diff(wantTopics, topics); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
	for _, tt := range []struct {
		tp   broker.TopicPartition
		want broker.PartitionOffsets
	}{
		{tp("in", 0), broker.PartitionOffsets{End: 3}},
		{tp("in", 1), broker.PartitionOffsets{End: 3}},
		{tp("out", 0), broker.PartitionOffsets{End: 6}},
	} {
		if diff := cmp.Diff(tt.want, offsets(t, l, tt.tp)); diff != "" {
			t.Errorf("offsets of %s (-want +got):\n%s", tt.tp, diff)
		}
	}
	if got := len(readAll(t, l, tp("out", 0))); got != 6 {
		t.Errorf("out holds %d records, want 6", got)
	}
	s = join(t, l, "app", "w1", "in")
	f := poll(t, s, 0)
	want := broker.Fetch{
		Assigned: []broker.TopicPartition{tp("in", 0), tp("in", 1)},
		Committed: map[broker.TopicPartition]broker.Offset{
			tp("in", 0): {Offset: 3, Metadata: []byte("st=1000")},
			tp("in", 1): {Offset: 2},
		},
	}
	if diff := cmp.Diff(want, f); diff != "" {
		t.Errorf("fetch after reopening (-want +got):\n%s", diff)
	}
	if got := pollRecords(t, s, 1); string(got[0].Value) != "2" || got[0].Partition != 1 || got[0].Offset != 2 {
		t.Errorf("first record after reopening = %+v, want in/1 offset 2 value 2", got[0])
	}
}

func TestClosed(t *testing.T) {
	l, err := Open(Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
	s := join(t, l, "g", "m", "in")
	done := make(chan error)
	go func() {
		_, err := s.Poll(ctx, 0) // assignment
		if err == nil {
			_, err = s.Poll(ctx, 0) // blocks until Close
		}
		done <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Poll during Close = %v, want ErrClosed", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Poll did not return after Close")
	}
	calls := map[string]error{
		"Close":        l.Close(),
		"CreateTopics": l.CreateTopics(ctx, broker.TopicConfig{Name: "x", Partitions: 1}),
		"Produce":      l.Produce(ctx, rec("in", 0, "k", "v")),
		"Read":         l.Read(ctx, tp("in", 0), 0, 1, func(broker.Record) error { return nil }),
		"Clean":        l.Clean(ctx),
	}
	_, calls["Offsets"] = l.Offsets(ctx, tp("in", 0))
	_, calls["DescribeTopics"] = l.DescribeTopics(ctx)
	_, calls["NewSession"] = l.NewSession(ctx, broker.SessionConfig{Group: "g", Member: "m2", Topics: []string{"in"}})
	_, calls["Commit"] = s.Commit(ctx, nil)
	for name, err := range calls {
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}

func TestOpenValidates(t *testing.T) {
	_, err := Open(Options{})
	if err == nil || !strings.Contains(err.Error(), "Options.Dir is required") {
		t.Errorf("Open without Dir = %v, want an error asking for Dir", err)
	}
}

func TestAwait(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2})
	if err := l.Produce(ctx, rec("in", 0, "k", "v")); err != nil {
		t.Fatal(err)
	}
	// Returns at once when a partition already has more.
	if err := l.Await(ctx, map[broker.TopicPartition]int64{tp("in", 0): 0, tp("in", 1): 0}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		done <- l.Await(ctx, map[broker.TopicPartition]int64{tp("in", 0): 1, tp("in", 1): 0})
	}()
	if err := l.Produce(ctx, rec("in", 1, "k", "v")); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("Await = %v, want nil after a Produce", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Await(cctx, map[broker.TopicPartition]int64{tp("in", 0): 1}); err != context.Canceled {
		t.Errorf("Await with nothing new and a canceled context = %v, want context.Canceled", err)
	}
}

// TestCompress checks that Options.Compress decides whether the log's
// files are compressed: 8 MiB of zero-filled values flushed to sstables
// take less than a tenth of that compressed and more than all of it not.
func TestCompress(t *testing.T) {
	const n, size = 2048, 4096
	for _, compress := range []bool{false, true} {
		t.Run(fmt.Sprint("compress=", compress), func(t *testing.T) {
			dir := t.TempDir()
			l, err := Open(Options{Dir: dir, Compress: compress, MemTableBytes: 1 << 20, CleanInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
			for i := range n {
				r := broker.Record{Topic: "in", Partition: 0, Key: []byte(fmt.Sprint(i)), Value: make([]byte, size)}
				if err := l.Produce(context.Background(), r); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			var sst int64
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if strings.HasSuffix(e.Name(), ".sst") {
					info, err := e.Info()
					if err != nil {
						t.Fatal(err)
					}
					sst += info.Size()
				}
			}
			flushed := int64(n*size) * 3 / 4 // all but the last memtable or so
			switch {
			case compress && (sst == 0 || sst > flushed/10):
				t.Errorf("compressed sstables hold %d bytes; want some, under %d", sst, flushed/10)
			case !compress && sst < flushed:
				t.Errorf("uncompressed sstables hold %d bytes; want at least %d", sst, flushed)
			}
		})
	}
}
