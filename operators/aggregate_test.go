package operators

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

// waggWindow is a window of one key.
type waggWindow struct {
	Start int64
	Key   string
}

// waggRow is a window's aggregate and the largest time folded into it.
type waggRow struct {
	Agg  string
	Time int64
}

// waggOut is one result: the new value of a window and the value it
// replaced ("null" for none), stamped Time.
type waggOut struct {
	Window   waggWindow
	New, Old string
	Time     int64
}

func (o waggOut) String() string {
	return fmt.Sprintf("%s@%d %s (old %s) t=%d", o.Window.Key, o.Window.Start, o.New, o.Old, o.Time)
}

func waggLines(outs []waggOut) []string {
	lines := make([]string, len(outs))
	for i, o := range outs {
		lines[i] = o.String()
	}
	return lines
}

// waggFold folds like Kafka Streams' test aggregator: "0", then "+v" per
// value, so that a result shows which values went in, in order.
func waggFold(_ string, v string, agg string, found bool) string {
	if !found {
		agg = "0"
	}
	return agg + "+" + v
}

// waggHarness runs a WindowAggregate of string values on an in-memory
// state DB as a task would, capturing its changelog so that it can also
// be restored on a new DB.
type waggHarness struct {
	t     *testing.T
	spec  window.Spec
	final bool
	// retention is the operator's RetentionMs.
	retention int64
	cache     int

	db        *state.DB
	task      *state.Task
	w         *WindowAggregate[string, string, string]
	ctx       Context
	changelog []state.ChangelogRecord
	committed int
	restoring bool

	out   []waggOut
	late  []string // records written to the late topic: "key value time"
	nlate int      // records counted late
}

const waggStore = "w-store"

func newWaggHarness(t *testing.T, spec window.Spec, final bool, cache int) *waggHarness {
	return newWaggHarnessRetention(t, spec, final, cache, 0)
}

// newWaggHarnessRetention is newWaggHarness with the operator's
// RetentionMs set.
func newWaggHarnessRetention(t *testing.T, spec window.Spec, final bool, cache int, retention int64) *waggHarness {
	h := &waggHarness{t: t, spec: spec, final: final, cache: cache, retention: retention}
	h.openDB()
	h.open()
	t.Cleanup(func() { h.db.Close() })
	return h
}

func (h *waggHarness) openDB() {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		h.t.Fatal(err)
	}
	h.db = db
}

type waggCollector struct{ h *waggHarness }

func (c waggCollector) Process(_ *Context, r Record[window.Windowed[string], Change[string]]) error {
	if r.Key.End != r.Key.Start+c.h.spec.SizeMs() {
		c.h.t.Errorf("window %+v: end is not start+size", r.Key)
	}
	o := waggOut{Window: waggWindow{r.Key.Start, r.Key.Key}, New: "null", Old: "null", Time: r.Time}
	if r.Value.HasNew {
		o.New = r.Value.New
	}
	if r.Value.HasOld {
		o.Old = r.Value.Old
	}
	c.h.out = append(c.h.out, o)
	return nil
}

// Window implements Stores, capturing the changelog and restoring the
// committed part of it when restoring.
func (h *waggHarness) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	cfg.CacheBytes = h.cache
	cfg.Changelog = func(k, v []byte) {
		rec := state.ChangelogRecord{Key: slices.Clone(k)}
		if v != nil {
			rec.Value = append([]byte{}, v...)
		}
		h.changelog = append(h.changelog, rec)
	}
	ws, err := h.task.Window(name, 0, cfg)
	if err != nil || !h.restoring {
		return ws, err
	}
	return ws, ws.Restore(h.changelog[:h.committed], int64(h.committed))
}

// KV implements Stores; the operator has no key-value store.
func (h *waggHarness) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	return nil, fmt.Errorf("unexpected key-value store %s", name)
}

