package operators

import (
	"bytes"
	"cmp"
	"container/heap"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"

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
// RetentionMs keeps closed sessions in Store, readable, until
// end + RetentionMs < stream-time (by default, gap + grace: at close).
// A retained session is closed: never merged, updated nor forwarded
// again; its deletion forwards nothing, like a closing one's.
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
// order. The operator reads them only at Init, loading every open session
// (end >= closed-up-to) into memory: a record looks its key's sessions up
// there (the ones ending at or after t-gap and starting by t+gap), and
// closing takes the due sessions off a heap ordered like the 't' index.
// So memory holds one small entry per open or retained session (see
// RetentionMs; the retained ones in a queue by end); ranging IndexStore
// per record, as this operator first did, flushed its cache every time
// and made a hot key scan its growing run of deleted entries.
type SessionAggregate[K, V, A any] struct {
	Name string
	// Store holds the aggregates; IndexStore the indexes by key and by end.
	Store, IndexStore string
	Spec              window.SessionSpec
	EmitFinal         bool
	// RetentionMs is how long a session stays in Store after its end: it
	// is deleted once end + RetentionMs < stream-time. 0 means gap +
	// grace, deletion at close; otherwise it must be at least gap + grace.
	RetentionMs int64
	KeySerde    serde.Serde[K]
	AggSerde    serde.Serde[A]
	Merge       SessionMerge[K, A]
	// Add folds the record into the merged aggregate; found is false when
	// no session was merged, when agg is the zero value.
	Add Fold[K, V, A]
	Out Downstream[window.Windowed[K], Change[A]]
	// Late receives the records dropped as late (nil: only counted).
	Late *LateRecords[K, V]

	store, index *state.KV
	windowed     serde.Serde[window.Windowed[K]]
	gap, grace   int64
	// streamTime, closedUpTo and expiredUpTo mirror the store's meta:
	// every session ending before expiredUpTo has been deleted.
	// retention is RetentionMs or its default.
	streamTime, closedUpTo, expiredUpTo, retention int64
	// expiredMeta tells that the store holds metaExpiredUpTo.
	expiredMeta bool
	// retained lists the closed sessions still stored, in the order they
	// closed (end, start, key), which is the order they expire in.
	retained []*openSession
	// expired holds, by data key, the last value of each session that
	// expired (without EmitFinal) until the cache flushes its deletion:
	// the flush then forwards that value if it was never flushed, and
	// nothing otherwise. Like the cache, it lives in memory only.
	expired map[string][]byte
	// open mirrors the time index in memory, loaded at Init: the open
	// sessions of each key by ascending end, and all of them in a heap by
	// end, start, key (the time index's order). Records and closes read
	// only these, never a range of IndexStore: a range flushes the
	// store's cache, and scanning a hot key's many deleted entries made
	// every record cost more than the last.
	open    map[string][]*openSession
	closing sessionHeap
	merged  []sessionBounds
	// kbuf holds the current record's encoded key; the others are scratch.
	kbuf, vbuf, dbuf, ibuf, mbuf []byte
}

type sessionBounds struct{ start, end int64 }

// openSession is an open session in SessionAggregate's memory.
type openSession struct {
	key        string
	start, end int64
	i          int // index in the heap
}

// sessionHeap orders open sessions by end, start, key: the order of the
// time index, in which sessions close.
type sessionHeap []*openSession

func (h sessionHeap) Len() int { return len(h) }
func (h sessionHeap) Less(i, j int) bool {
	a, b := h[i], h[j]
	return cmp.Or(cmp.Compare(a.end, b.end), cmp.Compare(a.start, b.start), strings.Compare(a.key, b.key)) < 0
}
func (h sessionHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *sessionHeap) Push(x any) {
	o := x.(*openSession)
	o.i = len(*h)
	*h = append(*h, o)
}
func (h *sessionHeap) Pop() any {
	old := *h
	o := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return o
}

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
	s.retention = satAdd(s.gap, s.grace)
	if s.RetentionMs != 0 {
		if s.RetentionMs < s.retention {
			return fmt.Errorf("operator %s: store %s: retention %dms is less than inactivity gap plus grace (%dms + %dms)", s.Name, s.Store, s.RetentionMs, s.gap, s.grace)
		}
		s.retention = s.RetentionMs
	}
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
	if _, s.expiredMeta, err = s.store.GetMeta(metaExpiredUpTo); err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	if s.expiredUpTo, err = getMetaInt(s.store, metaExpiredUpTo, s.closedUpTo); err != nil {
		return fmt.Errorf("store %s: %w", s.Store, err)
	}
	return s.loadOpen()
}

