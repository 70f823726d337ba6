// Package brokertest is a conformance suite for implementations of
// broker.Log: topics, produce and read, offsets, and the transactional
// consumer-group sessions the engine relies on (commit visibility, abort
// and rewind, co-partitioned assignment, handing partitions over, fencing
// zombies).
//
// Run it from a backend's tests:
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T) broker.Log { return openLog(t) })
//	}
//
// Every subtest asks newLog for its log and names its topics and groups
// after the subtest plus a random suffix, so newLog may return a fresh log
// each time or share one cluster between runs. newLog's log is closed by
// the caller's cleanup, not by the suite; sessions are closed by the suite.
//
// The suite asserts what every backend must do. Where backends may
// differ it says so: the exact offsets written (Kafka's transaction
// markers take offsets), and whether a fenced zombie's Commit fails with
// broker.ErrFenced or broker.ErrAborted. What must never differ is that a
// zombie's records never become visible and its offsets never advance.
package brokertest

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
)

// WaitTimeout bounds every wait of the suite: long enough for a consumer
// group on a loaded CI machine to rebalance twice.
const WaitTimeout = 30 * time.Second

// Run runs the conformance suite against the logs newLog returns.
func Run(t *testing.T, newLog func(t *testing.T) broker.Log) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"Topics", testTopics},
		{"ProduceRead", testProduceRead},
		{"KeyPartitioning", testKeyPartitioning},
		{"SessionCommit", testSessionCommit},
		{"CommitMovesPosition", testCommitMovesPosition},
		{"AbortRewinds", testAbortRewinds},
		{"PollContextDone", testPollContextDone},
		{"TwoMembers", testTwoMembers},
		{"ZombieFenced", testZombieFenced},
		{"Endpoints", testEndpoints},
		{"DeleteGroup", testDeleteGroup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newEnv(t, newLog(t)))
		})
	}
}

// env is a subtest's log and the unique prefix of its names.
type env struct {
	t      *testing.T
	log    broker.Log
	prefix string
}

var unsafeName = regexp.MustCompile(`[^a-zA-Z0-9._-]+`)

func newEnv(t *testing.T, l broker.Log) *env {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	name := unsafeName.ReplaceAllString(t.Name(), "_")
	return &env{t: t, log: l, prefix: name + "-" + hex.EncodeToString(b)}
}

// name returns a topic or group name unique to the subtest run.
func (e *env) name(s string) string { return e.prefix + "-" + s }

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) create(topics ...broker.TopicConfig) {
	e.t.Helper()
	if err := e.log.CreateTopics(e.ctx(), topics...); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) produce(recs ...broker.Record) {
	e.t.Helper()
	if err := e.log.Produce(e.ctx(), recs...); err != nil {
		e.t.Fatal(err)
	}
}

// readAll returns the committed records of tp.
func (e *env) readAll(tp broker.TopicPartition) []broker.Record {
	e.t.Helper()
	var out []broker.Record
	if err := e.log.Read(e.ctx(), tp, 0, 1<<62, func(r broker.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func (e *env) offsets(tp broker.TopicPartition) broker.PartitionOffsets {
	e.t.Helper()
	o, err := e.log.Offsets(e.ctx(), tp)
	if err != nil {
		e.t.Fatal(err)
	}
	return o
}

// join joins a session that the subtest closes at its end.
func (e *env) join(group, member string, topics ...string) *session {
	e.t.Helper()
	s, err := e.log.NewSession(e.ctx(), broker.SessionConfig{Group: group, Member: member, Topics: topics})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return &session{Session: s, t: e.t, name: member}
}

// joinAt joins a session advertising endpoint, that the subtest closes at
// its end.
func (e *env) joinAt(group, member, endpoint string, topics ...string) *session {
	e.t.Helper()
	s, err := e.log.NewSession(e.ctx(), broker.SessionConfig{Group: group, Member: member, Topics: topics, Endpoint: endpoint})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = s.Close(context.Background()) })
	return &session{Session: s, t: e.t, name: member}
}

// session wraps a broker.Session with test helpers.
type session struct {
	broker.Session
	t    *testing.T
	name string
}

// poll polls once, failing the test if nothing comes within WaitTimeout.
func (s *session) poll(max int) broker.Fetch {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), WaitTimeout)
	defer cancel()
	f, err := s.Poll(ctx, max)
	if err != nil {
		s.t.Fatalf("poll %s: %v", s.name, err)
	}
	return f
}

