package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/serde"
)

// TestPageviews checks the printed results against counts computed
// directly from the generated input. The input's jitter (3 s) is below
// the grace (10 s), so no view is late and every view is counted.
func TestPageviews(t *testing.T) { testPageviews(t, nil) }

// TestPageviewsKafka runs the same check on Kafka (kfake, in-process).
func TestPageviewsKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testPageviews(t, c.ListenAddrs())
}

// TestRealKafkaPageviews runs it on the real broker EDDY_KAFKA_BROKERS
// names (make test-kafka).
func TestRealKafkaPageviews(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	testPageviews(t, strings.Split(brokers, ","))
}

func testPageviews(t *testing.T, brokers []string) {
	const seed, events = 7, 5000
	results, m, err := Run(context.Background(), Config{Events: events, Seed: seed, Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		region string
		start  int64
	}
	counts := map[key]int64{}
	for _, r := range Generate(seed, events) {
		v, err := serde.JSON[PageView]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		if v.Region != "" {
			counts[key{v.Region, r.Timestamp - r.Timestamp%time.Minute.Milliseconds()}]++
		}
	}
	var want []Result
	for k, n := range counts {
		want = append(want, Result{Region: k.region, Start: time.UnixMilli(k.start).UTC(), Count: n})
	}
	var wantOut, gotOut bytes.Buffer
	Print(&wantOut, sortResults(want))
	Print(&gotOut, results)
	if diff := cmp.Diff(wantOut.String(), gotOut.String()); diff != "" {
		t.Errorf("printed results (-want +got):\n%s", diff)
	}
	if m.LateRecords != 0 {
		t.Errorf("%d late records, want 0", m.LateRecords)
	}
	if m.RecordsIn < events {
		t.Errorf("engine read %d records, want at least %d", m.RecordsIn, events)
	}
}
