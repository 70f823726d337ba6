package engine_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
)

// abortingLog wraps a log so that a share of commits are aborted by "the
// log", as Kafka aborts a transaction when the group rebalances under it.
type abortingLog struct {
	broker.Log
	mu      sync.Mutex
	r       *rand.Rand
	share   float64
	aborted int
}

func (l *abortingLog) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	s, err := l.Log.NewSession(ctx, cfg)
	return &abortingSession{Session: s, l: l}, err
}

type abortingSession struct {
	broker.Session
	l *abortingLog
}

func (s *abortingSession) Commit(ctx context.Context, offsets map[broker.TopicPartition]broker.Offset) (map[broker.TopicPartition]int64, error) {
	s.l.mu.Lock()
	abort := s.l.r.Float64() < s.l.share
	if abort {
		s.l.aborted++
	}
	s.l.mu.Unlock()
	if abort {
		if err := s.Session.Abort(ctx); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("injected: %w", broker.ErrAborted)
	}
	return s.Session.Commit(ctx, offsets)
}

// TestAbortedCommitsResume has the log abort a third of the commits: the
// engine must drop that work, rebuild its tasks from the last commit and
// go on, so that every key's counts are still exactly 1..n.
func TestAbortedCommitsResume(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 5))
	ctx := context.Background()
	inner, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	log := &abortingLog{Log: inner, r: rand.New(rand.NewPCG(seed, 6)), share: 0.3}
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{}
	recs := make([]broker.Record, 3000)
	for i := range recs {
		v := fmt.Sprintf("v%d", r.IntN(20))
		want[v]++
		recs[i] = broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v), Timestamp: int64(i)}
	}
	if err := log.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	eng, err := engine.Open(countTopology(), engine.Options{InMemory: true, Log: log, Bounded: true, CacheBytes: -1, Workers: 2, MaxPollRecords: 100, CommitInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got, outputs := countSequences(t, log)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("final counts (-want +got):\n%s", diff)
	}
	if outputs != len(recs) {
		t.Errorf("%d outputs, want %d", outputs, len(recs))
	}
	if log.aborted == 0 {
		t.Fatal("no commit was aborted: the test tested nothing")
	}
	t.Logf("%d commits aborted, %d committed", log.aborted, eng.Metrics().Commits)
}
