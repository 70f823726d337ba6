package embedded

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/cockroachdb/pebble/v2"

	"github.com/eddyflow/eddy/broker"
)

// group is the coordinator of one consumer group. All its fields, and the
// group fields of its members, are guarded by Log.mu.
type group struct {
	name    string
	members map[string]*Session
	// owner is the member that owns each partition: the one allowed to
	// consume it and commit its offset. A partition has no owner between
	// its revocation being acknowledged and its assignment being delivered.
	owner map[broker.TopicPartition]*Session
	// committed caches the group's committed offsets, loaded on first use.
	committed map[broker.TopicPartition]committedOffset
	// generation counts the rebalances: see Session.Endpoints.
	generation int64
}

type committedOffset struct {
	broker.Offset
	ok bool // false: nothing committed
}

// committedLocked returns g's committed offset of tp of topic t.
func (g *group) committedLocked(l *Log, t *topic, tp broker.TopicPartition) (broker.Offset, bool) {
	if c, ok := g.committed[tp]; ok {
		return c.Offset, c.ok
	}
	var c committedOffset
	v, closer, err := l.db.Get(offsetKey(t.id, tp.Partition, g.name))
	if err == nil {
		c.Offset, c.ok = decodeOffset(v)
		closer.Close()
		if !c.ok {
			l.logger.Warn("ignoring a committed offset that does not decode", "group", g.name, "partition", tp.String())
		}
	} else if !errors.Is(err, pebble.ErrNotFound) {
		// Reading failed: report nothing committed without caching it, so
		// the next call tries again.
		l.logger.Error("reading a committed offset failed", "group", g.name, "partition", tp.String(), "error", err)
		return broker.Offset{}, false
	}
	g.committed[tp] = c
	return c.Offset, c.ok
}

// rebalanceLocked runs the assignor over the current members and records
// each member's target and the partitions it must give up. Partitions move
// later, in the members' Polls: a revoked partition is released when its
// owner acknowledges the revocation, and then assigned to its new owner.
func (g *group) rebalanceLocked(l *Log) {
	if len(g.members) == 0 {
		return
	}
	names := slices.Sorted(maps.Keys(g.members))
	partitions := make(map[string]int32)
	var assignor broker.Assignor
	for _, name := range names {
		s := g.members[name]
		if assignor == nil {
			assignor = s.cfg.Assignor
		}
		for _, topic := range s.cfg.Topics {
			if t, ok := l.mu.topics[topic]; ok {
				partitions[topic] = t.cfg.Partitions
			}
		}
	}
	if assignor == nil {
		assignor = broker.CoPartitioned
	}
	plan := assignor(names, partitions)
	g.generation++
	taken := make(map[broker.TopicPartition]bool)
	for _, name := range names {
		s := g.members[name]
		clear(s.target)
		for _, tp := range plan[name] {
			if n, ok := partitions[tp.Topic]; !ok || tp.Partition < 0 || tp.Partition >= n || taken[tp] {
				l.logger.Warn("assignor returned a partition that is unknown or already assigned; ignoring it",
					"group", g.name, "member", name, "partition", tp.String())
				continue
			}
			taken[tp] = true
			s.target[tp] = true
		}
		clear(s.revokePending)
		for tp, a := range s.owned {
			// A partition of a topic deleted (and maybe created again)
			// since it was assigned is revoked too: it is not the same
			// partition any more.
			stale := l.mu.topics[tp.Topic] != a.t
			if (!s.target[tp] || stale) && !s.revokeDelivered[tp] {
				s.revokePending[tp] = true
			}
		}
	}
	l.logger.Debug("rebalanced", "group", g.name, "members", names)
}

// releaseLocked gives up s's ownership of tp.
func (g *group) releaseLocked(s *Session, tp broker.TopicPartition) {
	if g.owner[tp] == s {
		delete(g.owner, tp)
	}
	delete(s.owned, tp)
	delete(s.revokePending, tp)
	delete(s.revokeDelivered, tp)
}

// leaveLocked removes s from g, releasing its partitions, and rebalances.
func (g *group) leaveLocked(l *Log, s *Session) {
	for tp := range s.owned {
		g.releaseLocked(s, tp)
	}
	if g.members[s.cfg.Member] == s {
		delete(g.members, s.cfg.Member)
	}
	g.rebalanceLocked(l)
	l.broadcastLocked()
}

