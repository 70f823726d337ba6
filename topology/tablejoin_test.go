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
	"github.com/eddyflow/eddy/window"
)

func init() {
	registerScenario("stream-table-join", streamTableScenario(false))
	registerScenario("stream-table-left-join", streamTableScenario(true))
	for _, kind := range []string{"join", "left-join", "outer-join"} {
		registerScenario("table-table-"+kind, tableTableScenario(kind))
	}
}

func orNull(v string, ok bool) string {
	if !ok {
		return "null"
	}
	return v
}

// streamTableScenario builds a join of the string stream "orders" with
// the table "customers" into "out": values join as "v+t", a missing row
// as "null". With rekey=stream, the stream gets a new key, the part of
// its value before a ':', and goes through a repartition topic. With
// table=join, the table side is the inner join of the tables "customers"
// and "regions", whose rows join as "c|r".
func streamTableScenario(left bool) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		b := topology.New("scenario")
		orders := topology.StreamFrom(b, "orders", serde.String(), serde.String())
		table := topology.TableFrom(b, "customers", serde.String(), serde.String(), topology.Named("customers"))
		switch p.String("rekey", "") {
		case "stream":
			orders = topology.SelectKey(orders, func(_, v string) string { k, _, _ := strings.Cut(v, ":"); return k }).
				WithKeySerde(serde.String())
		case "":
		default:
			p.errs = append(p.errs, fmt.Errorf("rekey: want stream"))
		}
		switch p.String("table", "") {
		case "join":
			regions := topology.TableFrom(b, "regions", serde.String(), serde.String(), topology.Named("regions"))
			table = topology.JoinTables(table, regions, func(_, c, r string) string { return c + "|" + r }, topology.Named("cr"))
		case "":
		default:
			p.errs = append(p.errs, fmt.Errorf("table: want join"))
		}
		var joined topology.Stream[string, string]
		if left {
			joined = topology.LeftJoinTable(orders, table, func(_, v, t string, ok bool) string { return v + "+" + orNull(t, ok) }, topology.Named("j"))
		} else {
			joined = topology.JoinTable(orders, table, func(_, v, t string) string { return v + "+" + t }, topology.Named("j"))
		}
		joined.WithValueSerde(serde.String()).To("out")
		return b
	}
}

// tableTableScenario builds a join of the string tables "left" and
// "right" into "out": rows join as "l+r", a missing side as "null", and
// a deleted result is a tombstone. With left=reduce, the left table is
// the stream "left" reduced by key, its values joined with ','. With
// sink=stream, the result is written with ToStream, which drops
// tombstones.
func tableTableScenario(kind string) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		b := topology.New("scenario")
		var l topology.Table[string, string]
		switch p.String("left", "table") {
		case "table":
			l = topology.TableFrom(b, "left", serde.String(), serde.String(), topology.Named("left"))
		case "reduce":
			l = topology.StreamFrom(b, "left", serde.String(), serde.String()).GroupByKey().
				Reduce(func(agg, v string) string { return agg + "," + v }, topology.Named("left"))
		default:
			p.errs = append(p.errs, fmt.Errorf("left: want table or reduce"))
		}
		r := topology.TableFrom(b, "right", serde.String(), serde.String(), topology.Named("right"))
		var joined topology.Table[string, string]
		switch kind {
		case "join":
			joined = topology.JoinTables(l, r, func(_, lv, rv string) string { return lv + "+" + rv }, topology.Named("j"))
		case "left-join":
			joined = topology.LeftJoinTables(l, r, func(_, lv, rv string, rok bool) string {
				return lv + "+" + orNull(rv, rok)
			}, topology.Named("j"))
		case "outer-join":
			joined = topology.OuterJoinTables(l, r, func(_, lv string, lok bool, rv string, rok bool) string {
				return orNull(lv, lok) + "+" + orNull(rv, rok)
			}, topology.Named("j"))
		}
		joined = joined.WithValueSerde(serde.String())
		switch p.String("sink", "table") {
		case "table":
			joined.To("out")
		case "stream":
			joined.ToStream().To("out")
		default:
			p.errs = append(p.errs, fmt.Errorf("sink: want table or stream"))
		}
		return b
	}
}

