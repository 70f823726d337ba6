package benchmarks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
)

// Guarantees a run may ask for: eddy's engine.ExactlyOnce and
// engine.AtLeastOnce, Kafka Streams' exactly_once_v2 and at_least_once.
const (
	ExactlyOnce = "exactly-once"
	AtLeastOnce = "at-least-once"
)

// Config configures a WA1 benchmark run (Run). Every system under test
// runs as a child process, measured from outside alike.
type Config struct {
	Variant WA1Variant
	Emit    WA1Emit
	// Guarantee is ExactlyOnce or AtLeastOnce: eddy and Kafka Streams
	// run with it; goka is at least once whatever it says.
	Guarantee string
	// Backend is "embedded" or "kafka" (Brokers).
	Backend string
	Brokers []string

	Events, Keys        int
	Seed                uint64
	Partitions, Workers int
	// Loop runs the hand-written loop (WA1Loop, in memory: the ceiling)
	// too, on tumbling windows in throughput mode.
	Loop bool
	// Peers run on Kafka after eddy, in order, on the same input.
	Peers []Peer
	// Rate > 0 appends the input live at Rate events/s while a system
	// runs and measures latency; 0 loads it before the clock starts.
	Rate float64
	// Timeout bounds each system's run (Kafka). Default 30 minutes.
	Timeout time.Duration
	// Dir holds the logs, state and results of the run; default a
	// temporary directory, removed at the end.
	Dir string
	// ResultsFile, if set, gets the final results of each system in
	// ResultsFile.<system> (WriteWA1VariantResults), comparable with cmp.
	ResultsFile string
	// Worker is the command line of eddy's worker process, to which the
	// harness appends "--config" and a WorkerConfig in JSON: for the eddy
	// command, {os.Executable(), "bench", "worker"}. WorkerEnv is added
	// to its environment.
	Worker    []string
	WorkerEnv []string
	// RepoRoot is the eddy repository, for the commit in the results.
	RepoRoot string
	// CPUProfiles, if set, is a directory where eddy's process writes a
	// CPU profile of its run: eddy-<backend>.pprof.
	CPUProfiles string

	// Logf receives notes: what runs, what is skipped and why.
	Logf func(format string, args ...any)
	// Progress receives the progress of the running system a few times
	// a second.
	Progress func(Progress)
	// OnResult receives each system's result as soon as it is measured.
	OnResult func(Result)
}

// Progress is how far a system (or the load, System "load") has come.
type Progress struct {
	System      string
	Done, Total int64
	Elapsed     time.Duration
}

// Result is the measurement of one system, one line of JSON.
type Result struct {
	System     string `json:"system"`
	Workload   string `json:"workload"`
	Variant    string `json:"variant"`
	Emit       string `json:"emit"`
	Guarantee  string `json:"guarantee"`
	Backend    string `json:"backend"` // "memory" for the loop
	Partitions int    `json:"partitions"`
	Workers    int    `json:"workers"`
	Events     int64  `json:"events"`
	Keys       int    `json:"keys"`
	// Rate is the live input rate in events/s; 0: preloaded.
	Rate        float64 `json:"rate"`
	LoadSeconds float64 `json:"load_seconds"`
	// Seconds is the timed part: embedded, the child's Run start to
	// return (the loop: the loop alone); Kafka, READY to complete
	// committed output. TotalSeconds is the child's life, exec to exit.
	Seconds      float64 `json:"seconds"`
	TotalSeconds float64 `json:"total_seconds"`
	EventsPerS   float64 `json:"events_per_s"`
	// EventsPerCPUS divides the events by CPUSeconds, the child's CPU time
	// (all threads, user and system) over the timed part.
	// TotalCPUSeconds is its CPU time over its whole life.
	EventsPerCPUS   float64 `json:"events_per_cpu_s"`
	CPUSeconds      float64 `json:"cpu_seconds"`
	TotalCPUSeconds float64 `json:"total_cpu_seconds"`
	PeakRSSBytes    int64   `json:"peak_rss_bytes"`
	// StateBytes is the size of the system's state directory on disk;
	// null for the loop, which has none.
	StateBytes *int64 `json:"state_bytes"`
	// Results is the number of final results, OutputRecords of records
	// written (updates and tombstones included; the loop: its results).
	Results       int   `json:"results"`
	OutputRecords int64 `json:"output_records"`
	// Latency is measured with Rate > 0 only: null in throughput mode.
	Latency   *Latency `json:"latency_ms"`
	Machine   Machine  `json:"machine"`
	GoVersion string   `json:"go_version"`
	Date      string   `json:"date"`
	Seed      uint64   `json:"seed"`
	Commit    string   `json:"commit,omitempty"`
}

