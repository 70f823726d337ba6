package benchmarks

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// WA1Result is a final WA1 result: the count of a key in the one-minute
// window starting at Start (ms).
type WA1Result struct {
	Key   string
	Start int64
	// End is the inclusive end of a session window (VariantSession), in
	// ms; zero for the other variants, whose end follows from Start.
	End   int64
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
	keys := serde.Windowed(serde.String(), time.Minute.Milliseconds())
	var out []WA1Result
	err := readTopic(ctx, log, topic, func(tp broker.TopicPartition, r broker.Record) error {
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
	return out, err
}

// readTopic calls fn for every record of topic on log, partition by
// partition, in offset order.
func readTopic(ctx context.Context, log broker.Log, topic string, fn func(broker.TopicPartition, broker.Record) error) error {
	desc, err := log.DescribeTopics(ctx, topic)
	if err != nil {
		return err
	}
	cfg, ok := desc[topic]
	if !ok {
		return fmt.Errorf("benchmarks: topic %s: %w", topic, broker.ErrUnknownTopic)
	}
	for p := range cfg.Partitions {
		tp := broker.TopicPartition{Topic: topic, Partition: p}
		off, err := log.Offsets(ctx, tp)
		if err != nil {
			return err
		}
		if err := log.Read(ctx, tp, off.Start, off.End, func(r broker.Record) error { return fn(tp, r) }); err != nil {
			return err
		}
	}
	return nil
}

// WriteWA1VariantResults writes the results of variant v as
// WriteWA1Results does; session windows, whose end does not follow from
// their start, get lines "key<TAB>startMillis<TAB>endMillis<TAB>count"
// (both bounds inclusive), sorted by key, start, then end.
func WriteWA1VariantResults(w io.Writer, v WA1Variant, results []WA1Result) error {
	if v != VariantSession {
		return WriteWA1Results(w, results)
	}
	slices.SortFunc(results, func(a, b WA1Result) int {
		return cmp.Or(cmp.Compare(a.Key, b.Key), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
	})
	bw := bufio.NewWriter(w)
	for _, r := range results {
		fmt.Fprintf(bw, "%s\t%d\t%d\t%d\n", r.Key, r.Start, r.End, r.Count)
	}
	return bw.Flush()
}

// OutputFormat is how a system writes WA1's results (see
// benchmarks/PEERS.md, "Output formats").
type OutputFormat int

const (
	// FormatWindowed is eddy's and Kafka Streams': a windowed key (the
	// key's UTF-8 bytes, then the window start as 8 big-endian bytes;
	// for session windows the end, then the start) and an 8-byte
	// big-endian count; a nil value deletes the window (a merged session).
	FormatWindowed OutputFormat = iota
	// FormatGoka is the goka peer's group table: key "u<k>@<windowStartMillis>",
	// value the running count in decimal ASCII.
	FormatGoka
)

// DecodeWA1Output decodes an output record of variant v written in
// format f. deleted reports a tombstone: the window r names is gone.
// Keys starting with "~" (the end markers' windows) come back with ok
// false, to be ignored.
func DecodeWA1Output(f OutputFormat, v WA1Variant, key, value []byte) (r WA1Result, deleted, ok bool, err error) {
	switch f {
	case FormatGoka:
		k, start, found := strings.Cut(string(key), "@")
		if !found {
			return r, false, false, fmt.Errorf("benchmarks: goka key %q: want key@windowStartMillis", key)
		}
		if strings.HasPrefix(k, "~") {
			return r, false, false, nil
		}
		r.Key = k
		if r.Start, err = strconv.ParseInt(start, 10, 64); err != nil {
			return r, false, false, fmt.Errorf("benchmarks: goka key %q: %w", key, err)
		}
		if value == nil {
			return r, true, true, nil
		}
		if r.Count, err = strconv.ParseInt(string(value), 10, 64); err != nil {
			return r, false, false, fmt.Errorf("benchmarks: goka value of %q: %w", key, err)
		}
		return r, false, true, nil
	case FormatWindowed:
		var w window.Windowed[string]
		if v == VariantSession {
			w, err = serde.SessionWindowed(serde.String()).Decode(key)
		} else {
			w, err = serde.Windowed(serde.String(), wa1Size).Decode(key)
		}
		if err != nil {
			return r, false, false, fmt.Errorf("benchmarks: output key %x: %w", key, err)
		}
		if strings.HasPrefix(w.Key, "~") {
			return r, false, false, nil
		}
		r.Key, r.Start = w.Key, w.Start
		if v == VariantSession {
			r.End = w.End
		}
		if value == nil {
			return r, true, true, nil
		}
		if r.Count, err = serde.Int64().Decode(value); err != nil {
			return r, false, false, fmt.Errorf("benchmarks: output value of %s@%d: %w", w.Key, w.Start, err)
		}
		return r, false, true, nil
	}
	return r, false, false, fmt.Errorf("benchmarks: unknown output format %d", f)
}

// wa1Window identifies a window of a key in results.
type wa1Window struct {
	key        string
	start, end int64
}

// FinalResults folds a stream of output records into final results: the
// last count of every window, without the deleted ones. It also counts
// the records and the windows written more than once, which an
// emit-on-close system under exactly-once never does.
type FinalResults struct {
	counts  map[wa1Window]int64
	Records int64 // output records seen, tombstones included
	Repeats int64 // records for a window already seen, not counting tombstones
}

// NewFinalResults returns an empty FinalResults.
func NewFinalResults() *FinalResults { return &FinalResults{counts: map[wa1Window]int64{}} }

// Add folds in one decoded output record.
func (f *FinalResults) Add(r WA1Result, deleted bool) {
	f.Records++
	w := wa1Window{r.Key, r.Start, r.End}
	if deleted {
		delete(f.counts, w)
		return
	}
	if _, ok := f.counts[w]; ok {
		f.Repeats++
	}
	f.counts[w] = r.Count
}

// Len returns the number of windows with a count.
func (f *FinalResults) Len() int { return len(f.counts) }

// Count returns the count of a window and whether it has one.
func (f *FinalResults) Count(key string, start, end int64) (int64, bool) {
	n, ok := f.counts[wa1Window{key, start, end}]
	return n, ok
}

// Results returns the final results, unsorted.
func (f *FinalResults) Results() []WA1Result {
	out := make([]WA1Result, 0, len(f.counts))
	for w, n := range f.counts {
		out = append(out, WA1Result{Key: w.key, Start: w.start, End: w.end, Count: n})
	}
	return out
}

// ReadWA1VariantResults reads the committed output of variant v written
// in FormatWindowed to topic on log, and folds it into final results.
func ReadWA1VariantResults(ctx context.Context, log broker.Log, topic string, v WA1Variant) (*FinalResults, error) {
	final := NewFinalResults()
	err := readTopic(ctx, log, topic, func(tp broker.TopicPartition, rec broker.Record) error {
		r, deleted, ok, err := DecodeWA1Output(FormatWindowed, v, rec.Key, rec.Value)
		if err != nil {
			return fmt.Errorf("%s@%d: %w", tp, rec.Offset, err)
		}
		if ok {
			final.Add(r, deleted)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return final, nil
}
