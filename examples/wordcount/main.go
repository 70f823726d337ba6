// Command wordcount counts words in lines of text, the "hello world" of
// stream processing:
//
//	go run ./examples/wordcount
//
// It writes a few lines into the embedded log, splits them into words,
// re-keys by word, counts each word into a table, and prints the table.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// Topology splits lines into lower-case words and counts every word.
func Topology() *topology.Builder { return topologyFor("") }

// topologyFor suffixes the application and its topics: on Kafka, where
// topics outlive the example, every run uses fresh ones.
func topologyFor(suffix string) *topology.Builder {
	b, _ := build(suffix)
	return b
}

// build builds the topology of topologyFor and returns its word counts
// table too, for the tests' store queries.
func build(suffix string) (*topology.Builder, topology.Table[string, int64]) {
	b := topology.New("wordcount" + suffix)
	lines := topology.StreamFrom(b, "lines"+suffix, serde.String(), serde.String())
	words := topology.FlatMapValues(lines, func(_ string, line string) []string {
		return strings.FieldsFunc(strings.ToLower(line), func(r rune) bool {
			return !('a' <= r && r <= 'z' || r == '\'')
		})
	}).WithValueSerde(serde.String()) // the words are repartitioned: say how to write them
	counts := topology.GroupBy(words, func(_ string, w string) string { return w }, serde.String()).
		Count(topology.Named("word-counts"))
	counts.To("word-counts" + suffix)
	return b, counts
}

// Lines is the default input.
var Lines = []string{
	"It was the best of times, it was the worst of times,",
	"it was the age of wisdom, it was the age of foolishness,",
	"it was the epoch of belief, it was the epoch of incredulity,",
	"it was the season of Light, it was the season of Darkness,",
	"it was the spring of hope, it was the winter of despair.",
}

// Run counts the words of lines and returns the final count per word. It
// runs on Kafka at brokers if any are given, else on the embedded log.
func Run(ctx context.Context, dir string, brokers []string, lines []string) (map[string]int64, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "eddy-wordcount-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	opts, suffix := engine.Options{StateDir: dir, Bounded: true}, ""
	if len(brokers) > 0 {
		opts.Kafka = &kafka.Options{Brokers: brokers}
		suffix = fmt.Sprintf("-%d", time.Now().UnixNano())
	}
	eng, err := engine.Open(topologyFor(suffix), opts)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	log := eng.Log()
	in, out := "lines"+suffix, "word-counts"+suffix
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: in, Partitions: 2}); err != nil {
		return nil, err
	}
	recs := make([]broker.Record, len(lines))
	for i, l := range lines {
		recs[i] = broker.Record{Topic: in, Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "line-%d", i), Value: []byte(l), Timestamp: int64(i)}
	}
	if err := log.Produce(ctx, recs...); err != nil {
		return nil, err
	}
	if err := eng.Run(ctx); err != nil {
		return nil, err
	}
	// The output is a table's changelog: the last record of a key wins.
	counts := map[string]int64{}
	desc, err := log.DescribeTopics(ctx, out)
	if err != nil {
		return nil, err
	}
	for p := range desc[out].Partitions {
		tp := broker.TopicPartition{Topic: out, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return nil, err
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error {
			n, err := serde.Int64().Decode(r.Value)
			if err != nil {
				return fmt.Errorf("%s@%d: %w", tp, r.Offset, err)
			}
			counts[string(r.Key)] = n
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return counts, nil
}

// Print writes the counts, most frequent first.
func Print(w io.Writer, counts map[string]int64) {
	words := make([]string, 0, len(counts))
	for word := range counts {
		words = append(words, word)
	}
	slices.SortFunc(words, func(a, b string) int {
		if counts[a] != counts[b] {
			return int(counts[b] - counts[a])
		}
		return strings.Compare(a, b)
	})
	for _, word := range words {
		fmt.Fprintf(w, "%-12s %d\n", word, counts[word])
	}
}

// describeTopology prints the topology as the -describe flag asks, as
// text or as a Mermaid flowchart, and returns the exit status. Every
// example has the flag: it is how `eddy describe wordcount` gets the topology
// (see `eddy describe -h`).
func describeTopology(stdout, stderr io.Writer, format string) int {
	t, err := Topology().Build()
	if err != nil {
		fmt.Fprintln(stderr, "wordcount:", err)
		return 1
	}
	text, err := t.Describe().Format(format)
	if err != nil {
		fmt.Fprintf(stderr, "wordcount: -describe: %v\n", err)
		return 2
	}
	fmt.Fprint(stdout, text)
	return 0
}

func main() {
	dir := flag.String("dir", "", "state dir (default: a temporary dir, removed at exit)")
	brokers := flag.String("brokers", "", "run on Apache Kafka at these comma-separated brokers instead of the embedded log")
	describe := flag.String("describe", "", "print the topology as `text` or mermaid and exit, without running it (for eddy describe)")
	flag.Parse()
	if *describe != "" {
		os.Exit(describeTopology(os.Stdout, os.Stderr, *describe))
	}
	var bs []string
	if *brokers != "" {
		bs = strings.Split(*brokers, ",")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	counts, err := Run(ctx, *dir, bs, Lines)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wordcount:", err)
		os.Exit(1)
	}
	Print(os.Stdout, counts)
}
