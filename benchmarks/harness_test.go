package benchmarks

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var harnessSeed = flag.Uint64("harness.seed", 0, "harness tests: WA1 seed; 0 picks one (printed)")

// The test binary doubles as the harness's child processes: eddy's
// worker (as `eddy bench worker` is) and a fake goka peer. init runs
// before TestMain and the flag parsing of package testing.
const (
	workerTestEnv = "EDDY_BENCH_WORKER_TEST"
	fakePeerEnv   = "EDDY_BENCH_FAKE_PEER"
	fakeExtraEnv  = "EDDY_BENCH_FAKE_EXTRA" // the fake peer writes a wrong result
)

func init() {
	switch {
	case os.Getenv(workerTestEnv) != "":
		os.Exit(runTestWorker(os.Args[1:]))
	case os.Getenv(fakePeerEnv) != "":
		os.Exit(runFakePeer(os.Args[1:]))
	case os.Getenv(burnEnv) != "":
		os.Exit(runBurner())
	}
}

// runTestWorker is `eddy bench worker --config JSON`.
func runTestWorker(args []string) int {
	if len(args) != 2 || args[0] != "--config" {
		fmt.Fprintf(os.Stderr, "test worker: want --config JSON, got %q\n", args)
		return 2
	}
	var cfg WorkerConfig
	if err := json.Unmarshal([]byte(args[1]), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := RunWorker(ctx, cfg, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// testWorker returns the worker command line of the tests.
func testWorker() ([]string, []string) {
	return []string{os.Args[0]}, []string{workerTestEnv + "=1"}
}

func testSeed(t testing.TB) uint64 {
	seed := *harnessSeed
	if seed == 0 {
		seed = rand.Uint64N(1 << 20)
	}
	t.Logf("seed %d (replay with -harness.seed=%d)", seed, seed)
	return seed
}

// testConfig is a small embedded run of eddy and the loop.
func testConfig(t *testing.T) Config {
	worker, env := testWorker()
	return Config{Variant: VariantTumbling, Emit: EmitClose, Guarantee: ExactlyOnce, Backend: "embedded",
		Events: 30_000, Keys: 500, Seed: testSeed(t), Partitions: 2, Workers: 2, Loop: true,
		Worker: worker, WorkerEnv: env, Dir: t.TempDir(), Logf: t.Logf}
}

// checkResult checks the fields every result must have sane values in.
// The guarantee is the run's, or a peer's own.
func checkResult(t *testing.T, r Result, cfg Config) {
	t.Helper()
	bad := func(field string, v any) { t.Errorf("%s: %s = %v", r.System, field, v) }
	guarantee := cfg.Guarantee
	for _, p := range cfg.Peers {
		if p.Name == r.System && p.Guarantee != "" {
			guarantee = p.Guarantee
		}
	}
	if r.Workload != "wa1" || r.Variant != string(cfg.Variant) || r.Emit != string(cfg.Emit) || r.Guarantee != guarantee {
		bad("workload/variant/emit/guarantee", []string{r.Workload, r.Variant, r.Emit, r.Guarantee})
	}
	if r.Events != int64(cfg.Events) || r.Seed != cfg.Seed {
		bad("events/seed", []any{r.Events, r.Seed})
	}
	if r.Seconds <= 0 || r.TotalSeconds < r.Seconds {
		bad("seconds/total_seconds", []float64{r.Seconds, r.TotalSeconds})
	}
	if r.EventsPerS <= 0 || r.EventsPerS != float64(r.Events)/r.Seconds {
		bad("events_per_s", r.EventsPerS)
	}
	if r.CPUSeconds < 0 || r.TotalCPUSeconds <= 0 || r.CPUSeconds > r.TotalCPUSeconds+0.02 {
		bad("cpu_seconds/total_cpu_seconds", []float64{r.CPUSeconds, r.TotalCPUSeconds})
	}
	if r.PeakRSSBytes < 1<<20 || r.PeakRSSBytes > 1<<34 {
		bad("peak_rss_bytes", r.PeakRSSBytes)
	}
	if (r.StateBytes == nil) != (r.System == "loop") {
		bad("state_bytes", r.StateBytes)
	}
	if r.Results == 0 || r.OutputRecords < int64(r.Results) {
		bad("results/output_records", []any{r.Results, r.OutputRecords})
	}
	if (r.Latency != nil) != (cfg.Rate > 0 && r.System != "loop") {
		bad("latency_ms", r.Latency)
	}
	if l := r.Latency; l != nil && (l.P50 < 0 || l.P50 > l.P99 || l.P99 > l.Max || l.Outputs == 0 || l.Unmatched != 0) {
		bad("latency_ms", *l)
	}
	if r.Machine.CPUs <= 0 || r.Machine.OS == "" || r.GoVersion == "" || r.Date == "" {
		bad("machine/go_version/date", []any{r.Machine, r.GoVersion, r.Date})
	}
}

// systems returns the systems of results, in order.
func systems(rs []Result) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.System)
	}
	return out
}

