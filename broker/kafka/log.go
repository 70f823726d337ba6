package kafka

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/internal/murmur2"
)

// Log is a broker.Log on an Apache Kafka cluster. It is safe for
// concurrent use.
type Log struct {
	opts   Options
	logger hclog.Logger
	// cl administers topics, produces outside transactions and fetches
	// for Read. It is idempotent, acks=all, and partitions records itself
	// (see partitioner).
	cl  *kgo.Client
	adm *kadm.Client

	mu struct {
		sync.Mutex
		closed bool
	}
}

var _ broker.Log = (*Log)(nil)

// Open connects to the cluster at opts.Brokers and checks that it answers.
func Open(ctx context.Context, opts Options) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Brokers = slices.Clone(opts.Brokers)
	l := &Log{opts: opts, logger: opts.Logger}
	cl, err := kgo.NewClient(l.clientOpts(
		// kadm caches metadata for MetadataMinAge (default 5s), also the
		// absence of a topic: a topic just created would stay unknown.
		kgo.MetadataMinAge(100*time.Millisecond),
		kgo.RecordPartitioner(partitioner{}),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: open %s: %w", l.brokers(), err)
	}
	if err := cl.Ping(ctx); err != nil {
		cl.Close()
		return nil, fmt.Errorf("kafka: open %s: %w", l.brokers(), err)
	}
	l.cl = cl
	l.adm = kadm.NewClient(cl)
	return l, nil
}

// clientOpts returns the options of a client of l: the seed brokers and
// logger, then extra, then Options.ClientOptions.
func (l *Log) clientOpts(extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.SeedBrokers(l.opts.Brokers...),
		kgo.WithLogger(kgoLogger{l.logger}),
	}
	opts = append(opts, extra...)
	return append(opts, l.opts.ClientOptions...)
}

func (l *Log) brokers() string { return strings.Join(l.opts.Brokers, ",") }

func (l *Log) check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.closed {
		return fmt.Errorf("kafka: log on %s: %w", l.brokers(), broker.ErrClosed)
	}
	return nil
}

// Close closes the log's client. Sessions must be closed first.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.closed {
		l.mu.closed = true
		l.cl.Close()
	}
	return nil
}

// CreateTopics creates the topics that do not exist yet: compacted ones
// with cleanup.policy=compact, others with retention.ms from Retention
// (-1, forever, for zero). A topic that exists with another partition
// count is an error wrapping broker.ErrTopicMismatch. It returns once the
// cluster's metadata shows a leader for every partition of the topics.
func (l *Log) CreateTopics(ctx context.Context, topics ...broker.TopicConfig) error {
	if err := l.check(); err != nil {
		return err
	}
	want := make(map[string]broker.TopicConfig, len(topics))
	var names []string
	for _, cfg := range topics {
		if cfg.Name == "" || cfg.Partitions <= 0 {
			return fmt.Errorf("kafka: create topic %q with %d partitions: invalid", cfg.Name, cfg.Partitions)
		}
		if have, ok := want[cfg.Name]; ok {
			if have.Partitions != cfg.Partitions {
				return fmt.Errorf("kafka: create topic %s with %d and %d partitions: %w", cfg.Name, have.Partitions, cfg.Partitions, broker.ErrTopicMismatch)
			}
			continue
		}
		want[cfg.Name] = cfg
		names = append(names, cfg.Name)
	}
	if len(names) == 0 {
		return nil
	}
	existing, err := l.partitionCounts(ctx, names...)
	if err != nil {
		return err
	}
	for _, name := range names {
		cfg := want[name]
		if n, ok := existing[name]; ok {
			if n != cfg.Partitions {
				return fmt.Errorf("kafka: create topic %s with %d partitions: it exists with %d: %w", name, cfg.Partitions, n, broker.ErrTopicMismatch)
			}
			continue
		}
		configs := map[string]*string{}
		if cfg.Compacted {
			configs["cleanup.policy"] = kadm.StringPtr("compact")
		} else {
			ms := int64(-1)
			if cfg.Retention > 0 {
				ms = cfg.Retention.Milliseconds()
			}
			configs["retention.ms"] = kadm.StringPtr(strconv.FormatInt(ms, 10))
		}
		resp, err := l.adm.CreateTopic(ctx, cfg.Partitions, l.opts.ReplicationFactor, configs, name)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			// Created concurrently: check it is the same.
			counts, cerr := l.partitionCounts(ctx, name)
			if cerr != nil {
				return cerr
			}
			if n, ok := counts[name]; ok && n != cfg.Partitions {
				return fmt.Errorf("kafka: create topic %s with %d partitions: it exists with %d: %w", name, cfg.Partitions, n, broker.ErrTopicMismatch)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("kafka: create topic %s on %s: %w", name, l.brokers(), err)
		}
		l.logger.Debug("created topic", "topic", name, "partitions", cfg.Partitions)
	}
	return l.awaitTopics(ctx, want)
}

