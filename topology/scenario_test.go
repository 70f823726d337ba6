package topology_test

// The scenario runner: readable operator tests in testdata/scenarios/*.txt.
//
// A scenario file is a list of commands, one a line. Blank lines and lines
// starting with '#' are ignored. The first command picks the topology:
//
//	topology <builder> [name=value ...]
//
// <builder> names a function registered with registerScenario; it reads
// its parameters (durations as 10ms, 1s or a bare number of milliseconds)
// and every parameter must be read. The runner takes one parameter
// itself: cache=<bytes>[,<bytes>...], the cache size of every store (default
// 1048576, 0 for none); the scenario runs once per size and must give the
// same output with each. Then:
//
//	<topic> <key> <value> <time>   feed one record to a source topic
//	                               (value <nil>: a tombstone; key
//	                               <nil>: a nil key)
//	finish                         end of input: Finish every operator
//	commit                         flush the stores' caches and commit
//	restart                        commit, close the tasks, rebuild them on
//	                               the same state DB
//	restore                        commit, close the tasks, rebuild them on
//	                               a new state DB restored from the
//	                               changelogs captured so far
//	fetch <key> <from> <to>        commit, then read key's windows that
//	                               overlap [from, to] from the committed
//	                               store (builders of retention_test.go
//	                               only), each as a line "> key@start-end
//	                               value time"
//
// Each command is followed by the records it makes the topology write,
// in order, one a line:
//
//	> <key> <value> <time>            (a topology with one sink topic)
//	> <topic> <key> <value> <time>    (several sink topics)
//
// Sub-topologies run as tasks of partition 0 on an in-memory state DB,
// connected through their repartition topics in process. Sources are read
// with the builder's serdes from the text as bytes, and sink records are
// printed as text, so builders use string serdes at both ends.
//
// go test ./topology -run TestScenarios -rewrite rewrites the expected
// outputs from what the code does: review the diff like code.

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
)

var rewriteScenarios = flag.Bool("rewrite", false, "rewrite the expected outputs of scenario files")

// scenarioBuilder builds the topology of a scenario from its parameters.
type scenarioBuilder func(p *scenarioParams) *topology.Builder

var scenarioBuilders = map[string]scenarioBuilder{}

// registerScenario makes a topology builder available to scenario files.
// Call it from an init function of the test file that owns the operator.
func registerScenario(name string, fn scenarioBuilder) {
	if _, dup := scenarioBuilders[name]; dup {
		panic("scenario builder registered twice: " + name)
	}
	scenarioBuilders[name] = fn
}

// scenarioParams are the name=value parameters of a topology line.
type scenarioParams struct {
	m    map[string]string
	used map[string]bool
	errs []error
}

func (p *scenarioParams) get(name string) (string, bool) {
	v, ok := p.m[name]
	if ok {
		p.used[name] = true
	}
	return v, ok
}

// Duration returns parameter name as a duration: "10ms", "1s", or a bare
// number of milliseconds (negative allowed).
func (p *scenarioParams) Duration(name string, def time.Duration) time.Duration {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(ms) * time.Millisecond
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("parameter %s: %w", name, err))
	}
	return d
}

// String returns parameter name.
func (p *scenarioParams) String(name, def string) string {
	if v, ok := p.get(name); ok {
		return v
	}
	return def
}

// Int returns parameter name as an int.
func (p *scenarioParams) Int(name string, def int) int {
	v, ok := p.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("parameter %s: %w", name, err))
	}
	return n
}

// scenarioStep is one command of a scenario and the outputs it expects.
type scenarioStep struct {
	line int
	args []string
	want []string
}

type scenario struct {
	path    string
	builder string
	params  map[string]string
	caches  []int
	steps   []scenarioStep
	lines   []string // the file, for -rewrite
	topLine int
}

func TestScenarios(t *testing.T) { runScenarioFiles(t, "scenarios", runScenario) }

