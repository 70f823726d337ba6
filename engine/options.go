package engine

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/state"
)

// Options configures an Engine. The zero value runs on the embedded log
// in ./eddy-data.
type Options struct {
	// StateDir holds the state DB (StateDir/state) and, unless Log is
	// set, the embedded log (StateDir/log). Default "eddy-data".
	StateDir string
	// InMemory keeps state and the embedded log in memory: nothing
	// survives Close. For tests.
	InMemory bool
	// Log is the log to run on. nil: Kafka if Kafka is set, else the
	// embedded log in StateDir/log, opened and closed by the engine.
	Log broker.Log
	// Kafka switches the engine to Apache Kafka: it opens (and closes) a
	// kafka.Log with these options (brokers, and SASL/TLS through
	// ClientOptions). Instances sharing an application id then share
	// its partitions through a consumer group.
	Kafka *kafka.Options
	// InstanceID names this instance in its application's consumer group:
	// worker i joins as "<app>-<InstanceID>-<i>", which is also its
	// transactional identity (exactly-once on Kafka: a restart with the
	// same InstanceID fences the previous run's transactions at once). It
	// must be unique among the instances running at once. Default: a
	// random id per Engine.
	InstanceID string
	// Workers is the number of worker goroutines, each a consumer-group
	// member with its own transaction. Default: GOMAXPROCS.
	Workers int
	// Guarantee is the processing guarantee: ExactlyOnce (the default) or
	// AtLeastOnce, Kafka Streams' processing.guarantee.
	Guarantee Guarantee
	// CommitInterval is how often a worker commits. Default 100ms.
	CommitInterval time.Duration
	// CheckpointInterval is how often a worker writes its tasks' committed
	// state to the state DB. In between, what commits changed stays in
	// the stores' caches (and is in the changelog, committed): a window
	// or key updated in every commit interval is written to Pebble once
	// per checkpoint rather than once per commit. After a crash or an
	// aborted transaction, a task restores the changelog records since
	// its last checkpoint. A worker also checkpoints before it closes a
	// task, when it stops, and sooner when a task's staged writes (of
	// uncached stores and cache evictions, held in memory until the
	// checkpoint) pass 16 MiB. Default 1s; negative: at every commit.
	CheckpointInterval time.Duration
	// CacheBytes bounds the write-back cache of each store partition.
	// Default 8 MiB; negative disables caching (every update is
	// forwarded and changelogged). With MemoryBytes, the caches of all
	// store partitions share the budget's write-back part, and CacheBytes
	// bounds each one within it: default (0) that whole part, so one busy
	// store partition may use what idle ones do not; a CacheBytes above
	// that part is rejected.
	CacheBytes int
	// MemoryBytes bounds the memory of all of the instance's stores
	// together: the state DB's Pebble block cache and memtables, the
	// embedded log's (when the engine opens it) and its compactions' key
	// map, the write-back caches of every store partition, and the writes
	// they evict until the next checkpoint (a worker checkpoints early
	// when its share of those passes its bound). state.SplitMemory tells
	// the split: with the embedded log, 45% for the state DB's Pebble and
	// 20% for the log's, a fifth of each left to C's malloc, which Pebble
	// allocates with; 20% for the write-back caches, 10% for the evicted
	// writes and 5% for the compaction map, each of the last three half
	// held and half left for the garbage collector (GOGC=100). The
	// process's peak RSS stays within MemoryBytes plus an overhead that
	// does not grow with the state: the binary and the Go runtime, and per
	// worker the records of a poll (MaxPollRecords) and of its open
	// transaction (a worker commits early once it sent 8 MiB into one). With MemoryBytes, the engine returns the memory glibc's
	// malloc keeps after Pebble freed it to the OS every second (Linux
	// with cgo). At least 32 MiB. Default 0: no budget, as before:
	// Pebble's defaults (state DB 64 MiB block cache and 32 MiB memtables,
	// embedded log 32 MiB and 64 MiB) and CacheBytes per store partition,
	// without a bound on their sum.
	MemoryBytes int64
	// MaxPollRecords bounds the records a worker takes per poll.
	// Default 10000.
	MaxPollRecords int
	// MaxTaskIdle is how long a task with several input partitions (a
	// join, or a stream and a table) waits for an input that has nothing
	// fetched, before it processes its other inputs out of timestamp
	// order. It waits only while the log holds records of that input past
	// its position, like Kafka Streams' max.task.idle.ms = 0. Default 0:
	// at most one CommitInterval. Negative: never wait; records are still
	// taken in timestamp order among those fetched.
	MaxTaskIdle time.Duration
	// Bounded treats the input as finite: the records in the source
	// topics when Run starts. When a task has consumed all of its input,
	// its windows are closed as if stream-time had reached the end of
	// time (emitting what they hold), and Run returns nil once every task
	// has finished and committed. Like Flink's end-of-input watermark.
	Bounded bool
	// Logger receives the engine's logs. Default: a null logger.
	Logger hclog.Logger
	// HTTPAddr is the address of the optional HTTP server, e.g. ":8080";
	// empty: no server. Run serves it from its start until it returns:
	// GET /metrics (Prometheus), /healthz, /readyz, /topology (text, or
	// ?format=mermaid), and / (an index of the endpoints, as JSON). With
	// port 0, Engine.HTTPAddr tells the port chosen.
	HTTPAddr string
	// AdvertisedAddr is the address (host:port) at which other instances
	// and clients reach this instance's HTTP server. The instance
	// advertises it to its application's group, and Engine.Instances and
	// Engine.InstanceFor tell every instance where each partition is
	// served. Default "": with HTTPAddr set, its host (if it names one:
	// not "", 0.0.0.0 or ::) with the port the server listens on; else
	// nothing, and the instance's partitions are not listed.
	AdvertisedAddr string
	// FS is the file system of the state DB and of the embedded log the
	// engine opens. nil: the OS's (or memory, with InMemory). Tests set an
	// error-injecting one to check how disk faults are handled.
	FS vfs.FS
	// OnDecodeError tells what to do with an input record whose key or
	// value does not decode, from any source: stream, table or
	// repartition topic. Default DecodeFail.
	OnDecodeError DecodeErrors
	// DeadLetterTopic receives the records that do not decode, with
	// DecodeDeadLetter (and may be set only then); it must not be a topic
	// of the topology. Default "<app>-dead-letters". Run creates it if
	// missing, with 1 partition; create it beforehand to have more. A
	// dead letter goes to partition (input partition mod the topic's
	// partition count), so the bad records of one input partition stay
	// in their order.
	DeadLetterTopic string
}