// checkIdentical requires the systems of rep to be want and, on
// tumbling windows (the others have no reference), the results of every
// one but the loop to equal the loop's.
func checkIdentical(t *testing.T, rep *Report, want []string) {
	t.Helper()
	if diff := cmp.Diff(want, systems(rep.Results)); diff != "" {
		t.Errorf("systems (-want +got):\n%s", diff)
	}
	for i, c := range rep.Checks {
		switch {
		case c.System == "loop" || rep.Results[i].Variant != string(VariantTumbling):
			if c.Skipped == "" {
				t.Errorf("%s: results compared, want skipped: %+v", c.System, c)
			}
		case !c.Identical:
			t.Errorf("%s: results differ from the loop's: %s %s", c.System, c.Diff, c.Skipped)
		}
	}
	if rep.Mismatch() {
		t.Error("Mismatch() = true")
	}
}

// TestRunEmbedded runs eddy and the loop on the embedded log, each in a
// child process, and requires identical results files and sane numbers.
func TestRunEmbedded(t *testing.T) {
	cfg := testConfig(t)
	cfg.ResultsFile = filepath.Join(t.TempDir(), "wa1")
	var progress []Progress
	cfg.Progress = func(p Progress) { progress = append(progress, p) }
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, rep, []string{"loop", "eddy"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
	}
	loop, err := os.ReadFile(cfg.ResultsFile + ".loop")
	if err != nil {
		t.Fatal(err)
	}
	eddy, err := os.ReadFile(cfg.ResultsFile + ".eddy")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loop, eddy) || len(loop) == 0 {
		t.Errorf("results files differ or are empty: loop %d bytes, eddy %d bytes", len(loop), len(eddy))
	}
	for _, p := range progress {
		if p.Done < 0 || p.Done > p.Total || p.Total != int64(cfg.Events) {
			t.Errorf("progress %+v out of range", p)
		}
	}
}

// TestRunEmbeddedAtLeastOnce runs eddy at least once on the embedded log
// (whose commits stay atomic): its results equal the loop's, and the
// results record the guarantee.
func TestRunEmbeddedAtLeastOnce(t *testing.T) {
	cfg := testConfig(t)
	cfg.Guarantee, cfg.Events = AtLeastOnce, 10_000
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, rep, []string{"loop", "eddy"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
	}
}

// TestPeersGuarantee checks what the peers are told and record: Kafka
// Streams runs with the run's guarantee, goka is at least once always.
func TestPeersGuarantee(t *testing.T) {
	ks := KStreamsPeer("/repo")
	for _, tc := range []struct{ run, want string }{{"", ExactlyOnce}, {ExactlyOnce, ExactlyOnce}, {AtLeastOnce, AtLeastOnce}} {
		args := ks.Command(PeerArgs{Brokers: []string{"b:9092"}, Threads: 1, Guarantee: tc.run}).Args
		if i := slices.Index(args, "--guarantee"); i < 0 || i+1 == len(args) || args[i+1] != tc.want {
			t.Errorf("kstreams command for guarantee %q: %q, want --guarantee %s", tc.run, args, tc.want)
		}
	}
	if ks.Guarantee != "" {
		t.Errorf("kstreams' own guarantee %q, want the run's", ks.Guarantee)
	}
	if g := GokaPeer("/repo", t.TempDir()).Guarantee; g != AtLeastOnce {
		t.Errorf("goka's guarantee %q, want %s", g, AtLeastOnce)
	}
}

