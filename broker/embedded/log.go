package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/internal/pebbleguard"
)

var _ broker.Log = (*Log)(nil)

// Log is the embedded log: a durable, transactional log of partitioned
// topics in a Pebble DB of its own. It implements broker.Log and is safe for
// concurrent use.
type Log struct {
	opts      Options
	logger    hclog.Logger
	db        *pebble.DB
	writeOpts *pebble.WriteOptions

	mu struct {
		sync.Mutex
		// closed is set by Close; every call after it fails with ErrClosed.
		closed bool
		topics map[string]*topic
		groups map[string]*group
		// notify is closed and replaced on every commit and every change of
		// a group: waiting Polls wake up and look again.
		notify chan struct{}
	}

	// failed is the first error Pebble returned or reported while writing
	// (a failed commit, flush or compaction). Pebble's write-ahead log does
	// not recover from one, and a failed commit may be visible to this
	// process' readers of the DB, so the Log refuses all further calls:
	// reopen it to recover the last durable state. Pebble's goroutines set
	// it while holding Pebble's locks, so it is not guarded by mu.
	failed *pebbleguard.Failure

	// ops counts calls that use the DB outside mu; Close waits for them
	// before closing the DB.
	ops sync.WaitGroup
	// stop ends the background goroutines, which wg tracks.
	stop chan struct{}
	wg   sync.WaitGroup
}

// topic is a topic's config and the bounds of its partitions.
type topic struct {
	cfg broker.TopicConfig
	id  uint32
	// parts and deleted are guarded by Log.mu.
	parts   []partition
	deleted bool
	// rr picks partitions round robin for records without a key.
	rr atomic.Uint32
}

// partition holds the bounds of a partition's committed records.
type partition struct {
	start, end int64
	// cleanedEnd is end as of the last compaction: Clean skips the
	// partition while nothing was appended since.
	cleanedEnd int64
}

func (t *topic) tp(p int32) broker.TopicPartition {
	return broker.TopicPartition{Topic: t.cfg.Name, Partition: p}
}

// embeddedPackage is this package's import path: Pebble's Fatalf panics only
// when this package called into Pebble (see pebbleguard.NewLogger).
var embeddedPackage = reflect.TypeFor[Log]().PkgPath()

// Open opens (creating if needed) the log in opts.Dir and recovers the
// bounds of every partition. It starts the background cleaner unless
// opts.CleanInterval is negative; Close stops it.
func Open(opts Options) (*Log, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	cache := pebble.NewCache(opts.CacheBytes)
	defer cache.Unref()
	failed := pebbleguard.New(opts.Logger, "the log")
	gate := pebbleguard.NewGate()
	popts := &pebble.Options{
		FS:           pebbleguard.FS(opts.FS, failed),
		Cache:        cache,
		MemTableSize: opts.MemTableBytes,
		Logger:       pebbleguard.NewLogger(opts.Logger.Named("pebble"), failed, embeddedPackage),
		EventListener: &pebble.EventListener{
			// Pebble retries a failed flush or compaction at once and
			// without end; if the disk stays broken, commits stall for
			// good. Failing the log ends that with an error.
			BackgroundError: func(err error) { failed.Set(fmt.Errorf("pebble background error: %w", err)) },
			// The read that found the corruption returns an error; by
			// default Pebble would call Logger.Fatalf.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				failed.Set(fmt.Errorf("pebble: corruption in %s: %w", info.Path, info.Details))
			},
		},
	}
	// Pebble's default, spelled out: at most two memtables queued (and
	// one kept for reuse), which Options.MemTableBytes documents and
	// state.MemorySplit counts on.
	popts.MemTableStopWritesThreshold = 2
	// Pebble's Open would wait for the compactions it starts (see
	// pebbleguard.Gate): they start once it returned.
	popts.Experimental.CompactionScheduler = gate
	if !opts.Compress {
		popts.ApplyCompressionSettings(func() pebble.DBCompressionSettings { return pebble.DBCompressionNone })
	}
	// Pebble creates the directory and syncs its parents, so that a
	// machine crash cannot lose it.
	var db *pebble.DB
	err := pebbleguard.Guard(failed, func() (err error) {
		db, err = pebble.Open(opts.Dir, popts)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", opts.Dir, inUse(opts.Dir, opts.FS, err))
	}
	gate.Open()
	l := &Log{
		opts:      opts,
		logger:    opts.Logger,
		db:        db,
		writeOpts: pebble.Sync,
		failed:    failed,
		stop:      make(chan struct{}),
	}
	if opts.NoSync {
		l.writeOpts = pebble.NoSync
	}
	l.mu.topics = make(map[string]*topic)
	l.mu.groups = make(map[string]*group)
	l.mu.notify = make(chan struct{})
	if err := l.load(); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("embedded: open %s: %w", opts.Dir, err)
	}
	if opts.CleanInterval > 0 {
		l.goroutine(l.cleanLoop)
	}
	l.logger.Debug("opened", "dir", opts.Dir, "topics", len(l.mu.topics))
	return l, nil
}