// retains tells whether closed sessions outlive their close.
func (s *SessionAggregate[K, V, A]) retains() bool { return s.retention > satAdd(s.gap, s.grace) }

// loadOpen loads the stored sessions from the time index: every session
// ending at or after expired-up-to (the others were deleted), the open
// ones (ending at or after closed-up-to) and the retained ones.
func (s *SessionAggregate[K, V, A]) loadOpen() error {
	s.open = map[string][]*openSession{}
	s.closing = s.closing[:0]
	s.retained = nil
	lo := appendSessionByTime(nil, nil, min(s.expiredUpTo, s.closedUpTo), math.MinInt64)
	err := s.index.Range(lo, []byte{sessionByTime + 1}, func(k, _ []byte) error {
		key, end, start, err := decodeSessionByTime(k)
		if err != nil {
			return err
		}
		if end < s.closedUpTo {
			s.retained = append(s.retained, &openSession{key: string(key), start: start, end: end})
			return nil
		}
		o := &openSession{key: string(key), start: start, end: end, i: len(s.closing)}
		s.closing = append(s.closing, o) // already in heap order
		s.open[o.key] = append(s.open[o.key], o)
		return nil
	})
	if err != nil {
		return fmt.Errorf("store %s: load open sessions: %w", s.IndexStore, err)
	}
	return nil
}

// opened adds the session [start, end] of key to memory.
func (s *SessionAggregate[K, V, A]) opened(key []byte, start, end int64) {
	list := s.open[string(key)]
	o := &openSession{key: string(key), start: start, end: end}
	if list != nil {
		o.key = list[0].key // share the key's string
	}
	i, _ := slices.BinarySearchFunc(list, end, func(x *openSession, end int64) int { return cmp.Compare(x.end, end) })
	s.open[o.key] = slices.Insert(list, i, o)
	heap.Push(&s.closing, o)
}

// forget removes the session [start, end] of key from memory.
func (s *SessionAggregate[K, V, A]) forget(key []byte, start, end int64) {
	list := s.open[string(key)]
	i := slices.IndexFunc(list, func(o *openSession) bool { return o.start == start && o.end == end })
	if i < 0 {
		return
	}
	heap.Remove(&s.closing, list[i].i)
	if len(list) == 1 {
		delete(s.open, string(key))
		return
	}
	s.open[string(key)] = slices.Delete(list, i, i+1)
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
	s.findMerged(r.Time, closeTime)
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
		if err := s.putMeta(metaClosedUpTo, closeTime); err != nil {
			return err
		}
		if s.retains() && !s.expiredMeta {
			// Without the meta, a restart would take every closed
			// session for deleted.
			s.expiredMeta = true
			if err := s.putMeta(metaExpiredUpTo, s.expiredUpTo); err != nil {
				return err
			}
		}
	}
	// With the default retention, expireTime is closeTime and close has
	// deleted what it closed; sessions a longer retention kept before a
	// restart may remain.
	if expireTime := satSub(s.streamTime, s.retention); expireTime > s.expiredUpTo && (s.retains() || s.expiredMeta) {
		if err := s.expire(ctx, expireTime, false); err != nil {
			return err
		}
		s.expiredUpTo, s.expiredMeta = expireTime, true
		return s.putMeta(metaExpiredUpTo, expireTime)
	}
	return nil
}

// findMerged collects into s.merged the open sessions of key s.kbuf that
// overlap [t-gap, t+gap], by ascending end.
func (s *SessionAggregate[K, V, A]) findMerged(t, closeTime int64) {
	s.merged = s.merged[:0]
	first, last := max(satSub(t, s.gap), closeTime), satAdd(t, s.gap)
	for _, o := range s.open[string(s.kbuf)] {
		if o.end < first {
			continue
		}
		if o.start > last {
			break // sessions are disjoint: the later ones start later still
		}
		s.merged = append(s.merged, sessionBounds{o.start, o.end})
	}
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
	s.opened(s.kbuf, start, end)
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
	s.forget(key, start, end)
	s.ibuf = appendSessionByKey(s.ibuf[:0], key, end, start)
	if err := s.index.Delete(s.ibuf); err != nil {
		return err
	}
	s.ibuf = appendSessionByTime(s.ibuf[:0], key, end, start)
	return s.index.Delete(s.ibuf)
}

