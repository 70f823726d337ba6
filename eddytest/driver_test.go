package eddytest_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/eddytest"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// wordCount splits lines into words, re-keys them by word (a repartition
// topic between two sub-topologies) and counts them.
func wordCount() (*topology.Builder, topology.Table[string, int64]) {
	b := topology.New("wc")
	lines := topology.StreamFrom(b, "lines", serde.String(), serde.String())
	words := topology.FlatMapValues(lines, func(_ string, l string) []string { return strings.Fields(l) }).WithValueSerde(serde.String())
	counts := topology.GroupBy(words, func(_ string, w string) string { return w }, serde.String()).Count(topology.Named("counts"))
	counts.To("word-counts")
	return b, counts
}

func randomLines(r *rand.Rand, n int) []string {
	lines := make([]string, n)
	for i := range lines {
		var ws []string
		for range 1 + r.IntN(6) {
			ws = append(ws, fmt.Sprintf("w%02d", r.IntN(40)))
		}
		lines[i] = strings.Join(ws, " ")
	}
	return lines
}

func countWords(lines []string) map[string]int64 {
	m := map[string]int64{}
	for _, l := range lines {
		for _, w := range strings.Fields(l) {
			m[w]++
		}
	}
	return m
}

// checkCounts checks the output and the store against the model: the
// output's last count per word, that every word's counts rise by one
// step or more and never repeat (a repeat would be a record processed
// twice, or an uncommitted update leaking), and every row of the store.
func checkCounts(t *testing.T, d *eddytest.Driver, counts topology.Table[string, int64], out []eddytest.Record[string, int64], want map[string]int64) {
	t.Helper()
	last := map[string]int64{}
	for _, r := range out {
		if r.Value <= last[r.Key] {
			t.Errorf("word %q: count %d after %d (partition %d offset %d)", r.Key, r.Value, last[r.Key], r.Partition, r.Offset)
		}
		last[r.Key] = r.Value
	}
	if diff := cmp.Diff(want, eddytest.Latest(out)); diff != "" {
		t.Errorf("output counts (-want +got):\n%s", diff)
	}
	got := map[string]int64{}
	for _, row := range eddytest.Rows(d, counts) {
		got[row.Key] = row.Value
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("store rows (-want +got):\n%s", diff)
	}
	for w, n := range want {
		row, ok := eddytest.Lookup(d, counts, w)
		if !ok || row.Value != n {
			t.Errorf("Lookup(%q) = %d, %v; want %d", w, row.Value, ok, n)
		}
	}
	if _, ok := eddytest.Lookup(d, counts, "absent"); ok {
		t.Errorf("Lookup(absent) found a row")
	}
}

func TestWordCountModel(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprint("partitions=", parts), func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 0))
			b, counts := wordCount()
			d := eddytest.New(t, b, eddytest.Options{Partitions: parts})
			in := eddytest.Input(d, "lines", serde.String(), serde.String())
			out := eddytest.Output(d, "word-counts", serde.String(), serde.Int64())
			lines := randomLines(r, 200)
			for i, l := range lines {
				in.Pipe(fmt.Sprint("line-", i), l, int64(i))
			}
			want := countWords(lines)
			checkCounts(t, d, counts, out.ReadRecords(), want)

			// Range is half-open, in the key serde's byte order.
			var wantRange []string
			for w := range want {
				if w >= "w10" && w < "w20" {
					wantRange = append(wantRange, w)
				}
			}
			slices.Sort(wantRange)
			var gotRange []string
			for _, row := range eddytest.Range(d, counts, "w10", "w20") {
				gotRange = append(gotRange, row.Key)
			}
			if diff := cmp.Diff(wantRange, gotRange); diff != "" {
				t.Errorf("Range(w10, w20) keys (-want +got):\n%s", diff)
			}
			if got := d.Engine().Metrics().RecordsIn; got < int64(len(lines)) {
				t.Errorf("RecordsIn = %d, want at least the %d lines", got, len(lines))
			}
		})
	}
}