func (h *waggHarness) open() {
	h.task = h.db.NewTask("0_0")
	h.ctx = Context{
		Logger:     hclog.NewNullLogger(),
		Send:       func(r RawRecord) { h.late = append(h.late, fmt.Sprintf("%s %s %d", r.Key, r.Value, r.Timestamp)) },
		Partitions: func(string) int32 { return 1 },
		Late: func(op string) {
			if op != "w" {
				h.t.Errorf("late record counted for operator %q", op)
			}
			h.nlate++
		},
	}
	h.w = &WindowAggregate[string, string, string]{
		Name: "w", Store: waggStore, Spec: h.spec, EmitFinal: h.final, RetentionMs: h.retention,
		KeySerde: serde.String(), AggSerde: serde.String(), Fold: waggFold,
		Out:  Downstream[window.Windowed[string], Change[string]]{waggCollector{h}},
		Late: &LateRecords[string, string]{Topic: "late", KeySerde: serde.String(), ValueSerde: serde.String()},
	}
	if err := h.w.Init(&h.ctx, h); err != nil {
		h.t.Fatal(err)
	}
}

func (h *waggHarness) commit() {
	if err := h.task.Flush(); err != nil {
		h.t.Fatal(err)
	}
	h.committed = len(h.changelog)
	if err := h.task.Commit(map[string]int64{waggStore: int64(h.committed)}); err != nil {
		h.t.Fatal(err)
	}
}

