package engine_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/operators"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// dlEvent is the JSON value of the events and profiles topics.
type dlEvent struct {
	User string
	N    int
}

// dlRepartition is the repartition topic of decodeTopology's count.
const dlRepartition = "badinput-counts-repartition"

// decodeTopology reads every kind of source with serdes that can fail:
//
//	nums (string, int64) -> GroupBy "g<value%4>" -> repartition -> Count -> counts
//	events (int32, JSON) -> MapValues "user:n" -> events-out
//	profiles (int64, JSON), a table -> profiles-out
func decodeTopology() *topology.Builder {
	b := topology.New("badinput")
	nums := topology.StreamFrom(b, "nums", serde.String(), serde.Int64())
	topology.GroupBy(nums, func(_ string, v int64) string { return fmt.Sprintf("g%d", v%4) }, serde.String()).
		Count(topology.Named("counts")).
		ToStream().To("counts")
	events := topology.StreamFrom(b, "events", serde.Int32(), serde.JSON[dlEvent]())
	topology.MapValues(events, func(_ int32, e dlEvent) string { return fmt.Sprintf("%s:%d", e.User, e.N) }).
		WithValueSerde(serde.String()).
		To("events-out")
	topology.TableFrom(b, "profiles", serde.Int64(), serde.JSON[dlEvent](), topology.Named("profiles")).
		To("profiles-out")
	return b
}

// decodeInputs are decodeTopology's input topics, the repartition topic
// last (it exists once the first run created it, or the test did).
var decodeInputs = []string{"nums", "events", "profiles", dlRepartition}

// decodeCheck decodes a record of an input topic as the topology does and
// returns the field that failed and its error, or "" and nil.
func decodeCheck(topic string, r broker.Record) (field string, err error) {
	var kerr, verr error
	switch topic {
	case "nums", dlRepartition:
		_, kerr = serde.String().Decode(r.Key)
		_, verr = serde.Int64().Decode(r.Value)
	case "events":
		_, kerr = serde.Int32().Decode(r.Key)
		_, verr = serde.JSON[dlEvent]().Decode(r.Value)
	case "profiles":
		_, kerr = serde.Int64().Decode(r.Key)
		_, verr = serde.JSON[dlEvent]().Decode(r.Value)
	default:
		panic("no input topic " + topic)
	}
	switch {
	case kerr != nil:
		return "key", kerr
	case verr != nil:
		return "value", verr
	}
	return "", nil
}

// decodeProducer writes good and bad records to decodeTopology's inputs.
type decodeProducer struct {
	r     *rand.Rand
	parts map[string]int32 // partitions of each input topic
	n     int              // records written: keys and timestamps
	nbad  int              // bad records written
}

func newDecodeProducer(seed uint64, parts map[string]int32) *decodeProducer {
	return &decodeProducer{r: rand.New(rand.NewPCG(seed, 7)), parts: parts}
}

func (p *decodeProducer) createTopics(t *testing.T, log broker.Log) {
	t.Helper()
	var cfgs []broker.TopicConfig
	for _, topic := range decodeInputs {
		if n := p.parts[topic]; n > 0 {
			cfgs = append(cfgs, broker.TopicConfig{Name: topic, Partitions: n})
		}
	}
	if err := log.CreateTopics(context.Background(), cfgs...); err != nil {
		t.Fatal(err)
	}
}

// good returns a record that decodes, on a random input topic and partition.
func (p *decodeProducer) good() broker.Record {
	i := p.n
	p.n++
	topic := decodeInputs[p.r.IntN(3)]
	r := broker.Record{Topic: topic, Partition: p.r.Int32N(p.parts[topic]), Timestamp: int64(1000 + i)}
	event, _ := json.Marshal(dlEvent{User: fmt.Sprint("u", p.r.IntN(5)), N: i})
	switch topic {
	case "nums":
		r.Key, r.Value = fmt.Appendf(nil, "k%d", i), be64(int64(p.r.IntN(1000)))
	case "events":
		r.Key, r.Value = binary.BigEndian.AppendUint32(nil, uint32(p.r.IntN(20))), event
	case "profiles":
		r.Key, r.Value = be64(int64(p.r.IntN(20))), event
	}
	if p.r.IntN(4) == 0 {
		r.Headers = []broker.Header{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}}
	}
	return r
}

