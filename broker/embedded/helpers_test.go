package embedded

import (
	"context"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// waitTimeout bounds every wait of the tests: long enough for a loaded CI
// machine, short enough to fail a hung test quickly.
const waitTimeout = 10 * time.Second

// openTest opens an in-memory log (unless opts says otherwise) that the
// test closes at its end.
func openTest(t *testing.T, opts Options) *Log {
	t.Helper()
	if opts.Dir == "" && opts.FS == nil {
		opts.InMemory = true
	}
	if opts.CleanInterval == 0 {
		opts.CleanInterval = -1
	}
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func createTopics(t *testing.T, l *Log, topics ...broker.TopicConfig) {
	t.Helper()
	if err := l.CreateTopics(context.Background(), topics...); err != nil {
		t.Fatal(err)
	}
}

// readAll returns the committed records of tp.
func readAll(t *testing.T, l *Log, tp broker.TopicPartition) []broker.Record {
	t.Helper()
	var out []broker.Record
	if err := l.Read(context.Background(), tp, 0, 1<<62, func(r broker.Record) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func offsets(t *testing.T, l *Log, tp broker.TopicPartition) broker.PartitionOffsets {
	t.Helper()
	o, err := l.Offsets(context.Background(), tp)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func join(t *testing.T, l *Log, group, member string, topics ...string) *Session {
	t.Helper()
	s, err := l.Join(context.Background(), broker.SessionConfig{Group: group, Member: member, Topics: topics})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

// poll polls s once, failing the test if nothing comes within waitTimeout.
func poll(t *testing.T, s *Session, max int) broker.Fetch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	f, err := s.Poll(ctx, max)
	if err != nil {
		t.Fatalf("poll %s: %v", s.cfg.Member, err)
	}
	return f
}

// pollNothing checks that s has nothing to return within a short wait.
func pollNothing(t *testing.T, s *Session) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	f, err := s.Poll(ctx, 0)
	if err != context.DeadlineExceeded || !f.Empty() {
		t.Fatalf("poll %s = %+v, %v; want nothing and %v", s.cfg.Member, f, err, context.DeadlineExceeded)
	}
}

// pollRecords polls s until it has n records, failing on an assignment
// change or after waitTimeout.
func pollRecords(t *testing.T, s *Session, n int) []broker.Record {
	t.Helper()
	var out []broker.Record
	for len(out) < n {
		f := poll(t, s, n-len(out))
		if len(f.Revoked) > 0 || len(f.Assigned) > 0 {
			t.Fatalf("poll %s: assignment change %+v while waiting for records", s.cfg.Member, f)
		}
		out = append(out, f.Records...)
	}
	return out
}

func rec(topic string, p int32, key, value string) broker.Record {
	return broker.Record{Topic: topic, Partition: p, Timestamp: 1000, Key: []byte(key), Value: []byte(value)}
}

func tp(topic string, p int32) broker.TopicPartition {
	return broker.TopicPartition{Topic: topic, Partition: p}
}

// values returns the values of recs as strings.
func values(recs []broker.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Value))
	}
	return out
}

// offsetsOf returns the offsets of recs.
func offsetsOf(recs []broker.Record) []int64 {
	var out []int64
	for _, r := range recs {
		out = append(out, r.Offset)
	}
	return out
}