// restart commits and builds the operator again on the same DB.
func (h *waggHarness) restart() {
	h.commit()
	if err := h.task.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

// restore commits and builds the operator again on a new DB restored
// from the committed changelog.
func (h *waggHarness) restore() {
	h.commit()
	if err := h.task.Close(); err != nil {
		h.t.Fatal(err)
	}
	if err := h.db.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.openDB()
	h.restoring = true
	h.open()
	h.restoring = false
}

func (h *waggHarness) push(key, value string, ts int64) {
	h.t.Helper()
	if err := h.w.Process(&h.ctx, Record[string, string]{Key: key, Value: value, Time: ts}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *waggHarness) finish() {
	h.t.Helper()
	if err := h.w.Finish(&h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

// stored returns the windows in the operator's store.
func (h *waggHarness) stored() map[waggWindow]waggRow {
	h.t.Helper()
	rows := map[waggWindow]waggRow{}
	err := h.w.store.Range(math.MinInt64, math.MaxInt64, func(key []byte, start int64, value []byte) error {
		ts, agg, err := decodeTimestamped(value, serde.String())
		rows[waggWindow{start, string(key)}] = waggRow{agg, ts}
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return rows
}

// waggModel computes a windowed aggregation naively from the rules of
// SEMANTICS-KS.md.
type waggModel struct {
	size, advance, grace int64
	// retention: a window is stored until stream-time >= start +
	// retention (Kafka Streams' window store retention).
	retention  int64
	final      bool
	streamTime int64
	open       map[waggWindow]waggRow
	// retained holds the closed windows still stored.
	retained map[waggWindow]waggRow
	out      []waggOut
	late     []string
}

func newWaggModel(spec window.Spec, final bool) *waggModel {
	return newWaggModelRetention(spec, final, 0)
}

// newWaggModelRetention models an operator with RetentionMs retention
// (0: size + grace).
func newWaggModelRetention(spec window.Spec, final bool, retention int64) *waggModel {
	if retention == 0 {
		retention = spec.SizeMs() + spec.GraceMs()
	}
	return &waggModel{
		size: spec.SizeMs(), advance: spec.AdvanceMs(), grace: spec.GraceMs(), final: final,
		retention: retention, streamTime: math.MinInt64,
		open: map[waggWindow]waggRow{}, retained: map[waggWindow]waggRow{},
	}
}

// expired tells whether the window starting at start is past its
// retention.
func (m *waggModel) expired(start int64) bool {
	return m.streamTime != math.MinInt64 && start+m.retention <= m.streamTime
}

// stored returns the windows the store should hold: open and retained.
func (m *waggModel) stored() map[waggWindow]waggRow {
	rows := maps.Clone(m.open)
	maps.Copy(rows, m.retained)
	return rows
}

// starts returns, ascending, the start of every window [s, s+size) with s
// a non-negative multiple of the advance and s <= t < s+size (rule 1),
// by trying every s that could hold t.
func (m *waggModel) starts(t int64) []int64 {
	var starts []int64
	for s := max(0, t-m.size+1); s <= t; s++ {
		if s%m.advance == 0 {
			starts = append(starts, s)
		}
	}
	return starts
}

func (m *waggModel) closed(start int64) bool {
	// Rule 4: open while end + grace > stream-time.
	return start+m.size+m.grace <= m.streamTime
}

func (m *waggModel) process(key, value string, t int64) {
	m.streamTime = max(m.streamTime, t)
	late := false
	for _, s := range m.starts(t) { // ascending: rule 2
		if m.closed(s) {
			late = true // rule 5: this window only
			continue
		}
		w := waggWindow{s, key}
		row, found := m.open[w]
		old := "null"
		if found {
			old = row.Agg
		} else {
			row.Time = t
		}
		row.Agg = waggFold(key, value, row.Agg, found)
		row.Time = max(row.Time, t) // rule 3
		m.open[w] = row
		if !m.final {
			m.out = append(m.out, waggOut{w, row.Agg, old, row.Time})
		}
	}
	if late {
		m.late = append(m.late, fmt.Sprintf("%s %s %d", key, value, t))
	}
	m.close(m.closed)
}

// close removes the windows that are due, emitting them first in
// emit-final mode: ordered by start, then key (rules 6 and 7).
func (m *waggModel) close(due func(start int64) bool) {
	var done []waggWindow
	for w := range m.open {
		if due(w.Start) {
			done = append(done, w)
		}
	}
	slices.SortFunc(done, func(a, b waggWindow) int {
		return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.Key, b.Key))
	})
	for _, w := range done {
		row := m.open[w]
		if m.final {
			m.out = append(m.out, waggOut{w, row.Agg, "null", row.Time})
		}
		delete(m.open, w)
		m.retained[w] = row
	}
	maps.DeleteFunc(m.retained, func(w waggWindow, _ waggRow) bool { return m.expired(w.Start) })
}

// finish closes and deletes every window, as at the end of bounded input.
func (m *waggModel) finish() {
	m.close(func(int64) bool { return true })
	clear(m.retained)
}

// TestWindowAggregateModel runs random records, in and out of order and
// some late, through WindowAggregate and the naive model, with tumbling
// and hopping windows, grace, both emit modes, cache sizes, restarts and
// restores. It compares the results in order (exactly, except that a
// cache in update mode may skip intermediate updates), the late records,
// and after every few records the store's contents: exactly the windows
// still open or within their retention (random, at least size + grace,
// half the time the default), so that closed windows do not accumulate.
func TestWindowAggregateModel(t *testing.T) {
	for i := range 40 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 3))
			size := 1 + r.Int64N(40)
			spec := window.Tumbling(time.Duration(size) * time.Millisecond)
			if r.IntN(2) == 0 {
				spec = window.Hopping(time.Duration(size)*time.Millisecond, time.Duration(1+r.Int64N(size))*time.Millisecond)
			}
			grace := []int64{0, 0, r.Int64N(20), r.Int64N(200)}[r.IntN(4)]
			spec = spec.Grace(time.Duration(grace) * time.Millisecond)
			final := r.IntN(2) == 0
			cache := []int{0, 0, 64, 1 << 20}[r.IntN(4)]
			var retention int64
			if r.IntN(2) == 0 {
				retention = size + grace + []int64{0, r.Int64N(size + grace + 1), r.Int64N(300)}[r.IntN(3)]
			}
			t.Logf("%s final=%v cache=%d retention=%d", spec, final, cache, retention)

			h := newWaggHarnessRetention(t, spec, final, cache, retention)
			m := newWaggModelRetention(spec, final, retention)
			ts := []int64{0, 1000}[r.IntN(2)]
			for n := range 200 + r.IntN(400) {
				ts += r.Int64N(5)
				rts := ts
				if r.IntN(4) == 0 {
					rts -= r.Int64N(size + grace + 20) // out of order, sometimes late
				}
				key := fmt.Sprintf("k%d", r.IntN(4))
				val := fmt.Sprintf("v%d", n)
				m.process(key, val, rts)
				h.push(key, val, rts)
				switch r.IntN(100) {
				case 0:
					h.restart()
				case 1:
					h.restore()
				case 2, 3, 4, 5, 6, 7:
					if diff := gocmp.Diff(m.stored(), h.stored()); diff != "" {
						t.Fatalf("after record %d: stored windows (-model +store):\n%s", n, diff)
					}
				}
			}
			if diff := gocmp.Diff(m.stored(), h.stored()); diff != "" {
				t.Fatalf("stored windows (-model +store):\n%s", diff)
			}
			m.finish()
			h.finish()
			if n := len(h.stored()); n != 0 {
				t.Errorf("%d windows stored after Finish, want 0", n)
			}
			if !final && cache > 0 {
				checkThrottled(t, m.out, h.out)
			} else if diff := gocmp.Diff(waggLines(m.out), waggLines(h.out)); diff != "" {
				t.Fatalf("results (-model +operator):\n%s", diff)
			}
			if diff := gocmp.Diff(m.late, h.late); diff != "" {
				t.Errorf("late records (-model +operator):\n%s", diff)
			}
			if h.nlate != len(m.late) {
				t.Errorf("%d records counted late, want %d", h.nlate, len(m.late))
			}
		})
	}
}

