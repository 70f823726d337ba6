package engine

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
)

// taskID names a task: a sub-topology on one partition, "1_3" in logs.
type taskID struct {
	sub       int
	partition int32
}

func (id taskID) String() string { return fmt.Sprintf("%d_%d", id.sub, id.partition) }

// task runs one sub-topology on one partition. It is owned by one worker.
type task struct {
	id     taskID
	w      *worker
	sub    *topology.SubTopology
	state  *state.Task
	graph  *operators.Graph
	ctx    operators.Context
	raw    operators.RawRecord
	logger hclog.Logger

	// pos is the next offset to consume of each input partition;
	// committed what the last commit recorded.
	pos, committed map[broker.TopicPartition]int64
	changelogs     map[string]string   // store name -> changelog topic
	stores         map[string]rawStore // by name, for queries
	// targets caches the bounded-run targets known so far: once set, a
	// target never changes, so the per-record check takes no lock.
	targets map[broker.TopicPartition]int64
	lastTs  int64 // timestamp of the record being processed, for changelog records
	// inputs buffers the records of a task with several input
	// partitions, so that it processes them in timestamp order (see
	// order.go); nil for a single input. buffered counts them.
	inputs       []*inputQueue
	buffered     int
	waitingSince time.Time // when the task began to wait for an empty input
	// finishing is set once a bounded task has flushed its windows and
	// waits for the commit that makes that visible; finished after it.
	finishing, finished bool
	// counts are the records of each source and sink topic since the
	// last commit, for the metrics (metrics.go).
	counts taskCounts
}

func newTask(ctx context.Context, w *worker, sub *topology.SubTopology, p int32, start map[broker.TopicPartition]int64) (*task, error) {
	id := taskID{sub.ID, p}
	t := &task{
		id:         id,
		w:          w,
		sub:        sub,
		logger:     w.logger.With("task", id.String()),
		pos:        map[broker.TopicPartition]int64{},
		committed:  map[broker.TopicPartition]int64{},
		changelogs: map[string]string{},
		stores:     map[string]rawStore{},
		targets:    map[broker.TopicPartition]int64{},
	}
	for _, st := range sub.Stores {
		t.changelogs[st.Name] = st.Changelog
	}
	for _, src := range sub.Sources {
		tp := broker.TopicPartition{Topic: src, Partition: p}
		t.pos[tp] = start[tp]
		t.committed[tp] = start[tp]
		if len(sub.Sources) > 1 {
			t.inputs = append(t.inputs, &inputQueue{tp: tp})
		}
	}
	e := w.e
	t.ctx = operators.Context{
		Partition:  p,
		Logger:     t.logger,
		Send:       t.send,
		Partitions: func(topic string) int32 { return e.partitions[topic] },
		Late: func(op string) {
			w.late++
			if t.logger.IsDebug() {
				t.logger.Debug("late record dropped", "operator", op, "topic", t.ctx.Topic, "partition", t.ctx.InputPartition, "offset", t.ctx.Offset)
			}
		},
		Dropped: func(op, reason string) {
			w.skipped++
			if t.logger.IsDebug() {
				t.logger.Debug("record dropped", "operator", op, "reason", reason, "topic", t.ctx.Topic, "partition", t.ctx.InputPartition, "offset", t.ctx.Offset)
			}
		},
	}
	t.state = e.db.NewTask(id.String())
	var err error
	t.graph, err = sub.NewGraph(&t.ctx, storeOpener{t, ctx})
	if err != nil {
		t.state.Close()
		return nil, fmt.Errorf("engine: task %s: %w", id, err)
	}
	t.countSources()
	return t, nil
}

// storeOpener opens a task's stores for its operators, each restored from
// its changelog's tail before the operator sees it.
type storeOpener struct {
	t   *task
	ctx context.Context
}

