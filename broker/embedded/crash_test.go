package embedded

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
)

// faultFS returns an FS over mem that fails the write-ahead log's writes or
// syncs (as op chooses) while on is set.
func faultFS(mem vfs.FS, on *atomic.Bool, op errorfs.OpKind) vfs.FS {
	return errorfs.Wrap(mem, errorfs.InjectorFunc(func(o errorfs.Op) error {
		if !on.Load() || !strings.HasSuffix(o.Path, ".log") {
			return nil
		}
		switch {
		case op == errorfs.OpFileSync && (o.Kind == errorfs.OpFileSync || o.Kind == errorfs.OpFileSyncData || o.Kind == errorfs.OpFileSyncTo):
			return errorfs.ErrInjected
		case op == errorfs.OpFileWrite && (o.Kind == errorfs.OpFileWrite || o.Kind == errorfs.OpFileWriteAt):
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// committedState is what a reopened log shows of a crash test's topics.
type committedState struct {
	Out      map[int32][]string
	Offsets  map[broker.TopicPartition]broker.Offset
	InEnd    int64
	OutEnds  map[int32]int64
	Assigned []broker.TopicPartition
}

func readState(t *testing.T, l *Log) committedState {
	t.Helper()
	st := committedState{Out: map[int32][]string{}, OutEnds: map[int32]int64{}}
	for p := int32(0); p < 2; p++ {
		st.Out[p] = values(readAll(t, l, tp("out", p)))
		st.OutEnds[p] = offsets(t, l, tp("out", p)).End
	}
	st.InEnd = offsets(t, l, tp("in", 0)).End
	s := join(t, l, "app", "checker", "in")
	f := poll(t, s, 0)
	st.Assigned, st.Offsets = f.Assigned, f.Committed
	return st
}

// TestCommitAtomicity makes a commit fail in the middle, when Pebble writes
// or syncs its write-ahead log, then simulates a crash by reopening the log
// from what was synced. Neither the failed commit's records nor its
// offsets are visible; the commit before it is, completely. The log that
// saw the failure refuses further work.
func TestCommitAtomicity(t *testing.T) {
	for _, tt := range []struct {
		name string
		fail errorfs.OpKind
	}{
		{"write fails", errorfs.OpFileWrite},
		{"sync fails", errorfs.OpFileSync},
	} {
		fail := tt.fail
		t.Run(tt.name, func(t *testing.T) {
			mem := vfs.NewCrashableMem()
			var on atomic.Bool
			l, err := Open(Options{FS: faultFS(mem, &on, fail), Dir: "log", CleanInterval: -1})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			createTopics(t, l,
				broker.TopicConfig{Name: "in", Partitions: 1},
				broker.TopicConfig{Name: "out", Partitions: 2})
			if err := l.Produce(ctx, rec("in", 0, "k", "i0"), rec("in", 0, "k", "i1")); err != nil {
				t.Fatal(err)
			}
			s, err := l.Join(ctx, broker.SessionConfig{Group: "app", Member: "w", Topics: []string{"in"}})
			if err != nil {
				t.Fatal(err)
			}
			poll(t, s, 0)
			pollRecords(t, s, 2)
			// The commit that succeeds.
			s.Send(rec("out", 0, "k", "ok-0"))
			s.Send(rec("out", 1, "k", "ok-1"))
			if _, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 1, Metadata: []byte("first")}}); err != nil {
				t.Fatal(err)
			}
			// The commit that fails.
			s.Send(rec("out", 0, "k", "lost-0"))
			s.Send(rec("out", 1, "k", "lost-1"))
			on.Store(true)
			_, err = s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 2, Metadata: []byte("second")}})
			if !errors.Is(err, errorfs.ErrInjected) {
				t.Fatalf("Commit = %v, want the injected error", err)
			}
			// Nothing of the failed commit is visible in this process, and
			// the log refuses work until reopened.
			if _, err := l.Offsets(ctx, tp("out", 0)); err == nil || !strings.Contains(err.Error(), "must be reopened") {
				t.Errorf("Offsets after a failed commit = %v, want an error asking to reopen", err)
			}
			if err := l.Produce(ctx, rec("out", 0, "k", "after")); !errors.Is(err, errorfs.ErrInjected) {
				t.Errorf("Produce after a failed commit = %v, want the commit's error", err)
			}

			crashed := mem.CrashClone(vfs.CrashCloneCfg{})
			_ = s.Close(ctx)
			_ = l.Close() // may report the WAL failure again

			l2 := openTest(t, Options{FS: crashed, Dir: "log"})
			want := committedState{
				Out:      map[int32][]string{0: {"ok-0"}, 1: {"ok-1"}},
				OutEnds:  map[int32]int64{0: 1, 1: 1},
				InEnd:    2,
				Assigned: []broker.TopicPartition{tp("in", 0)},
				Offsets:  offsetMap{tp("in", 0): {Offset: 1, Metadata: []byte("first")}},
			}
			if diff := cmp.Diff(want, readState(t, l2)); diff != "" {
				t.Errorf("state after the crash (-want +got):\n%s", diff)
			}
			// The reopened log works: the next commit gets the offsets
			// the failed one would have had.
			if err := l2.Produce(ctx, rec("out", 0, "k", "again")); err != nil {
				t.Fatal(err)
			}
			if got := offsetsOf(readAll(t, l2, tp("out", 0))); !cmp.Equal(got, []int64{0, 1}) {
				t.Errorf("out/0 offsets after reopening = %v, want [0 1]", got)
			}
		})
	}
}

