package benchmarks

import (
	"encoding/binary"
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
