// Package benchmarks holds eddy's benchmark workloads. WA1 is the
// windowed-aggregation workload: Zipf-distributed keys, 10 µs apart in
// event time, 10% of events up to 2 s out of order, counted per key in
// one-minute tumbling windows with 5 s grace, emitted on window close.
//
// WA1Loop is the ceiling: a hand-written single-goroutine loop doing WA1 in
// a Go map over events already in memory, with no durability.
// -wa1.results FILE makes BenchmarkWA1 and BenchmarkWA1Loop write their
// final results (WriteWA1Results) to FILE.eddy and FILE.loop, which must be
// byte-identical.
//
// ResumeAfterKill measures recovery: a child process counts records per
// key (ResumeTopology) into a state of 1k, 100k or 1M keys on the
// embedded log on disk, then keeps processing a trickle of new records;
// the benchmark kills it with SIGKILL at a random moment (the seed is
// printed) and restarts it on the same directory. It reports the time
// from the restart's exec to the first commit of a newly processed record
// (resume-ms; the child's engine.Open and Run-to-first-commit apart), the
// changelog records replayed at start, which must be no more than the
// uncommitted tail, and the state and log sizes on disk. Each iteration
// kills the child the previous one resumed, so -benchtime 10x measures
// ten resumes of one state, built once and untimed. At the end every key
// gets one more record and its final count is checked against the input.
// -resume.cpuprofile, -resume.trace and -resume.log write each resumed
// child's CPU profile, execution trace or debug log to a directory.
//
// Run is the harness behind `eddy bench wa1` (and BenchmarkWA1Harness):
// it runs every system under test as a child process and measures it
// alike (the whole process's CPU time over the timed part, from
// /proc/<pid>/stat or, finer, the child's getrusage; peak RSS from the
// rusage after exit): eddy's worker (the eddy
// binary, RunWorker), the loop, and on Kafka the peers of PEERS.md (goka,
// Kafka Streams) on one preloaded input. With a rate the input is
// appended live and the end-to-end latency of every output is computed
// from the input record that caused it. Every system's results are
// compared with the loop's. WA1VariantTopology adds hopping, sliding and
// session windows and emit on update; WriteChart draws results as SVG.
//
// Run them with `make bench`, or:
//
//	go test -run '^$' -bench WA1 -benchtime 1x ./benchmarks/ -wa1.events 1000000
//	go test -run '^$' -bench ResumeAfterKill -benchtime 5x ./benchmarks/ -resume.keys 1M
package benchmarks