// goroutine runs f in a goroutine that Close waits for.
func (l *Log) goroutine(f func()) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		f()
	}()
}

// load checks the format version, loads the topics and recovers each
// partition's bounds: the end from the last batch (or the bounds Clean
// stored, when retention deleted every batch), the start from those bounds.
func (l *Log) load() error {
	v, closer, err := l.db.Get(versionKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		b := l.db.NewBatch()
		defer b.Close()
		if err := b.Set(versionKey, []byte{formatVersion}, nil); err != nil {
			return err
		}
		if err := l.commitLocked(b); err != nil {
			return err
		}
	case err != nil:
		return err
	default:
		ok := len(v) == 1 && v[0] == formatVersion
		closer.Close()
		if !ok {
			return fmt.Errorf("unsupported format version %v (this build reads %d)", v, formatVersion)
		}
	}
	it, err := l.db.NewIter(&pebble.IterOptions{})
	if err != nil {
		return err
	}
	defer it.Close()
	var topics []*topic
	prefix := []byte{kindTopic}
	for it.SeekGE(prefix); it.Valid() && it.Key()[0] == kindTopic; it.Next() {
		name := string(it.Key()[1:])
		v, err := it.ValueAndErr()
		if err != nil {
			return err
		}
		id, cfg, err := decodeTopic(name, v)
		if err != nil {
			return err
		}
		topics = append(topics, &topic{cfg: cfg, id: id, parts: make([]partition, cfg.Partitions)})
	}
	if err := it.Error(); err != nil {
		return err
	}
	for _, t := range topics {
		for p := range t.parts {
			pp := &t.parts[p]
			if v, closer, err := l.db.Get(tpKey(kindPartition, t.id, int32(p))); err == nil {
				var ok bool
				pp.start, pp.end, ok = decodeBounds(v)
				closer.Close()
				if !ok {
					return fmt.Errorf("embedded: topic %s partition %d: bounds %x: %w", t.cfg.Name, p, v, ErrCorrupt)
				}
			} else if !errors.Is(err, pebble.ErrNotFound) {
				return err
			}
			// The last batch of the partition sorts just before the first
			// key past the partition's prefix.
			if it.SeekLT(prefixEnd(tpKey(kindRecords, t.id, int32(p)))) && isRecordKeyOf(it.Key(), t.id, int32(p)) {
				v, err := it.ValueAndErr()
				if err != nil {
					return err
				}
				base := recordKeyBase(it.Key())
				h, err := readBatchHeader(v)
				if err != nil {
					return corruptBatch(t.tp(int32(p)), base, err)
				}
				pp.end = max(pp.end, base+int64(h.lastOffsetDelta)+1)
			}
			pp.cleanedEnd = -1
		}
		l.mu.topics[t.cfg.Name] = t
	}
	return it.Error()
}

// isRecordKeyOf reports whether k is a record key of id/partition.
func isRecordKeyOf(k []byte, id uint32, partition int32) bool {
	if len(k) != recordKeyLen {
		return false
	}
	var p [tpKeyLen]byte
	return string(k[:tpKeyLen]) == string(appendTPKey(p[:0], kindRecords, id, partition))
}

