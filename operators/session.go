package operators

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

// SessionMerge folds the aggregate of an existing session into agg when a
// record merges sessions. found is false for the first session merged,
// when agg is the zero value.
type SessionMerge[K, A any] func(key K, agg A, found bool, session A) A

// SessionAggregate folds the records of each key into session windows, as
// Kafka Streams' KStreamSessionWindowAggregate does
// (../shared/SEMANTICS-KS.md, rules 13-18).
//
// A session is [start, end], both inclusive: the times of its earliest
// and latest records. A record at t merges with every session of its key
// that overlaps [t-gap, t+gap] and is still open; the merged session
// spans them all and t, and its aggregate is
// Add(Merge(...Merge(zero, s1)..., sn), value), the sessions taken by
// ascending end (rule 16). Sessions of a key are thus always more than
// gap apart, so at most two merge with one record.
//
// Stream-time is the largest timestamp seen. A session is open while
// end+gap+grace >= stream-time, and closes once stream-time passes it
// (rule 17). A record whose merged session would end before
// stream-time-gap-grace, which happens only if it merges with nothing, is
// dropped as late and handed to Late (rule 18). A session ending exactly
// at stream-time-gap-grace is open: it merges and is not emitted yet.
// (Kafka Streams' RocksDB session store already hides it from the merge
// lookup, while its emit-on-close still holds it back and its cache
// still returns it; eddy follows the close rule alone.)
//
// Without EmitFinal every change goes through Store's write-back cache and
// is forwarded when the cache flushes it (each write, with no cache), as
// a Change stamped with the session's end: a merge deletes each replaced
// session, a tombstone, then writes the merged one (rules 14, 15). As in
// Kafka Streams, nothing is deleted when the merged session is the
// record's own [t, t], which then is just updated. A session created and
// replaced between two flushes leaves no tombstone (downstream never saw
// it), as with Kafka Streams' caching session store. Closed sessions are
// deleted without a tombstone: they expired, nothing changed; an update
// of one still in the cache is forwarded when the cache flushes it.
//
// With EmitFinal nothing is forwarded until a session closes; each
// closing session is then forwarded once with its final aggregate,
// stamped with its end, by the record that advanced stream-time past it,
// in the order end, start, key bytes. Finish closes every session, as if
// stream-time had reached the end of time; without EmitFinal it only
// deletes them.
//
// Layout. Store holds the aggregates, keyed as Kafka Streams'
// SessionKeySchema (serde.SessionWindowed):
//
//	key | end (8) | start (8)  ->  end (8) | encoded aggregate
//
// It is only read and written by key (never ranged, which would flush the
// cache), and its metadata holds stream-time and closed-up-to (every
// session ending before it has been closed). IndexStore holds two empty-
// valued indexes of the same sessions:
//
//	'k' | uvarint(len(key)) | key | end (8) | start (8)
//	't' | end (8) | start (8) | key
//
// with times big-endian, sign bit flipped, so that byte order is numeric
// order. A record's lookup is one range scan of its key's 'k' entries
// from end >= t-gap, stopped at the first session starting after t+gap:
// it reads the sessions it merges with plus at most one. Closing scans
// the 't' entries from closed-up-to to the new close time, so it reads
// only the sessions that are due. Ranging IndexStore flushes its cache,
// which has no OnFlush: that costs writes, and forwards nothing.
type SessionAggregate[K, V, A any] struct {
	Name string
	// Store holds the aggregates; IndexStore the indexes by key and by end.
	Store, IndexStore string
	Spec              window.SessionSpec
	EmitFinal         bool
	KeySerde          serde.Serde[K]
	AggSerde          serde.Serde[A]
	Merge             SessionMerge[K, A]
	// Add folds the record into the merged aggregate; found is false when
	// no session was merged, when agg is the zero value.
	Add Fold[K, V, A]
	Out Downstream[window.Windowed[K], Change[A]]
	// Late receives the records dropped as late (nil: only counted).
	Late *LateRecords[K, V]

	store, index *state.KV
	windowed     serde.Serde[window.Windowed[K]]
	gap, grace   int64
	// streamTime and closedUpTo mirror the store's meta.
	streamTime, closedUpTo int64
	// expired holds, by data key, the last value of each session that
	// expired (without EmitFinal) until the cache flushes its deletion:
	// the flush then forwards that value if it was never flushed, and
	// nothing otherwise. Like the cache, it lives in memory only.
	expired map[string][]byte
	merged  []sessionBounds
	// kbuf holds the current record's encoded key; the others are scratch.
	kbuf, vbuf, dbuf, ibuf, lo, hi, mbuf []byte
}

