package benchmarks

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
)

var (
	resumeKeys       = flag.String("resume.keys", "1k,100k,1M", "ResumeAfterKill: comma-separated state sizes in keys (k and M suffixes)")
	resumePartitions = flag.Int("resume.partitions", 4, "ResumeAfterKill: input partitions")
	resumeSeed       = flag.Uint64("resume.seed", 0, "ResumeAfterKill: seed of the kill moments and inputs; 0 picks one (printed)")
	resumeCPUProfile = flag.String("resume.cpuprofile", "", "ResumeAfterKill: directory where each resumed child writes a CPU profile of its start, up to its first commit")
	resumeTrace      = flag.String("resume.trace", "", "ResumeAfterKill: directory where each resumed child writes an execution trace of its start (go tool trace -pprof=syscall shows where it waits)")
	resumeLog        = flag.String("resume.log", "", "ResumeAfterKill: directory where each resumed child writes the engine's debug log")
)

const (
	resumeInput  = "input"
	resumeOutput = "counts"
	// The child producer appends resumeTrickle records every millisecond,
	// so that a kill always finds uncommitted work and an open transaction.
	resumeTrickle = 10
	// resumeCommit and resumeCheckpoint are the engine's default commit
	// and checkpoint intervals, which the children run with.
	resumeCommit     = 100 * time.Millisecond
	resumeCheckpoint = time.Second
	// resumeChildEnv holds a child's resumeConfig as JSON; set, the test
	// binary runs as that child (see TestMain).
	resumeChildEnv = "EDDY_BENCH_RESUME_CHILD"
)

// TestMain runs the test binary as a ResumeAfterKill child when
// resumeChildEnv is set.
func TestMain(m *testing.M) {
	if env := os.Getenv(resumeChildEnv); env != "" {
		os.Exit(runResumeChild(env))
	}
	os.Exit(m.Run())
}

// resumeConfig tells a child process what to do.
type resumeConfig struct {
	// Mode is "build": create the input with one record per key, process
	// it, print "built", then keep processing a trickle; or "resume":
	// open the existing dir, process a trickle, and print "resumed" with
	// timings once a newly processed record is committed.
	Mode       string
	Dir        string
	Keys       int
	Partitions int
	Seed       uint64
	Exec       int64  // when the parent started the child, Unix ns
	CPUProfile string // file for a CPU profile up to "resumed"
	Trace      string // file for an execution trace up to "resumed"
	Log        string // file for the engine's debug log
}

// BenchmarkResumeAfterKill measures time-to-resume after kill -9: a child
// process builds a count-per-key state of N keys on the embedded log on
// disk, then processes a trickle of new records; the benchmark SIGKILLs it
// at a random moment and starts it again on the same directory, timing
// from the exec to the first commit of a newly processed record. Each
// iteration kills the child resumed by the previous one, so -benchtime Nx
// measures N resumes of one state (built once, untimed). At the end the
// state is checked against a reference computed from the input.
func BenchmarkResumeAfterKill(b *testing.B) {
	var sizes []int
	for _, s := range strings.Split(*resumeKeys, ",") {
		n, err := parseCount(s)
		if err != nil {
			b.Fatalf("-resume.keys: %v", err)
		}
		sizes = append(sizes, n)
	}
	seed := *resumeSeed
	if seed == 0 {
		seed = rand.Uint64()
	}
	b.Logf("seed %d (replay with -resume.seed=%d)", seed, seed)
	for _, n := range sizes {
		b.Run("keys="+formatCount(n), func(b *testing.B) { benchmarkResume(b, n, seed) })
	}
}

// resumeRun is what one resume measured.
type resumeRun struct {
	kill                 time.Duration // after the victim's start milestone
	total                time.Duration // exec to the line saying "resumed"
	exec, open, first    time.Duration // in the child: exec to main, engine.Open, Run to first commit
	restored, stateBytes int64
	logBytes             int64
}