// Machine describes the machine a result was measured on.
type Machine struct {
	OS       string `json:"os"`
	Arch     string `json:"arch"`
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model,omitempty"`
}

// Check is the comparison of a system's results with the loop's.
type Check struct {
	System string
	// Identical, or Diff names the first differing line; Skipped says
	// why nothing was compared.
	Identical bool
	Diff      string
	Skipped   string
}

// Report is what Run measured.
type Report struct {
	Results []Result
	Checks  []Check
}

// Mismatch reports whether a system's results differ from the loop's.
func (r *Report) Mismatch() bool {
	for _, c := range r.Checks {
		if !c.Identical && c.Skipped == "" {
			return true
		}
	}
	return false
}

// Peer is a system other than eddy and the loop, run on Kafka as a child
// process following benchmarks/PEERS.md.
type Peer struct {
	Name   string
	Format OutputFormat
	// Emits are the emit modes it runs in (its results are final either
	// way: a peer writing running counts runs in both).
	Emits []WA1Emit
	// Prepare builds the peer, once, before it first runs.
	Prepare func(ctx context.Context, logf func(string, ...any)) error
	// Guarantee is the processing guarantee the peer always gives
	// (goka: AtLeastOnce), recorded in its results; "" when it runs with
	// the run's Config.Guarantee (PeerArgs.Guarantee).
	Guarantee string
	// Command returns the command line of a run.
	Command func(a PeerArgs) *exec.Cmd
	// OutputTopic returns the topic its results are in (default a.Output).
	OutputTopic func(a PeerArgs) string
	// InputGroup returns the consumer group reading the input, whose
	// committed offsets are its progress (default a.AppID).
	InputGroup func(a PeerArgs) string
}

// PeerArgs are the settings of one peer run (see PEERS.md's flags).
type PeerArgs struct {
	Brokers                               []string
	Input, Output, AppID, Group, StateDir string
	Threads                               int
	// Guarantee is the run's Config.Guarantee.
	Guarantee string
}

func (c *Config) logf(format string, args ...any) {
	if c.Logf != nil {
		c.Logf(format, args...)
	}
}

func (c *Config) validate() error {
	switch {
	case c.Events <= 0 || c.Keys <= 1:
		return fmt.Errorf("benchmarks: want events > 0 and keys > 1, got %d and %d", c.Events, c.Keys)
	case c.Partitions <= 0 || c.Workers <= 0:
		return fmt.Errorf("benchmarks: want partitions and workers > 0, got %d and %d", c.Partitions, c.Workers)
	case c.Guarantee != ExactlyOnce && c.Guarantee != AtLeastOnce:
		return fmt.Errorf("benchmarks: unknown guarantee %q (want %s or %s)", c.Guarantee, ExactlyOnce, AtLeastOnce)
	case c.Backend != "embedded" && c.Backend != "kafka":
		return fmt.Errorf("benchmarks: unknown backend %q (want embedded or kafka)", c.Backend)
	case c.Backend == "kafka" && len(c.Brokers) == 0:
		return errors.New("benchmarks: the kafka backend needs brokers")
	case c.Rate < 0:
		return fmt.Errorf("benchmarks: negative rate %g", c.Rate)
	case len(c.Worker) == 0:
		return errors.New("benchmarks: no worker command")
	}
	if _, err := WA1VariantTopology("wa1", "in", "out", c.Variant, c.Emit); err != nil {
		return err
	}
	return nil
}

