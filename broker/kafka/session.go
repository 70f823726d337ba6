package kafka

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
)

// TransactionalID returns the transactional id of the member of a group:
// "eddy/<group>/<member>". It is the same for every session of the member,
// so a new session fences its predecessor's producer. Group and member
// names must not both contain "/" ambiguously ("a/b"+"c" and "a"+"b/c"
// share an id); eddy's engine names members "<app>-<instance>-<worker>".
func TransactionalID(group, member string) string {
	return "eddy/" + group + "/" + member
}

// Session is a member of a consumer group with a transactional producer;
// it implements broker.Session on a kgo.GroupTransactSession. With
// broker.SessionConfig.AtLeastOnce it is a member with an idempotent,
// non-transactional producer instead, on a plain kgo group client: Commit
// flushes the records, then commits the offsets (see Commit). Like every
// broker.Session it is used by one goroutine at a time.
//
// A rebalance waits for the session's caller: franz-go runs its revoke
// callbacks only while Poll allows it (kgo.BlockRebalanceOnPoll), and Poll
// allows it only when nothing is uncommitted, right after a Commit or an
// Abort. So the partitions a Fetch reports as Revoked have no uncommitted
// work: the caller's Commit before its next Poll has nothing of theirs to
// commit, and Commit accepts their offsets only unchanged. This holds in
// both modes.
type Session struct {
	l      *Log
	cfg    broker.SessionConfig
	logger hclog.Logger
	txnID  string                    // "" at least once
	gts    *kgo.GroupTransactSession // nil at least once
	cl     *kgo.Client
	topics map[string]bool // subscribed
	ids    map[[16]byte]string
	view   *endpointView // the group's endpoints: see endpoints.go

	// mu guards what franz-go's callbacks report. They run on franz-go's
	// group management goroutines, never concurrently with each other.
	mu struct {
		sync.Mutex
		revoked  []broker.TopicPartition
		assigned []broker.TopicPartition
		// committed are the committed offsets of assigned.
		committed map[broker.TopicPartition]broker.Offset
		// reset is set when franz-go revoked or lost partitions: the
		// GroupTransactSession then aborts its next transaction, until
		// End clears that.
		reset bool
		// cancelPoll interrupts the PollRecords under way.
		cancelPoll context.CancelFunc
	}

	// pmu guards what produce promises report; they run on franz-go's
	// producer goroutines.
	pmu struct {
		sync.Mutex
		ends map[broker.TopicPartition]int64
		err  error
	}

	// Used by the session's goroutine only.
	owned     map[broker.TopicPartition]bool
	committed map[broker.TopicPartition]broker.Offset // the last committed offset known
	pos       map[broker.TopicPartition]int64         // after the records returned since the last commit
	stash     []broker.Record                         // polled while an event was pending
	held      bool                                    // a poll holds rebalances back
	dirty     bool                                    // records returned or sent since the last Commit or Abort
	inTxn     bool
	txnErr    error // Begin failed
	failed    error // fenced, or franz-go failed: every call returns it
	closed    bool
}

var _ broker.Session = (*Session)(nil)

