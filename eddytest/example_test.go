package eddytest_test

import (
	"fmt"
	"strings"
	"time"

	"github.com/eddyflow/eddy/eddytest"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// A word count, tested: pipe lines in, read the counts out of the output
// topic and out of the store. In a test, pass the test's t to New instead
// of eddytest.Panicking().
func Example() {
	b := topology.New("wordcount")
	lines := topology.StreamFrom(b, "lines", serde.String(), serde.String())
	words := topology.FlatMapValues(lines, func(_ string, l string) []string { return strings.Fields(l) }).WithValueSerde(serde.String())
	counts := topology.GroupBy(words, func(_ string, w string) string { return w }, serde.String()).Count(topology.Named("counts"))
	counts.To("word-counts")

	d := eddytest.New(eddytest.Panicking(), b, eddytest.Options{Partitions: 4})
	defer d.Close()
	in := eddytest.Input(d, "lines", serde.String(), serde.String())
	out := eddytest.Output(d, "word-counts", serde.String(), serde.Int64())

	in.Pipe("l1", "to be or not to be", 1000)
	fmt.Println(eddytest.Latest(out.ReadRecords()))
	row, _ := eddytest.Lookup(d, counts, "to")
	fmt.Println("to:", row.Value, "at", row.Time)
	// Output:
	// map[be:2 not:1 or:1 to:2]
	// to: 2 at 1000
}

// Crash the engine between commits and restart it: what was processed
// but not committed is lost and processed again, exactly once.
func ExampleDriver_Crash() {
	b := topology.New("clicks")
	clicks := topology.StreamFrom(b, "clicks", serde.String(), serde.String())
	perUser := clicks.GroupByKey().Count(topology.Named("per-user"))

	d := eddytest.New(eddytest.Panicking(), b, eddytest.Options{ManualCommit: true})
	defer d.Close()
	in := eddytest.Input(d, "clicks", serde.String(), serde.String())
	in.Pipe("ann", "/home", 1)
	d.Run() // processed and committed
	in.Pipe("ann", "/cart", 2)
	d.Process() // processed, not committed
	row, _ := eddytest.Lookup(d, perUser, "ann")
	fmt.Println("before the crash:", row.Value)

	d.Crash()
	d.Restart() // restores the store, processes the uncommitted click again
	d.Commit()
	row, _ = eddytest.Lookup(d, perUser, "ann")
	fmt.Println("after the restart:", row.Value)
	// Output:
	// before the crash: 2
	// after the restart: 2
}

// Read a windowed table's windows of one key. By default a window is
// kept until stream-time passes its end plus its grace period, as in
// Kafka Streams; topology.Retention keeps closed windows longer.
func ExampleWindows() {
	b := topology.New("views")
	views := topology.StreamFrom(b, "views", serde.String(), serde.String())
	perMinute := topology.CountWindows(views.GroupByKey().WindowedBy(window.Tumbling(time.Minute).Grace(time.Minute)), topology.Named("per-minute"))

	d := eddytest.New(eddytest.Panicking(), b, eddytest.Options{Partitions: 2})
	defer d.Close()
	in := eddytest.Input(d, "views", serde.String(), serde.String())
	for _, ts := range []int64{1_000, 30_000, 61_000} {
		in.Pipe("/home", "", ts)
	}
	for _, row := range eddytest.Windows(d, perMinute, "/home", 0, 120_000) {
		fmt.Printf("[%d, %d): %d\n", row.Key.Start, row.Key.End, row.Value)
	}
	// Output:
	// [0, 60000): 2
	// [60000, 120000): 1
}