// Run runs WA1 on eddy and the other systems cfg names, one after the
// other, and compares every system's results with the loop's (tumbling
// windows). A system that fails does not stop the others; Run returns the
// report of those that ran and the errors of those that did not.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Minute
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "eddy-bench-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	h := &harness{cfg: cfg, dir: dir, report: &Report{}}
	h.base = ResultBase(cfg.Seed, cfg.RepoRoot)
	h.base.Workload, h.base.Variant, h.base.Emit, h.base.Guarantee = "wa1", string(cfg.Variant), string(cfg.Emit), cfg.Guarantee
	h.base.Backend, h.base.Partitions, h.base.Workers = cfg.Backend, cfg.Partitions, cfg.Workers
	h.base.Events, h.base.Keys, h.base.Rate = int64(cfg.Events), cfg.Keys, cfg.Rate
	err := h.run(ctx)
	return h.report, err
}

// harness is one Run.
type harness struct {
	cfg    Config
	dir    string
	base   Result
	report *Report
	// reference is the loop's results file (tumbling only), expected its
	// results.
	reference []byte
	expected  []WA1Result
	errs      []error
}

func (h *harness) run(ctx context.Context) error {
	cfg := &h.cfg
	tumbling := cfg.Variant == VariantTumbling
	if !tumbling {
		cfg.logf("variant %s: eddy only (the loop and the peers do tumbling windows); results are not checked", cfg.Variant)
	}
	// The reference comes first: the loop, which also measures it, or
	// the same loop in this process.
	if tumbling {
		if cfg.Loop && cfg.Rate == 0 {
			if err := h.runLoop(ctx); err != nil {
				return err // without a reference nothing else can be checked
			}
		} else {
			if cfg.Loop {
				cfg.logf("loop: skipped with --rate (it has no live input); computing the reference results in process")
			}
			results, _ := WA1Loop(WA1Events(cfg.Seed, cfg.Events, cfg.Keys))
			h.setReference(results)
		}
	}
	var err error
	switch cfg.Backend {
	case "embedded":
		if len(cfg.Peers) > 0 {
			cfg.logf("peers %s: skipped on the embedded backend (they run on Kafka)", peerNames(cfg.Peers))
		}
		err = h.runEmbedded(ctx)
	case "kafka":
		err = h.runKafka(ctx)
	}
	if err != nil {
		h.errs = append(h.errs, err)
	}
	return errors.Join(h.errs...)
}

func peerNames(peers []Peer) string {
	var names []string
	for _, p := range peers {
		names = append(names, p.Name)
	}
	return strings.Join(names, ",")
}

// setReference keeps the loop's results as the reference.
func (h *harness) setReference(results []WA1Result) {
	var b bytes.Buffer
	_ = WriteWA1VariantResults(&b, h.cfg.Variant, results)
	h.reference, h.expected = b.Bytes(), results
}

// finish completes r, compares its results with the reference, writes
// its results file and hands it on.
func (h *harness) finish(r Result, results []WA1Result) {
	if r.Seconds > 0 {
		r.EventsPerS = float64(r.Events) / r.Seconds
	}
	if r.CPUSeconds > 0 {
		r.EventsPerCPUS = float64(r.Events) / r.CPUSeconds
	}
	r.Results = len(results)
	var b bytes.Buffer
	_ = WriteWA1VariantResults(&b, h.cfg.Variant, results)
	if h.cfg.ResultsFile != "" {
		if err := os.WriteFile(h.cfg.ResultsFile+"."+r.System, b.Bytes(), 0o644); err != nil {
			h.errs = append(h.errs, err)
		}
	}
	check := Check{System: r.System}
	switch {
	case r.System == "loop":
		check.Skipped = "the reference"
	case h.reference == nil:
		check.Skipped = fmt.Sprintf("no reference for variant %s", h.cfg.Variant)
	default:
		check.Diff = firstDiff(h.reference, b.Bytes())
		check.Identical = check.Diff == ""
	}
	h.report.Checks = append(h.report.Checks, check)
	h.report.Results = append(h.report.Results, r)
	if h.cfg.OnResult != nil {
		h.cfg.OnResult(r)
	}
}

