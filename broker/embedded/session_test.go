package embedded

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
)

type offsetMap = map[broker.TopicPartition]broker.Offset

func TestSessionConsumeProduceCommit(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2}, broker.TopicConfig{Name: "out", Partitions: 2})
	if err := l.Produce(ctx, rec("in", 0, "a", "a0"), rec("in", 1, "b", "b0"), rec("in", 0, "a", "a1")); err != nil {
		t.Fatal(err)
	}
	s := join(t, l, "app", "w1", "in")
	f := poll(t, s, 0)
	if diff := cmp.Diff(broker.Fetch{Assigned: []broker.TopicPartition{tp("in", 0), tp("in", 1)}}, f); diff != "" {
		t.Fatalf("first fetch (-want +got):\n%s", diff)
	}
	recs := pollRecords(t, s, 3)
	byPartition := map[int32][]string{}
	for _, r := range recs {
		byPartition[r.Partition] = append(byPartition[r.Partition], string(r.Value))
	}
	if diff := cmp.Diff(map[int32][]string{0: {"a0", "a1"}, 1: {"b0"}}, byPartition); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, r := range recs {
		s.Send(broker.Record{Topic: "out", Partition: r.Partition, Timestamp: r.Timestamp, Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
	}
	s.Send(rec("out", 1, "extra", "X"))
	// Nothing is visible before Commit.
	if o := offsets(t, l, tp("out", 0)); o.End != 0 {
		t.Errorf("out/0 ends at %d before Commit, want 0", o.End)
	}
	ends, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 2}, tp("in", 1): {Offset: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[broker.TopicPartition]int64{tp("out", 0): 2, tp("out", 1): 2}, ends); diff != "" {
		t.Errorf("Commit ends (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"A0", "A1"}, values(readAll(t, l, tp("out", 0)))); diff != "" {
		t.Errorf("out/0 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{0, 1}, offsetsOf(readAll(t, l, tp("out", 1)))); diff != "" {
		t.Errorf("out/1 offsets (-want +got):\n%s", diff)
	}
	// A second commit continues the offsets densely.
	s.Send(rec("out", 0, "k", "next"))
	ends, err = s.Commit(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[broker.TopicPartition]int64{tp("out", 0): 3}, ends); diff != "" {
		t.Errorf("second Commit ends (-want +got):\n%s", diff)
	}
	if got := offsetsOf(readAll(t, l, tp("out", 0))); !cmp.Equal(got, []int64{0, 1, 2}) {
		t.Errorf("out/0 offsets = %v, want [0 1 2]", got)
	}
}

func TestAbortRewinds(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1}, broker.TopicConfig{Name: "out", Partitions: 1})
	if err := l.Produce(ctx, rec("in", 0, "k", "0"), rec("in", 0, "k", "1"), rec("in", 0, "k", "2"), rec("in", 0, "k", "3")); err != nil {
		t.Fatal(err)
	}
	s := join(t, l, "app", "w1", "in")
	poll(t, s, 0)
	if got := values(pollRecords(t, s, 1)); !cmp.Equal(got, []string{"0"}) {
		t.Fatalf("first record = %q", got)
	}
	if _, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if got := values(pollRecords(t, s, 2)); !cmp.Equal(got, []string{"1", "2"}) {
		t.Fatalf("records = %q, want [1 2]", got)
	}
	s.Send(rec("out", 0, "k", "aborted"))
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	// The position is back at the committed offset 1 and the aborted
	// record is gone, even after a later commit.
	if got := values(pollRecords(t, s, 3)); !cmp.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("records after Abort = %q, want [1 2 3]", got)
	}
	s.Send(rec("out", 0, "k", "kept"))
	if _, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 4}}); err != nil {
		t.Fatal(err)
	}
	if got := values(readAll(t, l, tp("out", 0))); !cmp.Equal(got, []string{"kept"}) {
		t.Errorf("out = %q, want [kept]", got)
	}
	// Abort without any commit rewinds to the log start.
	s2 := join(t, l, "other", "w1", "in")
	poll(t, s2, 0)
	pollRecords(t, s2, 4)
	if err := s2.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if got := offsetsOf(pollRecords(t, s2, 4)); !cmp.Equal(got, []int64{0, 1, 2, 3}) {
		t.Errorf("offsets after Abort with nothing committed = %v, want [0 1 2 3]", got)
	}
}

