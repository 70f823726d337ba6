package embedded

import (
	"context"
	"fmt"
	"testing"

	"github.com/eddyflow/eddy/broker"
)

// BenchmarkCommit measures sending records to a session and committing
// them, per record, for several commit sizes (NoSync: the cost of the
// log, not of the disk).
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{100, 10000} {
		b.Run(fmt.Sprintf("records=%d", n), func(b *testing.B) {
			l, err := Open(Options{InMemory: true, NoSync: true, CleanInterval: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx := context.Background()
			if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "out", Partitions: 8}); err != nil {
				b.Fatal(err)
			}
			s, err := l.Join(ctx, broker.SessionConfig{Group: "g", Member: "m", Topics: []string{"out"}})
			if err != nil {
				b.Fatal(err)
			}
			r := broker.Record{Topic: "out", Timestamp: 1700000000000, Key: []byte("key-0000"), Value: []byte("value-0123456789-0123456789")}
			b.SetBytes(int64(len(r.Key) + len(r.Value)))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r.Partition = int32(i % 8)
				s.Send(r)
				i++
				if i%n == 0 {
					if _, err := s.Commit(ctx, nil); err != nil {
						b.Fatal(err)
					}
				}
			}
			if _, err := s.Commit(ctx, nil); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkPoll measures polling committed records in polls of up to
// 1000, reporting the time per record.
func BenchmarkPoll(b *testing.B) {
	l, err := Open(Options{InMemory: true, NoSync: true, CleanInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 4}); err != nil {
		b.Fatal(err)
	}
	const total = 400000
	recs := make([]broker.Record, 0, 10000)
	for i := 0; i < total; i++ {
		recs = append(recs, broker.Record{Topic: "in", Partition: int32(i % 4), Timestamp: int64(i), Key: []byte("key-0000"), Value: []byte("value-0123456789-0123456789")})
		if len(recs) == cap(recs) {
			if err := l.Produce(ctx, recs...); err != nil {
				b.Fatal(err)
			}
			recs = recs[:0]
		}
	}
	b.ReportAllocs()
	var s *Session
	left, polled := 0, 0
	for b.Loop() {
		if left == 0 {
			if s != nil {
				s.Close(ctx)
			}
			s, err = l.Join(ctx, broker.SessionConfig{Group: "g", Member: "m", Topics: []string{"in"}})
			if err != nil {
				b.Fatal(err)
			}
			if f, err := s.Poll(ctx, 0); err != nil || len(f.Assigned) != 4 {
				b.Fatalf("assignment %+v %v", f, err)
			}
			left = total
		}
		f, err := s.Poll(ctx, 1000)
		if err != nil {
			b.Fatal(err)
		}
		left -= len(f.Records)
		polled += len(f.Records)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(polled), "ns/record")
}