// TestCrashRestart crashes the engine between commits, with and without
// a checkpoint since the last commit, and checks that every line counts
// exactly once after the restart.
func TestCrashRestart(t *testing.T) {
	for _, tc := range []struct {
		name       string
		checkpoint bool // advance the wall clock past CheckpointInterval before the crash
	}{{"restore-from-changelog", false}, {"after-checkpoint", true}} {
		t.Run(tc.name, func(t *testing.T) {
			seed := rand.Uint64()
			t.Logf("seed %d", seed)
			r := rand.New(rand.NewPCG(seed, 1))
			b, counts := wordCount()
			d := eddytest.New(t, b, eddytest.Options{Partitions: 2, ManualCommit: true})
			in := eddytest.Input(d, "lines", serde.String(), serde.String())
			out := eddytest.Output(d, "word-counts", serde.String(), serde.Int64())
			lines := randomLines(r, 120)
			for i, l := range lines[:60] {
				in.Pipe(fmt.Sprint("line-", i), l, int64(i))
			}
			d.Run() // processed and committed
			if tc.checkpoint {
				d.AdvanceWallClock(2 * time.Second)
				d.Commit()
			}
			for i, l := range lines[60:] {
				in.Pipe(fmt.Sprint("line-", 60+i), l, int64(60+i))
			}
			if n := d.Process(); n == 0 {
				t.Fatalf("Process processed nothing")
			}
			// Processed, not committed: lost in the crash.
			d.Crash()
			d.Restart()
			restored := d.Engine().Metrics().RestoredRecords
			d.Run()
			checkCounts(t, d, counts, out.ReadRecords(), countWords(lines))
			if !tc.checkpoint && restored == 0 {
				t.Errorf("no changelog records restored after a crash without a checkpoint")
			}
		})
	}
}

// TestDeterministic runs the same test twice and compares every output
// record, with its partition and offset.
func TestDeterministic(t *testing.T) {
	run := func() []eddytest.Record[string, int64] {
		b, _ := wordCount()
		d := eddytest.New(t, b, eddytest.Options{Partitions: 3, ManualCommit: true})
		in := eddytest.Input(d, "lines", serde.String(), serde.String())
		out := eddytest.Output(d, "word-counts", serde.String(), serde.Int64())
		r := rand.New(rand.NewPCG(7, 7))
		for i, l := range randomLines(r, 150) {
			in.Pipe(fmt.Sprint("line-", i), l, int64(i))
			if i%17 == 0 {
				d.Run()
			}
			if i == 100 {
				d.Process()
				d.Crash()
				d.Restart()
			}
		}
		d.Run()
		return out.ReadRecords()
	}
	first, second := run(), run()
	if len(first) == 0 {
		t.Fatal("no output")
	}
	if diff := cmp.Diff(first, second); diff != "" {
		t.Errorf("second run's output (-first +second):\n%s", diff)
	}
}

// TestWindows checks a tumbling count and a session count against a
// model, through FetchWindows, Rows and the output.
func TestWindows(t *testing.T) {
	b := topology.New("win")
	clicks := topology.StreamFrom(b, "clicks", serde.String(), serde.String())
	tumbling := topology.CountWindows(clicks.GroupByKey().WindowedBy(window.Tumbling(10*time.Second).Grace(time.Hour)), topology.Named("per-10s"))
	sessions := topology.CountSessions(clicks.GroupByKey().SessionWindowedBy(window.Sessions(5*time.Second).Grace(time.Hour)), topology.Named("sessions"))
	sessions.To("session-counts")
	d := eddytest.New(t, b, eddytest.Options{Partitions: 2})
	in := eddytest.Input(d, "clicks", serde.String(), serde.String())

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	users := []string{"ann", "bob", "cy"}
	// Both grace periods outlast the test: no window expires.
	times := map[string][]int64{}
	ts := int64(0)
	for range 150 {
		ts += int64(r.IntN(3000)) // in order: nothing is late
		u := users[r.IntN(len(users))]
		in.Pipe(u, "click", ts)
		times[u] = append(times[u], ts)
	}
	for _, u := range users {
		// Model: tumbling windows of 10 s.
		want := map[int64]int64{}
		for _, x := range times[u] {
			want[x-x%10000]++
		}
		got := map[int64]int64{}
		for _, row := range eddytest.Windows(d, tumbling, u, 0, ts) {
			if row.Key.Key != u || row.Key.End != row.Key.Start+10000 {
				t.Errorf("window row %+v for key %s", row.Key, u)
			}
			got[row.Key.Start] = row.Value
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: tumbling counts by start (-want +got):\n%s", u, diff)
		}
		// Model: sessions with a 5 s gap.
		type span struct{ Start, End, N int64 }
		var wantS []span
		for _, x := range times[u] {
			if n := len(wantS); n > 0 && x-wantS[n-1].End <= 5000 {
				wantS[n-1].End, wantS[n-1].N = x, wantS[n-1].N+1
				continue
			}
			wantS = append(wantS, span{x, x, 1})
		}
		var gotS []span
		for _, row := range eddytest.Windows(d, sessions, u, 0, ts) {
			gotS = append(gotS, span{row.Key.Start, row.Key.End, row.Value})
		}
		if diff := cmp.Diff(wantS, gotS); diff != "" {
			t.Errorf("%s: sessions (-want +got):\n%s", u, diff)
		}
	}
	all := eddytest.Rows(d, tumbling)
	n := int64(0)
	for _, row := range all {
		n += row.Value
	}
	if n != 150 {
		t.Errorf("tumbling rows count %d records, want 150", n)
	}
}

