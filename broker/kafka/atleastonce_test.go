package kafka

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/brokertest"
)

// atLeastOnceLog is a Log whose sessions are all at least once.
type atLeastOnceLog struct{ *Log }

func (l atLeastOnceLog) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	cfg.AtLeastOnce = true
	return l.Log.NewSession(ctx, cfg)
}

// notAtomic are the conformance subtests that assume a session's records
// and offsets commit atomically: that nothing sent is visible before
// Commit (SessionCommit), that Abort withdraws what was sent
// (AbortRewinds) and that a zombie's records never show (ZombieFenced).
// An at-least-once session promises none of that.
var notAtomic = []string{"SessionCommit", "AbortRewinds", "ZombieFenced"}

// TestAtLeastOnceConformance runs the conformance suite's subtests that
// hold without atomic commits on at-least-once sessions: topics, produce
// and read, committed offsets becoming positions, Poll's context, and two
// members handing partitions over with every record exactly once (no
// crash, so no duplicate).
func TestAtLeastOnceConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Log {
		if name := t.Name()[len("TestAtLeastOnceConformance/"):]; slices.Contains(notAtomic, name) {
			t.Skipf("%s assumes atomic commits; TestAtLeastOnceCommit and TestAtLeastOnceAbortRewinds cover an at-least-once session instead", name)
		}
		return atLeastOnceLog{openTest(t, newFake(t).ListenAddrs())}
	})
}

