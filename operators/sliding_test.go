package operators

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

func TestSlidingIndexKey(t *testing.T) {
	keys := [][]byte{{}, []byte("A"), []byte("AA"), []byte("A\x00"), bytes.Repeat([]byte{0xff}, 200)}
	starts := []int64{math.MinInt64, -1, 0, 1, 9, 10, 1 << 40, math.MaxInt64}
	var all [][]byte
	for _, key := range keys {
		for _, s := range starts {
			k := appendSlidingIndexKey(nil, key, s)
			if got, err := slidingIndexStart(k); err != nil || got != s {
				t.Errorf("slidingIndexStart(appendSlidingIndexKey(%q, %d)) = %d, %v", key, s, got, err)
			}
			all = append(all, k)
		}
	}
	// One key's entries are one contiguous range, descending by start.
	slices.SortFunc(all, bytes.Compare)
	want := slices.Clone(starts)
	slices.Reverse(want)
	for _, key := range keys {
		lo := appendSlidingIndexKey(nil, key, math.MaxInt64)
		hi := append(appendSlidingIndexKey(nil, key, math.MinInt64), 0)
		var got []int64
		for _, k := range all {
			if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				s, _ := slidingIndexStart(k)
				got = append(got, s)
			}
		}
		if diff := gocmp.Diff(want, got); diff != "" {
			t.Errorf("starts of key %q in range order (-want +got):\n%s", key, diff)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), append(appendSlidingIndexKey(nil, []byte("A"), 0), 0)} {
		if _, err := slidingIndexStart(bad); err == nil {
			t.Errorf("slidingIndexStart(%x) succeeded", bad)
		}
	}
}

// slidingHarness runs a SlidingAggregate of strings on an in-memory state
// DB, as a task would. Values are folded as "a+b+c", in the order they
// were added, and outputs recorded as "key@start-end new old time", with
// "-" for a missing old value.
type slidingHarness struct {
	t         *testing.T
	db        *state.DB
	task      *state.Task
	a         *SlidingAggregate[string, string, string]
	ctx       Context
	spec      window.Spec
	final     bool
	cache     int
	retention int64 // the operator's RetentionMs
	out, late []string
}

type slidingStores struct {
	task  *state.Task
	cache int
}

func (s slidingStores) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	cfg.CacheBytes = s.cache
	return s.task.KV(name, 0, cfg)
}

func (s slidingStores) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	cfg.CacheBytes = s.cache
	return s.task.Window(name, 0, cfg)
}

func newSlidingHarness(t *testing.T, d, grace int64, final bool, cache int) *slidingHarness {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	spec := window.Sliding(time.Duration(d) * time.Millisecond).Grace(time.Duration(grace) * time.Millisecond)
	h := &slidingHarness{t: t, db: db, spec: spec, final: final, cache: cache}
	h.open()
	return h
}

type slidingCollector struct{ h *slidingHarness }

func (c slidingCollector) Process(_ *Context, r Record[window.Windowed[string], Change[string]]) error {
	if !r.Value.HasNew {
		c.h.t.Errorf("output without a new value: %+v", r)
	}
	old := "-"
	if r.Value.HasOld {
		old = r.Value.Old
	}
	k := r.Key
	c.h.out = append(c.h.out, fmt.Sprintf("%s@%d-%d %s %s %d", k.Key, k.Start, k.End, r.Value.New, old, r.Time))
	return nil
}

