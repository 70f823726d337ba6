package broker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Header is a record header: a key and an opaque value, as in Kafka.
type Header struct {
	Key   string
	Value []byte
}

// AnyPartition in Record.Partition asks Produce to choose the partition:
// murmur2 of the key as Kafka's Java clients do, or round robin for a nil key.
const AnyPartition int32 = -1

// Record is one record of a topic partition.
type Record struct {
	Topic     string
	Partition int32
	// Offset is set by the log on records it returns and ignored on records sent.
	Offset int64
	// Timestamp is the event time in milliseconds since the Unix epoch.
	Timestamp int64
	Key       []byte
	// Value nil is a tombstone: on a compacted topic it deletes Key.
	Value   []byte
	Headers []Header
}

// TopicPartition names one partition of a topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

func (tp TopicPartition) String() string { return fmt.Sprintf("%s/%d", tp.Topic, tp.Partition) }

// TopicConfig describes a topic.
type TopicConfig struct {
	Name       string
	Partitions int32
	// Compacted topics keep at least the latest record of every key
	// (cleanup.policy=compact); changelogs are compacted.
	Compacted bool
	// Retention is how long records are kept before they may be deleted;
	// zero keeps them forever. On a compacted topic it applies to nothing.
	Retention time.Duration
}

// Offset is a committed consumer position: the next offset to read, with
// opaque metadata stored beside it (Kafka's OffsetCommit metadata). The
// engine keeps a task's stream-time there.
type Offset struct {
	Offset   int64
	Metadata []byte
}

// PartitionOffsets are the bounds of a partition's committed records:
// Start is the first offset still in the log, End the offset the next
// committed record will get (Kafka's last stable offset).
type PartitionOffsets struct {
	Start, End int64
}

// Assignor decides which member of a group owns which partitions. It gets
// the members (sorted) and the partition count of every subscribed topic,
// and returns each member's partitions; every partition must go to exactly
// one member. It must be deterministic.
type Assignor func(members []string, partitions map[string]int32) map[string][]TopicPartition

// SessionConfig configures a group member.
type SessionConfig struct {
	// Group is the consumer group, the application id.
	Group string
	// Member names this member, unique in the group; it is also the
	// transactional identity used to fence a zombie with the same name
	// (unless AtLeastOnce).
	Member string
	// Topics are the topics to consume.
	Topics []string
	// Assignor assigns partitions; nil means CoPartitioned.
	Assignor Assignor
	// AtLeastOnce lets the member commit its records and its offsets
	// apart rather than atomically (Kafka: without a transaction). After
	// a crash or a failed Commit, records sent since the last successful
	// Commit may be visible, and the input they came from is read again:
	// duplicates, never losses. A failed Commit still rewinds the session
	// to the committed offsets. Backends that commit atomically anyway,
	// such as the embedded log, ignore it.
	AtLeastOnce bool
	// Endpoint is the address (host:port) on which the member's instance
	// serves queries of its partitions, "" if none. Members advertise it
	// to their group (on Kafka, in their join metadata), and every member
	// learns the group's endpoints: see Session.Endpoints. Members of one
	// instance share its endpoint.
	Endpoint string
}

// Endpoints is a group member's view of where its group's partitions are
// served: for each endpoint its members advertised (SessionConfig.Endpoint),
// the partitions the group's assignment gives them. The assignment is the
// Assignor's plan: a partition still being handed over (revoked from one
// member, not yet assigned to the next) is listed under the member it
// goes to. Partitions of members without an endpoint are not listed; an
// endpoint whose members have no partitions is listed with none.
type Endpoints struct {
	// Generation orders the views of one group: a view with a higher
	// generation is newer. 0 is no view (no assignment seen yet, or the
	// session is closed).
	Generation int64
	// Partitions maps each endpoint to its partitions, sorted by topic
	// and partition.
	Partitions map[string][]TopicPartition
}

// Fetch is what Poll returns: records, or a change of assignment, never both.
type Fetch struct {
	// Revoked partitions are no longer this member's. Before calling Poll
	// again the caller must Commit (or Abort) whatever it did for them.
	Revoked []TopicPartition
	// Assigned partitions are now this member's. Committed holds their
	// committed positions (absent: nothing committed yet, start at the
	// log start); Poll returns their records from there on.
	Assigned  []TopicPartition
	Committed map[TopicPartition]Offset
	// Records of assigned partitions, in offset order within a partition.
	// They stay valid until the caller no longer references them.
	Records []Record
}

// Empty reports whether f carries nothing.
func (f *Fetch) Empty() bool {
	return len(f.Revoked) == 0 && len(f.Assigned) == 0 && len(f.Records) == 0
}