// firstDiff returns "" for equal files, else the first differing line of
// each ("line N: loop ... / got ...").
func firstDiff(want, got []byte) string {
	if bytes.Equal(want, got) {
		return ""
	}
	ws, gs := bufio.NewScanner(bytes.NewReader(want)), bufio.NewScanner(bytes.NewReader(got))
	for line := 1; ; line++ {
		wok, gok := ws.Scan(), gs.Scan()
		w, g := ws.Text(), gs.Text()
		switch {
		case !wok && !gok:
			return fmt.Sprintf("line %d: files differ", line) // unreachable for line-based files
		case !wok:
			return fmt.Sprintf("line %d: loop has no more lines, got %q", line, g)
		case !gok:
			return fmt.Sprintf("line %d: loop %q, got no more lines", line, w)
		case w != g:
			return fmt.Sprintf("line %d: loop %q, got %q", line, w, g)
		}
	}
}

// startWorker starts eddy's worker process on cfg.
func (h *harness) startWorker(name string, wc WorkerConfig) (*child, error) {
	js, err := json.Marshal(wc)
	if err != nil {
		return nil, err
	}
	args := append(append([]string(nil), h.cfg.Worker[1:]...), "--config", string(js))
	cmd := exec.Command(h.cfg.Worker[0], args...)
	cmd.Env = append(os.Environ(), h.cfg.WorkerEnv...)
	return startChild(name, cmd, filepath.Join(h.dir, name+".stderr"))
}

// watchProgress reports done() against total under system's name every
// 250 ms until the returned stop is called (once or more).
func (h *harness) watchProgress(system string, total int64, done func() int64) (stop func()) {
	if h.cfg.Progress == nil {
		return func() {}
	}
	start := time.Now()
	quit := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				h.cfg.Progress(Progress{System: system, Done: done(), Total: total, Elapsed: time.Since(start)})
			}
		}
	}()
	return sync.OnceFunc(func() {
		close(quit)
		<-finished
	})
}

// doneReport is what a child reports on its DONE line: its CPU time over
// the timed part, from its own getrusage (0 if it has none).
type doneReport interface{ cpuSeconds() float64 }

// bounded runs a child that speaks the START/DONE handshake and measures
// its CPU time over the timed part between them: from /proc/<pid>/stat
// at each, or, finer, the child's own getrusage over the same span when
// it reports one (/proc counts 10 ms ticks; both count the whole
// process). A report more than a few ticks off /proc is noted.
// The DONE line's JSON is decoded into rep.
func (h *harness) bounded(ctx context.Context, c *child, total int64, rep doneReport) (cpu time.Duration, err error) {
	defer c.kill() // on failure; a no-op once exited
	if _, err := c.await(ctx, lineStart); err != nil {
		return 0, err
	}
	cpu0, ok0 := c.cpu()
	c.proceed()
	stop := h.watchProgress(c.name, total, c.progress.Load)
	line, err := c.await(ctx, lineDone)
	cpu1, ok1 := c.cpu()
	c.sampleHWM() // it waits for proceed: still running
	stop()
	if err != nil {
		return 0, err
	}
	c.proceed()
	if err := json.Unmarshal([]byte(line), rep); err != nil {
		return 0, fmt.Errorf("%s: bad DONE line %q: %w", c.name, line, err)
	}
	if err := c.wait(ctx); err != nil {
		return 0, err
	}
	reported := time.Duration(rep.cpuSeconds() * float64(time.Second))
	switch {
	case ok0 && ok1 && reported > 0:
		if d := (cpu1 - cpu0) - reported; d > 50*time.Millisecond+reported/20 || d < -50*time.Millisecond-reported/20 {
			h.cfg.logf("%s: CPU time from /proc (%s) and from getrusage (%s) differ", c.name, cpu1-cpu0, reported)
		}
		cpu = reported
	case reported > 0:
		cpu = reported
	case ok0 && ok1:
		cpu = cpu1 - cpu0
	default: // no /proc: the whole life
		cpu, _ = c.usage()
	}
	return cpu, nil
}

