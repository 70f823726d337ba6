package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/eddyflow/eddy/benchmarks"
)

// TestBenchMemory runs the memory benchmark small through its child
// process, with and without a budget, and checks its JSON lines.
func TestBenchMemory(t *testing.T) {
	stdout, stderr, code := eddy(t, "", "bench", "memory", "--keys", "3000", "--passes", "2", "--budget", "32MiB,none", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d JSON lines, want 2:\n%s", len(lines), stdout)
	}
	for i, budget := range []int64{32 << 20, 0} {
		var r benchmarks.MemoryResult
		if err := json.Unmarshal([]byte(lines[i]), &r); err != nil {
			t.Fatal(err)
		}
		if r.BudgetBytes != budget || r.Keys != 3000 || r.Events != 6000 || r.PeakRSSBytes <= 0 || r.EventsPerS <= 0 ||
			r.StateBytes <= 0 || (budget > 0) != (r.LimitBytes > 0) {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	if !strings.Contains(stderr, "budget+overhead") {
		t.Errorf("no table on stderr:\n%s", stderr)
	}
}

// TestBenchMemoryUsage checks the command lines refused with exit status 2.
func TestBenchMemoryUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bench", "memory", "--budget", "12XB"}, `--budget: bad size "12XB"`},
		{[]string{"bench", "memory", "--keys", "0"}, "--keys 0: must be positive"},
		{[]string{"bench", "memory", "extra"}, `unexpected argument "extra"`},
	} {
		_, stderr, code := eddy(t, "", tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 and %q", tc.args, code, stderr, tc.want)
		}
	}
}
