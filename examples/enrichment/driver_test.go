package main

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/eddytest"
	"github.com/eddyflow/eddy/examples/internal/exampletest"
	"github.com/eddyflow/eddy/serde"
)

// enriched is an output record of the topology, or the model's: the
// order, its customer as the join saw it (nil: unknown) and its time.
type enriched struct {
	Enriched
	Time int64
}

// customerRow is a row of the customers table: the customer and the
// time of the record that wrote it.
type customerRow struct {
	Customer Customer
	Time     int64
}

// event is a record of either input, as the model takes them.
type event struct {
	customer *eddytest.Record[string, Customer] // or
	order    *eddytest.Record[string, Order]
}

func (e event) time() int64 {
	if e.customer != nil {
		return e.customer.Time
	}
	return e.order.Time
}

// TestEnrichmentDriver runs the example's topology through eddytest with
// one and three partitions of customers and orders (co-partitioned) and
// checks the enriched orders and the customers table's store against a
// model: the table is the latest customer record processed for each id
// (a tombstone deletes it), and each order is joined with its customer's
// row as the table holds it when the order is processed. The records come
// in batches; each batch is piped in timestamp order, which is the order
// a task takes its two inputs in, and no customer record shares a
// timestamp with an order, so the model processes them in that order
// too. Batches overlap in time: a later batch may hold records older than
// an earlier one's, and the table then still holds the latest processed
// row (a non-versioned table). Between commits the engine crashes twice,
// once soon after a checkpoint of the stores and once long after:
// afterwards every order must still be enriched exactly once.
func TestEnrichmentDriver(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(exampletest.Seed(t), 0))
			b, customersTable := build("")
			d := eddytest.New(t, b, eddytest.Options{Partitions: parts, ManualCommit: true})
			customersIn := eddytest.Input(d, "customers", serde.String(), serde.JSON[Customer]())
			ordersIn := eddytest.Input(d, "orders", serde.String(), serde.JSON[Order]())
			out := eddytest.Output(d, "orders-enriched", serde.String(), serde.JSON[Enriched]())

			ids := make([]string, len(names)+1) // the last one never exists
			for i := range ids {
				ids[i] = fmt.Sprintf("c-%02d", i+1)
			}
			table := map[string]customerRow{} // the model
			var want []enriched
			var known, unknown, updated, deleted int
			var got []eddytest.Record[string, Enriched]
			second := time.Second.Milliseconds()
			base, orderN := Start.UnixMilli(), 0
			for step := range 30 {
				// Records within two minutes of base: customers on whole
				// seconds, orders half a second off.
				base += 30*second + r.Int64N(60)*second
				at := func() int64 { return base + (r.Int64N(120)-60)*second }
				var events []event
				for range r.IntN(5) {
					ts := at()
					events = append(events, event{customer: &eddytest.Record[string, Customer]{Time: ts}})
				}
				for range 1 + r.IntN(20) {
					orderN++
					id := ids[r.IntN(len(ids))]
					o := Order{ID: fmt.Sprintf("o-%04d", orderN), Customer: id, Amount: 500 + 5*r.Int64N(2000)}
					events = append(events, event{order: &eddytest.Record[string, Order]{Key: id, Value: o, Time: at() + second/2}})
				}
				slices.SortStableFunc(events, func(a, b event) int { return cmp.Compare(a.time(), b.time()) })

				// The model, in processing order; customer records are
				// drawn as it goes: a create, an upgrade or rename, or a
				// deletion.
				var custRecs []eddytest.Record[string, Customer]
				var orderRecs []eddytest.Record[string, Order]
				for _, e := range events {
					if o := e.order; o != nil {
						orderRecs = append(orderRecs, *o)
						en := enriched{Enriched{Order: o.Value}, o.Time}
						if row, ok := table[o.Key]; ok {
							c := row.Customer
							en.Customer = &c
							known++
						} else {
							unknown++
						}
						want = append(want, en)
						continue
					}
					i := r.IntN(len(names))
					rec := e.customer
					rec.Key = ids[i]
					row, ok := table[rec.Key]
					switch {
					case !ok:
						rec.Value = Customer{ID: rec.Key, Name: names[i], Tier: tiers[0]}
					case r.IntN(4) == 0:
						rec.Tombstone = true
						deleted++
					case r.IntN(3) == 0:
						rec.Value = row.Customer
						rec.Value.Name += " Corp"
						updated++
					default:
						rec.Value = row.Customer
						rec.Value.Tier = tiers[min(len(tiers)-1, slices.Index(tiers, row.Customer.Tier)+1)]
						updated++
					}
					if rec.Tombstone {
						delete(table, rec.Key)
					} else {
						table[rec.Key] = customerRow{rec.Value, rec.Time}
					}
					custRecs = append(custRecs, *rec)
				}
				if len(custRecs) > 0 {
					customersIn.PipeRecords(custRecs...)
				}
				ordersIn.PipeRecords(orderRecs...)

				switch step {
				case 5: // the next commit checkpoints the stores
					d.AdvanceWallClock(2 * time.Second)
					d.Run()
				case 11, 22: // processed, then lost
					if n := d.Process(); n == 0 {
						t.Fatalf("step %d: nothing processed before the crash", step)
					}
					got = append(got, out.ReadRecords()...) // committed only
					d.Crash()
					d.Restart()
					// How much is restored from the changelogs depends on what
					// the state DB had synced: not checked.
					t.Logf("step %d: restart restored %d changelog records", step, d.Engine().Metrics().RestoredRecords)
					d.Run()
				default:
					d.Run()
				}
				got = append(got, out.ReadRecords()...)
			}
			if known == 0 || unknown == 0 || updated == 0 || deleted == 0 {
				t.Fatalf("input too plain: %d orders of known customers, %d of unknown ones; %d customer updates, %d deletions", known, unknown, updated, deleted)
			}

			// Each order enriched once, with the customer the model saw.
			var enr []enriched
			for _, rec := range got {
				if rec.Key != rec.Value.Order.Customer {
					t.Errorf("order %s of customer %s keyed %q", rec.Value.Order.ID, rec.Value.Order.Customer, rec.Key)
				}
				enr = append(enr, enriched{rec.Value, rec.Time})
			}
			byOrder := func(a, b enriched) int { return cmp.Compare(a.Order.ID, b.Order.ID) }
			slices.SortStableFunc(enr, byOrder)
			slices.SortStableFunc(want, byOrder)
			if diff := gocmp.Diff(want, enr); diff != "" {
				t.Errorf("enriched orders (-want +got):\n%s", diff)
			}

			// The table's store holds the latest row of every customer.
			rows := map[string]customerRow{}
			for _, row := range eddytest.Rows(d, customersTable) {
				rows[row.Key] = customerRow{row.Value, row.Time}
			}
			if diff := gocmp.Diff(table, rows); diff != "" {
				t.Errorf("customers store (-want +got):\n%s", diff)
			}
			for _, id := range ids {
				row, ok := eddytest.Lookup(d, customersTable, id)
				w, in := table[id]
				if ok != in || row.Value != w.Customer || row.Time != w.Time {
					t.Errorf("Lookup(%s) = %+v at %d, %v; want %+v at %d, %v", id, row.Value, row.Time, ok, w.Customer, w.Time, in)
				}
			}
		})
	}
}
