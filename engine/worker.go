package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/state"
)

// stopTimeout bounds the final commit and leaving the group once Run's
// context is done.
const stopTimeout = 30 * time.Second

// worker is one goroutine: a group member and the tasks of its partitions.
type worker struct {
	e      *Engine
	id     int
	cfg    broker.SessionConfig
	sess   broker.Session
	logger hclog.Logger

	tasks map[taskID]*task
	byTP  map[broker.TopicPartition]*task
	// owned maps the partitions assigned to the worker to their start
	// positions, until a task takes them over.
	owned map[broker.TopicPartition]int64

	// Counters since the last commit, added to the engine's at commit.
	in, out, late         int64
	skipped, deadLettered int64 // input records that did not decode
	dirty                 bool  // something to commit
	// sent is the bytes of the records sent into the open transaction
	// (output, changelog, dead letters): past maxTxnBytes the worker
	// commits before the interval ends.
	sent int
	// polled is set when a Poll returned records since the last commit:
	// even if none was processed (past a bounded run's end), the session
	// must see a Commit, since a Kafka session holds rebalances until then.
	polled bool
	// rebuild is set by restart: the next loop recreates the tasks of
	// the partitions still owned, after handling what the session
	// reported.
	rebuild    bool
	lastCommit time.Time
	// lastCheckpoint is when the tasks' state was last written to the
	// state DB; deferred, that commits since were not (see
	// Options.CheckpointInterval).
	lastCheckpoint time.Time
	deferred       bool

	// now is the worker's wall clock: time.Now, or a Stepper's clock.
	now func() time.Time
	// queries are store reads waiting for the worker's next commit
	// boundary (see query.go).
	queries chan *storeQuery
	// stopped is closed when run returns: queries stop waiting.
	stopped chan struct{}
	// wake cuts the worker's wait in Poll short, so that it answers a
	// query without waiting for records; see query.go.
	wake struct {
		sync.Mutex
		cancel context.CancelFunc
	}
	// obs is the worker's bookkeeping for metrics and readiness (metrics.go).
	obs workerObs
}

func newWorker(e *Engine, id int, cfg broker.SessionConfig, sess broker.Session) *worker {
	e.sessions.set(id, sess)
	return &worker{
		e:      e,
		id:     id,
		cfg:    cfg,
		sess:   sess,
		logger: e.opts.Logger.Named("worker").With("worker", id),
		tasks:  map[taskID]*task{},
		byTP:   map[broker.TopicPartition]*task{},
		owned:  map[broker.TopicPartition]int64{},

		now:     time.Now,
		queries: make(chan *storeQuery, queryBacklog),
		stopped: make(chan struct{}),
	}
}

// run is the worker's loop; it returns nil when ctx is done and the final
// commit succeeded, or when a bounded run is complete.
func (w *worker) run(ctx context.Context) (err error) {
	stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
	defer cancel()
	defer func() {
		if err != nil {
			w.abort()
		} else {
			err = w.commit(stopCtx, true)
		}
		w.closeTasks()
		close(w.stopped)
		err = errors.Join(err, w.sess.Close(stopCtx))
	}()
	w.lastCommit = w.now()
	w.lastCheckpoint = w.lastCommit
	interval := w.e.opts.CommitInterval
	// Commits are not cut short by ctx: a stop waits for the commit under
	// way, then makes the final one.
	commitCtx := context.WithoutCancel(ctx)
	for {
		if ctx.Err() != nil {
			return nil
		}
		wait := max(interval-w.now().Sub(w.lastCommit), time.Millisecond)
		pollCtx, cancelPoll := context.WithTimeout(ctx, wait)
		w.setWake(cancelPoll)
		f, perr := w.sess.Poll(pollCtx, w.e.opts.MaxPollRecords)
		w.setWake(nil)
		cancelPoll()
		if perr != nil && !errors.Is(perr, context.DeadlineExceeded) && !errors.Is(perr, context.Canceled) {
			return fmt.Errorf("engine: worker %d: poll: %w", w.id, perr)
		}
		if len(f.Revoked) > 0 {
			if err := w.revoke(commitCtx, f.Revoked); err != nil {
				return err
			}
		}
		if len(f.Assigned) > 0 {
			if err := w.assign(ctx, f.Assigned, f.Committed); err != nil {
				if stoppedBy(ctx, err) {
					return nil // stopped while restoring
				}
				return err
			}
		}
		if w.rebuild {
			// After an abort, partitions still owned wait for their tasks.
			w.rebuild = false
			if err := w.createTasks(ctx); err != nil {
				if stoppedBy(ctx, err) {
					return nil
				}
				return err
			}
		}
		w.started()
		w.polled = w.polled || len(f.Records) > 0
		processStart := time.Now()
		for i := range f.Records {
			if err := w.enqueue(&f.Records[i]); err != nil {
				return err
			}
		}
		if err := w.drain(ctx); err != nil {
			if stoppedBy(ctx, err) {
				return nil
			}
			return err
		}
		w.processed(processStart, len(f.Records))
		if w.e.progress != nil {
			if err := w.finishComplete(ctx, len(f.Records) == 0); err != nil {
				if stoppedBy(ctx, err) {
					return nil
				}
				return err
			}
		}
		if w.now().Sub(w.lastCommit) >= interval || w.finishing() || w.sent >= maxTxnBytes {
			if err := w.commit(commitCtx, false); err != nil {
				return err
			}
		}
		if !w.dirty {
			w.serveQueries() // at a commit boundary: read-committed
		}
		if w.e.progress != nil && w.e.progress.done() {
			return nil
		}
	}
}

