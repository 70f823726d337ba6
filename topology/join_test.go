package topology_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

func init() {
	for _, kind := range []string{"join", "left-join", "outer-join"} {
		registerScenario(kind, joinScenario(kind))
	}
}

// joinScenario builds a join of the string streams "left" and "right"
// into "out", with parameters before, after (default 0) and grace
// (default 0). Values join as "l+r", a missing side as "null". With
// rekey=left or rekey=right, that side gets a new key, the part of its
// value before a ':', and goes through a repartition topic.
func joinScenario(kind string) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		w := topology.JoinWindows{}.
			Before(p.Duration("before", 0)).
			After(p.Duration("after", 0)).
			Grace(p.Duration("grace", 0))
		b := topology.New("scenario")
		l := topology.StreamFrom(b, "left", serde.String(), serde.String())
		r := topology.StreamFrom(b, "right", serde.String(), serde.String())
		byValue := func(_, v string) string { k, _, _ := strings.Cut(v, ":"); return k }
		switch p.String("rekey", "") {
		case "left":
			l = topology.SelectKey(l, byValue).WithKeySerde(serde.String())
		case "right":
			r = topology.SelectKey(r, byValue).WithKeySerde(serde.String())
		case "":
		default:
			p.errs = append(p.errs, fmt.Errorf("rekey: want left or right"))
		}
		orNull := func(v string, ok bool) string {
			if !ok {
				return "null"
			}
			return v
		}
		var joined topology.Stream[string, string]
		switch kind {
		case "join":
			joined = topology.Join(l, r, w, func(_, lv, rv string) string { return lv + "+" + rv }, topology.Named("j"))
		case "left-join":
			joined = topology.LeftJoin(l, r, w, func(_, lv, rv string, rok bool) string {
				return lv + "+" + orNull(rv, rok)
			}, topology.Named("j"))
		case "outer-join":
			joined = topology.OuterJoin(l, r, w, func(_, lv string, lok bool, rv string, rok bool) string {
				return orNull(lv, lok) + "+" + orNull(rv, rok)
			}, topology.Named("j"))
		}
		joined.WithValueSerde(serde.String()).To("out")
		return b
	}
}

// TestJoinScenariosCiteRules checks that every join scenario file says
// which rules of SEMANTICS-KS.md it checks.
func TestJoinScenariosCiteRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "join-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no join scenarios")
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

func TestJoinWindows(t *testing.T) {
	w := topology.JoinTimeDifference(10 * time.Millisecond)
	if w.BeforeMs() != 10 || w.AfterMs() != 10 || w.GraceMs() != 0 {
		t.Errorf("JoinTimeDifference(10ms) = %s", w)
	}
	w = w.Before(0).After(20 * time.Millisecond).Grace(time.Second)
	if got, want := w.String(), "join(before=0s, after=20ms, grace=1s)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if err := topology.JoinTimeDifference(5 * time.Millisecond).Before(-5 * time.Millisecond).Validate(); err != nil {
		t.Errorf("before=-after: %v, want valid (an empty-width window of exactly tL+5)", err)
	}
	for _, bad := range []topology.JoinWindows{
		topology.JoinTimeDifference(-time.Millisecond),
		topology.JoinTimeDifference(5 * time.Millisecond).Before(-6 * time.Millisecond),
		topology.JoinTimeDifference(0).Grace(-time.Millisecond),
	} {
		if bad.Validate() == nil {
			t.Errorf("%s: Validate() = nil, want an error", bad)
		}
	}
}