func (o storeOpener) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	kv, err := o.t.state.KV(name, o.t.id.partition, o.t.storeConfig(name, cfg))
	if err != nil {
		return nil, err
	}
	o.t.stores[name] = kv
	return kv, o.t.restore(o.ctx, name, kv)
}

func (o storeOpener) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	ws, err := o.t.state.Window(name, o.t.id.partition, o.t.storeConfig(name, cfg))
	if err != nil {
		return nil, err
	}
	o.t.stores[name] = windowRaw{ws}
	return ws, o.t.restore(o.ctx, name, ws)
}

func (t *task) storeConfig(name string, cfg state.StoreConfig) state.StoreConfig {
	topic, p := t.changelogs[name], t.id.partition
	cfg.Changelog = func(key, value []byte) {
		// Send copies key and value.
		t.w.sendRecord(broker.Record{Topic: topic, Partition: p, Timestamp: t.lastTs, Key: key, Value: value})
	}
	cfg.CacheBytes = max(t.w.e.opts.CacheBytes, 0)
	return cfg
}

func clone(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append(make([]byte, 0, len(b)), b...)
}

// restorable is a store that can replay its changelog.
type restorable interface {
	CommittedOffset() (int64, bool, error)
	Restore(records []state.ChangelogRecord, end int64) error
}

const restoreBatch = 4096

// restore replays the changelog after the offset the local store reflects.
func (t *task) restore(ctx context.Context, name string, s restorable) error {
	log := t.w.e.log
	tp := broker.TopicPartition{Topic: t.changelogs[name], Partition: t.id.partition}
	from, ok, err := s.CommittedOffset()
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	bounds, err := log.Offsets(ctx, tp)
	if err != nil {
		return fmt.Errorf("store %s: changelog %s: %w", name, tp, err)
	}
	switch {
	case !ok || from < bounds.Start:
		from = bounds.Start
	case from > bounds.End:
		return fmt.Errorf("store %s partition %d is ahead of its changelog %s (local offset %d, changelog end %d): the changelog was truncated or recreated; reset the application",
			name, t.id.partition, tp.Topic, from, bounds.End)
	}
	if from == bounds.End {
		return nil
	}
	progress := t.w.e.obs.restoreStarted(from, bounds.End)
	defer progress.done()
	batch := make([]state.ChangelogRecord, 0, restoreBatch)
	n := 0
	err = log.Read(ctx, tp, from, bounds.End, func(r broker.Record) error {
		batch = append(batch, state.ChangelogRecord{Key: clone(r.Key), Value: clone(r.Value)})
		n++
		if len(batch) < restoreBatch {
			return nil
		}
		err := s.Restore(batch, r.Offset+1)
		progress.applied(len(batch), r.Offset+1)
		batch = batch[:0]
		crashPoint("restore")
		return err
	})
	if err == nil {
		err = s.Restore(batch, bounds.End)
		progress.applied(len(batch), bounds.End)
		crashPoint("restore")
	}
	if err != nil {
		return fmt.Errorf("store %s: restore from %s: %w", name, tp, err)
	}
	t.w.e.metrics.restored.Add(int64(n))
	t.logger.Debug("restored store", "store", name, "from", from, "to", bounds.End, "records", n)
	return nil
}

// process runs one input record through the task's graph.
func (t *task) process(r *broker.Record) (err error) {
	src := t.graph.Sources[r.Topic]
	t.raw = operators.RawRecord{
		Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp,
		Key: r.Key, Value: r.Value, Headers: fromBrokerHeaders(r.Headers),
	}
	t.ctx.Topic, t.ctx.InputPartition, t.ctx.Offset = r.Topic, r.Partition, r.Offset
	t.ctx.Operator = ""
	t.lastTs = r.Timestamp
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("engine: task %s: %w", t.id, &operators.PanicError{
				Operator: t.ctx.Operator, Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Value: p,
			})
		}
	}()
	if err := src.ProcessRaw(&t.ctx, &t.raw); err != nil {
		var de *operators.DecodeError
		if errors.As(err, &de) {
			return t.badInput(r, de)
		}
		return fmt.Errorf("engine: task %s: record %s/%d@%d: %w", t.id, r.Topic, r.Partition, r.Offset, err)
	}
	return nil
}

