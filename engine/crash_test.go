package engine_test

// The crash harness: a pipeline with two repartitions, a windowed count,
// a key-value count and a stream-stream join runs as a child process,
// which is killed with SIGKILL at random instants and at the engine's
// crash points (inside commits, during restore), then restarted; between
// runs its state directory is sometimes lost as well. At the end a last,
// bounded run finishes the input, and the committed output topics and
// the state store are compared with a naive model of the input.
//
// make test runs TestCrashEmbedded (20 kills), TestCrashKafka and
// TestCrashKafkaAtLeastOnce (5 kills each, kfake); make test-crash raises
// the counts (EDDY_CRASH_KILLS, EDDY_CRASH_KAFKA_KILLS) and adds
// TestRealKafkaCrash and TestRealKafkaCrashAtLeastOnce. Exactly-once runs
// must show no duplicate and nothing missing; at-least-once runs nothing
// missing, and they report the duplicates they saw. A failing run is
// replayed with -seed; EDDY_CRASH_LOG=debug (or info) logs the children's
// engines to stderr and prints the final run's log.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// crashChildEnv holds a crash child's crashConfig as JSON (see TestMain).
const crashChildEnv = "EDDY_ENGINE_CRASH_CHILD"

// crashConfig tells a crash child what to run.
type crashConfig struct {
	App     string
	Dir     string
	Brokers []string `json:",omitempty"`
	// At, "point:n", makes the child SIGKILL itself the n-th time the
	// engine reaches the crash point (see engine.SetCrashHook).
	At         string `json:",omitempty"`
	Bounded    bool   `json:",omitempty"`
	CacheBytes int
	// AtLeastOnce runs the engine with Guarantee AtLeastOnce.
	AtLeastOnce bool `json:",omitempty"`
	// Checkpoint is the engine's CheckpointInterval.
	Checkpoint time.Duration `json:",omitempty"`
}

const (
	crashPartitions = 4
	crashUsers      = 40
	crashWindow     = 10 * time.Second
	// crashJoinWindow bounds the order-payment join; payments fall within
	// ±40 s of their order, so some do not match.
	crashJoinWindow = 30 * time.Second
	// crashGrace is longer than any run's event-time span, so no record
	// is late and no joined record expires whatever the processing order:
	// the results depend on the input only.
	crashGrace = 2 * time.Hour
	crashBase  = 1_767_225_600_000 // 2026-01-01T00:00:00Z
)

// crashTopology: orders (key order id, value user) and payments (key
// order id, value payment id).
//   - orders re-keyed by user: a windowed count per user and 10 s window,
//     emitted on every update, to <app>-user-windows; and a count per user
//     to <app>-user-orders (each through its own repartition topic);
//   - orders left-joined with payments within 30 s to <app>-payments-matched:
//     value the payment id, or "-" for an order that matched none.
func crashTopology(app string) *topology.Builder {
	b := topology.New(app)
	orders := topology.StreamFrom(b, app+"-orders", serde.String(), serde.String(), topology.Named("orders"))
	payments := topology.StreamFrom(b, app+"-payments", serde.String(), serde.String(), topology.Named("payments"))
	byUser := topology.GroupBy(orders, func(_, user string) string { return user }, serde.String(), topology.Named("by-user"))
	windows := byUser.WindowedBy(window.Tumbling(crashWindow).Grace(crashGrace))
	topology.CountWindows(windows, topology.Named("user-windows")).ToStream().To(app + "-user-windows")
	byUser.Count(topology.Named("user-orders")).To(app + "-user-orders")
	joined := topology.LeftJoin(orders, payments, topology.JoinTimeDifference(crashJoinWindow).Grace(crashGrace),
		func(_ string, _ string, payment string, ok bool) string {
			if !ok {
				return "-"
			}
			return payment
		}, topology.Named("order-payments"))
	joined.WithValueSerde(serde.String()).To(app + "-payments-matched")
	return b
}

