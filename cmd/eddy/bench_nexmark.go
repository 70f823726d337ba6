package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/eddyflow/eddy/benchmarks"
	"github.com/eddyflow/eddy/benchmarks/nexmark"
)

func init() {
	benchCommands["nexmark"] = command{summary: "run Nexmark queries on eddy (embedded log)", run: benchNexmark}
	benchCommands["nexmark-worker"] = command{run: benchNexmarkWorker} // hidden: one query
	benchListed = append(benchListed, "nexmark")
}

func benchNexmark(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench nexmark", "--query q0[,q1...|all] [FLAGS]",
		"Run Nexmark queries on eddy, on the embedded log on disk, one child process per query (so that\n"+
			"peak RSS is the query's). Each query's events are generated and loaded first (reported as load),\n"+
			"then the engine runs bounded until every event is processed and committed (timed).\n"+
			"Queries: "+strings.Join(nexmark.Queries(), ", ")+".",
		"eddy bench nexmark --query q0 --events 1000000",
		"eddy bench nexmark --query all --json --out results.jsonl")
	queries := fs.String("query", "", "comma list of queries, or all (required)")
	events := fs.Int("events", 1_000_000, "events (people, auctions and bids) per query")
	seed := fs.Uint64("seed", 1, "seed of the event generator")
	partitions := fs.Int("partitions", 2, "partitions of each input topic")
	workers := fs.Int("workers", 2, "eddy's workers")
	jsonOut := fs.Bool("json", false, "print one JSON line per result on stdout instead of a table")
	out := fs.String("out", "", "append the JSON lines of the results to `FILE` (for `eddy bench chart`)")
	dir := fs.String("dir", "", "keep each query's state and log in `DIR`/<query> (default: a temporary directory, removed)")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("bench nexmark: unexpected argument %q", pos[0])}
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"events", *events}, {"partitions", *partitions}, {"workers", *workers}} {
		if f.v <= 0 {
			return &usageError{fmt.Sprintf("bench nexmark: --%s %d: must be positive", f.name, f.v)}
		}
	}
	var names []string
	switch *queries {
	case "":
		return &usageError{"bench nexmark: missing --query: a comma list of " + strings.Join(nexmark.Queries(), ", ") + ", or all; e.g. --query q0,q5"}
	case "all":
		names = nexmark.Queries()
	default:
		for _, q := range strings.Split(*queries, ",") {
			if !slices.Contains(nexmark.Queries(), q) {
				return &usageError{fmt.Sprintf("bench nexmark: --query: unknown query %q (have %s, or all)", q, strings.Join(nexmark.Queries(), ", "))}
			}
			names = append(names, q)
		}
	}
	worker, env, err := workerCommand()
	if err != nil {
		return err
	}
	base := *dir
	if base == "" {
		if base, err = os.MkdirTemp("", "eddy-nexmark-"); err != nil {
			return err
		}
		defer os.RemoveAll(base)
	}
	var outFile *os.File
	if *out != "" {
		if outFile, err = os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return err
		}
		defer outFile.Close()
	}
	root, _ := benchmarks.RepoRoot(".")
	var results []benchmarks.Result
	var errs []error
	for _, q := range names {
		fmt.Fprintf(stderr, "nexmark %s: %d events...\n", q, *events)
		stateDir := filepath.Join(base, q)
		// The worker command ends with "worker"; this one's is "nexmark-worker".
		cmd := exec.CommandContext(ctx, worker[0], append(slices.Clone(worker[1:len(worker)-1]), "nexmark-worker",
			"--query", q, "--events", strconv.Itoa(*events), "--seed", strconv.FormatUint(*seed, 10),
			"--partitions", strconv.Itoa(*partitions), "--workers", strconv.Itoa(*workers), "--state-dir", stateDir)...)
		cmd.Env = append(os.Environ(), env...)
		var errBuf bytes.Buffer
		cmd.Stderr = &errBuf
		outBytes, err := cmd.Output()
		if err != nil {
			errs = append(errs, fmt.Errorf("nexmark %s: %v\n%s", q, err, bytes.TrimSpace(errBuf.Bytes())))
			continue
		}
		var res nexmarkWorkerResult
		if err := json.Unmarshal(bytes.TrimSpace(outBytes), &res); err != nil {
			errs = append(errs, fmt.Errorf("nexmark %s: bad output %q: %w", q, outBytes, err))
			continue
		}
		r := benchmarks.ResultBase(*seed, root)
		r.System, r.Workload, r.Variant, r.Guarantee, r.Backend = "eddy", "nexmark", res.Query, benchmarks.ExactlyOnce, "embedded"
		r.Partitions, r.Workers, r.Events = *partitions, *workers, res.Events
		r.LoadSeconds, r.Seconds, r.CPUSeconds = res.Load.Seconds(), res.Elapsed.Seconds(), res.CPU.Seconds()
		if r.Seconds > 0 {
			r.EventsPerS = float64(r.Events) / r.Seconds
		}
		if r.CPUSeconds > 0 {
			r.EventsPerCPUS = float64(r.Events) / r.CPUSeconds
		}
		r.Results, r.OutputRecords = int(res.Outputs), res.Outputs
		st := cmd.ProcessState
		r.TotalCPUSeconds = (st.UserTime() + st.SystemTime()).Seconds()
		// The worker's own VmHWM: its rusage would count this process's
		// memory too.
		r.PeakRSSBytes = res.PeakRSS
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok && r.PeakRSSBytes == 0 {
			r.PeakRSSBytes = int64(ru.Maxrss)
			if runtime.GOOS != "darwin" {
				r.PeakRSSBytes *= 1024
			}
		}
		state := dirBytes(filepath.Join(stateDir, "state"))
		r.StateBytes = &state
		results = append(results, r)
		line, _ := json.Marshal(r)
		if *jsonOut {
			fmt.Fprintf(stdout, "%s\n", line)
		}
		if outFile != nil {
			if _, err := fmt.Fprintf(outFile, "%s\n", line); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if !*jsonOut && len(results) > 0 {
		benchmarks.WriteTable(stdout, results)
		fmt.Fprintln(stdout, "\nCPU-S is the engine's CPU over the timed run; PEAK-RSS covers the query's process, loading included.")
	}
	return errors.Join(errs...)
}

// dirBytes returns the bytes of the files under dir.
func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, info os.FileInfo, err error) error {
		if err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
		return nil
	})
	return n
}