// Join is NewSession returning the concrete type. The new session's
// producer fences any older one of the same transactional id (see
// TransactionalID) before Join returns: a zombie of the member can commit
// nothing more. An at-least-once session (cfg.AtLeastOnce) has no
// transactional id and fences nothing: see Commit.
func (l *Log) Join(ctx context.Context, cfg broker.SessionConfig) (*Session, error) {
	if err := l.check(); err != nil {
		return nil, err
	}
	switch {
	case cfg.Group == "":
		return nil, errors.New("kafka: new session: empty group")
	case cfg.Member == "":
		return nil, fmt.Errorf("kafka: new session in group %s: empty member name", cfg.Group)
	}
	cfg.Topics = slices.Clone(cfg.Topics)
	if cfg.Assignor == nil {
		cfg.Assignor = broker.CoPartitioned
	}
	tds, err := l.adm.ListTopics(ctx, cfg.Topics...)
	if err != nil {
		return nil, fmt.Errorf("kafka: group %s member %s: list topics on %s: %w", cfg.Group, cfg.Member, l.brokers(), err)
	}
	s := &Session{
		l:         l,
		cfg:       cfg,
		logger:    l.logger.Named("session").With("group", cfg.Group, "member", cfg.Member),
		topics:    map[string]bool{},
		ids:       map[[16]byte]string{},
		owned:     map[broker.TopicPartition]bool{},
		committed: map[broker.TopicPartition]broker.Offset{},
		pos:       map[broker.TopicPartition]int64{},
		view:      &endpointView{},
	}
	for _, topic := range cfg.Topics {
		td, ok := tds[topic]
		if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
			return nil, fmt.Errorf("kafka: group %s member %s subscribes to %s: %w", cfg.Group, cfg.Member, topic, broker.ErrUnknownTopic)
		}
		if td.Err != nil {
			return nil, fmt.Errorf("kafka: group %s member %s: topic %s: %w", cfg.Group, cfg.Member, topic, td.Err)
		}
		s.topics[topic] = true
		s.ids[td.ID] = topic
	}
	s.mu.committed = map[broker.TopicPartition]broker.Offset{}
	bal := &balancer{name: cfg.Member, joined: time.Now().UnixNano(), endpoint: cfg.Endpoint, assignor: cfg.Assignor, logger: s.logger, view: s.view}
	// Both modes consume read_committed (inputs may come from
	// transactional producers) and fetch offsets with require_stable,
	// which franz-go always sets: a new owner waits for a transaction
	// that commits offsets of its partitions to end.
	opts := []kgo.Opt{
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(cfg.Topics...),
		kgo.Balancers(bal),
		kgo.SessionTimeout(l.opts.SessionTimeout),
		kgo.RebalanceTimeout(l.opts.RebalanceTimeout),
		kgo.HeartbeatInterval(l.opts.HeartbeatInterval),
		kgo.BlockRebalanceOnPoll(),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onLost),
		kgo.OnOffsetsFetched(s.onFetched),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	}
	if cfg.AtLeastOnce {
		// franz-go's producer is idempotent by default; acks=all, which
		// idempotence needs, is spelled out.
		cl, err := kgo.NewClient(l.clientOpts(append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))...)...)
		if err != nil {
			return nil, fmt.Errorf("kafka: group %s member %s: %w", cfg.Group, cfg.Member, err)
		}
		s.cl = cl
		return s, nil
	}
	s.txnID = TransactionalID(cfg.Group, cfg.Member)
	gts, err := kgo.NewGroupTransactSession(l.clientOpts(append(opts,
		kgo.TransactionalID(s.txnID),
		kgo.TransactionTimeout(l.opts.TransactionTimeout),
	)...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: group %s member %s: %w", cfg.Group, cfg.Member, err)
	}
	s.gts, s.cl = gts, gts.Client()
	// Initializing the producer id bumps the epoch of the transactional
	// id: the coordinator aborts the open transaction of an older session
	// and fences its producer.
	if _, _, err := s.cl.ProducerID(ctx); err != nil {
		gts.Close()
		return nil, fmt.Errorf("kafka: group %s member %s: init transactional id %s on %s: %w", cfg.Group, cfg.Member, s.txnID, l.brokers(), err)
	}
	return s, nil
}

// onRevoked runs on franz-go's group goroutine, only while Poll allows
// rebalances: the session has nothing uncommitted then.
func (s *Session) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	if len(revoked) == 0 {
		return // the end of a cooperative session: nothing lost
	}
	s.report(revoked)
}

// onLost runs on franz-go's group goroutine when the member fell out of
// the group (session timeout, a fatal group error): its partitions are
// someone else's already.
func (s *Session) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.report(lost)
}

func (s *Session) report(revoked map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.reset = true
	for topic, ps := range revoked {
		for _, p := range ps {
			tp := broker.TopicPartition{Topic: topic, Partition: p}
			s.mu.revoked = append(s.mu.revoked, tp)
			// Assigned but not reported yet: never report it.
			s.mu.assigned = slices.DeleteFunc(s.mu.assigned, func(a broker.TopicPartition) bool { return a == tp })
		}
	}
	s.wakeLocked()
}

