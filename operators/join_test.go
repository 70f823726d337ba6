package operators

import (
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

var joinTimes = []int64{math.MinInt64, math.MinInt64 + 1, -1001, -1, 0, 1, 999, 1000, math.MaxInt64 - 1, math.MaxInt64}

func TestJoinTimeEncodingOrder(t *testing.T) {
	for i, a := range joinTimes {
		ea := appendJoinTime(nil, a)
		if got := decodeJoinTime(ea); got != a {
			t.Errorf("decode(encode(%d)) = %d", a, got)
		}
		for _, b := range joinTimes[i+1:] {
			if bytes.Compare(ea, appendJoinTime(nil, b)) >= 0 {
				t.Errorf("encode(%d) does not sort before encode(%d)", a, b)
			}
		}
	}
}

func TestSideKey(t *testing.T) {
	keys := [][]byte{{}, []byte("A"), []byte("AA"), []byte("A\x00"), bytes.Repeat([]byte{0xff}, 200)}
	for _, seg := range []int64{math.MinInt64, -1, 0, 1, math.MaxInt64} {
		for _, key := range keys {
			for _, ts := range joinTimes {
				k := appendSideKey(nil, seg, key, ts)
				gs, gk, gt, err := decodeSideKey(k)
				if err != nil || gs != seg || !bytes.Equal(gk, key) || gt != ts {
					t.Errorf("decodeSideKey(appendSideKey(%d, %q, %d)) = %d, %q, %d, %v", seg, key, ts, gs, gk, gt, err)
				}
			}
		}
	}
	// The entries of one key in a segment are one contiguous range, in time
	// order, whatever other keys extend it.
	var all [][]byte
	for _, key := range keys {
		for _, ts := range joinTimes {
			all = append(all, appendSideKey(nil, 7, key, ts))
		}
	}
	slices.SortFunc(all, bytes.Compare)
	for _, key := range keys {
		lo := appendSideKey(nil, 7, key, math.MinInt64)
		hi := append(appendSideKey(nil, 7, key, math.MaxInt64), 0)
		var got []int64
		for _, k := range all {
			if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				_, gk, ts, _ := decodeSideKey(k)
				if !bytes.Equal(gk, key) {
					t.Errorf("range of key %q holds key %q", key, gk)
				}
				got = append(got, ts)
			}
		}
		if diff := gocmp.Diff(joinTimes, got); diff != "" {
			t.Errorf("times of key %q in range order (-want +got):\n%s", key, diff)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 16), append(appendJoinTime(nil, 0), 5, 'a', 0, 0, 0, 0, 0, 0, 0, 0)} {
		if _, _, _, err := decodeSideKey(bad); err == nil {
			t.Errorf("decodeSideKey(%x) succeeded", bad)
		}
	}
}

func TestHeldKeyOrder(t *testing.T) {
	type hk struct {
		t    int64
		side int
		key  string
	}
	// In emission order: time, then right before left, then key bytes.
	want := []hk{
		{math.MinInt64, joinLeft, ""},
		{-5, joinRight, "b"},
		{-5, joinLeft, ""},
		{-5, joinLeft, "a"},
		{-5, joinLeft, "a\x00"},
		{-5, joinLeft, "aa"},
		{-5, joinLeft, "b"},
		{0, joinRight, "z"},
		{0, joinLeft, "a"},
		{math.MaxInt64, joinRight, "a"},
		{math.MaxInt64, joinLeft, "a"},
	}
	var keys [][]byte
	for i := len(want) - 1; i >= 0; i-- {
		keys = append(keys, appendHeldKey(nil, want[i].t, want[i].side, []byte(want[i].key)))
	}
	slices.SortFunc(keys, bytes.Compare)
	var got []hk
	for _, k := range keys {
		ts, side, key, err := decodeHeldKey(k)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, hk{ts, side, string(key)})
	}
	if diff := gocmp.Diff(want, got, gocmp.AllowUnexported(hk{})); diff != "" {
		t.Errorf("held keys in byte order (-want +got):\n%s", diff)
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), append(make([]byte, 8), 2)} {
		if _, _, _, err := decodeHeldKey(bad); err == nil {
			t.Errorf("decodeHeldKey(%x) succeeded", bad)
		}
	}
}

