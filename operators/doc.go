// Package operators holds eddy's physical operators: deterministic,
// single-threaded state machines. A record (and with it stream-time) goes
// in; records for downstream operators or topics and state writes come out.
// Operators start no goroutine, read no clock and do no I/O but through the
// state stores the engine hands them.
//
// Operators are typed with generics and call their children directly, so a
// record crosses a chain of map, filter and aggregate with no boxing: only
// sources decode bytes and only sinks and stores encode them.
//
// The main types:
//   - Processor[K, V]: receives typed Records.
//   - Context: one per task; the origin of the record being processed, the
//     output sink, the logger.
//   - Graph: a sub-topology instantiated for one task, fed raw records.
//
// The topology package builds Graphs; the engine feeds them.
package operators