// Close closes the sessions still open, stops the background cleaner and
// closes the DB. Calls after Close fail with an error wrapping
// broker.ErrClosed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.mu.closed {
		l.mu.Unlock()
		return fmt.Errorf("embedded: close: %w", broker.ErrClosed)
	}
	l.mu.closed = true
	for _, g := range l.mu.groups {
		for _, s := range g.members {
			s.closed = true
		}
		g.members = nil
	}
	l.broadcastLocked()
	l.mu.Unlock()

	close(l.stop)
	l.wg.Wait()
	l.ops.Wait()
	if err := l.failed.Wait(l.db.Close); err != nil {
		if ferr := l.failed.Err(); ferr != nil && !errors.Is(err, pebbleguard.ErrAbandoned) {
			err = ferr // what failed first, not what it made fail
		}
		return fmt.Errorf("embedded: close %s: %w", l.opts.Dir, err)
	}
	return nil
}

// checkLocked returns why the log cannot be used, if it cannot.
func (l *Log) checkLocked() error {
	if l.mu.closed {
		return fmt.Errorf("embedded: %w", broker.ErrClosed)
	}
	if err := l.failed.Err(); err != nil {
		return fmt.Errorf("embedded: log %s failed and must be reopened: %w", l.opts.Dir, err)
	}
	return nil
}

// broadcastLocked wakes every waiting Poll.
func (l *Log) broadcastLocked() {
	close(l.mu.notify)
	l.mu.notify = make(chan struct{})
}

// topicLocked returns the topic named name.
func (l *Log) topicLocked(name string) (*topic, error) {
	t, ok := l.mu.topics[name]
	if !ok {
		return nil, fmt.Errorf("embedded: topic %s: %w", name, broker.ErrUnknownTopic)
	}
	return t, nil
}

// partitionLocked returns the topic and bounds of tp.
func (l *Log) partitionLocked(tp broker.TopicPartition) (*topic, *partition, error) {
	t, err := l.topicLocked(tp.Topic)
	if err != nil {
		return nil, nil, err
	}
	if tp.Partition < 0 || tp.Partition >= t.cfg.Partitions {
		return nil, nil, fmt.Errorf("embedded: topic %s has %d partitions, no partition %d", tp.Topic, t.cfg.Partitions, tp.Partition)
	}
	return t, &t.parts[tp.Partition], nil
}

// CreateTopics creates the topics that do not exist yet, atomically. A
// topic that exists with another partition count is an error wrapping
// broker.ErrTopicMismatch; other differences are left alone.
func (l *Log) CreateTopics(ctx context.Context, topics ...broker.TopicConfig) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return err
	}
	var created []*topic
	nextID := uint32(0)
	for _, t := range l.mu.topics {
		nextID = max(nextID, t.id+1)
	}
	b := l.db.NewBatch()
	defer b.Close()
	seen := make(map[string]broker.TopicConfig)
	for _, cfg := range topics {
		if err := validateTopic(cfg); err != nil {
			return err
		}
		have, ok := seen[cfg.Name]
		if t, exists := l.mu.topics[cfg.Name]; exists {
			have, ok = t.cfg, true
		}
		if ok {
			if have.Partitions != cfg.Partitions {
				return fmt.Errorf("embedded: create topic %s with %d partitions: it exists with %d: %w",
					cfg.Name, cfg.Partitions, have.Partitions, broker.ErrTopicMismatch)
			}
			continue
		}
		seen[cfg.Name] = cfg
		t := &topic{cfg: cfg, id: nextID, parts: make([]partition, cfg.Partitions)}
		nextID++
		if err := b.Set(topicKey(cfg.Name), encodeTopic(t.id, cfg), nil); err != nil {
			return err
		}
		created = append(created, t)
	}
	if len(created) == 0 {
		return nil
	}
	if err := l.commitLocked(b); err != nil {
		return fmt.Errorf("embedded: create topics in log %s: %w", l.opts.Dir, err)
	}
	for _, t := range created {
		l.mu.topics[t.cfg.Name] = t
		l.logger.Debug("created topic", "topic", t.cfg.Name, "partitions", t.cfg.Partitions)
	}
	// Groups subscribed to a topic deleted and created again get its
	// partitions back.
	for _, g := range l.mu.groups {
		g.rebalanceLocked(l)
	}
	l.broadcastLocked()
	return nil
}

