package benchmarks

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/window"
)

// keyPartitioner is Kafka's default partitioner for keyed records
// (murmur2 of the key), as franz-go implements it. It keeps no state for
// keyed records, so one serves every topic and goroutine.
var keyPartitioner = kgo.StickyKeyPartitioner(nil).ForTopic("")

// defaultPartition returns the partition Kafka's default partitioner gives
// key among n.
func defaultPartition(key string, n int32) int32 {
	return int32(keyPartitioner.Partition(&kgo.Record{Key: []byte(key)}, int(n)))
}

// Latency is end-to-end latency, from the acknowledged append of the
// input record that caused an output to the moment the harness first saw
// that output committed, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
	// Outputs is how many outputs were measured; Unmatched how many had
	// no cause in the input (none for a correct system).
	Outputs   int `json:"outputs"`
	Unmatched int `json:"unmatched,omitempty"`
	// Cause is "close" when an output's cause is the record that closed
	// its window, "update" when it is the last record it counts (emit on
	// update, and goka's running counts): the two do not compare.
	Cause string `json:"cause,omitempty"`
}

// latency summarizes the latencies of outputs whose cause is emit's.
func latency(d []time.Duration, unmatched int, emit WA1Emit) *Latency {
	l := summarize(d, unmatched)
	if l != nil {
		l.Cause = string(emit)
	}
	return l
}

// summarize returns the nearest-rank percentiles of d, or nil if d is
// empty. It sorts d.
func summarize(d []time.Duration, unmatched int) *Latency {
	if len(d) == 0 {
		return nil
	}
	slices.Sort(d)
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(0, min(i, len(d)-1))]
	}
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }
	return &Latency{P50: ms(rank(0.50)), P99: ms(rank(0.99)), Max: ms(d[len(d)-1]), Outputs: len(d), Unmatched: unmatched}
}

// ackChunk is the records of one appended batch: acked is when the
// backend acknowledged the last of them (Unix ns; 0 until then).
type ackChunk struct {
	acked atomic.Int64
}

// appendLog records WA1's input as it is appended, partition by
// partition in offset order (each partition of a fresh topic, written by
// one producer that keeps the order of its calls): every record's key
// and timestamp and the batch it was appended in. It is what the causes
// of outputs are looked up in.
type appendLog struct {
	parts []appendPart
}

type appendPart struct {
	keys   []string
	ts     []int64
	chunks []*ackChunk // of each record
}

func newAppendLog(partitions int) *appendLog {
	return &appendLog{parts: make([]appendPart, partitions)}
}

// add records that r (with its partition set) is appended in chunk c.
func (l *appendLog) add(r *broker.Record, c *ackChunk) {
	p := &l.parts[r.Partition]
	p.keys = append(p.keys, string(r.Key))
	p.ts = append(p.ts, r.Timestamp)
	p.chunks = append(p.chunks, c)
}

// seenOutput is an output as the harness saw it: a result, or the
// tombstone of one, and the time it was first seen (Unix ns).
type seenOutput struct {
	r       WA1Result
	deleted bool
	at      int64
}

// latencies returns the latency of every output (tombstones aside) and
// how many outputs had no cause. The cause of an output is computed from
// the input, with Kafka Streams' rules:
//
//   - emit on close: the first input record of the key's partition whose
//     stream-time (the largest timestamp of the partition so far, its own
//     included) reaches the window's closing time: end + grace for
//     tumbling and hopping windows, end + grace + 1 ms for sliding
//     windows (their end is inclusive), end + gap + grace + 1 ms for
//     sessions. For the last windows that is the partition's end marker.
//   - emit on update (tumbling and hopping; goka's running counts): for
//     an output with count n, the n-th record of its key and window that
//     was counted, that is not late when it arrived.
//
// Latency is the time the output was first seen minus the time the
// cause's append was acknowledged. Sliding and session windows on update
// have no cause computed (their windows depend on the records): nil.
func (l *appendLog) latencies(v WA1Variant, emit WA1Emit, outs []seenOutput) (d []time.Duration, unmatched int, err error) {
	if emit == EmitUpdate && v != VariantTumbling && v != VariantHopping {
		return nil, 0, nil
	}
	n := int32(len(l.parts))
	// Running stream-time of every partition, for emit on close.
	streamTimes := make([][]int64, n)
	for p := range l.parts {
		st := make([]int64, len(l.parts[p].ts))
		cur := int64(math.MinInt64)
		for i, ts := range l.parts[p].ts {
			cur = max(cur, ts)
			st[i] = cur
		}
		streamTimes[p] = st
	}
	var counted map[wa1Window][]*ackChunk
	if emit == EmitUpdate {
		counted = l.counted(v)
	}
	for _, o := range outs {
		if o.deleted {
			continue
		}
		p := defaultPartition(o.r.Key, n)
		var c *ackChunk
		switch emit {
		case EmitClose:
			at := closeAt(v, o.r)
			st := streamTimes[p]
			if i := sort.Search(len(st), func(i int) bool { return st[i] >= at }); i < len(st) {
				c = l.parts[p].chunks[i]
			}
		case EmitUpdate:
			if recs := counted[wa1Window{o.r.Key, o.r.Start, 0}]; o.r.Count >= 1 && o.r.Count <= int64(len(recs)) {
				c = recs[o.r.Count-1]
			}
		default:
			return nil, 0, fmt.Errorf("benchmarks: unknown emit mode %q", emit)
		}
		if c == nil || c.acked.Load() == 0 {
			unmatched++
			continue
		}
		d = append(d, time.Duration(o.at-c.acked.Load()))
	}
	return d, unmatched, nil
}