// fakeTB records failures instead of failing the test.
type fakeTB struct {
	*testing.T
	failed []string
}

func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed = append(f.failed, fmt.Sprintf(format, args...))
	panic(f)
}

// TestMisuse checks that misuse fails the test with a message saying
// what to do.
func TestMisuse(t *testing.T) {
	for name, tc := range map[string]struct {
		do   func(d *eddytest.Driver)
		want string
	}{
		"pipe after crash": {func(d *eddytest.Driver) {
			d.Crash()
			eddytest.Input(d, "lines", serde.String(), serde.String()).Pipe("k", "v", 1)
		}, "call Restart first"},
		"restart while running": {func(d *eddytest.Driver) { d.Restart() }, "Crash or Close it first"},
		"clock back":            {func(d *eddytest.Driver) { d.AdvanceWallClock(-time.Second) }, "does not go back"},
		"unknown output": {func(d *eddytest.Driver) {
			eddytest.Output(d, "nope", serde.String(), serde.String()).ReadRecords()
		}, `topic "nope" does not exist`},
	} {
		t.Run(name, func(t *testing.T) {
			f := &fakeTB{T: t}
			b, _ := wordCount()
			d := eddytest.New(f, b, eddytest.Options{})
			func() {
				defer func() {
					if p := recover(); p != nil && p != f {
						panic(p)
					}
				}()
				tc.do(d)
			}()
			if len(f.failed) != 1 || !strings.Contains(f.failed[0], tc.want) {
				t.Errorf("failures %q, want one containing %q", f.failed, tc.want)
			}
		})
	}
}

// TestTableAndSliding checks a TableFrom (upserts and tombstones) through
// Lookup and Rows, and a sliding-window count through Windows, against
// models.
func TestTableAndSliding(t *testing.T) {
	b := topology.New("tbl")
	prices := topology.TableFrom(b, "prices", serde.String(), serde.Int64(), topology.Named("prices"))
	ticks := topology.StreamFrom(b, "ticks", serde.String(), serde.String())
	sliding := topology.CountWindows(ticks.GroupByKey().WindowedBy(window.Sliding(5*time.Second).Grace(time.Hour)), topology.Named("sliding"))
	d := eddytest.New(t, b, eddytest.Options{Partitions: 3})
	pin := eddytest.Input(d, "prices", serde.String(), serde.Int64())
	tin := eddytest.Input(d, "ticks", serde.String(), serde.String())

	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	want := map[string]int64{}
	for i := range 200 {
		k := fmt.Sprint("p", r.IntN(15))
		if r.IntN(5) == 0 {
			pin.PipeTombstone(k, int64(i))
			delete(want, k)
			continue
		}
		v := r.Int64N(1000)
		pin.Pipe(k, v, int64(i))
		want[k] = v
	}
	got := map[string]int64{}
	for _, row := range eddytest.Rows(d, prices) {
		got[row.Key] = row.Value
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("table rows (-want +got):\n%s", diff)
	}
	for i := range 15 {
		k := fmt.Sprint("p", i)
		row, ok := eddytest.Lookup(d, prices, k)
		if w, wok := want[k]; ok != wok || row.Value != w {
			t.Errorf("Lookup(%s) = %d, %v; want %d, %v", k, row.Value, ok, w, wok)
		}
	}

	// Sliding windows (KS rule: a window [t-5s, t] per record, and the
	// windows a record starts); the model counts, for each window the
	// store holds, the records inside it, ends inclusive.
	var times []int64
	ts := int64(0)
	for range 60 {
		ts += int64(r.IntN(4000))
		tin.Pipe("k", "", ts)
		times = append(times, ts)
	}
	rows := eddytest.Windows(d, sliding, "k", 0, ts)
	if len(rows) == 0 {
		t.Fatal("no sliding windows")
	}
	for _, row := range rows {
		n := int64(0)
		for _, x := range times {
			if x >= row.Key.Start && x <= row.Key.End {
				n++
			}
		}
		if row.Value != n || row.Key.End != row.Key.Start+5000 {
			t.Errorf("window [%d, %d]: count %d, model %d", row.Key.Start, row.Key.End, row.Value, n)
		}
	}
	// Every record's own window [t-5s, t] exists.
	have := map[int64]bool{}
	for _, row := range rows {
		have[row.Key.End] = true
	}
	for _, x := range times {
		if x >= 5000 && !have[x] {
			t.Errorf("no sliding window ending at record time %d", x)
		}
	}
}
