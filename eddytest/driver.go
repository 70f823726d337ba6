package eddytest

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/topology"
)

// Options configures a Driver. The zero value works.
type Options struct {
	// Partitions is the partition count of the input topics the driver
	// creates (Input). Default 1. Repartition topics, changelogs and
	// output topics get their sub-topology's count, as on a real log.
	Partitions int32
	// TopicPartitions overrides Partitions for some input topics.
	TopicPartitions map[string]int32
	// ManualCommit stops Pipe from processing and committing: the test
	// calls Process and Commit (or Run) itself, to choose commit points,
	// for instance to crash between them.
	ManualCommit bool
	// Engine holds the engine options the test wants, such as CacheBytes,
	// CheckpointInterval, OnDecodeError or Guarantee. The driver sets the
	// log, file system, state dir, instance id and workers itself.
	Engine engine.Options
	// Start is the wall clock's start. Default 2025-01-01T00:00:00Z.
	Start time.Time
}

// Driver runs a topology for a test. Create it with New.
type Driver struct {
	t    TB
	b    *topology.Builder
	opts Options
	ctx  context.Context

	fs  *vfs.MemFS
	eng *engine.Engine
	st  *engine.Stepper
	now time.Time
	// crashed is set between Crash and Restart.
	crashed bool
}

// TB is the part of testing.TB the driver uses: pass the test's *testing.T
// or *testing.B, or Panicking() outside tests.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	Context() context.Context
}