// measured fills in what the exited child's rusage tells, and its peak
// RSS: the VmHWM sampled while it ran (sampleHWM, which must have run at
// the end of the measured part), else the rusage's maxrss. Not the
// larger of the two: on Linux a child's maxrss counts the harness's own
// peak RSS when the child was started (os/exec's vfork shares the
// harness's memory until exec, whose high-water mark the kernel then
// charges to the child), so a 2 MiB child of a 600 MiB harness reports
// 600 MiB. VmHWM is the child's own program's.
func measured(r *Result, c *child) {
	cpu, rss := c.usage()
	r.TotalCPUSeconds = cpu.Seconds()
	r.PeakRSSBytes = rss
	if c.peakSeen > 0 {
		r.PeakRSSBytes = c.peakSeen
	}
	r.TotalSeconds = c.ended.Sub(c.started).Seconds()
}

// runLoop runs the loop in a child and keeps its results as the reference.
func (h *harness) runLoop(ctx context.Context) error {
	cfg := &h.cfg
	path := filepath.Join(h.dir, "loop.results")
	c, err := h.startWorker("loop", WorkerConfig{System: "loop", Variant: VariantTumbling, Emit: cfg.Emit,
		Events: cfg.Events, Keys: cfg.Keys, Seed: cfg.Seed, ResultsFile: path})
	if err != nil {
		return err
	}
	var rep WorkerReport
	cpu, err := h.bounded(ctx, c, int64(cfg.Events), &rep)
	if err != nil {
		return err
	}
	r := h.base
	r.System, r.Backend, r.Workers, r.Partitions, r.Rate = "loop", "memory", 1, 1, 0
	r.LoadSeconds, r.Seconds, r.CPUSeconds = rep.LoadSeconds, rep.Seconds, cpu.Seconds()
	r.OutputRecords = rep.RecordsOut
	measured(&r, c)
	results, err := readResultsFile(path)
	if err != nil {
		return fmt.Errorf("loop: %w", err)
	}
	h.setReference(results)
	h.finish(r, results)
	return nil
}

// readResultsFile parses a file WriteWA1Results wrote.
func readResultsFile(path string) ([]WA1Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []WA1Result
	s := bufio.NewScanner(f)
	for line := 1; s.Scan(); line++ {
		fields := strings.Split(s.Text(), "\t")
		if len(fields) != 3 {
			return nil, fmt.Errorf("%s:%d: want key<TAB>start<TAB>count, got %q", path, line, s.Text())
		}
		start, err1 := strconv.ParseInt(fields[1], 10, 64)
		count, err2 := strconv.ParseInt(fields[2], 10, 64)
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		out = append(out, WA1Result{Key: fields[0], Start: start, Count: count})
	}
	return out, s.Err()
}

