// Package broker is the log interface the engine consumes: topics of
// partitioned records, consumer-group sessions, and transactions that make
// produced records and consumed offsets visible together or not at all.
//
// It is a leaf: it imports nothing of eddy, so the embedded log
// (broker/embedded), the Kafka backend (broker/kafka) and the engine all
// import it without cycles. It holds interfaces and plain data only.
//
// The shape follows Kafka's exactly-once model (KIP-447 / EOS v2) so that
// both backends fit it without adapters that lie:
//
//   - A Session is one member of a consumer group with one transactional
//     producer. The engine runs one per worker.
//   - Poll hands back records of the member's partitions, or a change of
//     assignment. A revoke must be answered by a Commit or Abort before
//     the next Poll: that next Poll is the acknowledgement that lets the
//     partitions move to another member.
//   - Send buffers records in the open transaction; Commit makes them and
//     the given consumer offsets visible atomically, and reports where
//     each written partition now ends so that state stores can record the
//     changelog offset they reflect.
//   - Readers of the log see committed records only.
package broker
