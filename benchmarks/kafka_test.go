package benchmarks

import (
	"testing"
)

// TestOutputWatch checks when a system's output counts as complete: an
// emit-on-close system writes each window once, so presence is enough;
// running counts (goka, emit on update) must reach the expected count,
// and a tombstone takes a window away again.
func TestOutputWatch(t *testing.T) {
	expected := []WA1Result{{Key: "a", Start: 0, Count: 2}, {Key: "b", Start: 0, Count: 1}}
	complete := func(w *outputWatch) bool {
		select {
		case <-w.complete:
			return true
		default:
			return false
		}
	}
	type step struct {
		r        WA1Result
		deleted  bool
		complete bool
	}
	tests := []struct {
		name   string
		format OutputFormat
		emit   WA1Emit
		steps  []step
		// stamped is the outputs kept for latency: each first seen.
		stamped int
	}{
		{"final", FormatWindowed, EmitClose, []step{
			{WA1Result{Key: "a", Start: 0, Count: 2}, false, false},
			{WA1Result{Key: "c", Start: 0, Count: 1}, false, false}, // not expected
			{WA1Result{Key: "b", Start: 0, Count: 5}, false, true},  // present: complete, compared later
		}, 3},
		{"running counts", FormatGoka, EmitClose, []step{
			{WA1Result{Key: "a", Start: 0, Count: 1}, false, false},
			{WA1Result{Key: "b", Start: 0, Count: 1}, false, false},
			{WA1Result{Key: "a", Start: 0, Count: 2}, false, true},
		}, 3},
		{"update with tombstone", FormatWindowed, EmitUpdate, []step{
			{WA1Result{Key: "a", Start: 0, Count: 2}, false, false},
			{WA1Result{Key: "a", Start: 0}, true, false},
			{WA1Result{Key: "b", Start: 0, Count: 1}, false, false},
			{WA1Result{Key: "a", Start: 0, Count: 2}, false, true}, // seen before: not stamped again
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newOutputWatch(tt.format, VariantTumbling, tt.emit, expected, true)
			for i, s := range tt.steps {
				w.add(s.r, s.deleted, int64(i))
				if got := complete(w); got != s.complete {
					t.Fatalf("after step %d (%+v): complete %v, want %v", i, s, got, s.complete)
				}
			}
			if len(w.outs) != tt.stamped {
				t.Errorf("%d outputs stamped, want %d", len(w.outs), tt.stamped)
			}
		})
	}
	if w := newOutputWatch(FormatWindowed, VariantTumbling, EmitClose, []WA1Result{}, false); !complete(w) {
		t.Error("nothing expected: not complete at once")
	}
}