// runCrashChild runs crashTopology as configured until it is killed, a
// bounded run ends, or SIGINT. It prints "commits N" as commits happen.
func runCrashChild(cfgJSON string) int {
	var cfg crashConfig
	if err := json.Unmarshal([]byte(cfgJSON), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	if cfg.At != "" {
		point, nStr, _ := strings.Cut(cfg.At, ":")
		n, _ := strconv.ParseInt(nStr, 10, 64)
		var hits atomic.Int64
		engine.SetCrashHook(func(p string) {
			if p == point && hits.Add(1) == n {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {} // the signal is on its way
			}
		})
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	opts := engine.Options{
		StateDir:           cfg.Dir,
		InstanceID:         "crash", // stable: a restart fences the killed run's transactions at once
		Workers:            2,
		CommitInterval:     20 * time.Millisecond,
		CacheBytes:         cfg.CacheBytes,
		Bounded:            cfg.Bounded,
		CheckpointInterval: cfg.Checkpoint,
	}
	if cfg.AtLeastOnce {
		opts.Guarantee = engine.AtLeastOnce
	}
	if lvl := os.Getenv("EDDY_CRASH_LOG"); lvl != "" {
		opts.Logger = hclog.New(&hclog.LoggerOptions{Level: hclog.LevelFromString(lvl), Output: os.Stderr})
	}
	if len(cfg.Brokers) > 0 {
		// A killed run's members stay in the group until their session
		// times out; kfake then also waits up to the rebalance timeout
		// for them to rejoin: both are short here so restarts are quick.
		opts.Kafka = &kafka.Options{Brokers: cfg.Brokers, SessionTimeout: crashSessionTimeout, RebalanceTimeout: 3 * time.Second, HeartbeatInterval: 200 * time.Millisecond}
	}
	eng, err := engine.Open(crashTopology(cfg.App), opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	done := make(chan struct{})
	go func() {
		var last int64
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if n := eng.Metrics().Commits; n != last {
				last = n
				fmt.Printf("commits %d\n", n)
			}
		}
	}()
	err = eng.Run(ctx)
	close(done)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	if err := eng.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 1
	}
	return 0
}

// crashSessionTimeout is the crash children's Kafka session timeout: a
// killed run's group member is dropped that long after the kill. The
// brokers must allow it (kfake below; scripts/kafka sets
// group.min.session.timeout.ms=1000).
const crashSessionTimeout = 1500 * time.Millisecond

// crashModel is the naive model: what the committed output must be.
type crashModel struct {
	nextOrder, nextPayment int
	orderTs                map[string]int64
	orderUser              map[string]string
	payments               map[string][]crashPayment // by order
	windows                map[string]int64          // "user@start" -> count
	users                  map[string]int64
}

type crashPayment struct {
	id string
	ts int64
}

func newCrashModel() *crashModel {
	return &crashModel{
		orderTs:   map[string]int64{},
		orderUser: map[string]string{},
		payments:  map[string][]crashPayment{},
		windows:   map[string]int64{},
		users:     map[string]int64{},
	}
}

// chunk appends n orders and their payments to the model and returns
// them as records. Event time advances 50 ms per order, with up to 3 s of
// disorder; payments fall within ±40 s of their order.
func (m *crashModel) chunk(r *rand.Rand, app string, n int) []broker.Record {
	var recs []broker.Record
	for range n {
		i := m.nextOrder
		m.nextOrder++
		id, user := fmt.Sprintf("o%d", i), fmt.Sprintf("u%d", r.IntN(crashUsers))
		ts := crashBase + int64(i)*50 - r.Int64N(3000)
		m.orderTs[id], m.orderUser[id] = ts, user
		m.users[user]++
		m.windows[fmt.Sprintf("%s@%d", user, ts-ts%crashWindow.Milliseconds())]++
		recs = append(recs, broker.Record{Topic: app + "-orders", Partition: broker.AnyPartition, Key: []byte(id), Value: []byte(user), Timestamp: ts})
		np := 0
		switch x := r.Float64(); {
		case x < 0.6:
			np = 1
		case x < 0.75:
			np = 2
		}
		for range np {
			p := crashPayment{id: fmt.Sprintf("p%d", m.nextPayment), ts: ts + r.Int64N(80_001) - 40_000}
			m.nextPayment++
			m.payments[id] = append(m.payments[id], p)
			recs = append(recs, broker.Record{Topic: app + "-payments", Partition: broker.AnyPartition, Key: []byte(id), Value: []byte(p.id), Timestamp: p.ts})
		}
	}
	// Payments of an order and the order itself reach the log in any
	// order: shuffle within the chunk.
	r.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	return recs
}

// joined returns the left join's results that do not depend on the
// processing order, "order|payment" or "order|-", each with its
// multiplicity (1), and the orders that have a match: with them, "order|-"
// may also appear once, when the order was processed past its window
// before its payment arrived (Kafka Streams' rule: an unmatched record
// whose window has passed is emitted at once, and not retracted).
func (m *crashModel) joined() (want map[string]int, early map[string]bool) {
	want, early = map[string]int{}, map[string]bool{}
	d := crashJoinWindow.Milliseconds()
	for id, ts := range m.orderTs {
		matched := false
		for _, p := range m.payments[id] {
			if p.ts >= ts-d && p.ts <= ts+d {
				want[id+"|"+p.id]++
				matched = true
			}
		}
		if matched {
			early[id+"|-"] = true
		} else {
			want[id+"|-"]++
		}
	}
	return want, early
}

// crashBackend is where a crash run's log lives.
type crashBackend struct {
	name    string
	brokers []string // nil: the embedded log in the state dir
	// startup bounds the random delay of kills at random instants: about
	// how long a run takes to start processing.
	startup time.Duration
	// withLog runs fn with the log open (the embedded log only while no
	// child runs: it is locked by its process).
	withLog func(t *testing.T, fn func(broker.Log))
}

func embeddedCrashBackend(dir string) crashBackend {
	return crashBackend{name: "embedded", startup: 400 * time.Millisecond, withLog: func(t *testing.T, fn func(broker.Log)) {
		t.Helper()
		l, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "log")})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		fn(l)
	}}
}