// bad returns a record whose key or value does not decode, on a random
// input topic (the repartition topic included) and partition.
func (p *decodeProducer) bad() broker.Record {
	i := p.n
	p.n++
	p.nbad++
	topics := decodeInputs
	if p.parts[dlRepartition] == 0 {
		topics = topics[:3]
	}
	topic := topics[p.r.IntN(len(topics))]
	r := broker.Record{Topic: topic, Partition: p.r.Int32N(p.parts[topic]), Timestamp: int64(1000 + i)}
	event, _ := json.Marshal(dlEvent{User: "u", N: i})
	switch kind := p.r.IntN(2); topic {
	case "nums", dlRepartition:
		r.Key, r.Value = fmt.Appendf(nil, "k%d", i), []byte{1, 2, 3} // an int64 of 3 bytes
	case "events":
		if kind == 0 {
			r.Key, r.Value = []byte{1, 2, 3}, event // an int32 of 3 bytes
		} else {
			r.Key, r.Value = binary.BigEndian.AppendUint32(nil, 1), []byte("not json")
		}
	case "profiles":
		if kind == 0 {
			r.Key, r.Value = []byte{1, 2}, event
		} else {
			r.Key, r.Value = be64(1), []byte("{")
		}
	}
	if p.r.IntN(2) == 0 {
		r.Headers = []broker.Header{{Key: "trace", Value: fmt.Appendf(nil, "t%d", i)}, {Key: "empty"}}
	}
	return r
}

// produce writes n records, each bad with probability badShare.
func (p *decodeProducer) produce(t *testing.T, log broker.Log, n int, badShare float64) {
	t.Helper()
	recs := make([]broker.Record, n)
	for i := range recs {
		if p.r.Float64() < badShare {
			recs[i] = p.bad()
		} else {
			recs[i] = p.good()
		}
	}
	if err := log.Produce(context.Background(), recs...); err != nil {
		t.Fatal(err)
	}
}

// dlRead returns every committed record of topic, partition by partition,
// with their bytes copied.
func dlRead(t *testing.T, log broker.Log, topic string) []broker.Record {
	t.Helper()
	var out []broker.Record
	for _, part := range readAll(t, log, topic) {
		for _, r := range part {
			h := r.Headers
			r.Headers = nil
			for _, x := range h {
				r.Headers = append(r.Headers, broker.Header{Key: x.Key, Value: slices.Clone(x.Value)})
			}
			out = append(out, r)
		}
	}
	return out
}

// decodeOutputs renders the output topics of decodeTopology, one line per
// record, partition by partition in offset order.
func decodeOutputs(t *testing.T, log broker.Log) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, r := range dlRead(t, log, "counts") {
		n, err := serde.Int64().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out["counts"] = append(out["counts"], fmt.Sprintf("%s=%d", r.Key, n))
	}
	for _, r := range dlRead(t, log, "events-out") {
		k, err := serde.Int32().Decode(r.Key)
		if err != nil {
			t.Fatal(err)
		}
		out["events-out"] = append(out["events-out"], fmt.Sprintf("%d=%s", k, r.Value))
	}
	for _, r := range dlRead(t, log, "profiles-out") {
		k, err := serde.Int64().Decode(r.Key)
		if err != nil {
			t.Fatal(err)
		}
		e, err := serde.JSON[dlEvent]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		out["profiles-out"] = append(out["profiles-out"], fmt.Sprintf("%d=%s:%d", k, e.User, e.N))
	}
	return out
}