// TestTableJoinScenariosCiteRules checks that every stream-table and
// table-table scenario file says which rules of SEMANTICS-KS.md it checks,
// in a comment before its topology line.
func TestTableJoinScenariosCiteRules(t *testing.T) {
	var files []string
	for _, pattern := range []string{"stream-table-*.txt", "table-table-*.txt"} {
		m, err := filepath.Glob(filepath.Join("testdata", "scenarios", pattern))
		if err != nil {
			t.Fatal(err)
		}
		if len(m) == 0 {
			t.Errorf("no scenario files %s", pattern)
		}
		files = append(files, m...)
	}
	rule := regexp.MustCompile(`^#.*\brules? \d+`)
	for _, path := range files {
		cited := false
		for _, line := range scenarioFileLines(t, path) {
			if strings.HasPrefix(line, "topology ") {
				break
			}
			cited = cited || rule.MatchString(line)
		}
		if !cited {
			t.Errorf("%s cites no rule of SEMANTICS-KS.md in its opening comment", path)
		}
	}
}

// TestStreamTableJoinDescribe checks that a stream re-keyed before a
// stream-table join is repartitioned into the table's sub-topology, and
// the join's nodes.
func TestStreamTableJoinDescribe(t *testing.T) {
	b := topology.New("app")
	orders := topology.StreamFrom(b, "orders", serde.String(), serde.String())
	customers := topology.TableFrom(b, "customers", serde.String(), serde.Int64(), topology.Named("customers"))
	byCustomer := topology.SelectKey(orders, func(_, v string) string { return v }).WithKeySerde(serde.String())
	topology.LeftJoinTable(byCustomer, customers, func(k, v string, c int64, ok bool) string { return v },
		topology.Named("j")).WithValueSerde(serde.String()).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `Topology: app
  Sub-topology 0
    Source: source-0 (topic: orders)
      --> select-key-2
    Processor: select-key-2 (select-key)
      --> j-repartition-sink
      <-- source-0
    Sink: j-repartition-sink (topic: app-j-repartition)
      <-- select-key-2
  Sub-topology 1
    Table source: customers (topic: customers, store: customers)
      --> j-table
    Source: j-repartition-source (topic: app-j-repartition)
      --> j
    Processor: j-table (join-table)
      --> j
      <-- customers
    Processor: j (stream-table-left-join)
      --> sink-7
      <-- j-repartition-source, j-table
    Sink: sink-7 (topic: out)
      <-- j
  Stores:
    customers (key-value)
  Internal topics:
    app-j-repartition (repartition, written by sub-topology 0)
    app-customers-changelog (changelog, compacted)
`
	if diff := cmp.Diff(want, topo.Describe().String()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	var repartition []topology.Topic
	for _, tp := range topo.Topics() {
		if tp.Role == topology.RoleRepartition {
			repartition = append(repartition, tp)
		}
	}
	wantTopics := []topology.Topic{{Name: "app-j-repartition", Role: topology.RoleRepartition, Writer: 0}}
	if diff := cmp.Diff(wantTopics, repartition); diff != "" {
		t.Errorf("repartition topics (-want +got):\n%s", diff)
	}
	subs := topo.SubTopologies()
	if diff := cmp.Diff([]string{"app-j-repartition", "customers"}, subs[1].Sources); diff != "" {
		t.Errorf("join sub-topology sources (-want +got):\n%s", diff)
	}
}

// TestStreamTableJoinNoRepartition checks that a stream keyed as read
// joins in the table's sub-topology with no repartition topic.
func TestStreamTableJoinNoRepartition(t *testing.T) {
	b := topology.New("app")
	orders := topology.StreamFrom(b, "orders", serde.String(), serde.String())
	customers := topology.TableFrom(b, "customers", serde.String(), serde.String())
	topology.JoinTable(topology.MapValues(orders, func(_, v string) string { return v }), customers,
		func(_, v, c string) string { return v + c }).WithValueSerde(serde.String()).To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topo.SubTopologies()); n != 1 {
		t.Fatalf("%d sub-topologies, want 1:\n%s", n, topo.Describe())
	}
	for _, tp := range topo.Topics() {
		if tp.Role == topology.RoleRepartition {
			t.Errorf("repartition topic %s, want none", tp.Name)
		}
	}
}