func kafkaCrashBackend(t *testing.T, name string, brokers []string) crashBackend {
	l, err := kafka.Open(context.Background(), kafka.Options{Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return crashBackend{name: name, brokers: brokers, startup: 2 * time.Second, withLog: func(_ *testing.T, fn func(broker.Log)) { fn(l) }}
}

// crashKills returns the kill count asked for in env, or def.
func crashKills(t *testing.T, env string, def int) int {
	if s := os.Getenv(env); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", env, s)
		}
		return n
	}
	return def
}

func TestCrashEmbedded(t *testing.T) {
	dir := t.TempDir()
	testCrash(t, dir, embeddedCrashBackend(dir), crashKills(t, "EDDY_CRASH_KILLS", 20), engine.ExactlyOnce)
}

func TestCrashKafka(t *testing.T) {
	testCrash(t, t.TempDir(), kafkaCrashBackend(t, "kfake", newKfakeMinSession(t)), crashKills(t, "EDDY_CRASH_KAFKA_KILLS", 5), engine.ExactlyOnce)
}

// TestCrashKafkaAtLeastOnce runs the crash harness at least once on kfake:
// kills may duplicate output and over-count, but nothing may be missing.
func TestCrashKafkaAtLeastOnce(t *testing.T) {
	testCrash(t, t.TempDir(), kafkaCrashBackend(t, "kfake", newKfakeMinSession(t)), crashKills(t, "EDDY_CRASH_KAFKA_KILLS", 5), engine.AtLeastOnce)
}

func TestRealKafkaCrash(t *testing.T) {
	brokers := realBrokers(t)
	testCrash(t, t.TempDir(), kafkaCrashBackend(t, "real Kafka broker", brokers), crashKills(t, "EDDY_CRASH_KAFKA_KILLS", 5), engine.ExactlyOnce)
}

func TestRealKafkaCrashAtLeastOnce(t *testing.T) {
	brokers := realBrokers(t)
	testCrash(t, t.TempDir(), kafkaCrashBackend(t, "real Kafka broker", brokers), crashKills(t, "EDDY_CRASH_KAFKA_KILLS", 5), engine.AtLeastOnce)
}

// crashPoints are the engine's crash points a child may kill itself at.
var crashPoints = []string{"commit.before-log", "commit.after-log", "commit.after-state", "restore"}