// TestRunEmbeddedLive appends the input live in eddy's process and
// measures latency.
func TestRunEmbeddedLive(t *testing.T) {
	cfg := testConfig(t)
	cfg.Events, cfg.Rate = 20_000, 40_000
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, rep, []string{"eddy"}) // no loop with a rate
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
		if r.Latency != nil && r.Latency.Outputs != r.Results {
			t.Errorf("latency of %d outputs, want one per result (%d)", r.Latency.Outputs, r.Results)
		}
	}
}

// TestRunEmbeddedVariants runs every variant and emit mode on eddy: the
// loop runs (and checks) the tumbling ones only.
func TestRunEmbeddedVariants(t *testing.T) {
	for _, v := range WA1Variants {
		for _, emit := range []WA1Emit{EmitClose, EmitUpdate} {
			t.Run(fmt.Sprintf("%s-%s", v, emit), func(t *testing.T) {
				cfg := testConfig(t)
				cfg.Variant, cfg.Emit, cfg.Events, cfg.Keys = v, emit, 3_000, 50
				rep, err := Run(context.Background(), cfg)
				if err != nil {
					t.Fatal(err)
				}
				want := []string{"eddy"}
				if v == VariantTumbling {
					want = []string{"loop", "eddy"}
				}
				checkIdentical(t, rep, want)
				for _, r := range rep.Results {
					checkResult(t, r, cfg)
				}
				if v != VariantTumbling && (len(rep.Checks) != 1 || rep.Checks[0].Skipped == "") {
					t.Errorf("checks %+v: want eddy's skipped", rep.Checks)
				}
			})
		}
	}
}

// TestRunUsage checks the settings Run refuses.
func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"guarantee", func(c *Config) { c.Guarantee = "maybe" }, `unknown guarantee "maybe"`},
		{"variant", func(c *Config) { c.Variant = "cubic" }, `unknown WA1 variant "cubic"`},
		{"emit", func(c *Config) { c.Emit = "never" }, `emit mode "never"`},
		{"backend", func(c *Config) { c.Backend = "pulsar" }, `unknown backend "pulsar"`},
		{"brokers", func(c *Config) { c.Backend = "kafka" }, "needs brokers"},
		{"events", func(c *Config) { c.Events = 0 }, "want events > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			worker, _ := testWorker()
			cfg := Config{Variant: VariantTumbling, Emit: EmitClose, Guarantee: ExactlyOnce, Backend: "embedded",
				Events: 10, Keys: 10, Partitions: 1, Workers: 1, Worker: worker}
			tt.edit(&cfg)
			_, err := Run(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Run: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

// newKfake starts an in-process Kafka cluster and returns its addresses.
func newKfake(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// newKfakeTxns is newKfake, also counting the transactional ids that the
// clients of the cluster, in any process, initialize.
func newKfakeTxns(t *testing.T) ([]string, *atomic.Int64) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var txns atomic.Int64
	c.ControlKey(int16(kmsg.InitProducerID), func(kr kmsg.Request) (kmsg.Response, error, bool) {
		if req := kr.(*kmsg.InitProducerIDRequest); req.TransactionalID != nil {
			txns.Add(1)
		}
		return nil, nil, false // observed only; the cluster answers
	})
	return c.ListenAddrs(), &txns
}

// fakeGokaPeer is a peer writing goka's output format, run as the test
// binary: it exercises the peer protocol and the goka decoding.
func fakeGokaPeer() Peer {
	return Peer{
		Name: "fakegoka", Format: FormatGoka, Emits: []WA1Emit{EmitClose, EmitUpdate}, Guarantee: AtLeastOnce,
		Command: func(a PeerArgs) *exec.Cmd {
			cmd := exec.Command(os.Args[0], "--brokers", strings.Join(a.Brokers, ","), "--input", a.Input,
				"--group", a.Group, "--state-dir", a.StateDir, "--threads", strconv.Itoa(a.Threads))
			cmd.Env = append(os.Environ(), fakePeerEnv+"=1")
			return cmd
		},
		OutputTopic: func(a PeerArgs) string { return a.Group + "-table" },
		InputGroup:  func(a PeerArgs) string { return a.Group + "-rekey" },
	}
}

// runFakePeer counts WA1 like the goka peer, in one goroutine: it reads
// the input in the group <group>-rekey, tracks stream-time per partition,
// drops late records and writes each window's running count to
// <group>-table as "key@start" -> decimal count.
func runFakePeer(args []string) int {
	fs := flag.NewFlagSet("fakegoka", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "")
	input := fs.String("input", "", "")
	group := fs.String("group", "", "")
	fs.String("state-dir", "", "")
	fs.Int("threads", 1, "")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	table := *group + "-table"
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(*brokers, ",")...), kgo.ConsumerGroup(*group+"-rekey"),
		kgo.ConsumeTopics(*input), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, -1, nil, table); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("READY")
	if os.Getenv(fakeExtraEnv) != "" { // a window no input has: a wrong result
		cl.Produce(ctx, &kgo.Record{Topic: table, Key: []byte("u1@999"), Value: []byte("1")}, nil)
	}
	streamTime := map[int32]int64{}
	counts := map[string]int64{}
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0
		}
		fetches.EachRecord(func(r *kgo.Record) {
			ts := r.Timestamp.UnixMilli()
			st, ok := streamTime[r.Partition]
			if !ok || ts > st {
				st = ts
				streamTime[r.Partition] = ts
			}
			start := ts - ts%wa1Size
			if start+wa1Size+wa1Grace <= st {
				return
			}
			k := string(r.Key) + "@" + strconv.FormatInt(start, 10)
			counts[k]++
			cl.Produce(ctx, &kgo.Record{Topic: table, Key: []byte(k), Value: []byte(strconv.FormatInt(counts[k], 10))}, nil)
		})
		if err := cl.Flush(ctx); err != nil {
			return 0
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
}

