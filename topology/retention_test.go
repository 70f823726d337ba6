package topology_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// Retention scenarios: testdata/retention/*.txt, in the scenario format
// (see scenario_test.go) with one more command,
//
//	fetch <key> <from> <to>
//
// which commits, then reads the windows of key overlapping [from, to]
// from the committed store with topology.FetchWindows, and is followed
// by the rows it returns, one a line: "> key@start-end count time". The
// topology line names a builder of retentionBuilders; each counts the
// records of "in" per key and window, with topology.Retention, and
// writes the counts to "out" as the scenario builders do.

// retentionBuilder builds a topology and returns a fetch of its table.
type retentionBuilder func(p *scenarioParams) (*topology.Builder, retentionFetch)

// retentionFetch reads the windows of key overlapping [from, to].
type retentionFetch func(ctx context.Context, r topology.StoreReader, key string, from, to int64) ([]string, error)

var retentionBuilders = map[string]retentionBuilder{
	"retention-window-count":  retentionWindowCount,
	"retention-sliding-count": retentionSlidingCount,
	"retention-session-count": retentionSessionCount,
}

// retentionOptions returns the options of the count: Named("w") and the
// retention parameter, if given.
func retentionOptions(p *scenarioParams) []topology.Option {
	opts := []topology.Option{topology.Named("w")}
	if _, ok := p.m["retention"]; ok {
		opts = append(opts, topology.Retention(p.Duration("retention", 0)))
	}
	return opts
}

func fetchOf(t topology.Table[window.Windowed[string], int64]) retentionFetch {
	return func(ctx context.Context, r topology.StoreReader, key string, from, to int64) ([]string, error) {
		rows, err := topology.FetchWindows(ctx, r, t, key, from, to)
		var lines []string
		for _, row := range rows {
			lines = append(lines, fmt.Sprintf("%s@%d-%d %d %d", row.Key.Key, row.Key.Start, row.Key.End, row.Value, row.Time))
		}
		return lines, err
	}
}

// retentionWindowCount counts per tumbling (or, with advance, hopping)
// window. Parameters: size, advance, grace, retention, final.
func retentionWindowCount(p *scenarioParams) (*topology.Builder, retentionFetch) {
	size := p.Duration("size", 10*time.Millisecond)
	spec := window.Tumbling(size)
	if _, hopping := p.m["advance"]; hopping {
		spec = window.Hopping(size, p.Duration("advance", size))
	}
	spec = spec.Grace(p.Duration("grace", 0))
	b := topology.New("scenario")
	ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().WindowedBy(spec)
	if boolParam(p, "final") {
		ws = ws.EmitOnWindowClose()
	}
	t := topology.CountWindows(ws, retentionOptions(p)...)
	t.WithKeySerde(windowedText()).WithValueSerde(int64Text()).To("out")
	return b, fetchOf(t)
}

// retentionSlidingCount counts per sliding window. Parameters: maxdiff,
// grace, retention, final.
func retentionSlidingCount(p *scenarioParams) (*topology.Builder, retentionFetch) {
	spec := window.Sliding(p.Duration("maxdiff", 10*time.Millisecond)).Grace(p.Duration("grace", 0))
	b := topology.New("scenario")
	ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().WindowedBy(spec)
	if boolParam(p, "final") {
		ws = ws.EmitOnWindowClose()
	}
	t := topology.CountWindows(ws, retentionOptions(p)...)
	t.WithKeySerde(windowedText()).WithValueSerde(int64Text()).To("out")
	return b, fetchOf(t)
}

// retentionSessionCount counts per session. Parameters: gap, grace,
// retention, final.
func retentionSessionCount(p *scenarioParams) (*topology.Builder, retentionFetch) {
	spec := window.Sessions(p.Duration("gap", 5*time.Millisecond)).Grace(p.Duration("grace", 0))
	b := topology.New("scenario")
	ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().SessionWindowedBy(spec)
	if boolParam(p, "final") {
		ws = ws.EmitOnWindowClose()
	}
	t := topology.CountSessions(ws, retentionOptions(p)...)
	t.WithKeySerde(windowedText()).WithValueSerde(int64Text()).To("out")
	return b, fetchOf(t)
}

// dbReader reads a scenario run's committed stores, partition 0.
type dbReader struct{ db *state.DB }

func (r dbReader) StorePartitions(context.Context, string) (int32, []int32, error) {
	return 1, []int32{0}, nil
}

func (r dbReader) Get(_ context.Context, store string, p int32, key []byte) ([]byte, bool, error) {
	return r.db.Get(store, p, key)
}

func (r dbReader) Range(_ context.Context, store string, p int32, from, to []byte, fn func(key, value []byte) error) error {
	return r.db.ReadStore(store, p, from, to, fn)
}

func TestRetentionScenarios(t *testing.T) {
	runScenarioFiles(t, "retention", runRetentionScenario)
}

