package state

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var seedFlag = flag.Uint64("seed", 0, "seed of randomized tests (0: time-based)")

func testSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -seed %d)", seed, seed)
	return seed
}

// model is the reference for one store partition: its committed state, the
// writes staged since, and the changelog the store produced.
type model struct {
	name      string
	partition int32
	window    bool
	cfg       StoreConfig // without the callbacks

	committed map[string]string  // namespaced key -> value
	staged    map[string]*string // nil: deleted
	// flushed is the batch view (committed plus flushed writes), updated by
	// the Changelog callback; OnFlush's old must match it.
	flushed    map[string]string
	pending    []ChangelogRecord // changelog records since the last commit
	log        []ChangelogRecord // committed changelog
	lastPrior  *string           // flushed value before the last changelog record
	lastRecord ChangelogRecord
	onFlushes  int
	hasOffset  bool // a commit or restore set the committed offset
	// applied is the length of log that reached the DB: commits made with
	// CommitDeferred since the last Commit have not.
	applied int
	// offsetDeferred: a deferred commit since the last applied one gave
	// the store an offset.
	offsetDeferred bool
}

func newModel(name string, partition int32, window bool, cacheBytes int) *model {
	return &model{
		name: name, partition: partition, window: window,
		cfg:       StoreConfig{CacheBytes: cacheBytes},
		committed: map[string]string{}, staged: map[string]*string{}, flushed: map[string]string{},
	}
}

func (m *model) config(t *testing.T) StoreConfig {
	cfg := m.cfg
	cfg.Changelog = func(key, value []byte) {
		r := ChangelogRecord{Key: bytes.Clone(key)}
		if value != nil {
			r.Value = append([]byte{}, value...)
		}
		m.pending = append(m.pending, r)
		m.lastRecord = r
		m.lastPrior = nil
		if v, ok := m.flushed[string(key)]; ok {
			m.lastPrior = &v
		}
		if value == nil {
			delete(m.flushed, string(key))
		} else {
			m.flushed[string(key)] = string(value)
		}
	}
	cfg.OnFlush = func(key, value, old []byte) error {
		m.onFlushes++
		nk := append([]byte{nsData}, key...)
		if diff := cmp.Diff(string(m.lastRecord.Key), string(nk)); diff != "" {
			t.Errorf("%s: OnFlush key is not the last changelog key (-changelog +onflush):\n%s", m.name, diff)
		}
		if diff := cmp.Diff(optBytes(m.lastRecord.Value), optBytes(value)); diff != "" {
			t.Errorf("%s: OnFlush value of %q (-changelog +onflush):\n%s", m.name, key, diff)
		}
		if diff := cmp.Diff(m.lastPrior, optBytes(old)); diff != "" {
			t.Errorf("%s: OnFlush old of %q (-flushed +old):\n%s", m.name, key, diff)
		}
		return nil
	}
	return cfg
}

func optBytes(b []byte) *string {
	if b == nil {
		return nil
	}
	s := string(b)
	return &s
}

func (m *model) get(nk string) (string, bool) {
	if v, ok := m.staged[nk]; ok {
		if v == nil {
			return "", false
		}
		return *v, true
	}
	v, ok := m.committed[nk]
	return v, ok
}

func (m *model) write(nk string, v *string) { m.staged[nk] = v }