// TestCommitMovesPosition checks that committed offsets become the
// session's positions, also when they differ from what it consumed.
func TestCommitMovesPosition(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
	for i := range 6 {
		if err := l.Produce(ctx, rec("in", 0, "k", fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	s := join(t, l, "app", "w1", "in")
	poll(t, s, 0)
	pollRecords(t, s, 1) // buffers more than it returns
	if _, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 4}}); err != nil {
		t.Fatal(err)
	}
	if got := values(pollRecords(t, s, 2)); !cmp.Equal(got, []string{"4", "5"}) {
		t.Errorf("records after committing 4 = %q, want [4 5]", got)
	}
}

func TestCommitErrors(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2}, broker.TopicConfig{Name: "out", Partitions: 1})
	s := join(t, l, "app", "w1", "in")
	poll(t, s, 0)

	s.Send(rec("out", 0, "k", "good"))
	s.Send(rec("nope", 0, "k", "bad"))
	_, err := s.Commit(ctx, nil)
	if !errors.Is(err, broker.ErrUnknownTopic) || !strings.Contains(err.Error(), "topic nope") {
		t.Errorf("Commit after sending to an unknown topic = %v, want ErrUnknownTopic naming nope", err)
	}
	if o := offsets(t, l, tp("out", 0)); o.End != 0 {
		t.Errorf("out ends at %d after a failed Commit, want 0", o.End)
	}
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	s.Send(rec("out", 1, "k", "bad"))
	if _, err := s.Commit(ctx, nil); err == nil || !strings.Contains(err.Error(), "partition 1 out of range") {
		t.Errorf("Commit after sending to out/1 = %v, want partition out of range", err)
	}
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}

	// Offsets of a partition of another group member, or of no topic
	// subscribed: fenced.
	_, err = s.Commit(ctx, offsetMap{tp("out", 0): {Offset: 0}})
	if !errors.Is(err, broker.ErrFenced) || !strings.Contains(err.Error(), "commits out/0, which it does not own") {
		t.Errorf("Commit of an unowned partition = %v, want ErrFenced", err)
	}

	// Nothing to write and no offset change: a no-op that writes nothing.
	if _, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	before := l.db.Metrics().WAL.BytesIn
	ends, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 0}})
	if err != nil || len(ends) != 0 {
		t.Errorf("no-op Commit = %v, %v; want no ends and no error", ends, err)
	}
	if after := l.db.Metrics().WAL.BytesIn; after != before {
		t.Errorf("no-op Commit wrote %d bytes to the WAL", after-before)
	}
}