func TestJoinValidate(t *testing.T) {
	concat := func(_, l, r string) string { return l + r }
	tests := []struct {
		name  string
		build func(b *topology.Builder)
		want  []string
	}{
		{
			name: "bad window",
			build: func(b *topology.Builder) {
				l := topology.StreamFrom(b, "l", serde.String(), serde.String())
				r := topology.StreamFrom(b, "r", serde.String(), serde.String())
				topology.Join(l, r, topology.JoinTimeDifference(time.Second).Grace(-time.Second), concat, topology.Named("j"))
			},
			want: []string{`topology app: join "j": join windows: grace must not be negative, got -1000ms`},
		},
		{
			name: "missing serdes",
			build: func(b *topology.Builder) {
				l := topology.StreamFrom(b, "l", serde.String(), serde.String())
				r := topology.StreamFrom(b, "r", serde.String(), serde.String())
				lv := topology.MapValues(l, func(_, v string) int { return len(v) })
				topology.LeftJoin(lv, r, topology.JoinTimeDifference(time.Second),
					func(_ string, l int, r string, _ bool) string { return r }, topology.Named("j"))
			},
			want: []string{`topology app: left-join "j": the left stream's value serde is unknown: set it with WithValueSerde`},
		},
		{
			name: "other builder",
			build: func(b *topology.Builder) {
				l := topology.StreamFrom(b, "l", serde.String(), serde.String())
				r := topology.StreamFrom(topology.New("other"), "r", serde.String(), serde.String())
				topology.Join(l, r, topology.JoinTimeDifference(time.Second), concat)
			},
			want: []string{`topology app: join: stream "source-0" comes from another Builder (other)`},
		},
		{
			name: "output needs a value serde",
			build: func(b *topology.Builder) {
				l := topology.StreamFrom(b, "l", serde.String(), serde.String())
				r := topology.StreamFrom(b, "r", serde.String(), serde.String())
				topology.Join(l, r, topology.JoinTimeDifference(time.Second), concat, topology.Named("j")).To("out")
			},
			want: []string{`topology app: To(out) at "sink-5": the stream's value serde is unknown after a value change: set it with WithValueSerde`},
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
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestJoinDescribe checks the join's processors and stores, and that a
// re-keyed side is repartitioned into the join's sub-topology.
func TestJoinDescribe(t *testing.T) {
	b := topology.New("app")
	l := topology.StreamFrom(b, "left", serde.String(), serde.String())
	r := topology.StreamFrom(b, "right", serde.String(), serde.Int64())
	byValue := topology.SelectKey(r, func(_ string, v int64) string { return "k" }).WithKeySerde(serde.String())
	topology.OuterJoin(l, byValue, topology.JoinTimeDifference(time.Second).Grace(100*time.Millisecond),
		func(k, l string, lok bool, r int64, rok bool) string { return k },
		topology.Named("j"), topology.Partitions(4)).
		WithValueSerde(serde.String()).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `Topology: app
  Sub-topology 0
    Source: source-0 (topic: left)
      --> j-left
    Source: j-right-repartition-source (topic: app-j-right-repartition)
      --> j-right
    Processor: j-left (join-left, store: j-left-store)
      --> j
      <-- source-0
    Processor: j-right (join-right, store: j-right-store)
      --> j
      <-- j-right-repartition-source
    Processor: j (outer-join, store: j-held-store)
      --> sink-8
      <-- j-left, j-right
    Sink: sink-8 (topic: out)
      <-- j
  Sub-topology 1
    Source: source-1 (topic: right)
      --> select-key-2
    Processor: select-key-2 (select-key)
      --> j-right-repartition-sink
      <-- source-1
    Sink: j-right-repartition-sink (topic: app-j-right-repartition)
      <-- select-key-2
  Stores:
    j-left-store (key-value, left records, join(before=1s, after=1s, grace=100ms))
    j-right-store (key-value, right records, join(before=1s, after=1s, grace=100ms))
    j-held-store (key-value, unmatched records held until their window closes)
  Internal topics:
    app-j-right-repartition (repartition, written by sub-topology 1)
    app-j-left-store-changelog (changelog, compacted)
    app-j-right-store-changelog (changelog, compacted)
    app-j-held-store-changelog (changelog, compacted)
`
	if diff := cmp.Diff(want, topo.Describe().String()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	subs := topo.SubTopologies()
	if diff := cmp.Diff([]string{"app-j-right-repartition", "left"}, subs[0].Sources); diff != "" {
		t.Errorf("join sub-topology sources (-want +got):\n%s", diff)
	}
	for _, tp := range topo.Topics() {
		if tp.Role == topology.RoleRepartition && tp.Partitions != 4 {
			t.Errorf("repartition topic %s: %d partitions, want 4 (Partitions option)", tp.Name, tp.Partitions)
		}
	}
}

// TestInnerJoinStores checks that an inner join has no held store and
// names its stores after the join.
func TestInnerJoinStores(t *testing.T) {
	b := topology.New("app")
	l := topology.StreamFrom(b, "left", serde.String(), serde.String())
	r := topology.StreamFrom(b, "right", serde.String(), serde.String())
	topology.Join(l, r, topology.JoinTimeDifference(time.Second), func(_, l, r string) string { return l + r }).
		WithValueSerde(serde.String()).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topo.SubTopologies()); n != 1 {
		t.Fatalf("%d sub-topologies, want 1", n)
	}
	var names []string
	for _, st := range topo.SubTopologies()[0].Stores {
		names = append(names, st.Name)
	}
	if diff := cmp.Diff([]string{"join-2-left-store", "join-2-right-store"}, names); diff != "" {
		t.Errorf("stores (-want +got):\n%s", diff)
	}
}