func testCrash(t *testing.T, dir string, be crashBackend, kills int, g engine.Guarantee) {
	seed := testSeed(t)
	r := rand.New(rand.NewPCG(seed, 0xc7a5))
	app := fmt.Sprintf("crash-%d-%d", seed%1_000_000, time.Now().UnixNano()%1_000_000)
	cacheBytes := []int{-1, 2048, 0}[r.IntN(3)] // off, tiny (evictions), default
	// Every commit, often, the default (1 s), never but at a stop: the
	// longer, the more a restart restores.
	checkpoint := []time.Duration{-1, 50 * time.Millisecond, 0, time.Hour}[r.IntN(4)]
	atLeastOnce := g == engine.AtLeastOnce
	t.Logf("%s, %s: app %s, cache %d bytes, checkpoint interval %v, %d kills", be.name, g, app, cacheBytes, checkpoint, kills)
	model := newCrashModel()
	be.withLog(t, func(l broker.Log) {
		err := l.CreateTopics(context.Background(),
			broker.TopicConfig{Name: app + "-orders", Partitions: crashPartitions},
			broker.TopicConfig{Name: app + "-payments", Partitions: crashPartitions})
		if err != nil {
			t.Fatal(err)
		}
	})
	cfg := crashConfig{App: app, Dir: filepath.Join(dir, "instance"), Brokers: be.brokers, CacheBytes: cacheBytes, AtLeastOnce: atLeastOnce, Checkpoint: checkpoint}
	if be.brokers == nil {
		cfg.Dir = dir
	}
	var stats struct {
		atPoint, random, lostState, restarts int
	}
	start := time.Now()
	for killed := 0; killed < kills; {
		be.withLog(t, func(l broker.Log) {
			if err := l.Produce(context.Background(), model.chunk(r, app, 60+r.IntN(120))...); err != nil {
				t.Fatal(err)
			}
		})
		if r.IntN(10) == 0 {
			// The machine lost the state directory: the next run
			// restores every store from its changelog.
			if err := os.RemoveAll(filepath.Join(cfg.Dir, "state")); err != nil {
				t.Fatal(err)
			}
			stats.lostState++
		}
		cfg.At = ""
		if r.IntN(3) == 0 {
			cfg.At = fmt.Sprintf("%s:%d", crashPoints[r.IntN(len(crashPoints))], 1+r.IntN(4))
		}
		c := startCrashChild(t, cfg)
		stats.restarts++
		var how string
		switch {
		case cfg.At != "":
			// Wait for the child to kill itself; a point it never
			// reaches (no restore to do) gets a kill from here.
			if c.waitExit(5 * time.Second) {
				how = "at " + cfg.At
				stats.atPoint++
			} else {
				how = "at a random instant (" + cfg.At + " not reached)"
				stats.random++
			}
		case r.IntN(2) == 0:
			d := time.Duration(r.Int64N(int64(be.startup)))
			time.Sleep(d)
			how = fmt.Sprintf("%s after start", d.Round(time.Millisecond))
			stats.random++
		default:
			// A run may finish its input in fewer commits: then it is
			// killed idle.
			n := 1 + r.IntN(4)
			if c.waitCommits(t, n, 2*be.startup) {
				d := time.Duration(r.Int64N(int64(30 * time.Millisecond)))
				time.Sleep(d)
				how = fmt.Sprintf("%s after commit %d", d.Round(time.Millisecond), n)
			} else {
				how = fmt.Sprintf("idle, before commit %d", n)
			}
			stats.random++
		}
		c.kill(t)
		killed++
		if testing.Verbose() {
			t.Logf("kill %d: %s (%s since start)", killed, how, time.Since(start).Round(time.Millisecond))
		}
	}
	// The last run finishes the input and exits.
	be.withLog(t, func(l broker.Log) {
		if err := l.Produce(context.Background(), model.chunk(r, app, 100)...); err != nil {
			t.Fatal(err)
		}
	})
	cfg.At, cfg.Bounded = "", true
	c := startCrashChild(t, cfg)
	if !c.waitExit(3 * time.Minute) {
		c.kill(t)
		t.Fatalf("the final, bounded run did not finish within 3 min; stderr:\n%s", c.stderr())
	}
	if os.Getenv("EDDY_CRASH_LOG") != "" {
		t.Logf("final run's stderr:\n%s", c.stderr())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the final run exited %d; stderr:\n%s", code, c.stderr())
	}
	var res crashResult
	be.withLog(t, func(l broker.Log) { res = checkCrashOutput(t, l, app, model, atLeastOnce) })
	overCounted := checkCrashState(t, cfg, model)
	t.Logf("%s, %s: kills %d (%d at crash points, %d at random instants; state dir lost %d times), records %d (%d orders, %d payments), outputs %d, duplicates %d, missing %d, stored counts over the model's %d, in %s",
		be.name, g, kills, stats.atPoint, stats.random, stats.lostState, model.nextOrder+model.nextPayment, model.nextOrder, model.nextPayment,
		res.outputs, res.duplicates, res.missing, overCounted, time.Since(start).Round(time.Second))
	switch {
	case res.missing != 0:
		t.Errorf("%s violated: %d missing, %d duplicates (replay with -seed=%d)", g, res.missing, res.duplicates, seed)
	case !atLeastOnce && res.duplicates != 0:
		t.Errorf("exactly-once violated: %d duplicates (replay with -seed=%d)", res.duplicates, seed)
	}
}