// decodeWant is what decodeTopology should make of its input.
type decodeWant struct {
	// outputs are the output lines of the good records, in input order
	// (partition by partition): the order of decodeOutputs when every
	// topic has one partition.
	outputs map[string][]string
	// bad are the records that do not decode, as read from the inputs.
	bad []broker.Record
}

// decodeExpected computes, from the records in the input topics, the
// output of the good ones and which ones are bad: a naive model of the
// topology and of bad input handling.
func decodeExpected(t *testing.T, log broker.Log) decodeWant {
	t.Helper()
	w := decodeWant{outputs: map[string][]string{}}
	counts := map[string]int64{}
	for _, topic := range decodeInputs {
		for _, r := range dlRead(t, log, topic) {
			if _, err := decodeCheck(topic, r); err != nil {
				w.bad = append(w.bad, r)
				continue
			}
			switch topic {
			case "nums":
				v, _ := serde.Int64().Decode(r.Value)
				g := fmt.Sprintf("g%d", v%4)
				counts[g]++
				w.outputs["counts"] = append(w.outputs["counts"], fmt.Sprintf("%s=%d", g, counts[g]))
			case "events":
				k, _ := serde.Int32().Decode(r.Key)
				e, _ := serde.JSON[dlEvent]().Decode(r.Value)
				w.outputs["events-out"] = append(w.outputs["events-out"], fmt.Sprintf("%d=%s:%d", k, e.User, e.N))
			case "profiles":
				k, _ := serde.Int64().Decode(r.Key)
				e, _ := serde.JSON[dlEvent]().Decode(r.Value)
				w.outputs["profiles-out"] = append(w.outputs["profiles-out"], fmt.Sprintf("%d=%s:%d", k, e.User, e.N))
			}
		}
	}
	return w
}

// sortedOutputs returns a sorted copy of each topic's lines: the outputs
// as multisets, for topics with several partitions.
func sortedOutputs(m map[string][]string) map[string][]string {
	out := map[string][]string{}
	for k, v := range m {
		out[k] = slices.Sorted(slices.Values(v))
	}
	return out
}

// dlExpected returns the dead letters of the bad records: what
// DecodeDeadLetter must write to topic, which has parts partitions.
func dlExpected(t *testing.T, bad []broker.Record, topic string, parts int32) []broker.Record {
	t.Helper()
	topo, err := decodeTopology().Build()
	if err != nil {
		t.Fatal(err)
	}
	sub := map[string]int{}
	for _, s := range topo.SubTopologies() {
		for _, src := range s.Sources {
			sub[src] = s.ID
		}
	}
	var out []broker.Record
	for _, r := range bad {
		field, err := decodeCheck(r.Topic, r)
		h := append(slices.Clone(r.Headers),
			broker.Header{Key: "eddy.error", Value: []byte(err.Error())},
			broker.Header{Key: "eddy.error.field", Value: []byte(field)},
			broker.Header{Key: "eddy.topic", Value: []byte(r.Topic)},
			broker.Header{Key: "eddy.partition", Value: fmt.Append(nil, r.Partition)},
			broker.Header{Key: "eddy.offset", Value: fmt.Append(nil, r.Offset)},
			broker.Header{Key: "eddy.task", Value: fmt.Appendf(nil, "%d_%d", sub[r.Topic], r.Partition)},
		)
		out = append(out, broker.Record{
			Topic: topic, Partition: r.Partition % parts, Timestamp: r.Timestamp,
			Key: r.Key, Value: r.Value, Headers: h,
		})
	}
	return dlSorted(out)
}

// dlSorted sorts dead letters by origin and forgets their offsets.
func dlSorted(recs []broker.Record) []broker.Record {
	origin := func(r broker.Record) string {
		var topic string
		var p, off int
		for _, h := range r.Headers {
			switch h.Key {
			case "eddy.topic":
				topic = string(h.Value)
			case "eddy.partition":
				p, _ = strconv.Atoi(string(h.Value))
			case "eddy.offset":
				off, _ = strconv.Atoi(string(h.Value))
			}
		}
		return fmt.Sprintf("%s/%04d@%08d", topic, p, off)
	}
	out := slices.Clone(recs)
	for i := range out {
		out[i].Offset = 0
	}
	slices.SortFunc(out, func(a, b broker.Record) int { return strings.Compare(origin(a), origin(b)) })
	return out
}