func benchmarkResume(b *testing.B, keys int, seed uint64) {
	dir, aux := b.TempDir(), b.TempDir()
	r := rand.New(rand.NewPCG(seed, uint64(keys)))
	cfg := resumeConfig{Dir: dir, Keys: keys, Partitions: *resumePartitions}
	name := "keys=" + formatCount(keys)

	// The build is not timed: b.Loop resets the timer on its first call.
	start := time.Now()
	cfg.Mode, cfg.Seed = "build", r.Uint64()
	child, err := startResumeChild(cfg, filepath.Join(aux, "build.stderr"))
	if err != nil {
		b.Fatal(err)
	}
	defer func() { child.kill() }() // whichever child runs last
	line, err := child.await("built", 10*time.Minute)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: built in %s (%s)", name, time.Since(start).Round(time.Millisecond), line)
	// At most two commits' worth of trickle, doubled for a commit running
	// late: what a kill can leave in the changelog past the state DB's
	// committed offsets. (A commit changelogs each key once, so with few
	// keys the bound is two commits of every key.)
	// A kill leaves at most the commits since the last checkpoint, and the
	// one under way, to replay: the trickle of that time. (With few keys,
	// a whole restore is no bigger, and cannot be told apart.)
	maxTail := resumeTrickle * int64((resumeCheckpoint+4*resumeCommit)/time.Millisecond)

	var runs []resumeRun
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		var run resumeRun
		run.kill = time.Duration(20+r.IntN(500)) * time.Millisecond
		time.Sleep(run.kill)
		child.kill()
		run.stateBytes, run.logBytes = diskUsage(filepath.Join(dir, "state")), diskUsage(filepath.Join(dir, "log"))

		cfg.Mode, cfg.Seed = "resume", r.Uint64()
		cfg.CPUProfile = auxFile(*resumeCPUProfile, keys, i, "pprof")
		cfg.Trace = auxFile(*resumeTrace, keys, i, "trace")
		cfg.Log = auxFile(*resumeLog, keys, i, "log")
		b.StartTimer()
		exec := time.Now()
		cfg.Exec = exec.UnixNano()
		child, err = startResumeChild(cfg, filepath.Join(aux, fmt.Sprintf("resume-%d.stderr", i)))
		if err != nil {
			b.Fatal(err)
		}
		line, err := child.await("resumed", time.Minute)
		run.total = time.Since(exec)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		fields := parseFields(line)
		run.exec = time.Duration(fields["exec_us"]) * time.Microsecond
		run.open = time.Duration(fields["open_us"]) * time.Microsecond
		run.first = time.Duration(fields["first_us"]) * time.Microsecond
		run.restored = fields["restored"]
		runs = append(runs, run)
		if i < 7 { // the testing package keeps 10 lines of a benchmark's log
			b.Logf("%s run %d: killed %s after start; resumed in %s (exec→main %s, engine.Open %s, Run→first commit %s); restored %d records; state %.1f MB, log %.1f MB",
				name, i, run.kill, ms(run.total), ms(run.exec), ms(run.open), ms(run.first), run.restored,
				float64(run.stateBytes)/1e6, float64(run.logBytes)/1e6)
		}
		if run.restored > maxTail {
			b.Errorf("%s run %d: restored %d changelog records after a kill, more than a checkpoint interval can leave (%d): restore is not tail-only", name, i, run.restored, maxTail)
		}
		b.StartTimer()
	}
	b.StopTimer()
	child.kill()
	verifyResume(b, dir, keys, maxTail)

	median := func(f func(resumeRun) time.Duration) float64 {
		ds := make([]time.Duration, len(runs))
		for i, run := range runs {
			ds[i] = f(run)
		}
		slices.Sort(ds)
		return msf(ds[(len(ds)-1)/2]+ds[len(ds)/2]) / 2
	}
	totals := make([]time.Duration, len(runs))
	var restored int64
	for i, run := range runs {
		totals[i] = run.total
		restored = max(restored, run.restored)
	}
	last := runs[len(runs)-1]
	var each strings.Builder
	for _, run := range runs {
		fmt.Fprintf(&each, " %.0f/%.0f/%.0f", msf(run.total), msf(run.open), msf(run.first))
	}
	b.Logf("%s: %d resumes, ms min %.1f median %.1f max %.1f; each total/open/first:%s", name, len(runs),
		msf(slices.Min(totals)), median(func(r resumeRun) time.Duration { return r.total }), msf(slices.Max(totals)), each.String())
	b.ReportMetric(median(func(r resumeRun) time.Duration { return r.total }), "resume-ms")
	b.ReportMetric(msf(slices.Min(totals)), "resume-min-ms")
	b.ReportMetric(msf(slices.Max(totals)), "resume-max-ms")
	b.ReportMetric(median(func(r resumeRun) time.Duration { return r.exec }), "exec-ms")
	b.ReportMetric(median(func(r resumeRun) time.Duration { return r.open }), "open-ms")
	b.ReportMetric(median(func(r resumeRun) time.Duration { return r.first }), "first-commit-ms")
	b.ReportMetric(float64(restored), "restored-records") // the most of any resume
	b.ReportMetric(float64(last.stateBytes)/1e6, "state-MB")
	b.ReportMetric(float64(last.logBytes)/1e6, "log-MB")
}

