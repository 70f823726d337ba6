package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/engine"
)

// WorkerConfig tells a worker process what to run. The harness starts
// every system under test as a child process, eddy and the loop too, so
// that all are measured alike from outside; eddy's child is the eddy
// binary itself (`eddy bench worker --config JSON`, hidden), which calls
// RunWorker.
type WorkerConfig struct {
	// System is "eddy" or "loop".
	System string `json:"system"`
	// Backend is "embedded" (a bounded run on the embedded log in
	// Dir/log, which the harness loaded) or "kafka" (an unbounded run
	// following the peer protocol of benchmarks/PEERS.md).
	Backend string     `json:"backend"`
	Variant WA1Variant `json:"variant"`
	Emit    WA1Emit    `json:"emit"`
	// Guarantee is eddy's processing guarantee: ExactlyOnce (also for
	// "") or AtLeastOnce.
	Guarantee string `json:"guarantee,omitempty"`
	// Dir is eddy's StateDir: the state DB in Dir/state and, on the
	// embedded log, the log in Dir/log.
	Dir        string   `json:"dir,omitempty"`
	Brokers    []string `json:"brokers,omitempty"`
	App        string   `json:"app,omitempty"`
	Input      string   `json:"input"`
	Output     string   `json:"output"`
	Partitions int      `json:"partitions"`
	Workers    int      `json:"workers"`
	// Events, Keys and Seed are WA1's, for the loop (which generates its
	// events in memory) and for live input on the embedded log.
	Events int    `json:"events"`
	Keys   int    `json:"keys"`
	Seed   uint64 `json:"seed"`
	// Rate > 0 on the embedded log: the worker appends WA1 live at Rate
	// events/s while eddy runs, and measures latency (the embedded log is
	// single-process: the harness cannot append from outside).
	Rate float64 `json:"rate,omitempty"`
	// ResultsFile is where the loop writes its results (WriteWA1Results).
	ResultsFile string `json:"results_file,omitempty"`
	// CPUProfile, if set, is where eddy writes a CPU profile of its timed
	// part (embedded) or of its run (Kafka).
	CPUProfile string `json:"cpu_profile,omitempty"`
}

// WorkerReport is what a worker prints on its DONE line.
type WorkerReport struct {
	// Seconds is the timed part: eddy's Run start to return, or the loop.
	Seconds     float64 `json:"seconds"`
	LoadSeconds float64 `json:"load_seconds,omitempty"` // the loop's event generation
	// CPUSeconds is the process's CPU time (all threads, user and
	// system) over the timed part, from getrusage: what the harness reads
	// in /proc/<pid>/stat, at microseconds rather than 10 ms ticks.
	CPUSeconds float64 `json:"cpu_seconds"`
	RecordsIn  int64   `json:"records_in"`
	RecordsOut int64   `json:"records_out"`
	Late       int64   `json:"late"`
	// Latency on live input (Rate > 0), and Behind: how far the producer
	// fell behind its schedule at worst, in 10 ms ticks.
	Latency *Latency `json:"latency,omitempty"`
	Behind  int      `json:"behind,omitempty"`
}

func (r *WorkerReport) cpuSeconds() float64 { return r.CPUSeconds }

// The worker's stdout protocol. PROGRESS lines carry the events done.
// At START and DONE the worker waits for a line on stdin, so that the
// harness reads its CPU time exactly around the timed part. READY (Kafka)
// is the peer protocol's: processing has begun, the harness times from
// there and stops the worker with SIGTERM.
const (
	lineProgress = "PROGRESS"
	lineStart    = "START"
	lineDone     = "DONE"
	lineReady    = "READY"
)

// RunWorker runs the worker cfg describes, speaking the protocol above on
// stdin and stdout. It returns when the work is done (embedded, loop) or
// ctx is done (Kafka: the harness sends SIGTERM).
func RunWorker(ctx context.Context, cfg WorkerConfig, stdin io.Reader, stdout io.Writer) error {
	w := &workerIO{in: bufio.NewReader(stdin), out: stdout}
	switch {
	case cfg.System == "loop":
		return runLoopWorker(cfg, w)
	case cfg.System == "eddy" && cfg.Backend == "embedded" && cfg.Rate > 0:
		return runEddyLiveWorker(ctx, cfg, w)
	case cfg.System == "eddy" && cfg.Backend == "embedded":
		return runEddyBoundedWorker(ctx, cfg, w)
	case cfg.System == "eddy" && cfg.Backend == "kafka":
		return runEddyKafkaWorker(ctx, cfg, w)
	}
	return fmt.Errorf("benchmarks: worker: unknown system %q on backend %q", cfg.System, cfg.Backend)
}

// workerIO writes protocol lines (from several goroutines) and waits for
// the harness at handshakes.
type workerIO struct {
	mu  sync.Mutex
	in  *bufio.Reader
	out io.Writer
}

func (w *workerIO) printf(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	fmt.Fprintf(w.out, format+"\n", args...)
}