// onFetched runs on a franz-go goroutine once the committed offsets of
// newly assigned partitions are fetched (with require_stable: after any
// transaction committing them ended), before it fetches their records.
func (s *Session) onFetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	add := func(topic string, id [16]byte, p int32, offset int64, metadata *string, code int16) {
		if topic == "" {
			topic = s.ids[id]
		}
		if !s.topics[topic] || code != 0 {
			return // franz-go drops a partition that failed
		}
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		if !slices.Contains(s.mu.assigned, tp) {
			s.mu.assigned = append(s.mu.assigned, tp)
		}
		if offset < 0 {
			delete(s.mu.committed, tp)
			return
		}
		o := broker.Offset{Offset: offset}
		if metadata != nil && *metadata != "" {
			o.Metadata = []byte(*metadata)
		}
		s.mu.committed[tp] = o
	}
	for _, g := range resp.Groups {
		if g.Group != s.cfg.Group {
			continue
		}
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, t.TopicID, p.Partition, p.Offset, p.Metadata, p.ErrorCode)
			}
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, [16]byte{}, p.Partition, p.Offset, p.Metadata, p.ErrorCode)
		}
	}
	s.wakeLocked()
	return nil
}

// wakeLocked interrupts the Poll waiting for records, so that it reports
// the event.
func (s *Session) wakeLocked() {
	if s.mu.cancelPoll != nil {
		s.mu.cancelPoll()
		s.mu.cancelPoll = nil
	}
}

func (s *Session) pendingLocked() bool {
	return s.mu.reset || len(s.mu.revoked) > 0 || len(s.mu.assigned) > 0
}

func (s *Session) usable() error {
	if s.closed {
		return fmt.Errorf("kafka: group %s member %s: session %w", s.cfg.Group, s.cfg.Member, broker.ErrClosed)
	}
	return s.failed
}

// Poll returns up to max records (max <= 0 means DefaultPollRecords), or
// a change of assignment: Revoked before Assigned. When nothing is
// uncommitted it first lets a pending rebalance run (this is the
// acknowledgement of the last revoke), so a rebalance waits at most until
// the Poll after the caller's next Commit or Abort.
func (s *Session) Poll(ctx context.Context, max int) (broker.Fetch, error) {
	if err := s.usable(); err != nil {
		return broker.Fetch{}, err
	}
	if max <= 0 {
		max = DefaultPollRecords
	}
	for {
		if err := ctx.Err(); err != nil {
			return broker.Fetch{}, err
		}
		if f, ok, err := s.event(ctx); ok || err != nil {
			return f, err
		}
		if len(s.stash) > 0 {
			n := min(max, len(s.stash))
			recs := slices.Clone(s.stash[:n])
			s.stash = s.stash[n:]
			if recs = s.took(recs); len(recs) > 0 {
				return broker.Fetch{Records: recs}, nil
			}
			continue
		}
		if s.held && !s.dirty {
			s.cl.AllowRebalance()
			s.held = false
		}
		pctx, cancel := context.WithCancel(ctx)
		s.mu.Lock()
		pending := s.pendingLocked()
		if !pending {
			s.mu.cancelPoll = cancel
		}
		s.mu.Unlock()
		if pending {
			cancel()
			continue
		}
		fetches := s.cl.PollRecords(pctx, max)
		s.held = true // PollRecords holds rebalances back, even when it failed
		s.mu.Lock()
		s.mu.cancelPoll = nil
		pending = s.pendingLocked()
		s.mu.Unlock()
		cancel()
		if err := s.fetchError(fetches); err != nil {
			return broker.Fetch{}, err
		}
		recs := make([]broker.Record, 0, fetches.NumRecords())
		fetches.EachRecord(func(r *kgo.Record) { recs = append(recs, fromKgo(r)) })
		if pending {
			// Report the event first; the records follow unless a
			// revoke drops them.
			s.stash = append(s.stash, recs...)
			continue
		}
		if recs = s.took(recs); len(recs) > 0 {
			return broker.Fetch{Records: recs}, nil
		}
	}
}