// verifyResume runs the engine once more on dir, after the last kill,
// with one more record for every key, and checks the final count of
// every key against the input: each key's count comes out of its state,
// so a state that missed or doubled work would show.
func verifyResume(b *testing.B, dir string, keys int, maxTail int64) {
	ctx := context.Background()
	eng, err := engine.Open(ResumeTopology(resumeInput, resumeOutput), engine.Options{StateDir: dir, Bounded: true})
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	log := eng.Log()
	if err := produceKeys(ctx, log, keys); err != nil {
		b.Fatal(err)
	}
	if err := eng.Run(ctx); err != nil {
		b.Fatal(err)
	}
	if n := eng.Metrics().RestoredRecords; n > maxTail {
		b.Errorf("verify run: restored %d changelog records after the last kill, more than %d: restore is not tail-only", n, maxTail)
	}
	want := map[string]int64{}
	if err := readTopic(ctx, log, resumeInput, func(_ broker.TopicPartition, r broker.Record) error {
		want[string(r.Key)]++
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	got := map[string]int64{}
	if err := readTopic(ctx, log, resumeOutput, func(_ broker.TopicPartition, r broker.Record) error {
		n, err := serde.Int64().Decode(r.Value)
		got[string(r.Key)] = n
		return err
	}); err != nil {
		b.Fatal(err)
	}
	if len(want) != keys {
		b.Errorf("input has %d keys, want %d", len(want), keys)
	}
	bad := 0
	for k, n := range want {
		if got[k] != n {
			if bad++; bad <= 10 {
				b.Errorf("key %s: final count %d, want %d", k, got[k], n)
			}
		}
	}
	if bad > 0 {
		b.Errorf("%d of %d keys have a wrong final count", bad, len(want))
	}
}

// produceKeys appends one record for each key, in batches.
func produceKeys(ctx context.Context, log broker.Log, keys int) error {
	batch := make([]broker.Record, 0, 10000)
	for i := range keys {
		batch = append(batch, ResumeRecord(resumeInput, i))
		if len(batch) == cap(batch) || i == keys-1 {
			if err := log.Produce(ctx, batch...); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	return nil
}

// auxFile names the file of resume i of a diagnostic written to dir, if set.
func auxFile(dir string, keys, i int, ext string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, fmt.Sprintf("resume-%s-%d.%s", formatCount(keys), i, ext))
}

// resumeChild is a running child process; its stdout lines arrive on lines.
type resumeChild struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr string
	done   bool
}

func startResumeChild(cfg resumeConfig, stderr string) (*resumeChild, error) {
	env, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	f, err := os.Create(stderr)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), resumeChildEnv+"="+string(env))
	cmd.Stderr = f
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &resumeChild{cmd: cmd, lines: make(chan string, 16), stderr: stderr}
	go func() {
		defer close(c.lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			c.lines <- s.Text()
		}
	}()
	return c, nil
}

// await returns the first line of the child's output that starts with
// prefix, or an error with the end of its stderr if it exits first.
func (c *resumeChild) await(prefix string, timeout time.Duration) (string, error) {
	deadline := time.After(timeout)
	for {
		select {
		case line, ok := <-c.lines:
			if !ok {
				err := c.cmd.Wait()
				c.done = true
				tail, _ := os.ReadFile(c.stderr)
				if len(tail) > 4000 {
					tail = tail[len(tail)-4000:]
				}
				return "", fmt.Errorf("child exited before %q (%v); stderr:\n%s", prefix, err, tail)
			}
			if strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(strings.TrimPrefix(line, prefix)), nil
			}
		case <-deadline:
			return "", fmt.Errorf("no %q from the child after %s; its stderr is in %s", prefix, timeout, c.stderr)
		}
	}
}

// kill sends SIGKILL and reaps the child.
func (c *resumeChild) kill() {
	if c.done {
		return
	}
	c.done = true
	_ = c.cmd.Process.Kill()
	for range c.lines { // Wait must come after the last read of stdout
	}
	_ = c.cmd.Wait()
}