// New starts a driver running the topology of b. The driver is closed
// when the test ends.
func New(t TB, b *topology.Builder, opts Options) *Driver {
	t.Helper()
	if opts.Partitions == 0 {
		opts.Partitions = 1
	}
	if opts.Start.IsZero() {
		opts.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	d := &Driver{t: t, b: b, opts: opts, ctx: context.WithoutCancel(t.Context()), fs: vfs.NewCrashableMem(), now: opts.Start}
	if err := d.open(); err != nil {
		t.Fatalf("eddytest: %v", err)
	}
	t.Cleanup(d.Close)
	return d
}

// open opens the engine on d.fs and starts a Stepper.
func (d *Driver) open() error {
	o := d.opts.Engine
	o.StateDir = "/eddytest"
	o.InMemory = false
	o.FS = d.fs
	o.Log, o.Kafka = nil, nil
	o.InstanceID = "eddytest"
	o.Workers = 1
	o.Bounded = false
	eng, err := engine.Open(d.b, o)
	if err != nil {
		return err
	}
	if err := d.createInputs(eng); err != nil {
		eng.Close()
		return err
	}
	st, err := eng.Stepper(d.ctx, d.now)
	if err != nil {
		eng.Close()
		return err
	}
	d.eng, d.st = eng, st
	return nil
}

// createInputs creates the topology's missing source topics.
func (d *Driver) createInputs(eng *engine.Engine) error {
	have, err := eng.Log().DescribeTopics(d.ctx)
	if err != nil {
		return err
	}
	var create []broker.TopicConfig
	for _, t := range eng.Topology().Topics() {
		if t.Role != topology.RoleSource {
			continue
		}
		if _, ok := have[t.Name]; ok {
			continue
		}
		create = append(create, broker.TopicConfig{Name: t.Name, Partitions: d.partitions(t.Name)})
	}
	if len(create) == 0 {
		return nil
	}
	return eng.Log().CreateTopics(d.ctx, create...)
}

func (d *Driver) partitions(topic string) int32 {
	if n, ok := d.opts.TopicPartitions[topic]; ok {
		return n
	}
	return d.opts.Partitions
}

// running fails the test if the driver is crashed or closed.
func (d *Driver) running(op string) {
	d.t.Helper()
	switch {
	case d.crashed:
		d.t.Fatalf("eddytest: %s after Crash: call Restart first", op)
	case d.st == nil:
		d.t.Fatalf("eddytest: %s on a closed driver", op)
	}
}

// Engine returns the engine the driver runs, for its Metrics, Log and
// Stores. It changes at every Restart.
func (d *Driver) Engine() *engine.Engine { return d.eng }

// Stores returns a reader of the running stores, for topology.Lookup,
// topology.Rows and topology.FetchWindows; see also the package's Lookup,
// Rows and Windows.
func (d *Driver) Stores() topology.StoreReader {
	d.t.Helper()
	d.running("Stores")
	return d.eng.Stores()
}

// Process processes every record the log holds for the topology, without
// committing, and returns how many it processed. Records written by the
// topology itself (repartitioned records) are read only after a Commit.
func (d *Driver) Process() int {
	d.t.Helper()
	d.running("Process")
	n, err := d.st.Process(d.ctx)
	if err != nil {
		d.t.Fatalf("eddytest: process: %v", err)
	}
	return n
}

// Commit commits what was processed since the last commit. The stores'
// state is also written to the state DB when the engine's
// CheckpointInterval (default 1s) has passed on the driver's wall clock;
// until then a Crash leaves it to the changelog.
func (d *Driver) Commit() {
	d.t.Helper()
	d.running("Commit")
	if err := d.st.Commit(d.ctx); err != nil {
		d.t.Fatalf("eddytest: commit: %v", err)
	}
}

// Checkpoint commits and writes the stores' state to the state DB.
func (d *Driver) Checkpoint() {
	d.t.Helper()
	d.running("Checkpoint")
	if err := d.st.Checkpoint(d.ctx); err != nil {
		d.t.Fatalf("eddytest: checkpoint: %v", err)
	}
}

// Run processes and commits until the topology has processed every record:
// the input piped so far, and what its sub-topologies pass each other
// through repartition topics.
func (d *Driver) Run() {
	d.t.Helper()
	d.running("Run")
	// A round's commit makes its repartitioned records readable: done
	// once a round after a commit processes nothing.
	committed := false
	for {
		if n := d.Process(); n == 0 && committed {
			return
		}
		d.Commit()
		committed = true
	}
}

// AdvanceWallClock moves the driver's wall clock forward by dt.
func (d *Driver) AdvanceWallClock(dt time.Duration) {
	d.t.Helper()
	if dt < 0 {
		d.t.Fatalf("eddytest: AdvanceWallClock(%s): the clock does not go back", dt)
	}
	d.now = d.now.Add(dt)
	if d.st != nil {
		d.st.Advance(dt)
	}
}

// Crash stops the engine as a crash would: the work since the last commit
// is lost, and so is everything the state DB and the log had not synced to
// disk (the in-memory file system keeps only what was synced). Restart
// then recovers from what is left, as eddy does after kill -9.
func (d *Driver) Crash() {
	d.t.Helper()
	d.running("Crash")
	// What a crash leaves: the synced files only, taken before the
	// engine's shutdown can write anything more.
	left := d.fs.CrashClone(vfs.CrashCloneCfg{})
	err := errors.Join(d.st.Abandon(d.ctx), d.eng.Close())
	d.eng, d.st, d.fs, d.crashed = nil, nil, left, true
	if err != nil {
		d.t.Fatalf("eddytest: crash: shutting the old engine down: %v", err)
	}
}

// Restart starts the engine again after a Crash (or Close) from what is on
// disk, and processes (restoring the stores from their changelogs). With
// ManualCommit, it does not commit what it processed.
func (d *Driver) Restart() {
	d.t.Helper()
	if d.st != nil {
		d.t.Fatalf("eddytest: Restart of a running driver: Crash or Close it first")
	}
	if err := d.open(); err != nil {
		d.t.Fatalf("eddytest: restart: %v", err)
	}
	d.crashed = false
	if d.opts.ManualCommit {
		d.Process()
		return
	}
	d.Run()
}

// Close stops the engine cleanly: a final commit and checkpoint. It is
// called when the test ends; calling it again does nothing.
func (d *Driver) Close() {
	d.t.Helper()
	if d.st == nil {
		return
	}
	err := errors.Join(d.st.Stop(d.ctx), d.eng.Close())
	d.eng, d.st = nil, nil
	if err != nil {
		d.t.Fatalf("eddytest: close: %v", err)
	}
}

// produce writes records to the log and, without ManualCommit, runs them.
func (d *Driver) produce(recs ...broker.Record) {
	d.t.Helper()
	d.running("Pipe")
	if err := d.eng.Log().Produce(d.ctx, recs...); err != nil {
		d.t.Fatalf("eddytest: pipe: %v", err)
	}
	if !d.opts.ManualCommit {
		d.Run()
	}
}

// readTopic reads the committed records of topic at or after from, a
// position per partition, which it advances.
func (d *Driver) readTopic(topic string, from map[int32]int64, fn func(broker.Record) error) error {
	if d.eng == nil {
		return fmt.Errorf("read %s: the driver is not running", topic)
	}
	log := d.eng.Log()
	desc, err := log.DescribeTopics(d.ctx, topic)
	if err != nil {
		return err
	}
	tc, ok := desc[topic]
	if !ok {
		return fmt.Errorf("topic %q does not exist (yet): the topology creates its output topics when it starts", topic)
	}
	for p := range tc.Partitions {
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		off, err := log.Offsets(d.ctx, tp)
		if err != nil {
			return err
		}
		start := max(from[p], off.Start)
		if err := log.Read(d.ctx, tp, start, off.End, fn); err != nil {
			return err
		}
		from[p] = off.End
	}
	return nil
}

// Panicking returns a TB for Example functions and programs: it panics
// where a test would fail, and runs the cleanups (the Driver's Close) only
// when Close is called on the driver.
func Panicking() TB { return panicking{} }

type panicking struct{}

func (panicking) Helper()                           {}
func (panicking) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (panicking) Cleanup(func())                    {}
func (panicking) Context() context.Context          { return context.Background() }
