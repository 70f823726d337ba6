package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
)

// The memory benchmark (RunMemory) measures the peak RSS of eddy holding a
// large state under a memory budget (engine.Options.MemoryBytes): a child
// process counts records per key (ResumeTopology) over Keys distinct keys
// on the embedded log, Passes records per key, each pass in a new random
// order, so that the first pass inserts every key and the later ones read
// and update keys spread over the whole state. The state outgrows every
// cache; what the budget bounds must then stay within it.

// MemoryConfig configures RunMemory.
type MemoryConfig struct {
	// Keys is the number of distinct keys; each pass has one record of
	// each. Passes defaults to 2.
	Keys, Passes int
	// Budget is eddy's engine.Options.MemoryBytes; 0 runs without one
	// (the engine's defaults), for comparison.
	Budget int64
	// Partitions of the input (default 4) and eddy's Workers (default 2).
	Partitions, Workers int
	// Seed orders the passes.
	Seed uint64
	// Dir holds the log and state of the run; default a temporary
	// directory, removed at the end.
	Dir string
	// Worker is the command line of the child, to which RunMemory appends
	// "--config" and a MemoryWorkerConfig in JSON: for the eddy command,
	// {os.Executable(), "bench", "memory-worker"}, which calls
	// RunMemoryWorker. WorkerEnv is added to its environment.
	Worker    []string
	WorkerEnv []string
	// HeapProfile, if set, is a file where the child writes a heap
	// profile (pprof) each time the heap live after a GC reaches a new
	// peak.
	HeapProfile string
	// CPUProfile, if set, is a file where the child writes a CPU profile
	// of its run.
	CPUProfile string
	// Logf receives notes; Progress the progress of the load and of the
	// child (systems "load" and "eddy").
	Logf     func(format string, args ...any)
	Progress func(Progress)
}

// MemoryResult is what RunMemory measured.
type MemoryResult struct {
	Keys   int   `json:"keys"`
	Passes int   `json:"passes"`
	Events int64 `json:"events"`
	// BudgetBytes is engine.Options.MemoryBytes, 0 for none.
	BudgetBytes int64 `json:"budget_bytes"`
	Partitions  int   `json:"partitions"`
	Workers     int   `json:"workers"`
	// PeakRSSBytes is the child's VmHWM at the end of its run.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// OverheadBytes is the documented overhead beyond the budget
	// (MemoryOverhead); LimitBytes their sum, what PeakRSSBytes must stay
	// within (0 without a budget).
	OverheadBytes int64 `json:"overhead_bytes"`
	LimitBytes    int64 `json:"limit_bytes"`
	// PeakHeapBytes is the most the child's Go heap held (live and not
	// yet collected objects), PeakGoBytes the most memory the Go runtime
	// had mapped (heap, stacks, its own metadata), sampled every 10 ms:
	// the rest of the RSS is Pebble's memory (outside the Go heap) and
	// the binary.
	PeakHeapBytes int64 `json:"peak_heap_bytes"`
	PeakGoBytes   int64 `json:"peak_go_bytes"`
	// AtPeak splits the child's RSS at its highest sample (every 10 ms).
	AtPeak RSSSplit `json:"at_peak"`
	// Seconds is the child's Run, start to return; EventsPerS the events
	// over it; CPUSeconds the child's CPU time over it.
	Seconds    float64 `json:"seconds"`
	EventsPerS float64 `json:"events_per_s"`
	CPUSeconds float64 `json:"cpu_seconds"`
	// StateBytes and LogBytes are the sizes on disk of the state DB and
	// of the embedded log (input, changelog, output) after the run.
	StateBytes int64 `json:"state_bytes"`
	LogBytes   int64 `json:"log_bytes"`
	// OutputRecords counts the records in the output topic.
	OutputRecords int64 `json:"output_records"`
}

