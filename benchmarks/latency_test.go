package benchmarks

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
)

// TestLatencyCauses checks the cause of each output against a
// hand-computed example on one partition. Records (key@timestamp, the
// batch acknowledgement in ms, the partition's stream-time after it):
//
//	a@1000    ack 10  st 1000
//	b@30000   ack 20  st 30000
//	a@59000   ack 30  st 59000
//	a@64999   ack 40  st 64999   window 60000
//	b@65000   ack 50  st 65000   closes window 0 (end 60000 + grace 5000)
//	a@2000    ack 60  st 65000   late for window 0: not counted
//	a@70000   ack 70  st 70000
//	~end-0    ack 80  st 3670000 closes everything else
func TestLatencyCauses(t *testing.T) {
	log := newAppendLog(1)
	add := func(key string, ts, ackMs int64) {
		c := &ackChunk{}
		c.acked.Store(ackMs * 1e6)
		log.add(&broker.Record{Partition: 0, Key: []byte(key), Timestamp: ts}, c)
	}
	add("a", 1000, 10)
	add("b", 30000, 20)
	add("a", 59000, 30)
	add("a", 64999, 40)
	add("b", 65000, 50)
	add("a", 2000, 60)
	add("a", 70000, 70)
	add("~end-0", 3_670_000, 80)
	out := func(key string, start, end, count, seenMs int64) seenOutput {
		return seenOutput{r: WA1Result{Key: key, Start: start, End: end, Count: count}, at: seenMs * 1e6}
	}
	ms := func(v ...int64) []time.Duration {
		d := make([]time.Duration, len(v))
		for i, x := range v {
			d[i] = time.Duration(x) * time.Millisecond
		}
		return d
	}
	tests := []struct {
		name      string
		v         WA1Variant
		emit      WA1Emit
		outs      []seenOutput
		want      []time.Duration
		unmatched int
	}{{
		name: "tumbling close",
		v:    VariantTumbling, emit: EmitClose,
		// window 0 closes at b@65000 (ack 50), window 60000 at the marker (ack 80).
		outs: []seenOutput{out("a", 0, 0, 2, 100), out("b", 0, 0, 1, 120), out("a", 60000, 0, 2, 200), out("b", 60000, 0, 1, 205)},
		want: ms(50, 70, 120, 125),
	}, {
		name: "tumbling update",
		v:    VariantTumbling, emit: EmitUpdate,
		// the n-th counted record: a@1000, a@59000; a@2000 was late, so a
		// third count of window 0 has no cause.
		outs:      []seenOutput{out("a", 0, 0, 1, 15), out("a", 0, 0, 2, 31), out("a", 60000, 0, 2, 90), out("b", 0, 0, 1, 21), out("a", 0, 0, 3, 99)},
		want:      ms(5, 1, 20, 1),
		unmatched: 1,
	}, {
		name: "tumbling update tombstone",
		v:    VariantTumbling, emit: EmitUpdate,
		outs: []seenOutput{{r: WA1Result{Key: "a", Start: 0, Count: 0}, deleted: true, at: 1}},
	}, {
		name: "hopping close",
		v:    VariantHopping, emit: EmitClose,
		// window [0, 300000) closes at stream-time 305000: the marker.
		outs: []seenOutput{out("a", 0, 0, 5, 81)},
		want: ms(1),
	}, {
		name: "hopping update",
		v:    VariantHopping, emit: EmitUpdate,
		// a@2000 is counted in [0, 300000), which is still open: its 4th
		// record; the 3rd is a@64999 (ack 40), the 5th a@70000 (ack 70).
		outs: []seenOutput{out("a", 0, 0, 3, 41), out("a", 0, 0, 4, 61), out("a", 0, 0, 5, 75)},
		want: ms(1, 1, 5),
	}, {
		name: "sliding close",
		v:    VariantSliding, emit: EmitClose,
		// [0, 60000] closes once stream-time passes 65000: a@70000 (ack 70).
		outs: []seenOutput{out("a", 0, 0, 2, 71), out("b", 4999, 0, 1, 80)},
		// [4999, 64999] closes once stream-time passes 69999: also a@70000.
		want: ms(1, 10),
	}, {
		name: "session close",
		v:    VariantSession, emit: EmitClose,
		// session [1000, 1000] closes once stream-time passes
		// 1000+30000+5000: a@59000 (ack 30); [59000, 70000] once it
		// passes 105000: the marker (ack 80).
		outs: []seenOutput{out("a", 1000, 1000, 1, 40), out("a", 59000, 70000, 3, 100)},
		want: ms(10, 20),
	}, {
		name: "session update has no cause",
		v:    VariantSession, emit: EmitUpdate,
		outs: []seenOutput{out("a", 1000, 1000, 1, 40)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, unmatched, err := log.latencies(tt.v, tt.emit, tt.outs)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("latencies (-want +got):\n%s", diff)
			}
			if unmatched != tt.unmatched {
				t.Errorf("unmatched %d, want %d", unmatched, tt.unmatched)
			}
		})
	}
}

