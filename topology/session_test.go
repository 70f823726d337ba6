package topology_test

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// Scenario builders for session windows; their scenario files are
// testdata/scenarios/session-*.txt.
//
// Every topology reads the string stream "in" and writes its sessions to
// "out" as text: keys as key@start-end (A@0-5, both bounds inclusive),
// counts as decimal numbers, tombstones as <nil>. The string
// aggregations fold like Kafka Streams' tests: session-aggregate starts
// at "0", adds "+value" and merges as "agg+session", so "0+0+1+2" is the
// session of value 1 merged into the record of value 2 (rule 16);
// session-reduce appends "+value" to the first value.
//
// Parameters: gap (default 5ms), grace (default 0), final=true to emit on
// window close, late=<topic> to write late records there, rekey=true to
// group by the part of the value before ':' (through a repartition
// topic).
func init() {
	for _, agg := range []string{"count", "aggregate", "reduce"} {
		registerScenario("session-"+agg, sessionScenario(agg, true))
	}
	registerScenario("session-count-ks-keys", sessionScenario("count", false))
}

// sessionScenario builds a session aggregation of "in" into "out"; text
// prints the keys as text, else with the result table's own key serde.
func sessionScenario(agg string, text bool) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		spec := window.Sessions(p.Duration("gap", 5*time.Millisecond)).Grace(p.Duration("grace", 0))
		b := topology.New("scenario")
		in := topology.StreamFrom(b, "in", serde.String(), serde.String())
		g := in.GroupByKey()
		if sessionFlag(p, "rekey") {
			g = topology.GroupBy(in, func(_, v string) string { k, _, _ := strings.Cut(v, ":"); return k }, serde.String())
		}
		ws := g.SessionWindowedBy(spec)
		if sessionFlag(p, "final") {
			ws = ws.EmitOnWindowClose()
		}
		opts := []topology.Option{topology.Named("s")}
		if late := p.String("late", ""); late != "" {
			opts = append(opts, topology.LateRecordsTo(late))
		}
		keys := sessionKeyText()
		switch agg {
		case "count":
			t := topology.CountSessions(ws, opts...).WithValueSerde(sessionCountText())
			if text {
				t = t.WithKeySerde(keys)
			}
			t.To("out")
		case "aggregate":
			topology.AggregateSessions(ws,
				func() string { return "0" },
				func(_, v, agg string) string { return agg + "+" + v },
				func(_, a, b string) string { return a + "+" + b },
				serde.String(), opts...).WithKeySerde(keys).To("out")
		case "reduce":
			topology.ReduceSessions(ws, func(agg, v string) string { return agg + "+" + v }, opts...).WithKeySerde(keys).To("out")
		}
		return b
	}
}

func sessionFlag(p *scenarioParams, name string) bool {
	v, err := strconv.ParseBool(p.String(name, "false"))
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("parameter %s: %w", name, err))
	}
	return v
}

// sessionKeyText prints a session's key as "key@start-end".
func sessionKeyText() serde.Serde[window.Windowed[string]] {
	return serde.Func(
		func(dst []byte, w window.Windowed[string]) ([]byte, error) {
			return fmt.Appendf(dst, "%s@%d-%d", w.Key, w.Start, w.End), nil
		},
		func(b []byte) (window.Windowed[string], error) {
			var w window.Windowed[string]
			key, bounds, ok := strings.Cut(string(b), "@")
			start, end, ok2 := strings.Cut(bounds, "-")
			var err1, err2 error
			w.Key = key
			w.Start, err1 = strconv.ParseInt(start, 10, 64)
			w.End, err2 = strconv.ParseInt(end, 10, 64)
			if !ok || !ok2 || err1 != nil || err2 != nil {
				return w, fmt.Errorf("session key %q: want key@start-end", b)
			}
			return w, nil
		})
}

// sessionCountText prints a count as decimal text.
func sessionCountText() serde.Serde[int64] {
	return serde.Func(
		func(dst []byte, n int64) ([]byte, error) { return strconv.AppendInt(dst, n, 10), nil },
		func(b []byte) (int64, error) { return strconv.ParseInt(string(b), 10, 64) })
}

// TestSessionScenariosCiteRules checks that every session scenario file
// says which rules of SEMANTICS-KS.md it checks.
func TestSessionScenariosCiteRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "session-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 8 {
		t.Fatalf("%d session scenarios, want at least 8", len(files))
	}
	rule := regexp.MustCompile(`^#.*\brules? \d+`)
	for _, path := range files {
		cited := false
		for _, line := range scenarioFileLines(t, path) {
			cited = cited || rule.MatchString(line)
		}
		if !cited {
			t.Errorf("%s cites no rule of SEMANTICS-KS.md in a comment", path)
		}
	}
}