// event returns the next change of assignment, if any.
func (s *Session) event(ctx context.Context) (broker.Fetch, bool, error) {
	s.mu.Lock()
	reset := s.mu.reset
	s.mu.reset = false
	revoked := s.mu.revoked
	s.mu.revoked = nil
	var assigned []broker.TopicPartition
	var committed map[broker.TopicPartition]broker.Offset
	if len(revoked) == 0 {
		assigned, committed = s.mu.assigned, s.mu.committed
		s.mu.assigned, s.mu.committed = nil, map[broker.TopicPartition]broker.Offset{}
	}
	s.mu.Unlock()

	if reset && s.gts != nil {
		// Records polled since are dropped: the rewind below fetches
		// them again. (A plain group client needs no rewind: the
		// partitions it keeps are where they were, and the stash of
		// those it lost is dropped below.)
		s.stash = nil
		if !s.dirty {
			// GroupTransactSession aborts the next transaction after
			// a revoke; nothing is uncommitted now, so end the empty
			// one at once. This also rewinds every partition to its
			// committed offset, where it is anyway. (If something is
			// uncommitted, which happens only if the caller sent
			// before its first Poll, the next Commit fails with
			// ErrAborted instead.)
			if _, err := s.gts.End(ctx, kgo.TryAbort); err != nil {
				return broker.Fetch{}, false, s.fail("reset after a revoke", err)
			}
			s.inTxn = false
		}
	}
	var f broker.Fetch
	for _, tp := range revoked {
		if s.owned[tp] && !slices.Contains(f.Revoked, tp) {
			f.Revoked = append(f.Revoked, tp)
			delete(s.owned, tp)
			delete(s.pos, tp)
		}
	}
	if len(f.Revoked) > 0 {
		s.stash = slices.DeleteFunc(s.stash, func(r broker.Record) bool { return !s.owned[tpOf(r)] })
		slices.SortFunc(f.Revoked, compareTP)
		return f, true, nil
	}
	for _, tp := range assigned {
		if s.owned[tp] {
			continue
		}
		s.owned[tp] = true
		f.Assigned = append(f.Assigned, tp)
		if o, ok := committed[tp]; ok {
			if f.Committed == nil {
				f.Committed = map[broker.TopicPartition]broker.Offset{}
			}
			f.Committed[tp] = o
			s.committed[tp] = broker.Offset{Offset: o.Offset, Metadata: slices.Clone(o.Metadata)}
		} else {
			delete(s.committed, tp)
		}
	}
	if len(f.Assigned) > 0 {
		slices.SortFunc(f.Assigned, compareTP)
		return f, true, nil
	}
	return broker.Fetch{}, false, nil
}

// took notes records returned to the caller, dropping any of a partition
// the session does not own.
func (s *Session) took(recs []broker.Record) []broker.Record {
	recs = slices.DeleteFunc(recs, func(r broker.Record) bool { return !s.owned[tpOf(r)] })
	for _, r := range recs {
		s.pos[tpOf(r)] = r.Offset + 1
	}
	if len(recs) > 0 {
		s.dirty = true
	}
	return recs
}

// fetchError returns the error of fetches that the caller must see.
func (s *Session) fetchError(fetches kgo.Fetches) error {
	var errs []error
	fetches.EachError(func(topic string, p int32, err error) {
		var ke *kerr.Error
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		case errors.Is(err, kgo.ErrClientClosed):
			errs = append(errs, broker.ErrClosed)
		case topic == "":
			// A group error franz-go reports through fetches (a failed
			// join: the member was removed, the coordinator moved); its
			// group management retries, and a lost assignment comes
			// as OnPartitionsLost.
			s.logger.Warn("group error; franz-go rejoins", "error", err)
		case errors.As(err, &ke) && ke.Retriable:
			s.logger.Warn("fetch failed; franz-go retries", "topic", topic, "partition", p, "error", err)
		default:
			errs = append(errs, fmt.Errorf("%s/%d: %w", topic, p, err))
		}
	})
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kafka: group %s member %s: poll: %w", s.cfg.Group, s.cfg.Member, err)
	}
	return nil
}