// badInput handles a record whose key or value does not decode, as
// Options.OnDecodeError says. A source returns a DecodeError before it
// forwards anything, so skipping the record undoes nothing; returning nil
// lets the worker consume its offset like any other's.
func (t *task) badInput(r *broker.Record, de *operators.DecodeError) error {
	w := t.w
	switch w.e.opts.OnDecodeError {
	case DecodeSkip:
		t.logger.Warn("skipping a record that does not decode",
			"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "field", de.Field, "error", de.Err)
		w.skipped++
		return nil
	case DecodeDeadLetter:
		w.sendRecord(t.deadLetter(r, de))
		w.deadLettered++
		if t.logger.IsDebug() {
			t.logger.Debug("dead-lettered a record that does not decode",
				"topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "field", de.Field, "error", de.Err)
		}
		return nil
	}
	return fmt.Errorf("engine: task %s: %w", t.id, de)
}

// deadLetter returns the dead letter of r: its raw key, value, timestamp
// and headers, plus headers telling the error and where r came from. It
// goes to partition (r's partition mod the topic's partition count).
func (t *task) deadLetter(r *broker.Record, de *operators.DecodeError) broker.Record {
	topic := t.w.e.opts.DeadLetterTopic
	msg := de.Error()
	if de.Err != nil {
		msg = de.Err.Error()
	}
	h := make([]broker.Header, 0, len(r.Headers)+6)
	for _, x := range r.Headers {
		h = append(h, broker.Header{Key: x.Key, Value: clone(x.Value)})
	}
	h = append(h,
		broker.Header{Key: "eddy.error", Value: []byte(msg)},
		broker.Header{Key: "eddy.error.field", Value: []byte(de.Field)},
		broker.Header{Key: "eddy.topic", Value: []byte(r.Topic)},
		broker.Header{Key: "eddy.partition", Value: strconv.AppendInt(nil, int64(r.Partition), 10)},
		broker.Header{Key: "eddy.offset", Value: strconv.AppendInt(nil, r.Offset, 10)},
		broker.Header{Key: "eddy.task", Value: []byte(t.id.String())},
	)
	return broker.Record{
		Topic:     topic,
		Partition: r.Partition % t.w.e.partitions[topic],
		Timestamp: r.Timestamp,
		Key:       clone(r.Key),
		Value:     clone(r.Value),
		Headers:   h,
	}
}

// target returns the offset up to which a bounded run consumes tp, once known.
func (t *task) target(tp broker.TopicPartition) (int64, bool) {
	if off, ok := t.targets[tp]; ok {
		return off, true
	}
	off, ok := t.w.e.progress.target(tp)
	if ok {
		t.targets[tp] = off
	}
	return off, ok
}

// finish closes the task's windows at the end of bounded input.
func (t *task) finish() error {
	t.ctx.Topic, t.ctx.Offset = "", -1
	for _, f := range t.graph.Finishers {
		if err := f.Finish(&t.ctx); err != nil {
			return fmt.Errorf("engine: task %s: finish: %w", t.id, err)
		}
	}
	t.finishing = true
	return nil
}

func fromBrokerHeaders(h []broker.Header) []operators.Header {
	if len(h) == 0 {
		return nil
	}
	out := make([]operators.Header, len(h))
	for i, x := range h {
		out[i] = operators.Header{Key: x.Key, Value: x.Value}
	}
	return out
}

func toBrokerHeaders(h []operators.Header) []broker.Header {
	if len(h) == 0 {
		return nil
	}
	out := make([]broker.Header, len(h))
	for i, x := range h {
		out[i] = broker.Header{Key: x.Key, Value: x.Value}
	}
	return out
}