// awaitTopics waits until the metadata shows every topic of want with a
// leader for each of its partitions: a topic is not usable before.
func (l *Log) awaitTopics(ctx context.Context, want map[string]broker.TopicConfig) error {
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 500*time.Millisecond) {
		tds, err := l.adm.ListTopics(ctx, names...)
		ready := err == nil
		for _, name := range names {
			td, ok := tds[name]
			if !ok || td.Err != nil || int32(len(td.Partitions)) != want[name].Partitions {
				ready = false
				break
			}
			for _, p := range td.Partitions {
				if p.Err != nil || p.Leader < 0 {
					ready = false
				}
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: waiting for topics %v to get leaders: %w", names, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// partitionCounts returns the partition counts of those of the named
// topics that exist.
func (l *Log) partitionCounts(ctx context.Context, names ...string) (map[string]int32, error) {
	tds, err := l.adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("kafka: list topics on %s: %w", l.brokers(), err)
	}
	out := make(map[string]int32, len(tds))
	for name, td := range tds {
		switch {
		case errors.Is(td.Err, kerr.UnknownTopicOrPartition):
		case td.Err != nil:
			return nil, fmt.Errorf("kafka: describe topic %s: %w", name, td.Err)
		default:
			out[name] = int32(len(td.Partitions))
		}
	}
	return out, nil
}

// DescribeTopics returns the configs of the named topics that exist, or of
// every topic but Kafka's internal ones. Compacted is true when
// cleanup.policy includes compact; Retention is retention.ms of topics
// that are not compacted, zero for -1 (forever).
func (l *Log) DescribeTopics(ctx context.Context, names ...string) (map[string]broker.TopicConfig, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	counts, err := l.partitionCounts(ctx, names...)
	if err != nil {
		return nil, err
	}
	out := make(map[string]broker.TopicConfig, len(counts))
	if len(counts) == 0 {
		return out, nil
	}
	existing := make([]string, 0, len(counts))
	for name, n := range counts {
		existing = append(existing, name)
		out[name] = broker.TopicConfig{Name: name, Partitions: n}
	}
	rcs, err := l.adm.DescribeTopicConfigs(ctx, existing...)
	if err != nil {
		return nil, fmt.Errorf("kafka: describe configs of topics %v: %w", existing, err)
	}
	for _, rc := range rcs {
		cfg, ok := out[rc.Name]
		if !ok {
			continue
		}
		if rc.Err != nil {
			if errors.Is(rc.Err, kerr.UnknownTopicOrPartition) {
				delete(out, rc.Name) // deleted meanwhile
				continue
			}
			return nil, fmt.Errorf("kafka: describe configs of topic %s: %w", rc.Name, rc.Err)
		}
		var retention int64
		for _, c := range rc.Configs {
			if c.Value == nil {
				continue
			}
			switch c.Key {
			case "cleanup.policy":
				cfg.Compacted = slices.Contains(strings.Split(*c.Value, ","), "compact")
			case "retention.ms":
				retention, _ = strconv.ParseInt(*c.Value, 10, 64)
			}
		}
		if !cfg.Compacted && retention > 0 {
			cfg.Retention = time.Duration(retention) * time.Millisecond
		}
		out[rc.Name] = cfg
	}
	return out, nil
}

// DeleteTopics deletes topics; missing ones are skipped. It returns once
// the metadata no longer shows them.
func (l *Log) DeleteTopics(ctx context.Context, names ...string) error {
	if err := l.check(); err != nil {
		return err
	}
	if len(names) == 0 {
		return nil
	}
	resps, err := l.adm.DeleteTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("kafka: delete topics %v on %s: %w", names, l.brokers(), err)
	}
	for _, r := range resps {
		if r.Err != nil && !errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("kafka: delete topic %s: %w", r.Topic, r.Err)
		}
	}
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 500*time.Millisecond) {
		counts, err := l.partitionCounts(ctx, names...)
		if err == nil && len(counts) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: waiting for topics %v to be deleted: %w", names, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// Produce appends records outside any transaction, idempotently with
// acks=all. It is not atomic: on error some records may be written.
// Records with Partition AnyPartition go to murmur2(key) % partitions as
// with Kafka's Java clients, or round robin for a nil key.
func (l *Log) Produce(ctx context.Context, records ...broker.Record) error {
	if err := l.check(); err != nil {
		return err
	}
	if len(records) == 0 {
		return nil
	}
	krs := make([]*kgo.Record, len(records))
	for i := range records {
		r := &records[i]
		if r.Partition < 0 && r.Partition != broker.AnyPartition {
			return fmt.Errorf("kafka: produce to %s partition %d: invalid partition", r.Topic, r.Partition)
		}
		krs[i] = toKgo(r)
	}
	for _, res := range l.cl.ProduceSync(ctx, krs...) {
		if res.Err != nil {
			return produceError(res.Record, res.Err)
		}
	}
	return nil
}

// produceError names the record's topic and partition, and wraps
// broker.ErrUnknownTopic for a topic that does not exist.
func produceError(r *kgo.Record, err error) error {
	where := r.Topic
	if r.Partition >= 0 {
		where = fmt.Sprintf("%s/%d", r.Topic, r.Partition)
	}
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		return fmt.Errorf("kafka: produce to %s: %w (topic %s: %w)", where, broker.ErrUnknownTopic, r.Topic, err)
	}
	return fmt.Errorf("kafka: produce to %s: %w", where, err)
}