// runEmbedded runs eddy on an embedded log: loaded here beforehand and
// run bounded in the child, or, with a rate, appended to live by the
// child itself (the embedded log is single-process).
func (h *harness) runEmbedded(ctx context.Context) error {
	cfg := &h.cfg
	dir := filepath.Join(h.dir, "eddy")
	const input, output = "wa1-input", "wa1-output"
	log, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "log"), CleanInterval: -1})
	if err != nil {
		return err
	}
	err = log.CreateTopics(ctx, broker.TopicConfig{Name: input, Partitions: int32(cfg.Partitions)},
		broker.TopicConfig{Name: output, Partitions: int32(cfg.Partitions)})
	var load time.Duration
	if err == nil && cfg.Rate == 0 {
		var loaded atomic.Int64
		stop := h.watchProgress("load", int64(cfg.Events), loaded.Load)
		start := time.Now()
		_, err = produceWA1(ctx, logSender{log}, input, int32(cfg.Partitions), cfg.Seed, cfg.Events, cfg.Keys, 0, false, nil, &loaded)
		load = time.Since(start)
		stop()
		if err == nil {
			cfg.logf("loaded %d events into the embedded log in %s", cfg.Events, load.Round(time.Millisecond))
		}
	}
	if err := errors.Join(err, log.Close()); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	c, err := h.startWorker("eddy", WorkerConfig{System: "eddy", Backend: "embedded", Variant: cfg.Variant, Emit: cfg.Emit,
		Guarantee: cfg.Guarantee, Dir: dir, Input: input, Output: output, Partitions: cfg.Partitions, Workers: cfg.Workers,
		Events: cfg.Events, Keys: cfg.Keys, Seed: cfg.Seed, Rate: cfg.Rate, CPUProfile: h.profile("embedded")})
	if err != nil {
		return err
	}
	total := int64(cfg.Events)
	if cfg.Rate > 0 {
		total += int64(cfg.Partitions) // the end markers
	}
	var rep WorkerReport
	cpu, err := h.bounded(ctx, c, total, &rep)
	if err != nil {
		return err
	}
	if rep.Behind > 0 {
		cfg.logf("eddy: the producer fell %d ms behind its rate at worst", rep.Behind*10)
	}
	r := h.base
	r.System, r.LoadSeconds, r.Seconds, r.CPUSeconds = "eddy", load.Seconds(), rep.Seconds, cpu.Seconds()
	r.Latency = rep.Latency
	measured(&r, c)
	state := diskUsage(filepath.Join(dir, "state"))
	r.StateBytes = &state
	log, err = embedded.Open(embedded.Options{Dir: filepath.Join(dir, "log"), CleanInterval: -1})
	if err != nil {
		return err
	}
	defer log.Close()
	final, err := ReadWA1VariantResults(ctx, log, output, cfg.Variant)
	if err != nil {
		return fmt.Errorf("eddy: read results: %w", err)
	}
	r.OutputRecords = final.Records
	h.finish(r, final.Results())
	return nil
}

// profile returns the CPU profile file of eddy's run on backend, if any.
func (h *harness) profile(backend string) string {
	if h.cfg.CPUProfiles == "" {
		return ""
	}
	return filepath.Join(h.cfg.CPUProfiles, "eddy-"+backend+".pprof")
}

// diskUsage returns the bytes of the files under dir.
func diskUsage(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// thisMachine describes the machine.
func thisMachine() Machine {
	m := Machine{OS: runtime.GOOS, Arch: runtime.GOARCH, CPUs: runtime.NumCPU()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}

// commitOf returns the eddy commit: the binary's VCS stamp, else the
// repository's HEAD, with "-dirty" for uncommitted changes; "" if unknown.
func commitOf(root string) string {
	if info, ok := debug.ReadBuildInfo(); ok {
		var rev, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev != "" {
			if modified == "true" {
				rev += "-dirty"
			}
			return rev
		}
	}
	if root == "" {
		return ""
	}
	out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return ""
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += "-dirty"
	}
	return rev
}

// RepoRoot returns the root of the eddy repository containing dir: the
// nearest directory at or above it whose go.mod declares module
// github.com/eddyflow/eddy.
func RepoRoot(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil {
			first, _, _ := strings.Cut(string(b), "\n")
			if strings.TrimSpace(first) == "module github.com/eddyflow/eddy" {
				return d, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("benchmarks: %s is not inside the eddy repository (no go.mod of module github.com/eddyflow/eddy above it): run from the repository to use the goka and kstreams peers", abs)
		}
	}
}

// runID returns a random suffix for the names of a run's topics and groups.
func runID() string { return strconv.FormatUint(rand.Uint64()%(1<<40), 36) }