// Session is a member of a consumer group with a transactional producer; it
// implements broker.Session. Like every broker.Session it is used by one
// goroutine at a time, while the Log's other sessions run concurrently.
//
// Records passed to Send are encoded at once: the caller may reuse them as
// soon as Send returns.
type Session struct {
	l   *Log
	g   *group
	cfg broker.SessionConfig

	// Guarded by Log.mu.
	closed bool // Close was called, or the Log closed
	fenced bool // another session joined with the same member name
	// owned are the partitions s owns; the values are used only by the
	// session's goroutine.
	owned map[broker.TopicPartition]*assignment
	// target are the partitions the last rebalance gave s.
	target map[broker.TopicPartition]bool
	// revokePending are owned partitions the last rebalance took away and
	// that no Fetch has reported yet; revokeDelivered those a Fetch
	// reported, released at the next Poll.
	revokePending   map[broker.TopicPartition]bool
	revokeDelivered map[broker.TopicPartition]bool

	// Used only by the session's goroutine.
	assigned []*assignment // owned partitions sorted, for Poll
	rr       int           // Poll starts with partition assigned[rr%len]
	tx       txn
}

var _ broker.Session = (*Session)(nil)

// assignment is the consuming position in an owned partition.
type assignment struct {
	tp  broker.TopicPartition
	t   *topic
	pos int64 // next offset to return
	// buf[head:] are records decoded but not returned yet, from pos on.
	buf  []broker.Record
	head int
	// lent: records of buf's array were handed out in a Fetch, so the
	// array may only grow at its end; the next fill that would move or
	// overwrite records takes a new one.
	lent bool
	// next is the offset from which to read more; valid when buffered.
	next int64
}

func (a *assignment) rewind(pos int64) {
	a.pos = pos
	a.buf, a.head = a.buf[:0], 0
	if a.lent {
		a.buf, a.lent = nil, false
	}
}

// buffered returns the records decoded but not returned yet.
func (a *assignment) buffered() []broker.Record { return a.buf[a.head:] }

// NewSession joins cfg.Group as cfg.Member. A session already in the group
// under the same member name is fenced: its calls fail with broker.ErrFenced
// and its partitions are free for the new one at once.
func (l *Log) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	s, err := l.Join(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Join is NewSession returning the concrete type.
func (l *Log) Join(ctx context.Context, cfg broker.SessionConfig) (*Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Group == "":
		return nil, errors.New("embedded: new session: empty group")
	case cfg.Member == "":
		return nil, fmt.Errorf("embedded: new session in group %s: empty member name", cfg.Group)
	}
	cfg.Topics = slices.Clone(cfg.Topics)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return nil, err
	}
	for _, topic := range cfg.Topics {
		if _, err := l.topicLocked(topic); err != nil {
			return nil, fmt.Errorf("embedded: group %s member %s subscribes to %s: %w", cfg.Group, cfg.Member, topic, broker.ErrUnknownTopic)
		}
	}
	g := l.mu.groups[cfg.Group]
	if g == nil {
		g = &group{
			name:      cfg.Group,
			owner:     make(map[broker.TopicPartition]*Session),
			committed: make(map[broker.TopicPartition]committedOffset),
		}
		l.mu.groups[cfg.Group] = g
	}
	if g.members == nil {
		g.members = make(map[string]*Session)
	}
	if old := g.members[cfg.Member]; old != nil {
		l.logger.Debug("fencing the previous session of a member", "group", cfg.Group, "member", cfg.Member)
		old.fenced = true
		for tp := range old.owned {
			g.releaseLocked(old, tp)
		}
		delete(g.members, cfg.Member)
	}
	s := &Session{
		l:               l,
		g:               g,
		cfg:             cfg,
		owned:           make(map[broker.TopicPartition]*assignment),
		target:          make(map[broker.TopicPartition]bool),
		revokePending:   make(map[broker.TopicPartition]bool),
		revokeDelivered: make(map[broker.TopicPartition]bool),
	}
	s.tx.init(l)
	g.members[cfg.Member] = s
	g.rebalanceLocked(l)
	l.broadcastLocked()
	return s, nil
}

// checkLocked returns why s cannot be used, if it cannot.
func (s *Session) checkLocked() error {
	if err := s.l.checkLocked(); err != nil {
		return err
	}
	if s.fenced {
		return fmt.Errorf("embedded: group %s member %s joined again: %w", s.cfg.Group, s.cfg.Member, broker.ErrFenced)
	}
	if s.closed {
		return fmt.Errorf("embedded: group %s member %s: session %w", s.cfg.Group, s.cfg.Member, broker.ErrClosed)
	}
	return nil
}

