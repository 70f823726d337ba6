// Package benchmarks holds eddy's benchmark workloads. WA1 is the
// windowed-aggregation workload: Zipf-distributed keys, 10 µs apart in
// event time, 10% of events up to 2 s out of order, counted per key in
// one-minute tumbling windows with 5 s grace, emitted on window close.
//
// Run them with `make bench`, or:
//
//	go test -run '^$' -bench WA1 -benchtime 1x ./benchmarks/ -wa1.events 1000000
package benchmarks
