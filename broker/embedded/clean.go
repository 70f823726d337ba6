package embedded

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eddyflow/eddy/broker"
)

// Clean applies retention and compaction to every topic now; the
// background cleaner calls it every Options.CleanInterval.
//
// Retention (topics with Retention > 0 that are not compacted) deletes the
// oldest batches whose newest record is older than Options.Now() minus the
// retention, and advances the partition's start past them. Like Kafka, it
// deletes whole batches from the front only, so offsets stay dense from
// the start.
//
// Compaction (compacted topics) rewrites a partition to keep only the
// latest record of every key; offsets do not change, so gaps appear.
// Records with a nil key and tombstones (nil values) are kept. A partition
// without new records since its last compaction is skipped.
//
// Each partition is cleaned holding the log's mutex, so commits wait for it
// while readers continue on their Pebble snapshots.
func (l *Log) Clean(ctx context.Context) error {
	l.mu.Lock()
	if err := l.checkLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	var topics []*topic
	for _, t := range l.mu.topics {
		if t.cfg.Compacted || t.cfg.Retention > 0 {
			topics = append(topics, t)
		}
	}
	l.mu.Unlock()
	slices.SortFunc(topics, func(a, b *topic) int { return strings.Compare(a.cfg.Name, b.cfg.Name) })
	cutoff := l.opts.Now().UnixMilli()
	for _, t := range topics {
		for p := range t.cfg.Partitions {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := l.cleanPartition(t, p, cutoff); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Log) cleanPartition(t *topic, p int32, now int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return err
	}
	if t.deleted {
		return nil
	}
	if t.cfg.Compacted {
		return l.compactLocked(t, p)
	}
	return l.expireLocked(t, p, now-t.cfg.Retention.Milliseconds())
}

// partitionIter returns an iterator over the batches of t's partition p.
func (l *Log) partitionIter(t *topic, p int32) (*pebble.Iterator, error) {
	prefix := tpKey(kindRecords, t.id, p)
	return l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
}

// expireLocked deletes the batches at the front of t's partition p whose
// newest record is older than cutoff (ms since the epoch).
func (l *Log) expireLocked(t *topic, p int32, cutoff int64) error {
	tp, pp := t.tp(p), &t.parts[p]
	it, err := l.partitionIter(t, p)
	if err != nil {
		return fmt.Errorf("embedded: clean %s: %w", tp, err)
	}
	defer it.Close()
	b := l.db.NewBatch()
	defer b.Close()
	start, deleted := pp.end, 0
	for valid := it.First(); valid; valid = it.Next() {
		base := recordKeyBase(it.Key())
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("embedded: clean %s: %w", tp, err)
		}
		h, err := readBatchHeader(v)
		if err != nil {
			return corruptBatch(tp, base, err)
		}
		if h.maxTimestamp >= cutoff {
			start = base
			break
		}
		if err := b.Delete(it.Key(), nil); err != nil {
			return err
		}
		deleted++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("embedded: clean %s: %w", tp, err)
	}
	if deleted == 0 {
		return nil
	}
	start = max(start, pp.start)
	if err := b.Set(tpKey(kindPartition, t.id, p), encodeBounds(start, pp.end), nil); err != nil {
		return err
	}
	if err := l.commitLocked(b); err != nil {
		return fmt.Errorf("embedded: clean %s: %w", tp, err)
	}
	l.logger.Debug("retention deleted batches", "partition", tp.String(), "batches", deleted, "start", start)
	pp.start = start
	l.broadcastLocked()
	return nil
}

// compactKeyBytes is what a key of a compaction's map takes in memory: a
// 24-byte slot (16-byte hash, 8-byte offset) of a Go map filled between
// 7/16 and 7/8 (see Options.CompactBytes).
const compactKeyBytes = 64

// compactChunk is the size of the batches a compaction commits its
// rewrites in, so that it holds no more of them in memory.
const compactChunk = 1 << 20