// awaitAssigned polls until the session is assigned exactly want,
// failing on records or revokes before.
func (s *session) awaitAssigned(want ...broker.TopicPartition) broker.Fetch {
	s.t.Helper()
	var got broker.Fetch
	for !gocmp.Equal(sorted(got.Assigned), sorted(want)) {
		f := s.poll(0)
		if len(f.Records) > 0 || len(f.Revoked) > 0 {
			s.t.Fatalf("poll %s: %+v while waiting for the assignment %v", s.name, f, want)
		}
		got.Assigned = append(got.Assigned, f.Assigned...)
		for tp, o := range f.Committed {
			if got.Committed == nil {
				got.Committed = map[broker.TopicPartition]broker.Offset{}
			}
			got.Committed[tp] = o
		}
		if len(got.Assigned) > len(want) {
			s.t.Fatalf("poll %s: assigned %v, want %v", s.name, got.Assigned, want)
		}
	}
	got.Assigned = sorted(got.Assigned)
	return got
}

// records polls until it has n records, failing on an assignment change.
func (s *session) records(n int) []broker.Record {
	s.t.Helper()
	var out []broker.Record
	for len(out) < n {
		f := s.poll(n - len(out))
		if len(f.Revoked) > 0 || len(f.Assigned) > 0 {
			s.t.Fatalf("poll %s: assignment change %+v while waiting for records", s.name, f)
		}
		out = append(out, f.Records...)
	}
	if len(out) > n {
		s.t.Fatalf("poll %s: %d records, asked for at most %d", s.name, len(out), n)
	}
	return out
}

func (s *session) commit(offsets map[broker.TopicPartition]broker.Offset) map[broker.TopicPartition]int64 {
	s.t.Helper()
	ends, err := s.Commit(context.Background(), offsets)
	if err != nil {
		s.t.Fatalf("commit %s: %v", s.name, err)
	}
	return ends
}

func tp(topic string, p int32) broker.TopicPartition {
	return broker.TopicPartition{Topic: topic, Partition: p}
}

func rec(topic string, p int32, key, value string) broker.Record {
	return broker.Record{Topic: topic, Partition: p, Timestamp: 1000, Key: []byte(key), Value: []byte(value)}
}

