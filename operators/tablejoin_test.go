package operators

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

func orNull(v string, ok bool) string {
	if !ok {
		return "null"
	}
	return v
}

// tableJoinHarness runs, on an in-memory state DB as a task would, two
// TableSources of string tables "left" and "right" feeding a TableJoin of
// kind inner, left or outer, and a StreamTableJoin of a stream with
// either the left table or the TableJoin's result. Table-table results
// are recorded as "key new old time" lines (<nil> for no value), stream
// results as "key value time".
type tableJoinHarness struct {
	t      *testing.T
	db     *state.DB
	task   *state.Task
	ctx    Context
	cache  int
	kind   string
	left   bool // stream-table join: left join
	onJoin bool // stream-table join: reads the table-table join
	tables [2]*TableSource[string, string]
	j      *TableJoin[string, string, string, string]
	st     *StreamTableJoin[string, string, string, string]
	offset int64
	// changes and joined are the outputs of the table-table and the
	// stream-table joins.
	changes, joined []string
}

type changeCollector struct{ out *[]string }

func (c changeCollector) Process(_ *Context, r Record[string, Change[string]]) error {
	nv, ov := "<nil>", "<nil>"
	if r.Value.HasNew {
		nv = r.Value.New
	}
	if r.Value.HasOld {
		ov = r.Value.Old
	}
	*c.out = append(*c.out, fmt.Sprintf("%s %s %s %d", r.Key, nv, ov, r.Time))
	return nil
}

type recordCollector struct{ out *[]string }

func (c recordCollector) Process(_ *Context, r Record[string, string]) error {
	*c.out = append(*c.out, fmt.Sprintf("%s %s %d", r.Key, r.Value, r.Time))
	return nil
}

func newTableJoinHarness(t *testing.T, kind string, cache int) *tableJoinHarness {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &tableJoinHarness{t: t, db: db, cache: cache, kind: kind}
	h.open()
	return h
}

func (h *tableJoinHarness) open() {
	h.task = h.db.NewTask("0_0")
	h.ctx = Context{Logger: hclog.NewNullLogger()}
	h.j = &TableJoin[string, string, string, string]{
		Name: "j", LeftOuter: h.kind != "inner", RightOuter: h.kind == "outer",
		Joiner: func(_ string, l string, lok bool, r string, rok bool) string {
			return orNull(l, lok) + "+" + orNull(r, rok)
		},
		Out: Downstream[string, Change[string]]{changeCollector{&h.changes}},
	}
	h.st = &StreamTableJoin[string, string, string, string]{
		Name: "st", LeftOuter: h.left,
		Joiner: func(_ string, v, t string, ok bool) string { return v + "+" + orNull(t, ok) },
		Out:    Downstream[string, string]{recordCollector{&h.joined}},
	}
	inputs := [2]Processor[string, Change[string]]{h.j.Left(), h.j.Right()}
	for i, name := range []string{"left", "right"} {
		h.tables[i] = &TableSource[string, string]{
			Store: name, KeySerde: serde.String(), ValueSerde: serde.String(),
			Out: Downstream[string, Change[string]]{inputs[i], h.st.TableInput()},
		}
		if err := h.tables[i].Init(&h.ctx, joinStores{h.task, h.cache}); err != nil {
			h.t.Fatal(err)
		}
	}
	h.j.LeftTable, h.j.RightTable = h.tables[0].Reader(Forwarded), h.tables[1].Reader(Forwarded)
	h.j.LatestLeft, h.j.LatestRight = h.tables[0].Reader(Latest), h.tables[1].Reader(Latest)
	h.st.Table = h.tables[0].Reader(Latest)
	if h.onJoin {
		h.st.Table = h.j.Reader(Latest)
	}
}