// TestCommitAllOrNothing crashes after a commit whose sync failed, keeping
// a random part of the unsynced data, as a machine crash may. After
// reopening, the failed commit is either completely visible or not at all.
func TestCommitAllOrNothing(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	sawAll, sawNothing := false, false
	for i := 0; i < 10; i++ {
		mem := vfs.NewCrashableMem()
		var on atomic.Bool
		l, err := Open(Options{FS: faultFS(mem, &on, errorfs.OpFileSync), Dir: "log", CleanInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 1}, broker.TopicConfig{Name: "out", Partitions: 2})
		if err := l.Produce(ctx, rec("in", 0, "k", "i0"), rec("in", 0, "k", "i1")); err != nil {
			t.Fatal(err)
		}
		s, err := l.Join(ctx, broker.SessionConfig{Group: "app", Member: "w", Topics: []string{"in"}})
		if err != nil {
			t.Fatal(err)
		}
		poll(t, s, 0)
		// 80 KB: the commit spans several 32 KB blocks of the WAL.
		for j := 0; j < 400; j++ {
			s.Send(rec("out", int32(j%2), "k", strings.Repeat("x", 200)))
		}
		on.Store(true)
		if _, err := s.Commit(ctx, offsetMap{tp("in", 0): {Offset: 2}}); !errors.Is(err, errorfs.ErrInjected) {
			t.Fatalf("Commit = %v, want the injected error", err)
		}
		crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rand.New(rand.NewPCG(rng.Uint64(), 0))})
		_ = l.Close()

		l2, err := Open(Options{FS: crashed, Dir: "log", CleanInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		st := readState(t, l2)
		_ = l2.Close()
		switch {
		case st.OutEnds[0] == 200 && st.OutEnds[1] == 200 && st.Offsets[tp("in", 0)].Offset == 2:
			sawAll = true
		case st.OutEnds[0] == 0 && st.OutEnds[1] == 0 && len(st.Offsets) == 0:
			sawNothing = true
		default:
			t.Fatalf("run %d: partial commit visible after the crash: ends %v, offsets %v", i, st.OutEnds, st.Offsets)
		}
	}
	t.Logf("saw the whole commit: %v, saw nothing: %v", sawAll, sawNothing)
}