// stoppedBy reports whether err only says that ctx ended: a stop, not a failure.
func stoppedBy(ctx context.Context, err error) bool {
	return ctx.Err() != nil && errors.Is(err, ctx.Err())
}

// process runs r, a record of t's input partition tp, through t, unless
// it was processed before a rewind or lies past a bounded input's end.
func (w *worker) process(t *task, tp broker.TopicPartition, r *broker.Record) error {
	if r.Offset < t.pos[tp] {
		return nil // already processed before a rewind
	}
	if w.e.progress != nil {
		if target, ok := t.target(tp); ok && r.Offset >= target {
			return nil // past the end of bounded input
		}
	}
	if err := t.process(r); err != nil {
		return err
	}
	t.pos[tp] = r.Offset + 1
	w.in++
	w.dirty = true
	return nil
}

// send writes an operator's output into the open transaction.
func (w *worker) send(r operators.RawRecord) {
	w.out++
	w.sendRecord(broker.Record{
		Topic: r.Topic, Partition: r.Partition, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value, Headers: toBrokerHeaders(r.Headers),
	})
}

// maxTxnBytes bounds what a worker sends into one transaction: the
// embedded log holds a transaction's records in memory until it commits,
// and a Kafka producer buffers them. Past it the worker commits once the
// records of its current poll are processed, before CommitInterval ends,
// so a fan-out (FlatMap) or large values cannot grow a transaction with
// the throughput.
const maxTxnBytes = 8 << 20

// sendRecord adds r to the open transaction and counts its bytes.
func (w *worker) sendRecord(r broker.Record) {
	w.sent += len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		w.sent += len(h.Key) + len(h.Value)
	}
	w.sess.Send(r)
}

// assign records new partitions and creates the tasks whose inputs are
// all owned now.
func (w *worker) assign(ctx context.Context, tps []broker.TopicPartition, committed map[broker.TopicPartition]broker.Offset) error {
	for _, tp := range tps {
		if off, ok := committed[tp]; ok {
			w.owned[tp] = off.Offset
			continue
		}
		bounds, err := w.e.log.Offsets(ctx, tp)
		if err != nil {
			return fmt.Errorf("engine: worker %d: offsets of %s: %w", w.id, tp, err)
		}
		w.owned[tp] = bounds.Start
	}
	return w.createTasks(ctx)
}

// storeWait bounds how long a new task waits for a store partition that
// another worker of this instance still holds: Kafka may hand a lost
// member's partitions to a sibling before the loser has noticed and
// closed its tasks at its next commit.
const storeWait = time.Minute

// createTasks creates the tasks whose input partitions are all owned and
// that do not run yet.
func (w *worker) createTasks(ctx context.Context) error {
	for _, sub := range w.e.topo.SubTopologies() {
		for p := range w.e.subParts[sub.ID] {
			id := taskID{sub.ID, p}
			if w.tasks[id] != nil || !w.ownsAll(sub.Sources, p) {
				continue
			}
			t, err := newTask(ctx, w, sub, p, w.owned)
			for deadline := time.Now().Add(storeWait); errors.Is(err, state.ErrStoreInUse) && time.Now().Before(deadline); {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
				t, err = newTask(ctx, w, sub, p, w.owned)
			}
			if err != nil {
				return fmt.Errorf("engine: start task %s: %w", id, err)
			}
			w.tasks[id] = t
			w.e.tasks.add(id, w)
			for tp := range t.pos {
				w.byTP[tp] = t
			}
			w.logger.Debug("task started", "task", id.String())
		}
	}
	return nil
}

