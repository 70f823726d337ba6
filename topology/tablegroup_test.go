package topology_test

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
)

func init() {
	for _, agg := range []string{"count", "reduce", "aggregate"} {
		registerScenario("table-group-"+agg, tableGroupScenario(agg))
	}
}

// tableGroupText prints an int64 as decimal text and reads it back.
func tableGroupText() serde.Serde[int64] {
	return serde.Func(
		func(dst []byte, n int64) ([]byte, error) { return strconv.AppendInt(dst, n, 10), nil },
		func(b []byte) (int64, error) { return strconv.ParseInt(string(b), 10, 64) })
}

// splitRow groups a row "g:rest" under g, with value rest.
func splitRow(_, v string) (string, string) {
	g, rest, _ := strings.Cut(v, ":")
	return g, rest
}

// splitNumber groups a row "g:n" under g, with value n (0 if n is not a
// number).
func splitNumber(_, v string) (string, int64) {
	g, rest, _ := strings.Cut(v, ":")
	n, _ := strconv.ParseInt(rest, 10, 64)
	return g, n
}

// tableGroupScenario reads the string table "in", groups its rows by the
// part of the value before ':' (GroupTable named "g") and aggregates the
// groups into "out" (operator "agg"):
//   - count: the rows of each group;
//   - reduce: the sum of the numbers after ':' (adder +, subtractor -);
//   - aggregate: the string of operations applied, starting from "" with
//     "+v" for each added value and "-v" for each retracted one, to show
//     their order.
func tableGroupScenario(agg string) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		b := topology.New("scenario")
		in := topology.TableFrom(b, "in", serde.String(), serde.String(), topology.Named("in"))
		named := topology.Named("agg")
		switch agg {
		case "count":
			g := topology.GroupTable(in, splitRow, serde.String(), serde.String(), topology.Named("g"))
			g.Count(named).WithValueSerde(tableGroupText()).To("out")
		case "reduce":
			g := topology.GroupTable(in, splitNumber, serde.String(), serde.Int64(), topology.Named("g"))
			sum := g.Reduce(func(a, v int64) int64 { return a + v }, func(a, v int64) int64 { return a - v }, named)
			sum.WithValueSerde(tableGroupText()).To("out")
		case "aggregate":
			g := topology.GroupTable(in, splitRow, serde.String(), serde.String(), topology.Named("g"))
			ops := topology.AggregateTable(g,
				func() string { return "" },
				func(_, v, a string) string { return a + "+" + v },
				func(_, v, a string) string { return a + "-" + v },
				serde.String(), named)
			ops.To("out")
		}
		return b
	}
}

// TestTableGroupScenariosCiteKafkaStreams checks that every table-group
// scenario file begins with a comment saying which Kafka Streams
// behaviour it checks.
func TestTableGroupScenariosCiteKafkaStreams(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "scenarios", "table-group-*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 6 {
		t.Fatalf("%d table-group scenarios, want at least 6", len(files))
	}
	for _, path := range files {
		lines := scenarioFileLines(t, path)
		if len(lines) == 0 || !strings.HasPrefix(lines[0], "#") {
			t.Errorf("%s does not begin with a comment", path)
			continue
		}
		var head []string
		for _, l := range lines {
			if !strings.HasPrefix(l, "#") {
				break
			}
			head = append(head, l)
		}
		if c := strings.Join(head, " "); !strings.Contains(c, "Kafka Streams") && !strings.Contains(c, "KIP-904") {
			t.Errorf("%s: the opening comment cites no Kafka Streams behaviour", path)
		}
	}
}

