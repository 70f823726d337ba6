package operators

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
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

func TestSessionIndexKeys(t *testing.T) {
	keys := [][]byte{{}, []byte("A"), []byte("AA"), []byte("A\x00"), bytes.Repeat([]byte{0xff}, 200)}
	times := []int64{math.MinInt64, -1001, -1, 0, 1, 1000, math.MaxInt64}
	var byTime, byKey [][]byte
	for _, key := range keys {
		for i, end := range times {
			for _, start := range times[:i+1] {
				k := appendSessionByTime(nil, key, end, start)
				gk, ge, gs, err := decodeSessionByTime(k)
				if err != nil || !bytes.Equal(gk, key) || ge != end || gs != start {
					t.Errorf("decodeSessionByTime(appendSessionByTime(%q, %d, %d)) = %q, %d, %d, %v", key, end, start, gk, ge, gs, err)
				}
				byTime = append(byTime, k)
				byKey = append(byKey, appendSessionByKey(nil, key, end, start))
			}
		}
	}
	// The time index sorts by end, then start, then key: the order in
	// which sessions closing together are emitted.
	slices.SortFunc(byTime, bytes.Compare)
	for i := 1; i < len(byTime); i++ {
		pk, pe, ps, _ := decodeSessionByTime(byTime[i-1])
		k, e, s, _ := decodeSessionByTime(byTime[i])
		if c := cmp.Or(cmp.Compare(pe, e), cmp.Compare(ps, s), bytes.Compare(pk, k)); c >= 0 {
			t.Errorf("time index: (%d, %d, %q) sorts before (%d, %d, %q)", pe, ps, pk, e, s, k)
		}
	}
	// One key's by-key entries are one contiguous range, by end, whatever
	// other keys extend it.
	slices.SortFunc(byKey, bytes.Compare)
	for _, key := range keys {
		lo := appendSessionByKey(nil, key, math.MinInt64, math.MinInt64)
		hi := append(appendSessionByKey(nil, key, math.MaxInt64, math.MaxInt64), 0)
		var in []int
		for i, k := range byKey {
			if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				in = append(in, i)
			}
		}
		if want := len(times) * (len(times) + 1) / 2; len(in) != want || in[len(in)-1]-in[0] != want-1 {
			t.Errorf("key %q: %d entries in its range at %v, want %d contiguous", key, len(in), in, want)
		}
	}
	for _, bad := range [][]byte{nil, {'t'}, append([]byte{'k'}, make([]byte, 16)...), appendSessionByTime(nil, nil, 1, 2)} {
		if _, _, _, err := decodeSessionByTime(bad); err == nil {
			t.Errorf("decodeSessionByTime(%x) succeeded", bad)
		}
	}
}

// sessionHarness runs a SessionAggregate of strings on an in-memory state
// DB, as a task would. Its aggregate is Kafka Streams' test aggregate:
// init "0", add and merge append "+value", so an output shows how it was
// folded (rule 16). Outputs are "key@start-end new old time" lines, with
// <nil> for a missing value; late records are written to topic "late".
type sessionHarness struct {
	t     *testing.T
	db    *state.DB
	task  *state.Task
	op    *SessionAggregate[string, string, string]
	ctx   Context
	spec  window.SessionSpec
	final bool
	cache int
	// retention is the operator's RetentionMs.
	retention int64
	out       []string
	late      []string
	nlate     int
}

type sessionStores struct {
	task  *state.Task
	cache int
}

func (s sessionStores) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	cfg.CacheBytes = s.cache
	return s.task.KV(name, 0, cfg)
}

func (s sessionStores) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	cfg.CacheBytes = s.cache
	return s.task.Window(name, 0, cfg)
}

func newSessionHarness(t *testing.T, spec window.SessionSpec, final bool, cache int) *sessionHarness {
	return newSessionHarnessRetention(t, spec, final, cache, 0)
}