// Send adds r to the open transaction, beginning one if needed (at least
// once: it produces r at once). The record is copied: the caller may reuse
// r's slices. Errors surface at Commit.
func (s *Session) Send(r broker.Record) {
	if s.usable() != nil || s.txnErr != nil {
		return
	}
	if s.gts != nil && !s.inTxn {
		if err := s.gts.Begin(); err != nil {
			s.txnErr = err
			return
		}
		s.inTxn = true
	}
	s.dirty = true
	r.Key, r.Value = bytes.Clone(r.Key), bytes.Clone(r.Value)
	kr := toKgo(&r)
	for i := range kr.Headers {
		kr.Headers[i].Value = bytes.Clone(kr.Headers[i].Value)
	}
	if r.Partition < 0 {
		s.promise(kr, fmt.Errorf("partition %d: Send needs a partition", r.Partition))
		return
	}
	s.cl.Produce(context.Background(), kr, s.promise)
}

func (s *Session) promise(r *kgo.Record, err error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if err != nil {
		if s.pmu.err == nil {
			s.pmu.err = produceError(r, err)
		}
		return
	}
	if s.pmu.ends == nil {
		s.pmu.ends = map[broker.TopicPartition]int64{}
	}
	tp := broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
	s.pmu.ends[tp] = max(s.pmu.ends[tp], r.Offset+1)
}

// takeProduced returns and clears what the promises reported.
func (s *Session) takeProduced() (map[broker.TopicPartition]int64, error) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	ends, err := s.pmu.ends, s.pmu.err
	s.pmu.ends, s.pmu.err = nil, nil
	return ends, err
}

// Commit flushes the records sent and commits them with offsets in the
// transaction (TxnOffsetCommit with the group's generation, KIP-447),
// exactly the offsets given, with their metadata. Offsets equal to the
// last ones committed are left out. Offsets of a partition the session does
// not own (also one it reported Revoked) are accepted only unchanged;
// otherwise Commit fails with an error wrapping broker.ErrFenced.
//
// When franz-go aborts instead (a rebalance or a lost generation during
// the transaction), Commit returns an error wrapping broker.ErrAborted
// and the session has rewound to the committed offsets. When another
// session of the same member fenced the producer, it returns an error
// wrapping broker.ErrFenced and the session is dead: Close it. On
// success the session's positions move to the committed offsets.
//
// An at-least-once session flushes the records sent instead, then commits
// the offsets with OffsetCommit (the group's generation and member id,
// their metadata): see commitAtLeastOnce.
func (s *Session) Commit(ctx context.Context, offsets map[broker.TopicPartition]broker.Offset) (map[broker.TopicPartition]int64, error) {
	if err := s.usable(); err != nil {
		return nil, err
	}
	commit := make(map[broker.TopicPartition]broker.Offset, len(offsets))
	for tp, o := range offsets {
		c, known := s.committed[tp]
		same := known && c.Offset == o.Offset && bytes.Equal(c.Metadata, o.Metadata)
		if !s.owned[tp] && !same {
			return nil, fmt.Errorf("kafka: group %s member %s commits %s, which it does not own: %w",
				s.cfg.Group, s.cfg.Member, tp, broker.ErrFenced)
		}
		if !same {
			commit[tp] = o
		}
	}
	if s.gts == nil {
		return s.commitAtLeastOnce(ctx, offsets, commit)
	}
	if s.txnErr != nil {
		err := s.txnErr
		s.txnErr = nil
		return nil, s.failCommit("begin transaction", err, s.abort(ctx))
	}
	if !s.inTxn && len(commit) == 0 {
		s.committedTo(offsets)
		return nil, nil
	}
	if !s.inTxn {
		if err := s.gts.Begin(); err != nil {
			return nil, s.failCommit("begin transaction", err, nil)
		}
		s.inTxn = true
	}
	if err := s.cl.Flush(ctx); err != nil {
		// ctx ended: the transaction stays open; Abort discards it.
		return nil, fmt.Errorf("kafka: group %s member %s: commit: flush: %w", s.cfg.Group, s.cfg.Member, err)
	}
	ends, perr := s.takeProduced()
	if perr != nil {
		return nil, s.failCommit("produce", perr, s.abort(ctx))
	}
	var committed bool
	var err error
	if len(commit) == 0 {
		// Records only: no group offsets, so the group's generation does
		// not matter. (GroupTransactSession.End would also hold back the
		// next rebalance 500ms after an offset-less commit.)
		err = s.cl.EndTransaction(ctx, kgo.TryCommit)
		committed = err == nil
	} else {
		cctx := kgo.PreTxnCommitFnContext(ctx, func(req *kmsg.TxnOffsetCommitRequest) error {
			setOffsets(req, commit)
			return nil
		})
		committed, err = s.gts.End(cctx, kgo.TryCommit)
	}
	s.inTxn = false
	if err != nil {
		s.resetPositions()
		return nil, s.failCommit("end transaction", err, nil)
	}
	if !committed {
		s.resetPositions()
		return nil, fmt.Errorf("kafka: group %s member %s: commit: %w: franz-go aborted the transaction (a rebalance or a lost group generation) and rewound to the committed offsets",
			s.cfg.Group, s.cfg.Member, broker.ErrAborted)
	}
	s.committedTo(offsets)
	if err := s.l.awaitStable(ctx, ends); err != nil {
		// The transaction is committed; only its visibility is late.
		s.logger.Warn("committed records are not visible yet", "error", err)
	}
	return ends, nil
}