func TestTableGroupTopology(t *testing.T) {
	b := topology.New("app")
	in := topology.TableFrom(b, "in", serde.String(), serde.String(), topology.Named("in"))
	shared := topology.GroupTable(in, splitRow, serde.String(), serde.String(), topology.Named("g"), topology.Partitions(4))
	shared.Count(topology.Named("n"))
	shared.Reduce(func(a, v string) string { return a + v }, func(a, v string) string { return a }, topology.Named("r"))
	own := topology.GroupTable(in, splitNumber, serde.String(), serde.Int64())
	topology.AggregateTable(own, func() int64 { return 0 },
		func(_ string, v, a int64) int64 { return a + v },
		func(_ string, v, a int64) int64 { return a - v },
		serde.Int64(), topology.Named("sum"))
	own.Count(topology.Named("m"), topology.Partitions(2))
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tp := range topo.Topics() {
		got = append(got, fmt.Sprintf("%s %s %d %d", tp.Name, tp.Role, tp.Writer, tp.Partitions))
	}
	// A named grouping shares one repartition topic among its
	// aggregations; an unnamed one gives each its own, as in Kafka Streams.
	want := []string{
		"in source -1 0",
		"app-g-repartition repartition 0 4",
		"app-sum-repartition repartition 0 0",
		"app-m-repartition repartition 0 2",
		"app-in-changelog changelog 0 0",
		"app-n-changelog changelog 1 0",
		"app-r-changelog changelog 1 0",
		"app-sum-changelog changelog 2 0",
		"app-m-changelog changelog 3 0",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
	desc := topo.Describe().String()
	for _, s := range []string{
		"Processor: g (table-group-by)",
		"Sink: g-repartition-sink (topic: app-g-repartition)",
		"Source: g-repartition-source (topic: app-g-repartition)",
		"--> n, r",
		"Processor: sum (table-aggregate, store: sum)",
	} {
		if !strings.Contains(desc, s) {
			t.Errorf("Describe lacks %q:\n%s", s, desc)
		}
	}
}

func TestTableGroupValidate(t *testing.T) {
	b := topology.New("app")
	in := topology.TableFrom(b, "in", serde.String(), serde.String())
	g := topology.GroupTable(in, splitRow, nil, nil, topology.Named("g"))
	g.Count(topology.Named("c1"))
	g.Count(topology.Named("c2"), topology.Partitions(3))
	topology.AggregateTable[string, string, int64](g, nil, nil, nil, nil, topology.Named("a"))
	err := b.Validate()
	if err == nil {
		t.Fatal("Validate: no error")
	}
	for _, s := range []string{
		`GroupTable "g": missing key serde`,
		`GroupTable "g": missing value serde`,
		`table-count "c2": Partitions(3): the repartition topic app-g-repartition of grouping "g" already has 0`,
		`table-aggregate after "g": nil initializer, adder or subtractor`,
		`table-aggregate "a": missing aggregate serde`,
	} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Validate error lacks %q:\n%v", s, err)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Count on a zero GroupedTable did not panic")
		}
	}()
	topology.GroupedTable[string, string]{}.Count()
}

// tableGroupModel is the naive reference: the input table's current rows,
// and the groups every aggregate holds a row for. Every aggregate is
// recomputed from the rows.
type tableGroupModel struct {
	rows map[string]tableGroupRow
	// groups maps each group that ever had a row to the time of its
	// aggregate: the largest time of a change that reached it.
	groups map[string]int64
}

type tableGroupRow struct {
	group string
	n     int64
	ts    int64
}

// touch records a change at ts reaching group g.
func (m *tableGroupModel) touch(g string, ts int64) {
	if prev, ok := m.groups[g]; !ok || ts > prev {
		m.groups[g] = ts
	}
}

func (m *tableGroupModel) upsert(key, group string, n, ts int64) {
	if old, ok := m.rows[key]; ok {
		m.touch(old.group, ts)
	}
	m.rows[key] = tableGroupRow{group, n, ts}
	m.touch(group, ts)
}

func (m *tableGroupModel) delete(key string, ts int64) {
	if old, ok := m.rows[key]; ok {
		// The retraction carries the tombstone's time, as in Kafka Streams.
		m.touch(old.group, ts)
		delete(m.rows, key)
	}
}

func (m *tableGroupModel) hasRows(g string) bool {
	for _, r := range m.rows {
		if r.group == g {
			return true
		}
	}
	return false
}

// want returns, per output topic, each group's expected "value time".
func (m *tableGroupModel) want(times bool) map[string]map[string]string {
	count, sum := map[string]int64{}, map[string]int64{}
	for _, r := range m.rows {
		count[r.group]++
		sum[r.group] += r.n
	}
	out := map[string]map[string]string{"count": {}, "sum": {}, "agg": {}}
	for g, ts := range m.groups {
		suffix := ""
		if times {
			suffix = fmt.Sprintf(" %d", ts)
		}
		out["count"][g] = fmt.Sprint(count[g]) + suffix
		out["sum"][g] = fmt.Sprint(sum[g]) + suffix
		out["agg"][g] = fmt.Sprint(sum[g]) + suffix
	}
	return out
}

// tableGroupModelTopology counts ("count") and sums ("sum") the rows of
// table "in" grouped by the part of the value before ':' through a shared
// named grouping, and sums them again ("agg") with AggregateTable through
// an unnamed grouping of its own.
func tableGroupModelTopology() *topology.Builder {
	b := topology.New("model")
	in := topology.TableFrom(b, "in", serde.String(), serde.String(), topology.Named("in"))
	g := topology.GroupTable(in, splitNumber, serde.String(), serde.Int64(), topology.Named("g"))
	g.Count(topology.Named("count")).WithValueSerde(tableGroupText()).To("count")
	g.Reduce(func(a, v int64) int64 { return a + v }, func(a, v int64) int64 { return a - v }, topology.Named("sum")).
		WithValueSerde(tableGroupText()).To("sum")
	own := topology.GroupTable(in, splitNumber, serde.String(), tableGroupText())
	topology.AggregateTable(own, func() int64 { return 0 },
		func(_ string, v, a int64) int64 { return a + v },
		func(_ string, v, a int64) int64 { return a - v },
		tableGroupText(), topology.Named("agg")).To("agg")
	return b
}

