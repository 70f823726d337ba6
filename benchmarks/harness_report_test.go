package benchmarks

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWriteRatiosAndChecks(t *testing.T) {
	results := []Result{
		{System: "loop", EventsPerS: 4e6, EventsPerCPUS: 4e6, PeakRSSBytes: 100},
		{System: "eddy", EventsPerS: 1e6, EventsPerCPUS: 5e5, PeakRSSBytes: 300},
		{System: "kstreams", EventsPerS: 2e5, EventsPerCPUS: 0, PeakRSSBytes: 600},
	}
	var b bytes.Buffer
	if err := WriteRatios(&b, results); err != nil {
		t.Fatal(err)
	}
	want := "RATIO          EVENTS/S  EVENTS/CPU-S  PEAK-RSS\n" +
		"eddy/loop      0.25x     0.12x         3.00x\n" +
		"eddy/kstreams  5.00x     -             0.50x\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("ratios (-want +got):\n%s", diff)
	}
	b.Reset()
	if err := WriteRatios(&b, results[:1]); err != nil || b.Len() != 0 {
		t.Errorf("ratios without eddy: %q, %v", b.String(), err)
	}
	checks := []Check{{System: "loop", Skipped: "the reference"}, {System: "eddy", Identical: true}, {System: "goka", Diff: `line 3: loop "a", got "b"`}}
	if err := WriteChecks(&b, checks); err != nil {
		t.Fatal(err)
	}
	want = "loop: results not compared (the reference)\neddy: results identical to the loop's\n" +
		"goka: RESULTS DIFFER from the loop's: line 3: loop \"a\", got \"b\"\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("checks (-want +got):\n%s", diff)
	}
	if !(&Report{Checks: checks}).Mismatch() || (&Report{Checks: checks[:2]}).Mismatch() {
		t.Error("Mismatch wrong")
	}
}

func TestFirstDiff(t *testing.T) {
	tests := []struct{ want, got, diff string }{
		{"a\nb\n", "a\nb\n", ""},
		{"a\nb\n", "a\nc\n", `line 2: loop "b", got "c"`},
		{"a\n", "a\nb\n", `line 2: loop has no more lines, got "b"`},
		{"a\nb\n", "a\n", `line 2: loop "b", got no more lines`},
	}
	for _, tt := range tests {
		if got := firstDiff([]byte(tt.want), []byte(tt.got)); got != tt.diff {
			t.Errorf("firstDiff(%q, %q) = %q, want %q", tt.want, tt.got, got, tt.diff)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 3 << 20: "3.0 MiB", 5 << 30: "5.0 GiB"} {
		if got := formatBytes(in); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}
