package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestWordcount checks the printed counts against a direct count of the
// input's words, on the default lines and on random ones, on the embedded
// log and on Kafka.
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
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for name, lines := range map[string][]string{"default": Lines, "random": random, "kafka": random} {
		t.Run(name, func(t *testing.T) {
			var brokers []string
			if name == "kafka" {
				brokers = c.ListenAddrs() // kfake, in-process
			}
			got, err := Run(context.Background(), "", brokers, lines)
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
