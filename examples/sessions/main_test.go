package main

import (
	"bytes"
	"cmp"
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/serde"
)

// TestSessions checks the printed sessions against sessions computed
// directly from the generated input: each user's clicks in time order,
// split wherever two consecutive clicks are more than Gap apart. The
// input's disorder (Jitter) is below Grace, so no click is late, and
// sessions are emitted on close, so each is emitted once, final, with the
// write-back cache on (it would hide intermediate updates) or off.
func TestSessions(t *testing.T) {
	t.Run("cached", func(t *testing.T) { testSessions(t, nil, 0) })
	t.Run("uncached", func(t *testing.T) { testSessions(t, nil, -1) })
}

// TestSessionsKafka runs the same check on Kafka (kfake, in-process).
func TestSessionsKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testSessions(t, c.ListenAddrs(), 0)
}

// TestRealKafkaSessions runs it on the real broker EDDY_KAFKA_BROKERS
// names (make test-kafka).
func TestRealKafkaSessions(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	testSessions(t, strings.Split(brokers, ","), 0)
}

func testSessions(t *testing.T, brokers []string, cacheBytes int) {
	const seed, events = 7, 2000
	results, m, err := Run(context.Background(), Config{Events: events, Seed: seed, Brokers: brokers, cacheBytes: cacheBytes})
	if err != nil {
		t.Fatal(err)
	}

	type click struct {
		ts   int64
		page string
	}
	byUser := map[string][]click{}
	input := Generate(seed, events)
	disorder, maxTS := int64(0), int64(0)
	for _, r := range input {
		c, err := serde.JSON[Click]().Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		byUser[c.User] = append(byUser[c.User], click{r.Timestamp, c.Page})
		disorder, maxTS = max(disorder, maxTS-r.Timestamp), max(maxTS, r.Timestamp)
	}
	if disorder == 0 || disorder >= Grace.Milliseconds() {
		t.Errorf("input disorder %d ms, want some but less than the grace (%s)", disorder, Grace)
	}
	var want []Result
	exactGap := 0 // sessions that go on after a pause of exactly Gap
	for user, clicks := range byUser {
		slices.SortStableFunc(clicks, func(a, b click) int { return cmp.Compare(a.ts, b.ts) })
		var pages []string
		first := 0
		for i, c := range clicks {
			pages = append(pages, c.page)
			if i+1 < len(clicks) && clicks[i+1].ts-c.ts == Gap.Milliseconds() {
				exactGap++
			}
			if i+1 == len(clicks) || clicks[i+1].ts-c.ts > Gap.Milliseconds() {
				want = append(want, Result{User: user, Start: time.UnixMilli(clicks[first].ts).UTC(), End: time.UnixMilli(c.ts).UTC(),
					Clicks: int64(i + 1 - first), Pages: len(union(pages, nil))})
				first, pages = i+1, nil
			}
		}
	}
	var wantOut, gotOut bytes.Buffer
	Print(&wantOut, sortResults(want))
	Print(&gotOut, results)
	if diff := gocmp.Diff(wantOut.String(), gotOut.String()); diff != "" {
		t.Errorf("printed sessions (-want +got):\n%s", diff)
	}
	// The input must hold the interesting cases, or the check says little.
	single := 0
	for _, s := range want {
		if s.Clicks == 1 {
			single++
		}
	}
	if len(want) < 20 || single == 0 || exactGap == 0 {
		t.Errorf("generated input too plain: %d sessions, %d of one click, %d pauses of exactly the gap", len(want), single, exactGap)
	}
	if m.LateRecords != 0 {
		t.Errorf("%d late records, want 0", m.LateRecords)
	}
	if m.RecordsIn < events {
		t.Errorf("engine read %d records, want at least %d", m.RecordsIn, events)
	}
}