// TestSummarize checks the nearest-rank percentiles.
func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d, 2)
	want := &Latency{P50: 50, P99: 99, Max: 100, Outputs: 100, Unmatched: 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("summarize (-want +got):\n%s", diff)
	}
	if got := summarize(nil, 0); got != nil {
		t.Errorf("summarize(nil) = %+v, want nil (not measured, never 0)", got)
	}
	one := summarize([]time.Duration{1500 * time.Microsecond}, 0)
	if diff := cmp.Diff(&Latency{P50: 1.5, P99: 1.5, Max: 1.5, Outputs: 1}, one); diff != "" {
		t.Errorf("summarize(1.5ms) (-want +got):\n%s", diff)
	}
}

// TestProduceWA1 checks the partitions, the end markers and the pacing of
// the producer.
func TestProduceWA1(t *testing.T) {
	ctx := context.Background()
	var got []broker.Record
	s := recordingSender{recs: &got}
	const n, parts, rate = 3000, 3, 30_000
	alog := newAppendLog(parts)
	start := time.Now()
	if _, err := produceWA1(ctx, s, "in", parts, 7, n, 50, rate, true, alog, nil); err != nil {
		t.Fatal(err)
	}
	// 3000 events at 30000/s take 100 ms, less one batch of 10 ms.
	if elapsed := time.Since(start); elapsed < 80*time.Millisecond {
		t.Errorf("3000 events at %d/s took %s, want about 100ms", rate, elapsed)
	}
	if len(got) != n+parts {
		t.Fatalf("%d records, want %d", len(got), n+parts)
	}
	var maxTs int64
	i := 0
	WA1(7, n, 50, func(e WA1Event) {
		r := got[i]
		want := wa1Record("in", parts, e)
		if diff := cmp.Diff(want, r); diff != "" {
			t.Fatalf("record %d (-want +got):\n%s", i, diff)
		}
		maxTs = max(maxTs, e.Timestamp)
		i++
	})
	for p := range int32(parts) {
		m := got[n+int(p)]
		if m.Partition != p || string(m.Key) != "~end-"+string(rune('0'+p)) || m.Timestamp != maxTs+3_600_000 || len(m.Value) != 100 {
			t.Errorf("end marker %d: %+v", p, m)
		}
	}
	total := 0
	for p := range alog.parts {
		total += len(alog.parts[p].ts)
		for _, c := range alog.parts[p].chunks {
			if c.acked.Load() == 0 {
				t.Fatalf("partition %d: a chunk without its ack time", p)
			}
		}
	}
	if total != n+parts {
		t.Errorf("append log holds %d records, want %d", total, n+parts)
	}
}

type recordingSender struct{ recs *[]broker.Record }

func (s recordingSender) send(_ context.Context, recs []broker.Record, acked func()) error {
	*s.recs = append(*s.recs, recs...)
	acked()
	return nil
}

func (recordingSender) flush(context.Context) error { return nil }
