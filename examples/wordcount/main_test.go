package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWordcount checks the printed counts against a direct count of the
// input's words, on the default lines and on random ones.
func TestWordcount(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 0))
	random := make([]string, 300)
	for i := range random {
		var words []string
		for range 1 + r.IntN(12) {
			words = append(words, fmt.Sprintf("w%c", 'a'+rune(r.IntN(26))))
		}
		random[i] = strings.Join(words, " ")
	}
	for name, lines := range map[string][]string{"default": Lines, "random": random} {
		t.Run(name, func(t *testing.T) {
			got, err := Run(context.Background(), "", lines)
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]int64{}
			for _, l := range lines {
				for _, w := range strings.Fields(strings.ToLower(l)) {
					want[strings.Trim(w, ",.")]++
				}
			}
			var wantOut, gotOut bytes.Buffer
			Print(&wantOut, want)
			Print(&gotOut, got)
			if diff := cmp.Diff(wantOut.String(), gotOut.String()); diff != "" {
				t.Errorf("printed counts (-want +got):\n%s", diff)
			}
		})
	}
}