// runScenarioFiles runs every scenario file of testdata/dir with run, once
// per cache size the file asks for, and with -rewrite rewrites each file
// with the outputs of its first run.
func runScenarioFiles(t *testing.T, dir string, run func(t *testing.T, sc *scenario, cache int) [][]string) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scenario files in testdata/%s", dir)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			sc, err := parseScenario(path)
			if err != nil {
				t.Fatal(err)
			}
			var first [][]string
			for i, cache := range sc.caches {
				t.Run(fmt.Sprintf("cache=%d", cache), func(t *testing.T) {
					got := run(t, sc, cache)
					if i == 0 {
						first = got
					}
				})
			}
			if *rewriteScenarios && first != nil {
				if err := rewriteScenario(sc, first); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func parseScenario(path string) (*scenario, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := &scenario{path: path, lines: strings.Split(strings.TrimRight(string(data), "\n"), "\n")}
	for i, line := range sc.lines {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		errorf := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, i+1, fmt.Sprintf(format, args...))
		}
		switch {
		case fields[0] == ">":
			if len(sc.steps) == 0 {
				return nil, errorf("expected output before any command")
			}
			if n := len(fields) - 1; n != 3 && n != 4 {
				return nil, errorf("want > [topic] key value time, got %q", line)
			}
			st := &sc.steps[len(sc.steps)-1]
			st.want = append(st.want, strings.Join(fields[1:], " "))
		case fields[0] == "topology":
			if sc.builder != "" {
				return nil, errorf("second topology line")
			}
			if len(fields) < 2 {
				return nil, errorf("topology: missing builder name")
			}
			sc.builder, sc.topLine = fields[1], i
			sc.params = map[string]string{}
			for _, kv := range fields[2:] {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, errorf("parameter %q: want name=value", kv)
				}
				sc.params[k] = v
			}
			sc.caches = []int{1 << 20}
			if v, ok := sc.params["cache"]; ok {
				delete(sc.params, "cache")
				sc.caches = nil
				for _, s := range strings.Split(v, ",") {
					n, err := strconv.Atoi(s)
					if err != nil || n < 0 {
						return nil, errorf("cache=%s: want byte counts", v)
					}
					sc.caches = append(sc.caches, n)
				}
			}
		case sc.builder == "":
			return nil, errorf("the first command must be topology")
		default:
			switch fields[0] {
			case "finish", "commit", "restart", "restore":
				if len(fields) != 1 {
					return nil, errorf("%s takes no arguments", fields[0])
				}
			default:
				if len(fields) != 4 {
					return nil, errorf("want topic key value time, got %q", line)
				}
				if _, err := strconv.ParseInt(fields[3], 10, 64); err != nil {
					return nil, errorf("time %q: %v", fields[3], err)
				}
			}
			sc.steps = append(sc.steps, scenarioStep{line: i, args: fields})
		}
	}
	if sc.builder == "" {
		return nil, fmt.Errorf("%s: no topology line", path)
	}
	return sc, nil
}

// rewriteScenario writes the file back with got as the expected outputs.
func rewriteScenario(sc *scenario, got [][]string) error {
	after := map[int][]string{}
	for i, st := range sc.steps {
		after[st.line] = got[i]
	}
	var out []string
	for i, line := range sc.lines {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ">" {
			continue
		}
		out = append(out, line)
		for _, g := range after[i] {
			out = append(out, "> "+g)
		}
	}
	return os.WriteFile(sc.path, []byte(strings.Join(out, "\n")+"\n"), 0o644)
}

// scenarioRun is one run of a scenario: its state DB and tasks.
type scenarioRun struct {
	t         *testing.T
	sc        *scenario
	topo      *topology.Topology
	cache     int
	db        *state.DB
	tasks     []*scenarioTask
	readers   map[string]*scenarioTask // topic -> the task reading it
	multiSink bool
	pending   []operators.RawRecord // sent, not yet delivered
	out       []string              // sink records of the current command
	offsets   map[string]int64      // next offset per topic
	// changelogs holds every changelog record of each store, in order;
	// committed is how many of them the last commit covered.
	changelogs map[string][]state.ChangelogRecord
	committed  map[string]int64
	restoring  bool
}

type scenarioTask struct {
	sub   *topology.SubTopology
	ctx   operators.Context
	state *state.Task
	graph *operators.Graph
}

// runScenario runs sc with the given store cache size and returns the
// outputs of each step.
func runScenario(t *testing.T, sc *scenario, cache int) [][]string {
	build := scenarioBuilders[sc.builder]
	if build == nil {
		t.Fatalf("%s:%d: no scenario builder %q", sc.path, sc.topLine+1, sc.builder)
	}
	p := &scenarioParams{m: sc.params, used: map[string]bool{}}
	return runBuilt(t, sc, cache, p, build(p), nil)
}