func (h *slidingHarness) open() {
	h.task = h.db.NewTask("0_0")
	h.ctx = Context{
		Logger:     hclog.NewNullLogger(),
		Late:       func(string) {},
		Partitions: func(string) int32 { return 1 },
		Send: func(r RawRecord) {
			h.late = append(h.late, fmt.Sprintf("%s %s %s %d", r.Topic, r.Key, r.Value, r.Timestamp))
		},
	}
	h.a = &SlidingAggregate[string, string, string]{
		Name: "s", Store: "s", IndexStore: "s-index", Spec: h.spec, EmitFinal: h.final,
		RetentionMs: h.retention, KeySerde: serde.String(), AggSerde: serde.String(),
		Fold: func(_ string, v string, agg string, found bool) string {
			if !found {
				return v
			}
			return agg + "+" + v
		},
		Out:  Downstream[window.Windowed[string], Change[string]]{slidingCollector{h}},
		Late: &LateRecords[string, string]{Topic: "late", KeySerde: serde.String(), ValueSerde: serde.String()},
	}
	if err := h.a.Init(&h.ctx, slidingStores{h.task, h.cache}); err != nil {
		h.t.Fatal(err)
	}
}

// restart commits, closes the task and builds the operator again from
// the committed state.
func (h *slidingHarness) restart() {
	h.t.Helper()
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

func (h *slidingHarness) push(key, value string, ts int64) {
	h.t.Helper()
	if err := h.a.Process(&h.ctx, Record[string, string]{Key: key, Value: value, Time: ts}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *slidingHarness) finish() {
	h.t.Helper()
	if err := h.a.Finish(&h.ctx); err != nil {
		h.t.Fatal(err)
	}
	if err := h.task.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// entries returns the windows of the aggregate store as "key@start", and
// checks that the index lists exactly them.
func (h *slidingHarness) entries() []string {
	h.t.Helper()
	var wins, idx []string
	err := h.a.store.Range(math.MinInt64, math.MaxInt64, func(key []byte, start int64, _ []byte) error {
		wins = append(wins, fmt.Sprintf("%s@%d", key, start))
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.a.index.Range(nil, nil, func(k, _ []byte) error {
		n, w := binary.Uvarint(k)
		start, err := slidingIndexStart(k)
		if err != nil {
			return err
		}
		idx = append(idx, fmt.Sprintf("%s@%d", k[w:w+int(n)], start))
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	slices.Sort(wins)
	slices.Sort(idx)
	if diff := gocmp.Diff(wins, idx); diff != "" {
		h.t.Fatalf("index and store disagree (-store +index):\n%s", diff)
	}
	return wins
}

// slidingWin is a window of the models: its values in fold order and
// the largest timestamp among them.
type slidingWin struct {
	vals  []string
	maxTs int64
}

func (w *slidingWin) String() string { return strings.Join(w.vals, "+") }

// slidingModel is Kafka Streams' KStreamSlidingWindowAggregate (4.0)
// transcribed onto in-memory maps: processReverse, processEarly and
// createWindows, with the windows' values as lists. It keeps every
// window forever, deletes nothing and knows nothing of stores, caches,
// encodings or restarts. It differs from Kafka Streams where eddy does
// (docs: a window that is both the previous record's right window and the
// new record's left window is forwarded once; a new window has no old
// value). Outputs are formatted as slidingHarness's.
type slidingModel struct {
	d, grace   int64
	final      bool
	streamTime int64
	closeTime  int64
	wins       map[string]map[int64]*slidingWin
	emitted    map[string]map[int64]bool
	out        []string
	late       []string // "late key value time", as the harness's late topic
	partial    bool     // some record was accepted and missed its left window
}

func newSlidingModel(d, grace int64, final bool) *slidingModel {
	return &slidingModel{d: d, grace: grace, final: final, streamTime: math.MinInt64, closeTime: math.MinInt64,
		wins: map[string]map[int64]*slidingWin{}, emitted: map[string]map[int64]bool{}}
}

func (m *slidingModel) line(key string, start int64, w *slidingWin, old *slidingWin) string {
	o := "-"
	if old != nil {
		o = old.String()
	}
	return fmt.Sprintf("%s@%d-%d %s %s %d", key, start, start+m.d, w, o, w.maxTs)
}

// put stores a window and, in update mode, forwards it.
func (m *slidingModel) put(key string, start int64, w, old *slidingWin) {
	m.wins[key][start] = w
	if !m.final {
		m.out = append(m.out, m.line(key, start, w, old))
	}
}

// update is updateWindowAndForward: fold v at t into base (nil: the
// initializer), if the window is open. create: the window is new.
func (m *slidingModel) update(key string, start int64, base *slidingWin, create bool, t int64, v string) {
	if start+m.d < m.closeTime {
		return
	}
	w := &slidingWin{maxTs: t}
	if base != nil {
		w.vals, w.maxTs = slices.Clone(base.vals), max(t, base.maxTs)
	}
	w.vals = append(w.vals, v)
	old := base
	if create {
		old = nil
	}
	m.put(key, start, w, old)
}

// starts returns the key's window starts in [lo, hi], ascending.
func (m *slidingModel) starts(key string, lo, hi int64) []int64 {
	var s []int64
	for start := range m.wins[key] {
		if lo <= start && start <= hi {
			s = append(s, start)
		}
	}
	slices.Sort(s)
	return s
}

// class tells what a record at t would be now: "drop", "partial" (added
// to some windows, its left window closed) or "ok".
func (m *slidingModel) class(t int64) string {
	c := max(m.streamTime, t) - m.grace
	switch {
	case t+m.d < c:
		return "drop"
	case max(t, m.d) < c:
		return "partial"
	}
	return "ok"
}

func (m *slidingModel) process(key, v string, t int64) {
	if t < 0 {
		return
	}
	class := m.class(t)
	m.streamTime = max(m.streamTime, t)
	m.closeTime = m.streamTime - m.grace
	if class == "drop" {
		m.late = append(m.late, fmt.Sprintf("late %s %s %d", key, v, t))
		return
	}
	if m.wins[key] == nil {
		m.wins[key] = map[int64]*slidingWin{}
	}
	if t < m.d {
		m.processEarly(key, v, t)
	} else {
		m.processReverse(key, v, t)
	}
	if class == "partial" {
		m.partial = true
		m.late = append(m.late, fmt.Sprintf("late %s %s %d", key, v, t))
	}
	m.emitClosed(m.closeTime - m.d)
}

func (m *slidingModel) processReverse(key, v string, t int64) {
	d := m.d
	starts := m.starts(key, max(0, t-2*d), t+1)
	slices.Reverse(starts)
	var leftAgg, rightAgg *slidingWin
	var leftDone, rightDone bool
	var prev *int64
	visited := map[int64]bool{}
loop:
	for _, start := range starts {
		visited[start] = true
		w := m.wins[key][start]
		switch end := start + d; {
		case start == t+1:
			rightDone = true
		case end > t:
			if rightAgg == nil {
				rightAgg = w
			}
			m.update(key, start, w, false, t, v)
		case end == t:
			leftDone = true
			m.update(key, start, w, false, t, v)
			if w.maxTs >= t {
				return
			}
			p := w.maxTs
			prev = &p
		default:
			leftAgg = w
			p := w.maxTs
			prev = &p
			break loop
		}
	}
	if prev != nil {
		ps := *prev + 1
		// Kafka Streams forwards the window twice when ps == t-d; eddy once.
		if !visited[ps] && ps+d >= t && ps != t-d {
			m.update(key, ps, nil, true, t, v)
		}
	}
	if !leftDone {
		if prev != nil && t-d <= *prev {
			m.update(key, t-d, leftAgg, true, t, v)
		} else {
			m.update(key, t-d, nil, true, t, v)
		}
	}
	if !rightDone && rightAgg != nil && rightAgg.maxTs > t {
		m.put(key, t+1, rightAgg, nil)
	}
}

func (m *slidingModel) processEarly(key, v string, t int64) {
	var combined, rightAgg *slidingWin
	var rightDone bool
	var prev *int64
	visited := map[int64]bool{}
	for _, start := range m.starts(key, 0, t+1) {
		visited[start] = true
		w := m.wins[key][start]
		switch {
		case start == 0:
			combined = w
			if w.maxTs < t {
				p := w.maxTs
				prev = &p
			}
		case start <= t:
			rightAgg = w
			m.update(key, start, w, false, t, v)
		case start == t+1:
			rightDone = true
		}
	}
	if rightAgg == nil && combined != nil && combined.maxTs > t {
		rightAgg = combined
	}
	if !rightDone && rightAgg != nil && rightAgg.maxTs > t {
		m.put(key, t+1, rightAgg, nil)
	}
	if prev != nil && !visited[*prev+1] {
		m.update(key, *prev+1, nil, true, t, v)
	}
	m.update(key, 0, combined, combined == nil, t, v)
}

// emitClosed emits, in emit-final mode, the windows starting before
// before not emitted yet, in start then key order.
func (m *slidingModel) emitClosed(before int64) {
	if !m.final {
		return
	}
	type wk struct {
		start int64
		key   string
	}
	var due []wk
	for key, ws := range m.wins {
		for start := range ws {
			if start < before && !m.emitted[key][start] {
				due = append(due, wk{start, key})
			}
		}
	}
	slices.SortFunc(due, func(a, b wk) int {
		return cmp.Or(cmp.Compare(a.start, b.start), strings.Compare(a.key, b.key))
	})
	for _, w := range due {
		if m.emitted[w.key] == nil {
			m.emitted[w.key] = map[int64]bool{}
		}
		m.emitted[w.key][w.start] = true
		m.out = append(m.out, m.line(w.key, w.start, m.wins[w.key][w.start], nil))
	}
}

func (m *slidingModel) finish() { m.emitClosed(math.MaxInt64) }

// slidingRec is an input record of the ideal model.
type slidingRec struct {
	key, val string
	t        int64
}

// slidingIdeal computes sliding windows from their definition (rules 8
// and 9) over the accepted records, in arrival order: the left window of
// every record ([0, d] for t < d) and the right window [r+1, r+1+d] of
// every record r that holds a record, each with the values of the
// records it contains, in arrival order. It holds for inputs where no
// accepted record missed a window (then every accepted record is in
// every window containing it).
func slidingIdeal(recs []slidingRec, d int64) map[string]map[int64]*slidingWin {
	starts := map[string]map[int64]bool{}
	for _, r := range recs {
		if starts[r.key] == nil {
			starts[r.key] = map[int64]bool{}
		}
		starts[r.key][max(0, r.t-d)] = true
		for _, o := range recs {
			if o.key == r.key && r.t < o.t && o.t <= r.t+1+d {
				starts[r.key][r.t+1] = true
			}
		}
	}
	out := map[string]map[int64]*slidingWin{}
	for key, ss := range starts {
		out[key] = map[int64]*slidingWin{}
		for s := range ss {
			w := &slidingWin{maxTs: math.MinInt64}
			for _, r := range recs {
				if r.key == key && s <= r.t && r.t <= s+d {
					w.vals = append(w.vals, r.val)
					w.maxTs = max(w.maxTs, r.t)
				}
			}
			out[key][s] = w
		}
	}
	return out
}

// slidingIdealUpdates returns the updates forwarded for the record last
// of recs (accepted, missing no window), as slidingIdeal defines the
// windows before and after it, in Kafka Streams' order: for t >= d, the
// existing windows containing t from the latest start down, then the
// previous record's new right window, t's new left window and t's new
// right window; for t < d, the existing windows containing t with a start
// above 0 from the earliest, then t's new right window, the previous
// record's new right window, and [0, d] last.
func slidingIdealUpdates(t *testing.T, recs []slidingRec, d int64) []string {
	t.Helper()
	r := recs[len(recs)-1]
	// Only the key's records near t make or fill the windows r touches.
	var near []slidingRec
	for _, o := range recs {
		if o.key == r.key && r.t-3*d-3 <= o.t && o.t <= r.t+3*d+3 {
			near = append(near, o)
		}
	}
	before := slidingIdeal(near[:len(near)-1], d)[r.key]
	after := slidingIdeal(near, d)[r.key]
	var existing []int64
	for s := range before {
		if s <= r.t && r.t <= s+d {
			existing = append(existing, s)
		}
	}
	slices.Sort(existing)
	var order []int64
	add := func(s int64, always bool) {
		_, old := before[s]
		if _, ok := after[s]; ok && (always || !old) && !slices.Contains(order, s) {
			order = append(order, s)
		}
	}
	var prev []int64 // the latest earlier record of the key, if any
	for _, o := range near[:len(near)-1] {
		if o.t < r.t && (prev == nil || o.t > prev[0]) {
			prev = []int64{o.t}
		}
	}
	if r.t >= d {
		slices.Reverse(existing)
		order = existing
		for _, p := range prev {
			add(p+1, false)
		}
		add(r.t-d, false)
		add(r.t+1, false)
	} else {
		for _, s := range existing {
			if s > 0 {
				order = append(order, s)
			}
		}
		add(r.t+1, false)
		for _, p := range prev {
			add(p+1, false)
		}
		add(0, true)
	}
	for s := range after {
		if _, old := before[s]; !old && !slices.Contains(order, s) {
			t.Fatalf("ideal model: record %+v creates window %d, neither its own nor its predecessor's", r, s)
		}
	}
	m := &slidingModel{d: d}
	var out []string
	for _, s := range order {
		var old *slidingWin
		if w, ok := before[s]; ok {
			old = w
		}
		out = append(out, m.line(r.key, s, after[s], old))
	}
	return out
}

// slidingIdealFinal returns the emit-final output for recs (accepted,
// missing no window) given closeAfter[i], the close time after input
// record i: each window once, after the first input whose close time
// passes its end, in start then key order; the others at Finish.
func slidingIdealFinal(recs []slidingRec, closeAfter []int64, d int64) []string {
	type wk struct {
		start int64
		key   string
	}
	wins := slidingIdeal(recs, d)
	due := map[int][]wk{} // input index (len(closeAfter): Finish) -> windows
	for key, ws := range wins {
		for s := range ws {
			i := 0
			for i < len(closeAfter) && s+d >= closeAfter[i] {
				i++
			}
			due[i] = append(due[i], wk{s, key})
		}
	}
	m := &slidingModel{d: d}
	var out []string
	for i := 0; i <= len(closeAfter); i++ {
		ws := due[i]
		slices.SortFunc(ws, func(a, b wk) int {
			return cmp.Or(cmp.Compare(a.start, b.start), strings.Compare(a.key, b.key))
		})
		for _, w := range ws {
			out = append(out, m.line(w.key, w.start, wins[w.key][w.start], nil))
		}
	}
	return out
}

// lastPerWindow maps each window of outputs to its last value and time,
// the old value left out.
func lastPerWindow(lines []string) map[string]string {
	m := map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		m[f[0]] = f[1] + " " + f[3]
	}
	return m
}

// TestSlidingModel runs random streams, in order, out of order and late,
// through SlidingAggregate and compares its output with slidingModel's:
// exactly for emit-final and for updates without a cache, the last value
// of each window with a cache. Runs in which no accepted record missed a
// window are also compared with the definition (slidingIdeal): emit-final
// and uncached update outputs exactly, in order. Window sizes include 0,
// timestamps start near 0 (records before maxDiff) and include negative
// ones; the operator restarts from its committed state now and then.
func TestSlidingModel(t *testing.T) {
	for i := range 40 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 3))
			d := []int64{0, 1, 5, 10, 20, r.Int64N(50)}[r.IntN(6)]
			grace := []int64{0, 0, r.Int64N(20), r.Int64N(200)}[r.IntN(4)]
			final := r.IntN(2) == 0
			cache := 0
			if final || r.IntN(3) == 0 {
				cache = []int{0, 64, 1 << 20}[r.IntN(3)]
			}
			// partial: let records arrive that miss their own left window
			// but not every window (rule 10); the ideal model excludes them.
			partial := r.IntN(2) == 0
			keys := 1 + r.IntN(3)
			step := []int64{2, d/2 + 3}[r.IntN(2)] // small steps: many records before d
			t.Logf("d=%d grace=%d final=%v cache=%d partial=%v keys=%d step=%d", d, grace, final, cache, partial, keys, step)
			h := newSlidingHarness(t, d, grace, final, cache)
			m := newSlidingModel(d, grace, final)
			var accepted []slidingRec
			var closeAfter []int64
			var ideal []string
			ts := r.Int64N(2*d + 3)
			for n := range 200 + r.IntN(400) {
				ts += r.Int64N(step)
				rts := ts
				if r.IntN(4) == 0 { // out of order, maybe late
					rts -= r.Int64N([]int64{3, d + 2, 3*d + grace + 10}[r.IntN(3)])
				}
				if !partial && m.class(rts) == "partial" {
					rts = ts
				}
				key := fmt.Sprintf("k%d", r.IntN(keys))
				val := fmt.Sprintf("v%d", n)
				if rts >= 0 && m.class(rts) != "drop" {
					accepted = append(accepted, slidingRec{key, val, rts})
					if !final && cache == 0 && !m.partial && m.class(rts) == "ok" {
						ideal = append(ideal, slidingIdealUpdates(t, accepted, d)...)
					}
				}
				m.process(key, val, rts)
				closeAfter = append(closeAfter, m.closeTime)
				h.push(key, val, rts)
				if r.IntN(60) == 0 {
					h.restart()
				}
			}
			m.finish()
			h.finish()
			if final || cache == 0 {
				if diff := gocmp.Diff(m.out, h.out); diff != "" {
					t.Fatalf("output (-model +operator):\n%s", diff)
				}
			} else if diff := gocmp.Diff(lastPerWindow(m.out), lastPerWindow(h.out)); diff != "" {
				t.Fatalf("last value per window (-model +operator):\n%s", diff)
			}
			if diff := gocmp.Diff(m.late, h.late); diff != "" {
				t.Fatalf("late records (-model +operator):\n%s", diff)
			}
			if got := h.entries(); len(got) != 0 {
				t.Errorf("windows left after Finish: %v", got)
			}
			if m.partial {
				return
			}
			t.Logf("also compared with the definition")
			switch {
			case final:
				if diff := gocmp.Diff(slidingIdealFinal(accepted, closeAfter, d), h.out); diff != "" {
					t.Fatalf("output (-definition +operator):\n%s", diff)
				}
			case cache == 0:
				if diff := gocmp.Diff(ideal, h.out); diff != "" {
					t.Fatalf("output (-definition +operator):\n%s", diff)
				}
			}
		})
	}
}

// TestSlidingClosedWindowsShapeLaterOnes checks that a closed window is
// kept while it can still shape a later record's windows: a record builds
// its left window from the window before it, closed or not, and a late
// record creates the previous record's right window from the previous
// record's (closed) left window. Times start at 1000 so that expiry runs.
func TestSlidingClosedWindowsShapeLaterOnes(t *testing.T) {
	tests := []struct {
		name string
		in   []slidingRec
		want []string
	}{{
		// B's record closes A's [1090,1100]; A's record at 1107 still
		// finds it: its left window holds both records (rule 8).
		name: "left window from a closed window",
		in:   []slidingRec{{"A", "a", 1100}, {"B", "b", 1107}, {"A", "c", 1107}},
		want: []string{
			"A@1090-1100 a - 1100",
			"B@1097-1107 b - 1107",
			"A@1101-1111 c - 1107",
			"A@1097-1107 a+c - 1107",
		},
	}, {
		// B's record makes closeTime 1030, and the first expiry deletes
		// the windows starting before 1030-2*10-1 = 1009. A's [1009,1019]
		// is closed but kept: the late record at 1025 reads it to create
		// [1020,1030], still open (rule 10), which holds only that record.
		name: "late record creates the previous record's right window",
		in:   []slidingRec{{"A", "a", 1019}, {"B", "b", 1030}, {"A", "c", 1025}},
		want: []string{
			"A@1009-1019 a - 1019",
			"B@1020-1030 b - 1030",
			"A@1020-1030 c - 1025",
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newSlidingHarness(t, 10, 0, false, 0)
			for _, r := range tc.in {
				h.push(r.key, r.val, r.t)
			}
			if diff := gocmp.Diff(tc.want, h.out); diff != "" {
				t.Errorf("output (-want +got):\n%s", diff)
			}
			if h.a.purgedBelow == 0 {
				t.Errorf("expiry did not run")
			}
		})
	}
}

// TestSlidingExpiryBoundsState checks that state stays bounded: after each
// record, every window starts at closeTime-2d-1-max(d, 1s) or later, the
// index lists exactly the stored windows, and Finish leaves none.
func TestSlidingExpiryBoundsState(t *testing.T) {
	for _, final := range []bool{false, true} {
		for _, cache := range []int{0, 1 << 20} {
			t.Run(fmt.Sprintf("final=%v/cache=%d", final, cache), func(t *testing.T) {
				const d, grace = 50, 20
				h := newSlidingHarness(t, d, grace, final, cache)
				r := rand.New(rand.NewPCG(1, 2))
				most := 0
				for i := range 3000 {
					ts := int64(i)*3 - r.Int64N(60)
					h.push(fmt.Sprintf("k%d", r.IntN(5)), "v", ts)
					if i%100 != 99 {
						continue
					}
					floor := h.a.closeTime - 2*d - 1 - max(d, minPurgeStepMs)
					wins := h.entries()
					most = max(most, len(wins))
					for _, w := range wins {
						var start int64
						fmt.Sscanf(w[strings.IndexByte(w, '@')+1:], "%d", &start)
						if start < floor {
							t.Fatalf("after %d records: window %s starts before %d", i+1, w, floor)
						}
					}
				}
				// 5 keys, a record every 3ms, windows kept ~1.1s: about
				// 2*1100/3 windows a key at most.
				if most > 5*800 {
					t.Errorf("%d windows stored at most", most)
				}
				purged := h.a.purgedBelow
				h.restart()
				if h.a.purgedBelow != purged {
					t.Errorf("expiry progress after a restart: %d, want %d", h.a.purgedBelow, purged)
				}
				h.finish()
				if wins := h.entries(); len(wins) != 0 {
					t.Errorf("windows left after Finish: %v", wins)
				}
			})
		}
	}
}

// TestSlidingCacheThrottlesUpdates checks that in update mode the store's
// cache holds updates back until it is flushed, one result per window:
// a record's lookup reads the index store, not the cached aggregates.
func TestSlidingCacheThrottlesUpdates(t *testing.T) {
	h := newSlidingHarness(t, 100, 0, false, 1<<20)
	for i := range 5 {
		h.push("A", fmt.Sprint(i), 1000+int64(i))
	}
	if len(h.out) != 0 {
		t.Fatalf("updates forwarded before a flush: %v", h.out)
	}
	if err := h.task.Flush(); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"A@900-1000 0 - 1000",
		"A@1001-1101 1+2+3+4 - 1004",
		"A@901-1001 0+1 - 1001",
		"A@1002-1102 2+3+4 - 1004",
		"A@902-1002 0+1+2 - 1002",
		"A@1003-1103 3+4 - 1004",
		"A@903-1003 0+1+2+3 - 1003",
		"A@1004-1104 4 - 1004",
		"A@904-1004 0+1+2+3+4 - 1004",
	}
	if diff := gocmp.Diff(want, h.out); diff != "" {
		t.Errorf("output after a flush (-want +got):\n%s", diff)
	}
}