// rangeData returns the data entries with start <= key < end, sorted.
func (m *model) rangeData(start, end []byte) []kvPair {
	var out []kvPair
	seen := map[string]bool{}
	add := func(nk string) {
		if seen[nk] || nk[0] != nsData {
			return
		}
		seen[nk] = true
		k := nk[1:]
		if (start != nil && k < string(start)) || (end != nil && k >= string(end)) {
			return
		}
		if v, ok := m.get(nk); ok {
			out = append(out, kvPair{k, v})
		}
	}
	for nk := range m.staged {
		add(nk)
	}
	for nk := range m.committed {
		add(nk)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

// commit commits the staged writes and reports whether the store wrote
// changelog records, so that the commit carries its offset.
func (m *model) commit(deferred bool) (wrote bool) {
	wrote = len(m.pending) > 0
	for k, v := range m.staged {
		if v == nil {
			delete(m.committed, k)
		} else {
			m.committed[k] = *v
		}
	}
	clear(m.staged)
	m.log = append(m.log, m.pending...)
	m.pending = nil
	m.flushed = maps(m.committed)
	if deferred {
		m.offsetDeferred = m.offsetDeferred || wrote
	} else {
		m.hasOffset = m.hasOffset || wrote || m.offsetDeferred
		m.offsetDeferred = false
		m.applied = len(m.log)
	}
	return wrote
}

// restoreTail replays the committed changelog records that did not reach
// the DB, as the engine does after an abort or a restart: a deferred
// commit leaves them in the changelog only.
func restoreTail(t *testing.T, h handle, m *model) {
	t.Helper()
	if m.applied == len(m.log) {
		return
	}
	if err := h.st().Restore(m.log[m.applied:], int64(len(m.log))); err != nil {
		t.Fatalf("%s/%d: restore: %v", m.name, m.partition, err)
	}
	m.applied = len(m.log)
	m.hasOffset = true
	m.offsetDeferred = false
}

func (m *model) abort() {
	clear(m.staged)
	m.pending = nil
	m.flushed = maps(m.committed)
}

func maps(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

type kvPair struct{ K, V string }

// handle is a registered store, KV or window, behind one interface.
type handle struct {
	kv *KV
	w  *WindowStore
}

func (h handle) st() *store {
	if h.kv != nil {
		return &h.kv.store
	}
	return &h.w.store
}

// modelKey maps a generated (key, start) to the model's data key.
func modelKey(window bool, key []byte, start int64) string {
	if window {
		return string(append([]byte{nsData}, AppendWindowKey(nil, start, key)...))
	}
	return string(append([]byte{nsData}, key...))
}

func (h handle) get(key []byte, start int64) ([]byte, bool, error) {
	if h.kv != nil {
		return h.kv.Get(key)
	}
	return h.w.Get(key, start)
}

func (h handle) put(key []byte, start int64, v []byte) error {
	if h.kv != nil {
		return h.kv.Put(key, v)
	}
	return h.w.Put(key, start, v)
}

func (h handle) del(key []byte, start int64) error {
	if h.kv != nil {
		return h.kv.Delete(key)
	}
	return h.w.Delete(key, start)
}

// rangeAll returns the entries the store's Range gives for the data key
// bounds [start, end), as model data keys without namespace.
func (h handle) rangeData(start, end []byte) ([]kvPair, error) {
	var out []kvPair
	if h.kv != nil {
		err := h.kv.Range(start, end, func(k, v []byte) error {
			out = append(out, kvPair{string(k), string(v)})
			return nil
		})
		return out, err
	}
	// Window bounds are starts: decode them back from the generated keys.
	from, to := int64(-1<<63), int64(1<<63-1)
	if start != nil {
		from, _, _ = DecodeWindowKey(start)
	}
	if end != nil {
		to, _, _ = DecodeWindowKey(end)
	}
	err := h.w.Range(from, to, func(k []byte, s int64, v []byte) error {
		out = append(out, kvPair{string(AppendWindowKey(nil, s, k)), string(v)})
		return nil
	})
	return out, err
}

type modelTask struct {
	name   string
	task   *Task
	models []*model
	stores []handle
}

func (mt *modelTask) open(t *testing.T, db *DB) {
	mt.task = db.NewTask(mt.name)
	mt.stores = mt.stores[:0]
	for _, m := range mt.models {
		var h handle
		var err error
		if m.window {
			h.w, err = mt.task.Window(m.name, m.partition, m.config(t))
		} else {
			h.kv, err = mt.task.KV(m.name, m.partition, m.config(t))
		}
		if err != nil {
			t.Fatal(err)
		}
		mt.stores = append(mt.stores, h)
	}
}

// TestModel runs random operations on several stores of two tasks and
// checks every read against the reference model, the changelog against
// the committed state, and the committed state across reopens.
func TestModel(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))
	dir := t.TempDir()

	keys := make([][]byte, 12)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%02d", i)
	}
	keys[0] = []byte{} // the empty key is a key too
	starts := []int64{-1 << 40, -1, 0, 1, 60_000, 1 << 40}

	var tasks []*modelTask
	for i, name := range []string{"0_0", "0_1"} {
		p := int32(i)
		tasks = append(tasks, &modelTask{name: name, models: []*model{
			newModel("small-cache", p, false, 400), // evicts often
			newModel("uncached", p, false, 0),
			newModel("big-cache", p, false, 1<<20),
			newModel("windows", p, true, 700),
		}})
	}

	randKey := func(m *model) ([]byte, int64, string) {
		k := keys[rng.IntN(len(keys))]
		s := starts[rng.IntN(len(starts))]
		return k, s, modelKey(m.window, k, s)
	}
	randValue := func() []byte {
		v := make([]byte, rng.IntN(24)) // empty values included
		for i := range v {
			v[i] = byte('a' + rng.IntN(26))
		}
		return v
	}
	randBound := func(m *model) []byte {
		if rng.IntN(4) == 0 {
			return nil
		}
		_, _, nk := randKey(m)
		return []byte(nk[1:])
	}

	const phases, opsPerPhase = 4, 3000
	for phase := range phases {
		disableWAL := phase%2 == 1
		// The later phases share a small budget among the caches, whose
		// evictions the model does not depend on.
		budget := []int64{0, 0, 3000, 1200}[phase]
		db, err := Open(Options{Dir: dir, DisableWAL: disableWAL, WriteCacheBytes: budget})
		if err != nil {
			t.Fatal(err)
		}
		for _, mt := range tasks {
			mt.open(t, db)
			// The reopened DB holds exactly the committed state, once the
			// changelog records of deferred commits are restored.
			for i, h := range mt.stores {
				m := mt.models[i]
				restoreTail(t, h, m)
				checkCommitted(t, h, m)
			}
		}
		for op := range opsPerPhase {
			mt := tasks[rng.IntN(len(tasks))]
			i := rng.IntN(len(mt.stores))
			h, m := mt.stores[i], mt.models[i]
			where := fmt.Sprintf("phase %d op %d task %s store %s", phase, op, mt.name, m.name)
			switch r := rng.IntN(100); {
			case r < 35:
				k, s, nk := randKey(m)
				v := randValue()
				if err := h.put(k, s, v); err != nil {
					t.Fatalf("%s: put: %v", where, err)
				}
				vs := string(v)
				m.write(nk, &vs)
			case r < 45:
				k, s, nk := randKey(m)
				if err := h.del(k, s); err != nil {
					t.Fatalf("%s: delete: %v", where, err)
				}
				m.write(nk, nil)
			case r < 50:
				name := fmt.Sprintf("meta%d", rng.IntN(3))
				v := randValue()
				if err := h.st().PutMeta(name, v); err != nil {
					t.Fatalf("%s: put meta: %v", where, err)
				}
				vs := string(v)
				m.write("\x00"+name, &vs)
			case r < 55:
				name := fmt.Sprintf("meta%d", rng.IntN(3))
				got, ok, err := h.st().GetMeta(name)
				if err != nil {
					t.Fatalf("%s: get meta: %v", where, err)
				}
				want, wantOK := m.get("\x00" + name)
				if diff := cmp.Diff(fmt.Sprint(wantOK, want), fmt.Sprint(ok, string(got))); diff != "" {
					t.Fatalf("%s: get meta %s (-want +got):\n%s", where, name, diff)
				}
			case r < 80:
				k, s, nk := randKey(m)
				got, ok, err := h.get(k, s)
				if err != nil {
					t.Fatalf("%s: get: %v", where, err)
				}
				want, wantOK := m.get(nk)
				if diff := cmp.Diff(fmt.Sprint(wantOK, want), fmt.Sprint(ok, string(got))); diff != "" {
					t.Fatalf("%s: get %q (-want +got):\n%s", where, nk, diff)
				}
				if ok && got == nil {
					t.Fatalf("%s: get %q: found with a nil value", where, nk)
				}
			case r < 88:
				lo, hi := randBound(m), randBound(m)
				got, err := h.rangeData(lo, hi)
				if err != nil {
					t.Fatalf("%s: range: %v", where, err)
				}
				if m.window {
					// Window bounds are starts: widen the model's bounds
					// to whole starts, as the window Range does.
					lo, hi = startBound(lo), startBound(hi)
				}
				want := m.rangeData(lo, hi)
				if lo != nil && hi != nil && bytes.Compare(lo, hi) >= 0 {
					want = nil
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("%s: range [%q, %q) (-want +got):\n%s", where, lo, hi, diff)
				}
			case r < 90:
				if err := mt.task.Flush(); err != nil {
					t.Fatalf("%s: flush: %v", where, err)
				}
			case r < 92:
				if h.kv == nil {
					break
				}
				k, _, nk := randKey(m)
				got, ok, err := h.kv.GetFlushed(k)
				if err != nil {
					t.Fatalf("%s: get flushed: %v", where, err)
				}
				want, wantOK := m.flushed[nk]
				if diff := cmp.Diff(fmt.Sprint(wantOK, want), fmt.Sprint(ok, string(got))); diff != "" {
					t.Fatalf("%s: get flushed %q (-want +got):\n%s", where, nk, diff)
				}
			case r < 97:
				commitTask(t, mt, where, rng.IntN(2) == 0)
			default:
				mt.task.Abort()
				for i, h := range mt.stores {
					m := mt.models[i]
					m.abort()
					restoreTail(t, h, m)
					checkCommitted(t, h, m)
				}
			}
		}
		for _, mt := range tasks {
			// End the phase with a commit or an abort: either way the
			// reopened DB must hold the committed state.
			if rng.IntN(2) == 0 {
				commitTask(t, mt, "end of phase", rng.IntN(2) == 0)
			} else {
				for _, m := range mt.models {
					m.abort()
				}
			}
			if err := mt.task.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// The committed changelog, restored into a fresh DB, gives the
	// committed state: Changelog saw exactly the writes that were applied.
	db := openMem(t)
	for _, mt := range tasks {
		task := db.NewTask(mt.name)
		for _, m := range mt.models {
			var h handle
			var err error
			if m.window {
				h.w, err = task.Window(m.name, m.partition, StoreConfig{})
			} else {
				h.kv, err = task.KV(m.name, m.partition, StoreConfig{})
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := h.st().Restore(m.log, int64(len(m.log))); err != nil {
				t.Fatal(err)
			}
			m.hasOffset = true
			checkCommitted(t, h, m)
		}
		if err := task.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// startBound widens a generated window key bound to its window start.
func startBound(b []byte) []byte {
	if b == nil {
		return nil
	}
	return b[:windowStartLen]
}

// commitTask flushes and commits mt, applying the commit to the DB unless
// deferred (CommitDeferred).
func commitTask(t *testing.T, mt *modelTask, where string, deferred bool) {
	t.Helper()
	if err := mt.task.Flush(); err != nil {
		t.Fatalf("%s: flush: %v", where, err)
	}
	// Like the engine's, a commit carries the offsets of the stores that
	// wrote changelog records only.
	offsets := map[string]int64{}
	for _, m := range mt.models {
		if m.commit(deferred) {
			offsets[m.name] = int64(len(m.log))
		}
	}
	commit := mt.task.Commit
	if deferred {
		commit = mt.task.CommitDeferred
	}
	if err := commit(offsets); err != nil {
		t.Fatalf("%s: commit (deferred %v): %v", where, deferred, err)
	}
	// The DB's offsets tell what was applied: a deferred commit leaves
	// them at the last applied one.
	for i, h := range mt.stores {
		m := mt.models[i]
		off, ok, err := h.st().CommittedOffset()
		if err != nil {
			t.Fatal(err)
		}
		if ok != m.hasOffset || (ok && off != int64(m.applied)) {
			t.Fatalf("%s: %s/%d: committed offset %d, %v after a commit (deferred %v); want %d, %v",
				where, m.name, m.partition, off, ok, deferred, m.applied, m.hasOffset)
		}
	}
}

// checkCommitted checks that a store with nothing staged holds the model's
// committed state and changelog offset.
func checkCommitted(t *testing.T, h handle, m *model) {
	t.Helper()
	got, err := h.rangeData(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := m.rangeData(nil, nil)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("%s/%d: committed data (-want +got):\n%s", m.name, m.partition, diff)
	}
	for nk, v := range m.committed {
		if nk[0] != nsMeta {
			continue
		}
		gv, ok, err := h.st().GetMeta(nk[1:])
		if err != nil || !ok || string(gv) != v {
			t.Fatalf("%s/%d: meta %s = %q, %v, %v; want %q", m.name, m.partition, nk[1:], gv, ok, err, v)
		}
	}
	off, ok, err := h.st().CommittedOffset()
	if err != nil {
		t.Fatal(err)
	}
	if !m.hasOffset {
		off = int64(len(m.log)) // nothing to compare
	}
	if diff := cmp.Diff(fmt.Sprint(m.hasOffset, len(m.log)), fmt.Sprint(ok, off)); diff != "" {
		t.Fatalf("%s/%d: committed offset (-want +got):\n%s", m.name, m.partition, diff)
	}
}