func (w *worker) ownsAll(topics []string, p int32) bool {
	for _, topic := range topics {
		if _, ok := w.owned[broker.TopicPartition{Topic: topic, Partition: p}]; !ok {
			return false
		}
	}
	return true
}

// revoke commits and checkpoints, then closes the tasks reading revoked
// partitions.
func (w *worker) revoke(ctx context.Context, tps []broker.TopicPartition) error {
	if err := w.commit(ctx, true); err != nil {
		return err
	}
	for _, tp := range tps {
		delete(w.owned, tp)
		t := w.byTP[tp]
		if t == nil {
			continue
		}
		for in := range t.pos {
			delete(w.byTP, in)
		}
		delete(w.tasks, t.id)
		w.e.tasks.remove(t.id)
		if err := t.state.Close(); err != nil {
			return fmt.Errorf("engine: task %s: close: %w", t.id, err)
		}
		w.logger.Debug("task closed", "task", t.id.String())
	}
	return nil
}

// finishComplete closes the windows of every task whose bounded input is
// fully consumed. idle tells that the last Poll returned no records.
func (w *worker) finishComplete(ctx context.Context, idle bool) error {
	for _, t := range w.tasks {
		if t.finishing || t.finished {
			continue
		}
		done, err := w.inputComplete(ctx, t, idle)
		if err != nil {
			return err
		}
		if !done {
			continue
		}
		if err := t.finish(); err != nil {
			return err
		}
		w.dirty = true
	}
	return nil
}

var errFound = errors.New("found a record")

// inputComplete reports whether t consumed its bounded input. Offsets are
// not dense on Kafka (transaction markers take offsets), so a position
// short of its target is complete when no record lies in between: that is
// checked, when the worker is idle, by reading the log.
func (w *worker) inputComplete(ctx context.Context, t *task, idle bool) (bool, error) {
	for tp, pos := range t.pos {
		target, ok := t.target(tp)
		if !ok {
			return false, nil
		}
		if pos >= target {
			continue
		}
		if !idle {
			return false, nil
		}
		err := w.e.log.Read(ctx, tp, pos, target, func(broker.Record) error { return errFound })
		if errors.Is(err, errFound) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("engine: bounded run: read %s: %w", tp, err)
		}
		t.pos[tp] = target // only markers left: skip them
	}
	return true, nil
}

func (w *worker) finishing() bool {
	for _, t := range w.tasks {
		if t.finishing {
			return true
		}
	}
	return false
}

// commit runs the commit protocol for all of the worker's tasks, and
// writes their state to the state DB if checkpoint is set or a checkpoint
// is due.
func (w *worker) commit(ctx context.Context, checkpoint bool) error {
	w.report(ctx)
	checkpoint = checkpoint || w.finishing() || w.now().Sub(w.lastCheckpoint) >= w.e.opts.CheckpointInterval || w.stagedFull()
	for _, t := range w.tasks {
		if err := t.state.Flush(); err != nil {
			return fmt.Errorf("engine: task %s: flush: %w", t.id, err)
		}
	}
	offsets := map[broker.TopicPartition]broker.Offset{}
	for _, t := range w.tasks {
		for tp, pos := range t.pos {
			if pos != t.committed[tp] {
				offsets[tp] = broker.Offset{Offset: pos}
			}
		}
	}
	if !w.dirty && !w.polled && len(offsets) == 0 {
		w.lastCommit = w.now()
		if checkpoint && w.deferred {
			return w.checkpoint()
		}
		return nil
	}
	commitStart := time.Now()
	crashPoint("commit.before-log")
	ends, err := w.sess.Commit(ctx, offsets)
	if errors.Is(err, broker.ErrFenced) {
		w.logger.Warn("fenced: dropping uncommitted work and rejoining the group", "error", err)
		return w.rejoin(ctx)
	}
	if errors.Is(err, broker.ErrAborted) {
		w.logger.Info("transaction aborted by the log; resuming from the last commit", "error", err)
		return w.restart()
	}
	if err != nil {
		return fmt.Errorf("engine: worker %d: commit transaction: %w", w.id, err)
	}
	crashPoint("commit.after-log")
	for _, t := range w.tasks {
		var stores map[string]int64
		for name, topic := range t.changelogs {
			if end, ok := ends[broker.TopicPartition{Topic: topic, Partition: t.id.partition}]; ok {
				if stores == nil {
					stores = map[string]int64{}
				}
				stores[name] = end
			}
		}
		// The log commit succeeded: a failure here leaves the state DB
		// behind its changelog, which a restart's restore catches up.
		apply := t.state.Commit
		if !checkpoint {
			apply = t.state.CommitDeferred
		}
		if err := apply(stores); err != nil {
			return fmt.Errorf("engine: task %s: apply state after the log commit: %w", t.id, err)
		}
		for tp, pos := range t.pos {
			t.committed[tp] = pos
		}
		if t.finishing {
			t.finishing, t.finished = false, true
			if err := w.e.progress.finish(ctx, t.id); err != nil {
				return err
			}
		}
	}
	crashPoint("commit.after-state")
	w.foldCounts(commitStart)
	m := &w.e.metrics
	m.recordsIn.Add(w.in)
	m.recordsOut.Add(w.out)
	m.late.Add(w.late)
	m.skipped.Add(w.skipped)
	m.deadLetters.Add(w.deadLettered)
	m.commits.Add(1)
	w.in, w.out, w.late, w.dirty, w.polled, w.sent = 0, 0, 0, false, false, 0
	w.skipped, w.deadLettered = 0, 0
	w.lastCommit = w.now()
	w.deferred = !checkpoint
	if checkpoint {
		w.lastCheckpoint = w.lastCommit
		m.checkpoints.Add(1)
	}
	return nil
}