func values(recs []broker.Record) []string {
	out := []string{}
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

func compareTP(a, b broker.TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

func sorted(tps []broker.TopicPartition) []broker.TopicPartition {
	out := slices.Clone(tps)
	slices.SortFunc(out, compareTP)
	if out == nil {
		out = []broker.TopicPartition{}
	}
	return out
}

type offsetMap = map[broker.TopicPartition]broker.Offset

func testTopics(t *testing.T, e *env) {
	ctx := e.ctx()
	in, cl, missing := e.name("in"), e.name("changelog"), e.name("missing")
	e.create(broker.TopicConfig{Name: in, Partitions: 3, Retention: time.Hour},
		broker.TopicConfig{Name: cl, Partitions: 2, Compacted: true})
	// Creating again is a no-op; another partition count is an error.
	e.create(broker.TopicConfig{Name: in, Partitions: 3, Retention: time.Hour})
	err := e.log.CreateTopics(ctx, broker.TopicConfig{Name: in, Partitions: 4})
	if !errors.Is(err, broker.ErrTopicMismatch) || !strings.Contains(err.Error(), in) {
		t.Errorf("CreateTopics of %s with 4 partitions = %v, want ErrTopicMismatch naming the topic", in, err)
	}
	got, err := e.log.DescribeTopics(ctx, in, cl, missing)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]broker.TopicConfig{
		in: {Name: in, Partitions: 3, Retention: time.Hour},
		cl: {Name: cl, Partitions: 2, Compacted: true},
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("DescribeTopics (-want +got):\n%s", diff)
	}
	all, err := e.log.DescribeTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if all[in].Partitions != 3 || all[cl].Partitions != 2 {
		t.Errorf("DescribeTopics() lacks %s or %s: %v", in, cl, all)
	}
	if _, err := e.log.Offsets(ctx, tp(missing, 0)); !errors.Is(err, broker.ErrUnknownTopic) {
		t.Errorf("Offsets of a missing topic = %v, want ErrUnknownTopic", err)
	}
	if _, err := e.log.Offsets(ctx, tp(in, 3)); err == nil {
		t.Errorf("Offsets of %s/3 succeeded; the topic has 3 partitions", in)
	}
	if err := e.log.DeleteTopics(ctx, in, missing); err != nil {
		t.Fatal(err)
	}
	got, err = e.log.DescribeTopics(ctx, in, cl)
	if err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(map[string]broker.TopicConfig{cl: want[cl]}, got); diff != "" {
		t.Errorf("DescribeTopics after deleting %s (-want +got):\n%s", in, diff)
	}
	if _, err := e.log.NewSession(ctx, broker.SessionConfig{Group: e.name("g"), Member: "m", Topics: []string{in}}); !errors.Is(err, broker.ErrUnknownTopic) {
		t.Errorf("NewSession subscribing to a deleted topic = %v, want ErrUnknownTopic", err)
	}
}

func testProduceRead(t *testing.T, e *env) {
	ctx := e.ctx()
	topic := e.name("t")
	e.create(broker.TopicConfig{Name: topic, Partitions: 2})
	in := []broker.Record{
		{Topic: topic, Partition: 0, Timestamp: 1000, Key: []byte("k1"), Value: []byte("v1"),
			Headers: []broker.Header{{Key: "h1", Value: []byte("x")}, {Key: "h2", Value: []byte("y")}}},
		{Topic: topic, Partition: 0, Timestamp: 2000, Value: []byte{}},   // nil key, empty value
		{Topic: topic, Partition: 0, Timestamp: 1500, Key: []byte("k3")}, // tombstone, earlier time
		{Topic: topic, Partition: 1, Timestamp: 1_700_000_000_123, Key: []byte("k4"), Value: []byte("v4")},
	}
	e.produce(in...)
	want0 := slices.Clone(in[:3])
	for i := range want0 {
		want0[i].Offset = int64(i)
	}
	want1 := []broker.Record{in[3]}
	if diff := gocmp.Diff(want0, e.readAll(tp(topic, 0))); diff != "" {
		t.Errorf("%s/0 (-want +got):\n%s", topic, diff)
	}
	if diff := gocmp.Diff(want1, e.readAll(tp(topic, 1))); diff != "" {
		t.Errorf("%s/1 (-want +got):\n%s", topic, diff)
	}
	if diff := gocmp.Diff(broker.PartitionOffsets{Start: 0, End: 3}, e.offsets(tp(topic, 0))); diff != "" {
		t.Errorf("offsets of %s/0 (-want +got):\n%s", topic, diff)
	}
	// A range, and the end clamped to the partition's end.
	var got []int64
	if err := e.log.Read(ctx, tp(topic, 0), 1, 2, func(r broker.Record) error {
		got = append(got, r.Offset)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, []int64{1}) {
		t.Errorf("Read [1, 2) = offsets %v, want [1]", got)
	}
	// fn's error stops Read and is returned.
	stop := errors.New("stop")
	calls := 0
	if err := e.log.Read(ctx, tp(topic, 0), 0, 3, func(broker.Record) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("Read with a failing fn = %v after %d calls, want %v after 1", err, calls, stop)
	}
	if err := e.log.Produce(ctx, rec(e.name("missing"), 0, "k", "v")); !errors.Is(err, broker.ErrUnknownTopic) {
		t.Errorf("Produce to a missing topic = %v, want ErrUnknownTopic", err)
	}
}

// javaVectors are murmur2 hashes from Kafka's own UtilsTest.testMurmur2.
var javaVectors = map[string]int32{
	"21":                         -973932308,
	"foobar":                     -790332482,
	"a-little-bit-long-string":   -985981536,
	"a-little-bit-longer-string": -1486304829,
	"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
}

// testKeyPartitioning checks that AnyPartition places a key where Kafka's
// Java producer would: toPositive(murmur2(key)) % partitions.
func testKeyPartitioning(t *testing.T, e *env) {
	topic := e.name("keyed")
	const n = 7
	e.create(broker.TopicConfig{Name: topic, Partitions: n})
	want := map[int32][]string{}
	var recs []broker.Record
	for _, key := range slices.Sorted(maps.Keys(javaVectors)) {
		p := (javaVectors[key] & 0x7fffffff) % n
		want[p] = append(want[p], key)
		recs = append(recs, broker.Record{Topic: topic, Partition: broker.AnyPartition, Key: []byte(key), Value: []byte(key)})
	}
	e.produce(recs...)
	got := map[int32][]string{}
	for p := range int32(n) {
		for _, r := range e.readAll(tp(topic, p)) {
			got[p] = append(got[p], string(r.Key))
		}
	}
	for p := range got {
		slices.Sort(got[p])
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("keys per partition (-want +got):\n%s", diff)
	}
}

func testSessionCommit(t *testing.T, e *env) {
	in, out, group := e.name("in"), e.name("out"), e.name("app")
	e.create(broker.TopicConfig{Name: in, Partitions: 2}, broker.TopicConfig{Name: out, Partitions: 2})
	e.produce(rec(in, 0, "a", "a0"), rec(in, 1, "b", "b0"), rec(in, 0, "a", "a1"))
	s := e.join(group, "w1", in)
	if f := s.awaitAssigned(tp(in, 0), tp(in, 1)); len(f.Committed) != 0 {
		t.Errorf("committed offsets of a new group: %v", f.Committed)
	}
	recs := s.records(3)
	byPartition := map[int32][]string{}
	for _, r := range recs {
		byPartition[r.Partition] = append(byPartition[r.Partition], string(r.Value))
	}
	if diff := gocmp.Diff(map[int32][]string{0: {"a0", "a1"}, 1: {"b0"}}, byPartition); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, r := range recs {
		s.Send(broker.Record{Topic: out, Partition: r.Partition, Timestamp: r.Timestamp, Key: r.Key, Value: []byte(strings.ToUpper(string(r.Value)))})
	}
	// Nothing is visible to read-committed readers before Commit.
	if got := e.readAll(tp(out, 0)); len(got) != 0 {
		t.Errorf("%s/0 before Commit: %v", out, values(got))
	}
	if o := e.offsets(tp(out, 0)); o.End != 0 {
		t.Errorf("%s/0 ends at %d before Commit, want 0", out, o.End)
	}
	ends := s.commit(offsetMap{tp(in, 0): {Offset: 2, Metadata: []byte("meta")}, tp(in, 1): {Offset: 1}})
	out0, out1 := e.readAll(tp(out, 0)), e.readAll(tp(out, 1))
	if diff := gocmp.Diff([]string{"A0", "A1"}, values(out0)); diff != "" {
		t.Errorf("%s/0 (-want +got):\n%s", out, diff)
	}
	if diff := gocmp.Diff([]string{"B0"}, values(out1)); diff != "" {
		t.Errorf("%s/1 (-want +got):\n%s", out, diff)
	}
	// Ends are the offsets after the last records written (Kafka's
	// transaction markers make them other than dense).
	wantEnds := map[broker.TopicPartition]int64{tp(out, 0): out0[len(out0)-1].Offset + 1, tp(out, 1): out1[len(out1)-1].Offset + 1}
	if diff := gocmp.Diff(wantEnds, ends); diff != "" {
		t.Errorf("Commit ends (-want +got):\n%s", diff)
	}
	// A commit of records only. Send copies what it keeps: the caller's
	// buffers are free again when it returns.
	key, value := []byte("k"), []byte("next")
	s.Send(broker.Record{Topic: out, Partition: 0, Key: key, Value: value})
	copy(key, "X")
	copy(value, "XXXX")
	ends = s.commit(nil)
	out0 = e.readAll(tp(out, 0))
	if k := string(out0[len(out0)-1].Key); k != "k" {
		t.Errorf("%s/0: last key %q, want %q", out, k, "k")
	}
	if diff := gocmp.Diff(map[broker.TopicPartition]int64{tp(out, 0): out0[len(out0)-1].Offset + 1}, ends); diff != "" {
		t.Errorf("second Commit ends (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"A0", "A1", "next"}, values(out0)); diff != "" {
		t.Errorf("%s/0 after the second commit (-want +got):\n%s", out, diff)
	}
	// The next member of the group starts at the committed offsets.
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Poll(context.Background(), 0); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Poll after Close = %v, want ErrClosed", err)
	}
	s2 := e.join(group, "w2", in)
	f := s2.awaitAssigned(tp(in, 0), tp(in, 1))
	wantCommitted := offsetMap{tp(in, 0): {Offset: 2, Metadata: []byte("meta")}, tp(in, 1): {Offset: 1}}
	if diff := gocmp.Diff(wantCommitted, f.Committed); diff != "" {
		t.Errorf("committed offsets for the next member (-want +got):\n%s", diff)
	}
	e.produce(rec(in, 0, "a", "a2"))
	if got := values(s2.records(1)); !slices.Equal(got, []string{"a2"}) {
		t.Errorf("next member's records = %q, want [a2]", got)
	}
}

// testCommitMovesPosition checks that committed offsets become the
// session's positions, also when they differ from what it consumed.
func testCommitMovesPosition(t *testing.T, e *env) {
	in := e.name("in")
	e.create(broker.TopicConfig{Name: in, Partitions: 1})
	for i := range 6 {
		e.produce(rec(in, 0, "k", fmt.Sprint(i)))
	}
	s := e.join(e.name("app"), "w1", in)
	s.awaitAssigned(tp(in, 0))
	s.records(1)
	s.commit(offsetMap{tp(in, 0): {Offset: 4}})
	if got := values(s.records(2)); !slices.Equal(got, []string{"4", "5"}) {
		t.Errorf("records after committing 4 = %q, want [4 5]", got)
	}
}

func testAbortRewinds(t *testing.T, e *env) {
	ctx := context.Background()
	in, out := e.name("in"), e.name("out")
	e.create(broker.TopicConfig{Name: in, Partitions: 1}, broker.TopicConfig{Name: out, Partitions: 1})
	e.produce(rec(in, 0, "k", "0"), rec(in, 0, "k", "1"), rec(in, 0, "k", "2"), rec(in, 0, "k", "3"))
	s := e.join(e.name("app"), "w1", in)
	s.awaitAssigned(tp(in, 0))
	if got := values(s.records(1)); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("first record = %q", got)
	}
	s.commit(offsetMap{tp(in, 0): {Offset: 1}})
	if got := values(s.records(2)); !slices.Equal(got, []string{"1", "2"}) {
		t.Fatalf("records = %q, want [1 2]", got)
	}
	s.Send(rec(out, 0, "k", "aborted"))
	if err := s.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	// Back at the committed offset 1; the aborted record is gone, also
	// after a later commit.
	if got := values(s.records(3)); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Errorf("records after Abort = %q, want [1 2 3]", got)
	}
	s.Send(rec(out, 0, "k", "kept"))
	s.commit(offsetMap{tp(in, 0): {Offset: 4}})
	if got := values(e.readAll(tp(out, 0))); !slices.Equal(got, []string{"kept"}) {
		t.Errorf("%s = %q, want [kept]", out, got)
	}
	// Abort with nothing committed rewinds to the log start.
	s2 := e.join(e.name("other"), "w1", in)
	s2.awaitAssigned(tp(in, 0))
	s2.records(4)
	if err := s2.Abort(ctx); err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for _, r := range s2.records(4) {
		offs = append(offs, r.Offset)
	}
	if !slices.Equal(offs, []int64{0, 1, 2, 3}) {
		t.Errorf("offsets after Abort with nothing committed = %v, want [0 1 2 3]", offs)
	}
}