// TestRunKafkaFake runs eddy's Kafka worker, the loop and a fake goka
// peer against kfake, on one preloaded input.
func TestRunKafkaFake(t *testing.T) {
	cfg := testConfig(t)
	brokers, txns := newKfakeTxns(t)
	cfg.Backend, cfg.Brokers, cfg.Peers = "kafka", brokers, []Peer{fakeGokaPeer()}
	cfg.Timeout = 2 * time.Minute
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if txns.Load() == 0 {
		t.Error("no transactional id was initialized: eddy did not run exactly-once")
	}
	checkIdentical(t, rep, []string{"loop", "eddy", "fakegoka"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
		if r.System != "loop" && r.LoadSeconds <= 0 {
			t.Errorf("%s: load_seconds %v", r.System, r.LoadSeconds)
		}
	}
}

// TestRunKafkaFakeAtLeastOnce runs eddy's Kafka worker at least once and
// the fake goka peer on kfake: no transactional id is ever initialized,
// both give the loop's results, and eddy's result records the run's
// guarantee, fakegoka's its own.
func TestRunKafkaFakeAtLeastOnce(t *testing.T) {
	cfg := testConfig(t)
	brokers, txns := newKfakeTxns(t)
	cfg.Backend, cfg.Brokers, cfg.Peers, cfg.Loop = "kafka", brokers, []Peer{fakeGokaPeer()}, false
	cfg.Guarantee, cfg.Events, cfg.Timeout = AtLeastOnce, 10_000, 2*time.Minute
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n := txns.Load(); n != 0 {
		t.Errorf("%d transactional ids initialized in an at-least-once run", n)
	}
	checkIdentical(t, rep, []string{"eddy", "fakegoka"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
	}
}

// TestRunKafkaMismatch reports a peer whose results differ from the
// loop's, naming the first differing line.
func TestRunKafkaMismatch(t *testing.T) {
	cfg := testConfig(t)
	wrong := fakeGokaPeer()
	command := wrong.Command
	wrong.Command = func(a PeerArgs) *exec.Cmd {
		cmd := command(a)
		cmd.Env = append(cmd.Env, fakeExtraEnv+"=1")
		return cmd
	}
	cfg.Backend, cfg.Brokers, cfg.Peers, cfg.Loop = "kafka", newKfake(t), []Peer{wrong}, false
	cfg.Events, cfg.Timeout = 5_000, 2*time.Minute
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Mismatch() {
		t.Fatalf("no mismatch: %+v", rep.Checks)
	}
	// The extra window u1@999 sorts first among u1's: the loop has u1's
	// first real window on that line.
	if len(rep.Checks) != 2 || !rep.Checks[0].Identical || rep.Checks[1].Identical ||
		!regexp.MustCompile(`^line \d+: loop "u1\\t\d+\\t\d+", got "u1\\t999\\t1"$`).MatchString(rep.Checks[1].Diff) {
		t.Errorf("checks %+v: want eddy identical, fakegoka differing at u1@999", rep.Checks)
	}
}

// TestRunKafkaFakeLive appends the input live while each system runs on
// kfake, and measures latency.
func TestRunKafkaFakeLive(t *testing.T) {
	cfg := testConfig(t)
	cfg.Backend, cfg.Brokers, cfg.Peers = "kafka", newKfake(t), []Peer{fakeGokaPeer()}
	cfg.Events, cfg.Rate, cfg.Timeout = 10_000, 20_000, 2*time.Minute
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, rep, []string{"eddy", "fakegoka"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
	}
	// goka-format outputs are running counts: their latency is update latency.
	for i, want := range []string{"close", "update"} {
		if l := rep.Results[i].Latency; l == nil || l.Cause != want {
			t.Errorf("%s: latency %+v, want cause %q", rep.Results[i].System, l, want)
		}
	}
}

// TestRunKafkaFakeVariant runs a variant without a reference: its
// completion is the group's committed input.
func TestRunKafkaFakeVariant(t *testing.T) {
	cfg := testConfig(t)
	cfg.Backend, cfg.Brokers, cfg.Peers = "kafka", newKfake(t), []Peer{fakeGokaPeer()}
	cfg.Variant, cfg.Events, cfg.Keys, cfg.Timeout = VariantHopping, 5_000, 100, 2*time.Minute
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, rep, []string{"eddy"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
	}
}

// TestRunKafkaTimeout names the system that did not finish and how far
// it got.
func TestRunKafkaTimeout(t *testing.T) {
	cfg := testConfig(t)
	cfg.Backend, cfg.Brokers, cfg.Loop = "kafka", newKfake(t), false
	silent := fakeGokaPeer()
	silent.Name = "stuck"
	silent.OutputTopic = func(a PeerArgs) string { return a.Group + "-nothing" }
	cfg.Peers, cfg.Timeout = []Peer{silent}, 3*time.Second
	rep, err := Run(context.Background(), cfg)
	if err == nil || !strings.Contains(err.Error(), "stuck: timed out after 3s with 0 of") {
		t.Errorf("Run: %v, want stuck timing out with 0 results", err)
	}
	if diff := cmp.Diff([]string{"eddy"}, systems(rep.Results)); diff != "" {
		t.Errorf("systems (-want +got):\n%s", diff)
	}
}

// TestRealKafkaRun runs eddy and the loop on the real broker
// EDDY_KAFKA_BROKERS names.
func TestRealKafkaRun(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	cfg := testConfig(t)
	cfg.Backend, cfg.Brokers, cfg.Peers = "kafka", strings.Split(brokers, ","), []Peer{fakeGokaPeer()}
	cfg.Timeout = 2 * time.Minute
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	checkIdentical(t, rep, []string{"loop", "eddy", "fakegoka"})
	for _, r := range rep.Results {
		checkResult(t, r, cfg)
	}
}

// BenchmarkWA1Harness runs WA1 through the harness on the embedded log:
// eddy and the loop, each in a child process, measured from outside.
// -wa1.events, -wa1.keys and -wa1.partitions apply; -wa1.results FILE
// writes FILE.eddy and FILE.loop.
func BenchmarkWA1Harness(b *testing.B) {
	worker, env := testWorker()
	for b.Loop() {
		cfg := Config{Variant: VariantTumbling, Emit: EmitClose, Guarantee: ExactlyOnce, Backend: "embedded",
			Events: *wa1Events, Keys: *wa1Keys, Seed: 1, Partitions: *wa1Partitions, Workers: *wa1Partitions,
			Loop: true, Worker: worker, WorkerEnv: env, Dir: b.TempDir(), ResultsFile: *wa1Results, Logf: b.Logf}
		rep, err := Run(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Mismatch() {
			b.Fatalf("results differ: %+v", rep.Checks)
		}
		for _, r := range rep.Results {
			b.ReportMetric(r.EventsPerS, r.System+"-events/s")
			b.ReportMetric(r.EventsPerCPUS, r.System+"-events/cpu-s")
			b.ReportMetric(float64(r.PeakRSSBytes)/(1<<20), r.System+"-peak-rss-MiB")
		}
	}
}