// Offsets returns the log start offset and the last stable offset of tp.
func (l *Log) Offsets(ctx context.Context, tp broker.TopicPartition) (broker.PartitionOffsets, error) {
	if err := l.check(); err != nil {
		return broker.PartitionOffsets{}, err
	}
	start, err := l.adm.ListStartOffsets(ctx, tp.Topic)
	if err != nil {
		return broker.PartitionOffsets{}, fmt.Errorf("kafka: offsets of %s: %w", tp, err)
	}
	s, err := lookupOffset(start, tp)
	if err != nil {
		return broker.PartitionOffsets{}, err
	}
	end, err := l.adm.ListCommittedOffsets(ctx, tp.Topic)
	if err != nil {
		return broker.PartitionOffsets{}, fmt.Errorf("kafka: offsets of %s: %w", tp, err)
	}
	e, err := lookupOffset(end, tp)
	if err != nil {
		return broker.PartitionOffsets{}, err
	}
	return broker.PartitionOffsets{Start: s, End: e}, nil
}

func lookupOffset(lo kadm.ListedOffsets, tp broker.TopicPartition) (int64, error) {
	if o, ok := lo.Lookup(tp.Topic, -1); ok && o.Err != nil {
		if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			return 0, fmt.Errorf("kafka: offsets of %s: topic %s: %w", tp, tp.Topic, broker.ErrUnknownTopic)
		}
		return 0, fmt.Errorf("kafka: offsets of %s: %w", tp, o.Err)
	}
	o, ok := lo.Lookup(tp.Topic, tp.Partition)
	switch {
	case !ok && len(lo[tp.Topic]) == 0:
		return 0, fmt.Errorf("kafka: offsets of %s: topic %s: %w", tp, tp.Topic, broker.ErrUnknownTopic)
	case !ok:
		return 0, fmt.Errorf("kafka: offsets of %s: partition %d out of range (topic %s has %d partitions)", tp, tp.Partition, tp.Topic, len(lo[tp.Topic]))
	case o.Err != nil:
		return 0, fmt.Errorf("kafka: offsets of %s: %w", tp, o.Err)
	}
	return o.Offset, nil
}