// crashChild is a running crash child process.
type crashChild struct {
	cmd     *exec.Cmd
	exited  chan struct{}
	mu      sync.Mutex
	commits int
	errBuf  bytes.Buffer
	changed chan struct{} // closed and replaced when commits changes
}

func startCrashChild(t *testing.T, cfg crashConfig) *crashChild {
	t.Helper()
	js, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &crashChild{exited: make(chan struct{}), changed: make(chan struct{})}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"="+string(js))
	c.cmd.Stderr = &lockedWriter{mu: &c.mu, w: &c.errBuf}
	out, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if n, ok := strings.CutPrefix(sc.Text(), "commits "); ok {
				v, _ := strconv.Atoi(n)
				c.mu.Lock()
				c.commits = v
				close(c.changed)
				c.changed = make(chan struct{})
				c.mu.Unlock()
			}
		}
		io.Copy(io.Discard, out)
		c.cmd.Wait()
		close(c.exited)
	}()
	return c
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (c *crashChild) stderr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.errBuf.String()
}

// waitExit reports whether the child exited within d.
func (c *crashChild) waitExit(d time.Duration) bool {
	select {
	case <-c.exited:
		return true
	case <-time.After(d):
		return false
	}
}

// waitCommits reports whether the child committed n times within
// timeout; a child that exits meanwhile fails the test.
func (c *crashChild) waitCommits(t *testing.T, n int, timeout time.Duration) bool {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		got, changed := c.commits, c.changed
		c.mu.Unlock()
		if got >= n {
			return true
		}
		select {
		case <-changed:
		case <-c.exited:
			t.Fatalf("crash child exited before commit %d: %v; stderr:\n%s", n, c.cmd.ProcessState, c.stderr())
		case <-deadline:
			return false
		}
	}
}

// kill sends SIGKILL (unless the child is gone) and checks that the child
// died of a SIGKILL, not of an error of its own.
func (c *crashChild) kill(t *testing.T) {
	t.Helper()
	select {
	case <-c.exited:
	default:
		c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.exited
	}
	ws, ok := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("crash child ended by itself (%v) instead of being killed; stderr:\n%s", c.cmd.ProcessState, c.stderr())
	}
}

type crashResult struct {
	outputs, duplicates, missing int
}