// restart commits, closes the task and builds the operators again from
// the committed state.
func (h *tableJoinHarness) restart() {
	if err := h.task.Flush(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.task.Commit(nil); err != nil {
		h.t.Fatal(err)
	}
	if err := h.task.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

// update feeds a record of table side (0 left, 1 right); del makes it a
// tombstone.
func (h *tableJoinHarness) update(side int, key, value string, del bool, ts int64) {
	h.t.Helper()
	r := &RawRecord{Topic: []string{"left", "right"}[side], Offset: h.offset, Timestamp: ts, Key: []byte(key), Value: []byte(value)}
	h.offset++
	if del {
		r.Value = nil
	}
	if err := h.tables[side].ProcessRaw(&h.ctx, r); err != nil {
		h.t.Fatal(err)
	}
}

func (h *tableJoinHarness) stream(key, value string, ts int64) {
	h.t.Helper()
	if err := h.st.Process(&h.ctx, Record[string, string]{Key: key, Value: value, Time: ts}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *tableJoinHarness) flush() {
	h.t.Helper()
	if err := h.task.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// tableJoinModel is a naive table-table join following SEMANTICS-KS.md
// rules 35-38 literally: both tables as maps, and the join result of a key
// recomputed from them before and after each update.
type tableJoinModel struct {
	kind string
	rows [2]map[string]modelRow
}

type modelRow struct {
	v  string
	ts int64
}

func newTableJoinModel(kind string) *tableJoinModel {
	return &tableJoinModel{kind: kind, rows: [2]map[string]modelRow{{}, {}}}
}

// result returns the join's row for key: which sides must be there
// depends on the kind of join, and it is stamped with the later of the
// rows' timestamps.
func (m *tableJoinModel) result(key string) (string, int64, bool) {
	l, lok := m.rows[0][key]
	r, rok := m.rows[1][key]
	switch {
	case lok && rok:
		return l.v + "+" + r.v, max(l.ts, r.ts), true
	case lok && m.kind != "inner":
		return l.v + "+null", l.ts, true
	case rok && m.kind == "outer":
		return "null+" + r.v, r.ts, true
	}
	return "", 0, false
}

// update applies an update to side and returns the record the join must
// emit, if any: the new result (or a tombstone) with the previous result
// as old, stamped with the update's time, or the other row's if later.
// Nothing is emitted when the key has no result before or after and the
// other side has no row; when it has one, even a no-op delete re-emits
// (an empty change), as Kafka Streams does.
func (m *tableJoinModel) update(side int, key, value string, del bool, ts int64) (string, bool) {
	before, _, hadResult := m.result(key)
	other, otherOK := m.rows[1-side][key]
	if del {
		delete(m.rows[side], key)
	} else {
		m.rows[side][key] = modelRow{value, ts}
	}
	after, _, hasResult := m.result(key)
	if !hadResult && !hasResult && !otherOK {
		return "", false
	}
	if otherOK {
		ts = max(ts, other.ts)
	}
	if !hasResult {
		after = "<nil>"
	}
	if !hadResult {
		before = "<nil>"
	}
	return fmt.Sprintf("%s %s %s %d", key, after, before, ts), true
}

// randomTableOp draws a table update: a side, a key among a few, a
// tombstone one time in four (of rows that may or may not exist), and a
// timestamp that mostly grows but often goes back.
func randomTableOp(r *rand.Rand, ts *int64, seq int) (side int, key, value string, del bool, t int64) {
	*ts += r.Int64N(10)
	t = *ts
	if r.IntN(4) == 0 {
		t -= r.Int64N(50)
	}
	side = r.IntN(2)
	return side, fmt.Sprintf("k%d", r.IntN(5)), fmt.Sprintf("%c%d", "lr"[side], seq), r.IntN(4) == 0, t
}

// TestTableJoinModel runs random updates of both tables through the join
// and the naive model, uncached, and compares every emitted change (new,
// old and timestamp) in order, and the join's Reader with the model's
// result of every key after each update. Restarts happen at random.
func TestTableJoinModel(t *testing.T) {
	for i := range 30 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 3))
			kind := []string{"inner", "left", "outer"}[r.IntN(3)]
			base := []int64{0, -1000, 1 << 40}[r.IntN(3)]
			t.Logf("kind=%s base=%d", kind, base)
			h := newTableJoinHarness(t, kind, 0)
			m := newTableJoinModel(kind)
			var want []string
			ts := base
			for seq := range 200 + r.IntN(300) {
				side, key, value, del, rts := randomTableOp(r, &ts, seq)
				if line, ok := m.update(side, key, value, del, rts); ok {
					want = append(want, line)
				}
				h.update(side, key, value, del, rts)
				if !slices.Equal(want, h.changes) {
					diff := gocmp.Diff(want, h.changes)
					t.Fatalf("after update %d (%d %s %s del=%v %d), changes (-model +join):\n%s", seq, side, key, value, del, rts, diff)
				}
				for k := range 5 {
					key := fmt.Sprintf("k%d", k)
					wv, wts, wok := m.result(key)
					gv, gts, gok, err := h.j.Reader(Forwarded).Get(key)
					if err != nil {
						t.Fatal(err)
					}
					if gv != wv || gts != wts || gok != wok {
						t.Fatalf("after update %d: Reader().Get(%s) = %q, %d, %v; model: %q, %d, %v", seq, key, gv, gts, gok, wv, wts, wok)
					}
				}
				if r.IntN(50) == 0 {
					h.restart()
				}
			}
			if len(want) == 0 {
				t.Error("the join emitted nothing")
			}
		})
	}
}

