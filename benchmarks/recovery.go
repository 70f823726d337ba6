package benchmarks

import (
	"math/rand/v2"
	"strconv"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// ResumeTopology is the recovery workload: it counts records per key, a
// key-value aggregation whose state holds one entry per key, and writes
// every new count to output. Input values are ignored, but must not be
// nil: aggregations skip records with a nil value, as Kafka Streams'
// skip null values.
func ResumeTopology(input, output string) *topology.Builder {
	b := topology.New("resume")
	records := topology.StreamFrom(b, input, serde.String(), serde.Bytes())
	records.GroupByKey().Count(topology.Named("counts")).To(output)
	return b
}

// ResumeKey is the i-th key of the recovery workload's state.
func ResumeKey(i int) string { return "k" + strconv.Itoa(i) }

// ResumeRecords returns n input records of topic for keys drawn uniformly
// from the first keys keys, so each updates an existing entry of the state.
func ResumeRecords(r *rand.Rand, topic string, keys, n int) []broker.Record {
	recs := make([]broker.Record, n)
	for i := range recs {
		recs[i] = ResumeRecord(topic, r.IntN(keys))
	}
	return recs
}

// ResumeRecord returns an input record of topic for the i-th key.
func ResumeRecord(topic string, i int) broker.Record {
	return broker.Record{Topic: topic, Partition: broker.AnyPartition, Key: []byte(ResumeKey(i)), Value: []byte{1}}
}
