package window

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStarts(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		t    int64
		want []int64
	}{
		{"tumbling start", Tumbling(10 * time.Millisecond), 0, []int64{0}},
		{"tumbling inside", Tumbling(10 * time.Millisecond), 19, []int64{10}},
		{"tumbling boundary", Tumbling(10 * time.Millisecond), 20, []int64{20}},
		{"hopping", Hopping(10*time.Millisecond, 5*time.Millisecond), 12, []int64{5, 10}},
		{"hopping boundary", Hopping(10*time.Millisecond, 5*time.Millisecond), 10, []int64{5, 10}},
		{"hopping no negative windows", Hopping(10*time.Millisecond, 5*time.Millisecond), 3, []int64{0}},
		{"hopping uneven", Hopping(10*time.Millisecond, 3*time.Millisecond), 10, []int64{3, 6, 9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []int64
			tc.spec.Starts(tc.t, func(s int64) { got = append(got, s) })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Starts(%d) (-want +got):\n%s", tc.t, diff)
			}
		})
	}
}

// TestStartsReference checks Starts against the definition: every s >= 0,
// multiple of advance, with s <= t < s+size.
func TestStartsReference(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for range 2000 {
		size := 1 + r.Int64N(50)
		spec := Hopping(time.Duration(size)*time.Millisecond, time.Duration(1+r.Int64N(size))*time.Millisecond)
		ts := r.Int64N(500)
		var want []int64
		for s := int64(0); s <= ts; s += spec.AdvanceMs() {
			if ts < s+spec.SizeMs() {
				want = append(want, s)
			}
		}
		var got []int64
		spec.Starts(ts, func(s int64) { got = append(got, s) })
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("seed %d: %s t=%d (-want +got):\n%s", seed, spec, ts, diff)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		spec Spec
		want string
	}{
		{Spec{}, "window: zero Spec: use window.Tumbling or window.Hopping"},
		{Tumbling(0), "window: tumbling size must be at least 1ms, got 0ms"},
		{Hopping(time.Second, 2*time.Second), "window: hopping advance must be in [1ms, size=1000ms], got 2000ms"},
		{Tumbling(time.Second).Grace(-time.Second), "window: grace must not be negative, got -1000ms"},
	}
	for _, tc := range tests {
		err := tc.spec.Validate()
		if err == nil || err.Error() != tc.want {
			t.Errorf("Validate(%v) = %v, want %q", tc.spec, err, tc.want)
		}
	}
	if err := Tumbling(time.Minute).Grace(time.Second).Validate(); err != nil {
		t.Errorf("valid spec: %v", err)
	}
}

func TestNextEnd(t *testing.T) {
	seed := rand.Uint64()
	r := rand.New(rand.NewPCG(seed, 0))
	for range 2000 {
		size := 1 + r.Int64N(50)
		spec := Hopping(time.Duration(size)*time.Millisecond, time.Duration(1+r.Int64N(size))*time.Millisecond)
		ts := r.Int64N(500) - 100
		want := int64(-1)
		for s := int64(0); ; s += spec.AdvanceMs() {
			if s+spec.SizeMs() > ts {
				want = s + spec.SizeMs()
				break
			}
		}
		if got := spec.NextEnd(ts); got != want {
			t.Fatalf("seed %d: %s NextEnd(%d) = %d, want %d", seed, spec, ts, got, want)
		}
	}
}