// runRetentionScenario runs sc as runScenario does, with fetch steps.
func runRetentionScenario(t *testing.T, sc *scenario, cache int) [][]string {
	build := retentionBuilders[sc.builder]
	if build == nil {
		t.Fatalf("%s:%d: no retention builder %q", sc.path, sc.topLine+1, sc.builder)
	}
	p := &scenarioParams{m: sc.params, used: map[string]bool{}}
	b, fetch := build(p)
	return runBuilt(t, sc, cache, p, b, fetch)
}

// TestRetentionTooShort checks that Build fails on a retention shorter
// than the window's size plus grace (sessions: gap plus grace; sliding
// windows: twice the maximum time difference plus grace), naming
// the operator and both durations, for each kind of window, and accepts
// one exactly that long.
func TestRetentionTooShort(t *testing.T) {
	tests := []struct {
		name    string
		build   func(b *topology.Builder, retention time.Duration)
		minimum time.Duration
		want    string
	}{{
		name: "tumbling",
		build: func(b *topology.Builder, d time.Duration) {
			ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().
				WindowedBy(window.Tumbling(time.Minute).Grace(10 * time.Second))
			topology.CountWindows(ws, topology.Named("tumbling-counts"), topology.Retention(d))
		},
		minimum: 70 * time.Second,
		want:    `windowed count "tumbling-counts": retention 1m9.999s is less than its window size plus grace, 1m10s`,
	}, {
		name: "hopping",
		build: func(b *topology.Builder, d time.Duration) {
			ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().
				WindowedBy(window.Hopping(time.Minute, 10*time.Second).Grace(time.Second))
			topology.ReduceWindows(ws, func(a, v string) string { return a + v }, topology.Named("hops"), topology.Retention(d))
		},
		minimum: 61 * time.Second,
		want:    `windowed reduce "hops": retention 1m0.999s is less than its window size plus grace, 1m1s`,
	}, {
		name: "sliding",
		build: func(b *topology.Builder, d time.Duration) {
			ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().
				WindowedBy(window.Sliding(10 * time.Second).Grace(time.Minute))
			topology.CountWindows(ws, topology.Named("slides"), topology.Retention(d))
		},
		minimum: 80 * time.Second,
		want:    `windowed count "slides": retention 1m19.999s is less than twice its maximum time difference plus grace, 1m20s`,
	}, {
		name: "session",
		build: func(b *topology.Builder, d time.Duration) {
			ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().
				SessionWindowedBy(window.Sessions(5 * time.Minute).Grace(time.Minute))
			topology.CountSessions(ws, topology.Named("visits"), topology.Retention(d))
		},
		minimum: 6 * time.Minute,
		want:    `windowed count "visits": retention 5m59.999s is less than its inactivity gap plus grace, 6m0s`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := topology.New("app")
			tc.build(b, tc.minimum-time.Millisecond)
			_, err := b.Build()
			if err == nil {
				t.Fatalf("Build succeeded with a retention of %s", tc.minimum-time.Millisecond)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build error %q does not contain %q", err, tc.want)
			}
			b = topology.New("app")
			tc.build(b, tc.minimum)
			if _, err := b.Build(); err != nil {
				t.Errorf("Build with a retention of %s: %v", tc.minimum, err)
			}
		})
	}
}

// TestRetentionDescribe checks that Describe shows a retention that was
// set, and nothing for the default.
func TestRetentionDescribe(t *testing.T) {
	for _, set := range []bool{false, true} {
		b := topology.New("app")
		in := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey()
		var opts []topology.Option
		if set {
			opts = append(opts, topology.Retention(time.Hour))
		}
		topology.CountWindows(in.WindowedBy(window.Tumbling(time.Minute)), append(opts, topology.Named("t"))...)
		topology.CountWindows(in.WindowedBy(window.Sliding(time.Minute)), append(opts, topology.Named("s"))...)
		topology.CountSessions(in.SessionWindowedBy(window.Sessions(time.Minute)), append(opts, topology.Named("g"))...)
		topo, err := b.Build()
		if err != nil {
			t.Fatal(err)
		}
		desc := topo.Describe().String()
		var got []string
		for _, l := range strings.Split(desc, "\n") {
			if strings.HasPrefix(l, "    t (") || strings.HasPrefix(l, "    s (") || strings.HasPrefix(l, "    g (") {
				got = append(got, strings.TrimSpace(l))
			}
		}
		want := []string{
			"t (window, tumbling(size=1m0s, grace=0s), emit on update)",
			"s (window, sliding(maxDiff=1m0s, grace=0s), emit on update)",
			"g (session, session(gap=1m0s, grace=0s), emit on update)",
		}
		if set {
			for i := range want {
				want[i] = strings.TrimSuffix(want[i], ")") + ", retention 1h0m0s)"
			}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("retention set: %v: store lines of Describe (-want +got):\n%s\n%s", set, diff, desc)
		}
	}
}