// benchNexmarkWorker runs one query in this process and prints its
// nexmark.Result in JSON.
func benchNexmarkWorker(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench nexmark-worker", "[FLAGS]", "One Nexmark query, started by `eddy bench nexmark`: not for direct use.")
	query := fs.String("query", "", "query")
	events := fs.Int("events", 0, "events")
	seed := fs.Uint64("seed", 0, "seed")
	partitions := fs.Int("partitions", 0, "partitions")
	workers := fs.Int("workers", 0, "workers")
	stateDir := fs.String("state-dir", "", "state dir")
	if _, err := parseArgs(fs, args, stderr); err != nil {
		return err
	}
	res, err := nexmark.Run(ctx, *query, nexmark.Config{Events: *events, Seed: *seed, Partitions: *partitions,
		Workers: *workers, StateDir: *stateDir})
	if err != nil {
		return err
	}
	out := nexmarkWorkerResult{Result: res}
	out.PeakRSS, _ = benchmarks.OwnPeakRSS()
	return json.NewEncoder(stdout).Encode(out)
}

// nexmarkWorkerResult is what a nexmark worker prints: the query's result
// and the worker's own peak RSS (0 if unknown).
type nexmarkWorkerResult struct {
	nexmark.Result
	PeakRSS int64 `json:"peak_rss_bytes"`
}
