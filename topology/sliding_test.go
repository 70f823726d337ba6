package topology_test

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// Scenario builders for sliding-window aggregations; their scenario files
// are testdata/scenarios/sliding-*.txt.
//
// Both read the string stream "in", group it by key and aggregate it over
// window.Sliding(size).Grace(grace), writing the table to "out" as text:
// windowed keys as key@start-end (A@0-10, both ends inclusive), counts as
// decimal numbers. sliding-aggregate folds like Kafka Streams' own tests:
// it starts at "0" and appends "+value", so the output shows the order in
// which values were folded in. Parameters: size (default 10ms), grace
// (default 0), final=true to emit on window close, late=<topic> to write
// late records there.
func init() {
	registerScenario("sliding-count", slidingScenario("count"))
	registerScenario("sliding-aggregate", slidingScenario("aggregate"))
}

func slidingScenario(agg string) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		spec := window.Sliding(p.Duration("size", 10*time.Millisecond)).Grace(p.Duration("grace", 0))
		b := topology.New("scenario")
		ws := topology.StreamFrom(b, "in", serde.String(), serde.String()).GroupByKey().WindowedBy(spec)
		switch final := p.String("final", "false"); final {
		case "true":
			ws = ws.EmitOnWindowClose()
		case "false":
		default:
			p.errs = append(p.errs, fmt.Errorf("parameter final: want true or false, got %q", final))
		}
		opts := []topology.Option{topology.Named("w")}
		if late := p.String("late", ""); late != "" {
			opts = append(opts, topology.LateRecordsTo(late))
		}
		switch agg {
		case "count":
			topology.CountWindows(ws, opts...).
				WithKeySerde(slidingWindowedText()).WithValueSerde(slidingInt64Text()).To("out")
		case "aggregate":
			topology.AggregateWindows(ws, func() string { return "0" },
				func(_ string, v, agg string) string { return agg + "+" + v }, serde.String(), opts...).
				WithKeySerde(slidingWindowedText()).To("out")
		}
		return b
	}
}

// slidingWindowedText prints a windowed key as "key@start-end" and reads
// it back.
func slidingWindowedText() serde.Serde[window.Windowed[string]] {
	return serde.Func(
		func(dst []byte, w window.Windowed[string]) ([]byte, error) {
			return fmt.Appendf(dst, "%s@%d-%d", w.Key, w.Start, w.End), nil
		},
		func(b []byte) (window.Windowed[string], error) {
			var w window.Windowed[string]
			key, span, ok := strings.Cut(string(b), "@")
			start, end, ok2 := strings.Cut(span, "-")
			var err1, err2 error
			w.Key = key
			w.Start, err1 = strconv.ParseInt(start, 10, 64)
			w.End, err2 = strconv.ParseInt(end, 10, 64)
			if !ok || !ok2 || err1 != nil || err2 != nil {
				return w, fmt.Errorf("windowed key %q: want key@start-end", b)
			}
			return w, nil
		})
}

// slidingInt64Text prints an int64 as decimal text and reads it back.
func slidingInt64Text() serde.Serde[int64] {
	return serde.Func(
		func(dst []byte, n int64) ([]byte, error) { return strconv.AppendInt(dst, n, 10), nil },
		func(b []byte) (int64, error) { return strconv.ParseInt(string(b), 10, 64) })
}

// TestSlidingScenariosCiteRules checks that every sliding scenario file
// opens with a comment saying which rules of SEMANTICS-KS.md it checks.
func TestSlidingScenariosCiteRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "sliding-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("%d sliding scenarios, want at least 6", len(files))
	}
	for _, path := range files {
		lines := scenarioFileLines(t, path)
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "#") || !strings.Contains(strings.ToLower(strings.Join(lines, "\n")), "rule") {
			t.Errorf("%s: does not open with a comment citing its rules", path)
		}
		restarts := false
		for _, l := range lines {
			restarts = restarts || l == "restart" || l == "restore"
		}
		if !restarts {
			t.Errorf("%s: no restart or restore step", path)
		}
	}
}