// TestRebalance walks through the cooperative protocol: a second member
// joins, then the first leaves.
func TestRebalance(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2})
	a := join(t, l, "app", "a", "in")
	if diff := cmp.Diff(broker.Fetch{Assigned: []broker.TopicPartition{tp("in", 0), tp("in", 1)}}, poll(t, a, 0)); diff != "" {
		t.Fatalf("a's first fetch (-want +got):\n%s", diff)
	}
	if err := l.Produce(ctx, rec("in", 0, "k", "p0"), rec("in", 1, "k", "p1")); err != nil {
		t.Fatal(err)
	}
	pollRecords(t, a, 2)
	if _, err := a.Commit(ctx, offsetMap{tp("in", 0): {Offset: 1}}); err != nil {
		t.Fatal(err)
	}

	b := join(t, l, "app", "b", "in")
	// b waits: in/1 is still a's.
	pollNothing(t, b)
	if diff := cmp.Diff(broker.Fetch{Revoked: []broker.TopicPartition{tp("in", 1)}}, poll(t, a, 0)); diff != "" {
		t.Fatalf("a's fetch after b joined (-want +got):\n%s", diff)
	}
	pollNothing(t, b)
	// a may still commit the revoked partition before its next Poll.
	if _, err := a.Commit(ctx, offsetMap{tp("in", 1): {Offset: 1, Metadata: []byte("m")}}); err != nil {
		t.Fatalf("commit of a revoked partition before the acknowledging Poll: %v", err)
	}
	// a's Poll acknowledges; b gets in/1 with a's committed offset.
	pollNothing(t, a)
	want := broker.Fetch{
		Assigned:  []broker.TopicPartition{tp("in", 1)},
		Committed: offsetMap{tp("in", 1): {Offset: 1, Metadata: []byte("m")}},
	}
	if diff := cmp.Diff(want, poll(t, b, 0)); diff != "" {
		t.Fatalf("b's fetch (-want +got):\n%s", diff)
	}
	// a is fenced from the partition it gave up.
	if _, err := a.Commit(ctx, offsetMap{tp("in", 1): {Offset: 2}}); !errors.Is(err, broker.ErrFenced) {
		t.Errorf("a's commit of in/1 after giving it up = %v, want ErrFenced", err)
	}
	// New records go to their owner only.
	if err := l.Produce(ctx, rec("in", 0, "k", "p0-2"), rec("in", 1, "k", "p1-2")); err != nil {
		t.Fatal(err)
	}
	if got := values(pollRecords(t, a, 1)); !cmp.Equal(got, []string{"p0-2"}) {
		t.Errorf("a got %q, want [p0-2]", got)
	}
	if got := values(pollRecords(t, b, 1)); !cmp.Equal(got, []string{"p1-2"}) {
		t.Errorf("b got %q, want [p1-2]", got)
	}

	// a leaves with uncommitted work: b gets in/0 from a's committed offset.
	a.Send(rec("in", 0, "k", "uncommitted"))
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	want = broker.Fetch{
		Assigned:  []broker.TopicPartition{tp("in", 0)},
		Committed: offsetMap{tp("in", 0): {Offset: 1}},
	}
	if diff := cmp.Diff(want, poll(t, b, 0)); diff != "" {
		t.Fatalf("b's fetch after a left (-want +got):\n%s", diff)
	}
	if got := values(pollRecords(t, b, 1)); !cmp.Equal(got, []string{"p0-2"}) {
		t.Errorf("b got %q from in/0, want [p0-2] (from a's committed offset)", got)
	}
	if o := offsets(t, l, tp("in", 0)); o.End != 2 {
		t.Errorf("in/0 ends at %d, want 2: a's uncommitted record must be dropped", o.End)
	}
	if _, err := a.Poll(ctx, 0); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Poll after Close = %v, want ErrClosed", err)
	}
}

func TestRejoinFencesZombie(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
	zombie := join(t, l, "app", "w1", "in")
	poll(t, zombie, 0)
	zombie.Send(rec("in", 0, "k", "zombie"))

	fresh := join(t, l, "app", "w1", "in")
	if diff := cmp.Diff(broker.Fetch{Assigned: []broker.TopicPartition{tp("in", 0)}}, poll(t, fresh, 0)); diff != "" {
		t.Errorf("fresh session's fetch (-want +got):\n%s", diff)
	}
	if _, err := zombie.Commit(ctx, nil); !errors.Is(err, broker.ErrFenced) {
		t.Errorf("zombie Commit = %v, want ErrFenced", err)
	}
	if _, err := zombie.Poll(ctx, 0); !errors.Is(err, broker.ErrFenced) {
		t.Errorf("zombie Poll = %v, want ErrFenced", err)
	}
	if o := offsets(t, l, tp("in", 0)); o.End != 0 {
		t.Errorf("in/0 ends at %d, want 0: the zombie's records must not be committed", o.End)
	}
	if err := zombie.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Closing the zombie does not disturb the fresh session.
	if _, err := fresh.Commit(ctx, offsetMap{tp("in", 0): {Offset: 0, Metadata: []byte("x")}}); err != nil {
		t.Errorf("fresh Commit after the zombie closed: %v", err)
	}
}