func testPollContextDone(t *testing.T, e *env) {
	in := e.name("in")
	e.create(broker.TopicConfig{Name: in, Partitions: 1})
	s := e.join(e.name("app"), "w1", in)
	s.awaitAssigned(tp(in, 0))
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	f, err := s.Poll(ctx, 0)
	if !errors.Is(err, context.Canceled) || !f.Empty() {
		t.Errorf("Poll = %+v, %v; want an empty Fetch and context.Canceled", f, err)
	}
}

// member drives a session the way the engine does: it copies every
// record to the output topic's same partition and commits after every
// poll; on a revoke it commits (nothing is left to commit), and its next
// Poll acknowledges.
type member struct {
	*session
	out       string
	owns      map[broker.TopicPartition]bool
	revoked   []broker.TopicPartition // owned until the next Poll
	pos       map[broker.TopicPartition]int64
	committed offsetMap // what this member committed
	assigned  offsetMap // committed offsets its assignments came with
	processed int
	revokes   int // Fetches with Revoked partitions
}

func newMember(s *session, out string) *member {
	return &member{session: s, out: out, owns: map[broker.TopicPartition]bool{}, pos: map[broker.TopicPartition]int64{},
		committed: offsetMap{}, assigned: offsetMap{}}
}

// step polls once for at most wait.
func (m *member) step(wait time.Duration) {
	m.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	f, err := m.Poll(ctx, 0)
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		m.t.Fatalf("poll %s: %v", m.name, err)
	}
	for _, tp := range m.revoked {
		delete(m.owns, tp)
		delete(m.pos, tp)
	}
	m.revoked = nil
	if len(f.Revoked) > 0 {
		for _, tp := range f.Revoked {
			if !m.owns[tp] {
				m.t.Fatalf("%s: %v revoked, which it does not own", m.name, tp)
			}
		}
		m.commitWork()
		m.revoked = f.Revoked
		m.revokes++
	}
	for _, tp := range f.Assigned {
		if m.owns[tp] {
			m.t.Fatalf("%s: %v assigned twice", m.name, tp)
		}
		m.owns[tp] = true
		if o, ok := f.Committed[tp]; ok {
			m.assigned[tp] = o
			m.pos[tp] = o.Offset
		}
	}
	for _, r := range f.Records {
		tp := tp(r.Topic, r.Partition)
		if !m.owns[tp] {
			m.t.Fatalf("%s: record of %v, which it does not own", m.name, tp)
		}
		if p, ok := m.pos[tp]; ok && r.Offset < p {
			m.t.Fatalf("%s: record %v@%d before its position %d", m.name, tp, r.Offset, p)
		}
		m.pos[tp] = r.Offset + 1
		m.Send(broker.Record{Topic: m.out, Partition: r.Partition, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value})
		m.processed++
	}
	if len(f.Records) > 0 {
		m.commitWork()
	}
}