// Within reports whether the peak RSS stayed within the budget plus the
// documented overhead; true without a budget.
func (r MemoryResult) Within() bool { return r.LimitBytes == 0 || r.PeakRSSBytes <= r.LimitBytes }

// Memory overhead: what an engine's process holds beyond its stores'
// budget (engine.Options.MemoryBytes). It does not grow with the state.
//
// Measured on a 2-core VM with a state of 10M keys (see RunMemory), it
// came to 81 MiB with one worker, 101 MiB with two and 109 MiB with four
// under a 128 MiB budget, 54 MiB with two under 512 MiB, varying by about
// 10 MiB from run to run.
const (
	// MemoryBaseOverhead covers the binary's resident pages (about 30 MiB
	// for the eddy command), the Go runtime (stacks, GC metadata, free
	// spans), Pebble's Go memory (open tables' metadata, WAL buffers,
	// batches being flushed, iterator and compaction buffers) with its GC
	// headroom, and what C's allocator keeps beyond the fifth of Pebble's
	// parts the budget leaves it (about 30 MiB at small budgets).
	MemoryBaseOverhead = 96 << 20
	// MemoryWorkerOverhead covers, per worker, the records of a poll
	// (engine.Options.MaxPollRecords, 10000 by default), the embedded
	// log's decoded batches (up to one stored batch, 1 MiB at most, per
	// input partition), the output and changelog records of the open
	// transaction (a worker commits early past 8 MiB of them), and their
	// GC headroom: measured, about 9 MiB.
	MemoryWorkerOverhead = 16 << 20
)

// MemoryOverhead returns the overhead documented for a budget: what the
// process may hold beyond MemoryBytes, for workers workers with the
// default MaxPollRecords and CommitInterval.
func MemoryOverhead(workers int) int64 {
	return MemoryBaseOverhead + int64(workers)*MemoryWorkerOverhead
}

// MemoryWorkerConfig tells the memory benchmark's child what to run.
type MemoryWorkerConfig struct {
	Dir         string `json:"dir"`
	Input       string `json:"input"`
	Output      string `json:"output"`
	Budget      int64  `json:"budget"`
	Workers     int    `json:"workers"`
	HeapProfile string `json:"heap_profile,omitempty"`
	CPUProfile  string `json:"cpu_profile,omitempty"`
}

// RSSSplit splits a process's resident memory (Linux's VmRSS) by owner.
type RSSSplit struct {
	RSSBytes int64 `json:"rss_bytes"`
	// GoBytes is what the Go runtime holds resident: what it mapped
	// less what it released to the OS (heap, GC headroom, stacks,
	// metadata).
	GoBytes int64 `json:"go_bytes"`
	// OtherAnonBytes is the rest of the anonymous memory: Pebble's block
	// caches and memtables, which it allocates with C's malloc, and the
	// allocator's slack.
	OtherAnonBytes int64 `json:"other_anon_bytes"`
	// FileBytes is file-backed: the binary's pages, mostly.
	FileBytes int64 `json:"file_bytes"`
}

// memoryReport is what the child prints on its DONE line.
type memoryReport struct {
	Seconds       float64  `json:"seconds"`
	CPUSeconds    float64  `json:"cpu_seconds"`
	RecordsIn     int64    `json:"records_in"`
	RecordsOut    int64    `json:"records_out"`
	PeakHeapBytes int64    `json:"peak_heap_bytes"`
	PeakGoBytes   int64    `json:"peak_go_bytes"`
	AtPeak        RSSSplit `json:"at_peak"`
}

func (r *memoryReport) cpuSeconds() float64 { return r.CPUSeconds }

const (
	memoryInput  = "input"
	memoryOutput = "counts"
)

