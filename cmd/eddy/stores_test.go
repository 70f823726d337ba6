package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// t0 is 2024-05-01T10:00:00Z, the first view of storesApp's input.
const t0 = int64(1714557600000)

// storesApp counts views per user in a table, per minute and per visit
// (sessions with a 1-minute gap), and keeps a stream-table join's
// buffers: a store of every layout.
func storesApp() *topology.Builder {
	b := topology.New("shop")
	views := topology.StreamFrom(b, "views", serde.String(), serde.String())
	g := views.GroupByKey()
	g.Count(topology.Named("totals")).ToStream().To("totals")
	topology.CountWindows(g.WindowedBy(window.Tumbling(time.Minute).Grace(time.Hour)), topology.Named("perminute"))
	topology.CountSessions(g.SessionWindowedBy(window.Sessions(time.Minute).Grace(time.Hour)), topology.Named("visits"))
	return b
}

// writeStores runs storesApp over a few views in a new StateDir, stops
// it, and returns the StateDir.
func writeStores(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	eng, err := engine.Open(storesApp(), engine.Options{StateDir: dir, Workers: 1, CacheBytes: -1, CommitInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "views", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	views := []struct {
		user string
		at   int64
	}{{"alice", 0}, {"alice", 10_000}, {"bob", 70_000}, {"alice", 300_000}}
	for _, v := range views {
		err := log.Produce(ctx, broker.Record{Topic: "views", Partition: broker.AnyPartition, Key: []byte(v.user), Value: []byte("/home"), Timestamp: t0 + v.at})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Run until every view is counted, then stop: a clean stop commits.
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- eng.Run(runCtx) }()
	deadline := time.Now().Add(30 * time.Second)
	for eng.Metrics().RecordsIn < int64(len(views)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return dir
}

func part(key string) int32 { return murmur2.Partition([]byte(key), 2) }

func TestStoresCommands(t *testing.T) {
	dir := writeStores(t)
	pa, pb := part("alice"), part("bob")
	if pa == pb {
		t.Fatal("alice and bob share a partition: the test needs them apart")
	}
	at := func(ms int64) string { return formatTime(t0 + ms) }
	count := func(n int) string { return fmt.Sprintf("0x%016x", n) }
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"get key-value", []string{"get", "--dir", dir, "totals", "alice"},
			fmt.Sprintf("%d\talice\t%s\t%s\n", pa, at(300_000), count(3))},
		{"get int64", []string{"get", "--dir", dir, "--value-format", "int64", "totals", "bob"},
			fmt.Sprintf("%d\tbob\t%s\t1\n", pb, at(70_000))},
		// The key format applies to the keys printed too.
		{"get hex key", []string{"get", "--dir", dir, "--key-hex", "--value-format", "int64", "totals", "626f62"},
			fmt.Sprintf("%d\t0x626f62\t%s\t1\n", pb, at(70_000))},
		{"get windows", []string{"get", "--dir", dir, "--value-format", "int64", "perminute", "alice"},
			fmt.Sprintf("%d\talice\t%s\t%s\t2\n%d\talice\t%s\t%s\t1\n", pa, at(0), at(10_000), pa, at(300_000), at(300_000))},
		{"get sessions", []string{"get", "--dir", dir, "--value-format", "int64", "visits", "alice"},
			fmt.Sprintf("%d\talice\t%s\t%s\t%s\t2\n%d\talice\t%s\t%s\t%s\t1\n", pa, at(0), at(10_000), at(10_000), pa, at(300_000), at(300_000), at(300_000))},
		{"scan", []string{"scan", "--dir", dir, "--value-format", "int64", "totals"},
			strings.Join(sortedByPartition(map[int32]string{
				pa: fmt.Sprintf("%d\talice\t%s\t3\n", pa, at(300_000)),
				pb: fmt.Sprintf("%d\tbob\t%s\t1\n", pb, at(70_000)),
			}), "")},
		{"scan bounds", []string{"scan", "--dir", dir, "--value-format", "int64", "--from", "b", "--to", "c", "totals"},
			fmt.Sprintf("%d\tbob\t%s\t1\n", pb, at(70_000))},
		{"scan partition", []string{"scan", "--dir", dir, "--value-format", "int64", "--partition", fmt.Sprint(pa), "totals"},
			fmt.Sprintf("%d\talice\t%s\t3\n", pa, at(300_000))},
		{"scan window times", []string{"scan", "--dir", dir, "--value-format", "int64", "--from", at(60_000), "--to", fmt.Sprint(t0 + 300_000), "perminute"},
			fmt.Sprintf("%d\tbob\t%s\t%s\t1\n", pb, at(60_000), at(70_000))},
		{"scan limit", []string{"scan", "--dir", dir, "--value-format", "int64", "--partition", fmt.Sprint(pa), "--limit", "1", "perminute"},
			fmt.Sprintf("%d\talice\t%s\t%s\t2\n", pa, at(0), at(10_000))},
		{"scan raw", []string{"scan", "--dir", dir, "--layout", "raw", "--partition", fmt.Sprint(pb), "totals"},
			fmt.Sprintf("%d\tbob\t0x%016x%016x\n", pb, t0+70_000, 1)},
		{"json", []string{"get", "--dir", dir, "--value-format", "int64", "--format", "json", "visits", "bob"},
			fmt.Sprintf(`{"key":"bob","partition":%d,"timestamp":%d,"value":1,"window_end":%d,"window_start":%d}`+"\n", pb, t0+70_000, t0+70_000, t0+70_000)},
		{"json hex", []string{"get", "--dir", dir, "--key-format", "hex", "--format", "json", "totals", "626f62"},
			fmt.Sprintf(`{"key_hex":"626f62","partition":%d,"timestamp":%d,"value_hex":"0000000000000001"}`+"\n", pb, t0+70_000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := mustEddy(t, "", append([]string{"stores"}, tc.args...)...)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("eddy stores %s (-want +got):\n%s", strings.Join(tc.args, " "), diff)
			}
		})
	}
}

