package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// A task with several input partitions (a join, or a merge of topics)
// processes their records in timestamp order, as Kafka Streams does: it
// buffers each partition's records and always takes the buffered record
// with the smallest timestamp (ties: the partition that sorts first). When
// one input has nothing buffered but the log holds records past its
// position, the task waits for them rather than run ahead of them; see
// Options.MaxTaskIdle for how long. Single-input tasks skip all of this.

// inputQueue buffers the fetched, unprocessed records of one input
// partition of a task.
type inputQueue struct {
	tp   broker.TopicPartition
	recs []*broker.Record
	// end is the partition's end offset as last read from the log, at
	// checked. stale is an end the task already waited for in vain: on
	// Kafka, a transaction marker takes the last offset, so a position
	// one short of the end may be all there is.
	end, stale int64
	checked    time.Time
	// probed is the last end probed for records (see moreInLog).
	probed int64
}

// endRefresh bounds how often an empty input's end is read from the log.
const endRefresh = 20 * time.Millisecond

// maxBuffered bounds the records a waiting task buffers before it stops
// waiting, so that a slow input cannot make memory grow.
func (w *worker) maxBuffered() int { return 4 * w.e.opts.MaxPollRecords }

// enqueue buffers r for its task, or processes it at once when the task
// has a single input.
func (w *worker) enqueue(r *broker.Record) error {
	tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
	t := w.byTP[tp]
	if t == nil {
		return fmt.Errorf("engine: worker %d: record of %s, which no task of this worker reads", w.id, tp)
	}
	if t.inputs == nil {
		return w.process(t, tp, r)
	}
	for _, q := range t.inputs {
		if q.tp == tp {
			q.recs = append(q.recs, r)
			t.buffered++
			return nil
		}
	}
	return fmt.Errorf("engine: worker %d: record of %s, which task %s does not read", w.id, tp, t.id)
}

// drain processes the buffered records of every multi-input task, in
// timestamp order, until each is empty or waits for an input.
func (w *worker) drain(ctx context.Context) error {
	for _, t := range w.tasks {
		if t.inputs == nil || t.buffered == 0 {
			continue
		}
		if err := w.drainTask(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (w *worker) drainTask(ctx context.Context, t *task) error {
	for t.buffered > 0 {
		var next *inputQueue
		waiting := false
		for _, q := range t.inputs {
			if len(q.recs) == 0 {
				more, err := w.moreInLog(ctx, t, q)
				if err != nil {
					return err
				}
				waiting = waiting || more
				continue
			}
			if next == nil || q.recs[0].Timestamp < next.recs[0].Timestamp {
				next = q
			}
		}
		if waiting && !w.stopWaiting(t) {
			return nil
		}
		t.waitingSince = time.Time{}
		r := next.recs[0]
		next.recs[0] = nil
		next.recs = next.recs[1:]
		t.buffered--
		if err := w.process(t, next.tp, r); err != nil {
			return err
		}
	}
	return nil
}

// stopWaiting reports whether t has waited long enough for an empty input
// and should process its other inputs out of order. It also starts the
// clock of a new wait.
func (w *worker) stopWaiting(t *task) bool {
	if t.buffered >= w.maxBuffered() {
		return true
	}
	limit := w.e.opts.MaxTaskIdle
	if limit == 0 {
		limit = w.e.opts.CommitInterval
	}
	now := time.Now()
	if t.waitingSince.IsZero() {
		t.waitingSince = now
		return false
	}
	if now.Sub(t.waitingSince) < limit {
		return false
	}
	// Waited in vain: remember the ends waited for, so that the same
	// end does not make the task wait again.
	for _, q := range t.inputs {
		if len(q.recs) == 0 {
			q.stale = q.end
		}
	}
	t.logger.Debug("input idle: processing the other inputs out of timestamp order", "waited", now.Sub(t.waitingSince))
	return true
}

// moreInLog reports whether the log holds records of q's partition that
// the task has not fetched yet, as far as the task knows.
func (w *worker) moreInLog(ctx context.Context, t *task, q *inputQueue) (bool, error) {
	if w.e.opts.MaxTaskIdle < 0 {
		return false, nil
	}
	pos := t.pos[q.tp]
	if w.e.progress != nil {
		if target, ok := t.target(q.tp); ok && pos >= target {
			return false, nil // bounded input consumed
		}
	}
	// Refreshed at most every endRefresh: on Kafka, reading the end is a
	// request to the broker. In between, a caught-up input counts as
	// caught up, so records that reach it meanwhile may be taken after
	// later ones of the other inputs (Kafka Streams' lag is as stale).
	if time.Since(q.checked) >= endRefresh {
		bounds, err := w.e.log.Offsets(ctx, q.tp)
		if err != nil {
			return false, fmt.Errorf("engine: worker %d: offsets of %s: %w", w.id, q.tp, err)
		}
		q.end, q.checked = bounds.End, time.Now()
	}
	if q.end <= pos || q.end == q.stale {
		return false, nil
	}
	// One or two offsets short of the end may be transaction markers
	// only (Kafka): read them once per end rather than wait in vain.
	if q.end-pos <= 2 && q.probed != q.end {
		q.probed = q.end
		err := w.e.log.Read(ctx, q.tp, pos, q.end, func(broker.Record) error { return errFound })
		switch {
		case errors.Is(err, errFound):
		case err != nil:
			return false, fmt.Errorf("engine: worker %d: read %s: %w", w.id, q.tp, err)
		default:
			q.stale = q.end // markers only: caught up
			return false, nil
		}
	}
	return true, nil
}