// TestSlidingDescribe checks the nodes and stores of a sliding-window
// count: the index store on a node of its own, feeding the aggregation,
// and a changelog for each store.
func TestSlidingDescribe(t *testing.T) {
	b := topology.New("app")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	ws := in.GroupByKey().WindowedBy(window.Sliding(10 * time.Second).Grace(time.Minute)).EmitOnWindowClose()
	topology.CountWindows(ws, topology.Named("c"), topology.LateRecordsTo("late")).
		WithKeySerde(slidingWindowedText()).WithValueSerde(slidingInt64Text()).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `Topology: app
  Sub-topology 0
    Source: source-0 (topic: in)
      --> c-index
    Processor: c-index (sliding-index, store: c-index)
      --> c
      <-- source-0
    Processor: c (windowed-count, store: c)
      late records --> topic late
      --> sink-3
      <-- c-index
    Sink: sink-3 (topic: out)
      <-- c
  Stores:
    c-index (key-value, windows by key, sliding(maxDiff=10s, grace=1m0s), emit on window close)
    c (window, sliding(maxDiff=10s, grace=1m0s), emit on window close)
  Internal topics:
    app-c-index-changelog (changelog, compacted)
    app-c-changelog (changelog, compacted)
`
	if diff := cmp.Diff(want, topo.Describe().String()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
}

// TestSlidingValidate checks that a bad sliding spec is reported by Build.
func TestSlidingValidate(t *testing.T) {
	b := topology.New("app")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	topology.CountWindows(in.GroupByKey().WindowedBy(window.Sliding(-time.Second))).To("out")
	_, err := b.Build()
	if err == nil || !strings.Contains(err.Error(), "window: sliding maxDiff must not be negative") {
		t.Errorf("Build() = %v, want the maxDiff error", err)
	}
}

// TestSlidingKeySerde checks the default key serde of a sliding-window
// table: it writes the key then the start (Kafka Streams'
// TimeWindowedSerializer), and reads End back as Start + maxDiff, as Kafka
// Streams' FullTimeWindowedSerde for sliding windows does.
func TestSlidingKeySerde(t *testing.T) {
	b := topology.New("app")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	topology.CountWindows(in.GroupByKey().WindowedBy(window.Sliding(10 * time.Millisecond))).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	task := db.NewTask("0_0")
	defer task.Close()
	var sent []operators.RawRecord
	ctx := &operators.Context{
		Logger:     hclog.NewNullLogger(),
		Send:       func(r operators.RawRecord) { sent = append(sent, r) },
		Partitions: func(string) int32 { return 1 },
		Late:       func(string) {},
	}
	g, err := topo.SubTopologies()[0].NewGraph(ctx, slidingTaskStores{task})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Sources["in"].ProcessRaw(ctx, &operators.RawRecord{Topic: "in", Key: []byte("A"), Value: []byte("a"), Timestamp: 25}); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 {
		t.Fatalf("sent %d records, want 1", len(sent))
	}
	wantKey := binary.BigEndian.AppendUint64([]byte("A"), 15)
	if diff := cmp.Diff(wantKey, sent[0].Key); diff != "" {
		t.Errorf("key bytes (-want +got):\n%s", diff)
	}
	got, err := serde.Windowed(serde.String(), window.Sliding(10*time.Millisecond).SizeMs()).Decode(sent[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	if want := (window.Windowed[string]{Key: "A", Start: 15, End: 25}); got != want {
		t.Errorf("decoded key %+v, want %+v", got, want)
	}
}

// slidingTaskStores opens a task's stores with no cache and no changelog.
type slidingTaskStores struct{ task *state.Task }

func (s slidingTaskStores) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	return s.task.KV(name, 0, cfg)
}

func (s slidingTaskStores) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	return s.task.Window(name, 0, cfg)
}