// maxStagedBytes bounds the memory a task's staged batch holds between
// checkpoints: uncached stores and cache evictions write there, and only
// a checkpoint empties it.
const maxStagedBytes = 16 << 20

// stagedFull reports whether a task's staged batch outgrew maxStagedBytes,
// or, with Options.MemoryBytes, the worker's tasks' staged batches together
// outgrew the worker's share of the budget's part for them, which makes
// the commit a checkpoint.
func (w *worker) stagedFull() bool {
	total, limit := 0, w.e.mem.StagedBytes/int64(max(w.e.opts.Workers, 1))
	for _, t := range w.tasks {
		n := t.state.StagedBytes()
		if n > maxStagedBytes {
			return true
		}
		total += n
	}
	return limit > 0 && int64(total) > limit
}

// checkpoint writes the state of the commits deferred since the last
// checkpoint to the state DB.
func (w *worker) checkpoint() error {
	for _, t := range w.tasks {
		if err := t.state.Commit(nil); err != nil {
			return fmt.Errorf("engine: task %s: apply state: %w", t.id, err)
		}
	}
	w.deferred = false
	w.lastCheckpoint = w.now()
	w.e.metrics.checkpoints.Add(1)
	return nil
}

// restart drops the uncommitted work of every task after the log aborted
// the transaction. The tasks are closed, and their partitions stay owned
// at the committed positions (the session rewound there): createTasks
// rebuilds them from the state DB and the changelog tail once the session
// has reported what the abort took away. Nothing operators held in memory
// outlives the abort.
func (w *worker) restart() error {
	w.in, w.out, w.late, w.dirty, w.polled, w.sent = 0, 0, 0, false, false, 0
	w.skipped, w.deadLettered = 0, 0
	for id, t := range w.tasks {
		w.e.tasks.remove(id)
		t.state.Abort()
		if err := t.state.Close(); err != nil {
			return fmt.Errorf("engine: task %s: close: %w", id, err)
		}
		for tp, pos := range t.committed {
			w.owned[tp] = pos
		}
	}
	clear(w.tasks)
	clear(w.byTP)
	w.deferred = false // the new tasks restore what was deferred
	w.rebuild = true
	w.lastCommit = w.now()
	return nil
}

// rejoin replaces a fenced session: another member owns the partitions
// now, so the tasks are dropped (uncommitted work with them) and the
// worker joins the group again with a new session, which fences the old
// producer for good and gets a fresh assignment.
func (w *worker) rejoin(ctx context.Context) error {
	if err := w.restart(); err != nil {
		return err
	}
	clear(w.owned)
	w.rebuild = false
	if err := w.sess.Close(ctx); err != nil {
		w.logger.Debug("close fenced session", "error", err)
	}
	sess, err := w.e.log.NewSession(ctx, w.cfg)
	if err != nil {
		return fmt.Errorf("engine: worker %d: rejoin group %s: %w", w.id, w.cfg.Group, err)
	}
	w.sess = sess
	w.e.sessions.set(w.id, sess)
	return nil
}

// abort drops uncommitted work after a failure.
func (w *worker) abort() {
	for _, t := range w.tasks {
		t.state.Abort()
	}
}

func (w *worker) closeTasks() {
	for id, t := range w.tasks {
		w.e.tasks.remove(id)
		if err := t.state.Close(); err != nil {
			w.logger.Warn("close task", "task", id.String(), "error", err)
		}
	}
	clear(w.tasks)
	clear(w.byTP)
	w.unreport()
}