// sortedByPartition returns the values of m ordered by partition.
func sortedByPartition(m map[int32]string) []string {
	var out []string
	for p := range int32(2) {
		if s, ok := m[p]; ok {
			out = append(out, s)
		}
	}
	return out
}

func TestStoresList(t *testing.T) {
	dir := writeStores(t)
	out := mustEddy(t, "", "stores", "list", "--dir", dir, "--format", "json")
	type entry struct {
		Store     string `json:"store"`
		Kind      string `json:"kind"`
		Partition int32  `json:"partition"`
		Offset    *int64 `json:"offset"`
		Rows      int64  `json:"rows"`
	}
	var got []entry
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var e entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if e.Offset == nil || *e.Offset <= 0 {
			t.Errorf("store %s/%d: committed offset %v, want one", e.Store, e.Partition, e.Offset)
		}
		e.Offset = nil
		got = append(got, e)
	}
	pa, pb := part("alice"), part("bob")
	want := []entry{
		{Store: "perminute", Kind: "window", Partition: pa, Rows: 2},
		{Store: "perminute", Kind: "window", Partition: pb, Rows: 1},
		{Store: "totals", Kind: "key-value", Partition: pa, Rows: 1},
		{Store: "totals", Kind: "key-value", Partition: pb, Rows: 1},
		{Store: "visits", Kind: "session", Partition: pa, Rows: 2},
		{Store: "visits", Kind: "session", Partition: pb, Rows: 1},
		{Store: "visits-index", Kind: "internal", Partition: pa},
		{Store: "visits-index", Kind: "internal", Partition: pb},
	}
	if pa > pb {
		for i := 0; i < len(want); i += 2 {
			want[i], want[i+1] = want[i+1], want[i]
		}
	}
	// The session index holds two entries per session.
	for i := range want {
		if want[i].Store == "visits-index" {
			want[i].Rows = 2 * want[i-2].Rows
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stores list --format json (-want +got):\n%s", diff)
	}
	text := mustEddy(t, "", "stores", "list", "--dir", dir)
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if len(lines) != 1+len(want) || !strings.HasPrefix(lines[0], "STORE ") || !strings.Contains(lines[0], "OFFSET") {
		t.Errorf("stores list: want a header and %d rows, got:\n%s", len(want), text)
	}
}