// commitWork commits the positions that moved.
func (m *member) commitWork() {
	m.t.Helper()
	offsets := offsetMap{}
	for tp, p := range m.pos {
		if c, ok := m.committed[tp]; !ok || c.Offset != p {
			offsets[tp] = broker.Offset{Offset: p, Metadata: []byte(m.name)}
		}
	}
	m.commit(offsets)
	maps.Copy(m.committed, offsets)
}

// owned returns the partitions m owns, revoked ones included.
func (m *member) owned() []broker.TopicPartition {
	return sorted(slices.Collect(maps.Keys(m.owns)))
}

// testTwoMembers runs two members of a group over two co-partitioned
// topics: the second joins while the first works, then the first leaves.
// Partition p of both topics always goes to one member, no partition is
// ever owned by two, the partitions that move come with the committed
// offsets, and the output holds every input record exactly once.
func testTwoMembers(t *testing.T, e *env) {
	a, b, out, group := e.name("a"), e.name("b"), e.name("out"), e.name("app")
	const n = 4
	e.create(broker.TopicConfig{Name: a, Partitions: n}, broker.TopicConfig{Name: b, Partitions: n}, broker.TopicConfig{Name: out, Partitions: n})
	inputs := map[int32][]string{}
	produced := 0
	produceRound := func(round int) {
		var recs []broker.Record
		for p := range int32(n) {
			for _, topic := range []string{a, b} {
				for i := range 3 {
					v := fmt.Sprintf("%s/%d/%d/%d", topic[len(topic)-1:], p, round, i)
					recs = append(recs, rec(topic, p, "k", v))
					inputs[p] = append(inputs[p], v)
				}
			}
		}
		e.produce(recs...)
		produced += len(recs)
	}
	all := func() []broker.TopicPartition {
		var tps []broker.TopicPartition
		for p := range int32(n) {
			tps = append(tps, tp(a, p), tp(b, p))
		}
		return sorted(tps)
	}()
	checkDisjoint := func(ms ...*member) {
		t.Helper()
		owner := map[broker.TopicPartition]string{}
		for _, m := range ms {
			for tp := range m.owns {
				if o, ok := owner[tp]; ok {
					t.Fatalf("%v owned by %s and %s", tp, o, m.name)
				}
				owner[tp] = m.name
			}
		}
	}
	until := func(what string, done func() bool, ms ...*member) {
		t.Helper()
		deadline := time.Now().Add(WaitTimeout)
		for !done() {
			if time.Now().After(deadline) {
				var state []string
				for _, m := range ms {
					state = append(state, fmt.Sprintf("%s owns %v, processed %d", m.name, m.owned(), m.processed))
				}
				t.Fatalf("waiting for %s: %s", what, strings.Join(state, "; "))
			}
			for _, m := range ms {
				m.step(50 * time.Millisecond)
				checkDisjoint(ms...)
			}
		}
	}

	produceRound(0)
	m1 := newMember(e.join(group, "m1", a, b), out)
	until("m1 to own everything and process round 0", func() bool {
		return slices.Equal(m1.owned(), all) && m1.processed == produced
	}, m1)

	produceRound(1)
	m2 := newMember(e.join(group, "m2", a, b), out)
	plan := broker.CoPartitioned([]string{"m1", "m2"}, map[string]int32{a: n, b: n})
	settled := func() bool {
		return slices.Equal(m1.owned(), sorted(plan["m1"])) && slices.Equal(m2.owned(), sorted(plan["m2"])) &&
			len(m1.revoked) == 0 && m1.processed+m2.processed == produced
	}
	until("the co-partitioned assignment of two members", settled, m1, m2)
	if m1.revokes == 0 {
		t.Errorf("m1 gave partitions to m2 without a Fetch revoking them")
	}
	for p := range int32(n) {
		if m1.owns[tp(a, p)] != m1.owns[tp(b, p)] {
			t.Errorf("partition %d of %s and %s on different members", p, a, b)
		}
	}
	// m2 took over from m1's committed offsets.
	for tp, o := range m2.assigned {
		if c := m1.committed[tp]; c.Offset != o.Offset || string(o.Metadata) != "m1" {
			t.Errorf("m2 got %v with committed %+v, m1 committed %+v", tp, o, c)
		}
	}

	// m1 leaves: m2 gets its partitions with m1's committed offsets.
	produceRound(2)
	if err := m1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	m1Processed := m1.processed
	m1.owns = nil
	until("m2 to own everything after m1 left", func() bool {
		return slices.Equal(m2.owned(), all) && m1Processed+m2.processed == produced
	}, m2)
	for _, tp := range plan["m1"] {
		o, ok := m2.assigned[tp]
		if c, committed := m1.committed[tp]; committed && (!ok || o.Offset != c.Offset) {
			t.Errorf("m2 got %v with committed %+v (present %v), m1 committed %+v", tp, o, ok, c)
		}
	}
	// Every input record is in the output exactly once.
	for p := range int32(n) {
		got := values(e.readAll(tp(out, p)))
		slices.Sort(got)
		want := slices.Sorted(slices.Values(inputs[p]))
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("%s/%d (-want +got):\n%s", out, p, diff)
		}
	}
}