// TestSessionKeySerde runs a count with the result table's own key
// serde: the sink writes Kafka Streams' session key layout, key bytes,
// end, start.
func TestSessionKeySerde(t *testing.T) {
	key := func(k string, start, end int64) string {
		b := binary.BigEndian.AppendUint64([]byte(k), uint64(end))
		return string(binary.BigEndian.AppendUint64(b, uint64(start)))
	}
	sc := &scenario{
		path: "TestSessionKeySerde", builder: "session-count-ks-keys",
		params: map[string]string{}, caches: []int{0},
		steps: []scenarioStep{
			{args: []string{"in", "A", "x", "1"}, want: []string{key("A", 1, 1) + " 1 1"}},
			{args: []string{"in", "A", "x", "3"}, want: []string{key("A", 1, 1) + " <nil> 1", key("A", 1, 3) + " 2 3"}},
		},
	}
	runScenario(t, sc, 0)
}

func TestSessionDescribe(t *testing.T) {
	b := topology.New("clicks")
	in := topology.StreamFrom(b, "clicks", serde.String(), serde.String())
	byUser := topology.GroupBy(in, func(_, v string) string { return v }, serde.String())
	topology.CountSessions(byUser.SessionWindowedBy(window.Sessions(5*time.Minute).Grace(30*time.Second)),
		topology.Named("sessions"), topology.LateRecordsTo("late-clicks")).ToStream().To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `Topology: clicks
  Sub-topology 0
    Source: source-0 (topic: clicks)
      --> select-key-1
    Processor: select-key-1 (select-key)
      --> sessions-repartition-sink
      <-- source-0
    Sink: sessions-repartition-sink (topic: clicks-sessions-repartition)
      <-- select-key-1
  Sub-topology 1
    Source: sessions-repartition-source (topic: clicks-sessions-repartition)
      --> sessions-index
    Processor: sessions-index (session-index, store: sessions-index)
      --> sessions
      <-- sessions-repartition-source
    Processor: sessions (session-count, store: sessions)
      late records --> topic late-clicks
      --> to-stream-6
      <-- sessions-index
    Processor: to-stream-6 (to-stream)
      --> sink-7
      <-- sessions
    Sink: sink-7 (topic: out)
      <-- to-stream-6
  Stores:
    sessions-index (key-value, sessions of sessions by key and by end)
    sessions (session, session(gap=5m0s, grace=30s), emit on update)
  Internal topics:
    clicks-sessions-repartition (repartition, written by sub-topology 0)
    clicks-sessions-index-changelog (changelog, compacted)
    clicks-sessions-changelog (changelog, compacted)
`
	if diff := cmp.Diff(want, topo.Describe().String()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	sub := topo.SubTopologies()[1]
	wantStores := []topology.Store{
		{Name: "sessions-index", Kind: topology.KeyValueStore, Changelog: "clicks-sessions-index-changelog"},
		{Name: "sessions", Kind: topology.SessionStore, Changelog: "clicks-sessions-changelog"},
	}
	if diff := cmp.Diff(wantStores, sub.Stores); diff != "" {
		t.Errorf("stores of sub-topology 1 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"late-clicks", "out"}, sub.Sinks); diff != "" {
		t.Errorf("sinks of sub-topology 1 (-want +got):\n%s", diff)
	}
}

func TestSessionValidate(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *topology.Builder)
		want  []string
	}{
		{
			name: "zero gap",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				topology.CountSessions(s.GroupByKey().SessionWindowedBy(window.SessionSpec{}))
			},
			want: []string{`topology app: SessionWindowedBy after "source-0": window: session gap must be at least 1ms, got 0ms (use window.Sessions)`},
		},
		{
			name: "negative grace",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				topology.CountSessions(s.GroupByKey().SessionWindowedBy(window.Sessions(time.Second).Grace(-time.Second)))
			},
			want: []string{`topology app: SessionWindowedBy after "source-0": window: session grace must not be negative, got -1000ms`},
		},
		{
			name: "unknown key serde",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				k := topology.SelectKey(s, func(_, v string) string { return v })
				topology.CountSessions(k.GroupByKey().SessionWindowedBy(window.Sessions(time.Second)), topology.Named("c"))
			},
			want: []string{
				`topology app: count (repartition) at "c-repartition-sink": the stream's key serde is unknown after a key change: set it with WithKeySerde`,
				`topology app: count "c": the grouped stream's key serde is unknown: set it with WithKeySerde`,
			},
		},
		{
			name: "late records without value serde",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				v := topology.MapValues(s, func(_, v string) int { return len(v) })
				topology.ReduceSessions(v.GroupByKey().SessionWindowedBy(window.Sessions(time.Second)),
					func(a, b int) int { return a + b }, topology.Named("r"), topology.LateRecordsTo("late"))
			},
			want: []string{
				`topology app: reduce "r": missing aggregate serde`,
				`topology app: reduce "r": LateRecordsTo("late") needs the stream's key and value serdes: set them with WithKeySerde and WithValueSerde`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := topology.New("app")
			tc.build(b)
			err := b.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want errors")
			}
			if diff := cmp.Diff(tc.want, strings.Split(err.Error(), "\n")); diff != "" {
				t.Errorf("Validate() (-want +got):\n%s", diff)
			}
		})
	}
}
