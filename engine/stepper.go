package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// Stepper runs an engine's topology in the caller's goroutine, one step at
// a time, instead of Run: Process takes the records the log holds, Commit
// commits, and the caller sets the wall clock that decides when commits
// checkpoint. It runs one worker, which owns every partition. Package
// eddytest builds its test driver on it; applications use Run.
//
// A Stepper is deterministic: the same calls on the same log contents
// process the same records in the same order. It is not safe for
// concurrent use; Engine.Stores' reads run in the calling goroutine.
type Stepper struct {
	e   *Engine
	w   *worker
	now time.Time
}

// stepperPoll bounds how long Process waits for records once the log has
// none to give: every record it should take is committed before it polls.
const stepperPoll = 2 * time.Millisecond

// Stepper prepares the topology's topics, joins the application's group
// and returns a Stepper whose clock starts at start. The engine is then
// driven by the Stepper only: Run may not be called, and Close follows
// the Stepper's Stop or Abandon.
func (e *Engine) Stepper(ctx context.Context, start time.Time) (*Stepper, error) {
	if !e.running.CompareAndSwap(false, true) {
		return nil, errors.New("engine: Stepper called on an engine that runs")
	}
	if err := e.prepareTopics(ctx); err != nil {
		return nil, err
	}
	e.tasks.setParts(e.subParts)
	var topics []string
	for _, s := range e.topo.SubTopologies() {
		topics = append(topics, s.Sources...)
	}
	cfg := broker.SessionConfig{
		Group:       e.topo.App(),
		Member:      fmt.Sprintf("%s-%s-0", e.topo.App(), e.opts.InstanceID),
		Topics:      topics,
		AtLeastOnce: e.opts.Guarantee == AtLeastOnce,
		Endpoint:    e.advertised(),
	}
	sess, err := e.log.NewSession(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("engine: join group %s: %w", e.topo.App(), err)
	}
	s := &Stepper{e: e, now: start}
	s.w = newWorker(e, 0, cfg, sess)
	s.w.now = func() time.Time { return s.now }
	s.w.lastCommit, s.w.lastCheckpoint = start, start
	e.stepper = s
	return s, nil
}

// Now returns the Stepper's wall clock.
func (s *Stepper) Now() time.Time { return s.now }

// Advance moves the wall clock forward by d. A Commit checkpoints when
// Options.CheckpointInterval has passed on this clock since the last
// checkpoint.
func (s *Stepper) Advance(d time.Duration) {
	if d > 0 {
		s.now = s.now.Add(d)
	}
}

// Process polls the log and processes the records it returns until a poll
// returns none, and reports how many it processed. It does not commit:
// output, changelog records and repartitioned records stay in the open
// transaction, invisible to readers (and to the tasks reading the
// repartition topics) until Commit.
func (s *Stepper) Process(ctx context.Context) (int, error) {
	w := s.w
	n := 0
	for {
		pollCtx, cancel := context.WithTimeout(ctx, stepperPoll)
		f, err := w.sess.Poll(pollCtx, w.e.opts.MaxPollRecords)
		cancel()
		idle := false // the poll waited for records and got none
		if err != nil {
			if ctx.Err() != nil {
				return n, ctx.Err()
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				return n, fmt.Errorf("engine: poll: %w", err)
			}
			idle = true
		}
		if len(f.Revoked) > 0 {
			if err := w.revoke(ctx, f.Revoked); err != nil {
				return n, err
			}
		}
		if len(f.Assigned) > 0 {
			if err := w.assign(ctx, f.Assigned, f.Committed); err != nil {
				return n, err
			}
		}
		if w.rebuild {
			w.rebuild = false
			if err := w.createTasks(ctx); err != nil {
				return n, err
			}
		}
		w.polled = w.polled || len(f.Records) > 0
		for i := range f.Records {
			if err := w.enqueue(&f.Records[i]); err != nil {
				return n, err
			}
		}
		if err := w.drain(ctx); err != nil {
			return n, err
		}
		n += len(f.Records)
		if idle {
			return n, nil
		}
	}
}

// Commit commits what was processed since the last commit: output,
// changelog and repartitioned records and the consumed offsets, atomically.
// The stores' state is written to the state DB (a checkpoint) when
// Options.CheckpointInterval has passed on the Stepper's clock; until then
// a crash leaves it to the changelog.
func (s *Stepper) Commit(ctx context.Context) error { return s.w.commit(ctx, false) }

// Checkpoint commits and writes the stores' state to the state DB.
func (s *Stepper) Checkpoint(ctx context.Context) error { return s.w.commit(ctx, true) }

// Stop commits, checkpoints, closes the tasks and leaves the group, as Run
// does when its context ends. The engine can then be closed.
func (s *Stepper) Stop(ctx context.Context) error {
	err := s.w.commit(ctx, true)
	if err != nil {
		s.w.abort()
	}
	s.w.closeTasks()
	err = errors.Join(err, s.w.sess.Close(ctx))
	s.e.stepper = nil
	return err
}

// Abandon drops everything since the last commit, closes the tasks without
// writing their state and leaves the group: what a crash leaves behind,
// short of the disk. The engine can then be closed.
func (s *Stepper) Abandon(ctx context.Context) error {
	s.w.abort()
	s.w.closeTasks()
	err := s.w.sess.Close(ctx)
	s.e.stepper = nil
	return err
}
