package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddyflow/eddy/broker"
)

// The at-least-once session (broker.SessionConfig.AtLeastOnce): the
// Session's Join, Poll, Send and revoke handshake are the transactional
// session's, on a plain group client with an idempotent producer; what
// differs is here.

// commitAtLeastOnce is Commit of an at-least-once session. It flushes the
// records sent, so they are durable (acks=all) and visible to every
// reader, read_committed or not; then it commits commit, the offsets that
// changed, to the group with OffsetCommit: synchronously, with the
// member's generation and member id, and each offset's metadata. It
// returns the ends of the partitions written, like the transactional
// Commit.
//
// The two steps are not atomic. A produce that failed fails the commit
// with an error that leaves the session usable and rewound to the
// committed offsets, as Abort does; records produced before stay. An
// offset commit that the coordinator refused because the member's
// generation ended (a rebalance, the member removed from the group) or
// moved returns an error wrapping broker.ErrAborted, with the session
// rewound to the committed offsets: the records flushed stay, and their
// input is read again. An offset commit refused because the coordinator
// removed the member returns an error wrapping broker.ErrFenced and the
// session is dead (see removed). Any other failure of the offset commit
// marks the session failed.
//
// Without a transactional id nothing fences a zombie: a member that
// lost its partitions may still produce until it learns so. The group
// coordinator refuses its offsets (its generation or member id is gone),
// so the new owner starts from offsets committed by the partitions'
// owners, and the zombie's records are duplicates at worst.
func (s *Session) commitAtLeastOnce(ctx context.Context, offsets, commit map[broker.TopicPartition]broker.Offset) (map[broker.TopicPartition]int64, error) {
	if err := s.cl.Flush(ctx); err != nil {
		// ctx ended: the records may still go out; Abort drops those
		// still buffered.
		return nil, fmt.Errorf("kafka: group %s member %s: commit: flush: %w", s.cfg.Group, s.cfg.Member, err)
	}
	ends, perr := s.takeProduced()
	if perr != nil {
		return nil, s.failCommit("produce", perr, s.rewind(ctx))
	}
	if len(commit) > 0 {
		if err := s.commitOffsets(ctx, commit); err != nil {
			if removed(err) {
				s.failed = fmt.Errorf("kafka: group %s member %s: commit: %w: the group coordinator removed the member (%w), so its partitions may be another member's already; the records sent stay",
					s.cfg.Group, s.cfg.Member, broker.ErrFenced, err)
				return nil, s.failed
			}
			rerr := s.rewind(ctx)
			if rerr == nil && rebalanced(err) {
				return nil, fmt.Errorf("kafka: group %s member %s: commit: %w: the group coordinator refused the offsets (%w); the records sent stay, and the session rewound to the committed offsets",
					s.cfg.Group, s.cfg.Member, broker.ErrAborted, err)
			}
			return nil, s.failCommit("commit offsets", err, rerr)
		}
	}
	s.committedTo(offsets)
	return ends, nil
}

// commitOffsets commits the offsets of commit to the group with their
// metadata, and returns the error of the request or of any partition.
// franz-go's CommitOffsetsSync sends the member's generation and id, and
// waits for a join or sync under way to finish first; the
// PreCommitFnContext hook replaces the metadata it would send (its member
// id) with the caller's.
func (s *Session) commitOffsets(ctx context.Context, commit map[broker.TopicPartition]broker.Offset) error {
	uncommitted := map[string]map[int32]kgo.EpochOffset{}
	for tp, o := range commit {
		addOffset(uncommitted, tp, o.Offset)
	}
	cctx := kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			t := &req.Topics[i]
			for j := range t.Partitions {
				p := &t.Partitions[j]
				md := string(commit[broker.TopicPartition{Topic: t.Topic, Partition: p.Partition}].Metadata)
				p.Metadata = &md
			}
		}
		return nil
	})
	var errs []error
	s.cl.CommitOffsetsSync(cctx, uncommitted, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			errs = append(errs, err)
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil {
					errs = append(errs, fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err))
				}
			}
		}
	})
	return errors.Join(errs...)
}

// rebalanced reports whether an offset commit failed because the member's
// group generation ended or its coordinator moved (errors on which
// franz-go's GroupTransactSession aborts too): the offsets were not
// committed, and the member still holds its partitions, since a
// cooperative rebalance moves them only after its revoke, which waits for
// the session's next Poll.
func rebalanced(err error) bool {
	for _, e := range []error{
		kerr.IllegalGeneration, kerr.RebalanceInProgress, kerr.StaleMemberEpoch,
		kerr.NotCoordinator, kerr.CoordinatorNotAvailable, kerr.CoordinatorLoadInProgress,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// removed reports whether an offset commit failed because the group no
// longer knows the member: the coordinator removed it (it held a
// rebalance past the rebalance timeout, or missed its session timeout)
// and may have given its partitions to others. franz-go then rejoins under
// a new member id without reporting the partitions lost, and a commit in
// its new generation would be accepted, over the new owner's: so the
// session is done (broker.ErrFenced), as Kafka Streams closes its tasks
// and rejoins when its member is lost.
func removed(err error) bool {
	return errors.Is(err, kerr.UnknownMemberID) || errors.Is(err, kerr.GroupIDNotFound)
}

// rewind moves the positions of the session's partitions back to their
// committed offsets, or to the log start for a partition without one
// (where consuming begins: franz-go's default reset offset), and forgets
// what was polled and sent since. A GroupTransactSession rewinds by
// itself when it aborts; a plain group client needs this.
func (s *Session) rewind(ctx context.Context) error {
	s.resetPositions()
	seek := map[string]map[int32]kgo.EpochOffset{}
	var fromStart []broker.TopicPartition
	for tp := range s.owned {
		if o, ok := s.committed[tp]; ok {
			addOffset(seek, tp, o.Offset)
		} else {
			fromStart = append(fromStart, tp)
		}
	}
	if len(fromStart) > 0 {
		var topics []string
		for _, tp := range fromStart {
			if !slices.Contains(topics, tp.Topic) {
				topics = append(topics, tp.Topic)
			}
		}
		starts, err := s.l.adm.ListStartOffsets(ctx, topics...)
		if err != nil {
			return fmt.Errorf("rewind: log start offsets of %v: %w", topics, err)
		}
		for _, tp := range fromStart {
			start, err := lookupOffset(starts, tp)
			if err != nil {
				return fmt.Errorf("rewind: %w", err)
			}
			addOffset(seek, tp, start)
		}
	}
	s.cl.SetOffsets(seek)
	return nil
}
