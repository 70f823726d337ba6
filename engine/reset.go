package engine

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
)

// ErrRunning is returned (wrapped) by Reset and ResetPlan.Run while an
// instance of the application is alive: its consumer group has members
// (broker.ErrGroupActive), or a process holds the embedded log
// (embedded.ErrInUse) or the local state (state.ErrInUse).
var ErrRunning = errors.New("the application is running: stop every instance first")

// ResetPlan is what a reset of an application deletes, so that its next
// run re-processes its input from the earliest records as if it had never
// run: Reset makes one from a topology, `eddy reset` from the names of the
// topics that exist.
//
// Sink topics are kept, as Kafka Streams' reset tool keeps output
// topics: they belong to their readers. A run after a reset appends its
// output to what the earlier runs wrote (delete or recreate the sink
// topics for a clean slate). The dead-letter topic is kept too.
type ResetPlan struct {
	// App is the application id, which is also its consumer group: the
	// group and its committed offsets are deleted, so the next run starts
	// every source partition at its log start.
	App string
	// Topics are the application's internal topics, deleted with their
	// records: store changelogs (or a restore would bring the old state
	// back) and repartition topics (or records of the old run would be
	// processed again).
	Topics []string
	// StateDir is the engine's StateDir on this machine, whose local
	// state (StateDir/state) is deleted; "" for none (in-memory state).
	// Every machine that ran an instance holds local state: a local state
	// left behind is ahead of the deleted changelogs, which the next run
	// on that machine reports as an error naming the store.
	StateDir string
}

// PlanReset returns the plan of Reset for the application of b run with
// opts: its group, the changelog and repartition topics of its topology
// (topology.RoleChangelog, RoleRepartition), and its StateDir unless
// opts.InMemory.
func PlanReset(b *topology.Builder, opts Options) (ResetPlan, error) {
	opts.EnsureDefaults()
	topo, err := b.Build()
	if err != nil {
		return ResetPlan{}, err
	}
	p := ResetPlan{App: topo.App()}
	for _, t := range topo.Topics() {
		if t.Role == topology.RoleChangelog || t.Role == topology.RoleRepartition {
			p.Topics = append(p.Topics, t.Name)
		}
	}
	slices.Sort(p.Topics)
	if !opts.InMemory {
		p.StateDir = opts.StateDir
	}
	return p, nil
}

// Reset resets the application of b, as run with opts, so that its next
// run re-processes its input from the earliest records (a stop-the-world
// reset: every instance must be stopped). On the log opts names (Log,
// Kafka, or the embedded log in StateDir/log) it deletes the
// application's consumer group with its committed offsets and its
// internal topics; on this machine it deletes the local state
// (StateDir/state). See ResetPlan for what is kept. Other machines that
// ran instances must delete their local state too (eddy reset --dir, or
// by hand).
//
// It refuses, with an error wrapping ErrRunning and deleting nothing,
// while an instance is alive: on Kafka when the group has members (a
// killed instance's members stay until their session times out), on the
// embedded log when a process or engine holds the log's directory, and
// when one holds the local state. Reset is idempotent: after a failure
// midway, run it again.
func Reset(ctx context.Context, b *topology.Builder, opts Options) error {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return err
	}
	plan, err := PlanReset(b, opts)
	if err != nil {
		return err
	}
	log, closeLog, err := openResetLog(ctx, plan.App, opts)
	if err != nil {
		return err
	}
	defer closeLog()
	return plan.run(ctx, log, opts.Logger)
}

// openResetLog opens the log opts names for a reset: nil (and nothing to
// reset there) for an in-memory or missing embedded log.
func openResetLog(ctx context.Context, app string, opts Options) (broker.Log, func(), error) {
	switch {
	case opts.Log != nil:
		return opts.Log, func() {}, nil
	case opts.Kafka != nil:
		ko := *opts.Kafka
		if ko.Logger == nil {
			ko.Logger = opts.Logger.Named("kafka")
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		l, err := kafka.Open(ctx, ko)
		if err != nil {
			return nil, nil, fmt.Errorf("engine: reset %s: open kafka: %w", app, err)
		}
		return l, func() { l.Close() }, nil
	case opts.InMemory:
		return nil, func() {}, nil
	}
	dir := filepath.Join(opts.StateDir, "log")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, func() {}, nil
	}
	l, err := embedded.Open(embedded.Options{Dir: dir, FS: opts.FS, CleanInterval: -1, Logger: opts.Logger.Named("log")})
	if err != nil {
		if errors.Is(err, embedded.ErrInUse) {
			return nil, nil, fmt.Errorf("engine: reset %s: %w: %w", app, ErrRunning, err)
		}
		return nil, nil, fmt.Errorf("engine: reset %s: open embedded log: %w", app, err)
	}
	return l, func() { l.Close() }, nil
}

