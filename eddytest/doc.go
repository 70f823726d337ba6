// Package eddytest runs a topology in a test: a Driver pipes records into
// its input topics, runs the topology to completion in the test's
// goroutine, and reads its output topics and its stores. It runs the real
// engine on the real embedded log, in memory, with as many partitions per
// topic as the test asks for, and it can crash the engine and restart it
// from what a crash would leave on disk, to test recovery.
//
// A test:
//
//	d := eddytest.New(t, wordcount.Topology(), eddytest.Options{Partitions: 4})
//	lines := eddytest.Input(d, "lines", serde.String(), serde.String())
//	counts := eddytest.Output(d, "word-counts", serde.String(), serde.Int64())
//	lines.Pipe("l1", "to be or not to be", 1000)
//	got := eddytest.Latest(counts.ReadRecords()) // map[be:2 not:1 or:1 to:2]
//
// By default each Pipe is processed and committed before it returns
// (Options.ManualCommit turns that off). Runs are deterministic: the same
// test processes the same records in the same order every time, and the
// wall clock (which only decides when commits checkpoint the stores) is
// the driver's, moved by AdvanceWallClock. eddy has no wall-clock
// punctuation: windows close on event time, as the records' timestamps
// move stream-time.
//
// A Driver's methods fail the test (t.Fatal) on errors, and are not safe
// for concurrent use.
package eddytest
