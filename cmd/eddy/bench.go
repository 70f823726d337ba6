package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eddyflow/eddy/benchmarks"
)

// benchCommands are the subcommands of "eddy bench". Hidden ones (the
// worker processes the harness starts) are not listed in the usage.
var benchCommands = map[string]command{
	"wa1":    {summary: "run the windowed-aggregation workload WA1 on eddy and its peers", run: benchWA1},
	"chart":  {summary: "draw a results file as an SVG bar chart of events/s", run: benchChart},
	"worker": {summary: "", run: benchWorker}, // hidden: a system under test
}

// benchListed are the subcommands the usage lists, in order.
var benchListed = []string{"wa1", "chart"}

func runBench(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sc := subcommands{name: "bench", usageLine: "SUBCOMMAND [FLAGS]", footer: benchFooter,
		commands: benchCommands, listed: benchListed}
	return sc.run(ctx, args, stdin, stdout, stderr)
}

const benchFooter = `Each benchmark runs every system in a child process, measured from outside
(events/s, CPU, peak RSS); --out FILE appends the results as JSON lines,
which bench chart draws.

examples:
  eddy bench wa1 --events 1000000
  eddy bench wa1 --backend kafka --brokers 127.0.0.1:9092 --out results.jsonl
  eddy bench nexmark --query all --out results.jsonl
  eddy bench chart --in results.jsonl --out chart.svg

Run ` + "`eddy bench SUBCOMMAND -h`" + ` for details.`

// workerCommand returns the command line of the harness's worker
// processes: this binary, `eddy bench worker`, and what to add to their
// environment. Tests replace it to run the test binary as eddy.
var workerCommand = func() ([]string, []string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, nil, fmt.Errorf("bench: cannot find the eddy binary to run its worker: %w", err)
	}
	return []string{exe, "bench", "worker"}, nil, nil
}

const wa1Description = `
Run WA1 on eddy and on its peers, one after the other, each in a child
process measured from outside (CPU time from /proc and rusage, peak RSS):
count events per key per 1-minute tumbling window with 5 s grace, final
results once per window when it closes. WA1's input (Zipf keys, 10 µs
apart, 10% up to 2 s out of order) is loaded before the clock starts;
loading is reported separately.

On the embedded backend the input is loaded into an embedded log and eddy
runs bounded: timed from Run's start until every event is processed and
the final results are committed. On Kafka the input (plus one end marker
per partition) is loaded once; each system then runs on it with its own
output, application id and group, timed from its READY line until its
committed output holds every expected result.

Peers: loop (the hand-written Go loop, in memory: the ceiling), goka and
kstreams (Kafka only; built from benchmarks/goka and benchmarks/kstreams
of the repository the command runs in). Variants other than tumbling run
eddy only, and are not checked; tumbling results of every system are
compared with the loop's, and a difference makes the command fail.

--guarantee at-least-once runs eddy with engine.AtLeastOnce (on Kafka:
no transactions) and Kafka Streams with processing.guarantee=at_least_once;
goka has no transactions and is at least once either way, which its
results record. On the embedded log eddy's commits stay atomic.

With --rate the input is appended live at that rate while each system
runs (Kafka; on the embedded log eddy's own process appends it), and
end-to-end latency is measured: from the acknowledged append of the input
record that caused an output to the moment the output is seen committed.

--results FILE writes FILE.<system>: lines key<TAB>windowStartMillis<TAB>count
(session windows: key<TAB>start<TAB>end<TAB>count), sorted, for cmp.
`

