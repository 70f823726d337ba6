// Package embedded is eddy's default log: a durable, single-process,
// transactional log of partitioned topics stored in a Pebble DB of its own.
// It implements broker.Log, so a pipeline runs with no servers, and it is
// the reference the Kafka backend is tested against.
//
//	l, err := embedded.Open(embedded.Options{Dir: "./data/log"})
//	...
//	defer l.Close()
//	err = l.CreateTopics(ctx, broker.TopicConfig{Name: "views", Partitions: 4})
//	err = l.Produce(ctx, broker.Record{Topic: "views", Partition: broker.AnyPartition, Key: k, Value: v})
//	s, err := l.NewSession(ctx, broker.SessionConfig{Group: "app", Member: "w1", Topics: []string{"views"}})
//	f, err := s.Poll(ctx, 1000) // records, or a change of assignment
//	s.Send(out)
//	ends, err := s.Commit(ctx, offsets) // outputs and offsets, atomically
//
// Beyond broker.Log, a Log has Join (NewSession returning *Session), Clean
// (retention and compaction on demand) and Await (wait for new records
// outside any group, as `eddy topics tail --follow` does).
//
// It is not a distributed system: one process owns the directory (Pebble
// locks it). Scale-out is Kafka's job.
//
// Every commit is atomic and cheap (one Pebble batch), so a session
// ignores broker.SessionConfig.AtLeastOnce: at least once, it still
// commits records and offsets together.
//
// # Key layout
//
// Every Pebble key starts with a kind byte; integers are big-endian so
// keys sort numerically. Topics appear in keys as a uint32 id assigned at
// creation (the smallest id above every existing one).
//
//	"v"                                  format version
//	'm' name                             topic config and id
//	'o' id partition group               a group's committed offset and metadata
//	'p' id partition                     partition bounds, written when retention moves the start
//	'r' id partition baseOffset          a record batch
//
// DeleteTopics removes a topic's 'o', 'p' and 'r' keys with range deletions.
//
// # Batch format
//
// A batch holds the records one commit wrote to one partition (several
// batches when they exceed Options.MaxBatchBytes). It has a 30-byte header
// (version, flags, CRC-32C of the rest, record count, last offset delta,
// base and max timestamps) followed by the records: offset delta,
// timestamp delta, key, value and headers, varint-encoded, with length -1
// for a nil key, value or header value, so nil and empty round-trip. The
// checksum is verified on every read: a corrupt batch is an error wrapping
// ErrCorrupt naming the topic, partition and base offset. Reading copies a
// batch out of Pebble once; the records' keys and values alias that copy,
// and Poll hands out one partition's records without copying them again.
// Pebble's files are not compressed unless Options.Compress: decompressing
// cost 5% of WA1's CPU. See batch.go for the exact layout.
//
// # Offsets
//
// Offsets of a partition are dense from 0 when written. The end (next
// offset, Kafka's high watermark and last stable offset alike, since only
// committed records are ever stored) is kept in memory and recovered at
// Open from the last batch of each partition. The start moves only with
// retention and is stored under 'p'. Compaction leaves gaps; readers skip
// them.
//
// # Commit path
//
// Send encodes a record at once into its partition's pending batch in the
// session's transaction (no offsets yet: a batch's offsets are relative to
// its key). Commit, under the log's mutex, checks fencing, keys each
// pending batch at the partition's current end, adds the changed group
// offsets, and commits all of it as one Pebble batch, synced unless
// Options.NoSync. Only then does it advance the partitions' ends, update
// the group's offset cache and wake waiting Polls. So a commit is all or
// nothing: Pebble's write-ahead log applies a batch atomically at
// recovery, and nothing in memory changes before the write succeeded.
//
// Pebble treats a failed write-ahead-log write as fatal. The log turns
// that into an error for the commit and then refuses every call (the
// error says so) until it is closed and reopened, which recovers the last
// durable state. A failed write or sync anywhere (caught by a wrapper of
// Pebble's file system, internal/pebbleguard), a failed flush or
// compaction in the background, and a fatal error of Pebble's own
// goroutines (a failed MANIFEST write) fail the log the same way instead
// of ending the process. One path remains fatal: a write-ahead-log write
// that fails while Pebble rotates that log (cockroachdb/pebble#2300); a
// restart then recovers as after any crash.
//
// # Group protocol
//
// Each group has an in-process coordinator. Joining (NewSession) and
// leaving (Session.Close) rerun the assignor (broker.CoPartitioned by
// default) over the sorted member names and record each member's target.
// Partitions then move cooperatively, one Poll at a time:
//
//  1. A member owning a partition outside its target gets a Fetch with
//     Revoked. It keeps owning it (and may commit its offset) until its
//     next Poll, which acknowledges the revocation and releases it.
//  2. A member whose target holds a partition nobody owns gets a Fetch
//     with Assigned and the group's Committed offsets; its position is the
//     committed offset, or the partition's start.
//  3. Otherwise Poll returns records from the member's positions, sharing
//     max between its partitions, starting with another partition each
//     time; or it waits for a commit, a Produce or a group change.
//
// So a partition has at most one owner at any time, and a new owner starts
// only after the old one committed or aborted. Commit of an offset of a
// partition the member does not own fails with broker.ErrFenced, and a
// session whose member name joined again is fenced entirely.
//
// # Retention and compaction
//
// Clean, run every Options.CleanInterval by a background goroutine and on
// demand, deletes whole expired batches at the front of partitions of
// topics with Retention (measured against Options.Now), and rewrites
// partitions of compacted topics to keep the latest record per key. See
// Log.Clean.
//
// # Goroutines and locks
//
// The log owns one goroutine, the cleaner, started by Open and waited for
// by Close. Sessions start none: Poll waits in the caller's goroutine.
//
// Log.mu guards the topics, partition bounds, groups and their members'
// ownership, and the notify channel that Polls wait on (closed and replaced
// on every change). Commits, Produce, topic changes and each partition's
// cleaning hold it while they write, so writes are serialized. Poll and
// Read hold it only to look at bounds and ownership; they read Pebble
// outside it, each through its own iterator (a consistent snapshot), and
// count themselves in Log.ops so that Close waits for them before closing
// the DB. A Session's positions and pending transaction belong to the
// goroutine using it and take no lock. There is one mutex, so there is no
// lock order to keep.
//
// # Invariants
//
//   - A partition's end only grows, and only after its batches are durable.
//   - Every record below a partition's end is in Pebble unless retention
//     or compaction removed it; nothing at or above the end is ever read.
//   - Compaction keeps every batch's key and last offset delta and the
//     latest record of each key, so the last record of a partition
//     survives and the end is recoverable from the last batch.
//   - g.owner[tp] == s exactly when tp is in s.owned.
package embedded