// decodeRun runs decodeTopology, bounded, on dir and returns its metrics
// and Run's error.
func decodeRun(t *testing.T, dir string, opts engine.Options) (engine.Metrics, error) {
	t.Helper()
	opts.StateDir, opts.Bounded = dir, true
	eng, err := engine.Open(decodeTopology(), opts)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	err = decodeRunBounded(t, eng)
	return eng.Metrics(), err
}

// decodeRunBounded runs a bounded run, failing the test if it does not
// end: a record left unconsumed (a skipped offset not advanced, say) would
// keep it waiting for its input's end.
func decodeRunBounded(t *testing.T, eng *engine.Engine) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := eng.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("the bounded run did not end in 30s (Run returned %v)", err)
	}
	return err
}

// decodeOpenLog opens the embedded log of a state dir, to write input and
// read output between runs.
func decodeOpenLog(t *testing.T, dir string) *embedded.Log {
	t.Helper()
	log, err := embedded.Open(embedded.Options{Dir: filepath.Join(dir, "log")})
	if err != nil {
		t.Fatal(err)
	}
	return log
}

// TestDecodeFail puts one bad record among good ones, for each way a
// record can fail to decode and each kind of source: the run fails naming
// the record, output committed before it is all there, and a restart fails
// at the same record. A last run with DecodeSkip then gets past it and
// yields every good record's output exactly once: nothing was lost or
// committed twice around the failures.
func TestDecodeFail(t *testing.T) {
	event, _ := json.Marshal(dlEvent{User: "bad", N: -1})
	tests := []struct {
		name, topic string
		key, value  []byte
		field       string
	}{
		{"stream int64 value", "nums", []byte("k"), []byte{1, 2, 3}, "value"},
		{"stream JSON value", "events", binary.BigEndian.AppendUint32(nil, 1), []byte("not json"), "value"},
		{"stream int32 key", "events", []byte{1, 2, 3}, event, "key"},
		{"table JSON value", "profiles", be64(1), []byte("{"), "value"},
		{"table int64 key", "profiles", []byte{1, 2}, event, "key"},
		{"repartition int64 value", dlRepartition, []byte("g1"), []byte{1, 2, 3}, "value"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := newDecodeProducer(uint64(i), map[string]int32{"nums": 1, "events": 1, "profiles": 1})
			opts := engine.Options{CacheBytes: -1, CommitInterval: time.Millisecond, MaxPollRecords: 7}

			// Good input only, processed and committed.
			log := decodeOpenLog(t, dir)
			p.createTopics(t, log)
			p.produce(t, log, 200, 0)
			log.Close()
			if _, err := decodeRun(t, dir, opts); err != nil {
				t.Fatal(err)
			}

			// The bad record, between good ones.
			log = decodeOpenLog(t, dir)
			before := decodeOutputs(t, log)
			p.produce(t, log, 100, 0)
			tp := broker.TopicPartition{Topic: tc.topic}
			bounds, err := log.Offsets(context.Background(), tp)
			if err != nil {
				t.Fatal(err)
			}
			bad := broker.Record{Topic: tc.topic, Key: tc.key, Value: tc.value, Timestamp: 1}
			if err := log.Produce(context.Background(), bad); err != nil {
				t.Fatal(err)
			}
			p.produce(t, log, 100, 0)
			log.Close()

			var during map[string][]string
			for run := range 2 { // the second run is a restart, which fails at the same record
				_, err := decodeRun(t, dir, opts)
				var de *operators.DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("run %d: got error %v, want a DecodeError", run, err)
				}
				want := operators.DecodeError{Topic: tc.topic, Partition: 0, Offset: bounds.End, Field: tc.field}
				got := *de
				got.Err = nil
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("run %d: DecodeError (-want +got):\n%s", run, diff)
				}
				if msg := fmt.Sprintf("decode %s of record %s/0@%d", tc.field, tc.topic, bounds.End); !strings.Contains(err.Error(), msg) {
					t.Errorf("run %d: error %q does not say %q", run, err, msg)
				}
				log = decodeOpenLog(t, dir)
				during = decodeOutputs(t, log)
				log.Close()
				for topic, lines := range before {
					if len(during[topic]) < len(lines) || !slices.Equal(lines, during[topic][:len(lines)]) {
						t.Fatalf("run %d: %s lost output committed before the bad record:\nbefore %q\nafter  %q", run, topic, lines, during[topic])
					}
				}
			}

			m, err := decodeRun(t, dir, engine.Options{CacheBytes: -1, CommitInterval: time.Millisecond, OnDecodeError: engine.DecodeSkip})
			if err != nil {
				t.Fatal(err)
			}
			if m.SkippedRecords != 1 {
				t.Errorf("SkippedRecords = %d, want 1", m.SkippedRecords)
			}
			log = decodeOpenLog(t, dir)
			defer log.Close()
			want := decodeExpected(t, log)
			got := decodeOutputs(t, log)
			if diff := cmp.Diff(want.outputs, got); diff != "" {
				t.Errorf("outputs after the skip (-want +got):\n%s", diff)
			}
			for topic, lines := range during {
				if !slices.Equal(lines, got[topic][:min(len(lines), len(got[topic]))]) {
					t.Errorf("%s: the failed runs committed output that is not a prefix of the final output", topic)
				}
			}
			if len(want.bad) != 1 {
				t.Errorf("the model finds %d bad records, want 1", len(want.bad))
			}
		})
	}
}