// DecodeErrors tells what the engine does with an input record whose key
// or value does not decode (a source returned an operators.DecodeError),
// like Kafka Streams' deserialization exception handler. A source decodes
// a record before it forwards anything, so a skipped or dead-lettered
// record has no other effect; its offset is consumed and committed like
// any other's.
type DecodeErrors int

const (
	// DecodeFail fails the task: Run returns the DecodeError, naming the
	// record's topic, partition, offset and field. Nothing past the last
	// commit is lost or committed, and a restart fails at the same record.
	DecodeFail DecodeErrors = iota
	// DecodeSkip drops the record with a warning log line naming its
	// topic, partition, offset and field and the error. Skipped records
	// are counted in Metrics.SkippedRecords.
	DecodeSkip
	// DecodeDeadLetter writes the record's raw key, value, timestamp and
	// headers to Options.DeadLetterTopic, in the same transaction as the
	// task's other output: a dead letter is committed exactly once, with
	// the consumed offset of its record. To the original headers it adds
	//
	//	eddy.error        the serde's error message
	//	eddy.error.field  "key" or "value"
	//	eddy.topic        the record's topic
	//	eddy.partition    its partition, in decimal
	//	eddy.offset       its offset, in decimal
	//	eddy.task         the task that read it, such as "0_3"
	//
	// Dead letters are counted in Metrics.DeadLetterRecords.
	DecodeDeadLetter
)

// String returns the name of the constant, as in "DecodeSkip".
func (d DecodeErrors) String() string {
	switch d {
	case DecodeFail:
		return "DecodeFail"
	case DecodeSkip:
		return "DecodeSkip"
	case DecodeDeadLetter:
		return "DecodeDeadLetter"
	}
	return fmt.Sprintf("DecodeErrors(%d)", int(d))
}

// Guarantee is a processing guarantee: what a crash, a lost member or a
// failed commit may do to the output and the state.
type Guarantee int