type sessionBounds struct{ start, end int64 }

// Index prefixes of a SessionAggregate's IndexStore.
const (
	sessionByKey  = 'k'
	sessionByTime = 't'
)

// Init opens the stores and loads stream-time.
func (s *SessionAggregate[K, V, A]) Init(ctx *Context, stores Stores) error {
	if err := s.Spec.Validate(); err != nil {
		return fmt.Errorf("operator %s: %w", s.Name, err)
	}
	if s.Store == "" || s.IndexStore == "" || s.Store == s.IndexStore {
		return fmt.Errorf("operator %s: want two distinct stores, got %q and %q", s.Name, s.Store, s.IndexStore)
	}
	s.gap, s.grace = s.Spec.GapMs(), s.Spec.GraceMs()
	s.windowed = serde.SessionWindowed(s.KeySerde)
	cfg := state.StoreConfig{}
	if !s.EmitFinal {
		s.expired = map[string][]byte{}
		cfg.OnFlush = func(key, value, old []byte) error { return s.flushed(ctx, key, value, old) }
	}
	var err error
	if s.store, err = stores.KV(s.Store, cfg); err != nil {
		return err
	}
	if s.index, err = stores.KV(s.IndexStore, state.StoreConfig{}); err != nil {
		return err
	}
	if s.streamTime, err = getMetaInt(s.store, metaStreamTime, math.MinInt64); err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	if s.closedUpTo, err = getMetaInt(s.store, metaClosedUpTo, math.MinInt64); err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	return nil
}

func (s *SessionAggregate[K, V, A]) putMeta(name string, v int64) error {
	return putMetaInt(s.store, name, v, &s.mbuf)
}

// flushed forwards a change of Store as the cache flushes it.
func (s *SessionAggregate[K, V, A]) flushed(ctx *Context, key, value, old []byte) error {
	if value == nil {
		last, expired := s.expired[string(key)]
		switch {
		case expired:
			delete(s.expired, string(key))
			if old != nil && bytes.Equal(old, last) {
				return nil // downstream has the last value: expiry is no change
			}
			value = last // an update not flushed before the session expired
		case old == nil:
			return nil // replaced before downstream saw it
		}
	}
	w, err := s.windowed.Decode(key)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	c, _, err := changeOf(s.AggSerde, value, old)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	return s.Out.Forward(ctx, Record[window.Windowed[K], Change[A]]{Key: w, Value: c, Time: w.End})
}

// closeTime is the smallest end of an open session.
func (s *SessionAggregate[K, V, A]) closeTime() int64 {
	return satSub(satSub(s.streamTime, s.gap), s.grace)
}

// Process implements Processor.
func (s *SessionAggregate[K, V, A]) Process(ctx *Context, r Record[K, V]) error {
	if dropNilKey(ctx, s.Name) {
		return nil
	}
	var err error
	if s.kbuf, err = s.KeySerde.Encode(s.kbuf[:0], r.Key); err != nil {
		return fmt.Errorf("operator %s: encode key: %w", s.Name, err)
	}
	if r.Time > s.streamTime {
		s.streamTime = r.Time
		if err := s.putMeta(metaStreamTime, r.Time); err != nil {
			return err
		}
	}
	closeTime := s.closeTime()
	if err := s.findMerged(r.Time, closeTime); err != nil {
		return err
	}
	start, end := r.Time, r.Time
	for _, m := range s.merged {
		start, end = min(start, m.start), max(end, m.end)
	}
	if end < closeTime {
		if err := s.Late.Drop(ctx, s.Name, r); err != nil {
			return fmt.Errorf("operator %s: late records: %w", s.Name, err)
		}
	} else if err := s.add(ctx, r, start, end); err != nil {
		return err
	}
	if closeTime > s.closedUpTo {
		if err := s.close(ctx, closeTime, false); err != nil {
			return err
		}
		s.closedUpTo = closeTime
		return s.putMeta(metaClosedUpTo, closeTime)
	}
	return nil
}