// checkThrottled checks the updates of a cached operator in update mode
// against the model's every update: per window, the operator's updates
// must be some of the model's, in order, ending with the final one; each
// update's old value is the previous update forwarded.
func checkThrottled(t *testing.T, model, got []waggOut) {
	t.Helper()
	perWindow := func(outs []waggOut) map[waggWindow][]waggOut {
		m := map[waggWindow][]waggOut{}
		for _, o := range outs {
			m[o.Window] = append(m[o.Window], o)
		}
		return m
	}
	want, have := perWindow(model), perWindow(got)
	windows := func(m map[waggWindow][]waggOut) map[waggWindow]bool {
		set := map[waggWindow]bool{}
		for w := range m {
			set[w] = true
		}
		return set
	}
	if diff := gocmp.Diff(windows(want), windows(have)); diff != "" {
		t.Fatalf("windows updated (-model +operator):\n%s", diff)
	}
	for w, ws := range want {
		hs := have[w]
		if hs[len(hs)-1].New != ws[len(ws)-1].New || hs[len(hs)-1].Time != ws[len(ws)-1].Time {
			t.Errorf("window %v: last update %v, want %v", w, hs[len(hs)-1], ws[len(ws)-1])
		}
		j, old := 0, "null"
		for _, o := range hs {
			for j < len(ws) && (ws[j].New != o.New || ws[j].Time != o.Time) {
				j++
			}
			if j == len(ws) {
				t.Errorf("window %v: update %v is not one of the model's, in order:\n%s", w, o, waggLines(ws))
				break
			}
			if o.Old != old {
				t.Errorf("window %v: update %v: old value %q, want the previous update %q", w, o, o.Old, old)
			}
			old = o.New
		}
	}
}