// RunMemory loads the input into an embedded log, runs the child on it
// (bounded: every record processed, the last counts committed), measures
// it, and checks the output: every key's last count is Passes.
func RunMemory(ctx context.Context, cfg MemoryConfig) (MemoryResult, error) {
	if cfg.Passes == 0 {
		cfg.Passes = 2
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = 4
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	r := MemoryResult{Keys: cfg.Keys, Passes: cfg.Passes, Events: int64(cfg.Keys) * int64(cfg.Passes),
		BudgetBytes: cfg.Budget, Partitions: cfg.Partitions, Workers: cfg.Workers}
	switch {
	case cfg.Keys <= 0 || cfg.Passes <= 0:
		return r, fmt.Errorf("benchmarks: memory: want keys and passes > 0, got %d and %d", cfg.Keys, cfg.Passes)
	case cfg.Partitions <= 0 || cfg.Workers <= 0:
		return r, fmt.Errorf("benchmarks: memory: want partitions and workers > 0, got %d and %d", cfg.Partitions, cfg.Workers)
	case cfg.Budget < 0:
		return r, fmt.Errorf("benchmarks: memory: negative budget %d", cfg.Budget)
	case len(cfg.Worker) == 0:
		return r, errors.New("benchmarks: memory: no worker command")
	}
	if cfg.Budget > 0 {
		r.OverheadBytes = MemoryOverhead(cfg.Workers)
		r.LimitBytes = cfg.Budget + r.OverheadBytes
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "eddy-bench-memory-")
		if err != nil {
			return r, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	h := &harness{cfg: Config{Logf: cfg.Logf, Progress: cfg.Progress}, dir: dir}
	logDir := filepath.Join(dir, "log")
	if err := loadMemoryInput(ctx, h, logDir, cfg); err != nil {
		return r, fmt.Errorf("benchmarks: memory: load: %w", err)
	}

	wc := MemoryWorkerConfig{Dir: dir, Input: memoryInput, Output: memoryOutput, Budget: cfg.Budget,
		Workers: cfg.Workers, HeapProfile: cfg.HeapProfile, CPUProfile: cfg.CPUProfile}
	js, err := json.Marshal(wc)
	if err != nil {
		return r, err
	}
	args := append(append([]string(nil), cfg.Worker[1:]...), "--config", string(js))
	cmd := exec.Command(cfg.Worker[0], args...)
	cmd.Env = append(os.Environ(), cfg.WorkerEnv...)
	c, err := startChild("eddy", cmd, filepath.Join(dir, "eddy.stderr"))
	if err != nil {
		return r, err
	}
	var rep memoryReport
	cpu, err := h.bounded(ctx, c, r.Events, &rep)
	if err != nil {
		return r, err
	}
	var res Result
	measured(&res, c)
	r.PeakRSSBytes = res.PeakRSSBytes
	r.PeakHeapBytes, r.PeakGoBytes, r.AtPeak = rep.PeakHeapBytes, rep.PeakGoBytes, rep.AtPeak
	r.Seconds, r.CPUSeconds = rep.Seconds, cpu.Seconds()
	if r.Seconds > 0 {
		r.EventsPerS = float64(r.Events) / r.Seconds
	}
	if rep.RecordsIn != r.Events {
		return r, fmt.Errorf("benchmarks: memory: eddy processed %d records, want %d", rep.RecordsIn, r.Events)
	}
	r.StateBytes, r.LogBytes = diskUsage(filepath.Join(dir, "state")), diskUsage(logDir)
	n, err := checkMemoryOutput(ctx, logDir, cfg)
	r.OutputRecords = n
	return r, err
}

// loadMemoryInput writes Passes records of every key into the log's input
// topic, each pass in its own random order.
func loadMemoryInput(ctx context.Context, h *harness, logDir string, cfg MemoryConfig) (err error) {
	log, err := embedded.Open(embedded.Options{Dir: logDir, CleanInterval: -1})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, log.Close()) }()
	parts := int32(cfg.Partitions)
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: memoryInput, Partitions: parts},
		broker.TopicConfig{Name: memoryOutput, Partitions: parts}); err != nil {
		return err
	}
	var loaded atomic.Int64
	stop := h.watchProgress("load", int64(cfg.Keys)*int64(cfg.Passes), loaded.Load)
	defer stop()
	start := time.Now()
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(cfg.Keys)))
	batch := make([]broker.Record, 0, 10_000)
	for range cfg.Passes {
		for _, i := range rng.Perm(cfg.Keys) {
			batch = append(batch, ResumeRecord(memoryInput, i))
			if len(batch) == cap(batch) {
				if err := log.Produce(ctx, batch...); err != nil {
					return err
				}
				loaded.Add(int64(len(batch)))
				batch = batch[:0]
			}
		}
	}
	if len(batch) > 0 {
		if err := log.Produce(ctx, batch...); err != nil {
			return err
		}
	}
	h.cfg.logf("loaded %d records of %d keys into the embedded log in %s", int64(cfg.Keys)*int64(cfg.Passes), cfg.Keys, time.Since(start).Round(time.Millisecond))
	return nil
}