// findMerged collects into s.merged the open sessions of key s.kbuf that
// overlap [t-gap, t+gap], by ascending end.
func (s *SessionAggregate[K, V, A]) findMerged(t, closeTime int64) error {
	s.merged = s.merged[:0]
	s.lo = appendSessionByKey(s.lo[:0], s.kbuf, max(satSub(t, s.gap), closeTime), math.MinInt64)
	s.hi = append(appendSessionByKey(s.hi[:0], s.kbuf, math.MaxInt64, math.MaxInt64), 0)
	last := satAdd(t, s.gap)
	err := s.index.Range(s.lo, s.hi, func(k, _ []byte) error {
		if len(k) < 16 {
			return fmt.Errorf("store %s: session index key too short: %x", s.IndexStore, k)
		}
		end, start := decodeJoinTime(k[len(k)-16:]), decodeJoinTime(k[len(k)-8:])
		if start > last {
			return errStopRange // sessions are disjoint: the later ones start later still
		}
		s.merged = append(s.merged, sessionBounds{start, end})
		return nil
	})
	if err != nil && err != errStopRange {
		return fmt.Errorf("store %s: %w", s.IndexStore, err)
	}
	return nil
}

// add folds r into the sessions s.merged and stores the result as the
// session [start, end].
func (s *SessionAggregate[K, V, A]) add(ctx *Context, r Record[K, V], start, end int64) error {
	var agg A
	found := false
	for _, m := range s.merged {
		s.dbuf = appendSessionData(s.dbuf[:0], s.kbuf, m.end, m.start)
		v, ok, err := s.store.Get(s.dbuf)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("store %s: session [%d,%d] is indexed but missing", s.Store, m.start, m.end)
		}
		_, prev, err := decodeTimestamped(v, s.AggSerde)
		if err != nil {
			return fmt.Errorf("store %s: %w", s.Store, err)
		}
		ctx.Operator = s.Name
		agg = s.Merge(r.Key, agg, found, prev)
		found = true
	}
	// As in Kafka Streams, a session that merged into the record's own
	// window [t, t] is overwritten, not deleted first.
	own := start == r.Time && end == r.Time
	if !own {
		for _, m := range s.merged {
			if err := s.remove(m.start, m.end); err != nil {
				return err
			}
		}
	}
	ctx.Operator = s.Name
	agg = s.Add(r.Key, r.Value, agg, found)
	var err error
	if s.vbuf, err = appendTimestamped(s.vbuf[:0], end, s.AggSerde, agg); err != nil {
		return fmt.Errorf("operator %s: encode aggregate: %w", s.Name, err)
	}
	s.dbuf = appendSessionData(s.dbuf[:0], s.kbuf, end, start)
	if err := s.store.Put(s.dbuf, s.vbuf); err != nil {
		return err
	}
	if own && found {
		return nil // already indexed
	}
	s.ibuf = appendSessionByKey(s.ibuf[:0], s.kbuf, end, start)
	if err := s.index.Put(s.ibuf, []byte{}); err != nil {
		return err
	}
	s.ibuf = appendSessionByTime(s.ibuf[:0], s.kbuf, end, start)
	return s.index.Put(s.ibuf, []byte{})
}

// remove deletes the session [start, end] of key s.kbuf, replaced by a
// merge: its deletion is forwarded as a tombstone.
func (s *SessionAggregate[K, V, A]) remove(start, end int64) error {
	s.dbuf = appendSessionData(s.dbuf[:0], s.kbuf, end, start)
	if err := s.store.Delete(s.dbuf); err != nil {
		return err
	}
	return s.unindex(s.kbuf, start, end)
}

func (s *SessionAggregate[K, V, A]) unindex(key []byte, start, end int64) error {
	s.ibuf = appendSessionByKey(s.ibuf[:0], key, end, start)
	if err := s.index.Delete(s.ibuf); err != nil {
		return err
	}
	s.ibuf = appendSessionByTime(s.ibuf[:0], key, end, start)
	return s.index.Delete(s.ibuf)
}

