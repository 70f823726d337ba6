package benchmarks

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// WA1Epoch is the event time of WA1's first event.
var WA1Epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// WA1Event is one event of the WA1 workload.
type WA1Event struct {
	Key       string
	Timestamp int64 // ms
	Value     []byte
}

// WA1 generates the n events of WA1 over k keys for a seed, calling emit
// for each in order. Any system fed the same seed sees byte-identical
// events: the generator is specified exactly by the benchmark issue.
func WA1(seed uint64, n, k int, emit func(WA1Event)) {
	r := rand.New(rand.NewPCG(seed, 0))
	z := rand.NewZipf(r, 1.1, 1, uint64(k-1))
	base := WA1Epoch.UnixMicro()
	value := make([]byte, 100)
	for i := range n {
		key := z.Uint64()
		us := base + int64(i)*10
		if r.Float64() < 0.1 {
			us -= r.Int64N(2_000_000)
		}
		ms := us / 1000
		binary.BigEndian.PutUint64(value, uint64(ms))
		emit(WA1Event{Key: "u" + strconv.FormatUint(key, 10), Timestamp: ms, Value: value})
	}
}

// WA1Topology counts events per key per one-minute tumbling window with
// 5 s grace, emitting each window once when it closes.
func WA1Topology(input, output string) *topology.Builder {
	b := topology.New("wa1")
	events := topology.StreamFrom(b, input, serde.String(), serde.Bytes())
	topology.CountWindows(
		events.GroupByKey().WindowedBy(window.Tumbling(time.Minute).Grace(5*time.Second)).EmitOnWindowClose(),
		topology.Named("counts")).
		ToStream().To(output)
	return b
}

// WA1Variant names the windows of a WA1 variant. WA1 itself is
// VariantTumbling; the others count the same events per key in other
// windows, all with WA1's 5 s grace.
type WA1Variant string

// The WA1 variants.
const (
	// VariantTumbling is WA1: one-minute tumbling windows.
	VariantTumbling WA1Variant = "tumbling"
	// VariantHopping: five-minute windows starting every minute.
	VariantHopping WA1Variant = "hopping"
	// VariantSliding: sliding windows of one minute (window.Sliding).
	VariantSliding WA1Variant = "sliding"
	// VariantSession: session windows with a 30 s inactivity gap.
	VariantSession WA1Variant = "session"
)

// WA1Variants lists the variants in the order they are documented.
var WA1Variants = []WA1Variant{VariantTumbling, VariantHopping, VariantSliding, VariantSession}

// WA1Emit says when a WA1 variant emits: once per window when it closes
// (WA1's own mode), or on every update, throttled by the engine's cache.
type WA1Emit string

// The emit modes.
const (
	EmitClose  WA1Emit = "close"
	EmitUpdate WA1Emit = "update"
)

// Timing of the WA1 variants' windows, in ms.
const (
	wa1Size        = 60_000  // tumbling size, sliding maxDiff
	wa1HoppingSize = 300_000 // hopping size; it advances by wa1Size
	wa1Grace       = 5_000
	wa1SessionGap  = 30_000
)

// WA1VariantTopology counts the events of input per key in the windows of
// variant v with 5 s grace, emitting as emit says, and writes the counts
// to output. The application (and consumer group) is app, so that runs
// sharing a broker do not meet. Keys are written with serde.Windowed
// (tumbling, hopping, sliding; the sliding window size is its maxDiff) or
// serde.SessionWindowed (session); counts as serde.Int64. With
// EmitOnWindowClose each window is written once; on update, the table's
// changes are written with To, so a session replaced by a merge gets a
// tombstone. WA1VariantTopology("wa1", ..., VariantTumbling, EmitClose) is
// WA1Topology.
func WA1VariantTopology(app, input, output string, v WA1Variant, emit WA1Emit) (*topology.Builder, error) {
	if emit != EmitClose && emit != EmitUpdate {
		return nil, fmt.Errorf("benchmarks: WA1 emit mode %q: want %q or %q", emit, EmitClose, EmitUpdate)
	}
	b := topology.New(app)
	events := topology.StreamFrom(b, input, serde.String(), serde.Bytes()).GroupByKey()
	grace := time.Duration(wa1Grace) * time.Millisecond
	var counts topology.Table[window.Windowed[string], int64]
	switch v {
	case VariantTumbling, VariantHopping, VariantSliding:
		spec := window.Tumbling(time.Minute)
		switch v {
		case VariantHopping:
			spec = window.Hopping(wa1HoppingSize*time.Millisecond, time.Minute)
		case VariantSliding:
			spec = window.Sliding(time.Minute)
		}
		w := events.WindowedBy(spec.Grace(grace))
		if emit == EmitClose {
			w = w.EmitOnWindowClose()
		}
		counts = topology.CountWindows(w, topology.Named("counts"))
	case VariantSession:
		w := events.SessionWindowedBy(window.Sessions(wa1SessionGap * time.Millisecond).Grace(grace))
		if emit == EmitClose {
			w = w.EmitOnWindowClose()
		}
		counts = topology.CountSessions(w, topology.Named("counts"))
	default:
		return nil, fmt.Errorf("benchmarks: unknown WA1 variant %q (want tumbling, hopping, sliding or session)", v)
	}
	if emit == EmitClose {
		counts.ToStream().To(output)
	} else {
		counts.To(output)
	}
	return b, nil
}