// testZombieFenced starts a second session under the name of a member
// that is still working: the first is a zombie. Its commit fails (Kafka:
// the new session's producer fenced the transactional id; embedded: the
// new session fenced the old one), its records never become visible, its
// offsets never advance, and the new session starts where the last commit
// left off.
func testZombieFenced(t *testing.T, e *env) {
	in, out, group := e.name("in"), e.name("out"), e.name("app")
	e.create(broker.TopicConfig{Name: in, Partitions: 1}, broker.TopicConfig{Name: out, Partitions: 1})
	e.produce(rec(in, 0, "k", "0"), rec(in, 0, "k", "1"))
	zombie := e.join(group, "w1", in)
	zombie.awaitAssigned(tp(in, 0))
	zombie.records(2)
	zombie.Send(rec(out, 0, "k", "zombie"))

	fresh := e.join(group, "w1", in)
	_, err := zombie.Commit(context.Background(), offsetMap{tp(in, 0): {Offset: 2}})
	switch {
	case errors.Is(err, broker.ErrFenced):
		t.Logf("zombie's Commit: %v", err)
	case errors.Is(err, broker.ErrAborted):
		t.Logf("zombie's Commit aborted: %v", err)
	default:
		t.Fatalf("zombie's Commit = %v, want ErrFenced or ErrAborted", err)
	}
	if got := e.readAll(tp(out, 0)); len(got) != 0 {
		t.Errorf("%s after the zombie's commit: %q, want nothing", out, values(got))
	}
	if err := zombie.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	f := fresh.awaitAssigned(tp(in, 0))
	if len(f.Committed) != 0 {
		t.Errorf("fresh session's committed offsets %v: the zombie's offsets advanced", f.Committed)
	}
	recs := fresh.records(2)
	if recs[0].Offset != 0 {
		t.Errorf("fresh session starts at %d, want 0", recs[0].Offset)
	}
	fresh.Send(rec(out, 0, "k", "fresh"))
	fresh.commit(offsetMap{tp(in, 0): {Offset: 2}})
	if got := values(e.readAll(tp(out, 0))); !slices.Equal(got, []string{"fresh"}) {
		t.Errorf("%s = %q, want [fresh]", out, got)
	}
}