// setOffsets replaces the offsets of req, which franz-go built from the
// positions it consumed, with commit. It keeps the topic ids of req's
// topics; a topic without one makes franz-go send the request by name.
func setOffsets(req *kmsg.TxnOffsetCommitRequest, commit map[broker.TopicPartition]broker.Offset) {
	ids := map[string][16]byte{}
	for _, t := range req.Topics {
		ids[t.Topic] = t.TopicID
	}
	req.Topics = nil
	for _, tp := range slices.SortedFunc(maps.Keys(commit), compareTP) {
		if n := len(req.Topics); n == 0 || req.Topics[n-1].Topic != tp.Topic {
			t := kmsg.NewTxnOffsetCommitRequestTopic()
			t.Topic, t.TopicID = tp.Topic, ids[tp.Topic]
			req.Topics = append(req.Topics, t)
		}
		o := commit[tp]
		p := kmsg.NewTxnOffsetCommitRequestTopicPartition()
		p.Partition = tp.Partition
		p.Offset = o.Offset
		p.LeaderEpoch = -1
		md := string(o.Metadata)
		p.Metadata = &md
		t := &req.Topics[len(req.Topics)-1]
		t.Partitions = append(t.Partitions, p)
	}
}

// committedTo records a successful commit of offsets and moves the
// positions there, as the embedded log does: a partition whose position
// differs from its committed offset is fetched again from it.
func (s *Session) committedTo(offsets map[broker.TopicPartition]broker.Offset) {
	seek := map[string]map[int32]kgo.EpochOffset{}
	for tp, o := range offsets {
		if !s.owned[tp] {
			continue
		}
		s.committed[tp] = broker.Offset{Offset: o.Offset, Metadata: slices.Clone(o.Metadata)}
		if pos, ok := s.pos[tp]; ok && pos != o.Offset {
			addOffset(seek, tp, o.Offset)
			s.stash = slices.DeleteFunc(s.stash, func(r broker.Record) bool { return tpOf(r) == tp })
		}
	}
	if len(seek) > 0 {
		s.cl.SetOffsets(seek)
	}
	clear(s.pos)
	s.dirty = false
}