const (
	// ExactlyOnce commits each worker's output, changelog records and
	// consumed offsets atomically (on Kafka, in one transaction, with
	// read_committed consumers): whatever fails, every input record
	// affects the committed output and state exactly once.
	ExactlyOnce Guarantee = iota
	// AtLeastOnce commits output and changelog records first, then the
	// consumed offsets, as Kafka Streams' at_least_once does: after a
	// crash or a failed commit, the input since the last commit is
	// processed again, so output records may repeat and aggregates
	// over-count, but nothing is lost. On Kafka it drops transactions:
	// an idempotent producer and plain offset commits, cheaper per
	// commit, and output visible as soon as it is written rather than at
	// the commit. A member removed from its group is not fenced (there
	// is no transactional id); see package broker/kafka. On the embedded
	// log it changes nothing: its commits are atomic and cheap anyway.
	AtLeastOnce
)

// String returns the name of the constant, as in "AtLeastOnce".
func (g Guarantee) String() string {
	switch g {
	case ExactlyOnce:
		return "ExactlyOnce"
	case AtLeastOnce:
		return "AtLeastOnce"
	}
	return fmt.Sprintf("Guarantee(%d)", int(g))
}

const defaultCacheBytes = 8 << 20

// EnsureDefaults fills in unset fields.
func (o *Options) EnsureDefaults() {
	if o.StateDir == "" {
		o.StateDir = "eddy-data"
	}
	if o.InstanceID == "" {
		o.InstanceID = fmt.Sprintf("%08x", rand.Uint32())
	}
	if o.Workers == 0 {
		o.Workers = runtime.GOMAXPROCS(0)
	}
	if o.CommitInterval == 0 {
		o.CommitInterval = 100 * time.Millisecond
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = time.Second
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = defaultCacheBytes
		if m, err := o.memorySplit(); err == nil && m.WriteCacheBytes > 0 {
			o.CacheBytes = int(m.WriteCacheBytes)
		}
	}
	if o.MaxPollRecords == 0 {
		o.MaxPollRecords = 10000
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
}

// Validate reports unusable settings.
func (o *Options) Validate() error {
	switch {
	case o.AdvertisedAddr != "" && !validEndpoint(o.AdvertisedAddr):
		return fmt.Errorf("engine: AdvertisedAddr %q is not host:port with a host and a port", o.AdvertisedAddr)
	case o.Workers < 0:
		return fmt.Errorf("engine: Workers must not be negative, got %d", o.Workers)
	case o.CommitInterval < 0:
		return fmt.Errorf("engine: CommitInterval must not be negative, got %s", o.CommitInterval)
	case o.Log != nil && o.Kafka != nil:
		return fmt.Errorf("engine: set Log or Kafka, not both")
	case o.MaxPollRecords < 0:
		return fmt.Errorf("engine: MaxPollRecords must not be negative, got %d", o.MaxPollRecords)
	case o.Guarantee < ExactlyOnce || o.Guarantee > AtLeastOnce:
		return fmt.Errorf("engine: unknown Guarantee %s", o.Guarantee)
	case o.OnDecodeError < DecodeFail || o.OnDecodeError > DecodeDeadLetter:
		return fmt.Errorf("engine: unknown OnDecodeError %s", o.OnDecodeError)
	case o.DeadLetterTopic != "" && o.OnDecodeError != DecodeDeadLetter:
		return fmt.Errorf("engine: DeadLetterTopic %q is set but OnDecodeError is %s, not DecodeDeadLetter", o.DeadLetterTopic, o.OnDecodeError)
	}
	if o.MemoryBytes != 0 {
		m, err := o.memorySplit()
		if err != nil {
			return fmt.Errorf("engine: MemoryBytes: %w", err)
		}
		if int64(o.CacheBytes) > m.WriteCacheBytes {
			return fmt.Errorf("engine: CacheBytes %d exceeds the write-back caches' part of MemoryBytes %d (%d): lower CacheBytes, or leave it 0 to share that part", o.CacheBytes, o.MemoryBytes, m.WriteCacheBytes)
		}
	}
	return nil
}

// memorySplit divides MemoryBytes among the stores (state.SplitMemory):
// the zero split without a budget.
func (o *Options) memorySplit() (state.MemorySplit, error) {
	return state.SplitMemory(o.MemoryBytes, o.Log == nil && o.Kafka == nil, o.CacheBytes >= 0)
}
