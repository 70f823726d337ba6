// Package engine runs topologies: it cuts them into tasks, one per
// sub-topology and partition, runs the tasks on worker goroutines, and
// commits their work exactly once.
//
//	eng, err := engine.Open(b, engine.Options{StateDir: "./data"})
//	if err != nil { ... }
//	defer eng.Close()
//	err = eng.Run(ctx) // until ctx ends or a task fails
//
// By default the engine opens the embedded log in StateDir; Options.Log
// selects another broker.Log. State lives in one Pebble DB per engine.
//
// # Goroutines
//
// Run starts one goroutine per worker and waits for all of them. A worker
// owns a broker.Session (one consumer-group member with its transactional
// producer) and the tasks of the partitions assigned to it; nothing else
// touches them. Workers share the read-only resolved topology, the log and
// the state DB (both safe for concurrent use) and the engine's progress
// tracker for bounded runs (guarded by its mutex).
//
// # Commit protocol
//
// Every CommitInterval a worker, for each of its tasks, flushes the
// stores' caches (changelog and downstream records go into the open
// transaction; state writes are staged in the task's Pebble batch), then
// commits the transaction with the consumed offsets, and only then applies
// each task's staged batch together with its changelog end offsets. If
// the commit fails, the staged batches are dropped and the worker stops
// with the error: the state DB still matches the last commit, and a
// restart restores the changelog tail after it.
package engine