// TestRebalanceRandom drives members joining, leaving and polling in a
// random order and checks that no partition is ever owned by two members:
// a member owns a partition from the Fetch that assigns it until the Poll
// after the Fetch that revokes it. Once things settle, every partition has
// exactly the owner the assignor chose.
func TestRebalanceRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "a", Partitions: 4}, broker.TopicConfig{Name: "b", Partitions: 3})

	type member struct {
		s       *Session
		owns    map[broker.TopicPartition]bool // what its Fetches told it
		revoked []broker.TopicPartition        // owned until its next Poll
	}
	members := map[string]*member{}
	next := 0
	check := func(step int) {
		t.Helper()
		owner := map[broker.TopicPartition]string{}
		for name, m := range members {
			for tp := range m.owns {
				if o, ok := owner[tp]; ok {
					t.Fatalf("step %d: %s owned by %s and %s", step, tp, o, name)
				}
				owner[tp] = name
			}
		}
	}
	// pollOnce polls m and reports whether its assignment changed,
	// counting the acknowledgement of a revocation.
	pollOnce := func(m *member, wait time.Duration) bool {
		acked := len(m.revoked) > 0
		ctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		f, err := m.s.Poll(ctx, 0)
		if err != nil && err != context.DeadlineExceeded {
			t.Fatal(err)
		}
		// The Poll acknowledged the last revocation.
		for _, tp := range m.revoked {
			delete(m.owns, tp)
		}
		m.revoked = f.Revoked
		for _, tp := range f.Assigned {
			m.owns[tp] = true
		}
		return acked || len(f.Assigned) > 0 || len(f.Revoked) > 0
	}
	for step := 0; step < 300; step++ {
		switch x := rng.IntN(10); {
		case x == 0 && len(members) < 5 || len(members) == 0:
			name := fmt.Sprintf("m%d", next)
			next++
			members[name] = &member{s: join(t, l, "app", name, "a", "b"), owns: map[broker.TopicPartition]bool{}}
		case x == 1 && len(members) > 1:
			names := slices.Sorted(func(yield func(string) bool) {
				for n := range members {
					if !yield(n) {
						return
					}
				}
			})
			name := names[rng.IntN(len(names))]
			if err := members[name].s.Close(ctx); err != nil {
				t.Fatal(err)
			}
			delete(members, name)
		default:
			names := make([]string, 0, len(members))
			for n := range members {
				names = append(names, n)
			}
			slices.Sort(names)
			pollOnce(members[names[rng.IntN(len(names))]], time.Millisecond)
		}
		check(step)
	}
	// Settle: poll everyone until nothing changes.
	for changed := true; changed; {
		changed = false
		for _, m := range members {
			if pollOnce(m, 10*time.Millisecond) {
				changed = true
			}
			check(-1)
		}
	}
	names := make([]string, 0, len(members))
	for n := range members {
		names = append(names, n)
	}
	slices.Sort(names)
	want := map[string][]broker.TopicPartition{}
	for name, tps := range broker.CoPartitioned(names, map[string]int32{"a": 4, "b": 3}) {
		want[name] = slices.SortedFunc(slices.Values(tps), compareTP)
	}
	got := map[string][]broker.TopicPartition{}
	for name, m := range members {
		if len(m.owns) > 0 {
			got[name] = slices.SortedFunc(func(yield func(broker.TopicPartition) bool) {
				for tp := range m.owns {
					if !yield(tp) {
						return
					}
				}
			}, compareTP)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settled assignment (-want +got):\n%s", diff)
	}
}

func TestPollWakesOnCommit(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "events", Partitions: 1})
	consumer := join(t, l, "readers", "r", "events")
	poll(t, consumer, 0)
	producer := join(t, l, "writers", "w", "events")
	poll(t, producer, 0)

	got := make(chan broker.Fetch, 1)
	errc := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		f, err := consumer.Poll(ctx, 0)
		if err != nil {
			errc <- err
			return
		}
		got <- f
	}()
	producer.Send(rec("events", 0, "k", "hello"))
	if _, err := producer.Commit(ctx, nil); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if diff := cmp.Diff([]string{"hello"}, values(f.Records)); diff != "" {
			t.Errorf("woken Poll (-want +got):\n%s", diff)
		}
	case err := <-errc:
		t.Fatalf("Poll: %v", err)
	}
}

func TestPollContextDone(t *testing.T) {
	l := openTest(t, Options{})
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1})
	s := join(t, l, "g", "m", "in")
	poll(t, s, 0)
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	f, err := s.Poll(ctx, 0)
	if !errors.Is(err, context.Canceled) || !f.Empty() {
		t.Errorf("Poll = %+v, %v; want an empty Fetch and context.Canceled", f, err)
	}
}