// dlLogBuffer collects log output from several workers.
type dlLogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *dlLogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines returns the JSON log lines with msg, as "topic/partition@offset field".
func (b *dlLogBuffer) lines(t *testing.T, msg string) []string {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for line := range strings.Lines(b.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["@message"] != msg {
			continue
		}
		if m["@level"] != "warn" || m["error"] == nil || m["error"] == "" {
			t.Errorf("log line %q: want a warning with the error", line)
		}
		out = append(out, fmt.Sprintf("%v/%v@%v %v", m["topic"], m["partition"], m["offset"], m["field"]))
	}
	return out
}

// TestDecodeSkip skips bad records of every source kind (stream, table,
// repartition topic): the output is that of the good records, each
// skipped record has a warning and a count, and its offset is committed
// (a second run, with DecodeFail, finds nothing left to read).
func TestDecodeSkip(t *testing.T) {
	seed := testSeed(t)
	dir := t.TempDir()
	parts := map[string]int32{"nums": 3, "events": 2, "profiles": 2, dlRepartition: 3}
	p := newDecodeProducer(seed, parts)
	log := decodeOpenLog(t, dir)
	p.createTopics(t, log)
	p.produce(t, log, 2000, 0.1)
	// Bad records last in a partition: only the commit of their offsets
	// keeps the second run from reading them.
	for _, topic := range decodeInputs {
		r := broker.Record{Topic: topic, Partition: 0, Key: []byte{9}, Value: []byte{9}}
		if err := log.Produce(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		p.nbad++
	}
	log.Close()

	logs := &dlLogBuffer{}
	m, err := decodeRun(t, dir, engine.Options{
		CacheBytes: -1, Workers: 2, CommitInterval: time.Millisecond, MaxPollRecords: 50,
		OnDecodeError: engine.DecodeSkip,
		Logger:        hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Warn, JSONFormat: true}),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.SkippedRecords != int64(p.nbad) || m.DeadLetterRecords != 0 {
		t.Errorf("SkippedRecords %d, DeadLetterRecords %d; want %d, 0", m.SkippedRecords, m.DeadLetterRecords, p.nbad)
	}

	m, err = decodeRun(t, dir, engine.Options{CacheBytes: -1})
	if err != nil {
		t.Fatalf("second run, failing on bad input: %v", err)
	}
	if m.RecordsIn != 0 {
		t.Errorf("second run read %d records, want 0", m.RecordsIn)
	}

	log = decodeOpenLog(t, dir)
	defer log.Close()
	want := decodeExpected(t, log)
	if diff := cmp.Diff(sortedOutputs(want.outputs), sortedOutputs(decodeOutputs(t, log))); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	if len(want.bad) != p.nbad {
		t.Fatalf("the model finds %d bad records, %d were written", len(want.bad), p.nbad)
	}
	var wantLines []string
	for _, r := range want.bad {
		field, _ := decodeCheck(r.Topic, r)
		wantLines = append(wantLines, fmt.Sprintf("%s/%d@%d %s", r.Topic, r.Partition, r.Offset, field))
	}
	gotLines := logs.lines(t, "skipping a record that does not decode")
	if diff := cmp.Diff(slices.Sorted(slices.Values(wantLines)), slices.Sorted(slices.Values(gotLines))); diff != "" {
		t.Errorf("skip warnings (-want +got):\n%s", diff)
	}
	if desc, _ := log.DescribeTopics(context.Background(), "badinput-dead-letters"); len(desc) != 0 {
		t.Error("DecodeSkip created a dead-letter topic")
	}
}

// TestDecodeDeadLetter dead-letters bad records of every source kind while
// the engine is stopped and restarted mid-stream: the dead-letter topic
// holds each bad record exactly once, bytes unchanged, with the headers
// telling its error and origin, in partition (input partition mod its
// partition count); the output is that of the good records.
func TestDecodeDeadLetter(t *testing.T) {
	tests := []struct {
		name  string
		topic string // DeadLetterTopic
		parts int32  // its partitions, created by the test; 0: by the engine
	}{
		{"default topic", "", 0},
		{"own topic of two partitions", "bad-records", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 8))
			dir := t.TempDir()
			ctx := context.Background()
			parts := map[string]int32{"nums": 3, "events": 2, "profiles": 3, dlRepartition: 3}
			p := newDecodeProducer(seed, parts)
			opts := engine.Options{
				StateDir: dir, CacheBytes: -1, OnDecodeError: engine.DecodeDeadLetter, DeadLetterTopic: tc.topic,
			}
			var deadLetters int64
			stops := 0
			for i := range 5 {
				opts.Bounded = i == 4
				opts.Workers = 1 + r.IntN(2)
				opts.CommitInterval = time.Duration(1+r.IntN(10)) * time.Millisecond
				opts.MaxPollRecords = 10 + r.IntN(100)
				eng, err := engine.Open(decodeTopology(), opts)
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					p.createTopics(t, eng.Log())
					if tc.parts > 0 {
						if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: tc.topic, Partitions: tc.parts}); err != nil {
							t.Fatal(err)
						}
					}
				}
				p.produce(t, eng.Log(), 300, 0.1)
				if opts.Bounded {
					if err := decodeRunBounded(t, eng); err != nil {
						t.Fatal(err)
					}
				} else {
					runCtx, cancel := context.WithCancel(ctx)
					done := make(chan error, 1)
					go func() { done <- eng.Run(runCtx) }()
					for range 3 {
						time.Sleep(time.Duration(r.IntN(15)) * time.Millisecond)
						p.produce(t, eng.Log(), 100, 0.1)
					}
					cancel()
					if err := <-done; err != nil {
						t.Fatalf("run %d: %v", i, err)
					}
					stops++
				}
				m := eng.Metrics()
				deadLetters += m.DeadLetterRecords
				if m.SkippedRecords != 0 {
					t.Errorf("run %d: SkippedRecords = %d, want 0", i, m.SkippedRecords)
				}
				if err := eng.Close(); err != nil {
					t.Fatal(err)
				}
			}

			log := decodeOpenLog(t, dir)
			defer log.Close()
			topic, parts2 := tc.topic, tc.parts
			if topic == "" {
				topic, parts2 = "badinput-dead-letters", 1
			}
			desc, err := log.DescribeTopics(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if desc[topic].Partitions != parts2 {
				t.Errorf("dead-letter topic %s has %d partitions, want %d", topic, desc[topic].Partitions, parts2)
			}
			want := decodeExpected(t, log)
			if len(want.bad) != p.nbad {
				t.Fatalf("the model finds %d bad records, %d were written", len(want.bad), p.nbad)
			}
			if diff := cmp.Diff(dlExpected(t, want.bad, topic, parts2), dlSorted(dlRead(t, log, topic))); diff != "" {
				t.Errorf("dead letters (-want +got):\n%s", diff)
			}
			if deadLetters != int64(p.nbad) {
				t.Errorf("DeadLetterRecords add up to %d over the runs, want %d", deadLetters, p.nbad)
			}
			if diff := cmp.Diff(sortedOutputs(want.outputs), sortedOutputs(decodeOutputs(t, log))); diff != "" {
				t.Errorf("outputs (-want +got):\n%s", diff)
			}
			t.Logf("%d records, %d bad, %d stops", p.n, p.nbad, stops)
		})
	}
}