// Session is one consumer-group member with one transactional producer.
// A Session is used by one goroutine at a time.
type Session interface {
	// Poll returns at most max records of the member's partitions after
	// their current positions, or a change of assignment. It waits until
	// there is something to return or ctx is done; on ctx done it returns
	// an empty Fetch and ctx's error.
	Poll(ctx context.Context, max int) (Fetch, error)
	// Send adds r to the open transaction. r.Partition must be set
	// (0 <= Partition < the topic's partition count). Errors surface at
	// Commit. Send copies what it keeps of r: the caller may reuse r's
	// key, value and header buffers once it returns.
	Send(r Record)
	// Commit makes the records sent since the last Commit or Abort and the
	// given consumer offsets visible together, or makes nothing visible and
	// returns an error. On success it returns, for every partition it
	// wrote, the offset after the last record written there.
	// ErrFenced means this member lost its partitions to another one: the
	// caller must drop its work and Close. ErrAborted means nothing was
	// committed and the session rewound: the caller drops its work and
	// continues from the committed offsets. With SessionConfig.AtLeastOnce
	// the records may be visible without the offsets (after an error, or
	// even before Commit), never the offsets without the records.
	Commit(ctx context.Context, offsets map[TopicPartition]Offset) (map[TopicPartition]int64, error)
	// Abort discards the records sent since the last Commit (at least
	// once: those not written yet) and rewinds the member's positions to
	// its committed offsets.
	Abort(ctx context.Context) error
	// Close leaves the group; uncommitted records are discarded.
	Close(ctx context.Context) error
	// Endpoints returns the group's endpoints as of the last assignment
	// the member received (a copy). Unlike the other methods it is safe
	// to call from any goroutine, at any time: a query router reads it
	// while the session's owner polls. After Close it returns the zero
	// Endpoints.
	Endpoints() Endpoints
}

// Log is a log backend: the embedded log or Kafka. Safe for concurrent use.
type Log interface {
	// CreateTopics creates the topics that do not exist yet. A topic that
	// exists with another partition count is an error wrapping
	// ErrTopicMismatch; other differences are left alone.
	CreateTopics(ctx context.Context, topics ...TopicConfig) error
	// DescribeTopics returns the configs of the named topics that exist;
	// with no names, of every topic.
	DescribeTopics(ctx context.Context, names ...string) (map[string]TopicConfig, error)
	// DeleteTopics deletes topics and their records; missing ones are skipped.
	DeleteTopics(ctx context.Context, names ...string) error
	// Produce appends records outside any consumer group, atomically where
	// the backend can. Partition AnyPartition picks one by key.
	Produce(ctx context.Context, records ...Record) error
	// Offsets returns the bounds of a partition's committed records.
	Offsets(ctx context.Context, tp TopicPartition) (PartitionOffsets, error)
	// Read calls fn on the committed records of tp with from <= offset < to,
	// in order, stopping at fn's first error, which it returns.
	Read(ctx context.Context, tp TopicPartition, from, to int64, fn func(Record) error) error
	// NewSession joins cfg.Group as cfg.Member.
	NewSession(ctx context.Context, cfg SessionConfig) (Session, error)
	// DeleteGroup deletes a consumer group and its committed offsets, so
	// that members joining it later start every partition at its log
	// start: what a reset of an application does. While the group has
	// live members it deletes nothing and returns an error wrapping
	// ErrGroupActive that tells how many. A group that does not exist, or
	// has nothing committed, is deleted without error.
	DeleteGroup(ctx context.Context, group string) error
	// Close releases the log; sessions must be closed first.
	Close() error
}

var (
	// ErrUnknownTopic is returned for a topic that does not exist.
	ErrUnknownTopic = errors.New("unknown topic")
	// ErrTopicMismatch is returned when a topic exists with another partition count.
	ErrTopicMismatch = errors.New("topic exists with another partition count")
	// ErrFenced is returned by Commit when another member took over.
	ErrFenced = errors.New("fenced: another member owns the partitions")
	// ErrAborted is returned by Commit when the backend aborted the
	// transaction instead (Kafka: a rebalance or a lost group generation
	// during the transaction). Nothing was made visible and the session
	// has rewound to the committed offsets, like Abort; the caller drops
	// its uncommitted work and carries on.
	ErrAborted = errors.New("transaction aborted")
	// ErrClosed is returned by a closed log or session.
	ErrClosed = errors.New("closed")
	// ErrGroupActive is returned by DeleteGroup while the group has live
	// members: instances of the application are running.
	ErrGroupActive = errors.New("consumer group has live members")
)

// CoPartitioned is the default Assignor: partition p of every topic goes to
// the same member, so co-partitioned inputs stay together (a task of the
// engine reads partition p of all its input topics). Partition numbers are
// dealt to members round robin.
func CoPartitioned(members []string, partitions map[string]int32) map[string][]TopicPartition {
	out := make(map[string][]TopicPartition, len(members))
	if len(members) == 0 {
		return out
	}
	topics := make([]string, 0, len(partitions))
	var maxP int32
	for t, n := range partitions {
		topics = append(topics, t)
		maxP = max(maxP, n)
	}
	slices.Sort(topics)
	for p := int32(0); p < maxP; p++ {
		m := members[int(p)%len(members)]
		for _, t := range topics {
			if p < partitions[t] {
				out[m] = append(out[m], TopicPartition{t, p})
			}
		}
	}
	return out
}