// checkMemoryOutput reads the output topic: counts only grow, so every
// key's last count is Passes exactly when Keys records say Passes and
// none says more. It returns the number of output records.
func checkMemoryOutput(ctx context.Context, logDir string, cfg MemoryConfig) (n int64, err error) {
	log, err := embedded.Open(embedded.Options{Dir: logDir, CleanInterval: -1})
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, log.Close()) }()
	var final int64
	for p := range int32(cfg.Partitions) {
		tp := broker.TopicPartition{Topic: memoryOutput, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return n, err
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(rec broker.Record) error {
			n++
			c, err := serde.Int64().Decode(rec.Value)
			switch {
			case err != nil:
				return fmt.Errorf("output %s at %d: %w", tp, rec.Offset, err)
			case c > int64(cfg.Passes):
				return fmt.Errorf("output %s at %d: key %s counted %d, more than its %d records", tp, rec.Offset, rec.Key, c, cfg.Passes)
			case c == int64(cfg.Passes):
				final++
			}
			return nil
		})
		if err != nil {
			return n, fmt.Errorf("benchmarks: memory: %w", err)
		}
	}
	if final != int64(cfg.Keys) {
		return n, fmt.Errorf("benchmarks: memory: %d keys reached their final count %d, want all %d", final, cfg.Passes, cfg.Keys)
	}
	return n, nil
}

// RunMemoryWorker is the memory benchmark's child: it runs eddy bounded on
// the log the parent loaded, with the budget cfg gives, speaking the
// START/DONE protocol of RunWorker on stdin and stdout, and reports the
// peaks of its Go memory.
func RunMemoryWorker(ctx context.Context, cfg MemoryWorkerConfig, stdin io.Reader, stdout io.Writer) (err error) {
	w := &workerIO{in: bufio.NewReader(stdin), out: stdout}
	eng, err := engine.Open(ResumeTopology(cfg.Input, cfg.Output), engine.Options{
		StateDir: cfg.Dir, Bounded: true, Workers: cfg.Workers, MemoryBytes: cfg.Budget})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	if err := w.handshake(lineStart); err != nil {
		return err
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	wg.Go(func() { w.reportProgress(stop, func() int64 { return eng.Metrics().RecordsIn }) })
	peaks := &memoryPeaks{profile: cfg.HeapProfile}
	wg.Go(func() { peaks.watch(stop) })
	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	start, cpu := time.Now(), selfCPU()
	err = eng.Run(ctx)
	elapsed, cpu := time.Since(start), selfCPU()-cpu
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	peaks.sample()
	m := eng.Metrics()
	heap, total, atPeak, perr := peaks.get()
	if perr != nil {
		return perr
	}
	b, err := json.Marshal(memoryReport{Seconds: elapsed.Seconds(), CPUSeconds: cpu.Seconds(),
		RecordsIn: m.RecordsIn, RecordsOut: m.RecordsOut, PeakHeapBytes: heap, PeakGoBytes: total, AtPeak: atPeak})
	if err != nil {
		return err
	}
	return w.handshake(lineDone + " " + string(b))
}

// memoryPeaks follows the peaks of the Go runtime's memory, from
// runtime/metrics (which, unlike ReadMemStats, does not stop the world),
// and writes a heap profile at each new peak of the heap.
type memoryPeaks struct {
	profile string
	samples []metrics.Sample

	mu          sync.Mutex
	heap, total int64
	atPeak      RSSSplit
	profiled    int64 // the heap at the last profile
	err         error
}

const (
	metricHeapObjects  = "/memory/classes/heap/objects:bytes"
	metricGoTotal      = "/memory/classes/total:bytes"
	metricHeapReleased = "/memory/classes/heap/released:bytes"
	metricHeapLive     = "/gc/heap/live:bytes"
)

func (p *memoryPeaks) watch(stop <-chan struct{}) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			p.sample()
		}
	}
}