// handshake prints line and waits for the harness's go-ahead.
func (w *workerIO) handshake(line string) error {
	w.printf("%s", line)
	if _, err := w.in.ReadString('\n'); err != nil {
		return fmt.Errorf("benchmarks: worker: waiting for the harness after %s: %w", line, err)
	}
	return nil
}

// done prints the DONE line with r and waits for the harness.
func (w *workerIO) done(r WorkerReport) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return w.handshake(lineDone + " " + string(b))
}

// reportProgress prints the events done every 200 ms until stop is closed.
func (w *workerIO) reportProgress(stop <-chan struct{}, done func() int64) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			w.printf("%s %d", lineProgress, done())
		}
	}
}

// runLoopWorker generates the events in memory (reported as load), runs
// WA1Loop on them (timed) and writes its results.
func runLoopWorker(cfg WorkerConfig, w *workerIO) error {
	if cfg.Variant != VariantTumbling {
		return fmt.Errorf("benchmarks: the loop does tumbling windows only, not %s", cfg.Variant)
	}
	load := time.Now()
	events := WA1Events(cfg.Seed, cfg.Events, cfg.Keys)
	loadTime := time.Since(load)
	if err := w.handshake(lineStart); err != nil {
		return err
	}
	start, cpu := time.Now(), selfCPU()
	results, late := WA1Loop(events)
	elapsed, cpu := time.Since(start), selfCPU()-cpu
	report := WorkerReport{Seconds: elapsed.Seconds(), CPUSeconds: cpu.Seconds(), LoadSeconds: loadTime.Seconds(),
		RecordsIn: int64(len(events)), RecordsOut: int64(len(results)), Late: int64(late)}
	if err := w.done(report); err != nil {
		return err
	}
	return writeResults(cfg.ResultsFile, cfg.Variant, results)
}

// writeResults writes results to path (if set) with WriteWA1VariantResults.
func writeResults(path string, v WA1Variant, results []WA1Result) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := WriteWA1VariantResults(f, v, results); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// workerEngine opens eddy on cfg's topology.
func workerEngine(cfg WorkerConfig, opts engine.Options) (*engine.Engine, error) {
	app := cfg.App
	if app == "" {
		app = "wa1"
	}
	topo, err := WA1VariantTopology(app, cfg.Input, cfg.Output, cfg.Variant, cfg.Emit)
	if err != nil {
		return nil, err
	}
	switch cfg.Guarantee {
	case "", ExactlyOnce:
		opts.Guarantee = engine.ExactlyOnce
	case AtLeastOnce:
		opts.Guarantee = engine.AtLeastOnce
	default:
		return nil, fmt.Errorf("benchmarks: worker: unknown guarantee %q (want %s or %s)", cfg.Guarantee, ExactlyOnce, AtLeastOnce)
	}
	opts.StateDir, opts.Workers = cfg.Dir, cfg.Workers
	return engine.Open(topo, opts)
}

// runEddyBoundedWorker runs eddy once over the input the harness loaded
// into the embedded log: every event processed and the final results
// committed (Options.Bounded), timed from Run's start to its return.
func runEddyBoundedWorker(ctx context.Context, cfg WorkerConfig, w *workerIO) (err error) {
	eng, err := workerEngine(cfg, engine.Options{Bounded: true})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	if err := w.handshake(lineStart); err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	go w.reportProgress(stop, func() int64 { return eng.Metrics().RecordsIn })
	start, cpu := time.Now(), selfCPU()
	err = eng.Run(ctx)
	elapsed, cpu := time.Since(start), selfCPU()-cpu
	close(stop)
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return err
	}
	m := eng.Metrics()
	return w.done(WorkerReport{Seconds: elapsed.Seconds(), CPUSeconds: cpu.Seconds(), RecordsIn: m.RecordsIn, RecordsOut: m.RecordsOut, Late: m.LateRecords})
}

// runEddyLiveWorker runs eddy unbounded on the embedded log while it
// appends WA1 at cfg.Rate and then the end markers, tails the committed
// output, and stops once every input record is committed (its output is
// then committed too: the embedded log commits both at once, under either
// guarantee). The timed part runs from the first append to that moment.
func runEddyLiveWorker(ctx context.Context, cfg WorkerConfig, w *workerIO) (err error) {
	eng, err := workerEngine(cfg, engine.Options{})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: cfg.Output, Partitions: int32(cfg.Partitions)}); err != nil {
		return err
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(runCtx) }()
	if err := w.handshake(lineStart); err != nil {
		return err
	}
	start, cpu := time.Now(), selfCPU()
	stop := make(chan struct{})
	go w.reportProgress(stop, func() int64 { return eng.Metrics().RecordsIn })
	defer close(stop)

	total := int64(cfg.Events + cfg.Partitions) // with the end markers
	alog := newAppendLog(cfg.Partitions)
	tail := newLogTail(log, cfg.Output, int32(cfg.Partitions), cfg.Variant)
	tailCtx, stopTail := context.WithCancel(ctx)
	tailDone := make(chan error, 1)
	go func() { tailDone <- tail.run(tailCtx, func() bool { return eng.Metrics().RecordsIn >= total }) }()
	var produced atomic.Int64
	behind, err := produceWA1(ctx, logSender{log}, cfg.Input, int32(cfg.Partitions), cfg.Seed, cfg.Events, cfg.Keys, cfg.Rate, true, alog, &produced)
	if err != nil {
		stopTail()
		return err
	}
	var tailErr error
	select {
	case tailErr = <-tailDone:
	case err := <-runErr:
		stopTail()
		return fmt.Errorf("eddy stopped before processing all input: %v", err)
	}
	elapsed, cpu := time.Since(start), selfCPU()-cpu
	stopTail()
	if tailErr != nil {
		return tailErr
	}
	stopRun()
	if err := <-runErr; err != nil {
		return err
	}
	m := eng.Metrics()
	d, unmatched, err := alog.latencies(cfg.Variant, cfg.Emit, tail.outs)
	if err != nil {
		return err
	}
	return w.done(WorkerReport{Seconds: elapsed.Seconds(), CPUSeconds: cpu.Seconds(), RecordsIn: m.RecordsIn, RecordsOut: m.RecordsOut,
		Late: m.LateRecords, Latency: latency(d, unmatched, cfg.Emit), Behind: behind})
}