// newSessionHarnessRetention is newSessionHarness with the operator's
// RetentionMs set.
func newSessionHarnessRetention(t *testing.T, spec window.SessionSpec, final bool, cache int, retention int64) *sessionHarness {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &sessionHarness{t: t, db: db, spec: spec, final: final, cache: cache, retention: retention}
	h.open()
	return h
}

type sessionCollector struct{ h *sessionHarness }

func (c sessionCollector) Process(_ *Context, r Record[window.Windowed[string], Change[string]]) error {
	nv, ov := "<nil>", "<nil>"
	if r.Value.HasNew {
		nv = r.Value.New
	}
	if r.Value.HasOld {
		ov = r.Value.Old
	}
	c.h.out = append(c.h.out, fmt.Sprintf("%s@%d-%d %s %s %d", r.Key.Key, r.Key.Start, r.Key.End, nv, ov, r.Time))
	return nil
}

func sessionFold(agg string, found bool, v string) string {
	if !found {
		agg = "0"
	}
	return agg + "+" + v
}

func (h *sessionHarness) open() {
	h.task = h.db.NewTask("0_0")
	h.ctx = Context{
		Logger:     hclog.NewNullLogger(),
		Partitions: func(string) int32 { return 1 },
		Send: func(r RawRecord) {
			h.late = append(h.late, fmt.Sprintf("%s %s %s %d", r.Topic, r.Key, r.Value, r.Timestamp))
		},
		Late: func(op string) {
			if op != "s" {
				h.t.Errorf("late record counted for operator %q", op)
			}
			h.nlate++
		},
	}
	h.op = &SessionAggregate[string, string, string]{
		Name: "s", Store: "s", IndexStore: "s-index", Spec: h.spec, EmitFinal: h.final, RetentionMs: h.retention,
		KeySerde: serde.String(), AggSerde: serde.String(),
		Merge: func(_ string, agg string, found bool, s string) string { return sessionFold(agg, found, s) },
		Add:   func(_ string, v string, agg string, found bool) string { return sessionFold(agg, found, v) },
		Out:   Downstream[window.Windowed[string], Change[string]]{sessionCollector{h}},
		Late:  &LateRecords[string, string]{Topic: "late", KeySerde: serde.String(), ValueSerde: serde.String()},
	}
	if err := h.op.Init(&h.ctx, sessionStores{h.task, h.cache}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *sessionHarness) flush() {
	if err := h.task.Flush(); err != nil {
		h.t.Fatal(err)
	}
}

// restart commits, closes the task and builds the operator again from
// the committed state.
func (h *sessionHarness) restart() {
	h.flush()
	if err := h.task.Commit(nil); err != nil {
		h.t.Fatal(err)
	}
	if err := h.task.Close(); err != nil {
		h.t.Fatal(err)
	}
	h.open()
}

func (h *sessionHarness) push(key, value string, ts int64) {
	h.t.Helper()
	if err := h.op.Process(&h.ctx, Record[string, string]{Key: key, Value: value, Time: ts}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *sessionHarness) finish() {
	h.t.Helper()
	if err := h.op.Finish(&h.ctx); err != nil {
		h.t.Fatal(err)
	}
}

// stored returns the sessions in the operator's store and their
// aggregates.
func (h *sessionHarness) stored() map[sessionID]string {
	h.t.Helper()
	ws := serde.SessionWindowed(serde.String())
	got := map[sessionID]string{}
	err := h.op.store.Range(nil, nil, func(k, v []byte) error {
		w, err := ws.Decode(k)
		if err != nil {
			return err
		}
		_, agg, err := decodeTimestamped(v, serde.String())
		got[sessionID{w.Key, w.Start, w.End}] = agg
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

// counts returns the number of entries of the store and of each index.
func (h *sessionHarness) counts() [3]int {
	var n [3]int
	err := h.op.store.Range(nil, nil, func(_, _ []byte) error { n[0]++; return nil })
	if err != nil {
		h.t.Fatal(err)
	}
	err = h.op.index.Range(nil, nil, func(k, _ []byte) error {
		if k[0] == sessionByKey {
			n[1]++
		} else {
			n[2]++
		}
		return nil
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// sessionModel is a naive model of Kafka Streams' session windows
// (SEMANTICS-KS.md rules 13-18): it keeps every accepted record of the
// open sessions and recomputes the sessions at each step, as the runs of
// a key's records at most gap apart.
type sessionModel struct {
	gap, grace int64
	// retention: a closed session is stored until end + retention < st.
	retention int64
	final     bool
	st        int64
	seen      bool
	recs      map[string][]int64   // times of the records of open sessions
	aggs      map[sessionID]string // aggregate of each open session
	retained  map[sessionID]string // closed sessions still stored
	out, late []string
}

type sessionID struct {
	key        string
	start, end int64
}

// newSessionModelRetention models an operator with RetentionMs retention
// (0: gap + grace).
func newSessionModelRetention(gap, grace int64, final bool, retention int64) *sessionModel {
	if retention == 0 {
		retention = gap + grace
	}
	return &sessionModel{
		gap: gap, grace: grace, retention: retention, final: final,
		recs: map[string][]int64{}, aggs: map[sessionID]string{}, retained: map[sessionID]string{},
	}
}

// stored returns the sessions the store should hold: open and retained.
func (m *sessionModel) stored() map[sessionID]string {
	all := maps.Clone(m.aggs)
	maps.Copy(all, m.retained)
	return all
}

// expire deletes the retained sessions past their retention (all of
// them if all).
func (m *sessionModel) expire(all bool) {
	maps.DeleteFunc(m.retained, func(s sessionID, _ string) bool { return all || s.end+m.retention < m.st })
}

// sessions returns the sessions of key, by ascending start (and end).
func (m *sessionModel) sessions(key string) []sessionID {
	ts := slices.Sorted(slices.Values(m.recs[key]))
	var out []sessionID
	for i, t := range ts {
		if i == 0 || t-ts[i-1] > m.gap {
			out = append(out, sessionID{key, t, t})
		}
		out[len(out)-1].end = t
	}
	return out
}

func (m *sessionModel) line(id sessionID, nv, ov string) string {
	return fmt.Sprintf("%s@%d-%d %s %s %d", id.key, id.start, id.end, nv, ov, id.end)
}

// closeBefore removes the sessions ending before ct and returns them in
// emission order: end, start, key.
func (m *sessionModel) closeBefore(ct int64, all bool) []sessionID {
	var due []sessionID
	for key := range m.recs {
		for _, s := range m.sessions(key) {
			if all || s.end < ct {
				due = append(due, s)
			}
		}
	}
	slices.SortFunc(due, func(a, b sessionID) int {
		return cmp.Or(cmp.Compare(a.end, b.end), cmp.Compare(a.start, b.start), strings.Compare(a.key, b.key))
	})
	for _, s := range due {
		m.recs[s.key] = slices.DeleteFunc(m.recs[s.key], func(t int64) bool { return t >= s.start && t <= s.end })
		if len(m.recs[s.key]) == 0 {
			delete(m.recs, s.key)
		}
	}
	return due
}

func (m *sessionModel) emitFinal(due []sessionID) {
	for _, s := range due {
		if _, ok := m.aggs[s]; !ok {
			panic(fmt.Sprintf("model: session %v has no aggregate", s))
		}
		if m.final {
			m.out = append(m.out, m.line(s, m.aggs[s], "<nil>"))
		}
		m.retained[s] = m.aggs[s]
		delete(m.aggs, s)
	}
}

func (m *sessionModel) process(key, val string, t int64) {
	if !m.seen || t > m.st {
		m.st, m.seen = t, true
	}
	ct := m.st - m.gap - m.grace
	due := m.closeBefore(ct, false)
	var merged []sessionID
	start, end := t, t
	for _, s := range m.sessions(key) {
		if s.end >= t-m.gap && s.start <= t+m.gap {
			merged = append(merged, s)
			start, end = min(start, s.start), max(end, s.end)
		}
	}
	if end < ct {
		m.late = append(m.late, fmt.Sprintf("late %s %s %d", key, val, t))
	} else {
		agg, found := "", false
		for _, s := range merged {
			agg, found = sessionFold(agg, found, m.aggs[s]), true
		}
		own := start == t && end == t
		if !own {
			for _, s := range merged {
				if !m.final {
					m.out = append(m.out, m.line(s, "<nil>", m.aggs[s]))
				}
				delete(m.aggs, s)
			}
		}
		id := sessionID{key, start, end}
		old := "<nil>"
		if own && found {
			old = m.aggs[id]
		}
		m.aggs[id] = sessionFold(agg, found, val)
		if !m.final {
			m.out = append(m.out, m.line(id, m.aggs[id], old))
		}
		m.recs[key] = append(m.recs[key], t)
	}
	m.emitFinal(due)
	m.expire(false)
}

// table applies update-mode output lines to a table of the latest value
// of each session, as a downstream materialization would.
func sessionTable(lines []string) map[string]string {
	tbl := map[string]string{}
	for _, l := range lines {
		f := strings.Fields(l)
		if f[1] == "<nil>" {
			delete(tbl, f[0])
		} else {
			tbl[f[0]] = f[1] + " " + f[3]
		}
	}
	return tbl
}

// TestSessionModel runs random streams, out of order and partly late,
// through the operator and the naive model, with random gaps, graces,
// cache sizes, emit strategies and restarts, and timestamps on both sides
// of zero. With no cache, or emitting on close, the outputs must be the
// same, in order; with a cache, the table they make. Late records and
// state size are checked too, and every few records the stored sessions:
// the open ones and the closed ones within their retention (random, at
// least gap + grace, half the time the default).
func TestSessionModel(t *testing.T) {
	for i := range 40 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 3))
			gap := 1 + r.Int64N(20)
			grace := []int64{0, 0, r.Int64N(20), r.Int64N(200)}[r.IntN(4)]
			final := r.IntN(2) == 0
			cache := []int{0, 0, 64, 1 << 20}[r.IntN(4)]
			base := []int64{0, -1000, 1 << 40}[r.IntN(3)]
			var retention int64
			if r.IntN(2) == 0 {
				retention = gap + grace + []int64{0, r.Int64N(gap + grace + 1), r.Int64N(300)}[r.IntN(3)]
			}
			t.Logf("gap=%d grace=%d final=%v cache=%d base=%d retention=%d", gap, grace, final, cache, base, retention)
			spec := window.Sessions(time.Duration(gap) * time.Millisecond).Grace(time.Duration(grace) * time.Millisecond)
			h := newSessionHarnessRetention(t, spec, final, cache, retention)
			m := newSessionModelRetention(gap, grace, final, retention)
			ts := base
			for n := range 300 + r.IntN(500) {
				ts += r.Int64N(5)
				rts := ts
				if r.IntN(5) == 0 {
					rts -= r.Int64N(80) // out of order, sometimes late
				}
				key := fmt.Sprintf("k%d", r.IntN(4))
				val := fmt.Sprint(n)
				m.process(key, val, rts)
				h.push(key, val, rts)
				switch r.IntN(100) {
				case 0:
					h.restart()
				case 1, 2, 3, 4, 5:
					if diff := gocmp.Diff(m.stored(), h.stored()); diff != "" {
						t.Fatalf("after record %d: stored sessions (-model +store):\n%s", n, diff)
					}
				}
			}
			if diff := gocmp.Diff(m.stored(), h.stored()); diff != "" {
				t.Fatalf("stored sessions (-model +store):\n%s", diff)
			}
			h.flush()
			tombstones := 0
			for _, l := range m.out {
				if strings.Contains(l, " <nil> ") && !strings.HasSuffix(strings.Fields(l)[2], "<nil>") {
					tombstones++
				}
			}
			t.Logf("%d outputs, %d tombstones, %d late", len(m.out), tombstones, len(m.late))
			open := len(m.aggs) + len(m.retained)
			if got, want := h.counts(), [3]int{open, open, open}; got != want {
				t.Errorf("store, by-key and by-time index entries = %v, want %v: the open and retained sessions", got, want)
			}
			m.emitFinal(m.closeBefore(0, true))
			m.expire(true)
			h.finish()
			h.flush()
			if got := h.counts(); got != [3]int{} {
				t.Errorf("store and index entries after Finish = %v, want none", got)
			}
			if final || cache == 0 {
				if diff := gocmp.Diff(m.out, h.out); diff != "" {
					t.Fatalf("output (-model +operator):\n%s", diff)
				}
			} else {
				want, got := sessionTable(m.out), sessionTable(h.out)
				if diff := gocmp.Diff(want, got); diff != "" {
					t.Fatalf("table of the output (-model +operator):\n%s", diff)
				}
				if len(h.out) > len(m.out) {
					t.Errorf("%d outputs with a cache, more than the %d without", len(h.out), len(m.out))
				}
			}
			if diff := gocmp.Diff(m.late, h.late); diff != "" {
				t.Errorf("late records (-model +operator):\n%s", diff)
			}
			if h.nlate != len(m.late) {
				t.Errorf("%d late records counted, want %d", h.nlate, len(m.late))
			}
			if len(h.op.expired) != 0 {
				t.Errorf("%d expired sessions still tracked after a flush: %v", len(h.op.expired), slices.Collect(maps.Keys(h.op.expired)))
			}
		})
	}
}

// TestSessionCacheExpiry checks the cached update mode: a session
// updated and expired between two flushes is forwarded once with its
// last value, a session created and replaced between two flushes leaves
// no tombstone, and expiry of a flushed session forwards nothing.
func TestSessionCacheExpiry(t *testing.T) {
	h := newSessionHarness(t, window.Sessions(10*time.Millisecond), false, 1<<20)
	h.push("a", "1", 0)
	h.flush()
	h.push("a", "2", 5)   // [0,5], not flushed
	h.push("b", "3", 100) // closes a's session: deleted, not flushed
	h.push("b", "4", 200) // closes [100,100], flushed never: nothing
	h.push("b", "5", 205)
	h.push("b", "6", 195) // replaces [200,205] by [195,205] before a flush
	h.flush()
	h.push("c", "7", 1000) // expires b's flushed session: nothing
	h.flush()
	want := []string{
		"a@0-0 0+1 <nil> 0",
		"a@0-0 <nil> 0+1 0",
		"a@0-5 0+0+1+2 <nil> 5",
		"b@100-100 0+3 <nil> 100",
		"b@195-205 0+0+0+4+5+6 <nil> 205",
		"c@1000-1000 0+7 <nil> 1000",
	}
	if diff := gocmp.Diff(want, h.out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
}

// TestSessionExtremeTimes runs sessions at the ends of the int64 range,
// where the lookup and close bounds saturate, emitting on close.
func TestSessionExtremeTimes(t *testing.T) {
	h := newSessionHarness(t, window.Sessions(10*time.Millisecond).Grace(5*time.Millisecond), true, 0)
	h.push("a", "1", math.MinInt64)
	h.push("a", "2", math.MinInt64+3)
	h.push("b", "3", -1)
	h.push("b", "4", math.MaxInt64-1)
	h.push("b", "5", math.MaxInt64)
	h.push("c", "6", math.MinInt64)
	h.finish()
	want := []string{
		fmt.Sprintf("a@%d-%d 0+0+1+2 <nil> %d", int64(math.MinInt64), int64(math.MinInt64+3), int64(math.MinInt64+3)),
		"b@-1--1 0+3 <nil> -1",
		fmt.Sprintf("b@%d-%d 0+0+4+5 <nil> %d", int64(math.MaxInt64-1), int64(math.MaxInt64), int64(math.MaxInt64)),
	}
	if diff := gocmp.Diff(want, h.out); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{fmt.Sprintf("late c 6 %d", int64(math.MinInt64))}, h.late); diff != "" {
		t.Errorf("late records (-want +got):\n%s", diff)
	}
}
