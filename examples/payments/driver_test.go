package main

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/eddytest"
	"github.com/eddyflow/eddy/examples/internal/exampletest"
	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/serde"
)

// settled is an output record of the topology, or the model's.
type settled struct {
	Settlement
	Time int64
}

func compareSettled(a, b settled) int {
	method := func(s settled) string {
		if s.Payment == nil {
			return ""
		}
		return s.Payment.Method
	}
	return cmp.Or(strings.Compare(a.Order.ID, b.Order.ID), cmp.Compare(a.Time, b.Time), strings.Compare(method(a), method(b)))
}

// stamped is a record a join side retains, or an order held back.
type stamped[V any] struct {
	key   string
	time  int64
	value V
}

// joinPartition is the model's state of one partition's task.
type joinPartition struct {
	orderTime, paymentTime int64 // each side's stream-time
	orders                 []stamped[Order]
	payments               []stamped[Payment]
	held                   []stamped[Order] // unmatched orders waiting for their window to close
}

// paymentsModel is the reference of the topology, partition by partition
// (the two topics are co-partitioned by order id; a task takes its two
// partitions in timestamp order). Stream-time is the largest time of
// either side. An order at t joins the retained payments of its id in
// [t-Window, t+Window], and a payment at t the retained orders in the
// same range, each pair stamped with the later time. An order that
// finds none is held back until stream-time passes t+Window+Grace, then
// emitted unpaid at t, by the next record at stream-time; a payment
// matching it first takes it back. An order that arrives after its own
// window ended is emitted unpaid at once. Each side retains its records
// Window+Window+Grace behind its own stream-time; a record older than
// that still joins, but is not retained.
type paymentsModel struct {
	partitions int32
	tasks      []joinPartition
	emitted    []settled
	// Cases the input must hold.
	heldEmitted, atOnce, unmatchedPayments, paidAfterUnpaid int
}

func newPaymentsModel(partitions int32) *paymentsModel {
	m := &paymentsModel{partitions: partitions, tasks: make([]joinPartition, partitions)}
	for i := range m.tasks {
		m.tasks[i].orderTime, m.tasks[i].paymentTime = math.MinInt64, math.MinInt64
	}
	return m
}

var (
	windowMs    = Window.Milliseconds()
	graceMs     = Grace.Milliseconds()
	retentionMs = 2*windowMs + graceMs
)

// visibleFrom is the oldest time a side with stream-time st retains.
func visibleFrom(st int64) int64 {
	if st == math.MinInt64 {
		return math.MinInt64
	}
	return st - retentionMs + 1
}

func (m *paymentsModel) task(key string) *joinPartition {
	return &m.tasks[murmur2.Partition([]byte(key), m.partitions)]
}

// emitDue emits the held orders whose window and grace have passed.
func (m *paymentsModel) emitDue(j *joinPartition, now int64) {
	j.held = slices.DeleteFunc(j.held, func(h stamped[Order]) bool {
		if h.time < now-windowMs-graceMs {
			m.emitted = append(m.emitted, settled{Settlement{Order: h.value}, h.time})
			m.heldEmitted++
			return true
		}
		return false
	})
}

// matching returns the records of key in recs with from <= time <= to,
// in time then arrival order.
func matching[V any](recs []stamped[V], key string, from, to int64) []stamped[V] {
	var out []stamped[V]
	for _, r := range recs {
		if r.key == key && from <= r.time && r.time <= to {
			out = append(out, r)
		}
	}
	slices.SortStableFunc(out, func(a, b stamped[V]) int { return cmp.Compare(a.time, b.time) })
	return out
}

func (m *paymentsModel) order(o Order, t int64) {
	j := m.task(o.ID)
	j.orderTime = max(j.orderTime, t)
	now := max(j.orderTime, j.paymentTime)
	if t == now {
		m.emitDue(j, now)
	}
	matches := matching(j.payments, o.ID, max(t-windowMs, visibleFrom(j.paymentTime)), t+windowMs)
	for _, p := range matches {
		pay := p.value
		m.emitted = append(m.emitted, settled{Settlement{Order: o, Payment: &pay}, max(t, p.time)})
	}
	switch {
	case len(matches) > 0:
	case t+windowMs < now:
		m.emitted = append(m.emitted, settled{Settlement{Order: o}, t})
		m.atOnce++
	default:
		j.held = append(j.held, stamped[Order]{o.ID, t, o})
	}
	if t >= visibleFrom(j.orderTime) {
		j.orders = append(j.orders, stamped[Order]{o.ID, t, o})
	}
}

func (m *paymentsModel) payment(p Payment, t int64) {
	j := m.task(p.OrderID)
	j.paymentTime = max(j.paymentTime, t)
	now := max(j.orderTime, j.paymentTime)
	if t == now {
		m.emitDue(j, now)
	}
	matches := matching(j.orders, p.OrderID, max(t-windowMs, visibleFrom(j.orderTime)), t+windowMs)
	for _, o := range matches {
		held := len(j.held)
		j.held = slices.DeleteFunc(j.held, func(h stamped[Order]) bool { return h.key == o.key && h.time == o.time })
		if held == len(j.held) && !slices.ContainsFunc(m.emitted, func(s settled) bool { return s.Order.ID == o.key && s.Payment != nil }) {
			m.paidAfterUnpaid++ // neither held nor paid before: emitted unpaid
		}
		pay := p
		m.emitted = append(m.emitted, settled{Settlement{Order: o.value, Payment: &pay}, max(t, o.time)})
	}
	if len(matches) == 0 {
		m.unmatchedPayments++
	}
	if t >= visibleFrom(j.paymentTime) {
		j.payments = append(j.payments, stamped[Payment]{p.OrderID, t, p})
	}
}

