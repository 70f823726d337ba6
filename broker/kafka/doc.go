// Package kafka is the Apache Kafka backend of eddy: a broker.Log on a
// Kafka cluster through franz-go (kgo for clients, kadm for topics). It is
// the only package of eddy that imports a Kafka client.
//
//	l, err := kafka.Open(ctx, kafka.Options{Brokers: []string{"127.0.0.1:9092"}})
//	...
//	eng, err := engine.Open(topo, engine.Options{Log: l, ...})
//
// # Model
//
// A Log holds one franz-go client for administration (CreateTopics,
// DescribeTopics, DeleteTopics), non-transactional produce (idempotent,
// acks=all) and reads. Records with broker.AnyPartition go to
// murmur2(key) % partitions exactly as Kafka's Java clients place them
// (internal/murmur2), so topics written by Java producers co-partition with
// eddy's. Offsets reports the log start offset and the last stable offset
// (read_committed). Read fetches straight from the partition's leader with
// read_committed isolation and decodes with kgo.ProcessFetchPartition, which
// tells the next offset to fetch even across transaction markers, aborted
// records and compacted keys: Read never waits for an offset that holds no
// record.
//
// A Session is one consumer-group member with one transactional producer
// (exactly-once v2, KIP-447) on a kgo.GroupTransactSession (at least once,
// see below, a plain group client instead):
//
//   - The transactional id is TransactionalID(group, member), stable across
//     restarts of the member. Join initializes the producer id at once, so
//     a new session of a member fences its predecessor (its open
//     transaction is aborted, its next Commit fails with broker.ErrFenced).
//   - The group uses the cooperative protocol "eddy-copartitioned" with a
//     custom kgo.GroupBalancer that runs SessionConfig.Assignor (default
//     broker.CoPartitioned) over the members' names, so the assignment is
//     deterministic and keeps partition p of every topic on one member.
//     Every member of a group must use the same Assignor. Members of the
//     same name: the one that joined last is that member (see balancer).
//   - Consuming is read_committed with require_stable offset fetches, so a
//     new owner starts only after the previous owner's transaction ended.
//   - Send buffers records in the transaction, begun on the first Send.
//     Commit flushes, commits exactly the offsets given (a
//     kgo.PreTxnCommitFnContext hook replaces the offsets franz-go would
//     commit, its consumed positions, with the caller's, metadata included)
//     and ends the transaction. A commit with no offsets ends the
//     transaction with Client.EndTransaction instead, so it does not depend
//     on the group. Ends come from the produce promises.
//
// # At least once
//
// A session joined with broker.SessionConfig.AtLeastOnce (the engine's
// engine.AtLeastOnce) has no transactional id: it is a plain kgo group
// client with the same group options (balancer, BlockRebalanceOnPoll,
// read_committed fetches, since inputs may come from transactional
// producers) and an idempotent producer with acks=all. Poll, Send and the
// revoke handshake below are the transactional session's; the differences
// are in atleastonce.go:
//
//   - Send produces at once: a record may be visible before Commit.
//   - Commit flushes the producer, then commits the changed offsets with
//     OffsetCommit (CommitOffsetsSync, with the group's generation and
//     member id; a kgo.PreCommitFnContext hook puts each offset's metadata
//     in the request). Ends come from the produce promises, as in a
//     transaction; offsets are dense (no markers), and records are stable
//     once acknowledged, so there is nothing to wait for after Commit.
//   - A failed produce fails Commit; the records produced before stay,
//     no offset is committed, and the session rewinds to its committed
//     offsets (the log start without one) and stays usable.
//   - An offset commit refused for the generation (ILLEGAL_GENERATION,
//     REBALANCE_IN_PROGRESS) or a moving coordinator returns
//     broker.ErrAborted, rewound; the records flushed stay and their
//     input is read again: that is the at-least-once duplicate.
//     UNKNOWN_MEMBER_ID (the coordinator removed the member) returns
//     broker.ErrFenced and ends the session: franz-go would rejoin under a
//     new member id without reporting the partitions lost, and a commit in
//     that generation would be accepted over the new owner's; the engine
//     rejoins with a new session instead, as Kafka Streams closes its
//     tasks and rejoins when its member is lost.
//   - Abort drops the records still buffered in the client (flushing them
//     would only add duplicates of work the caller redoes) and rewinds;
//     records already produced stay.
//
// Nothing fences a zombie: without a transactional id, a member that lost
// its partitions (removed after a session timeout, say) writes output and
// changelog records until its next Commit, which fails with ErrFenced;
// only its offsets are refused by the coordinator (stale generation or
// unknown member). Its records are duplicates; a changelog record of it
// may also overwrite a newer value of the same key, which a later restore
// of that store would read. A partition written by a transaction still
// open (a crashed exactly-once run of the same application, until
// Options.TransactionTimeout aborts it) holds read_committed readers back
// either way: switch a running application from exactly-once to
// at-least-once after a clean stop.
//
// # Rebalances and the Poll handshake
//
// The session uses kgo.BlockRebalanceOnPoll: franz-go runs its partition
// callbacks (revoke, lost) only after AllowRebalance, and a PollRecords
// that returned records blocks them again. Poll calls AllowRebalance only
// when nothing is uncommitted: right after a Commit or an Abort, before any
// record was returned or sent. So a rebalance never interrupts the caller's
// work; it waits until the caller's next Commit (the engine's commit
// interval) and the Poll after it. The cooperative revoke then runs inside
// that Poll: franz-go's callback records the revoked partitions and
// returns, and Poll reports them as Fetch.Revoked. Because the session had
// nothing uncommitted, the partitions' work is already committed when they
// move: the caller's Commit before its next Poll has nothing of theirs to
// commit (Commit accepts their offsets only unchanged), and that next Poll
// lets franz-go rejoin, which hands them to their new owner.
//
// This differs from the embedded log, where a revoked partition stays the
// member's, committable, until the next Poll. Both give the engine the same
// guarantee: work on a partition is committed before another member
// starts it, or aborted.
//
// Newly assigned partitions are reported by franz-go's OnOffsetsFetched
// callback, which carries their committed offsets (the Fetch's Committed)
// and runs before franz-go fetches their records; Poll reports them as
// Fetch.Assigned before any of their records. A member the coordinator
// removed (it held a rebalance longer than RebalanceTimeout, or missed its
// session timeout) gets its partitions reported Revoked once franz-go calls
// OnPartitionsLost, and rejoins.
//
// # Goroutines
//
// franz-go owns every goroutine: the group management loop (joins,
// heartbeats, the revoke and lost callbacks), the offset fetch that calls
// OnOffsetsFetched, the produce loops that call the promises, and the
// fetch loops. The session's callbacks only record events under
// Session.mu and interrupt the Poll waiting in PollRecords; the promises
// record produce results under Session.pmu. Everything else runs on the
// caller's goroutine. Close closes the clients, which stops them all.
//
// # Errors
//
//   - broker.ErrFenced: the producer was fenced (PRODUCER_FENCED or
//     INVALID_PRODUCER_EPOCH: a newer session of the same member), the
//     caller committed a changed offset of a partition it does not own,
//     or, at least once, the coordinator no longer knew the member.
//     A fenced session is dead; Close it.
//   - broker.ErrAborted: GroupTransactSession aborted instead of committing
//     (the group rebalanced or the member lost its generation during the
//     transaction, for example after it was removed from the group), or,
//     at least once, the coordinator refused the offsets for the
//     generation. The session rewound to the committed offsets; the
//     caller carries on.
//   - broker.ErrUnknownTopic, broker.ErrTopicMismatch as broker.Log says.
//   - Any other error of franz-go's transaction end marks the session
//     failed (franz-go documents them as not retryable).
//
// # Tests
//
// The broker/brokertest conformance suite runs against an in-process kfake
// cluster on every `go test` (classic groups; kfake does not reproduce
// replication nor a real coordinator's prepare states and timing), with
// tests of the Java partition vectors, a zombie fenced after its records
// reached the log, and a member removed from the group for holding a
// rebalance. At least once: the suite's subtests that do not assume atomic
// commits (all but SessionCommit, AbortRewinds and ZombieFenced), and
// tests of commit with metadata, revoke, rewinds after a failed produce
// and Abort, offset commits the coordinator refuses (injected through
// kfake) and the removed member. TestRealKafkaConformance runs the suite against the real
// brokers in EDDY_KAFKA_BROKERS and is skipped without it. Not tested:
// SASL/TLS (passed through to franz-go), multi-broker leader moves during
// Read, topic deletion under a running session, and KIP-848 groups (the
// session uses the classic protocol).
package kafka
