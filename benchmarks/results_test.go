package benchmarks

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// TestDecodeWA1Output decodes each output format of PEERS.md.
func TestDecodeWA1Output(t *testing.T) {
	windowed := func(key string, start int64) []byte {
		b, _ := serde.Windowed(serde.String(), 60_000).Encode(nil, window.Windowed[string]{Key: key, Start: start})
		return b
	}
	session := func(key string, start, end int64) []byte {
		b, _ := serde.SessionWindowed(serde.String()).Encode(nil, window.Windowed[string]{Key: key, Start: start, End: end})
		return b
	}
	count := func(n int64) []byte { b, _ := serde.Int64().Encode(nil, n); return b }
	tests := []struct {
		name       string
		f          OutputFormat
		v          WA1Variant
		key, value []byte
		want       WA1Result
		deleted    bool
		ok         bool
		err        string
	}{
		{"windowed", FormatWindowed, VariantTumbling, windowed("u7", 120_000), count(42), WA1Result{Key: "u7", Start: 120_000, Count: 42}, false, true, ""},
		{"sliding", FormatWindowed, VariantSliding, windowed("u7", 1), count(2), WA1Result{Key: "u7", Start: 1, Count: 2}, false, true, ""},
		{"session", FormatWindowed, VariantSession, session("u7", 5, 9), count(3), WA1Result{Key: "u7", Start: 5, End: 9, Count: 3}, false, true, ""},
		{"session tombstone", FormatWindowed, VariantSession, session("u7", 5, 9), nil, WA1Result{Key: "u7", Start: 5, End: 9}, true, true, ""},
		{"end marker", FormatWindowed, VariantTumbling, windowed("~end-1", 0), count(1), WA1Result{}, false, false, ""},
		{"short key", FormatWindowed, VariantTumbling, []byte("abc"), count(1), WA1Result{}, false, false, "want at least 8 bytes"},
		{"bad count", FormatWindowed, VariantTumbling, windowed("u1", 0), []byte{1}, WA1Result{}, false, false, "output value of u1@0"},
		{"goka", FormatGoka, VariantTumbling, []byte("u3@60000"), []byte("17"), WA1Result{Key: "u3", Start: 60_000, Count: 17}, false, true, ""},
		{"goka marker", FormatGoka, VariantTumbling, []byte("~end-0@0"), []byte("1"), WA1Result{}, false, false, ""},
		{"goka no window", FormatGoka, VariantTumbling, []byte("u3"), []byte("1"), WA1Result{}, false, false, "want key@windowStartMillis"},
		{"goka bad count", FormatGoka, VariantTumbling, []byte("u3@0"), []byte("x"), WA1Result{}, false, false, `goka value of "u3@0"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, deleted, ok, err := DecodeWA1Output(tt.f, tt.v, tt.key, tt.value)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" || deleted != tt.deleted || ok != tt.ok {
				t.Errorf("got deleted=%v ok=%v, want %v %v; result (-want +got):\n%s", deleted, ok, tt.deleted, tt.ok, diff)
			}
		})
	}
}

// TestFinalResults folds updates and tombstones into final results.
func TestFinalResults(t *testing.T) {
	f := NewFinalResults()
	f.Add(WA1Result{Key: "a", Start: 0, Count: 1}, false)
	f.Add(WA1Result{Key: "a", Start: 0, Count: 2}, false)
	f.Add(WA1Result{Key: "b", Start: 5, End: 9, Count: 1}, false)
	f.Add(WA1Result{Key: "b", Start: 5, End: 9}, true)
	f.Add(WA1Result{Key: "b", Start: 5, End: 20, Count: 4}, false)
	var b bytes.Buffer
	if err := WriteWA1VariantResults(&b, VariantSession, f.Results()); err != nil {
		t.Fatal(err)
	}
	want := "a\t0\t0\t2\nb\t5\t20\t4\n"
	if diff := cmp.Diff(want, b.String()); diff != "" {
		t.Errorf("results (-want +got):\n%s", diff)
	}
	if f.Records != 5 || f.Repeats != 1 || f.Len() != 2 {
		t.Errorf("records %d repeats %d len %d, want 5 1 2", f.Records, f.Repeats, f.Len())
	}
	b.Reset()
	if err := WriteWA1VariantResults(&b, VariantTumbling, []WA1Result{{Key: "b", Start: 60_000, Count: 3}, {Key: "a", Start: 0, Count: 1}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff("a\t0\t1\nb\t60000\t3\n", b.String()); diff != "" {
		t.Errorf("tumbling results (-want +got):\n%s", diff)
	}
}

// TestWA1VariantTopology builds every variant and refuses unknown ones.
func TestWA1VariantTopology(t *testing.T) {
	for _, v := range WA1Variants {
		for _, e := range []WA1Emit{EmitClose, EmitUpdate} {
			b, err := WA1VariantTopology("app", "in", "out", v, e)
			if err != nil {
				t.Fatalf("%s %s: %v", v, e, err)
			}
			topo, err := b.Build()
			if err != nil {
				t.Fatalf("%s %s: %v", v, e, err)
			}
			if topo.App() != "app" {
				t.Errorf("app %q", topo.App())
			}
		}
	}
	if _, err := WA1VariantTopology("app", "in", "out", "cubic", EmitClose); err == nil {
		t.Error("unknown variant: no error")
	}
	if _, err := WA1VariantTopology("app", "in", "out", VariantTumbling, "sometimes"); err == nil {
		t.Error("unknown emit mode: no error")
	}
}
