package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// resetTopology re-keys records by value and counts them per new key: a
// repartition topic and a store with its changelog, all of which a reset
// must delete.
func resetTopology() *topology.Builder {
	b := topology.New("reset")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	topology.GroupBy(in, func(_, v string) string { return v }, serde.String()).
		Count(topology.Named("counts")).
		ToStream().To("out")
	return b
}

// resetInput returns n records for resetTopology's input.
func resetInput(r *rand.Rand, n int) []broker.Record {
	recs := make([]broker.Record, n)
	for i := range recs {
		recs[i] = broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "k%d", i),
			Value: fmt.Appendf(nil, "v%d", r.IntN(12)), Timestamp: int64(1000 + i)}
	}
	return recs
}

// outputRows returns the records of topic as sorted rows "key=count",
// plus a row "key@max=T" per key with T the newest timestamp of the key's
// records, so that the rows of two runs can be merged and compared.
// Which input record a count answers, and so its timestamp (the newest
// of the key's records so far), depends on how the re-keyed records of
// several input partitions interleave in the repartition topic, which
// differs from run to run; each key's counts and newest timestamp do not.
func outputRows(t *testing.T, log broker.Log, topic string, from map[int]int64) []string {
	t.Helper()
	var rows []string
	newest := map[string]int64{}
	for p, part := range readAll(t, log, topic) {
		for _, r := range part {
			if r.Offset < from[p] {
				continue
			}
			n, err := serde.Int64().Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			rows = append(rows, fmt.Sprintf("%s=%d", r.Key, n))
			newest[string(r.Key)] = max(newest[string(r.Key)], r.Timestamp)
		}
	}
	for k, ts := range newest {
		rows = append(rows, fmt.Sprintf("%s@max=%d", k, ts))
	}
	slices.Sort(rows)
	return rows
}

// endOffsets returns the end offset of every partition of topic, none
// if it does not exist.
func endOffsets(t *testing.T, log broker.Log, topic string) map[int]int64 {
	t.Helper()
	ends := map[int]int64{}
	for p, part := range readAll(t, log, topic) {
		if n := len(part); n > 0 {
			ends[p] = part[n-1].Offset + 1
		}
	}
	return ends
}