// joinAtLeastOnce joins an at-least-once session that the test closes.
func joinAtLeastOnce(t *testing.T, ctx context.Context, l *Log, member string, topics ...string) *Session {
	t.Helper()
	s, err := l.Join(ctx, broker.SessionConfig{Group: "app", Member: member, Topics: topics, AtLeastOnce: true})
	if err != nil {
		t.Fatal(err)
	}
	if s.gts != nil || s.txnID != "" {
		t.Fatalf("at-least-once session on a transactional client (transactional id %q)", s.txnID)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// pollUntil polls s until want accepts a Fetch, and returns that Fetch.
func pollUntil(t *testing.T, ctx context.Context, s *Session, what string, want func(broker.Fetch) bool) broker.Fetch {
	t.Helper()
	for {
		pctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		f, err := s.Poll(pctx, 0)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: %v", what, err)
		}
		if ctx.Err() != nil {
			t.Fatalf("%s: %v", what, ctx.Err())
		}
		if want(f) {
			return f
		}
	}
}

// readValues returns the values of tp's committed records and their offsets.
func readValues(t *testing.T, ctx context.Context, l *Log, tp broker.TopicPartition) ([]string, []int64) {
	t.Helper()
	var values []string
	var offsets []int64
	if err := l.Read(ctx, tp, 0, 1<<62, func(r broker.Record) error {
		values, offsets = append(values, string(r.Value)), append(offsets, r.Offset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return values, offsets
}

// TestAtLeastOnceCommit commits records and offsets with metadata at
// least once: the records are in the log with dense offsets (no
// transaction markers) and Commit's ends are right after them; a commit of
// records only works too; and the next session of the group gets the
// committed offsets with their metadata and starts there.
func TestAtLeastOnceCommit(t *testing.T) {
	l := openTest(t, newFake(t).ListenAddrs())
	ctx := prepare(t, l, 2, 1, append(inRecords(0, "a", "b"), inRecords(1, "c")...)...)
	in0, in1, out := broker.TopicPartition{Topic: "in", Partition: 0}, broker.TopicPartition{Topic: "in", Partition: 1}, broker.TopicPartition{Topic: "out", Partition: 0}
	s := joinAtLeastOnce(t, ctx, l, "w1", "in")
	f := pollUntil(t, ctx, s, "assignment", func(f broker.Fetch) bool { return len(f.Assigned) > 0 })
	if diff := cmp.Diff([]broker.TopicPartition{in0, in1}, f.Assigned); diff != "" || len(f.Committed) != 0 {
		t.Fatalf("assigned %v with committed %v (-want +got):\n%s", f.Assigned, f.Committed, diff)
	}
	var got []string
	pollUntil(t, ctx, s, "records", func(f broker.Fetch) bool {
		for _, r := range f.Records {
			got = append(got, string(r.Value))
			s.Send(broker.Record{Topic: "out", Partition: 0, Value: append([]byte("out-"), r.Value...)})
		}
		return len(got) == 3
	})
	ends, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in0: {Offset: 2, Metadata: []byte("st=7")}, in1: {Offset: 1}})
	if err != nil {
		t.Fatal(err)
	}
	values, offsets := readValues(t, ctx, l, out)
	slices.Sort(values)
	if diff := cmp.Diff([]string{"out-a", "out-b", "out-c"}, values); diff != "" {
		t.Errorf("out (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int64{0, 1, 2}, offsets); diff != "" {
		t.Errorf("out's offsets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[broker.TopicPartition]int64{out: 3}, ends); diff != "" {
		t.Errorf("Commit ends (-want +got):\n%s", diff)
	}
	s.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte("more")})
	if ends, err := s.Commit(ctx, nil); err != nil || !cmp.Equal(ends, map[broker.TopicPartition]int64{out: 4}) {
		t.Errorf("records-only Commit = %v, %v; want ends out/0: 4", ends, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	if err := l.Produce(ctx, inRecords(0, "d")...); err != nil {
		t.Fatal(err)
	}
	next := joinAtLeastOnce(t, ctx, l, "w2", "in")
	f = pollUntil(t, ctx, next, "the next session's assignment", func(f broker.Fetch) bool { return len(f.Assigned) > 0 })
	want := map[broker.TopicPartition]broker.Offset{in0: {Offset: 2, Metadata: []byte("st=7")}, in1: {Offset: 1}}
	if diff := cmp.Diff(want, f.Committed); diff != "" {
		t.Errorf("committed offsets for the next session (-want +got):\n%s", diff)
	}
	f = pollUntil(t, ctx, next, "the next session's records", func(f broker.Fetch) bool { return len(f.Records) > 0 })
	if len(f.Records) != 1 || string(f.Records[0].Value) != "d" {
		t.Errorf("the next session's records = %+v, want d alone", f.Records)
	}
}

// TestAtLeastOnceRevoke has a second member join while the first holds
// uncommitted work: the second gets nothing until the first committed;
// then the first's next Poll reports the partition revoked, and the second
// gets it with the offset and metadata the first committed.
func TestAtLeastOnceRevoke(t *testing.T) {
	l := openTest(t, newFake(t).ListenAddrs())
	ctx, cancel := context.WithCancel(prepare(t, l, 2, 2, inRecords(1, "x")...))
	defer cancel()
	in0, in1 := broker.TopicPartition{Topic: "in", Partition: 0}, broker.TopicPartition{Topic: "in", Partition: 1}
	a := joinAtLeastOnce(t, ctx, l, "a", "in")
	pollUntil(t, ctx, a, "a's assignment", func(f broker.Fetch) bool { return len(f.Assigned) == 2 })
	pollUntil(t, ctx, a, "a's record", func(f broker.Fetch) bool { return len(f.Records) == 1 })
	a.Send(broker.Record{Topic: "out", Partition: 1, Value: []byte("x")})

	// CoPartitioned over a and b: in/1 moves to b.
	// Both go on polling, as engines do between commits.
	b := joinAtLeastOnce(t, ctx, l, "b", "in")
	hold := time.Now().Add(2 * time.Second)
	for time.Now().Before(hold) {
		for name, s := range map[string]*Session{"a": a, "b": b} {
			pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			f, err := s.Poll(pctx, 0)
			pcancel()
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatal(err)
			}
			if len(f.Assigned) > 0 || len(f.Revoked) > 0 {
				t.Fatalf("%s got %+v while a had uncommitted work on in/1", name, f)
			}
		}
	}
	if _, err := a.Commit(ctx, map[broker.TopicPartition]broker.Offset{in1: {Offset: 1, Metadata: []byte("a")}}); err != nil {
		t.Fatal(err)
	}
	f := pollUntil(t, ctx, a, "a's revoke", func(f broker.Fetch) bool { return len(f.Revoked) > 0 })
	if diff := cmp.Diff([]broker.TopicPartition{in1}, f.Revoked); diff != "" {
		t.Errorf("a's revoked partitions (-want +got):\n%s", diff)
	}
	// As the engine does: commit what it did for them (nothing), then poll on.
	if _, err := a.Commit(ctx, map[broker.TopicPartition]broker.Offset{in1: {Offset: 1, Metadata: []byte("a")}}); err != nil {
		t.Errorf("a's Commit of its revoked partition's unchanged offset: %v", err)
	}
	if _, err := a.Commit(ctx, map[broker.TopicPartition]broker.Offset{in1: {Offset: 0}}); !errors.Is(err, broker.ErrFenced) {
		t.Errorf("a's Commit of a changed offset of its revoked partition = %v, want ErrFenced", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			pctx, pcancel := context.WithTimeout(ctx, 100*time.Millisecond)
			_, _ = a.Poll(pctx, 0)
			pcancel()
			select {
			case <-done:
				return
			default:
			}
		}
	}()
	f = pollUntil(t, ctx, b, "b's assignment", func(f broker.Fetch) bool { return len(f.Assigned) > 0 })
	cancel()
	<-done
	if diff := cmp.Diff([]broker.TopicPartition{in1}, f.Assigned); diff != "" {
		t.Errorf("b's assignment (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[broker.TopicPartition]broker.Offset{in1: {Offset: 1, Metadata: []byte("a")}}, f.Committed); diff != "" {
		t.Errorf("b's committed offsets (-want +got):\n%s", diff)
	}
	if a.owned[in0] != true || a.owned[in1] {
		t.Errorf("a owns %v, want in/0 alone", a.owned)
	}
}

// TestAtLeastOnceFailedCommitRewinds has a record fail to produce (its
// partition does not exist): Commit fails with an error that is neither
// ErrAborted nor ErrFenced, no offset is committed, the session rewinds
// to the committed offsets and stays usable. It also checks Abort's
// rewind, to the committed offset and, without one, to the log start.
func TestAtLeastOnceFailedCommitRewinds(t *testing.T) {
	l := openTest(t, newFake(t).ListenAddrs())
	ctx := prepare(t, l, 1, 1, inRecords(0, "0", "1", "2", "3")...)
	in := broker.TopicPartition{Topic: "in", Partition: 0}
	s := joinAtLeastOnce(t, ctx, l, "w1", "in")
	pollUntil(t, ctx, s, "assignment", func(f broker.Fetch) bool { return len(f.Assigned) == 1 })
	// next polls until it has n records and returns their values.
	next := func(what string, n int) []string {
		t.Helper()
		var got []string
		pollUntil(t, ctx, s, what, func(f broker.Fetch) bool {
			for _, r := range f.Records {
				got = append(got, string(r.Value))
			}
			return len(got) >= n
		})
		return got
	}
	if got := next("first records", 4); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Fatalf("records = %q", got)
	}
	// Abort with nothing committed goes back to the log start.
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next("records after Abort", 4); !slices.Equal(got, []string{"0", "1", "2", "3"}) {
		t.Errorf("records after Abort with nothing committed = %q, want 0 to 3", got)
	}
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 1, Metadata: []byte("m1")}}); err != nil {
		t.Fatal(err)
	}
	if got := next("records after the commit", 3); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("records after committing 1 = %q, want 1 to 3", got)
	}
	s.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte("ok")})
	s.Send(broker.Record{Topic: "out", Partition: 7, Value: []byte("nowhere")}) // out has 1 partition
	_, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 4}})
	if err == nil || errors.Is(err, broker.ErrAborted) || errors.Is(err, broker.ErrFenced) {
		t.Fatalf("Commit with a record that cannot be produced = %v, want a produce error", err)
	}
	t.Logf("Commit: %v", err)
	if s.dirty || len(s.pos) != 0 {
		t.Errorf("after the failed commit: dirty %v, positions %v; want rewound", s.dirty, s.pos)
	}
	if got := next("records after the failed commit", 3); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("records after the failed commit = %q, want 1 to 3 again", got)
	}
	// Abort goes back to the committed offset too, and the session
	// commits again.
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	if got := next("records after the second Abort", 3); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("records after Abort = %q, want 1 to 3", got)
	}
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 4, Metadata: []byte("m4")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	next2 := joinAtLeastOnce(t, ctx, l, "w2", "in")
	f := pollUntil(t, ctx, next2, "the next session's assignment", func(f broker.Fetch) bool { return len(f.Assigned) > 0 })
	if diff := cmp.Diff(map[broker.TopicPartition]broker.Offset{in: {Offset: 4, Metadata: []byte("m4")}}, f.Committed); diff != "" {
		t.Errorf("committed offsets (-want +got):\n%s", diff)
	}
}

