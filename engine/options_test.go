package engine_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
)

// TestGuaranteeOptions checks Guarantee's names and that Open refuses an
// unknown one.
func TestGuaranteeOptions(t *testing.T) {
	names := map[engine.Guarantee]string{engine.ExactlyOnce: "ExactlyOnce", engine.AtLeastOnce: "AtLeastOnce", 2: "Guarantee(2)"}
	for g, want := range names {
		if got := g.String(); got != want {
			t.Errorf("Guarantee(%d).String() = %q, want %q", int(g), got, want)
		}
	}
	if (engine.Options{}).Guarantee != engine.ExactlyOnce {
		t.Error("the zero Options do not ask for ExactlyOnce")
	}
	tests := []struct {
		g    engine.Guarantee
		want string // "" for none
	}{
		{engine.ExactlyOnce, ""},
		{engine.AtLeastOnce, ""},
		{2, "engine: unknown Guarantee Guarantee(2)"},
		{-1, "engine: unknown Guarantee Guarantee(-1)"},
	}
	for _, tc := range tests {
		t.Run(tc.g.String(), func(t *testing.T) {
			eng, err := engine.Open(countTopology(), engine.Options{InMemory: true, Guarantee: tc.g})
			if err == nil {
				eng.Close()
			}
			if got := fmt.Sprint(err); (tc.want == "" && err != nil) || (tc.want != "" && got != tc.want) {
				t.Errorf("Open = %v, want %q", err, tc.want)
			}
		})
	}
}

// sessionLog records the configs of the sessions the engine asks for, and
// has the first session's first commit fail with ErrFenced, so that its
// worker rejoins the group with a new session.
type sessionLog struct {
	broker.Log
	mu      sync.Mutex
	configs []broker.SessionConfig
	fenced  bool
}

func (l *sessionLog) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	l.mu.Lock()
	l.configs = append(l.configs, cfg)
	l.mu.Unlock()
	s, err := l.Log.NewSession(ctx, cfg)
	return &fencedOnceSession{Session: s, l: l}, err
}

type fencedOnceSession struct {
	broker.Session
	l *sessionLog
}

func (s *fencedOnceSession) Commit(ctx context.Context, offsets map[broker.TopicPartition]broker.Offset) (map[broker.TopicPartition]int64, error) {
	s.l.mu.Lock()
	fence := !s.l.fenced
	s.l.fenced = true
	s.l.mu.Unlock()
	if fence {
		if err := s.Session.Abort(ctx); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("injected: %w", broker.ErrFenced)
	}
	return s.Session.Commit(ctx, offsets)
}

// TestGuaranteeReachesSessions checks that the engine asks the log for
// sessions of its guarantee, also when a fenced worker rejoins, and that
// at least once on the embedded log (which ignores it) counts exactly.
func TestGuaranteeReachesSessions(t *testing.T) {
	for _, g := range []engine.Guarantee{engine.ExactlyOnce, engine.AtLeastOnce} {
		t.Run(g.String(), func(t *testing.T) {
			ctx := context.Background()
			inner, err := embedded.Open(embedded.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			defer inner.Close()
			log := &sessionLog{Log: inner}
			if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			var recs []broker.Record
			for i := range 500 {
				v := fmt.Sprintf("v%d", i%7)
				want[v]++
				recs = append(recs, broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "k%d", i), Value: []byte(v), Timestamp: int64(i)})
			}
			if err := log.Produce(ctx, recs...); err != nil {
				t.Fatal(err)
			}
			eng, err := engine.Open(countTopology(), engine.Options{InMemory: true, Log: log, Bounded: true, CacheBytes: -1,
				Workers: 2, MaxPollRecords: 50, CommitInterval: time.Millisecond, Guarantee: g})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			if err := eng.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if len(log.configs) != 3 {
				t.Errorf("%d sessions, want 3: one per worker and the rejoin of the fenced one", len(log.configs))
			}
			for i, cfg := range log.configs {
				if cfg.AtLeastOnce != (g == engine.AtLeastOnce) {
					t.Errorf("session %d (member %s): AtLeastOnce %v with Guarantee %s", i, cfg.Member, cfg.AtLeastOnce, g)
				}
			}
			got, outputs := countSequences(t, log)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("final counts (-want +got):\n%s", diff)
			}
			if outputs != len(recs) {
				t.Errorf("%d outputs, want %d", outputs, len(recs))
			}
			if !log.fenced {
				t.Error("no commit was fenced: the rejoin was not tested")
			}
		})
	}
}