// TestStreamTableJoinModel interleaves random stream records with random
// updates of the tables, with random cache sizes and restarts, and
// compares the stream-table join's output in order with a naive model: a
// record joins the table's latest row if any, whatever the timestamps
// (rules 31-33), stamped with its own time. The table is either the left
// table itself or the result of a table-table join of both tables.
func TestStreamTableJoinModel(t *testing.T) {
	for i := range 30 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 4))
			kind := []string{"inner", "left", "outer"}[r.IntN(3)]
			cache := []int{0, 64, 1 << 20}[r.IntN(3)]
			left, onJoin := r.IntN(2) == 0, r.IntN(2) == 0
			t.Logf("left=%v onJoin=%v kind=%s cache=%d", left, onJoin, kind, cache)
			db, err := state.Open(state.Options{InMemory: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			h := &tableJoinHarness{t: t, db: db, cache: cache, kind: kind, left: left, onJoin: onJoin}
			h.open()
			m := newTableJoinModel(kind)
			var want []string
			ts := int64(0)
			for seq := range 300 + r.IntN(300) {
				if r.IntN(3) > 0 {
					side, key, value, del, rts := randomTableOp(r, &ts, seq)
					m.update(side, key, value, del, rts)
					h.update(side, key, value, del, rts)
				} else {
					key, value := fmt.Sprintf("k%d", r.IntN(5)), fmt.Sprintf("s%d", seq)
					rts := ts - r.Int64N(100) + 50
					var row string
					var ok bool
					if onJoin {
						row, _, ok = m.result(key)
					} else {
						var lr modelRow
						lr, ok = m.rows[0][key]
						row = lr.v
					}
					switch {
					case ok:
						want = append(want, fmt.Sprintf("%s %s+%s %d", key, value, row, rts))
					case left:
						want = append(want, fmt.Sprintf("%s %s+null %d", key, value, rts))
					}
					h.stream(key, value, rts)
				}
				switch r.IntN(60) {
				case 0:
					h.restart()
				case 1:
					h.flush()
				}
			}
			if diff := gocmp.Diff(want, h.joined); diff != "" {
				t.Fatalf("output (-model +join):\n%s", diff)
			}
			if len(want) == 0 {
				t.Error("the join emitted nothing")
			}
		})
	}
}