func validateTopic(cfg broker.TopicConfig) error {
	switch {
	case cfg.Name == "":
		return errors.New("embedded: create topic: empty name")
	case len(cfg.Name) > 249:
		return fmt.Errorf("embedded: create topic %.20s...: name longer than 249 bytes", cfg.Name)
	case cfg.Partitions <= 0:
		return fmt.Errorf("embedded: create topic %s: %d partitions, need at least 1", cfg.Name, cfg.Partitions)
	case cfg.Partitions > MaxPartitions:
		return fmt.Errorf("embedded: create topic %s: %d partitions, at most %d", cfg.Name, cfg.Partitions, MaxPartitions)
	case cfg.Retention < 0:
		return fmt.Errorf("embedded: create topic %s: negative retention %v", cfg.Name, cfg.Retention)
	}
	return nil
}

// commitLocked commits b, marking the log failed if Pebble cannot. Pebble
// treats a failed write to its write-ahead log as fatal (it calls
// Logger.Fatalf, which pebbleguard.Logger turns into a panic, or
// it panics with the error); commitLocked recovers that panic into an
// error, since the commit never reached the disk completely and the caller
// can reopen the log.
func (l *Log) commitLocked(b *pebble.Batch) error {
	err := pebbleguard.Guard(l.failed, func() error { return b.Commit(l.writeOpts) })
	if err != nil {
		l.failed.Set(err)
		// A write that failed before, in the background, shows here as
		// whatever Pebble made of it: report the first failure.
		return l.failed.Err()
	}
	return nil
}

// DescribeTopics returns the configs of the named topics that exist; with
// no names, of every topic.
func (l *Log) DescribeTopics(ctx context.Context, names ...string) (map[string]broker.TopicConfig, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return nil, err
	}
	out := make(map[string]broker.TopicConfig)
	if len(names) == 0 {
		for name, t := range l.mu.topics {
			out[name] = t.cfg
		}
		return out, nil
	}
	for _, name := range names {
		if t, ok := l.mu.topics[name]; ok {
			out[name] = t.cfg
		}
	}
	return out, nil
}

// DeleteTopics deletes topics, their records and the offsets groups
// committed for them; missing ones are skipped.
func (l *Log) DeleteTopics(ctx context.Context, names ...string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return err
	}
	b := l.db.NewBatch()
	defer b.Close()
	var deleted []*topic
	for _, name := range names {
		t, ok := l.mu.topics[name]
		if !ok {
			continue
		}
		if err := b.Delete(topicKey(name), nil); err != nil {
			return err
		}
		for _, kind := range []byte{kindOffset, kindPartition, kindRecords} {
			start := tpKey(kind, t.id, 0)[:5] // kind id
			if err := b.DeleteRange(start, prefixEnd(start), nil); err != nil {
				return err
			}
		}
		deleted = append(deleted, t)
	}
	if len(deleted) == 0 {
		return nil
	}
	if err := l.commitLocked(b); err != nil {
		return fmt.Errorf("embedded: delete topics in log %s: %w", l.opts.Dir, err)
	}
	for _, t := range deleted {
		t.deleted = true
		delete(l.mu.topics, t.cfg.Name)
		for _, g := range l.mu.groups {
			for tp := range g.committed {
				if tp.Topic == t.cfg.Name {
					delete(g.committed, tp)
				}
			}
		}
		l.logger.Debug("deleted topic", "topic", t.cfg.Name)
	}
	for _, g := range l.mu.groups {
		g.rebalanceLocked(l)
	}
	l.broadcastLocked()
	return nil
}

// Produce appends records outside any consumer group, atomically: all of
// them become visible together or none does. A record with Partition
// broker.AnyPartition goes to murmur2(key) modulo the partition count, as
// with Kafka's Java clients, or round robin when its key is nil. Produce
// copies the records; the caller may reuse them when it returns.
func (l *Log) Produce(ctx context.Context, records ...broker.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(records) == 0 {
		return nil
	}
	tx := txnPool.Get().(*txn)
	defer txnPool.Put(tx)
	tx.init(l)
	defer tx.reset()
	for i := range records {
		tx.add(&records[i], true)
	}
	if tx.err != nil {
		return tx.err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return err
	}
	_, err := l.writeLocked(tx, nil, nil)
	return err
}