// checkCrashOutput compares the committed output topics with the model.
// Windowed counts are emitted on every update through the cache: each
// window's counts must rise strictly (a repeated or falling count is a
// duplicate) and end at the model's count (below it, records are
// missing; above, they were counted twice); without the cache they must
// be exactly 1..n. The per-user counts' last value must be the model's.
// The join's results must be the model's multiset exactly. A window the
// input does not have is always an error.
//
// At least once, duplicates are counted but are no error: output records
// may repeat and counts may end above the model's, never below it.
func checkCrashOutput(t *testing.T, l broker.Log, app string, m *crashModel, atLeastOnce bool) crashResult {
	t.Helper()
	var res crashResult
	dup := func(n int, format string, args ...any) {
		t.Helper()
		res.duplicates += n
		if !atLeastOnce {
			t.Errorf(format, args...)
		}
	}
	miss := func(n int, format string, args ...any) {
		t.Helper()
		res.missing += n
		t.Errorf(format, args...)
	}
	ws := serde.Windowed(serde.String(), crashWindow.Milliseconds())
	last := map[string]int64{}
	for _, part := range readAll(t, l, app+"-user-windows") {
		for _, rec := range part {
			res.outputs++
			w, err := ws.Decode(rec.Key)
			if err != nil {
				t.Fatalf("user-windows key %q: %v", rec.Key, err)
			}
			n := int64(binary.BigEndian.Uint64(rec.Value))
			k := fmt.Sprintf("%s@%d", w.Key, w.Start)
			if n <= last[k] {
				dup(1, "window %s: count %d after %d", k, n, last[k])
			}
			last[k] = n
		}
	}
	for k, want := range m.windows {
		switch got := last[k]; {
		case got < want:
			miss(1, "window %s: last count %d, want %d", k, got, want)
		case got > want:
			dup(int(got-want), "window %s: last count %d, want %d", k, got, want)
		}
	}
	for k := range last {
		if _, ok := m.windows[k]; !ok {
			res.duplicates++
			t.Errorf("window %s: not in the input", k)
		}
	}
	users := map[string]int64{}
	for _, part := range readAll(t, l, app+"-user-orders") {
		for _, rec := range part {
			res.outputs++
			n := int64(binary.BigEndian.Uint64(rec.Value))
			if n <= users[string(rec.Key)] {
				dup(1, "user %s: count %d after %d", rec.Key, n, users[string(rec.Key)])
			}
			users[string(rec.Key)] = n
		}
	}
	for u, want := range m.users {
		switch got := users[u]; {
		case got < want:
			miss(1, "user %s: last count %d, want %d", u, got, want)
		case got > want:
			dup(int(got-want), "user %s: last count %d, want %d", u, got, want)
		}
	}
	got := map[string]int{}
	for _, part := range readAll(t, l, app+"-payments-matched") {
		for _, rec := range part {
			res.outputs++
			got[string(rec.Key)+"|"+string(rec.Value)]++
		}
	}
	want, early := m.joined()
	for k, n := range got {
		if early[k] && n == 1 {
			continue
		}
		if n > want[k] {
			dup(n-want[k], "join result %s: %d times, want %d", k, n, want[k])
		}
	}
	for k, n := range want {
		if got[k] < n {
			miss(n-got[k], "join result %s: %d times, want %d", k, got[k], n)
		}
	}
	return res
}

// checkCrashState reads the per-user count store from the state DB the
// final run left behind and compares it with the model: it must be equal
// under exactly-once, and at least as large at least once. It returns by
// how much the stored counts exceed the model's in all.
func checkCrashState(t *testing.T, cfg crashConfig, m *crashModel) (over int64) {
	t.Helper()
	topo, err := crashTopology(cfg.App).Build()
	if err != nil {
		t.Fatal(err)
	}
	sub := slices.IndexFunc(topo.SubTopologies(), func(s *topology.SubTopology) bool {
		return slices.ContainsFunc(s.Stores, func(st topology.Store) bool { return st.Name == "user-orders" })
	})
	if sub < 0 {
		t.Fatal("no sub-topology holds store user-orders")
	}
	db, err := state.Open(state.Options{Dir: filepath.Join(cfg.Dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got := map[string]int64{}
	for p := range int32(crashPartitions) {
		task := db.NewTask(fmt.Sprintf("%d_%d", sub, p))
		kv, err := task.KV("user-orders", p, state.StoreConfig{})
		if err != nil {
			t.Fatal(err)
		}
		err = kv.Range(nil, nil, func(key, value []byte) error {
			// A stored aggregate: the newest input's timestamp, then the
			// count.
			if len(value) != 16 {
				return fmt.Errorf("store user-orders key %q: %d-byte value, want 16", key, len(value))
			}
			got[string(key)] = int64(binary.BigEndian.Uint64(value[8:]))
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := task.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for u, want := range m.users {
		switch {
		case got[u] > want && cfg.AtLeastOnce:
			over += got[u] - want
		case got[u] != want:
			t.Errorf("state store user-orders, key %s: %d, want %d", u, got[u], want)
		}
	}
	if len(got) != len(m.users) {
		t.Errorf("state store user-orders holds %d users, want %d", len(got), len(m.users))
	}
	return over
}

// newKfakeMinSession starts a kfake cluster that allows the crash
// children's short session timeout.
func newKfakeMinSession(t *testing.T) []string {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()
}

// realBrokers returns the brokers EDDY_KAFKA_BROKERS names, or skips.
func realBrokers(t *testing.T) []string {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	return strings.Split(brokers, ",")
}