// TestTableJoinDescribe checks a table-table join's nodes, chained into a
// stream-table join, all in one sub-topology with no store of their own.
func TestTableJoinDescribe(t *testing.T) {
	b := topology.New("app")
	l := topology.TableFrom(b, "left", serde.String(), serde.String(), topology.Named("l"))
	r := topology.StreamFrom(b, "right", serde.String(), serde.Int64()).GroupByKey().Count(topology.Named("r"))
	lr := topology.OuterJoinTables(l, r, func(_, lv string, lok bool, n int64, rok bool) string { return lv },
		topology.Named("lr"))
	lr.WithValueSerde(serde.String()).To("out")
	s := topology.StreamFrom(b, "s", serde.String(), serde.String())
	topology.JoinTable(s, lr, func(_, v, t string) string { return v + t }, topology.Named("j")).
		WithValueSerde(serde.String()).To("out2")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `Topology: app
  Sub-topology 0
    Table source: l (topic: left, store: l)
      --> lr-left
    Source: source-1 (topic: right)
      --> r
    Processor: r (count, store: r)
      --> lr-right
      <-- source-1
    Processor: lr-left (table-join-left)
      --> lr
      <-- l
    Processor: lr-right (table-join-right)
      --> lr
      <-- r
    Processor: lr (table-outer-join)
      --> sink-6, j-table
      <-- lr-left, lr-right
    Sink: sink-6 (topic: out)
      <-- lr
    Source: source-7 (topic: s)
      --> j
    Processor: j-table (join-table)
      --> j
      <-- lr
    Processor: j (stream-table-join)
      --> sink-10
      <-- source-7, j-table
    Sink: sink-10 (topic: out2)
      <-- j
  Stores:
    l (key-value)
    r (key-value)
  Internal topics:
    app-l-changelog (changelog, compacted)
    app-r-changelog (changelog, compacted)
`
	if diff := cmp.Diff(want, topo.Describe().String()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
}

func TestTableJoinValidate(t *testing.T) {
	concat := func(_, l, r string) string { return l + r }
	tests := []struct {
		name  string
		build func(b *topology.Builder)
		want  []string
	}{
		{
			name: "windowed table",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "s", serde.String(), serde.String())
				counts := topology.CountWindows(s.GroupByKey().WindowedBy(window.Tumbling(time.Second)), topology.Named("w"))
				ws := topology.Map(s, func(k, v string) (window.Windowed[string], string) {
					return window.Windowed[string]{Key: k}, v
				})
				topology.JoinTable(ws, counts, func(_ window.Windowed[string], v string, n int64) string { return v }, topology.Named("j"))
			},
			want: []string{
				`topology app: stream-table-join "j": table "w" is windowed: only key-value tables can be joined`,
				`topology app: stream-table-join (repartition) at "j-repartition-sink": the stream's key serde is unknown after a key change: set it with WithKeySerde`,
				`topology app: stream-table-join (repartition) at "j-repartition-sink": the stream's value serde is unknown after a value change: set it with WithValueSerde`,
			},
		},
		{
			name: "other builder",
			build: func(b *topology.Builder) {
				l := topology.TableFrom(b, "l", serde.String(), serde.String())
				r := topology.TableFrom(topology.New("other"), "r", serde.String(), serde.String())
				topology.JoinTables(l, r, concat)
			},
			want: []string{`topology app: table-join "table-join-1": table "table-source-0" comes from another Builder (other)`},
		},
		{
			name: "stream and table of other builders",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "s", serde.String(), serde.String())
				t := topology.TableFrom(topology.New("other"), "t", serde.String(), serde.String())
				topology.LeftJoinTable(s, t, func(_, v, t string, _ bool) string { return v }, topology.Named("j"))
			},
			want: []string{`topology app: stream-table-left-join "j": table "table-source-0" comes from another Builder (other)`},
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

func TestTableJoinZeroTablePanics(t *testing.T) {
	b := topology.New("app")
	s := topology.StreamFrom(b, "s", serde.String(), serde.String())
	defer func() {
		if recover() == nil {
			t.Error("JoinTable with a zero Table did not panic")
		}
	}()
	topology.JoinTable(s, topology.Table[string, string]{}, func(_, v, t string) string { return v })
}

// TestTableToNeedsSerdes checks that writing a table whose value serde is
// unknown (a join's result) is reported by Validate, not a panic at run
// time.
func TestTableToNeedsSerdes(t *testing.T) {
	b := topology.New("app")
	l := topology.TableFrom(b, "l", serde.String(), serde.String())
	r := topology.TableFrom(b, "r", serde.String(), serde.String())
	topology.JoinTables(l, r, func(_, a, b string) string { return a + b }).To("out")
	err := b.Validate()
	if err == nil || !strings.Contains(err.Error(), "To(out)") || !strings.Contains(err.Error(), "WithValueSerde") {
		t.Fatalf("Validate() = %v, want an error naming To(out) and WithValueSerde", err)
	}
}