// closeAt returns the stream-time at which the window of r closes.
func closeAt(v WA1Variant, r WA1Result) int64 {
	switch v {
	case VariantHopping:
		return r.Start + wa1HoppingSize + wa1Grace
	case VariantSliding:
		return r.Start + wa1Size + wa1Grace + 1
	case VariantSession:
		return r.End + wa1SessionGap + wa1Grace + 1
	}
	return r.Start + wa1Size + wa1Grace
}

// counted returns, for every tumbling or hopping window of v, the chunks
// of the records it counted, in order.
func (l *appendLog) counted(v WA1Variant) map[wa1Window][]*ackChunk {
	spec := window.Tumbling(time.Minute)
	size := int64(wa1Size)
	if v == VariantHopping {
		spec, size = window.Hopping(wa1HoppingSize*time.Millisecond, time.Minute), wa1HoppingSize
	}
	out := map[wa1Window][]*ackChunk{}
	for p := range l.parts {
		part := &l.parts[p]
		st := int64(math.MinInt64)
		for i, ts := range part.ts {
			st = max(st, ts)
			if ts < 0 {
				continue
			}
			spec.Starts(ts, func(start int64) {
				if start+size+wa1Grace > st {
					w := wa1Window{part.keys[i], start, 0}
					out[w] = append(out[w], part.chunks[i])
				}
			})
		}
	}
	return out
}

// endMarkers returns the end markers of PEERS.md for a topic of n
// partitions whose largest event timestamp is maxTs: one per partition,
// key "~end-<p>", 100 zero bytes, timestamp maxTs + 1 h, which closes
// every window of every variant.
func endMarkers(topic string, n int32, maxTs int64) []broker.Record {
	recs := make([]broker.Record, n)
	for p := range n {
		recs[p] = broker.Record{Topic: topic, Partition: p, Key: fmt.Appendf(nil, "~end-%d", p),
			Value: make([]byte, 100), Timestamp: maxTs + time.Hour.Milliseconds()}
	}
	return recs
}

// wa1Record returns event e as a record of topic in its partition: Kafka's
// default partitioner (murmur2 of the key), so every system sees the same
// events per partition, in the same order.
func wa1Record(topic string, partitions int32, e WA1Event) broker.Record {
	return broker.Record{Topic: topic, Partition: defaultPartition(e.Key, partitions),
		Key: []byte(e.Key), Value: append([]byte(nil), e.Value...), Timestamp: e.Timestamp}
}

// sender appends a batch of records (partitions set), in the order of
// its calls, and calls acked once all of them are acknowledged, possibly
// after it returned; flush waits for every ack.
type sender interface {
	send(ctx context.Context, recs []broker.Record, acked func()) error
	flush(ctx context.Context) error
}

// logSender appends through a broker.Log, synchronously.
type logSender struct{ log broker.Log }

func (s logSender) send(ctx context.Context, recs []broker.Record, acked func()) error {
	if err := s.log.Produce(ctx, recs...); err != nil {
		return err
	}
	acked()
	return nil
}

func (logSender) flush(context.Context) error { return nil }

// produceWA1 appends WA1's n events over k keys for seed to topic, and
// then its end markers if markers is set. With rate > 0 it paces them at
// rate events per second, in batches every 10 ms (sending late batches
// at once when it falls behind), and records every record in alog (if
// not nil) with its batch's acknowledgement time. progress, if not nil,
// gets the events appended so far. It returns the number of events it
// was behind schedule at worst, in 10 ms ticks.
func produceWA1(ctx context.Context, s sender, topic string, partitions int32, seed uint64, n, k int, rate float64, markers bool, alog *appendLog, progress *atomic.Int64) (behind int, err error) {
	const tick = 10 * time.Millisecond
	size := 10_000
	if rate > 0 {
		size = max(1, int(rate*tick.Seconds()))
	}
	var (
		batch   = make([]broker.Record, 0, size)
		start   = time.Now()
		batches int
		maxTs   = int64(math.MinInt64)
	)
	flush := func() {
		if err != nil || len(batch) == 0 {
			return
		}
		if rate > 0 {
			due := start.Add(time.Duration(float64(batches*size) / rate * float64(time.Second)))
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					err = ctx.Err()
					return
				case <-time.After(wait):
				}
			} else if late := int(-wait / tick); late > behind {
				behind = late
			}
		}
		c := &ackChunk{}
		if alog != nil {
			for i := range batch {
				alog.add(&batch[i], c)
			}
		}
		sent := len(batch)
		err = s.send(ctx, batch, func() { c.acked.Store(time.Now().UnixNano()) })
		if err == nil && progress != nil {
			progress.Add(int64(sent))
		}
		batches++
		batch = make([]broker.Record, 0, size) // the sender may still hold the last one
	}
	WA1(seed, n, k, func(e WA1Event) {
		maxTs = max(maxTs, e.Timestamp)
		batch = append(batch, wa1Record(topic, partitions, e))
		if len(batch) == size {
			flush()
		}
	})
	flush()
	if err == nil && markers {
		batch = append(batch, endMarkers(topic, partitions, maxTs)...)
		flush()
	}
	if err == nil {
		err = s.flush(ctx)
	}
	return behind, err
}