// awaitStable waits until the last stable offset of every partition in
// ends reaches its end there. A transaction's commit returns once the
// coordinator decided it; the markers that make its records visible to
// read-committed readers are written right after, asynchronously. Waiting
// for them makes a commit visible when Commit returns, as broker.Session
// promises (and as the embedded log does).
func (l *Log) awaitStable(ctx context.Context, ends map[broker.TopicPartition]int64) error {
	if len(ends) == 0 {
		return nil
	}
	topics := map[string]bool{}
	for tp := range ends {
		topics[tp.Topic] = true
	}
	names := slices.Sorted(maps.Keys(topics))
	for backoff := time.Millisecond; ; backoff = min(2*backoff, 100*time.Millisecond) {
		lso, err := l.adm.ListCommittedOffsets(ctx, names...)
		if err == nil {
			stable := true
			for tp, end := range ends {
				if o, ok := lso.Lookup(tp.Topic, tp.Partition); !ok || o.Err != nil || o.Offset < end {
					stable = false
					break
				}
			}
			if stable {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: waiting for the commit to become visible in %v: %w", names, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// readRetries bounds the retries of a Read fetch that failed with a
// retryable error (a leader moving, metadata not propagated yet).
const readRetries = 20

// Read calls fn on the committed records of tp with from <= offset < to.
// It clamps to to the partition's last stable offset as it is when Read
// starts, and fetches with read_committed isolation straight from the
// partition's leader, so it knows the next offset to fetch even where the
// log has no record for an offset (transaction markers, aborted records,
// compacted keys) and never waits for records that will not come.
func (l *Log) Read(ctx context.Context, tp broker.TopicPartition, from, to int64, fn func(broker.Record) error) error {
	bounds, err := l.Offsets(ctx, tp)
	if err != nil {
		return err
	}
	from, to = max(from, bounds.Start), min(to, bounds.End)
	var leader int32 = -1
	var topicID [16]byte
	decompressor := kgo.DefaultDecompressor()
	for pos, tries := from, 0; pos < to; {
		if leader < 0 {
			tds, err := l.adm.ListTopics(ctx, tp.Topic)
			if err != nil {
				return fmt.Errorf("kafka: read %s: %w", tp, err)
			}
			td := tds[tp.Topic]
			if td.Err != nil {
				return fmt.Errorf("kafka: read %s: %w", tp, td.Err)
			}
			p, ok := td.Partitions[tp.Partition]
			if !ok {
				return fmt.Errorf("kafka: read %s: partition out of range", tp)
			}
			leader, topicID = p.Leader, td.ID
		}
		req := kmsg.NewPtrFetchRequest()
		req.ReplicaID = -1
		req.MaxWaitMillis = 500
		req.MinBytes = 1
		req.MaxBytes = 64 << 20
		req.IsolationLevel = 1
		req.SessionEpoch = -1
		rt := kmsg.NewFetchRequestTopic()
		rt.Topic, rt.TopicID = tp.Topic, topicID
		rp := kmsg.NewFetchRequestTopicPartition()
		rp.Partition = tp.Partition
		rp.FetchOffset = pos
		rp.CurrentLeaderEpoch = -1
		rp.LogStartOffset = -1
		rp.PartitionMaxBytes = 8 << 20
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, l.cl.Broker(int(leader)))
		var part *kmsg.FetchResponseTopicPartition
		if err == nil {
			if err = kerr.ErrorForCode(resp.ErrorCode); err == nil {
				for i := range resp.Topics {
					for j := range resp.Topics[i].Partitions {
						if resp.Topics[i].Partitions[j].Partition == tp.Partition {
							part = &resp.Topics[i].Partitions[j]
						}
					}
				}
				if part == nil {
					err = fmt.Errorf("fetch response from broker %d without the partition", leader)
				} else {
					err = kerr.ErrorForCode(part.ErrorCode)
				}
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("kafka: read %s at offset %d: %w", tp, pos, ctx.Err())
			}
			if tries++; tries > readRetries || !retryable(err) {
				return fmt.Errorf("kafka: read %s at offset %d from broker %d: %w", tp, pos, leader, err)
			}
			leader = -1 // look the leader up again
			select {
			case <-ctx.Done():
				return fmt.Errorf("kafka: read %s at offset %d: %w", tp, pos, ctx.Err())
			case <-time.After(time.Duration(tries) * 20 * time.Millisecond):
			}
			continue
		}
		tries = 0
		fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
			Offset:         pos,
			IsolationLevel: kgo.ReadCommitted(),
			Topic:          tp.Topic,
			Partition:      tp.Partition,
		}, part, decompressor, nil)
		if fp.Err != nil {
			return fmt.Errorf("kafka: read %s at offset %d: %w", tp, pos, fp.Err)
		}
		for _, r := range fp.Records {
			if r.Offset < pos {
				continue
			}
			if r.Offset >= to {
				return nil
			}
			if err := fn(fromKgo(r)); err != nil {
				return err
			}
		}
		if next <= pos {
			// Nothing more before the end: what is left of [pos, to)
			// holds no records any more.
			return nil
		}
		pos = next
	}
	return nil
}

// retryable reports whether a fetch that failed with err is worth
// retrying: Kafka's retriable errors, and errors that are not Kafka's
// (connections), unless the client is closed.
func retryable(err error) bool {
	if errors.Is(err, kgo.ErrClientClosed) {
		return false
	}
	var ke *kerr.Error
	return !errors.As(err, &ke) || ke.Retriable || errors.Is(err, kerr.UnknownTopicID)
}

// NewSession joins cfg.Group as cfg.Member; see Session.
func (l *Log) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	s, err := l.Join(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// toKgo converts r for producing.
func toKgo(r *broker.Record) *kgo.Record {
	kr := &kgo.Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Key:       r.Key,
		Value:     r.Value,
		Timestamp: time.UnixMilli(r.Timestamp),
	}
	if len(r.Headers) > 0 {
		kr.Headers = make([]kgo.RecordHeader, len(r.Headers))
		for i, h := range r.Headers {
			kr.Headers[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
		}
	}
	return kr
}

// fromKgo converts a fetched record.
func fromKgo(kr *kgo.Record) broker.Record {
	r := broker.Record{
		Topic:     kr.Topic,
		Partition: kr.Partition,
		Offset:    kr.Offset,
		Timestamp: kr.Timestamp.UnixMilli(),
		Key:       kr.Key,
		Value:     kr.Value,
	}
	if len(kr.Headers) > 0 {
		r.Headers = make([]broker.Header, len(kr.Headers))
		for i, h := range kr.Headers {
			r.Headers[i] = broker.Header{Key: h.Key, Value: h.Value}
		}
	}
	return r
}

// partitioner places records as broker.Record.Partition says: an explicit
// partition as is, AnyPartition by murmur2 of the key exactly as Kafka's
// Java clients do (internal/murmur2), or round robin for a nil key. It
// always requires consistency, so a key maps to the same partition even
// while its leader is down.
type partitioner struct{}

func (partitioner) ForTopic(string) kgo.TopicPartitioner { return &topicPartitioner{} }

type topicPartitioner struct{ next int }

func (*topicPartitioner) RequiresConsistency(*kgo.Record) bool { return true }

func (p *topicPartitioner) Partition(r *kgo.Record, n int) int {
	switch {
	case r.Partition >= 0:
		return int(r.Partition) // out of range fails the record
	case r.Key != nil:
		return int(murmur2.Partition(r.Key, int32(n)))
	default:
		p.next++
		return p.next % n
	}
}