// Offsets returns the bounds of a partition's committed records.
func (l *Log) Offsets(ctx context.Context, tp broker.TopicPartition) (broker.PartitionOffsets, error) {
	if err := ctx.Err(); err != nil {
		return broker.PartitionOffsets{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return broker.PartitionOffsets{}, err
	}
	_, p, err := l.partitionLocked(tp)
	if err != nil {
		return broker.PartitionOffsets{}, err
	}
	return broker.PartitionOffsets{Start: p.start, End: p.end}, nil
}

// Await blocks until one of the partitions in ends has committed records at
// or after the offset given for it (it returns at once if one has), or ctx
// is done, when it returns ctx's error. It lets a reader outside any group
// follow a topic: Read up to the end, then Await the end.
func (l *Log) Await(ctx context.Context, ends map[broker.TopicPartition]int64) error {
	for {
		l.mu.Lock()
		if err := l.checkLocked(); err != nil {
			l.mu.Unlock()
			return err
		}
		for tp, end := range ends {
			_, p, err := l.partitionLocked(tp)
			if err != nil {
				l.mu.Unlock()
				return err
			}
			if p.end > end {
				l.mu.Unlock()
				return nil
			}
		}
		wake := l.mu.notify
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Read calls fn on the committed records of tp with from <= offset < to,
// in order, stopping at fn's first error, which it returns. Records removed
// by retention or compaction are skipped. The records stay valid after fn
// returns; fn may call other methods of the log, except Close.
func (l *Log) Read(ctx context.Context, tp broker.TopicPartition, from, to int64, fn func(broker.Record) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	t, p, err := l.partitionLocked(tp)
	if err != nil {
		l.mu.Unlock()
		return err
	}
	from, to = max(from, p.start), min(to, p.end)
	l.ops.Add(1)
	l.mu.Unlock()
	defer l.ops.Done()
	if from >= to {
		return nil
	}
	r, err := newReader(l.db)
	if err != nil {
		return fmt.Errorf("embedded: read %s: %w", tp, err)
	}
	defer r.close()
	var recs []broker.Record
	for pos := from; pos < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, err = r.next(recs[:0], t.id, tp, pos, to)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		for i := range recs {
			if err := fn(recs[i]); err != nil {
				return err
			}
		}
		pos = recs[len(recs)-1].Offset + 1
	}
	return nil
}

// reader reads record batches through one Pebble iterator.
type reader struct {
	it  *pebble.Iterator
	key []byte
	// on reports that it is positioned on a batch of onID/onPart whose
	// records after onLast are all returned: a read of from in
	// (onLast, onNext] continues with the next batch without a seek.
	on             bool
	onID           uint32
	onPart         int32
	onLast, onNext int64
}

func newReader(db *pebble.DB) (*reader, error) {
	it, err := db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindRecords},
		UpperBound: []byte{kindRecords + 1},
	})
	if err != nil {
		return nil, err
	}
	return &reader{it: it, key: make([]byte, 0, recordKeyLen)}, nil
}

func (r *reader) close() { _ = r.it.Close() }

// next appends to dst the records of tp with from <= offset < to of the
// first batch that holds any: the batch with the largest base offset <=
// from, or the ones after it. It appends nothing when no record of tp is
// at or after from.
func (r *reader) next(dst []broker.Record, id uint32, tp broker.TopicPartition, from, to int64) ([]broker.Record, error) {
	var valid bool
	if r.on && r.onID == id && r.onPart == tp.Partition && from > r.onLast && from <= r.onNext {
		valid = r.it.Next()
	} else {
		r.key = appendRecordKey(r.key[:0], id, tp.Partition, from+1)
		valid = r.it.SeekLT(r.key)
		if !valid || !isRecordKeyOf(r.it.Key(), id, tp.Partition) {
			// No batch starts at or before from: begin with the first one.
			valid = r.it.SeekGE(r.key[:tpKeyLen])
		}
	}
	r.on = false
	for ; valid && isRecordKeyOf(r.it.Key(), id, tp.Partition); valid = r.it.Next() {
		base := recordKeyBase(r.it.Key())
		if base >= to {
			break
		}
		v, err := r.it.ValueAndErr()
		if err != nil {
			return dst, fmt.Errorf("embedded: read %s at %d: %w", tp, base, err)
		}
		h, err := readBatchHeader(v)
		if err != nil {
			return dst, corruptBatch(tp, base, err)
		}
		if base+int64(h.lastOffsetDelta) < from {
			continue // every record of the batch is before from
		}
		// Copy the value once: the records alias the copy, which nothing
		// writes again.
		first := len(dst)
		dst, _, err = decodeBatch(dst, append([]byte(nil), v...), tp, base)
		if err != nil {
			return dst, err
		}
		// Drop the records outside [from, to).
		keep, cut := dst[first:first], false
		for _, rec := range dst[first:] {
			if rec.Offset >= to {
				cut = true
				break
			}
			if rec.Offset >= from {
				keep = append(keep, rec)
			}
		}
		dst = dst[:first+len(keep)]
		if len(keep) > 0 {
			r.on, r.onID, r.onPart = !cut, id, tp.Partition
			r.onLast, r.onNext = keep[len(keep)-1].Offset, base+int64(h.lastOffsetDelta)+1
			return dst, nil
		}
	}
	return dst, r.it.Error()
}