func TestValueList(t *testing.T) {
	items := [][]byte{{}, []byte("x"), bytes.Repeat([]byte("y"), 300), {}}
	var list []byte
	for _, it := range items {
		list = appendListItem(list, it)
	}
	var got [][]byte
	if err := forEachListItem(list, func(it []byte) error { got = append(got, slices.Clone(it)); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := gocmp.Diff(items, got); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	for _, bad := range [][]byte{{5, 'a'}, {0x80}, list[:len(list)-2]} {
		if err := forEachListItem(bad, func([]byte) error { return nil }); err == nil {
			t.Errorf("forEachListItem(%x) succeeded", bad)
		}
	}
}

func TestJoinArithmetic(t *testing.T) {
	for _, tc := range []struct{ a, b, want int64 }{
		{-1, 1000, -1}, {-1000, 1000, -1}, {-1001, 1000, -2}, {0, 1000, 0}, {999, 1000, 0},
		{math.MinInt64, 1000, math.MinInt64/1000 - 1}, {math.MaxInt64, 1000, math.MaxInt64 / 1000},
	} {
		if got := floorDiv(tc.a, tc.b); got != tc.want {
			t.Errorf("floorDiv(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
	for _, tc := range []struct{ a, b, add, sub int64 }{
		{math.MaxInt64, 1, math.MaxInt64, math.MaxInt64 - 1},
		{math.MinInt64, -1, math.MinInt64, math.MinInt64 + 1},
		{math.MinInt64, 1, math.MinInt64 + 1, math.MinInt64},
		{0, math.MinInt64, math.MinInt64, math.MaxInt64},
		{-1, math.MinInt64, math.MinInt64, math.MaxInt64},
		{5, -7, -2, 12},
	} {
		if got := satAdd(tc.a, tc.b); got != tc.add {
			t.Errorf("satAdd(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.add)
		}
		if got := satSub(tc.a, tc.b); got != tc.sub {
			t.Errorf("satSub(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.sub)
		}
	}
	for _, tc := range []struct{ st, want int64 }{
		{math.MinInt64, math.MinInt64}, {math.MinInt64 + 19, math.MinInt64}, {math.MinInt64 + 20, math.MinInt64 + 1},
		{100, 81}, {math.MaxInt64, math.MaxInt64 - 19},
	} {
		if got := visibleFrom(tc.st, 20); got != tc.want {
			t.Errorf("visibleFrom(%d, 20) = %d, want %d", tc.st, got, tc.want)
		}
	}
}

// joinHarness runs a StreamJoin of string streams on an in-memory state
// DB, as a task would, recording its output as "key value time" lines.
type joinHarness struct {
	t     *testing.T
	db    *state.DB
	task  *state.Task
	j     *StreamJoin[string, string, string, string]
	ctx   Context
	out   []string
	cache int
	kind  string
	w     [3]int64 // before, after, grace
}

type joinStores struct {
	task  *state.Task
	cache int
}

func (s joinStores) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	cfg.CacheBytes = s.cache
	return s.task.KV(name, 0, cfg)
}

func (s joinStores) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	cfg.CacheBytes = s.cache
	return s.task.Window(name, 0, cfg)
}

func newJoinHarness(t *testing.T, kind string, before, after, grace int64, cache int) *joinHarness {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &joinHarness{t: t, db: db, cache: cache, kind: kind, w: [3]int64{before, after, grace}}
	h.open()
	return h
}

type joinCollector struct{ h *joinHarness }

func (c joinCollector) Process(_ *Context, r Record[string, string]) error {
	c.h.out = append(c.h.out, fmt.Sprintf("%s %s %d", r.Key, r.Value, r.Time))
	return nil
}

func (h *joinHarness) open() {
	h.task = h.db.NewTask("0_0")
	h.ctx = Context{Logger: hclog.NewNullLogger()}
	orNull := func(v string, ok bool) string {
		if !ok {
			return "null"
		}
		return v
	}
	h.j = &StreamJoin[string, string, string, string]{
		Name: "j", LeftStore: "j-left-store", RightStore: "j-right-store", HeldStore: "j-held-store",
		BeforeMs: h.w[0], AfterMs: h.w[1], GraceMs: h.w[2],
		LeftOuter: h.kind != "inner", RightOuter: h.kind == "outer",
		KeySerde: serde.String(), LeftSerde: serde.String(), RightSerde: serde.String(),
		Joiner: func(_ string, l string, lok bool, r string, rok bool) string {
			return orNull(l, lok) + "+" + orNull(r, rok)
		},
		Out: Downstream[string, string]{joinCollector{h}},
	}
	if err := h.j.Init(&h.ctx, joinStores{h.task, h.cache}); err != nil {
		h.t.Fatal(err)
	}
}

// restart commits, closes the task and builds the operator again from
// the committed state.
func (h *joinHarness) restart() {
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

func (h *joinHarness) push(side int, key, value string, ts int64) {
	h.t.Helper()
	var err error
	r := Record[string, string]{Key: key, Value: value, Time: ts}
	if side == joinLeft {
		err = h.j.Left().Process(&h.ctx, r)
	} else {
		err = h.j.Right().Process(&h.ctx, r)
	}
	if err != nil {
		h.t.Fatal(err)
	}
}

func (h *joinHarness) finish() {
	if err := h.j.Finish(&h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

// count returns the number of data entries of a store.
func count(t *testing.T, kv *state.KV) int {
	n := 0
	if err := kv.Range(nil, nil, func(_, _ []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestJoinExpiryBoundsState checks that side stores stay bounded: whole
// segments are deleted once the side's stream-time has passed them, and
// the held store is empty after Finish.
func TestJoinExpiryBoundsState(t *testing.T) {
	for _, cache := range []int{0, 1 << 20} {
		t.Run(fmt.Sprint(cache), func(t *testing.T) {
			// Retention 2s: segments of 2s.
			h := newJoinHarness(t, "outer", 500, 500, 1000, cache)
			maxLeft := 0
			for ts := int64(-20000); ts < 20000; ts += 10 {
				h.push(joinLeft, fmt.Sprintf("k%d", ts%7), "l", ts)
				if ts%30 == 0 {
					h.push(joinRight, fmt.Sprintf("k%d", ts%5), "r", ts)
				}
				if ts%1000 == 0 {
					maxLeft = max(maxLeft, count(t, h.j.sides[joinLeft].store))
				}
				if ts%7000 == 0 {
					h.restart()
				}
			}
			// 100 left records a second: at most retention plus a segment.
			if maxLeft > 400 {
				t.Errorf("left store peaked at %d entries, want at most 400", maxLeft)
			}
			if n := count(t, h.j.sides[joinRight].store); n > 400 {
				t.Errorf("right store holds %d entries at the end, want at most 400", n)
			}
			h.finish()
			if n := count(t, h.j.held); n != 0 {
				t.Errorf("held store holds %d entries after Finish", n)
			}
			if len(h.out) == 0 {
				t.Error("no output")
			}
		})
	}
}

// TestJoinExtremeTimes joins records at the ends of the int64 range,
// where the window bounds saturate.
func TestJoinExtremeTimes(t *testing.T) {
	h := newJoinHarness(t, "outer", 10, 10, 5, 0)
	h.push(joinLeft, "a", "l1", math.MinInt64)
	h.push(joinRight, "a", "r1", math.MinInt64+10)
	h.push(joinLeft, "a", "l2", -5)
	h.push(joinRight, "a", "r2", 3)
	h.push(joinLeft, "a", "l3", math.MaxInt64-1)
	h.push(joinRight, "a", "r3", math.MaxInt64)
	h.push(joinRight, "b", "r4", math.MaxInt64)
	h.finish()
	want := []string{
		fmt.Sprintf("a l1+r1 %d", int64(math.MinInt64+10)),
		"a l2+r2 3",
		fmt.Sprintf("a l3+r3 %d", int64(math.MaxInt64)),
		fmt.Sprintf("b null+r4 %d", int64(math.MaxInt64)),
	}
	if diff := gocmp.Diff(want, h.out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// joinModel is a naive stream-stream join following SEMANTICS-KS.md rules
// 19-30 literally: every record kept in a list, every step recomputed.
type joinModel struct {
	kind                 string
	before, after, grace int64
	recs                 [2][]modelRec
	st                   [2]int64
	held                 []modelRec
	seq                  int
	out                  []string
}

type modelRec struct {
	side     int
	key, val string
	t        int64
	seq      int
}

func (m *joinModel) outer(side int) bool {
	return m.kind == "outer" || (m.kind == "left" && side == joinLeft)
}

// look returns a side's look-back and look-ahead.
func (m *joinModel) look(side int) (int64, int64) {
	if side == joinLeft {
		return m.before, m.after
	}
	return m.after, m.before
}

func (m *joinModel) emit(r modelRec, other *modelRec) {
	l, rv := "null", "null"
	ts := r.t
	if other != nil {
		ts = max(ts, other.t)
		if r.side == joinLeft {
			rv = other.val
		} else {
			l = other.val
		}
	}
	if r.side == joinLeft {
		l = r.val
	} else {
		rv = r.val
	}
	m.out = append(m.out, fmt.Sprintf("%s %s+%s %d", r.key, l, rv, ts))
}

// emitHeld emits the held records for which due is true, in rule 26's order.
func (m *joinModel) emitHeld(due func(modelRec) bool) {
	slices.SortStableFunc(m.held, func(a, b modelRec) int {
		return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(b.side, a.side), strings.Compare(a.key, b.key), cmp.Compare(a.seq, b.seq))
	})
	var keep []modelRec
	for _, h := range m.held {
		if due(h) {
			m.emit(h, nil)
		} else {
			keep = append(keep, h)
		}
	}
	m.held = keep
}

func (m *joinModel) process(side int, key, val string, t int64) {
	m.seq++
	r := modelRec{side, key, val, t, m.seq}
	m.st[side] = max(m.st[side], t)
	now := max(m.st[0], m.st[1])
	retention := max(m.before+m.after+m.grace, 1)
	if t == now {
		m.emitHeld(func(h modelRec) bool {
			_, ahead := m.look(h.side)
			return now > h.t+ahead+m.grace
		})
	}
	o := 1 - side
	back, ahead := m.look(side)
	var matches []modelRec
	for _, x := range m.recs[o] {
		if x.key == key && x.t >= t-back && x.t <= t+ahead && x.t > m.st[o]-retention {
			matches = append(matches, x)
		}
	}
	slices.SortStableFunc(matches, func(a, b modelRec) int { return cmp.Compare(a.t, b.t) })
	for i := range matches {
		x := matches[i]
		m.held = slices.DeleteFunc(m.held, func(h modelRec) bool { return h.side == o && h.key == key && h.t == x.t })
		m.emit(r, &x)
	}
	if len(matches) == 0 && m.outer(side) {
		if t+ahead < now {
			m.emit(r, nil)
		} else {
			m.held = append(m.held, r)
		}
	}
	if t > m.st[side]-retention {
		m.recs[side] = append(m.recs[side], r)
	}
}

// TestStreamJoinModel runs random streams through the join and the naive
// model and compares the outputs in order, with random windows, cache
// sizes, restarts, and timestamps on both sides of zero.
func TestStreamJoinModel(t *testing.T) {
	for i := range 25 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 2))
			kind := []string{"inner", "left", "outer"}[r.IntN(3)]
			before, after := r.Int64N(30), r.Int64N(30)
			if r.IntN(4) == 0 {
				before = -r.Int64N(after + 1)
			}
			grace := []int64{0, 0, r.Int64N(20), r.Int64N(2000)}[r.IntN(4)]
			cache := []int{0, 64, 1 << 20}[r.IntN(3)]
			base := []int64{0, -1000, 1 << 40}[r.IntN(3)]
			t.Logf("kind=%s before=%d after=%d grace=%d cache=%d base=%d", kind, before, after, grace, cache, base)
			h := newJoinHarness(t, kind, before, after, grace, cache)
			m := &joinModel{kind: kind, before: before, after: after, grace: grace, st: [2]int64{math.MinInt64, math.MinInt64}}
			ts := base
			for range 300 + r.IntN(500) {
				ts += r.Int64N(5)
				rts := ts
				if r.IntN(5) == 0 {
					rts -= r.Int64N(80) // out of order, sometimes past retention
				}
				side := r.IntN(2)
				key := fmt.Sprintf("k%d", r.IntN(4))
				val := fmt.Sprintf("%c%d", "lr"[side], m.seq)
				m.process(side, key, val, rts)
				h.push(side, key, val, rts)
				if r.IntN(100) == 0 {
					h.restart()
				}
			}
			m.emitHeld(func(modelRec) bool { return true })
			h.finish()
			if diff := gocmp.Diff(m.out, h.out); diff != "" {
				t.Fatalf("output (-model +join):\n%s", diff)
			}
		})
	}
}

// TestJoinLateNotStored checks that a record past its side's retention
// still joins, is counted late, and is not stored.
func TestJoinLateNotStored(t *testing.T) {
	h := newJoinHarness(t, "inner", 10, 10, 0, 0)
	late := 0
	h.ctx.Late = func(op string) {
		if op != "j" {
			t.Errorf("late record counted for operator %q", op)
		}
		late++
	}
	h.push(joinRight, "a", "r1", 95)
	h.push(joinLeft, "a", "l1", 200)
	h.push(joinLeft, "a", "l2", 100)  // left retains t > 180: joins r1, not stored
	h.push(joinRight, "a", "r2", 100) // finds nothing: the left side retains t > 180
	want := []string{"a l2+r1 100"}
	if diff := gocmp.Diff(want, h.out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if late != 1 {
		t.Errorf("%d late records, want 1", late)
	}
}
