package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

var (
	memoryKeys    = flag.String("memory.keys", "300k", "BenchmarkMemory: distinct keys of the state (k and M suffixes)")
	memoryPasses  = flag.Int("memory.passes", 2, "BenchmarkMemory: records per key")
	memoryBudgets = flag.String("memory.budgets", "64MiB,none", "BenchmarkMemory: comma list of budgets (engine.Options.MemoryBytes), none for no budget")
)

// memoryChildEnv makes the test binary the memory benchmark's child (as
// `eddy bench memory-worker` is); see init in harness_test.go.
const memoryChildEnv = "EDDY_BENCH_MEMORY_CHILD"

func init() {
	if os.Getenv(memoryChildEnv) != "" {
		os.Exit(runTestMemoryWorker(os.Args[1:]))
	}
}

func runTestMemoryWorker(args []string) int {
	if len(args) != 2 || args[0] != "--config" {
		fmt.Fprintf(os.Stderr, "memory child: want --config JSON, got %q\n", args)
		return 2
	}
	var cfg MemoryWorkerConfig
	if err := json.Unmarshal([]byte(args[1]), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := RunMemoryWorker(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// memoryConfig is a run of the memory benchmark with the test binary as
// the child.
func memoryConfig(t testing.TB, keys, passes int, budget int64) MemoryConfig {
	return MemoryConfig{Keys: keys, Passes: passes, Budget: budget, Seed: 1,
		Worker: []string{os.Args[0]}, WorkerEnv: []string{memoryChildEnv + "=1"},
		Dir: t.TempDir(), Logf: t.Logf}
}

// TestMemoryBudget runs the memory benchmark small: a state of 200k keys,
// well past a 48 MiB budget's caches, whose every final count is checked,
// and, unless the race detector (which adds memory of its own) is on, a
// peak RSS within the budget plus the documented overhead.
func TestMemoryBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("a child process with a state of 200k keys: not in -short")
	}
	keys := 200_000
	if raceEnabled {
		keys = 20_000
	}
	r, err := RunMemory(context.Background(), memoryConfig(t, keys, 2, 48<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("budget %s: peak RSS %s (Go %s, other %s, binary %s), limit %s, %.0f events/s, state %s on disk",
		FormatBudget(r.BudgetBytes), formatBytes(r.PeakRSSBytes), formatBytes(r.AtPeak.GoBytes),
		formatBytes(r.AtPeak.OtherAnonBytes), formatBytes(r.AtPeak.FileBytes), formatBytes(r.LimitBytes), r.EventsPerS, formatBytes(r.StateBytes))
	if r.OutputRecords == 0 || r.StateBytes == 0 {
		t.Errorf("output records %d, state bytes %d: want both > 0", r.OutputRecords, r.StateBytes)
	}
	if raceEnabled {
		t.Log("race detector on: peak RSS not checked")
		return
	}
	if !r.Within() {
		t.Errorf("peak RSS %s exceeds the budget %s plus the documented overhead %s", formatBytes(r.PeakRSSBytes),
			FormatBudget(r.BudgetBytes), formatBytes(r.OverheadBytes))
	}
}

// BenchmarkMemory runs the memory benchmark for each of -memory.budgets:
//
//	go test -run '^$' -bench Memory -benchtime 1x ./benchmarks/ -memory.keys 1M -memory.budgets 128MiB,512MiB,none
func BenchmarkMemory(b *testing.B) {
	keys, err := parseCount(*memoryKeys)
	if err != nil {
		b.Fatalf("-memory.keys: %v", err)
	}
	for _, s := range strings.Split(*memoryBudgets, ",") {
		budget, err := ParseBytes(s)
		if err != nil {
			b.Fatalf("-memory.budgets: %v", err)
		}
		b.Run("budget="+strings.ReplaceAll(FormatBudget(budget), " ", ""), func(b *testing.B) {
			var r MemoryResult
			for b.Loop() {
				if r, err = RunMemory(context.Background(), memoryConfig(b, keys, *memoryPasses, budget)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(r.PeakRSSBytes)/(1<<20), "peak-rss-MiB")
			if r.LimitBytes > 0 {
				b.ReportMetric(float64(r.LimitBytes)/(1<<20), "limit-MiB")
			}
			b.ReportMetric(r.EventsPerS, "events/s")
			b.ReportMetric(float64(r.StateBytes)/(1<<20), "state-MiB")
			if !raceEnabled && !r.Within() {
				b.Errorf("peak RSS %s exceeds the budget plus overhead %s", formatBytes(r.PeakRSSBytes), formatBytes(r.LimitBytes))
			}
		})
	}
}

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{in: "256MiB", want: 256 << 20},
		{in: "1GiB", want: 1 << 30},
		{in: "64 KiB", want: 64 << 10},
		{in: "1048576", want: 1 << 20},
		{in: "10B", want: 10},
		{in: "none", want: 0},
		{in: "0", want: 0},
		{in: "256MB", err: true},
		{in: "-1MiB", err: true},
		{in: "MiB", err: true},
		{in: "", err: true},
	}
	for _, tc := range tests {
		got, err := ParseBytes(tc.in)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestWriteMemoryTable(t *testing.T) {
	var buf bytes.Buffer
	WriteMemoryTable(&buf, []MemoryResult{
		{BudgetBytes: 128 << 20, PeakRSSBytes: 200 << 20, LimitBytes: 240 << 20, Events: 10, EventsPerS: 5},
		{BudgetBytes: 128 << 20, PeakRSSBytes: 300 << 20, LimitBytes: 240 << 20},
		{PeakRSSBytes: 400 << 20},
	})
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want a header and 3 rows:\n%s", len(lines), buf.String())
	}
	for i, want := range []string{"yes", "NO", "none"} {
		if !strings.Contains(lines[i+1], want) {
			t.Errorf("row %d %q lacks %q", i, lines[i+1], want)
		}
	}
}
