package benchmarks

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/serde"
)

// WA1Result is a final WA1 result: the count of a key in the one-minute
// window starting at Start (ms).
type WA1Result struct {
	Key   string
	Start int64
	Count int64
}

// WriteWA1Results writes results as lines "key<TAB>windowStartMillis<TAB>count",
// sorted by key, then window start, so that the files of any two systems
// fed the same seed can be compared with cmp. It sorts results in place.
func WriteWA1Results(w io.Writer, results []WA1Result) error {
	slices.SortFunc(results, func(a, b WA1Result) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start))
	})
	bw := bufio.NewWriter(w)
	for _, r := range results {
		fmt.Fprintf(bw, "%s\t%d\t%d\n", r.Key, r.Start, r.Count)
	}
	return bw.Flush()
}

// ReadWA1Results reads the committed results eddy's WA1Topology wrote to
// topic: windowed keys and int64 counts.
func ReadWA1Results(ctx context.Context, log broker.Log, topic string) ([]WA1Result, error) {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return nil, err
	}
	cfg, ok := desc[topic]
	if !ok {
		return nil, fmt.Errorf("benchmarks: topic %s: %w", topic, broker.ErrUnknownTopic)
	}
	keys := serde.Windowed(serde.String(), time.Minute.Milliseconds())
	var out []WA1Result
	for p := range cfg.Partitions {
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return nil, err
		}
		err = log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error {
			k, err := keys.Decode(r.Key)
			if err != nil {
				return fmt.Errorf("benchmarks: %s@%d: key: %w", tp, r.Offset, err)
			}
			n, err := serde.Int64().Decode(r.Value)
			if err != nil {
				return fmt.Errorf("benchmarks: %s@%d: value: %w", tp, r.Offset, err)
			}
			out = append(out, WA1Result{Key: k.Key, Start: k.Start, Count: n})
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
