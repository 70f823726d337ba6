// Command eddy-goka-wa1 is the goka peer of eddy's WA1 benchmark (see
// benchmarks/wa1.go): count events per key per one-minute tumbling
// event-time window with 5 s grace.
//
// It is written the idiomatic goka way. goka has no windows and no
// transactions (it is at-least-once), so a window is a key:
//
//   - Processor 1 (group <group>-rekey) reads the input stream, tracks
//     stream time per input partition (the largest record timestamp seen
//     so far, in memory), drops late records (windowStart + 60 s + 5 s <=
//     stream time, Kafka Streams' rule) and emits each counted record as
//     the int64 1 to the stream <group>-repartition, keyed "u<k>@<windowStartMillis>".
//   - Processor 2 (group <group>) reads that stream and adds to its group
//     table with ctx.Value/ctx.SetValue (codec.Int64), so the table topic
//     <group>-table holds the running count of every window. There is no
//     "final result once per window": the last value of a key is its count.
//
// Configuration, all else being goka's defaults (FNV partitioning of the
// repartition stream, snappy, acks=leader, 100 ms producer linger,
// LevelDB storage):
//   - sarama protocol version 4.0: Kafka 4 removed the old protocol
//     versions goka's default (2.0) would negotiate.
//   - consumers start at the oldest offset: the input is written before
//     the peer starts (goka's default is the newest offset).
//   - topics goka creates (repartition stream, group table) get the input's
//     partition count and replication factor 1 (single-broker benchmark).
//   - the group table's LevelDB lives under --state-dir.
//
// --threads is accepted and ignored: goka already processes every
// partition on its own goroutine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
)

const (
	windowSize = 60_000 // ms
	grace      = 5_000  // ms
)

func main() {
	brokers := flag.String("brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	input := flag.String("input", "", "input topic")
	group := flag.String("group", "", "goka group; the counts are in the table topic <group>-table")
	stateDir := flag.String("state-dir", "", "directory of the group table's LevelDB storage")
	flag.Int("threads", 0, "ignored: goka runs one goroutine per partition")
	flag.Parse()
	if *input == "" || *group == "" || *stateDir == "" {
		log.Fatal("goka-wa1: --input, --group and --state-dir are required")
	}
	if err := run(strings.Split(*brokers, ","), *input, *group, *stateDir); err != nil {
		log.Fatalf("goka-wa1: %v", err)
	}
}

func run(brokers []string, input, group, stateDir string) error {
	cfg := goka.DefaultConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	goka.ReplaceGlobalConfig(cfg)

	tmc := goka.NewTopicManagerConfig()
	tmc.Table.Replication = 1
	tmc.Stream.Replication = 1
	tmb := goka.TopicManagerBuilderWithTopicManagerConfig(tmc)

	// The repartition stream must exist before processor 2 starts, with the
	// input's partition count; goka creates the group table itself.
	repartition := goka.Stream(group + "-repartition")
	tm, err := tmb(brokers)
	if err != nil {
		return err
	}
	parts, err := tm.Partitions(input)
	if err == nil {
		err = tm.EnsureStreamExists(string(repartition), len(parts))
	}
	tm.Close()
	if err != nil {
		return fmt.Errorf("topic %s: %w", input, err)
	}

	var st streamTimes
	rekey, err := goka.NewProcessor(brokers, goka.DefineGroup(goka.Group(group+"-rekey"),
		goka.Input(goka.Stream(input), new(codec.Bytes), func(ctx goka.Context, _ any) {
			ts := ctx.Timestamp().UnixMilli()
			start := ts - ts%windowSize
			if ts < 0 || start+windowSize+grace <= st.advance(ctx.Partition(), ts) {
				return // late: its window has closed
			}
			ctx.Emit(repartition, ctx.Key()+"@"+strconv.FormatInt(start, 10), int64(1))
		}),
		goka.Output(repartition, new(codec.Int64)),
	), goka.WithTopicManagerBuilder(tmb))
	if err != nil {
		return err
	}

	count, err := goka.NewProcessor(brokers, goka.DefineGroup(goka.Group(group),
		goka.Input(repartition, new(codec.Int64), func(ctx goka.Context, msg any) {
			n := msg.(int64)
			if v := ctx.Value(); v != nil {
				n += v.(int64)
			}
			ctx.SetValue(n)
		}),
		goka.Persist(new(codec.Int64)),
	), goka.WithTopicManagerBuilder(tmb), goka.WithStorageBuilder(storage.DefaultBuilder(stateDir)))
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	for _, p := range []*goka.Processor{rekey, count} {
		go func() {
			err := p.Run(ctx)
			cancel() // one processor stopping stops the other
			errs <- err
		}()
	}
	for _, p := range []*goka.Processor{rekey, count} {
		if err := p.WaitForReadyContext(ctx); err != nil {
			break
		}
	}
	select {
	case <-rekey.Done():
	case <-count.Done():
	default:
		if ctx.Err() == nil {
			fmt.Println("READY")
		}
	}
	<-ctx.Done()
	return errors.Join(<-errs, <-errs)
}

// streamTimes is the stream time of every input partition: the largest
// record timestamp seen so far in it. goka calls back from one goroutine
// per partition, and a rebalance may move a partition to another one, so
// a mutex guards the map.
type streamTimes struct {
	mu sync.Mutex
	t  map[int32]int64
}

// advance makes ts part of partition p's stream time and returns it.
func (s *streamTimes) advance(p int32, ts int64) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.t == nil {
		s.t = map[int32]int64{}
	}
	if t, ok := s.t[p]; !ok || ts > t {
		s.t[p] = ts
	}
	return s.t[p]
}