// close closes the sessions ending before closeTime (all of them if
// all), from closed-up-to on, in the order end, start, key: with
// EmitFinal it forwards their final values; it deletes them, or with a
// longer retention, keeps them in s.retained.
func (s *SessionAggregate[K, V, A]) close(ctx *Context, closeTime int64, all bool) error {
	retain := s.retains()
	for len(s.closing) > 0 && (all || s.closing[0].end < closeTime) {
		o := s.closing[0]
		key := []byte(o.key)
		var v []byte
		if s.EmitFinal || !retain {
			var err error
			if v, err = s.sessionValue(key, o, "close"); err != nil {
				return err
			}
		}
		if s.EmitFinal {
			if err := s.emitFinal(ctx, key, o.start, o.end, v); err != nil {
				return fmt.Errorf("operator %s: close sessions: %w", s.Name, err)
			}
		}
		if retain {
			s.forget(key, o.start, o.end)
			s.retained = append(s.retained, &openSession{key: o.key, start: o.start, end: o.end})
			continue
		}
		if err := s.deleteSession(key, o, v, "close"); err != nil {
			return err
		}
	}
	return nil
}

// sessionValue returns the stored value of session o of key, which must
// exist; op names the caller in errors.
func (s *SessionAggregate[K, V, A]) sessionValue(key []byte, o *openSession, op string) ([]byte, error) {
	s.dbuf = appendSessionData(s.dbuf[:0], key, o.end, o.start)
	v, ok, err := s.store.Get(s.dbuf)
	switch {
	case err != nil:
		return nil, fmt.Errorf("operator %s: %s sessions: %w", s.Name, op, err)
	case !ok:
		return nil, fmt.Errorf("operator %s: %s sessions: store %s: session [%d,%d] is indexed but missing", s.Name, op, s.Store, o.start, o.end)
	}
	return v, nil
}

// deleteSession deletes session o of key, closed, from the store and its
// index, forwarding nothing; without EmitFinal its last value v waits in
// s.expired until the cache flushes the deletion. op names the caller in
// errors.
func (s *SessionAggregate[K, V, A]) deleteSession(key []byte, o *openSession, v []byte, op string) error {
	s.dbuf = appendSessionData(s.dbuf[:0], key, o.end, o.start)
	if !s.EmitFinal {
		s.expired[string(s.dbuf)] = bytes.Clone(v)
	}
	if err := s.store.Delete(s.dbuf); err != nil {
		return fmt.Errorf("operator %s: %s sessions: %w", s.Name, op, err)
	}
	if err := s.unindex(key, o.start, o.end); err != nil {
		return fmt.Errorf("operator %s: %s sessions: %w", s.Name, op, err)
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

// expire deletes the retained sessions ending before expireTime (all of
// them if all), which closed already, forwarding nothing: without
// EmitFinal, flushed tells their deletion from a merge's.
func (s *SessionAggregate[K, V, A]) expire(_ *Context, expireTime int64, all bool) error {
	for len(s.retained) > 0 && (all || s.retained[0].end < expireTime) {
		o := s.retained[0]
		s.retained[0] = nil
		s.retained = s.retained[1:]
		key := []byte(o.key)
		var v []byte
		if !s.EmitFinal {
			var err error
			if v, err = s.sessionValue(key, o, "expire"); err != nil {
				return err
			}
		}
		if err := s.deleteSession(key, o, v, "expire"); err != nil {
			return err
		}
	}
	return nil
}

// Finish closes every session, as if stream-time had reached the end of
// time: with EmitFinal each is forwarded with its final value. Their
// retention over too, it deletes them all.
func (s *SessionAggregate[K, V, A]) Finish(ctx *Context) error {
	if err := s.close(ctx, math.MaxInt64, true); err != nil {
		return err
	}
	return s.expire(ctx, math.MaxInt64, true)
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