// compactLocked keeps only the latest record of every key in t's
// partition p, in bounded memory, as Kafka's log cleaner does: it maps
// the keys of the records appended since the last compaction (the dirty
// part, from cleanedEnd) to their latest offset, as many as
// Options.CompactBytes holds, then rewrites the partition up to where the map reaches,
// dropping every record a later one in the map supersedes. The part
// before cleanedEnd holds one record per key already, so this leaves one
// per key up to there, and the next compaction continues from there. Keys
// are mapped by a 128-bit hash (Kafka uses MD5's): two keys sharing one,
// which would drop a record of the other, are as likely as a random
// 128-bit collision. Rewrites are committed every compactChunk bytes.
func (l *Log) compactLocked(t *topic, p int32) error {
	tp, pp := t.tp(p), &t.parts[p]
	if pp.end == pp.cleanedEnd {
		return nil
	}
	it, err := l.partitionIter(t, p)
	if err != nil {
		return fmt.Errorf("embedded: compact %s: %w", tp, err)
	}
	defer it.Close()

	// Pass 1: the offset of the latest record of every key of the dirty
	// part, batch by batch until the map is full.
	from := max(pp.cleanedEnd, pp.start)
	upto := pp.end // the map covers [from, upto)
	maxKeys := max(int(l.opts.CompactBytes/compactKeyBytes), 1)
	latest := make(map[[2]uint64]int64)
	var recs []broker.Record
	seek := appendRecordKey(nil, t.id, p, from+1)
	valid := it.SeekLT(seek) // the batch holding from, if any
	if !valid {
		valid = it.First()
	}
	for ; valid; valid = it.Next() {
		if len(latest) >= maxKeys {
			upto = recordKeyBase(it.Key())
			break
		}
		if recs, err = l.decodeAt(it, tp, recs[:0]); err != nil {
			return err
		}
		for i := range recs {
			if k := recs[i].Key; k != nil && recs[i].Offset >= from {
				latest[compactHash(k)] = recs[i].Offset
			}
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("embedded: compact %s: %w", tp, err)
	}

	// Pass 2: rewrite the batches before upto that hold superseded records.
	b := l.db.NewBatch()
	defer func() { b.Close() }()
	var enc batchEncoder
	removed := 0
	for valid := it.First(); valid; valid = it.Next() {
		base := recordKeyBase(it.Key())
		if base >= upto {
			break
		}
		if recs, err = l.decodeAt(it, tp, recs[:0]); err != nil {
			return err
		}
		enc.reset()
		kept := 0
		for i := range recs {
			r := &recs[i]
			if r.Key != nil {
				if off, ok := latest[compactHash(r.Key)]; ok && off > r.Offset {
					continue
				}
			}
			enc.add(uint32(r.Offset-base), r)
			kept++
		}
		switch {
		case kept == len(recs):
			continue
		case kept == 0:
			err = b.Delete(it.Key(), nil)
		default:
			v, _ := it.ValueAndErr() // decodeAt succeeded with it
			h, _ := readBatchHeader(v)
			enc.h.lastOffsetDelta = h.lastOffsetDelta // the batch keeps its span
			err = b.Set(it.Key(), enc.finish(), nil)
		}
		if err != nil {
			return err
		}
		removed += len(recs) - kept
		if b.Len() >= compactChunk {
			// The iterator reads the partition as it was: the rewrites
			// committed meanwhile do not disturb it.
			if err := l.commitLocked(b); err != nil {
				return fmt.Errorf("embedded: compact %s: %w", tp, err)
			}
			b.Close()
			b = l.db.NewBatch()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("embedded: compact %s: %w", tp, err)
	}
	if !b.Empty() {
		if err := l.commitLocked(b); err != nil {
			return fmt.Errorf("embedded: compact %s: %w", tp, err)
		}
	}
	if removed > 0 {
		l.logger.Debug("compacted", "partition", tp.String(), "removed", removed, "keys", len(latest), "upto", upto)
	}
	pp.cleanedEnd = upto
	return nil
}

// compactSeeds seed compactHash's two halves.
var compactSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

// compactHash returns a 128-bit hash of a record key.
func compactHash(k []byte) [2]uint64 {
	return [2]uint64{maphash.Bytes(compactSeeds[0], k), maphash.Bytes(compactSeeds[1], k)}
}

// decodeAt decodes the batch it is positioned on. The records alias the
// iterator's value: they are valid until it moves.
func (l *Log) decodeAt(it *pebble.Iterator, tp broker.TopicPartition, dst []broker.Record) ([]broker.Record, error) {
	base := recordKeyBase(it.Key())
	v, err := it.ValueAndErr()
	if err != nil {
		return dst, fmt.Errorf("embedded: clean %s at %d: %w", tp, base, err)
	}
	dst, _, err = decodeBatch(dst, v, tp, base)
	return dst, err
}

// cleanLoop runs Clean every CleanInterval until Close. A Clean under way
// when Close is called stops at the next partition: Close marks the log
// closed before it waits for this goroutine.
func (l *Log) cleanLoop() {
	ticker := time.NewTicker(l.opts.CleanInterval)
	defer ticker.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-ticker.C:
			if err := l.Clean(context.Background()); err != nil && !errors.Is(err, broker.ErrClosed) {
				l.logger.Error("cleaning the log failed", "error", err)
			}
		}
	}
}