// runBuilt runs sc on b, which a builder made with parameters p, with the
// given store cache size and returns the outputs of each step. fetch
// answers the fetch steps; nil if the builder has none.
func runBuilt(t *testing.T, sc *scenario, cache int, p *scenarioParams, b *topology.Builder, fetch retentionFetch) [][]string {
	for name := range sc.params {
		if !p.used[name] {
			p.errs = append(p.errs, fmt.Errorf("parameter %s is not used by builder %s", name, sc.builder))
		}
	}
	if len(p.errs) > 0 {
		t.Fatalf("%s:%d: %v", sc.path, sc.topLine+1, p.errs)
	}
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	r := &scenarioRun{
		t: t, sc: sc, topo: topo, cache: cache,
		offsets:    map[string]int64{},
		changelogs: map[string][]state.ChangelogRecord{},
		committed:  map[string]int64{},
	}
	sinks := 0
	for _, tp := range topo.Topics() {
		if tp.Role == topology.RoleSink {
			sinks++
		}
	}
	r.multiSink = sinks > 1
	r.openDB()
	r.openTasks()
	defer func() {
		r.closeTasks()
		if err := r.db.Close(); err != nil {
			t.Error(err)
		}
	}()

	var got [][]string
	for _, st := range sc.steps {
		r.out = nil
		where := fmt.Sprintf("%s:%d: %s", sc.path, st.line+1, strings.Join(st.args, " "))
		switch st.args[0] {
		case "finish":
			for _, task := range r.upstreamFirst() {
				task.ctx.Topic, task.ctx.Offset = "", -1
				for _, f := range task.graph.Finishers {
					if err := f.Finish(&task.ctx); err != nil {
						t.Fatalf("%s: %v", where, err)
					}
				}
				r.deliver(where)
			}
		case "commit":
			r.commit(where)
		case "restart", "restore":
			r.commit(where)
			r.closeTasks()
			if st.args[0] == "restore" {
				if err := r.db.Close(); err != nil {
					t.Fatal(err)
				}
				r.openDB()
				r.restoring = true
			}
			r.openTasks()
			r.restoring = false
		case "fetch":
			if fetch == nil || len(st.args) != 4 {
				t.Fatalf("%s: want fetch key from to, in a scenario whose builder has a table to fetch", where)
			}
			r.commit(where)
			from, err1 := strconv.ParseInt(st.args[2], 10, 64)
			to, err2 := strconv.ParseInt(st.args[3], 10, 64)
			if err1 != nil || err2 != nil {
				t.Fatalf("%s: want fetch key from to", where)
			}
			rows, err := fetch(context.Background(), dbReader{r.db}, st.args[1], from, to)
			if err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			r.out = append(r.out, rows...)
		default:
			topic := st.args[0]
			if r.readers[topic] == nil {
				t.Fatalf("%s: %q is not a source topic of the topology", where, topic)
			}
			ts, _ := strconv.ParseInt(st.args[3], 10, 64)
			rec := operators.RawRecord{Topic: topic, Timestamp: ts, Key: []byte(st.args[1]), Value: []byte(st.args[2])}
			if st.args[1] == "<nil>" {
				rec.Key = nil
			}
			if st.args[2] == "<nil>" {
				rec.Value = nil
			}
			r.pending = append(r.pending, rec)
			r.deliver(where)
		}
		if diff := cmp.Diff(st.want, r.out); diff != "" {
			t.Errorf("%s: outputs (-want +got):\n%s", where, diff)
		}
		got = append(got, r.out)
	}
	return got
}

func (r *scenarioRun) openDB() {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		r.t.Fatal(err)
	}
	r.db = db
}

// openTasks builds a task per sub-topology, as the engine does.
func (r *scenarioRun) openTasks() {
	r.tasks = nil
	r.readers = map[string]*scenarioTask{}
	for _, sub := range r.topo.SubTopologies() {
		task := &scenarioTask{sub: sub, state: r.db.NewTask(fmt.Sprintf("%d_0", sub.ID))}
		task.ctx = operators.Context{
			Logger:     hclog.NewNullLogger(),
			Send:       func(rec operators.RawRecord) { r.pending = append(r.pending, rec) },
			Partitions: func(string) int32 { return 1 },
			Late:       func(string) {},
		}
		g, err := sub.NewGraph(&task.ctx, scenarioStores{r, task})
		if err != nil {
			r.t.Fatal(err)
		}
		task.graph = g
		for topic := range g.Sources {
			r.readers[topic] = task
		}
		r.tasks = append(r.tasks, task)
	}
}