func (p *memoryPeaks) sample() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.samples == nil {
		p.samples = []metrics.Sample{{Name: metricHeapObjects}, {Name: metricGoTotal}, {Name: metricHeapReleased}, {Name: metricHeapLive}}
	}
	metrics.Read(p.samples)
	heap, total := int64(p.samples[0].Value.Uint64()), int64(p.samples[1].Value.Uint64())
	p.heap, p.total = max(p.heap, heap), max(p.total, total)
	if st, err := os.ReadFile("/proc/self/status"); err == nil {
		rss, anon, file := procStatusKB(st, "VmRSS:"), procStatusKB(st, "RssAnon:"), procStatusKB(st, "RssFile:")
		if rss > p.atPeak.RSSBytes {
			goRes := total - int64(p.samples[2].Value.Uint64())
			p.atPeak = RSSSplit{RSSBytes: rss, GoBytes: goRes, OtherAnonBytes: anon - goRes, FileBytes: file}
		}
	}
	// A profile (of the heap live at the last GC) at each peak of the
	// live heap 5% above the last one: the last one written is of the
	// highest.
	if live := int64(p.samples[3].Value.Uint64()); p.profile != "" && p.err == nil && live > p.profiled+p.profiled/20 {
		p.profiled = live
		p.err = writeHeapProfile(p.profile)
	}
}

func (p *memoryPeaks) get() (heap, total int64, atPeak RSSSplit, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heap, p.total, p.atPeak, p.err
}

// procStatusKB returns the field of /proc/<pid>/status contents b in
// bytes (the file gives kB), 0 if absent.
func procStatusKB(b []byte, field string) int64 {
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n * 1024
			}
		}
	}
	return 0
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ParseBytes parses a size such as "256MiB", "1GiB", "64KiB" or "1048576"
// (bytes); "none" and "0" are 0.
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "none" {
		return 0, nil
	}
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q: want bytes or a number with KiB, MiB or GiB, such as 256MiB", s)
	}
	return n * mult, nil
}

// FormatBudget formats a budget for a table: "256.0 MiB", or "none".
func FormatBudget(n int64) string {
	if n == 0 {
		return "none"
	}
	return formatBytes(n)
}

// WriteMemoryTable writes results as a table: budget, peak RSS against
// budget plus overhead, throughput and state size.
func WriteMemoryTable(w io.Writer, results []MemoryResult) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "budget\tpeak RSS\tbudget+overhead\twithin\tpeak Go heap\tevents\tevents/s\tstate on disk\tlog on disk\t")
	for _, r := range results {
		limit, within := "-", "-"
		if r.LimitBytes > 0 {
			limit = formatBytes(r.LimitBytes)
			within = "yes"
			if !r.Within() {
				within = "NO"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%.0f\t%s\t%s\t\n", FormatBudget(r.BudgetBytes), formatBytes(r.PeakRSSBytes),
			limit, within, formatBytes(r.PeakHeapBytes), r.Events, r.EventsPerS, formatBytes(r.StateBytes), formatBytes(r.LogBytes))
	}
	tw.Flush()
}