func benchWA1(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench wa1", "[FLAGS]", wa1Description,
		"eddy bench wa1 --events 1000000",
		"eddy bench wa1 --backend kafka --brokers 127.0.0.1:9092 --peers loop,goka,kstreams",
		"eddy bench wa1 --variant session --emit update --json --out results.jsonl",
		"eddy bench wa1 --backend kafka --brokers 127.0.0.1:9092 --rate 100000 --events 3000000")
	events := fs.Int("events", 10_000_000, "events of WA1")
	keys := fs.Int("keys", 100_000, "distinct keys (Zipf-distributed)")
	seed := fs.Uint64("seed", 1, "seed of the generator: the same seed gives every system the same events")
	partitions := fs.Int("partitions", 2, "input partitions")
	workers := fs.Int("workers", 2, "eddy's workers (a peer's --threads)")
	variant := fs.String("variant", "tumbling", "windows: tumbling (1 min), hopping (5 min every 1 min), sliding (1 min) or session (30 s gap); all with 5 s grace")
	emit := fs.String("emit", "close", "close: one final result per window; update: every update, as the cache lets through")
	guarantee := fs.String("guarantee", benchmarks.ExactlyOnce, "exactly-once or at-least-once: eddy's engine.Guarantee and Kafka Streams' processing.guarantee (goka is at-least-once always)")
	backend := fs.String("backend", "embedded", "embedded or kafka")
	brokers := fs.String("brokers", "", "Kafka brokers, host:port[,...] (--backend kafka)")
	peers := fs.String("peers", "", "comma list of systems besides eddy: loop, goka, kstreams (default: loop on embedded, loop,goka,kstreams on kafka; \"none\" for eddy alone)")
	results := fs.String("results", "", "write each system's final results to `FILE`.<system>")
	jsonOut := fs.Bool("json", false, "print one JSON line per result on stdout instead of a table")
	out := fs.String("out", "", "append the JSON lines of the results to `FILE` (for `eddy bench chart`)")
	rate := fs.Float64("rate", 0, "append the input live at this many events/s and measure latency; 0: preload it and measure throughput")
	timeout := fs.Duration("timeout", 30*time.Minute, "give up on a system (Kafka) after this long")
	dir := fs.String("dir", "", "keep the run's logs, state and stderr files in `DIR` (default: a temporary directory, removed)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of eddy's run to `DIR`/eddy-<backend>.pprof")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("bench wa1: unexpected argument %q", pos[0])}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	cfg := benchmarks.Config{
		Variant: benchmarks.WA1Variant(*variant), Emit: benchmarks.WA1Emit(*emit), Guarantee: *guarantee,
		Backend: *backend, Events: *events, Keys: *keys, Seed: *seed, Partitions: *partitions, Workers: *workers,
		Rate: *rate, Timeout: *timeout, Dir: *dir, ResultsFile: *results, CPUProfiles: *cpuprofile,
	}
	switch {
	case !slices.Contains(benchmarks.WA1Variants, cfg.Variant):
		return &usageError{fmt.Sprintf("bench wa1: --variant %q: want tumbling, hopping, sliding or session", *variant)}
	case cfg.Emit != benchmarks.EmitClose && cfg.Emit != benchmarks.EmitUpdate:
		return &usageError{fmt.Sprintf("bench wa1: --emit %q: want close or update", *emit)}
	case cfg.Guarantee != benchmarks.ExactlyOnce && cfg.Guarantee != benchmarks.AtLeastOnce:
		return &usageError{fmt.Sprintf("bench wa1: --guarantee %q: want exactly-once or at-least-once", *guarantee)}
	case cfg.Backend != "embedded" && cfg.Backend != "kafka":
		return &usageError{fmt.Sprintf("bench wa1: --backend %q: want embedded or kafka", *backend)}
	case cfg.Backend == "kafka" && *brokers == "":
		return &usageError{"bench wa1: --backend kafka needs --brokers host:port[,...]"}
	case cfg.Backend == "embedded" && *brokers != "":
		return &usageError{"bench wa1: --brokers is for --backend kafka"}
	case *events <= 0:
		return &usageError{fmt.Sprintf("bench wa1: --events %d: must be positive", *events)}
	case *keys < 2:
		return &usageError{fmt.Sprintf("bench wa1: --keys %d: must be at least 2 (Zipf needs two keys)", *keys)}
	case *partitions <= 0:
		return &usageError{fmt.Sprintf("bench wa1: --partitions %d: must be positive", *partitions)}
	case *workers <= 0:
		return &usageError{fmt.Sprintf("bench wa1: --workers %d: must be positive", *workers)}
	case *rate < 0:
		return &usageError{"bench wa1: --rate must not be negative; 0 (the default) preloads the input and measures throughput"}
	case *timeout <= 0:
		return &usageError{"bench wa1: --timeout must be positive, e.g. --timeout 30m"}
	}
	if *brokers != "" {
		cfg.Brokers = strings.Split(*brokers, ",")
	}
	names := []string{"loop"}
	if cfg.Backend == "kafka" {
		names = []string{"loop", "goka", "kstreams"}
	}
	if set["peers"] {
		names = nil
		if *peers != "none" && *peers != "" {
			names = strings.Split(*peers, ",")
		}
	}
	root, rootErr := benchmarks.RepoRoot(".")
	cfg.RepoRoot = root
	var binDir string
	for _, name := range names {
		switch name {
		case "loop":
			cfg.Loop = true
		case "goka", "kstreams":
			if cfg.Backend != "kafka" {
				fmt.Fprintf(stderr, "%s: skipped: it runs on Kafka only (--backend kafka)\n", name)
				continue
			}
			if rootErr != nil {
				return rootErr
			}
			if name == "kstreams" {
				cfg.Peers = append(cfg.Peers, benchmarks.KStreamsPeer(root))
				continue
			}
			if binDir == "" {
				if binDir, err = os.MkdirTemp("", "eddy-bench-bin-"); err != nil {
					return err
				}
				defer os.RemoveAll(binDir)
			}
			cfg.Peers = append(cfg.Peers, benchmarks.GokaPeer(root, binDir))
		default:
			return &usageError{fmt.Sprintf("bench wa1: --peers: unknown system %q (want a comma list of loop, goka and kstreams, or none)", name)}
		}
	}
	if cfg.Worker, cfg.WorkerEnv, err = workerCommand(); err != nil {
		return err
	}
	if *cpuprofile != "" {
		if err := os.MkdirAll(*cpuprofile, 0o755); err != nil {
			return err
		}
		if cfg.CPUProfiles, err = filepath.Abs(*cpuprofile); err != nil {
			return err
		}
	}

	var outFile *os.File
	if *out != "" {
		if outFile, err = os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644); err != nil {
			return err
		}
		defer outFile.Close()
	}
	bar := newProgressBar(stderr)
	cfg.Logf = func(format string, args ...any) {
		bar.clear()
		fmt.Fprintf(stderr, format+"\n", args...)
	}
	cfg.Progress = bar.update
	var writeErr error
	cfg.OnResult = func(r benchmarks.Result) {
		bar.clear()
		line, err := json.Marshal(r)
		if err != nil {
			writeErr = errors.Join(writeErr, err)
			return
		}
		if *jsonOut {
			fmt.Fprintf(stdout, "%s\n", line)
		} else {
			fmt.Fprintf(stderr, "%s: %s events/s, %.2f s\n", r.System, formatRate(r.EventsPerS), r.Seconds)
		}
		if outFile != nil {
			if _, err := fmt.Fprintf(outFile, "%s\n", line); err != nil {
				writeErr = errors.Join(writeErr, err)
			}
		}
	}
	report, runErr := benchmarks.Run(ctx, cfg)
	bar.clear()
	// The tables go to stdout, or to stderr when stdout holds JSON lines.
	tables := stdout
	if *jsonOut {
		tables = stderr
	}
	if report != nil && len(report.Results) > 0 {
		if !*jsonOut {
			fmt.Fprintln(tables)
			benchmarks.WriteTable(tables, report.Results)
		}
		fmt.Fprintln(tables)
		if cfg.Rate == 0 {
			fmt.Fprintln(tables, "latency: not measured (throughput mode: the input is preloaded; use --rate)")
		}
		benchmarks.WriteRatios(tables, report.Results)
		benchmarks.WriteChecks(tables, report.Checks)
	}
	if runErr != nil {
		return errors.Join(runErr, writeErr)
	}
	if writeErr != nil {
		return writeErr
	}
	if report.Mismatch() {
		return errors.New("bench wa1: results differ from the loop's (see above)")
	}
	return nil
}

func formatRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// progressBar draws a one-line live progress bar on a terminal, and
// nothing elsewhere (CI logs stay clean).
type progressBar struct {
	mu    sync.Mutex
	w     io.Writer
	on    bool
	drawn bool
}

func newProgressBar(w io.Writer) *progressBar {
	f, ok := w.(*os.File)
	on := false
	if ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progressBar{w: w, on: on}
}

func (b *progressBar) update(p benchmarks.Progress) {
	if !b.on {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	fmt.Fprintf(b.w, "\r\033[K%s", progressLine(p))
	b.drawn = true
}

// clear erases the bar, before other output.
func (b *progressBar) clear() {
	if !b.on {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.drawn {
		fmt.Fprint(b.w, "\r\033[K")
		b.drawn = false
	}
}

// progressLine renders p: "eddy [#####-----]  52%  520000/1000000  433.3k/s  1.2s".
func progressLine(p benchmarks.Progress) string {
	const width = 30
	frac := 0.0
	if p.Total > 0 {
		frac = min(1, max(0, float64(p.Done)/float64(p.Total)))
	}
	n := int(frac * width)
	rate := 0.0
	if s := p.Elapsed.Seconds(); s > 0 {
		rate = float64(p.Done) / s
	}
	return fmt.Sprintf("%-8s [%s%s] %3.0f%%  %d/%d  %s/s  %s", p.System, strings.Repeat("#", n), strings.Repeat("-", width-n),
		frac*100, p.Done, p.Total, formatRate(rate), p.Elapsed.Round(100*time.Millisecond))
}

func benchChart(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("bench chart", "--in FILE [--out chart.svg]",
		"Draw the results in FILE (JSON lines of `eddy bench ... --out FILE`) as a horizontal bar chart\nof events/s, one bar per result labelled system · variant · backend, as SVG.",
		"eddy bench chart --in results.jsonl --out chart.svg",
		`eddy bench chart --in results.jsonl --title "WA1 on Kafka, 10M events" > wa1.svg`)
	in := fs.String("in", "", "results file: JSON lines (required)")
	out := fs.String("out", "", "SVG file to write (default: stdout)")
	title := fs.String("title", "eddy bench: events/s", "chart title")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("bench chart: unexpected argument %q", pos[0])}
	}
	if *in == "" {
		return &usageError{"bench chart: missing --in FILE: the JSON lines of `eddy bench wa1 --out FILE` or `eddy bench nexmark --out FILE`"}
	}
	f, err := os.Open(*in)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("bench chart: --in %s: no such file: write one with `eddy bench wa1 --out %s` (or bench nexmark)", *in, shellQuote(*in))
	}
	if err != nil {
		return fmt.Errorf("bench chart: %w", err)
	}
	defer f.Close()
	results, err := benchmarks.ReadResults(f)
	if err != nil {
		return fmt.Errorf("bench chart: %s: %w: --in takes the JSON lines that `eddy bench ... --out FILE` appends", *in, err)
	}
	if len(results) == 0 {
		return fmt.Errorf("bench chart: %s holds no results: run a benchmark with --out %s first", *in, shellQuote(*in))
	}
	if *out == "" {
		return benchmarks.WriteChart(stdout, *title, results)
	}
	o, err := os.Create(*out)
	if err != nil {
		return fmt.Errorf("bench chart: --out: %w", err)
	}
	defer func() { err = errors.Join(err, o.Close()) }()
	return benchmarks.WriteChart(o, *title, results)
}

// benchWorker is a system under test, started by the harness: it runs
// benchmarks.RunWorker on the JSON config of --config.
func benchWorker(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench worker", "--config JSON", "A system under test, started by `eddy bench`: not for direct use.")
	config := fs.String("config", "", "the benchmarks.WorkerConfig, in JSON")
	if _, err := parseArgs(fs, args, stderr); err != nil {
		return err
	}
	var cfg benchmarks.WorkerConfig
	if err := json.Unmarshal([]byte(*config), &cfg); err != nil {
		return &usageError{fmt.Sprintf("bench worker: --config: %v", err)}
	}
	return benchmarks.RunWorker(ctx, cfg, stdin, stdout)
}
