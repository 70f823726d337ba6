package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/serde"
)

// TestPayments checks the printed results against a join computed
// directly from the generated input: one paid row per payment of the same
// order within Window either way, stamped with the later time, and one
// unpaid row, at the order's time, for each order with none. Each topic is
// in time order and the engine reads the two in timestamp order, so no
// payment comes after its order's window closed.
func TestPayments(t *testing.T) { testPayments(t, nil) }

// TestPaymentsKafka runs the same check on Kafka (kfake, in-process).
func TestPaymentsKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testPayments(t, c.ListenAddrs())
}

// TestRealKafkaPayments runs it on the real broker EDDY_KAFKA_BROKERS
// names (make test-kafka).
func TestRealKafkaPayments(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	testPayments(t, strings.Split(brokers, ","))
}

func testPayments(t *testing.T, brokers []string) {
	const seed, orders = 7, 500
	results, m, err := Run(context.Background(), Config{Events: orders, Seed: seed, Brokers: brokers})
	if err != nil {
		t.Fatal(err)
	}

	type payment struct {
		p  Payment
		ts int64
	}
	type order struct {
		o  Order
		ts int64
	}
	var ords []order
	pays := map[string][]payment{}
	input := Generate(seed, orders)
	for _, r := range input {
		switch r.Topic {
		case "orders":
			o, err := serde.JSON[Order]().Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			ords = append(ords, order{o, r.Timestamp})
		case "payments":
			p, err := serde.JSON[Payment]().Decode(r.Value)
			if err != nil {
				t.Fatal(err)
			}
			pays[string(r.Key)] = append(pays[string(r.Key)], payment{p, r.Timestamp})
		default:
			t.Fatalf("record of topic %q", r.Topic)
		}
	}
	win := Window.Milliseconds()
	var want []Result
	twice, late := 0, 0 // orders paid twice in the window, or outside it
	for _, o := range ords {
		n := 0
		for _, p := range pays[o.o.ID] {
			if o.ts-win <= p.ts && p.ts <= o.ts+win {
				n++
				want = append(want, resultOf(Settlement{Order: o.o, Payment: &p.p}, max(o.ts, p.ts)))
			} else {
				late++
			}
		}
		if n == 0 {
			want = append(want, resultOf(Settlement{Order: o.o}, o.ts))
		}
		if n > 1 {
			twice++
		}
	}
	var wantOut, gotOut bytes.Buffer
	Print(&wantOut, sortResults(want))
	Print(&gotOut, results)
	if diff := cmp.Diff(wantOut.String(), gotOut.String()); diff != "" {
		t.Errorf("printed results (-want +got):\n%s", diff)
	}
	// The input must hold every case, or the check says little.
	if paid, unpaid := Summarize(want); paid < orders/2 || unpaid == 0 || twice == 0 || late == 0 {
		t.Errorf("generated input too plain: %d paid, %d unpaid, %d orders paid twice, %d payments late", paid, unpaid, twice, late)
	}
	if m.LateRecords != 0 {
		t.Errorf("%d late records, want 0", m.LateRecords)
	}
	if m.RecordsIn < int64(len(input)) {
		t.Errorf("engine read %d records, want at least %d", m.RecordsIn, len(input))
	}
}