// logTail follows the committed output of a topic on a broker.Log,
// stamping every output with the time it was first seen.
type logTail struct {
	log     broker.Log
	topic   string
	parts   int32
	variant WA1Variant
	next    []int64
	outs    []seenOutput
}

func newLogTail(log broker.Log, topic string, parts int32, v WA1Variant) *logTail {
	return &logTail{log: log, topic: topic, parts: parts, variant: v, next: make([]int64, parts)}
}

// run polls the topic every millisecond until finished reports true; it
// then reads to the end once more and returns.
func (t *logTail) run(ctx context.Context, finished func() bool) error {
	for {
		last := finished()
		for p := range t.parts {
			tp := broker.TopicPartition{Topic: t.topic, Partition: p}
			off, err := t.log.Offsets(ctx, tp)
			if err != nil {
				return err
			}
			if off.End <= t.next[p] {
				continue
			}
			now := time.Now().UnixNano()
			err = t.log.Read(ctx, tp, t.next[p], off.End, func(rec broker.Record) error {
				t.next[p] = rec.Offset + 1
				r, deleted, ok, err := DecodeWA1Output(FormatWindowed, t.variant, rec.Key, rec.Value)
				if err != nil {
					return err
				}
				if ok {
					t.outs = append(t.outs, seenOutput{r: r, deleted: deleted, at: now})
				}
				return nil
			})
			if err != nil {
				return err
			}
			t.next[p] = max(t.next[p], off.End)
		}
		if last {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// runEddyKafkaWorker runs eddy on Kafka as a peer of benchmarks/PEERS.md:
// READY once the engine's members hold every input partition, then
// processing until SIGTERM (ctx done), then a clean close.
func runEddyKafkaWorker(ctx context.Context, cfg WorkerConfig, w *workerIO) (err error) {
	kl, err := kafka.Open(ctx, kafka.Options{Brokers: cfg.Brokers})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, kl.Close()) }()
	ready := make(chan struct{})
	log := &readyLog{Log: kl, topic: cfg.Input, partitions: int32(cfg.Partitions), ready: ready,
		assigned: map[broker.TopicPartition]bool{}}
	eng, err := workerEngine(cfg, engine.Options{Log: log})
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	stopProfile, err := startCPUProfile(cfg.CPUProfile)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()
	go func() {
		select {
		case <-ready:
			w.printf("%s", lineReady)
		case <-ctx.Done():
		}
	}()
	return eng.Run(ctx)
}

// startCPUProfile starts a CPU profile into path (none if ""), and
// returns the function that stops it.
func startCPUProfile(path string) (stop func() error, err error) {
	if path == "" {
		return func() error { return nil }, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}, nil
}

// readyLog is a broker.Log that closes ready once the sessions it made
// were assigned every partition of the input topic: eddy's equivalent of
// Kafka Streams reaching RUNNING.
type readyLog struct {
	broker.Log
	topic      string
	partitions int32
	ready      chan struct{}

	mu       sync.Mutex
	assigned map[broker.TopicPartition]bool
	closed   bool
}

func (l *readyLog) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	s, err := l.Log.NewSession(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &readySession{Session: s, log: l}, nil
}

func (l *readyLog) note(tps []broker.TopicPartition) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, tp := range tps {
		if tp.Topic == l.topic {
			l.assigned[tp] = true
		}
	}
	if !l.closed && len(l.assigned) == int(l.partitions) {
		l.closed = true
		close(l.ready)
	}
}

type readySession struct {
	broker.Session
	log *readyLog
}

func (s *readySession) Poll(ctx context.Context, max int) (broker.Fetch, error) {
	f, err := s.Session.Poll(ctx, max)
	if len(f.Assigned) > 0 {
		s.log.note(f.Assigned)
	}
	return f, err
}

// selfCPU returns the CPU time this process has used: user and system,
// all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
