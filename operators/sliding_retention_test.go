package operators

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
)

// slidingStored returns the windows of the harness's store as
// "key@start" -> "aggregate time".
func (h *slidingHarness) stored() map[string]string {
	h.t.Helper()
	got := map[string]string{}
	err := h.a.store.Range(math.MinInt64, math.MaxInt64, func(key []byte, start int64, v []byte) error {
		ts, agg, err := decodeTimestamped(v, serde.String())
		got[fmt.Sprintf("%s@%d", key, start)] = fmt.Sprintf("%s %d", agg, ts)
		return err
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return got
}

// TestSlidingRetentionModel runs random streams through a SlidingAggregate
// with a random RetentionMs (at least 2*maxDiff + grace) and through
// slidingModel, which keeps every window forever. Retention must not
// change the output nor the late records. Every few records the store
// must hold, with the model's values, every window still within its
// retention (stream-time < start + retention), only windows the model
// has, and none below the expiry floor: min(closeTime-2d-1,
// stream-time-retention+1) less one expiry step, max(d, 1s); after every
// record, the windows that just reached the end of their retention.
func TestSlidingRetentionModel(t *testing.T) {
	for i := range 30 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			seed := testSeed(t)
			r := rand.New(rand.NewPCG(seed, 5))
			d := []int64{0, 1, 5, 10, 20, r.Int64N(50)}[r.IntN(6)]
			grace := []int64{0, 0, r.Int64N(20), r.Int64N(200)}[r.IntN(4)]
			final := r.IntN(2) == 0
			cache := []int{0, 64, 1 << 20}[r.IntN(3)]
			retention := 2*d + grace + []int64{0, r.Int64N(d + 5), r.Int64N(3000)}[r.IntN(3)]
			t.Logf("d=%d grace=%d final=%v cache=%d retention=%d", d, grace, final, cache, retention)
			h := newSlidingHarness(t, d, grace, final, cache)
			h.retention = retention
			h.restart() // reopen with the retention
			m := newSlidingModel(d, grace, final)
			ts := r.Int64N(2*d + 3)
			checked := 0
			for n := range 800 + r.IntN(600) {
				ts += r.Int64N(10)
				rts := ts
				if r.IntN(4) == 0 {
					rts -= r.Int64N([]int64{3, d + 2, 3*d + grace + 10}[r.IntN(3)])
				}
				key := fmt.Sprintf("k%d", r.IntN(3))
				val := fmt.Sprintf("v%d", n)
				m.process(key, val, rts)
				h.push(key, val, rts)
				if r.IntN(60) == 0 {
					h.restart()
				}
				// The oldest windows that must still be stored, at every
				// record: deleting one a millisecond early fails here.
				for key, wins := range m.wins {
					for start := m.streamTime - retention + 1; start <= m.streamTime-retention+10; start++ {
						if _, ok := wins[start]; !ok {
							continue
						}
						if _, ok, err := h.a.store.Get([]byte(key), start); err != nil || !ok {
							t.Fatalf("after record %d (stream-time %d): window %s@%d within its retention is not stored (%v)", n, m.streamTime, key, start, err)
						}
					}
				}
				if r.IntN(30) != 0 || m.streamTime < 0 {
					continue
				}
				checked++
				got := h.stored()
				floor := min(m.closeTime-2*d-1, m.streamTime-retention+1) - max(d, minPurgeStepMs)
				for key, wins := range m.wins {
					for start, w := range wins {
						id := fmt.Sprintf("%s@%d", key, start)
						g, ok := got[id]
						switch {
						case ok && g != fmt.Sprintf("%s %d", w, w.maxTs):
							t.Fatalf("after record %d: window %s stored as %q, model %q", n, id, g, fmt.Sprintf("%s %d", w, w.maxTs))
						case !ok && m.streamTime < start+retention:
							t.Fatalf("after record %d (stream-time %d): window %s within its retention is not stored", n, m.streamTime, id)
						case ok && start < floor:
							t.Fatalf("after record %d (stream-time %d): window %s is stored below the expiry floor %d", n, m.streamTime, id, floor)
						}
						delete(got, id)
					}
				}
				if len(got) != 0 {
					t.Fatalf("after record %d: windows the model does not have: %v", n, got)
				}
			}
			t.Logf("store checked %d times", checked)
			m.finish()
			h.finish()
			if final || cache == 0 {
				if diff := gocmp.Diff(m.out, h.out); diff != "" {
					t.Fatalf("output (-model +operator):\n%s", diff)
				}
			} else if diff := gocmp.Diff(lastPerWindow(m.out), lastPerWindow(h.out)); diff != "" {
				t.Fatalf("last value per window (-model +operator):\n%s", diff)
			}
			if diff := gocmp.Diff(m.late, h.late); diff != "" {
				t.Fatalf("late records (-model +operator):\n%s", diff)
			}
			if got := h.entries(); len(got) != 0 {
				t.Errorf("windows left after Finish: %v", got)
			}
		})
	}
}