// testEndpoints runs four members of a group: two of one instance (one
// endpoint), one of another, and one without an endpoint. Once the group
// settles, every member's Endpoints lists the two endpoints with the
// co-partitioned plan's partitions of their members, in one generation.
// When the other instance's member leaves, the rest settle again and
// their Endpoints, of a newer generation, no longer list it; the closed
// session's Endpoints are empty.
func testEndpoints(t *testing.T, e *env) {
	a, b, out, group := e.name("a"), e.name("b"), e.name("out"), e.name("app")
	const n = 6
	e.create(broker.TopicConfig{Name: a, Partitions: n}, broker.TopicConfig{Name: b, Partitions: n}, broker.TopicConfig{Name: out, Partitions: n})
	topics := map[string]int32{a: n, b: n}
	endpoint := map[string]string{"m1": "host1:8080", "m2": "host1:8080", "m3": "[2001:db8::2]:8080", "m4": ""}
	var ms []*member
	for _, name := range []string{"m1", "m2", "m3", "m4"} {
		ms = append(ms, newMember(e.joinAt(group, name, endpoint[name], a, b), out))
	}
	// want returns the Endpoints of the plan over ms, but for Generation.
	want := func(ms []*member) broker.Endpoints {
		var names []string
		for _, m := range ms {
			names = append(names, m.name)
		}
		plan := broker.CoPartitioned(names, topics)
		w := broker.Endpoints{Partitions: map[string][]broker.TopicPartition{}}
		for _, m := range ms {
			if ep := endpoint[m.name]; ep != "" {
				w.Partitions[ep] = sorted(append(w.Partitions[ep], plan[m.name]...))
			}
		}
		return w
	}
	// settled reports whether every member of ms owns its planned
	// partitions and sees want's endpoints, all in one generation.
	settled := func(ms []*member) (bool, string) {
		w := want(ms)
		var names []string
		for _, m := range ms {
			names = append(names, m.name)
		}
		plan := broker.CoPartitioned(names, topics)
		var gen int64
		var state []string
		ok := true
		for _, m := range ms {
			got := m.Endpoints()
			state = append(state, fmt.Sprintf("%s owns %v, sees %+v", m.name, m.owned(), got))
			w.Generation = got.Generation
			if !slices.Equal(m.owned(), sorted(plan[m.name])) || len(m.revoked) > 0 ||
				!gocmp.Equal(w, got) || got.Generation <= 0 || (gen != 0 && got.Generation != gen) {
				ok = false
			}
			gen = got.Generation
		}
		return ok, strings.Join(state, "; ")
	}
	until := func(what string, ms []*member) int64 {
		t.Helper()
		deadline := time.Now().Add(WaitTimeout)
		for {
			ok, state := settled(ms)
			if ok {
				return ms[0].Endpoints().Generation
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s: want %+v; %s", what, want(ms), state)
			}
			for _, m := range ms {
				m.step(50 * time.Millisecond)
			}
		}
	}
	gen := until("four members to settle", ms)

	leaving := ms[2]
	if err := leaving.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := leaving.Endpoints(); !gocmp.Equal(got, broker.Endpoints{}) {
		t.Errorf("%s's Endpoints after Close = %+v, want none", leaving.name, got)
	}
	ms = slices.Delete(ms, 2, 3)
	if after := until("three members to settle after "+leaving.name+" left", ms); after <= gen {
		t.Errorf("generation %d after %s left, was %d: want it newer", after, leaving.name, gen)
	}
}