// addOffset sets the offset of tp in m, a map of franz-go offsets by topic
// and partition, with no leader epoch.
func addOffset(m map[string]map[int32]kgo.EpochOffset, tp broker.TopicPartition, offset int64) {
	if m[tp.Topic] == nil {
		m[tp.Topic] = map[int32]kgo.EpochOffset{}
	}
	m[tp.Topic][tp.Partition] = kgo.EpochOffset{Epoch: -1, Offset: offset}
}

// resetPositions forgets what was polled and sent after franz-go rewound
// to the committed offsets.
func (s *Session) resetPositions() {
	s.stash = nil
	clear(s.pos)
	s.dirty = false
	s.txnErr = nil
	s.takeProduced()
}

// abort ends the open transaction with an abort, discarding buffered
// records; GroupTransactSession rewinds to the committed offsets.
//
// An at-least-once session cannot withdraw the records it produced
// already. It drops those still buffered in the client rather than flush
// them: their work is done again from the committed offsets, so they would
// only add duplicates. Then it rewinds itself.
func (s *Session) abort(ctx context.Context) error {
	if s.gts == nil {
		err := s.cl.AbortBufferedRecords(ctx)
		return errors.Join(err, s.rewind(ctx))
	}
	_, err := s.gts.End(ctx, kgo.TryAbort)
	s.inTxn = false
	s.resetPositions()
	return err
}

// Abort discards the records sent since the last Commit and rewinds the
// session's positions to its committed offsets (where consuming started
// for a partition without any). At least once, records sent may be
// visible already; only those not produced yet are discarded.
func (s *Session) Abort(ctx context.Context) error {
	if err := s.usable(); err != nil {
		return err
	}
	if err := s.abort(ctx); err != nil {
		return s.fail("abort", err)
	}
	return nil
}

// failCommit returns the error of a failed commit. A record that failed
// to produce, its transaction aborted, leaves the session usable; any
// other failure, or a fenced producer, marks the session failed.
func (s *Session) failCommit(what string, err, abortErr error) error {
	if what == "produce" && abortErr == nil && !isFenced(err) {
		return fmt.Errorf("kafka: group %s member %s: commit: %w", s.cfg.Group, s.cfg.Member, err)
	}
	return s.fail(what, errors.Join(err, abortErr))
}

// fail marks the session failed with err: a fenced producer, or a franz-go
// error after which the transactional state is unknown.
func (s *Session) fail(what string, err error) error {
	switch {
	case isFenced(err) && s.txnID != "":
		s.failed = fmt.Errorf("kafka: group %s member %s: %s: %w: transactional id %s is used by a newer session (%w)",
			s.cfg.Group, s.cfg.Member, what, broker.ErrFenced, s.txnID, err)
	case isFenced(err):
		s.failed = fmt.Errorf("kafka: group %s member %s: %s: %w (%w)", s.cfg.Group, s.cfg.Member, what, broker.ErrFenced, err)
	default:
		s.failed = fmt.Errorf("kafka: group %s member %s: %s: %w", s.cfg.Group, s.cfg.Member, what, err)
	}
	return s.failed
}

func isFenced(err error) bool {
	return err != nil && (errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) ||
		errors.Is(err, kerr.FencedInstanceID) || errors.Is(err, kerr.InvalidProducerIDMapping))
}

// Close aborts what is uncommitted and leaves the group, so the remaining
// members get its partitions at once (one rebalance, not a session
// timeout). Closing a closed session does nothing.
func (s *Session) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.view.close()
	if s.inTxn && s.failed == nil {
		if _, err := s.gts.End(ctx, kgo.TryAbort); err != nil {
			s.logger.Debug("aborting at close failed", "error", err)
		}
	}
	// Leaving runs the revoke callbacks, which wait for AllowRebalance.
	// The client fails the records still buffered (at least once, those
	// in flight may land).
	if s.gts != nil {
		s.gts.CloseAllowingRebalance()
	} else {
		s.cl.CloseAllowingRebalance()
	}
	return nil
}

func tpOf(r broker.Record) broker.TopicPartition {
	return broker.TopicPartition{Topic: r.Topic, Partition: r.Partition}
}

func compareTP(a, b broker.TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}
