package benchmarks

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/kafka"
)

// kafkaEnv is the harness's side of a Kafka run: an admin log for topics,
// a producer, and an admin client for the groups' committed offsets.
type kafkaEnv struct {
	brokers []string
	log     *kafka.Log
	cl      *kgo.Client
	adm     *kadm.Client
}

func openKafkaEnv(ctx context.Context, brokers []string) (*kafkaEnv, error) {
	l, err := kafka.Open(ctx, kafka.Options{Brokers: brokers})
	if err != nil {
		return nil, err
	}
	// The producer places records itself: their Partition is set to
	// murmur2(key) % partitions, which is what Kafka's default
	// partitioner (kgo.StickyKeyPartitioner(nil)) picks for a keyed
	// record, or to p for the end marker of partition p.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.ProducerBatchMaxBytes(1<<20), kgo.MaxBufferedRecords(100_000),
		kgo.MetadataMinAge(100*time.Millisecond))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("kafka %s: %w", strings.Join(brokers, ","), err)
	}
	return &kafkaEnv{brokers: brokers, log: l, cl: cl, adm: kadm.NewClient(cl)}, nil
}

func (k *kafkaEnv) close() {
	k.cl.Close()
	k.log.Close()
}

// deletePrefixed deletes every topic whose name starts with prefix: the
// run's input and outputs and the internal topics of the systems, whose
// application ids and groups all start with it.
func (k *kafkaEnv) deletePrefixed(ctx context.Context, prefix string) error {
	topics, err := k.log.DescribeTopics(ctx)
	if err != nil {
		return err
	}
	var names []string
	for name := range topics {
		if strings.HasPrefix(name, prefix) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	return k.log.DeleteTopics(ctx, names...)
}

// committed returns the sum of group's committed offsets on topic.
func (k *kafkaEnv) committed(ctx context.Context, group, topic string) (int64, error) {
	offs, err := k.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, ps := range offs {
		for _, o := range ps {
			if o.Topic == topic && o.Err == nil && o.At > 0 {
				n += o.At
			}
		}
	}
	return n, nil
}

// kgoSender produces asynchronously through the harness's client: calls
// keep their order per partition (one idempotent producer), acked runs
// when the batch's last record is acknowledged.
type kgoSender struct {
	cl   *kgo.Client
	mu   sync.Mutex
	err  error
	done sync.WaitGroup
}

func (s *kgoSender) send(ctx context.Context, recs []broker.Record, acked func()) error {
	s.mu.Lock()
	err := s.err
	s.mu.Unlock()
	if err != nil {
		return err
	}
	var left atomic.Int64
	left.Store(int64(len(recs)))
	s.done.Add(1)
	for i := range recs {
		r := &recs[i]
		kr := &kgo.Record{Topic: r.Topic, Partition: r.Partition, Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
		s.cl.Produce(ctx, kr, func(kr *kgo.Record, err error) {
			if err != nil {
				s.mu.Lock()
				if s.err == nil {
					s.err = fmt.Errorf("produce to %s/%d: %w", kr.Topic, kr.Partition, err)
				}
				s.mu.Unlock()
			}
			if left.Add(-1) == 0 {
				acked()
				s.done.Done()
			}
		})
	}
	return nil
}

func (s *kgoSender) flush(ctx context.Context) error {
	if err := s.cl.Flush(ctx); err != nil {
		return err
	}
	s.done.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// outputWatch follows a system's committed output (read_committed, from
// the start) and tells when it is complete: with expected results, once
// every expected window has a result (emit on close, which writes each
// window once) or has its expected count (running counts: emit on update,
// goka); without, when done says so. It stamps each output the first
// time it is seen, for latency.
type outputWatch struct {
	format   OutputFormat
	variant  WA1Variant
	expected map[wa1Window]int64
	final    bool // each window is written once: complete when present
	stamp    bool // keep first-seen times, for latency

	mu        sync.Mutex
	results   *FinalResults
	satisfied int
	seen      map[seenKey]bool
	outs      []seenOutput
	complete  chan struct{}
	closed    bool
}

type seenKey struct {
	w       wa1Window
	count   int64
	deleted bool
}

func newOutputWatch(format OutputFormat, v WA1Variant, emit WA1Emit, expected []WA1Result, stamp bool) *outputWatch {
	w := &outputWatch{format: format, variant: v, final: format == FormatWindowed && emit == EmitClose, stamp: stamp,
		results: NewFinalResults(), seen: map[seenKey]bool{}, complete: make(chan struct{})}
	if expected != nil {
		w.expected = make(map[wa1Window]int64, len(expected))
		for _, r := range expected {
			w.expected[wa1Window{r.Key, r.Start, r.End}] = r.Count
		}
		if len(w.expected) == 0 {
			w.finish()
		}
	}
	return w
}

func (w *outputWatch) ok(win wa1Window) bool {
	want, expected := w.expected[win]
	if !expected {
		return false
	}
	got, has := w.results.Count(win.key, win.start, win.end)
	return has && (w.final || got == want)
}

func (w *outputWatch) add(r WA1Result, deleted bool, at int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	win := wa1Window{r.Key, r.Start, r.End}
	before := w.ok(win)
	w.results.Add(r, deleted)
	if after := w.ok(win); after != before {
		if after {
			w.satisfied++
		} else {
			w.satisfied--
		}
	}
	if k := (seenKey{win, r.Count, deleted}); w.stamp && !w.seen[k] {
		w.seen[k] = true
		w.outs = append(w.outs, seenOutput{r: r, deleted: deleted, at: at})
	}
	if w.expected != nil && w.satisfied == len(w.expected) {
		w.finish()
	}
}

// finish marks the output complete; w.mu is held or w is not shared yet.
func (w *outputWatch) finish() {
	if !w.closed {
		w.closed = true
		close(w.complete)
	}
}

// status returns the results so far and how many expected ones are done.
func (w *outputWatch) status() (results int, satisfied int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.results.Len(), w.satisfied
}

// run consumes topic until ctx is done.
func (w *outputWatch) run(ctx context.Context, brokers []string, topic string) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(50*time.Millisecond), kgo.MetadataMinAge(250*time.Millisecond), kgo.MetadataMaxAge(time.Second))
	if err != nil {
		return err
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		now := time.Now().UnixNano()
		var decodeErr error
		fs.EachRecord(func(rec *kgo.Record) {
			r, deleted, ok, err := DecodeWA1Output(w.format, w.variant, rec.Key, rec.Value)
			if err != nil {
				decodeErr = errors.Join(decodeErr, fmt.Errorf("%s/%d@%d: %w", rec.Topic, rec.Partition, rec.Offset, err))
				return
			}
			if ok {
				w.add(r, deleted, now)
			}
		})
		if decodeErr != nil {
			return decodeErr
		}
		// Fetch errors (a topic the peer has not created yet, a leader
		// moving) are retried by the client.
	}
}