// upstreamFirst orders the tasks so that each comes after the tasks
// writing the topics it reads, as a bounded run finishes them.
func (r *scenarioRun) upstreamFirst() []*scenarioTask {
	var order []*scenarioTask
	done := map[*scenarioTask]bool{}
	for len(order) < len(r.tasks) {
		progress := false
		for _, task := range r.tasks {
			ready := !done[task]
			for _, other := range r.tasks {
				if ready && other != task && !done[other] {
					for _, src := range task.sub.Sources {
						ready = ready && !slices.Contains(other.sub.Sinks, src)
					}
				}
			}
			if ready {
				done[task] = true
				order = append(order, task)
				progress = true
			}
		}
		if !progress {
			r.t.Fatal("sub-topologies read each other's topics in a cycle")
		}
	}
	return order
}

func (r *scenarioRun) closeTasks() {
	for _, task := range r.tasks {
		if err := task.state.Close(); err != nil {
			r.t.Error(err)
		}
	}
	r.tasks = nil
}

// deliver passes pending records to the tasks reading their topics, and
// prints the others as sink output, until nothing is pending.
func (r *scenarioRun) deliver(where string) {
	for len(r.pending) > 0 {
		rec := r.pending[0]
		r.pending = r.pending[1:]
		task := r.readers[rec.Topic]
		if task == nil {
			value := string(rec.Value)
			if rec.Value == nil {
				value = "<nil>"
			}
			line := fmt.Sprintf("%s %s %d", rec.Key, value, rec.Timestamp)
			if r.multiSink {
				line = rec.Topic + " " + line
			}
			r.out = append(r.out, line)
			continue
		}
		rec.Offset = r.offsets[rec.Topic]
		r.offsets[rec.Topic]++
		task.ctx.Topic, task.ctx.InputPartition, task.ctx.Offset = rec.Topic, 0, rec.Offset
		if err := task.graph.Sources[rec.Topic].ProcessRaw(&task.ctx, &rec); err != nil {
			r.t.Fatalf("%s: %v", where, err)
		}
	}
}

// commit flushes every task until no flush makes output for another task,
// then commits them all.
func (r *scenarioRun) commit(where string) {
	for {
		for _, task := range r.tasks {
			if err := task.state.Flush(); err != nil {
				r.t.Fatalf("%s: %v", where, err)
			}
		}
		if len(r.pending) == 0 {
			break
		}
		r.deliver(where)
	}
	for _, task := range r.tasks {
		ends := map[string]int64{}
		for _, st := range task.sub.Stores {
			ends[st.Name] = int64(len(r.changelogs[st.Name]))
			r.committed[st.Name] = ends[st.Name]
		}
		if err := task.state.Commit(ends); err != nil {
			r.t.Fatalf("%s: %v", where, err)
		}
	}
}

// scenarioStores opens a task's stores, capturing their changelogs, and
// restores them from the captured changelogs on a new DB.
type scenarioStores struct {
	r    *scenarioRun
	task *scenarioTask
}

func (s scenarioStores) config(name string, cfg state.StoreConfig) state.StoreConfig {
	cfg.CacheBytes = s.r.cache
	cfg.Changelog = func(k, v []byte) {
		rec := state.ChangelogRecord{Key: slices.Clone(k)}
		if v != nil {
			rec.Value = append([]byte{}, v...)
		}
		s.r.changelogs[name] = append(s.r.changelogs[name], rec)
	}
	return cfg
}

func (s scenarioStores) restore(name string, st interface {
	Restore([]state.ChangelogRecord, int64) error
}) error {
	if !s.r.restoring {
		return nil
	}
	n := s.r.committed[name]
	return st.Restore(s.r.changelogs[name][:n], n)
}

func (s scenarioStores) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	kv, err := s.task.state.KV(name, 0, s.config(name, cfg))
	if err != nil {
		return nil, err
	}
	return kv, s.restore(name, kv)
}

func (s scenarioStores) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	w, err := s.task.state.Window(name, 0, s.config(name, cfg))
	if err != nil {
		return nil, err
	}
	return w, s.restore(name, w)
}

// scenarioFileLines returns the lines of a scenario file, for tests that
// check the files themselves.
func scenarioFileLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}