// Poll returns up to max records of the session's partitions (max <= 0
// means DefaultPollRecords), or a change of assignment. A Poll that follows
// a Fetch with Revoked partitions acknowledges it: the partitions are
// released to their new owner. Records are taken from every partition with
// data in turn, in offset order within a partition; a partition whose
// position retention passed continues at its log start.
func (s *Session) Poll(ctx context.Context, max int) (broker.Fetch, error) {
	limit := max
	if limit <= 0 {
		limit = DefaultPollRecords
	}
	l := s.l
	for {
		if err := ctx.Err(); err != nil {
			return broker.Fetch{}, err
		}
		l.mu.Lock()
		if err := s.checkLocked(); err != nil {
			l.mu.Unlock()
			return broker.Fetch{}, err
		}
		if f, ok := s.rebalanceStepLocked(); ok {
			l.mu.Unlock()
			return f, nil
		}
		// Find the partitions with records to return.
		wake := l.mu.notify
		var ready []readyPartition
		for _, a := range s.assigned {
			p := &a.t.parts[a.tp.Partition]
			if a.pos < p.start {
				a.rewind(p.start)
			}
			if len(a.buffered()) > 0 || a.pos < p.end {
				ready = append(ready, readyPartition{a, p.end})
			}
		}
		if len(ready) > 0 {
			l.ops.Add(1)
		}
		l.mu.Unlock()

		if len(ready) > 0 {
			f, err := s.read(ready, limit)
			l.ops.Done()
			if err != nil || len(f.Records) > 0 {
				return f, err
			}
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return broker.Fetch{}, ctx.Err()
		}
	}
}

type readyPartition struct {
	a   *assignment
	end int64 // the partition's end when Poll looked
}

// rebalanceStepLocked moves s one step through a rebalance: it releases
// the partitions whose revocation s acknowledged by polling, reports newly
// revoked partitions, or assigns the free partitions of s's target.
func (s *Session) rebalanceStepLocked() (broker.Fetch, bool) {
	l, g := s.l, s.g
	if len(s.revokeDelivered) > 0 {
		for tp := range s.revokeDelivered {
			g.releaseLocked(s, tp)
		}
		s.syncAssigned()
		l.broadcastLocked() // the new owners may take them now
	}
	if len(s.revokePending) > 0 {
		f := broker.Fetch{Revoked: slices.SortedFunc(maps.Keys(s.revokePending), compareTP)}
		for _, tp := range f.Revoked {
			s.revokeDelivered[tp] = true
		}
		clear(s.revokePending)
		return f, true
	}
	var f broker.Fetch
	for tp := range s.target {
		if _, mine := s.owned[tp]; mine || g.owner[tp] != nil {
			continue
		}
		t, _, err := l.partitionLocked(tp)
		if err != nil {
			continue // deleted since the rebalance; the next one drops it
		}
		g.owner[tp] = s
		a := &assignment{tp: tp, t: t}
		a.rewind(t.parts[tp.Partition].start)
		if o, ok := g.committedLocked(l, t, tp); ok {
			a.rewind(max(o.Offset, a.pos))
			if f.Committed == nil {
				f.Committed = make(map[broker.TopicPartition]broker.Offset)
			}
			f.Committed[tp] = broker.Offset{Offset: o.Offset, Metadata: slices.Clone(o.Metadata)}
		}
		s.owned[tp] = a
		f.Assigned = append(f.Assigned, tp)
	}
	if len(f.Assigned) == 0 {
		return f, false
	}
	slices.SortFunc(f.Assigned, compareTP)
	s.syncAssigned()
	return f, true
}

// syncAssigned rebuilds s.assigned from s.owned. l.mu is held.
func (s *Session) syncAssigned() {
	s.assigned = s.assigned[:0]
	for _, a := range s.owned {
		s.assigned = append(s.assigned, a)
	}
	slices.SortFunc(s.assigned, func(a, b *assignment) int { return compareTP(a.tp, b.tp) })
}

// read returns up to limit records of the ready partitions: first up to an
// equal share of each, starting with a different partition every Poll,
// then more from those that have more.
func (s *Session) read(ready []readyPartition, limit int) (broker.Fetch, error) {
	var r *reader
	defer func() {
		if r != nil {
			r.close()
		}
	}()
	// The records go out without a copy when they come from one
	// partition, as they do when a worker reads one partition.
	var chunks [][]broker.Record
	total := 0
	start := s.rr % len(ready)
	s.rr++
	share := max(limit/len(ready), 1)
	for pass := 0; pass < 2 && total < limit; pass++ {
		for i := range ready {
			rp := ready[(start+i)%len(ready)]
			want := min(share, limit-total)
			if pass == 1 {
				want = limit - total
			}
			if want <= 0 {
				break
			}
			a := rp.a
			if len(a.buffered()) < want && s.more(a, rp.end) {
				if r == nil {
					var err error
					if r, err = newReader(s.l.db); err != nil {
						return broker.Fetch{}, fmt.Errorf("embedded: poll: %w", err)
					}
				}
				if err := s.fill(r, a, rp.end, want); err != nil {
					return broker.Fetch{}, err
				}
			}
			buffered := a.buffered()
			n := min(want, len(buffered))
			if n == 0 {
				continue
			}
			chunks = append(chunks, buffered[:n:n])
			total += n
			a.lent = true
			a.pos = buffered[n-1].Offset + 1
			a.head += n
		}
	}
	switch len(chunks) {
	case 0:
		return broker.Fetch{}, nil
	case 1:
		return broker.Fetch{Records: chunks[0]}, nil
	}
	out := make([]broker.Record, 0, total)
	for _, c := range chunks {
		out = append(out, c...)
	}
	return broker.Fetch{Records: out}, nil
}