// TestTableGroupModel feeds random upserts and deletes to a table grouped
// and aggregated three ways, and checks after each step (after each
// commit when the stores cache) that the latest value emitted for every
// group equals what the naive model computes from the table's current
// rows, with random cache sizes, restarts and restores. Without a cache
// the output times are checked too.
func TestTableGroupModel(t *testing.T) {
	topo, err := tableGroupModelTopology().Build()
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			rnd := rand.New(rand.NewPCG(seed, 3))
			cache := []int{0, 0, 200, 1 << 20}[rnd.IntN(4)]
			nkeys, ngroups := 1+rnd.IntN(8), 1+rnd.IntN(4)
			t.Logf("cache=%d keys=%d groups=%d", cache, nkeys, ngroups)

			r := &scenarioRun{
				t: t, topo: topo, cache: cache, multiSink: true,
				offsets:    map[string]int64{},
				changelogs: map[string][]state.ChangelogRecord{},
				committed:  map[string]int64{},
			}
			r.openDB()
			r.openTasks()
			defer func() {
				r.closeTasks()
				if err := r.db.Close(); err != nil {
					t.Error(err)
				}
			}()
			m := &tableGroupModel{rows: map[string]tableGroupRow{}, groups: map[string]int64{}}
			got := map[string]map[string]string{"count": {}, "sum": {}, "agg": {}}
			collect := func(where string) {
				for _, line := range r.out {
					f := strings.Fields(line) // topic key value time
					if len(f) != 4 || got[f[0]] == nil || f[2] == "<nil>" {
						t.Fatalf("%s: unexpected output %q", where, line)
					}
					v := f[2]
					if cache == 0 {
						v += " " + f[3]
					}
					got[f[0]][f[1]] = v
				}
				r.out = nil
			}
			check := func(where string) {
				want := m.want(cache == 0)
				if cache != 0 {
					// The input table's cache folds the changes of a row
					// between flushes, so a group whose rows all left
					// before a flush never had a row: compare the groups
					// with rows, and the emptied ones that were emitted.
					for _, perGroup := range want {
						for g := range perGroup {
							if _, emitted := got["count"][g]; !emitted && !m.hasRows(g) {
								delete(perGroup, g)
							}
						}
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("%s: latest output per group (-model +got):\n%s", where, diff)
				}
			}
			ts := int64(rnd.IntN(100))
			for step := range 200 + rnd.IntN(300) {
				ts += int64(rnd.IntN(10))
				rts := ts
				if rnd.IntN(4) == 0 {
					rts -= int64(rnd.IntN(50)) // out of order
				}
				key := fmt.Sprint("k", rnd.IntN(nkeys))
				rec := operators.RawRecord{Topic: "in", Timestamp: rts, Key: []byte(key)}
				var what string
				switch rnd.IntN(10) {
				case 0, 1, 2:
					what = fmt.Sprintf("delete %s @%d", key, rts)
					m.delete(key, rts)
				default:
					group, n := fmt.Sprint("g", rnd.IntN(ngroups)), int64(rnd.IntN(30)-9)
					rec.Value = fmt.Appendf(nil, "%s:%d", group, n)
					what = fmt.Sprintf("put %s %s @%d", key, rec.Value, rts)
					m.upsert(key, group, n, rts)
				}
				where := fmt.Sprintf("step %d: %s", step, what)
				r.pending = append(r.pending, rec)
				r.deliver(where)
				collect(where)
				switch rnd.IntN(40) {
				case 0:
					r.commit(where)
					r.closeTasks()
					r.openTasks()
					where += " (restart)"
				case 1:
					r.commit(where)
					r.closeTasks()
					if err := r.db.Close(); err != nil {
						t.Fatal(err)
					}
					r.openDB()
					r.restoring = true
					r.openTasks()
					r.restoring = false
					where += " (restore)"
				case 2, 3, 4, 5:
					r.commit(where)
					where += " (commit)"
				default:
					if cache != 0 {
						continue
					}
				}
				collect(where)
				check(where)
			}
			r.commit("end")
			collect("end")
			check("end")
		})
	}
}

// TestTableGroupModelReference checks the model itself on a worked
// example: a group emptied by a move and a delete keeps its row at 0,
// stamped with the delete's time.
func TestTableGroupModelReference(t *testing.T) {
	m := &tableGroupModel{rows: map[string]tableGroupRow{}, groups: map[string]int64{}}
	m.upsert("k1", "a", 5, 10)
	m.upsert("k2", "a", 2, 3)
	m.upsert("k1", "b", 1, 20)
	m.delete("k2", 30)
	want := map[string]map[string]string{
		"count": {"a": "0 30", "b": "1 20"},
		"sum":   {"a": "0 30", "b": "1 20"},
		"agg":   {"a": "0 30", "b": "1 20"},
	}
	if diff := cmp.Diff(want, m.want(true)); diff != "" {
		t.Errorf("model (-want +got):\n%s", diff)
	}
}