// testDeleteGroup checks that DeleteGroup refuses a group with a live
// member, and that after the member left it deletes the group's
// committed offsets (and only that group's): the next member starts at
// the log start. A missing group deletes without error.
func testDeleteGroup(t *testing.T, e *env) {
	ctx := e.ctx()
	in, group, other := e.name("in"), e.name("app"), e.name("other")
	e.create(broker.TopicConfig{Name: in, Partitions: 2})
	e.produce(rec(in, 0, "a", "a0"), rec(in, 1, "b", "b0"), rec(in, 0, "a", "a1"))
	committed := offsetMap{tp(in, 0): {Offset: 2, Metadata: []byte("m")}, tp(in, 1): {Offset: 1}}
	for _, g := range []string{group, other} {
		s := e.join(g, "w1", in)
		s.awaitAssigned(tp(in, 0), tp(in, 1))
		s.records(3)
		s.commit(committed)
		if g == group {
			err := e.log.DeleteGroup(ctx, group)
			if !errors.Is(err, broker.ErrGroupActive) || !strings.Contains(err.Error(), "members alive: 1") {
				t.Errorf("DeleteGroup with a live member = %v, want ErrGroupActive with \"members alive: 1\"", err)
			}
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The refused delete deleted nothing: a new member resumes.
	s := e.join(group, "w2", in)
	if f := s.awaitAssigned(tp(in, 0), tp(in, 1)); !gocmp.Equal(committed, f.Committed) {
		t.Errorf("committed after a refused DeleteGroup (-want +got):\n%s", gocmp.Diff(committed, f.Committed))
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Kafka may take a moment to see the member leave.
	for {
		err := e.log.DeleteGroup(ctx, group)
		if err == nil {
			break
		}
		if !errors.Is(err, broker.ErrGroupActive) {
			t.Fatalf("DeleteGroup of a group without members: %v", err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("DeleteGroup after its members left: still %v after %v", err, WaitTimeout)
		case <-time.After(50 * time.Millisecond):
		}
	}
	s = e.join(group, "w3", in)
	f := s.awaitAssigned(tp(in, 0), tp(in, 1))
	if len(f.Committed) != 0 {
		t.Errorf("committed offsets after DeleteGroup: %v, want none", f.Committed)
	}
	if got := s.records(3); len(got) != 3 {
		t.Errorf("after DeleteGroup the member read %d records, want all 3 from the log start", len(got))
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// The other group kept its offsets.
	o := e.join(other, "w2", in)
	if f := o.awaitAssigned(tp(in, 0), tp(in, 1)); !gocmp.Equal(committed, f.Committed) {
		t.Errorf("committed offsets of another group after DeleteGroup (-want +got):\n%s", gocmp.Diff(committed, f.Committed))
	}
	if err := e.log.DeleteGroup(ctx, e.name("missing")); err != nil {
		t.Errorf("DeleteGroup of a missing group = %v, want nil", err)
	}
}