// more reports whether a has records to read before end beyond its buffer.
func (s *Session) more(a *assignment, end int64) bool {
	if len(a.buffered()) > 0 {
		return a.next < end
	}
	return a.pos < end
}

// fill reads batches of a's partition into a.buf until it holds at
// least want records or the partition has nothing more before end.
func (s *Session) fill(r *reader, a *assignment, end int64, want int) error {
	switch {
	case a.lent:
		buf := make([]broker.Record, len(a.buffered()), max(want, cap(a.buf)))
		copy(buf, a.buffered())
		a.buf, a.head, a.lent = buf, 0, false
		if len(buf) == 0 {
			a.next = a.pos
		}
	case a.head == len(a.buf):
		a.buf, a.head = a.buf[:0], 0
		a.next = a.pos
	case a.head > 0:
		n := copy(a.buf, a.buf[a.head:])
		a.buf, a.head = a.buf[:n], 0
	}
	for len(a.buf) < want && a.next < end {
		n := len(a.buf)
		var err error
		a.buf, err = r.next(a.buf, a.t.id, a.tp, a.next, end)
		if err != nil {
			return err
		}
		if len(a.buf) == n {
			// Nothing left before end (compaction removed the rest).
			a.next = end
			if n == 0 {
				a.pos = end
			}
			break
		}
		a.next = a.buf[len(a.buf)-1].Offset + 1
	}
	return nil
}

// Send adds r to the open transaction. r.Partition must be set. Send
// encodes r at once, so the caller may reuse r and its slices when Send
// returns. Errors (an unknown topic, a partition out of range) surface at
// the next Commit.
func (s *Session) Send(r broker.Record) {
	s.tx.add(&r, false)
}

// Commit makes the records sent since the last Commit or Abort and the
// group offsets in offsets visible together, in one synced Pebble batch, or
// makes nothing visible and returns an error. Offsets may only be
// committed for partitions the session owns (a revoked partition is owned
// until the next Poll); otherwise Commit fails with an error wrapping
// broker.ErrFenced. On success the session's positions in those partitions
// move to the committed offsets, and Commit returns, for every partition
// written, the offset after its last record. After an error other than a
// failure to write, the transaction stays open: Abort discards it.
func (s *Session) Commit(ctx context.Context, offsets map[broker.TopicPartition]broker.Offset) (map[broker.TopicPartition]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return nil, err
	}
	for tp := range offsets {
		if _, ok := s.owned[tp]; !ok {
			return nil, fmt.Errorf("embedded: group %s member %s commits %s, which it does not own: %w",
				s.cfg.Group, s.cfg.Member, tp, broker.ErrFenced)
		}
	}
	if s.tx.err != nil {
		return nil, s.tx.err
	}
	ends, err := l.writeLocked(&s.tx, s.g, offsets)
	if err != nil {
		return nil, err
	}
	s.tx.reset()
	for tp, o := range offsets {
		if a := s.owned[tp]; a.pos != o.Offset {
			a.rewind(o.Offset)
		}
	}
	return ends, nil
}

// Abort discards the records sent since the last Commit and rewinds the
// session's positions to the group's committed offsets (the log start where
// none is committed).
func (s *Session) Abort(ctx context.Context) error {
	s.tx.reset()
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := s.checkLocked(); err != nil {
		return err
	}
	for tp, a := range s.owned {
		pos := a.t.parts[tp.Partition].start
		if o, ok := s.g.committedLocked(l, a.t, tp); ok {
			pos = max(pos, o.Offset)
		}
		a.rewind(pos)
	}
	return nil
}

// Close leaves the group, discarding uncommitted records; the remaining
// members rebalance. Closing a closed session does nothing.
func (s *Session) Close(ctx context.Context) error {
	s.tx.reset()
	l := s.l
	l.mu.Lock()
	defer l.mu.Unlock()
	if s.closed || s.fenced {
		s.closed = true
		return nil
	}
	s.closed = true
	if !l.mu.closed {
		s.g.leaveLocked(l, s)
	}
	return nil
}