// writeLocked writes the batches of tx and group g's offsets in one Pebble
// batch, then publishes them: it advances the partitions' ends, updates the
// group's committed offsets and wakes the waiting Polls. It returns, for
// every partition written, the offset after its last record.
func (l *Log) writeLocked(tx *txn, g *group, offsets map[broker.TopicPartition]broker.Offset) (map[broker.TopicPartition]int64, error) {
	for _, pt := range tx.order {
		if pt.t.deleted {
			return nil, fmt.Errorf("embedded: commit to %s: %w", pt.tp, broker.ErrUnknownTopic)
		}
	}
	type offsetWrite struct {
		tp  broker.TopicPartition
		key []byte
		o   broker.Offset
	}
	var ows []offsetWrite
	for _, tp := range slices.SortedFunc(maps.Keys(offsets), compareTP) {
		o := offsets[tp]
		t, _, err := l.partitionLocked(tp)
		if err != nil {
			return nil, fmt.Errorf("embedded: commit offset of %s: %w", tp, err)
		}
		if cur, ok := g.committedLocked(l, t, tp); ok && cur.Offset == o.Offset && string(cur.Metadata) == string(o.Metadata) {
			continue
		}
		ows = append(ows, offsetWrite{tp, offsetKey(t.id, tp.Partition, g.name), o})
	}
	if len(tx.order) == 0 && len(ows) == 0 {
		return nil, nil
	}
	size := 64 * (len(ows) + 1)
	for _, pt := range tx.order {
		for i := range pt.segs {
			size += pt.segs[i].enc.len() + recordKeyLen + 16
		}
	}
	b := l.db.NewBatchWithSize(size)
	defer b.Close()
	key := make([]byte, 0, recordKeyLen)
	for _, pt := range tx.order {
		end := pt.t.parts[pt.tp.Partition].end
		for i := range pt.segs {
			seg := &pt.segs[i]
			key = appendRecordKey(key[:0], pt.t.id, pt.tp.Partition, end+seg.first)
			if err := b.Set(key, seg.enc.finish(), nil); err != nil {
				return nil, err
			}
		}
	}
	for _, w := range ows {
		if err := b.Set(w.key, encodeOffset(w.o), nil); err != nil {
			return nil, err
		}
	}
	if err := l.commitLocked(b); err != nil {
		return nil, fmt.Errorf("embedded: commit to log %s: %w", l.opts.Dir, err)
	}
	ends := make(map[broker.TopicPartition]int64, len(tx.order))
	for _, pt := range tx.order {
		p := &pt.t.parts[pt.tp.Partition]
		p.end += pt.n
		ends[pt.tp] = p.end
	}
	for _, w := range ows {
		g.committed[w.tp] = committedOffset{
			Offset: broker.Offset{Offset: w.o.Offset, Metadata: slices.Clone(w.o.Metadata)},
			ok:     true,
		}
	}
	l.broadcastLocked()
	return ends, nil
}