// close closes the sessions ending before closeTime (all of them if
// all), from closed-up-to on, in the order end, start, key: with
// EmitFinal it forwards their final values; it deletes them.
func (s *SessionAggregate[K, V, A]) close(ctx *Context, closeTime int64, all bool) error {
	s.lo = appendSessionByTime(s.lo[:0], nil, s.closedUpTo, math.MinInt64)
	if all {
		s.hi = append(s.hi[:0], sessionByTime+1)
	} else {
		s.hi = appendSessionByTime(s.hi[:0], nil, closeTime, math.MinInt64)
	}
	err := s.index.Range(s.lo, s.hi, func(k, _ []byte) error {
		key, end, start, err := decodeSessionByTime(k)
		if err != nil {
			return fmt.Errorf("store %s: %w", s.IndexStore, err)
		}
		s.dbuf = appendSessionData(s.dbuf[:0], key, end, start)
		v, ok, err := s.store.Get(s.dbuf)
		switch {
		case err != nil:
			return err
		case !ok:
			return fmt.Errorf("store %s: session [%d,%d] is indexed but missing", s.Store, start, end)
		}
		if s.EmitFinal {
			if err := s.emitFinal(ctx, key, start, end, v); err != nil {
				return err
			}
		} else {
			s.expired[string(s.dbuf)] = bytes.Clone(v)
		}
		if err := s.store.Delete(s.dbuf); err != nil {
			return err
		}
		return s.unindex(key, start, end)
	})
	if err != nil {
		return fmt.Errorf("operator %s: close sessions: %w", s.Name, err)
	}
	return nil
}

func (s *SessionAggregate[K, V, A]) emitFinal(ctx *Context, kb []byte, start, end int64, v []byte) error {
	k, err := s.KeySerde.Decode(kb)
	if err != nil {
		return fmt.Errorf("store %s: decode key: %w", s.Store, err)
	}
	_, agg, err := decodeTimestamped(v, s.AggSerde)
	if err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	key := window.Windowed[K]{Key: k, Start: start, End: end}
	return s.Out.Forward(ctx, Record[window.Windowed[K], Change[A]]{Key: key, Value: Change[A]{New: agg, HasNew: true}, Time: end})
}

// Finish closes every session, as if stream-time had reached the end of
// time: with EmitFinal each is forwarded with its final value.
func (s *SessionAggregate[K, V, A]) Finish(ctx *Context) error {
	return s.close(ctx, math.MaxInt64, true)
}

// appendSessionData appends the Store key of a session: Kafka Streams'
// SessionKeySchema, key | end | start with raw big-endian times.
func appendSessionData(dst, key []byte, end, start int64) []byte {
	dst = append(dst, key...)
	dst = binary.BigEndian.AppendUint64(dst, uint64(end))
	return binary.BigEndian.AppendUint64(dst, uint64(start))
}

// appendSessionByKey appends the by-key index entry of a session. The
// key's length prefix keeps one key's sessions contiguous even when
// another key extends it.
func appendSessionByKey(dst, key []byte, end, start int64) []byte {
	dst = append(dst, sessionByKey)
	dst = binary.AppendUvarint(dst, uint64(len(key)))
	dst = append(dst, key...)
	dst = appendJoinTime(dst, end)
	return appendJoinTime(dst, start)
}

// appendSessionByTime appends the by-time index entry of a session.
func appendSessionByTime(dst, key []byte, end, start int64) []byte {
	dst = append(dst, sessionByTime)
	dst = appendJoinTime(dst, end)
	dst = appendJoinTime(dst, start)
	return append(dst, key...)
}

// decodeSessionByTime splits an entry made by appendSessionByTime; key
// aliases k.
func decodeSessionByTime(k []byte) (key []byte, end, start int64, err error) {
	if len(k) < 17 || k[0] != sessionByTime {
		return nil, 0, 0, fmt.Errorf("session time index: malformed key %x", k)
	}
	end, start = decodeJoinTime(k[1:]), decodeJoinTime(k[9:])
	if start > end {
		return nil, 0, 0, fmt.Errorf("session time index: start %d after end %d", start, end)
	}
	return k[17:], end, start, nil
}
