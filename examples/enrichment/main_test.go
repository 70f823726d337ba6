package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/serde"
)

// TestEnrichment checks the printed results against a join computed
// directly from the generated input: each order with the latest version
// of its customer stamped before the order, or unknown if there is none
// or the latest is a tombstone. The engine reads the two topics in
// timestamp order, and no order shares a timestamp with a customer
// record, so that is the version the table holds when the order is
// processed.
func TestEnrichment(t *testing.T) { testEnrichment(t, nil) }

// TestEnrichmentKafka runs the same check on Kafka (kfake, in-process).
func TestEnrichmentKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testEnrichment(t, c.ListenAddrs())
}

// TestRealKafkaEnrichment runs it on the real broker EDDY_KAFKA_BROKERS
// names (make test-kafka).
func TestRealKafkaEnrichment(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	testEnrichment(t, strings.Split(brokers, ","))
}

func testEnrichment(t *testing.T, brokers []string) {
	const seed, orders = 7, 500
	results, m, err := Run(context.Background(), Config{Events: orders, Seed: seed, Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}

	input := Generate(seed, orders)
	versions := map[string][]broker.Record{} // per customer, in time order
	var want []Result
	// The orders of each case, which the input must all hold, or the
	// check says little: no customer yet, an updated one, a deleted
	// one, a customer id that never exists.
	var early, updated, deleted, never int
	for _, r := range input {
		switch r.Topic {
		case "customers":
			versions[string(r.Key)] = append(versions[string(r.Key)], r)
		case "orders":
			o, err := serde.JSON[Order]().Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			e := Enriched{Order: o}
			latest := -1
			for i, v := range versions[o.Customer] {
				if v.Timestamp == r.Timestamp {
					t.Fatalf("order %s and a record of customer %s both at %d: which comes first is a tie", o.ID, o.Customer, r.Timestamp)
				}
				if v.Timestamp < r.Timestamp {
					latest = i
				}
			}
			switch {
			case len(versions[o.Customer]) == 0:
				never++
			case latest < 0:
				early++
			case versions[o.Customer][latest].Value == nil:
				deleted++
			default:
				if latest > 0 {
					updated++
				}
				c, err := serde.JSON[Customer]().Decode(versions[o.Customer][latest].Value)
				if err != nil {
					t.Fatal(err)
				}
				e.Customer = &c
			}
			want = append(want, resultOf(e, r.Timestamp))
		default:
			t.Fatalf("record of topic %q", r.Topic)
		}
	}
	if early == 0 || updated == 0 || deleted == 0 || never == 0 {
		t.Errorf("generated input too plain: orders of customers not created yet %d, updated %d, deleted %d, never created %d", early, updated, deleted, never)
	}
	var wantOut, gotOut bytes.Buffer
	Print(&wantOut, sortResults(want))
	Print(&gotOut, results)
	if diff := cmp.Diff(wantOut.String(), gotOut.String()); diff != "" {
		t.Errorf("printed results (-want +got):\n%s", diff)
	}
	if m.RecordsIn < int64(len(input)) {
		t.Errorf("engine read %d records, want at least %d", m.RecordsIn, len(input))
	}
}