func compareTP(a, b broker.TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// txn is the records of an open transaction, encoded as they arrive: one
// or more batches per partition. Offsets are assigned at commit, so a
// batch's offset deltas are relative to the partition's end at that time.
// A txn keeps its buffers from one transaction to the next.
type txn struct {
	l             *Log
	maxBatchBytes int
	// topics caches, by name, the topics written and their partTxns. An
	// entry is checked against the log once per transaction (epoch), so a
	// topic deleted and created again is noticed.
	topics map[string]*txnTopic
	epoch  uint64
	last   *txnTopic
	order  []*partTxn // the partitions written, in the order first written
	err    error      // the first error of add
}

type txnTopic struct {
	t     *topic
	parts []*partTxn // by partition, created on first use
	epoch uint64
}

// partTxn is what a transaction wrote to one partition.
type partTxn struct {
	tp   broker.TopicPartition
	t    *topic
	n    int64 // records written
	segs []segment
}

// segment is one batch of a partTxn.
type segment struct {
	first int64 // offset delta of its first record from the transaction's first
	enc   batchEncoder
}

// maxKeptBuffer is the largest batch buffer a txn keeps for reuse.
const maxKeptBuffer = 256 << 10

var txnPool = sync.Pool{New: func() any { return new(txn) }}

func (tx *txn) init(l *Log) {
	tx.l = l
	tx.maxBatchBytes = l.opts.MaxBatchBytes
	if tx.topics == nil {
		tx.topics = make(map[string]*txnTopic)
	}
	tx.epoch++
}

// reset empties tx, keeping its smaller buffers for the next transaction.
func (tx *txn) reset() {
	for _, pt := range tx.order {
		pt.n = 0
		for i := range pt.segs {
			if cap(pt.segs[i].enc.buf) > maxKeptBuffer {
				pt.segs[i].enc.buf = nil
			}
		}
		pt.segs = pt.segs[:0]
	}
	tx.order = tx.order[:0]
	tx.last = nil
	tx.err = nil
	tx.epoch++
	if len(tx.topics) > 256 {
		clear(tx.topics) // do not hold on to buffers of many topics
	}
}

// add encodes r into tx. With anyPartition, broker.AnyPartition picks a
// partition by key. The first error sticks in tx.err.
func (tx *txn) add(r *broker.Record, anyPartition bool) {
	if tx.err != nil {
		return
	}
	tt := tx.last
	if tt == nil || tt.t.cfg.Name != r.Topic {
		var err error
		if tt, err = tx.topic(r.Topic); err != nil {
			tx.err = err
			return
		}
		tx.last = tt
	}
	t, p := tt.t, r.Partition
	if p == broker.AnyPartition && anyPartition {
		if r.Key != nil {
			p = murmur2.Partition(r.Key, t.cfg.Partitions)
		} else {
			p = int32((t.rr.Add(1) - 1) % uint32(t.cfg.Partitions))
		}
	}
	if p < 0 || p >= t.cfg.Partitions {
		tx.err = fmt.Errorf("embedded: send to %s: partition %d out of range: the topic has %d partitions", r.Topic, p, t.cfg.Partitions)
		return
	}
	pt := tt.parts[p]
	if pt == nil {
		pt = &partTxn{tp: broker.TopicPartition{Topic: t.cfg.Name, Partition: p}, t: t}
		tt.parts[p] = pt
	}
	if pt.n == 0 {
		tx.order = append(tx.order, pt)
	}
	var seg *segment
	if n := len(pt.segs); n > 0 && pt.segs[n-1].enc.len() < tx.maxBatchBytes {
		seg = &pt.segs[n-1]
	} else {
		if cap(pt.segs) > n {
			pt.segs = pt.segs[:n+1]
		} else {
			pt.segs = append(pt.segs, segment{})
		}
		seg = &pt.segs[n]
		seg.first = pt.n
		seg.enc.reset()
	}
	seg.enc.add(uint32(pt.n-seg.first), r)
	pt.n++
}

// topic returns the cache entry of the topic named name, checked against
// the log in this transaction.
func (tx *txn) topic(name string) (*txnTopic, error) {
	tt := tx.topics[name]
	if tt != nil && tt.epoch == tx.epoch {
		return tt, nil
	}
	tx.l.mu.Lock()
	t, err := tx.l.topicLocked(name)
	tx.l.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if tt == nil || tt.t != t {
		tt = &txnTopic{t: t, parts: make([]*partTxn, t.cfg.Partitions)}
		tx.topics[name] = tt
	}
	tt.epoch = tx.epoch
	return tt, nil
}
