package operators

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/window"
)

// TestRetentionTooShort checks that each windowed operator refuses, at
// Init, a RetentionMs below its window's size (sessions: gap; sliding:
// twice the maximum difference) plus grace, naming itself, and accepts
// exactly that.
func TestRetentionTooShort(t *testing.T) {
	fold := func(_ string, v string, agg string, found bool) string { return agg + v }
	minimum := map[string]int64{"hopping": 13, "sliding": 23, "session": 13}
	inits := map[string]func(retention int64) Processor[string, string]{
		"hopping": func(r int64) Processor[string, string] {
			return &WindowAggregate[string, string, string]{Name: "op", Store: "s", RetentionMs: r,
				Spec:     window.Hopping(10*time.Millisecond, 5*time.Millisecond).Grace(3 * time.Millisecond),
				KeySerde: serde.String(), AggSerde: serde.String(), Fold: fold}
		},
		"sliding": func(r int64) Processor[string, string] {
			return &SlidingAggregate[string, string, string]{Name: "op", Store: "s", IndexStore: "i", RetentionMs: r,
				Spec:     window.Sliding(10 * time.Millisecond).Grace(3 * time.Millisecond),
				KeySerde: serde.String(), AggSerde: serde.String(), Fold: fold}
		},
		"session": func(r int64) Processor[string, string] {
			return &SessionAggregate[string, string, string]{Name: "op", Store: "s", IndexStore: "i", RetentionMs: r,
				Spec:     window.Sessions(10 * time.Millisecond).Grace(3 * time.Millisecond),
				KeySerde: serde.String(), AggSerde: serde.String(), Add: fold,
				Merge: func(_ string, agg string, _ bool, s string) string { return agg + s }}
		},
	}
	for name, newOp := range inits {
		t.Run(name, func(t *testing.T) {
			for _, retention := range []int64{minimum[name] - 1, minimum[name]} {
				db, err := state.Open(state.Options{InMemory: true})
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				ctx := &Context{Logger: hclog.NewNullLogger()}
				op := newOp(retention)
				err = op.(interface {
					Init(*Context, Stores) error
				}).Init(ctx, slidingStores{db.NewTask("0_0"), 0})
				short := fmt.Sprintf("retention %dms", retention)
				switch {
				case retention < minimum[name] && (err == nil || !strings.Contains(err.Error(), "operator op") || !strings.Contains(err.Error(), short)):
					t.Errorf("Init with %s: error %v, want one naming the operator and the retention", short, err)
				case retention == minimum[name] && err != nil:
					t.Errorf("Init with %s: %v", short, err)
				}
			}
		})
	}
}

// TestWindowAggregateRetentionShrinks checks that windows a longer
// retention kept are deleted once the operator restarts with the
// default retention, at its next close, without being emitted again.
func TestWindowAggregateRetentionShrinks(t *testing.T) {
	h := newWaggHarnessRetention(t, window.Tumbling(10*time.Millisecond), true, 0, 100)
	for _, ts := range []int64{1, 11, 21, 35} {
		h.push("A", fmt.Sprint(ts), ts)
	}
	starts := func() []int64 {
		var s []int64
		for w := range h.stored() {
			s = append(s, w.Start)
		}
		slices.Sort(s)
		return s
	}
	if diff := gocmp.Diff([]int64{0, 10, 20, 30}, starts()); diff != "" {
		t.Fatalf("stored windows with retention 100ms (-want +got):\n%s", diff)
	}
	h.retention = 0
	h.restart()
	emitted := len(h.out)
	h.push("A", "40", 40)
	if diff := gocmp.Diff([]int64{40}, starts()); diff != "" {
		t.Errorf("stored windows after the default's first close (-want +got):\n%s", diff)
	}
	if got := len(h.out) - emitted; got != 1 {
		t.Errorf("%d windows emitted at the close, want 1 ([30,40)): %v", got, h.out[emitted:])
	}
	h.restore()
	h.push("A", "50", 50)
	if diff := gocmp.Diff([]int64{50}, starts()); diff != "" {
		t.Errorf("stored windows after a restore (-want +got):\n%s", diff)
	}
}

// TestSessionRetentionShrinks checks the same for sessions.
func TestSessionRetentionShrinks(t *testing.T) {
	h := newSessionHarnessRetention(t, window.Sessions(5*time.Millisecond), false, 0, 100)
	for _, ts := range []int64{0, 10, 20, 30} {
		h.push("A", fmt.Sprint(ts), ts)
	}
	if got := len(h.stored()); got != 4 {
		t.Fatalf("%d sessions stored with retention 100ms, want 4", got)
	}
	h.retention = 0
	h.restart()
	out := len(h.out)
	h.push("B", "31", 31)
	want := map[sessionID]string{{"A", 30, 30}: "0+30", {"B", 31, 31}: "0+31"}
	if diff := gocmp.Diff(want, h.stored()); diff != "" {
		t.Errorf("stored sessions after a restart with the default retention (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"B@31-31 0+31 <nil> 31"}, h.out[out:]); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if got := h.counts(); got != [3]int{2, 2, 2} {
		t.Errorf("store and index entries = %v, want 2 each", got)
	}
}