// TestTableSourceDeleteTime checks that a table's deletes are forwarded
// stamped with their tombstone's time, cached or not, and that a put after
// a delete in the same flush forgets the tombstone.
func TestTableSourceDeleteTime(t *testing.T) {
	for _, cache := range []int{0, 1 << 20} {
		t.Run(fmt.Sprint(cache), func(t *testing.T) {
			h := newTableJoinHarness(t, "outer", cache)
			h.update(0, "a", "x", false, 100)
			h.update(0, "b", "y", false, 100)
			h.flush()
			h.update(0, "a", "", true, 150)
			h.update(0, "b", "", true, 160)
			h.update(0, "b", "z", false, 120)
			h.update(0, "c", "", true, 170) // no row: the join emits nothing
			h.flush()
			if n := len(h.tables[0].deleted); n != 0 {
				t.Errorf("%d tombstone times kept after a flush", n)
			}
			h.update(0, "b", "", true, 200)
			h.restart()
			want := []string{"a x+null <nil> 100", "b y+null <nil> 100"}
			if cache == 0 {
				want = append(want,
					"a <nil> x+null 150",
					"b <nil> y+null 160",
					"b z+null <nil> 120",
					"b <nil> z+null 200",
				)
			} else {
				want = append(want,
					"a <nil> x+null 150",
					"b z+null y+null 120",
					"b <nil> z+null 200",
				)
			}
			if diff := gocmp.Diff(want, h.changes); diff != "" {
				t.Errorf("changes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAggregateReader checks that an aggregation's reader returns each
// key's aggregate and its newest input's time, cached writes included.
func TestAggregateReader(t *testing.T) {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	task := db.NewTask("0_0")
	ctx := Context{Logger: hclog.NewNullLogger()}
	a := &Aggregate[string, string, int64]{
		Name: "count", Store: "count", KeySerde: serde.String(), AggSerde: serde.Int64(),
		Fold: func(_ string, _ string, n int64, _ bool) int64 { return n + 1 },
	}
	if err := a.Init(&ctx, joinStores{task, 1 << 20}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Record[string, string]{{Key: "a", Time: 10}, {Key: "a", Time: 5}, {Key: "b", Time: 7}, {Key: "a", Time: 12}} {
		if err := a.Process(&ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	type row struct {
		N  int64
		TS int64
		OK bool
	}
	reader := a.Reader(Latest)
	var got []row
	for _, k := range []string{"a", "b", "c"} {
		n, ts, ok, err := reader.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, row{n, ts, ok})
	}
	want := []row{{3, 12, true}, {1, 7, true}, {0, 0, false}}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestTableJoinReaderError checks that a failing lookup names the join.
func TestTableJoinReaderError(t *testing.T) {
	j := &TableJoin[string, string, string, string]{
		Name: "j", LeftTable: failingReader{}, RightTable: failingReader{},
		Joiner: func(string, string, bool, string, bool) string { return "" },
	}
	err := j.Right().Process(&Context{}, Record[string, Change[string]]{Key: "k"})
	if err == nil || err.Error() != "operator j: left table: store t: broken" {
		t.Errorf("error = %v, want operator j: left table: store t: broken", err)
	}
	st := &StreamTableJoin[string, string, string, string]{Name: "st", Table: failingReader{}}
	err = st.Process(&Context{}, Record[string, string]{Key: "k"})
	if err == nil || err.Error() != "operator st: store t: broken" {
		t.Errorf("error = %v, want operator st: store t: broken", err)
	}
}

type failingReader struct{}

func (failingReader) Get(string) (string, int64, bool, error) {
	return "", 0, false, fmt.Errorf("store t: broken")
}

// TestTableJoinCachedConsistency runs random updates of cached tables
// through a table-table join, flushing at random points. A cached table
// forwards only its net changes, at flushes, so the output cannot follow
// the model update by update; instead, after every flush, the result
// table (the emitted changes applied in order) must equal the model's
// join of both tables, and every emitted Old must be exactly the value
// last emitted for its key (or none), so a downstream aggregation can
// subtract it. Reading the other table through its cache instead of as
// it was forwarded breaks both.
func TestTableJoinCachedConsistency(t *testing.T) {
	for i := range 30 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 5))
			kind := []string{"inner", "left", "outer"}[r.IntN(3)]
			cache := []int{64, 1 << 20}[r.IntN(2)]
			t.Logf("kind=%s cache=%d", kind, cache)
			h := newTableJoinHarness(t, kind, cache)
			m := newTableJoinModel(kind)
			table := map[string]string{} // key -> last emitted value
			seen := 0
			ts := int64(0)
			flushes := 0
			for seq := range 300 + r.IntN(300) {
				side, key, value, del, rts := randomTableOp(r, &ts, seq)
				m.update(side, key, value, del, rts)
				h.update(side, key, value, del, rts)
				if r.IntN(8) != 0 {
					continue
				}
				h.flush()
				flushes++
				for _, line := range h.changes[seen:] {
					f := strings.Fields(line) // key new old time
					k, nv, ov := f[0], f[1], f[2]
					if last, ok := table[k]; ov != "<nil>" && (!ok || last != ov) || ov == "<nil>" && ok {
						t.Fatalf("after update %d: change %q: old %s, but the last value emitted for %s was %q (emitted: %v)", seq, line, ov, k, last, ok)
					}
					if nv == "<nil>" {
						delete(table, k)
					} else {
						table[k] = nv
					}
				}
				seen = len(h.changes)
				want := map[string]string{}
				for k := range 5 {
					key := fmt.Sprintf("k%d", k)
					if v, _, ok := m.result(key); ok {
						want[key] = v
					}
				}
				if diff := gocmp.Diff(want, table); diff != "" {
					t.Fatalf("after flush at update %d, result table (-model +join):\n%s", seq, diff)
				}
				if r.IntN(10) == 0 {
					h.restart()
				}
			}
			if flushes == 0 {
				t.Skip("no flush drawn")
			}
		})
	}
}