// TestPollFair checks that Poll shares max between partitions with data
// and keeps each partition in offset order.
func TestPollFair(t *testing.T) {
	l := openTest(t, Options{MaxBatchBytes: 64})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 3})
	var recs []broker.Record
	for i := range 20 {
		recs = append(recs, rec("in", 0, "k", fmt.Sprint(i)), rec("in", 1, "k", fmt.Sprint(i)))
	}
	if err := l.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	s := join(t, l, "g", "m", "in")
	poll(t, s, 0)
	next := map[int32]int64{}
	for round := 0; round < 4; round++ {
		f := poll(t, s, 10)
		perPartition := map[int32]int{}
		for _, r := range f.Records {
			if r.Offset != next[r.Partition] {
				t.Fatalf("round %d: %s offset %d, want %d", round, tp(r.Topic, r.Partition), r.Offset, next[r.Partition])
			}
			next[r.Partition]++
			perPartition[r.Partition]++
		}
		if diff := cmp.Diff(map[int32]int{0: 5, 1: 5}, perPartition); diff != "" {
			t.Errorf("round %d: records per partition (-want +got):\n%s", round, diff)
		}
	}
	// A partition alone gets the whole share.
	if err := l.Produce(ctx, rec("in", 2, "k", "x"), rec("in", 2, "k", "y")); err != nil {
		t.Fatal(err)
	}
	f := poll(t, s, 10)
	if diff := cmp.Diff([]string{"x", "y"}, values(f.Records)); diff != "" {
		t.Errorf("in/2 (-want +got):\n%s", diff)
	}
}

// TestDeleteTopicInUse deletes and recreates a topic a session consumes:
// the session gets its partition revoked, then assigned again, and reads
// the new topic's records.
func TestDeleteTopicInUse(t *testing.T) {
	l := openTest(t, Options{})
	ctx := context.Background()
	createTopics(t, l, broker.TopicConfig{Name: "a", Partitions: 1})
	if err := l.Produce(ctx, rec("a", 0, "k", "old")); err != nil {
		t.Fatal(err)
	}
	s := join(t, l, "g", "m", "a")
	poll(t, s, 0)
	if _, err := s.Commit(ctx, offsetMap{tp("a", 0): {Offset: 1}}); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteTopics(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(broker.Fetch{Revoked: []broker.TopicPartition{tp("a", 0)}}, poll(t, s, 0)); diff != "" {
		t.Errorf("fetch after delete (-want +got):\n%s", diff)
	}
	createTopics(t, l, broker.TopicConfig{Name: "a", Partitions: 1})
	if err := l.Produce(ctx, rec("a", 0, "k", "new")); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(broker.Fetch{Assigned: []broker.TopicPartition{tp("a", 0)}}, poll(t, s, 0)); diff != "" {
		t.Errorf("fetch after recreate (-want +got):\n%s", diff)
	}
	if got := values(pollRecords(t, s, 1)); !cmp.Equal(got, []string{"new"}) {
		t.Errorf("records = %q, want [new]", got)
	}
}

// TestFetchesStayValid checks that the records of a Fetch are not
// overwritten by later Polls, which reuse the session's read buffers.
func TestFetchesStayValid(t *testing.T) {
	l := openTest(t, Options{})
	for _, p := range []int32{0, 1} {
		createTopics(t, l, broker.TopicConfig{Name: fmt.Sprint("in", p), Partitions: 1})
	}
	for batch := range 3 {
		var recs []broker.Record
		for i := range 10 {
			for _, p := range []int32{0, 1} {
				recs = append(recs, rec(fmt.Sprint("in", p), 0, fmt.Sprint(p), fmt.Sprint(batch*10+i)))
			}
		}
		if err := l.Produce(context.Background(), recs...); err != nil {
			t.Fatal(err)
		}
	}
	for _, topics := range [][]string{{"in0"}, {"in0", "in1"}} {
		t.Run(strings.Join(topics, ","), func(t *testing.T) {
			s := join(t, l, "g"+fmt.Sprint(len(topics)), "m", topics...)
			if f := poll(t, s, 0); len(f.Assigned) != len(topics) {
				t.Fatalf("first poll = %+v; want the assignment", f)
			}
			var fetches [][]broker.Record
			var snapshot []string
			for n := 0; n < 30*len(topics); {
				f := poll(t, s, 3)
				fetches = append(fetches, f.Records)
				for _, r := range f.Records {
					snapshot = append(snapshot, fmt.Sprintf("%s/%d@%d=%s", r.Topic, r.Partition, r.Offset, r.Value))
				}
				n += len(f.Records)
			}
			var later []string
			for _, f := range fetches {
				for _, r := range f {
					later = append(later, fmt.Sprintf("%s/%d@%d=%s", r.Topic, r.Partition, r.Offset, r.Value))
				}
			}
			if diff := cmp.Diff(snapshot, later); diff != "" {
				t.Errorf("records changed after later polls (-as returned +now):\n%s", diff)
			}
		})
	}
}
