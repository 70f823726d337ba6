package kafka

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/broker"
)

// TestPartitionerJavaVectors checks the partition of keyed records
// against the murmur2 hashes of Kafka's own UtilsTest.testMurmur2: Java's
// producer puts a key in toPositive(murmur2(key)) % partitions.
func TestPartitionerJavaVectors(t *testing.T) {
	vectors := map[string]int32{
		"21":                         -973932308,
		"foobar":                     -790332482,
		"a-little-bit-long-string":   -985981536,
		"a-little-bit-longer-string": -1486304829,
		"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
	}
	p := partitioner{}.ForTopic("t")
	for key, hash := range vectors {
		for n := 1; n <= 13; n++ {
			r := &kgo.Record{Topic: "t", Partition: broker.AnyPartition, Key: []byte(key)}
			if got, want := p.Partition(r, n), int((hash&0x7fffffff)%int32(n)); got != want {
				t.Errorf("partition of %q among %d = %d, want %d", key, n, got, want)
			}
		}
	}
	if got := p.Partition(&kgo.Record{Partition: 3, Key: []byte("21")}, 5); got != 3 {
		t.Errorf("explicit partition 3 became %d", got)
	}
	seen := map[int]bool{}
	for range 4 {
		seen[p.Partition(&kgo.Record{Partition: broker.AnyPartition}, 4)] = true
	}
	if len(seen) != 4 {
		t.Errorf("nil keys went to partitions %v, want round robin over 4", seen)
	}
}

// prepare creates the topics "in" and "out" on l with the given partition
// counts and produces recs; it returns a context bounding the test's waits.
func prepare(t *testing.T, l *Log, inPartitions, outPartitions int32, recs ...broker.Record) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: inPartitions}, broker.TopicConfig{Name: "out", Partitions: outPartitions}); err != nil {
		t.Fatal(err)
	}
	if err := l.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// inRecords returns records of partition p of "in" with the given values.
func inRecords(p int32, values ...string) []broker.Record {
	var recs []broker.Record
	for _, v := range values {
		recs = append(recs, broker.Record{Topic: "in", Partition: p, Value: []byte(v)})
	}
	return recs
}

// TestZombieFencedAfterFlush has a zombie's transactional records really
// in the log (flushed, in an open transaction) when a new session of the
// same member fences it: its Commit fails with ErrFenced, read-committed
// readers never see its records, Read steps over the aborted records and
// the transaction markers, and the fresh session's commit is visible.
func TestZombieFencedAfterFlush(t *testing.T) {
	l := openTest(t, newFake(t).ListenAddrs())
	ctx := prepare(t, l, 1, 1, inRecords(0, "x")...)
	in, out := broker.TopicPartition{Topic: "in", Partition: 0}, broker.TopicPartition{Topic: "out", Partition: 0}
	join := func() *Session {
		s, err := l.Join(ctx, broker.SessionConfig{Group: "app", Member: "w1", Topics: []string{"in"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	zombie := join()
	if f, err := zombie.Poll(ctx, 0); err != nil || len(f.Assigned) != 1 {
		t.Fatalf("zombie's first Poll = %+v, %v; want its assignment", f, err)
	}
	for _, v := range []string{"z1", "z2"} {
		zombie.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte(v)})
	}
	if err := zombie.cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if o, err := l.Offsets(ctx, out); err != nil || o.End != 0 {
		t.Errorf("out's offsets with an open transaction = %+v, %v; want the end still at 0", o, err)
	}

	fresh := join()
	_, err := zombie.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 1}})
	if !errors.Is(err, broker.ErrFenced) {
		t.Fatalf("zombie's Commit = %v, want ErrFenced", err)
	}
	if _, err := zombie.Poll(ctx, 0); !errors.Is(err, broker.ErrFenced) {
		t.Errorf("zombie's Poll after fencing = %v, want ErrFenced", err)
	}
	if err := zombie.Close(ctx); err != nil {
		t.Fatal(err)
	}
	f, err := fresh.Poll(ctx, 0)
	if err != nil || !slices.Equal(f.Assigned, []broker.TopicPartition{in}) || len(f.Committed) != 0 {
		t.Fatalf("fresh session's Poll = %+v, %v; want in/0 with nothing committed", f, err)
	}
	fresh.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte("fresh")})
	ends, err := fresh.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 1}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	var offsets []int64
	if err := l.Read(ctx, out, 0, 1<<62, func(r broker.Record) error {
		got, offsets = append(got, string(r.Value)), append(offsets, r.Offset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"fresh"}, got); diff != "" {
		t.Errorf("out (-want +got):\n%s", diff)
	}
	// z1, z2, their abort marker, then fresh.
	if diff := cmp.Diff(map[broker.TopicPartition]int64{out: offsets[0] + 1}, ends); diff != "" || offsets[0] < 3 {
		t.Errorf("fresh at offset %d, ends %v (-want +got):\n%s", offsets[0], ends, diff)
	}
}

