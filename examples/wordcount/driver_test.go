package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/eddytest"
	"github.com/eddyflow/eddy/examples/internal/exampletest"
	"github.com/eddyflow/eddy/serde"
)

// lineWords is the reference of the topology's tokenizer: the maximal
// runs of ASCII letters and apostrophes, lower-cased.
func lineWords(line string) []string {
	var words []string
	var w []byte
	for i := 0; i <= len(line); i++ {
		var c byte // 0 ends the last word
		if i < len(line) {
			c = line[i]
		}
		switch {
		case 'A' <= c && c <= 'Z':
			w = append(w, c+'a'-'A')
		case 'a' <= c && c <= 'z' || c == '\'':
			w = append(w, c)
		default:
			if len(w) > 0 {
				words = append(words, string(w))
				w = w[:0]
			}
		}
	}
	return words
}

var (
	vocabulary = []string{"It", "was", "the", "best", "OF", "times", "don't", "worst", "Age", "wisdom", "o'clock", "r2d2", "e-mail"}
	punctuated = []string{"", "", "", ",", ".", ";", "!", "?", " -", "..."}
)

// randomLines returns n lines of words of mixed case and punctuation,
// some with no word at all, keyed line-<i> and stamped out of order.
func randomLines(r *rand.Rand, first, n int) []eddytest.Record[string, string] {
	recs := make([]eddytest.Record[string, string], n)
	for i := range recs {
		var b strings.Builder
		for range r.IntN(8) {
			b.WriteString(vocabulary[r.IntN(len(vocabulary))])
			b.WriteString(punctuated[r.IntN(len(punctuated))])
			b.WriteByte(' ')
		}
		recs[i] = eddytest.Record[string, string]{Key: fmt.Sprint("line-", first+i), Value: b.String(), Time: r.Int64N(1_000_000)}
	}
	return recs
}

// counted is a word's count and the timestamp of its row: the newest
// timestamp of the lines it was counted in.
type counted struct {
	N    int64
	Time int64
}

// TestWordcountDriver runs the example's topology through eddytest on
// random lines with one and three input partitions (the words topic has
// the lines topic's count) and checks the output topic and the counts
// store against a direct count. Between commits it crashes the engine
// twice, once soon after a checkpoint of the stores and once long
// after, with records processed but not committed in both stages (the
// lines and the repartitioned words): after the restarts, every line
// must have been counted exactly once, and no count may appear twice in
// the output, which a record processed twice or an aborted output
// leaking would cause.
func TestWordcountDriver(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(exampletest.Seed(t), 0))
			b, counts := build("")
			d := eddytest.New(t, b, eddytest.Options{Partitions: parts, ManualCommit: true})
			in := eddytest.Input(d, "lines", serde.String(), serde.String())
			out := eddytest.Output(d, "word-counts", serde.String(), serde.Int64())

			const batches = 24
			want := map[string]counted{}
			var got []eddytest.Record[string, int64]
			piped := 0
			for i := range batches {
				lines := randomLines(r, piped, 1+r.IntN(20))
				piped += len(lines)
				in.PipeRecords(lines...)
				for _, l := range lines {
					for _, w := range lineWords(l.Value) {
						c := want[w]
						want[w] = counted{c.N + 1, max(c.Time, l.Time)}
					}
				}
				switch i {
				case 5: // the next commit checkpoints the stores
					d.AdvanceWallClock(2 * time.Second)
					d.Run()
				case 7, 17: // stage 1 committed, its words not processed yet
					d.Process()
					d.Commit()
				case 8, 18: // both stages processed, then lost
					if n := d.Process(); n == 0 {
						t.Fatalf("batch %d: nothing processed before the crash", i)
					}
					got = append(got, out.ReadRecords()...) // committed only
					d.Crash()
					d.Restart()
					// How much is restored from the changelogs depends on what
					// the state DB had synced: not checked.
					t.Logf("batch %d: restart restored %d changelog records", i, d.Engine().Metrics().RestoredRecords)
					d.Run()
				default:
					d.Run()
				}
				got = append(got, out.ReadRecords()...)
			}
			if len(want) < 10 {
				t.Fatalf("only %d distinct words: the input says little", len(want))
			}

			last := map[string]counted{}
			for _, rec := range got {
				if prev := last[rec.Key]; rec.Value <= prev.N {
					t.Errorf("word %q: count %d after %d (partition %d offset %d): repeated or lost", rec.Key, rec.Value, prev.N, rec.Partition, rec.Offset)
				}
				last[rec.Key] = counted{rec.Value, rec.Time}
			}
			if diff := cmp.Diff(want, last); diff != "" {
				t.Errorf("last output record per word (-want +got):\n%s", diff)
			}
			rows := map[string]counted{}
			for _, row := range eddytest.Rows(d, counts) {
				rows[row.Key] = counted{row.Value, row.Time}
			}
			if diff := cmp.Diff(want, rows); diff != "" {
				t.Errorf("store rows (-want +got):\n%s", diff)
			}
			for _, w := range []string{"don't", "o'clock", "r", "d", "mail", "absent"} {
				row, ok := eddytest.Lookup(d, counts, w)
				if c, in := want[w]; ok != in || row.Value != c.N || row.Time != c.Time {
					t.Errorf("Lookup(%q) = %d at %d, %v; want %d at %d, %v", w, row.Value, row.Time, ok, c.N, c.Time, in)
				}
			}
		})
	}
}