// runResumeChild is the child process: it returns its exit code.
func runResumeChild(env string) int {
	mainAt := time.Now()
	var cfg resumeConfig
	if err := json.Unmarshal([]byte(env), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := resumeChildRun(cfg, mainAt); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func resumeChildRun(cfg resumeConfig, mainAt time.Time) (err error) {
	// Diagnostics cover the start, up to "resumed".
	var stops []func()
	stopProfiles := sync.OnceFunc(func() {
		for _, stop := range stops {
			stop()
		}
	})
	defer stopProfiles()
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			return err
		}
		runtime.SetCPUProfileRate(1000) // 1 kHz: a resume lasts a few hundred ms
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if cfg.Trace != "" {
		f, err := os.Create(cfg.Trace)
		if err != nil {
			return err
		}
		if err := trace.Start(f); err != nil {
			return err
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := engine.Options{StateDir: cfg.Dir}
	if cfg.Log != "" {
		f, err := os.Create(cfg.Log)
		if err != nil {
			return err
		}
		defer f.Close()
		opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.Debug, Output: f, TimeFormat: "15:04:05.000000"})
	}
	eng, err := engine.Open(ResumeTopology(resumeInput, resumeOutput), opts)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, eng.Close()) }()
	opened := time.Now()
	log := eng.Log()
	if cfg.Mode == "build" {
		if err := log.CreateTopics(ctx, broker.TopicConfig{Name: resumeInput, Partitions: int32(cfg.Partitions)}); err != nil {
			return err
		}
		if err := produceKeys(ctx, log, cfg.Keys); err != nil {
			return err
		}
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 2)
	running := time.Now()
	wg.Go(func() {
		if err := eng.Run(ctx); err != nil {
			errc <- err
		}
	})
	trickle := func() {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(cfg.Seed, 1))
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				if err := log.Produce(ctx, ResumeRecords(r, resumeInput, cfg.Keys, resumeTrickle)...); err != nil {
					if ctx.Err() == nil {
						errc <- fmt.Errorf("trickle: %w", err)
					}
					return
				}
			}
		})
	}
	if cfg.Mode == "resume" {
		trickle()
	}

	// Wait for the milestone, watching every millisecond.
	want := int64(1)
	if cfg.Mode == "build" {
		want = int64(cfg.Keys)
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	// until waits for done; stopped tells that the run ended first (err
	// the engine's error, nil when interrupted).
	until := func(done func(engine.Metrics) bool) (stopped bool, err error) {
		for !done(eng.Metrics()) {
			select {
			case <-ctx.Done():
				return true, nil
			case err := <-errc:
				cancel()
				return true, err
			case <-tick.C:
			}
		}
		return false, nil
	}
	if stopped, err := until(func(m engine.Metrics) bool { return m.RecordsIn >= want }); stopped {
		return err
	}
	first := time.Now()
	m := eng.Metrics()
	if cfg.Mode == "build" {
		// The state is built once a checkpoint wrote it to the state DB:
		// a kill before that would replay all of it, not a tail.
		if stopped, err := until(func(now engine.Metrics) bool { return now.Checkpoints > m.Checkpoints }); stopped {
			return err
		}
		fmt.Printf("built produce=%s process=%s records=%d commits=%d\n",
			running.Sub(opened).Round(time.Millisecond), first.Sub(running).Round(time.Millisecond), m.RecordsIn, m.Commits)
		trickle()
	} else {
		stopProfiles()
		fmt.Printf("resumed exec_us=%d open_us=%d first_us=%d restored=%d records=%d commits=%d\n",
			mainAt.Sub(time.Unix(0, cfg.Exec)).Microseconds(), opened.Sub(mainAt).Microseconds(),
			first.Sub(running).Microseconds(), m.RestoredRecords, m.RecordsIn, m.Commits)
	}
	// Run on until killed (or interrupted: then stop gracefully).
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		cancel()
		return err
	}
}

// parseCount parses "1000", "1k" or "1M".
func parseCount(s string) (int, error) {
	s = strings.TrimSpace(s)
	mult := 1
	switch {
	case strings.HasSuffix(s, "k"):
		s, mult = strings.TrimSuffix(s, "k"), 1000
	case strings.HasSuffix(s, "M"):
		s, mult = strings.TrimSuffix(s, "M"), 1_000_000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad count %q", s)
	}
	return n * mult, nil
}

func formatCount(n int) string {
	switch {
	case n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}

// parseFields parses "a=1 b=2" into a map; values that are not integers
// are left out.
func parseFields(line string) map[string]int64 {
	m := map[string]int64{}
	for _, f := range strings.Fields(line) {
		k, v, _ := strings.Cut(f, "=")
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			m[k] = n
		}
	}
	return m
}

func ms(d time.Duration) string { return d.Round(100 * time.Microsecond).String() }

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