// TestDecodeDeadLetterAbortedCommits has the log abort a third of the
// commits: dead letters of an aborted transaction must vanish with it,
// and not be counted, so that each bad record is dead-lettered and
// counted exactly once.
func TestDecodeDeadLetterAbortedCommits(t *testing.T) {
	seed := testSeed(t)
	inner, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer inner.Close()
	log := &abortingLog{Log: inner, r: rand.New(rand.NewPCG(seed, 9)), share: 0.3}
	p := newDecodeProducer(seed, map[string]int32{"nums": 2, "events": 2, "profiles": 2, dlRepartition: 2})
	p.createTopics(t, log)
	p.produce(t, log, 2000, 0.1)
	eng, err := engine.Open(decodeTopology(), engine.Options{
		InMemory: true, Log: log, Bounded: true, CacheBytes: -1, Workers: 2, MaxPollRecords: 50,
		CommitInterval: time.Millisecond, OnDecodeError: engine.DecodeDeadLetter,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := decodeRunBounded(t, eng); err != nil {
		t.Fatal(err)
	}
	if log.aborted == 0 {
		t.Fatal("no commit was aborted: the test tested nothing")
	}
	want := decodeExpected(t, log)
	if len(want.bad) != p.nbad {
		t.Fatalf("the model finds %d bad records, %d were written", len(want.bad), p.nbad)
	}
	if diff := cmp.Diff(dlExpected(t, want.bad, "badinput-dead-letters", 1), dlSorted(dlRead(t, log, "badinput-dead-letters"))); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	if got := eng.Metrics().DeadLetterRecords; got != int64(p.nbad) {
		t.Errorf("DeadLetterRecords = %d, want %d", got, p.nbad)
	}
	if diff := cmp.Diff(sortedOutputs(want.outputs), sortedOutputs(decodeOutputs(t, log))); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	t.Logf("%d commits aborted, %d committed", log.aborted, eng.Metrics().Commits)
}

// TestDecodeErrorsOptions checks that Open and Run reject misconfigured
// bad input handling.
func TestDecodeErrorsOptions(t *testing.T) {
	tests := []struct {
		name string
		opts engine.Options
		want string // error of Open, or else of Run
	}{
		{"unknown handler", engine.Options{OnDecodeError: 3}, "engine: unknown OnDecodeError DecodeErrors(3)"},
		{"negative handler", engine.Options{OnDecodeError: -1}, "engine: unknown OnDecodeError DecodeErrors(-1)"},
		{"topic without dead letters", engine.Options{OnDecodeError: engine.DecodeSkip, DeadLetterTopic: "dl"},
			`engine: DeadLetterTopic "dl" is set but OnDecodeError is DecodeSkip, not DecodeDeadLetter`},
		{"topic with the default handler", engine.Options{DeadLetterTopic: "dl"},
			`engine: DeadLetterTopic "dl" is set but OnDecodeError is DecodeFail, not DecodeDeadLetter`},
		{"source as dead-letter topic", engine.Options{OnDecodeError: engine.DecodeDeadLetter, DeadLetterTopic: "nums"},
			`engine: dead-letter topic "nums" is a source topic of the topology: choose another DeadLetterTopic`},
		{"sink as dead-letter topic", engine.Options{OnDecodeError: engine.DecodeDeadLetter, DeadLetterTopic: "counts"},
			`engine: dead-letter topic "counts" is a sink topic of the topology: choose another DeadLetterTopic`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.InMemory, opts.Bounded = true, true
			eng, err := engine.Open(decodeTopology(), opts)
			if err == nil {
				defer eng.Close()
				newDecodeProducer(1, map[string]int32{"nums": 1, "events": 1, "profiles": 1}).createTopics(t, eng.Log())
				err = eng.Run(context.Background())
			}
			if err == nil || err.Error() != tc.want {
				t.Errorf("got error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestPanicInMap has a Map panic on one record: Run's error names the
// operator and the record, output committed before it is intact, and a
// restart panics at the same record.
func TestPanicInMap(t *testing.T) {
	newTopology := func() *topology.Builder {
		b := topology.New("panics")
		in := topology.StreamFrom(b, "in", serde.String(), serde.String())
		topology.Map(in, func(k, v string) (string, string) {
			if v == "boom" {
				panic("boom record")
			}
			return k, strings.ToUpper(v)
		}, topology.Named("explode")).
			WithKeySerde(serde.String()).WithValueSerde(serde.String()).
			To("out")
		return b
	}
	dir := t.TempDir()
	ctx := context.Background()
	run := func(produce ...string) error {
		eng, err := engine.Open(newTopology(), engine.Options{StateDir: dir, Bounded: true, CommitInterval: time.Millisecond, MaxPollRecords: 3})
		if err != nil {
			t.Fatal(err)
		}
		defer eng.Close()
		if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}); err != nil {
			t.Fatal(err)
		}
		for _, v := range produce {
			if err := eng.Log().Produce(ctx, broker.Record{Topic: "in", Partition: 0, Key: []byte("k"), Value: []byte(v)}); err != nil {
				t.Fatal(err)
			}
		}
		return decodeRunBounded(t, eng)
	}
	output := func() []string {
		log := decodeOpenLog(t, dir)
		defer log.Close()
		var out []string
		for _, r := range dlRead(t, log, "out") {
			out = append(out, string(r.Value))
		}
		return out
	}
	var first, all []string
	for i := range 20 {
		first = append(first, fmt.Sprint("a", i))
		all = append(all, fmt.Sprint("A", i))
	}
	if err := run(first...); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		all = append(all, fmt.Sprint("B", i))
	}
	second := []string{"b0", "b1", "b2", "b3", "b4", "b5", "b6", "b7", "b8", "b9", "boom", "c0", "c1"}
	for r := range 2 { // the second run is a restart, which panics at the same record
		var produce []string
		if r == 0 {
			produce = second
		}
		err := run(produce...)
		var pe *operators.PanicError
		if !errors.As(err, &pe) {
			t.Fatalf("run %d: got error %v, want a PanicError", r, err)
		}
		want := operators.PanicError{Operator: "explode", Topic: "in", Partition: 0, Offset: 30, Value: "boom record"}
		if diff := cmp.Diff(want, *pe); diff != "" {
			t.Errorf("run %d: PanicError (-want +got):\n%s", r, diff)
		}
		for _, s := range []string{`"explode"`, "in/0@30", "boom record"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("run %d: error %q does not say %s", r, err, s)
			}
		}
		got := output()
		if len(got) < 20 || len(got) > 30 || !slices.Equal(got, all[:len(got)]) {
			t.Errorf("run %d: output %q, want a prefix of %q of at least 20 records", r, got, all)
		}
	}
}