// input is a record of either topic.
type input struct {
	order   *eddytest.Record[string, Order]
	payment *eddytest.Record[string, Payment]
	arrival int64 // when it reaches its topic
}

func (in input) time() int64 {
	if in.order != nil {
		return in.order.Time
	}
	return in.payment.Time
}

// generateOrders returns n orders about every 40 s from Start and their
// payments, as Generate draws them (never paid, paid too late, paid
// twice, or paid once from 3 minutes before to 10 after), by arrival:
// each record arrives up to 2 minutes after its time, more than the
// grace; some unpaid orders arrive 20 minutes late, after their window,
// and some payments made in the window 6 minutes late, after it closed.
// Orders are stamped on even milliseconds and payments on odd ones, so
// that no two records of a task's two inputs tie.
func generateOrders(r *rand.Rand, n int) []input {
	minute := time.Minute.Milliseconds()
	var ins []input
	// add adds a record arriving late by up to 2 minutes, plus extra.
	add := func(o *eddytest.Record[string, Order], p *eddytest.Record[string, Payment], extra int64) {
		in := input{order: o, payment: p}
		in.arrival = in.time() + r.Int64N(2*minute) + extra
		ins = append(ins, in)
	}
	for i := range n {
		o := Order{ID: fmt.Sprintf("o-%04d", i+1), User: users[r.IntN(len(users))], Amount: 500 + 5*r.Int64N(2000), Item: items[r.IntN(len(items))]}
		ts := Start.UnixMilli() + int64(i)*40_000 + r.Int64N(40_000)
		ts -= ts % 2
		k := r.IntN(12)
		var extra int64
		if k == 10 { // never paid, and the order arrives after its window
			extra = 20 * minute
		}
		add(&eddytest.Record[string, Order]{Key: o.ID, Value: o, Time: ts}, nil, extra)
		pay := func(at, extra int64) {
			p := Payment{OrderID: o.ID, Amount: o.Amount, Method: methods[r.IntN(len(methods))]}
			add(nil, &eddytest.Record[string, Payment]{Key: o.ID, Value: p, Time: at - at%2 + 1}, extra)
		}
		switch {
		case k == 0 || k == 10: // never paid
		case k == 11: // paid in the window, but the payment arrives after it closed
			pay(ts+9*minute+r.Int64N(minute), 6*minute)
		case k == 1: // paid too late
			pay(ts+10*minute+2+r.Int64N(10*minute), 0)
		case k == 2: // paid twice
			pay(ts+r.Int64N(4*minute), 0)
			pay(ts+5*minute+r.Int64N(4*minute), 0)
		default:
			pay(ts-3*minute+r.Int64N(13*minute), 0)
		}
	}
	slices.SortStableFunc(ins, func(a, b input) int { return cmp.Compare(a.arrival, b.arrival) })
	return ins
}

// TestPaymentsDriver runs the example's topology through eddytest with
// one and three partitions of orders and payments and checks its output
// against paymentsModel. The records are piped in batches by arrival,
// each batch in timestamp order, which is the order a task takes its two
// inputs in; the batches come up to 2 minutes out of order, more than
// the grace, so some payments find their order already reported unpaid,
// and some orders come after their window ended. Between commits the
// engine crashes twice, once soon after a checkpoint of the stores and
// once long after: afterwards every row must still be emitted exactly
// once.
func TestPaymentsDriver(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(exampletest.Seed(t), 0))
			d := eddytest.New(t, Topology(), eddytest.Options{Partitions: parts, ManualCommit: true})
			ordersIn := eddytest.Input(d, "orders", serde.String(), serde.JSON[Order]())
			paymentsIn := eddytest.Input(d, "payments", serde.String(), serde.JSON[Payment]())
			out := eddytest.Output(d, "payments-matched", serde.String(), serde.JSON[Settlement]())

			m := newPaymentsModel(parts)
			ins := generateOrders(r, 300)
			var got []eddytest.Record[string, Settlement]
			for step := 0; len(ins) > 0; step++ {
				batch := ins[:min(len(ins), 1+r.IntN(30))]
				ins = ins[len(batch):]
				slices.SortStableFunc(batch, func(a, b input) int { return cmp.Compare(a.time(), b.time()) })
				var orders []eddytest.Record[string, Order]
				var payments []eddytest.Record[string, Payment]
				for _, in := range batch {
					if in.order != nil {
						orders = append(orders, *in.order)
						m.order(in.order.Value, in.order.Time)
					} else {
						payments = append(payments, *in.payment)
						m.payment(in.payment.Value, in.payment.Time)
					}
				}
				if len(orders) > 0 {
					ordersIn.PipeRecords(orders...)
				}
				if len(payments) > 0 {
					paymentsIn.PipeRecords(payments...)
				}
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
			t.Logf("%d rows: %d unpaid after their window, %d unpaid at once, %d paid after being reported unpaid; %d payments matched nothing",
				len(m.emitted), m.heldEmitted, m.atOnce, m.paidAfterUnpaid, m.unmatchedPayments)
			if m.heldEmitted == 0 || m.atOnce == 0 || m.paidAfterUnpaid == 0 || m.unmatchedPayments == 0 || len(m.emitted) < 200 {
				t.Fatalf("input too plain")
			}

			var rows []settled
			for _, rec := range got {
				if rec.Key != rec.Value.Order.ID {
					t.Errorf("row of order %s keyed %q", rec.Value.Order.ID, rec.Key)
				}
				rows = append(rows, settled{rec.Value, rec.Time})
			}
			slices.SortStableFunc(rows, compareSettled)
			slices.SortStableFunc(m.emitted, compareSettled)
			if diff := gocmp.Diff(m.emitted, rows); diff != "" {
				t.Errorf("rows (-want +got):\n%s", diff)
			}
		})
	}
}