// TestSessionRejectsUnownedOffsets checks that Commit refuses to move
// the offset of a partition the session does not own.
func TestSessionRejectsUnownedOffsets(t *testing.T) {
	l := openTest(t, newFake(t).ListenAddrs())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}, broker.TopicConfig{Name: "other", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := l.Join(ctx, broker.SessionConfig{Group: "app", Member: "w1", Topics: []string{"in"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	if _, err := s.Poll(ctx, 0); err != nil {
		t.Fatal(err)
	}
	other := broker.TopicPartition{Topic: "other", Partition: 0}
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{other: {Offset: 1}}); !errors.Is(err, broker.ErrFenced) {
		t.Errorf("Commit of an unowned partition = %v, want ErrFenced", err)
	}
	// Still usable.
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{{Topic: "in", Partition: 0}: {Offset: 0}}); err != nil {
		t.Errorf("Commit after a refused one: %v", err)
	}
}

// TestKickedOutMemberAborted has a member hold a rebalance back past the
// rebalance timeout with uncommitted work: the coordinator removes it and
// gives its partitions to the other member. Its late Commit fails with
// ErrAborted (its group generation is gone), its records never become
// visible, and after the next Poll it reports the partitions revoked.
func TestKickedOutMemberAborted(t *testing.T) { testKickedOutMember(t, false) }

// TestAtLeastOnceKickedOutMember is TestKickedOutMemberAborted at least
// once: the coordinator refuses the late offset commits (ErrAborted, the
// session rewound), so nothing of the kicked-out member is committed to
// the group, while its records, flushed before, stay visible.
func TestAtLeastOnceKickedOutMember(t *testing.T) { testKickedOutMember(t, true) }

func testKickedOutMember(t *testing.T, atLeastOnce bool) {
	c := newFake(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	l, err := Open(ctx, Options{Brokers: c.ListenAddrs(), RebalanceTimeout: 2 * time.Second, SessionTimeout: 6 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	in := broker.TopicPartition{Topic: "in", Partition: 0}
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}, broker.TopicConfig{Name: "out", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if err := l.Produce(ctx, broker.Record{Topic: "in", Partition: 0, Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	join := func(member string) *Session {
		s, err := l.Join(ctx, broker.SessionConfig{Group: "app", Member: member, Topics: []string{"in"}, AtLeastOnce: atLeastOnce})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close(context.Background()) })
		return s
	}
	// pollFor polls s until f is what it wants.
	pollFor := func(s *Session, what string, want func(broker.Fetch) bool) {
		t.Helper()
		for {
			f, err := s.Poll(ctx, 0)
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if want(f) {
				return
			}
		}
	}
	a := join("a")
	pollFor(a, "a's assignment", func(f broker.Fetch) bool { return len(f.Assigned) == 1 })
	pollFor(a, "a's record", func(f broker.Fetch) bool { return len(f.Records) == 1 })
	a.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte("late")})

	// a has uncommitted work and does not poll: b gets in/0 only once
	// the coordinator gave up on a.
	b := join("b")
	start := time.Now()
	pollFor(b, "b's assignment", func(f broker.Fetch) bool { return slices.Contains(f.Assigned, in) })
	t.Logf("b got in/0 after %v", time.Since(start))
	// b goes on polling, as an engine does: a member that stops polling
	// holds every later rebalance back (BlockRebalanceOnPoll), and a's
	// rejoin would then wait on b instead of on the coordinator.
	bctx, bstop := context.WithCancel(ctx)
	bdone := make(chan struct{})
	go func() {
		defer close(bdone)
		for bctx.Err() == nil {
			_, _ = b.Poll(bctx, 0)
		}
	}()
	t.Cleanup(func() { bstop(); <-bdone })

	// a carries on as the engine does: it commits what it polls, and
	// every commit fails until a learns that it lost in/0.
	commits := 0
	for revoked := false; !revoked; {
		_, err = a.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 1}})
		switch {
		case atLeastOnce && !errors.Is(err, broker.ErrFenced):
			// A commit in the generation franz-go rejoins with would
			// be accepted: the session must end at the first refusal.
			t.Fatalf("kicked-out at-least-once member's Commit = %v, want ErrFenced", err)
		case !errors.Is(err, broker.ErrAborted) && !errors.Is(err, broker.ErrFenced):
			t.Fatalf("kicked-out member's Commit = %v, want ErrAborted or ErrFenced", err)
		}
		if commits++; commits == 1 {
			t.Logf("kicked-out member's Commit: %v", err)
		}
		if errors.Is(err, broker.ErrFenced) {
			break
		}
		for {
			f, err := a.Poll(ctx, 0)
			if err != nil {
				t.Fatalf("a's revoke: %v", err)
			}
			if slices.Contains(f.Revoked, in) {
				revoked = true
				break
			}
			if len(f.Records) > 0 {
				a.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte("late again")})
				break
			}
		}
	}
	var got []string
	if err := l.Read(ctx, broker.TopicPartition{Topic: "out", Partition: 0}, 0, 1<<62, func(r broker.Record) error {
		got = append(got, string(r.Value))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	switch {
	case !atLeastOnce && len(got) != 0:
		t.Errorf("out holds %q from the kicked-out member", got)
	case atLeastOnce && !slices.Equal(got, []string{"late"}):
		t.Errorf("out holds %q, want the kicked-out member's record, flushed by its refused commit", got)
	}
	if atLeastOnce {
		if _, err := a.Poll(ctx, 0); !errors.Is(err, broker.ErrFenced) {
			t.Errorf("kicked-out at-least-once member's Poll after its commit = %v, want ErrFenced", err)
		}
	}
	offsets, err := kadm.NewClient(l.cl).FetchOffsets(ctx, "app")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup("in", 0); ok && o.At >= 0 {
		t.Errorf("group app committed in/0 at %d: the kicked-out member's offsets were accepted", o.At)
	}
}