// TestWindowAggregateCases checks hand-made cases of the rules, each
// small enough to read: the model test's reference is checked by these.
func TestWindowAggregateCases(t *testing.T) {
	type rec struct {
		key string
		t   int64
	}
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	tests := []struct {
		name  string
		spec  window.Spec
		final bool
		in    []rec
		want  []string
		late  []string
	}{
		{
			name: "rule 1: tumbling boundaries",
			spec: window.Tumbling(ms(10)),
			in:   []rec{{"a", 0}, {"a", 9}, {"a", 10}},
			want: []string{"a@0 0+v0 (old null) t=0", "a@0 0+v0+v1 (old 0+v0) t=9", "a@10 0+v2 (old null) t=10"},
		},
		{
			name: "rules 1 and 2: hopping, no negative window, ascending starts",
			spec: window.Hopping(ms(10), ms(5)),
			in:   []rec{{"a", 3}, {"a", 7}},
			want: []string{"a@0 0+v0 (old null) t=3", "a@0 0+v0+v1 (old 0+v0) t=7", "a@5 0+v1 (old null) t=7"},
		},
		{
			name: "rule 3: output time is the window's max input time",
			spec: window.Tumbling(ms(10)).Grace(ms(5)),
			in:   []rec{{"a", 8}, {"a", 2}},
			want: []string{"a@0 0+v0 (old null) t=8", "a@0 0+v0+v1 (old 0+v0) t=8"},
		},
		{
			name: "rule 4: closed at end+grace == stream-time",
			spec: window.Tumbling(ms(10)).Grace(ms(5)),
			in:   []rec{{"a", 14}, {"a", 1}, {"b", 15}, {"a", 2}},
			want: []string{"a@10 0+v0 (old null) t=14", "a@0 0+v1 (old null) t=1", "b@10 0+v2 (old null) t=15"},
			late: []string{"a v3 2"},
		},
		{
			name: "rule 5: late for one hopping window, counted in the next",
			spec: window.Hopping(ms(10), ms(5)),
			in:   []rec{{"a", 12}, {"a", 8}},
			want: []string{"a@5 0+v0 (old null) t=12", "a@10 0+v0 (old null) t=12", "a@5 0+v0+v1 (old 0+v0) t=12"},
			late: []string{"a v1 8"},
		},
		{
			name:  "rules 6 and 7: emit final by start then key, Finish the rest",
			spec:  window.Hopping(ms(10), ms(5)),
			final: true,
			in:    []rec{{"b", 6}, {"a", 7}, {"a", 14}, {"c", 15}},
			want: []string{
				"a@0 0+v1 (old null) t=7", "b@0 0+v0 (old null) t=6", // closed by a@14
				"a@5 0+v1+v2 (old null) t=14", "b@5 0+v0 (old null) t=6", // closed by c@15
				"a@10 0+v2 (old null) t=14", "c@10 0+v3 (old null) t=15", "c@15 0+v3 (old null) t=15", // Finish
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newWaggHarness(t, tc.spec, tc.final, 0)
			m := newWaggModel(tc.spec, tc.final)
			for i, r := range tc.in {
				v := fmt.Sprintf("v%d", i)
				h.push(r.key, v, r.t)
				m.process(r.key, v, r.t)
			}
			h.finish()
			m.finish()
			if diff := gocmp.Diff(tc.want, waggLines(h.out)); diff != "" {
				t.Errorf("operator results (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.want, waggLines(m.out)); diff != "" {
				t.Errorf("model results (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.late, h.late); diff != "" {
				t.Errorf("operator late records (-want +got):\n%s", diff)
			}
		})
	}
}

// TestWindowAggregateExtremeTimes checks records far from the usual
// times: a very negative time lands in no window (rule 1) without
// walking up to 0, a window that would end past math.MaxInt64 is not
// created, and a first record at math.MinInt64 does not make stream-time
// minus grace wrap around (which would stop windows from ever closing).
// Each case runs under a deadline, as a mistake here loops for hours.
func TestWindowAggregateExtremeTimes(t *testing.T) {
	ms := func(n int64) time.Duration { return time.Duration(n) * time.Millisecond }
	type rec struct {
		key string
		t   int64
	}
	tests := []struct {
		name string
		spec window.Spec
		in   []rec
		want []string
		late []string
	}{
		{
			name: "tumbling, very negative and near the end of time",
			spec: window.Tumbling(ms(10)).Grace(ms(5)),
			in:   []rec{{"a", -1e15}, {"a", 5}, {"a", math.MaxInt64 - 20}, {"a", math.MaxInt64}, {"a", 7}},
			want: []string{
				"a@0 0+v1 (old null) t=5",
				"a@9223372036854775780 0+v2 (old null) t=9223372036854775787",
			},
			late: []string{"a v4 7"},
		},
		{
			name: "hopping, very negative and near the end of time",
			spec: window.Hopping(ms(10), ms(5)),
			in:   []rec{{"a", -1e12}, {"b", 3}, {"a", math.MaxInt64 - 6}, {"a", math.MaxInt64 - 2}},
			want: []string{
				"b@0 0+v1 (old null) t=3",
				"a@9223372036854775795 0+v2 (old null) t=9223372036854775801",
			},
		},
		{
			name: "first record at the start of time, large grace",
			spec: window.Tumbling(ms(10)).Grace(ms(1000)),
			in:   []rec{{"a", math.MinInt64}, {"a", 5}, {"a", 1010}},
			want: []string{"a@0 0+v1 (old null) t=5", "a@1010 0+v2 (old null) t=1010"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newWaggHarness(t, tc.spec, true, 0)
			done := make(chan error, 1)
			go func() {
				for i, r := range tc.in {
					if err := h.w.Process(&h.ctx, Record[string, string]{Key: r.key, Value: fmt.Sprintf("v%d", i), Time: r.t}); err != nil {
						done <- err
						return
					}
				}
				done <- h.w.Finish(&h.ctx)
			}()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("still processing after 10s")
			}
			if diff := gocmp.Diff(tc.want, waggLines(h.out)); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
			if diff := gocmp.Diff(tc.late, h.late); diff != "" {
				t.Errorf("late records (-want +got):\n%s", diff)
			}
		})
	}
}