// TestStoresErrors checks that bad usage and a state in use fail with a
// message that says what to do.
func TestStoresErrors(t *testing.T) {
	dir := writeStores(t)
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want []string // in stderr
	}{
		{"no dir", []string{"list"}, 2, []string{"missing --dir"}},
		{"missing dir", []string{"list", "--dir", filepath.Join(empty, "nope")}, 1, []string{"does not exist", "check --dir"}},
		{"not a state dir", []string{"list", "--dir", empty}, 1, []string{"no eddy state in " + empty}},
		{"log dir", []string{"list", "--dir", filepath.Join(dir, "log")}, 1, []string{"looks like an embedded log"}},
		{"unknown store", []string{"scan", "--dir", dir, "count"}, 1, []string{`store "count" not found`, "its stores: perminute, totals, visits, visits-index"}},
		{"key not found", []string{"get", "--dir", dir, "totals", "carol"}, 1, []string{"key carol not found in store totals"}},
		{"bad partition", []string{"scan", "--dir", dir, "--partition", "7", "totals"}, 2, []string{"--partition 7", "partitions 0, 1"}},
		{"bad layout", []string{"scan", "--dir", dir, "--layout", "tree", "totals"}, 2, []string{"unknown layout"}},
		{"wrong layout", []string{"scan", "--dir", dir, "--layout", "window", "visits-index"}, 1, []string{"--layout raw"}},
		{"bad int", []string{"get", "--dir", dir, "--key-format", "int64", "totals", "alice"}, 2, []string{"not an int64"}},
		{"bad value format", []string{"scan", "--dir", dir, "--value-format", "int32", "totals"}, 1, []string{"not an int32"}},
		{"bad window time", []string{"scan", "--dir", dir, "--from", "yesterday", "perminute"}, 2, []string{"RFC 3339"}},
		{"get args", []string{"get", "--dir", dir, "totals"}, 2, []string{"want STORE and KEY"}},
		{"unknown subcommand", []string{"dump"}, 2, []string{`unknown subcommand "dump"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := eddy(t, "", append([]string{"stores"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, stderr)
				}
			}
		})
	}

	// A running instance holds the state.
	db, err := state.Open(state.Options{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, code := eddy(t, "", "stores", "list", "--dir", dir)
	if code != 1 || !strings.Contains(stderr, "is in use by a running eddy instance (stop it first)") {
		t.Errorf("stores list on a state in use: exit %d, stderr:\n%s", code, stderr)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestStoresHelp checks that every subcommand has help with a
// description and examples.
func TestStoresHelp(t *testing.T) {
	for _, tc := range []struct {
		sub  string
		want []string
	}{
		{"list", []string{"usage: eddy stores list --dir DIR", "committed changelog offset", "examples:", "eddy stores list --dir ./eddy-data"}},
		{"get", []string{"usage: eddy stores get", "examples:", "eddy stores get --dir ./eddy-data counts alice", "--layout", "key-value  a table"}},
		{"scan", []string{"usage: eddy stores scan", "examples:", "--from 2024-05-01T10:00:00Z", "-limit"}},
	} {
		_, stderr, code := eddy(t, "", "stores", tc.sub, "-h")
		if code != 0 {
			t.Errorf("stores %s -h: exit %d", tc.sub, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("stores %s -h lacks %q:\n%s", tc.sub, w, stderr)
			}
		}
	}
	out := mustEddy(t, "", "stores", "-h")
	if !strings.Contains(out, "DIR is an engine's StateDir") || !strings.Contains(out, "eddy stores list --dir ./eddy-data") {
		t.Errorf("stores -h:\n%s", out)
	}
}