// Run carries out the plan on log (nil: no log, only the local state).
// First it checks that the local state is not in use, then it deletes
// the group (which fails while the group has members), then the internal
// topics, then the local state. It refuses, with an error wrapping
// ErrRunning, while an instance is alive (see Reset); a refusal by the
// group or the local state deletes nothing.
func (p ResetPlan) Run(ctx context.Context, log broker.Log) error {
	return p.run(ctx, log, hclog.NewNullLogger())
}

func (p ResetPlan) run(ctx context.Context, log broker.Log, logger hclog.Logger) error {
	if p.App == "" {
		return errors.New("engine: reset: empty application id")
	}
	var stateDir string
	if p.StateDir != "" {
		stateDir = filepath.Join(p.StateDir, "state")
		if err := state.CheckNotInUse(stateDir); err != nil {
			return p.errorf(err)
		}
	}
	if log != nil {
		if err := log.DeleteGroup(ctx, p.App); err != nil {
			return p.errorf(err)
		}
		logger.Info("reset: deleted the consumer group and its committed offsets", "group", p.App)
		if len(p.Topics) > 0 {
			if err := log.DeleteTopics(ctx, p.Topics...); err != nil {
				return p.errorf(err)
			}
			logger.Info("reset: deleted the internal topics", "topics", p.Topics)
		}
	}
	if stateDir != "" {
		if err := state.Remove(stateDir); err != nil {
			return p.errorf(err)
		}
		logger.Info("reset: deleted the local state", "dir", stateDir)
	}
	return nil
}

// errorf wraps an error of the reset, adding ErrRunning to the errors
// that say an instance is alive.
func (p ResetPlan) errorf(err error) error {
	if errors.Is(err, broker.ErrGroupActive) || errors.Is(err, state.ErrInUse) || errors.Is(err, embedded.ErrInUse) {
		return fmt.Errorf("engine: reset %s: %w: %w", p.App, ErrRunning, err)
	}
	return fmt.Errorf("engine: reset %s: %w", p.App, err)
}

// Store kinds the engine records in the state DB (state.DB.SetStoreKind)
// for tools that read a stopped instance's state without its topology
// (eddy stores). A materialized table's store holds rows whose value is
// an 8-byte big-endian timestamp then the encoded value, keyed by
//
//	key-value  the encoded key
//	window     the window start (8 bytes big-endian, sign bit flipped), then the encoded key
//	session    the encoded key, then the session's end and start (8 bytes big-endian each)
//
// The other stores (join buffers, indexes) have layouts of their
// operators' own, recorded as StoreKindInternal.
const (
	StoreKindKeyValue = string(topology.KeyValueStore)
	StoreKindWindow   = string(topology.WindowStore)
	StoreKindSession  = string(topology.SessionStore)
	StoreKindInternal = "internal"
)

// recordStoreKinds records the kind of every store of topo in db (see
// StoreKindKeyValue). A failure is logged, not returned: the kinds only
// help inspection, and a DB that cannot write fails the first commit.
func recordStoreKinds(db *state.DB, topo *topology.Topology, logger hclog.Logger) {
	queries := topo.Queries()
	for _, s := range topo.SubTopologies() {
		for _, st := range s.Stores {
			kind := StoreKindInternal
			if q, ok := queries[st.Name]; ok {
				kind = string(q.Kind())
			}
			if err := db.SetStoreKind(st.Name, kind); err != nil {
				logger.Warn("cannot record the kind of a store", "store", st.Name, "error", err)
				return
			}
		}
	}
}