// TestAtLeastOnceRefusedOffsets has the group coordinator refuse an
// offset commit (kfake answers it with the error): a refusal of the
// generation rewinds the session and returns ErrAborted; the group not
// knowing the member ends the session with ErrFenced; anything else fails
// it. In every case the records flushed before stay visible and the
// group's committed offset does not move.
func TestAtLeastOnceRefusedOffsets(t *testing.T) {
	tests := []struct {
		code   *kerr.Error
		want   error // nil: neither ErrAborted nor ErrFenced
		usable bool
	}{
		{kerr.RebalanceInProgress, broker.ErrAborted, true},
		{kerr.IllegalGeneration, broker.ErrAborted, true},
		{kerr.UnknownMemberID, broker.ErrFenced, false},
		{kerr.GroupAuthorizationFailed, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.code.Message, func(t *testing.T) {
			c := newFake(t)
			l := openTest(t, c.ListenAddrs())
			ctx := prepare(t, l, 1, 1, inRecords(0, "0", "1")...)
			in, out := broker.TopicPartition{Topic: "in", Partition: 0}, broker.TopicPartition{Topic: "out", Partition: 0}
			s := joinAtLeastOnce(t, ctx, l, "w1", "in")
			pollUntil(t, ctx, s, "assignment", func(f broker.Fetch) bool { return len(f.Assigned) == 1 })
			pollUntil(t, ctx, s, "record 0", func(f broker.Fetch) bool { return len(f.Records) > 0 && f.Records[0].Offset == 0 })
			if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 1, Metadata: []byte("m1")}}); err != nil {
				t.Fatal(err)
			}
			pollUntil(t, ctx, s, "record 1", func(f broker.Fetch) bool { return len(f.Records) > 0 })
			s.Send(broker.Record{Topic: "out", Partition: 0, Value: []byte("sent")})

			c.ControlKey(int16(kmsg.OffsetCommit), func(kr kmsg.Request) (kmsg.Response, error, bool) {
				req := kr.(*kmsg.OffsetCommitRequest)
				resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
				for _, rt := range req.Topics {
					t := kmsg.NewOffsetCommitResponseTopic()
					t.Topic, t.TopicID = rt.Topic, rt.TopicID
					for _, rp := range rt.Partitions {
						p := kmsg.NewOffsetCommitResponseTopicPartition()
						p.Partition, p.ErrorCode = rp.Partition, tc.code.Code
						t.Partitions = append(t.Partitions, p)
					}
					resp.Topics = append(resp.Topics, t)
				}
				return resp, nil, true
			})
			_, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 2}})
			t.Logf("Commit: %v", err)
			switch {
			case !errors.Is(err, tc.code):
				t.Errorf("Commit = %v, want an error wrapping %v", err, tc.code)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Errorf("Commit = %v, want an error wrapping %v", err, tc.want)
			case tc.want == nil && (errors.Is(err, broker.ErrAborted) || errors.Is(err, broker.ErrFenced)):
				t.Errorf("Commit = %v, want neither ErrAborted nor ErrFenced", err)
			}
			if values, _ := readValues(t, ctx, l, out); !slices.Equal(values, []string{"sent"}) {
				t.Errorf("out = %q, want the record flushed before the offsets were refused", values)
			}
			offsets, err := kadm.NewClient(l.cl).FetchOffsets(ctx, "app")
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := offsets.Lookup("in", 0); o.At != 1 || o.Metadata != "m1" {
				t.Errorf("group's committed offset of in/0 = %d %q, want 1 m1", o.At, o.Metadata)
			}
			if !tc.usable {
				if _, err := s.Poll(ctx, 0); err == nil {
					t.Errorf("Poll after the failed commit succeeded; want the session failed")
				}
				return
			}
			// Rewound to offset 1; the next commit goes through.
			f := pollUntil(t, ctx, s, "records after the refused commit", func(f broker.Fetch) bool { return len(f.Records) > 0 })
			if f.Records[0].Offset != 1 {
				t.Errorf("first record after the refused commit at offset %d, want 1", f.Records[0].Offset)
			}
			if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{in: {Offset: 2}}); err != nil {
				t.Errorf("Commit after the refused one: %v", err)
			}
		})
	}
}
