package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/eddyflow/eddy/benchmarks"
)

func init() {
	benchCommands["memory"] = command{summary: "measure peak RSS against a memory budget with a large key-value state", run: benchMemory}
	benchCommands["memory-worker"] = command{run: benchMemoryWorker} // hidden: the system under test
	benchListed = append(benchListed, "memory")
}

const memoryDescription = `
Measure eddy's peak RSS under a memory budget (engine.Options.MemoryBytes)
with a key-value state larger than every cache: count records per key over
--keys distinct keys, --passes records per key (each pass in a new random
order, so the first inserts every key and the next ones read and update
keys spread over the whole state), on the embedded log on disk.

For each budget the input is loaded first, then eddy runs bounded in a
child process until every record is processed and committed. The table
shows the child's peak RSS (VmHWM) against the budget plus the documented
overhead (the Go runtime and binary, Pebble's memory outside its caches,
and per worker a poll's and a commit interval's records: see
benchmarks.MemoryOverhead), events/s and the state's size on disk. A
budget of "none" runs with the engine's defaults, for comparison. The
command fails if a run exceeds its budget plus overhead.
`

func benchMemory(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench memory", "[FLAGS]", memoryDescription,
		"eddy bench memory --keys 10000000 --budget 256MiB",
		"eddy bench memory --keys 1000000 --budget 128MiB,512MiB,none --json")
	keys := fs.Int("keys", 10_000_000, "distinct keys of the state")
	passes := fs.Int("passes", 2, "records per key, one per pass")
	budgets := fs.String("budget", "256MiB", "comma list of budgets (MemoryBytes), such as 128MiB,1GiB; none for no budget")
	partitions := fs.Int("partitions", 4, "input partitions")
	workers := fs.Int("workers", 2, "eddy's workers")
	seed := fs.Uint64("seed", 1, "seed of the passes' orders")
	jsonOut := fs.Bool("json", false, "print one JSON line per result on stdout instead of a table")
	dir := fs.String("dir", "", "keep each run's log, state and stderr in `DIR`/<budget> (default: a temporary directory, removed)")
	heapProfile := fs.String("heapprofile", "", "write a heap profile of eddy at its peak Go heap to `DIR`/heap-<budget>.pprof")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of eddy's run to `DIR`/cpu-<budget>.pprof")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("bench memory: unexpected argument %q", pos[0])}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"keys", *keys}, {"passes", *passes}, {"partitions", *partitions}, {"workers", *workers}} {
		if f.v <= 0 {
			return &usageError{fmt.Sprintf("bench memory: --%s %d: must be positive", f.name, f.v)}
		}
	}
	var sizes []int64
	for _, s := range strings.Split(*budgets, ",") {
		n, err := benchmarks.ParseBytes(s)
		if err != nil {
			return &usageError{fmt.Sprintf("bench memory: --budget: %v", err)}
		}
		sizes = append(sizes, n)
	}
	worker, env, err := workerCommand()
	if err != nil {
		return err
	}
	// The worker command ends with "worker"; this one's is "memory-worker".
	worker = append(slices.Clone(worker[:len(worker)-1]), "memory-worker")
	for _, d := range []string{*heapProfile, *cpuProfile} {
		if d != "" {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
	}
	bar := newProgressBar(stderr)
	var results []benchmarks.MemoryResult
	var errs []error
	for _, budget := range sizes {
		name := strings.ReplaceAll(benchmarks.FormatBudget(budget), " ", "")
		cfg := benchmarks.MemoryConfig{Keys: *keys, Passes: *passes, Budget: budget, Partitions: *partitions,
			Workers: *workers, Seed: *seed, Worker: worker, WorkerEnv: env, Progress: bar.update,
			Logf: func(format string, args ...any) {
				bar.clear()
				fmt.Fprintf(stderr, format+"\n", args...)
			}}
		if *dir != "" {
			cfg.Dir = filepath.Join(*dir, name)
		}
		if *heapProfile != "" {
			cfg.HeapProfile = filepath.Join(*heapProfile, "heap-"+name+".pprof")
		}
		if *cpuProfile != "" {
			cfg.CPUProfile = filepath.Join(*cpuProfile, "cpu-"+name+".pprof")
		}
		fmt.Fprintf(stderr, "budget %s: %d keys, %d passes...\n", benchmarks.FormatBudget(budget), *keys, *passes)
		r, err := benchmarks.RunMemory(ctx, cfg)
		bar.clear()
		if err != nil {
			errs = append(errs, fmt.Errorf("bench memory: budget %s: %w", benchmarks.FormatBudget(budget), err))
			continue
		}
		results = append(results, r)
		if *jsonOut {
			line, err := json.Marshal(r)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", line)
		}
		if !r.Within() {
			errs = append(errs, fmt.Errorf("bench memory: budget %s: peak RSS %d bytes exceeds the budget plus overhead (%d)",
				benchmarks.FormatBudget(budget), r.PeakRSSBytes, r.LimitBytes))
		}
	}
	if len(results) > 0 {
		tables := stdout
		if *jsonOut {
			tables = stderr
		}
		benchmarks.WriteMemoryTable(tables, results)
		fmt.Fprintf(tables, "\noverhead allowed beyond the budget: %s + %s per worker (benchmarks.MemoryOverhead)\n",
			benchmarks.FormatBudget(benchmarks.MemoryBaseOverhead), benchmarks.FormatBudget(benchmarks.MemoryWorkerOverhead))
	}
	return errors.Join(errs...)
}

// benchMemoryWorker is the memory benchmark's child (benchmarks.RunMemoryWorker).
func benchMemoryWorker(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench memory-worker", "--config JSON", "The system under test of `eddy bench memory`: not for direct use.")
	config := fs.String("config", "", "the benchmarks.MemoryWorkerConfig, in JSON")
	if _, err := parseArgs(fs, args, stderr); err != nil {
		return err
	}
	var cfg benchmarks.MemoryWorkerConfig
	if err := json.Unmarshal([]byte(*config), &cfg); err != nil {
		return &usageError{fmt.Sprintf("bench memory-worker: --config: %v", err)}
	}
	return benchmarks.RunMemoryWorker(ctx, cfg, stdin, stdout)
}