func TestPlanReset(t *testing.T) {
	plan, err := engine.PlanReset(resetTopology(), engine.Options{StateDir: "/data/reset"})
	if err != nil {
		t.Fatal(err)
	}
	want := engine.ResetPlan{App: "reset", Topics: []string{"reset-counts-changelog", "reset-counts-repartition"}, StateDir: "/data/reset"}
	if diff := cmp.Diff(want, plan); diff != "" {
		t.Errorf("plan (-want +got):\n%s", diff)
	}
	plan, err = engine.PlanReset(resetTopology(), engine.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	if plan.StateDir != "" {
		t.Errorf("in-memory plan deletes local state %q", plan.StateDir)
	}
}

// TestResetRerunsFromScratch runs a counting topology bounded on the
// embedded log, resets it, runs it again and checks that the second run's
// output is the first's. Partial resets show why each part is deleted:
// without them the second run counts on from the first run's state, or
// fails.
func TestResetRerunsFromScratch(t *testing.T) {
	tests := []struct {
		name string
		// reset resets the application in dir (its engine closed).
		reset func(t *testing.T, dir string) error
		// same: the second run's output is the first's; else runErr is
		// in the second run's error, or (empty) its output differs.
		same   bool
		runErr string
	}{
		{name: "Reset", same: true, reset: func(t *testing.T, dir string) error {
			return engine.Reset(context.Background(), resetTopology(), engine.Options{StateDir: dir})
		}},
		{name: "group only", reset: func(t *testing.T, dir string) error {
			return runPlan(t, dir, func(p *engine.ResetPlan) { p.Topics, p.StateDir = nil, "" })
		}},
		{name: "changelogs kept", reset: func(t *testing.T, dir string) error {
			return runPlan(t, dir, func(p *engine.ResetPlan) { p.Topics = []string{"reset-counts-repartition"} })
		}},
		{name: "local state kept", runErr: "is ahead of its changelog", reset: func(t *testing.T, dir string) error {
			return runPlan(t, dir, func(p *engine.ResetPlan) { p.StateDir = "" })
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 11))
			dir := t.TempDir()
			ctx := context.Background()
			input := resetInput(r, 300+r.IntN(300))
			workers := 1 + r.IntN(3)
			// run runs the application over its input and returns the
			// rows of the output it appended.
			run := func() ([]string, error) {
				eng, err := engine.Open(resetTopology(), engine.Options{StateDir: dir, Bounded: true, CacheBytes: -1, Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				defer eng.Close()
				var from map[int]int64
				if topics, err := eng.Log().DescribeTopics(ctx, "out"); err == nil && len(topics) > 0 {
					from = endOffsets(t, eng.Log(), "out")
				}
				runErr := eng.Run(ctx)
				return outputRows(t, eng.Log(), "out", from), runErr
			}
			// The input topic and the input, for both runs.
			eng, err := engine.Open(resetTopology(), engine.Options{StateDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 3}); err != nil {
				t.Fatal(err)
			}
			if err := eng.Log().Produce(ctx, input...); err != nil {
				t.Fatal(err)
			}
			if err := eng.Close(); err != nil {
				t.Fatal(err)
			}
			first, err := run()
			if err != nil {
				t.Fatal(err)
			}
			if n := countRows(first); n != len(input) {
				t.Fatalf("first run: %d outputs for %d inputs", n, len(input))
			}
			if err := tc.reset(t, dir); err != nil {
				t.Fatal(err)
			}
			second, err := run()
			if tc.runErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.runErr) {
					t.Fatalf("second run: %v, want an error with %q", err, tc.runErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			diff := cmp.Diff(first, second)
			switch {
			case tc.same && diff != "":
				t.Errorf("second run's output (-first +second):\n%s", diff)
			case !tc.same && diff == "":
				t.Errorf("second run after a partial reset reproduced the first run's output")
			}
		})
	}
}

// countRows returns the number of records that rows (of outputRows)
// describe.
func countRows(rows []string) int {
	n := 0
	for _, r := range rows {
		if !strings.Contains(r, "@max=") {
			n++
		}
	}
	return n
}

// runPlan resets the application in dir with Reset's plan as edit
// changes it, on the embedded log in dir.
func runPlan(t *testing.T, dir string, edit func(*engine.ResetPlan)) error {
	t.Helper()
	plan, err := engine.PlanReset(resetTopology(), engine.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	edit(&plan)
	l, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "log"), CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return plan.Run(context.Background(), l)
}

// TestResetRefusesWhileRunning checks that Reset refuses, deleting
// nothing, while an engine runs the application: one holding the
// embedded log's directory, one sharing its log in-process (the group has
// a member), and one holding the local state.
func TestResetRefusesWhileRunning(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	eng, err := engine.Open(resetTopology(), engine.Options{StateDir: dir, CacheBytes: -1, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	if err := log.Produce(ctx, resetInput(rand.New(rand.NewPCG(1, 2)), 50)...); err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	defer func() { stop(); <-done }()
	waitOutputs(t, log, 50, 30*time.Second)

	other, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// other stands for a log the application ran on: the refused reset
	// must not delete its internal topics either.
	if err := other.CreateTopics(ctx, broker.TopicConfig{Name: "reset-counts-changelog", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		opts  engine.Options
		cause error
	}{
		{"embedded log held", engine.Options{StateDir: dir}, embedded.ErrInUse},
		{"group has members", engine.Options{Log: log, StateDir: t.TempDir()}, broker.ErrGroupActive},
		{"local state held", engine.Options{Log: other, StateDir: dir}, state.ErrInUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := engine.Reset(ctx, resetTopology(), tc.opts)
			if !errors.Is(err, engine.ErrRunning) || !errors.Is(err, tc.cause) {
				t.Errorf("Reset while running = %v, want ErrRunning and %v", err, tc.cause)
			}
		})
	}
	for _, l := range []broker.Log{log, other} {
		topics, err := l.DescribeTopics(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := topics["reset-counts-changelog"]; !ok {
			t.Errorf("a refused Reset deleted reset-counts-changelog")
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("a refused Reset deleted the local state: %v", err)
	}
}

// TestResetKafka runs the application on kfake, checks that Reset
// refuses while it runs (from another machine: another StateDir), then
// stops it, resets it and checks that a rerun reproduces the output.
func TestResetKafka(t *testing.T) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 12))
	brokers := newKfake(t)
	log := openKafka(t, brokers)
	ctx := context.Background()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 3}, broker.TopicConfig{Name: "out", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	input := resetInput(r, 200)
	if err := log.Produce(ctx, input...); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	opts := engine.Options{StateDir: dir, Log: openKafka(t, brokers), CacheBytes: -1, Workers: 2, CommitInterval: 20 * time.Millisecond}
	eng, err := engine.Open(resetTopology(), opts)
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	waitOutputs(t, log, int64(len(input)), 60*time.Second)
	first := outputRows(t, log, "out", nil)

	err = engine.Reset(ctx, resetTopology(), engine.Options{StateDir: t.TempDir(), Log: openKafka(t, brokers)})
	if !errors.Is(err, engine.ErrRunning) || !errors.Is(err, broker.ErrGroupActive) {
		t.Errorf("Reset while running = %v, want ErrRunning and ErrGroupActive", err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := engine.Reset(ctx, resetTopology(), engine.Options{StateDir: dir, Log: log}); err != nil {
		t.Fatal(err)
	}
	topics, err := log.DescribeTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"in", "out"}, slices.Sorted(maps.Keys(topics))); diff != "" {
		t.Errorf("topics after Reset (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("local state after Reset: %v, want it deleted", err)
	}
	from := endOffsets(t, log, "out")
	opts.Bounded, opts.Log = true, openKafka(t, brokers)
	eng, err = engine.Open(resetTopology(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// The sink is kept: the second run appended to it.
	if diff := cmp.Diff(first, outputRows(t, log, "out", from)); diff != "" {
		t.Errorf("second run's output (-first +second):\n%s", diff)
	}
}

// TestStoresKindsRecorded checks that the engine records its stores'
// kinds in the state DB, where eddy stores reads them.
func TestStoresKindsRecorded(t *testing.T) {
	b := topology.New("kinds")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	g := in.GroupByKey()
	g.Count(topology.Named("totals"))
	topology.CountWindows(g.WindowedBy(window.Tumbling(time.Minute)), topology.Named("perminute"))
	topology.CountSessions(g.SessionWindowedBy(window.Sessions(time.Minute)), topology.Named("visits"))
	dir := t.TempDir()
	eng, err := engine.Open(b, engine.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := state.OpenReadOnly(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	kinds, err := db.StoreKinds()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"totals":       engine.StoreKindKeyValue,
		"perminute":    engine.StoreKindWindow,
		"visits":       engine.StoreKindSession,
		"visits-index": engine.StoreKindInternal,
	}
	if diff := cmp.Diff(want, kinds); diff != "" {
		t.Errorf("store kinds (-want +got):\n%s", diff)
	}
}
