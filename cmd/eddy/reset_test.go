package main

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/state"
)

// addDecoys creates topics that a reset of "shop" must keep: another
// application's internal topics and names that only look internal.
func addDecoys(t *testing.T, l broker.Log) {
	t.Helper()
	err := l.CreateTopics(context.Background(),
		broker.TopicConfig{Name: "other-counts-changelog", Partitions: 1},
		broker.TopicConfig{Name: "shop-changelog", Partitions: 1},
		broker.TopicConfig{Name: "shopx-counts-repartition", Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
}

// groupCommitted returns the offsets group has committed for views.
func groupCommitted(t *testing.T, l broker.Log, group string) map[broker.TopicPartition]broker.Offset {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := l.NewSession(ctx, broker.SessionConfig{Group: group, Member: "probe", Topics: []string{"views"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	got := map[broker.TopicPartition]broker.Offset{}
	for assigned := 0; assigned < 2; {
		f, err := s.Poll(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		assigned += len(f.Assigned)
		maps.Copy(got, f.Committed)
	}
	return got
}

func topicNames(t *testing.T, l broker.Log) []string {
	t.Helper()
	topics, err := l.DescribeTopics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(topics))
}

func TestResetEmbedded(t *testing.T) {
	dir := writeStores(t)
	logDir := filepath.Join(dir, "log")
	l, err := embedded.Open(embedded.Options{Dir: logDir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	addDecoys(t, l)
	before := topicNames(t, l)
	if len(groupCommitted(t, l, "shop")) == 0 {
		t.Fatal("the application committed no offsets")
	}

	// While the log is open (a running instance), reset refuses.
	_, stderr, code := eddy(t, "", "reset", "--app", "shop", "--dir", dir)
	if code != 1 || !strings.Contains(stderr, "the application is running") || !strings.Contains(stderr, logDir) {
		t.Errorf("reset with the log in use: exit %d, stderr:\n%s", code, stderr)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// And while the local state is open.
	db, err := state.Open(state.Options{Dir: filepath.Join(dir, "state")})
	if err != nil {
		t.Fatal(err)
	}
	_, stderr, code = eddy(t, "", "reset", "--app", "shop", "--dir", dir)
	if code != 1 || !strings.Contains(stderr, "is in use by a running eddy instance") {
		t.Errorf("reset with the state in use: exit %d, stderr:\n%s", code, stderr)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	plan := `reset of application shop on the embedded log in ` + logDir + `:
  delete consumer group shop and its committed offsets
  delete topic shop-perminute-changelog
  delete topic shop-totals-changelog
  delete topic shop-visits-changelog
  delete topic shop-visits-index-changelog
  delete local state ` + filepath.Join(dir, "state") + `
  keep the source and sink topics
`
	out := mustEddy(t, "", "reset", "--app", "shop", "--dir", dir, "--dry-run")
	if diff := cmp.Diff(plan+"dry run: nothing deleted\n", out); diff != "" {
		t.Errorf("reset --dry-run (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err != nil {
		t.Errorf("dry run deleted the state: %v", err)
	}
	out = mustEddy(t, "", "reset", "--app", "shop", "--dir", dir)
	if diff := cmp.Diff(plan+"reset shop: done; its next run starts from the earliest input\n", out); diff != "" {
		t.Errorf("reset (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); !os.IsNotExist(err) {
		t.Errorf("state after reset: %v, want it deleted", err)
	}
	l, err = embedded.Open(embedded.Options{Dir: logDir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var want []string
	for _, name := range before {
		if !strings.HasPrefix(name, "shop-") || !strings.HasSuffix(name, "-changelog") || name == "shop-changelog" {
			want = append(want, name)
		}
	}
	if diff := cmp.Diff(want, topicNames(t, l)); diff != "" {
		t.Errorf("topics after reset (-want +got):\n%s", diff)
	}
	if got := groupCommitted(t, l, "shop"); len(got) != 0 {
		t.Errorf("offsets committed after reset: %v", got)
	}
}

func TestResetKafkaCommand(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	ctx := context.Background()
	l, err := kafka.Open(ctx, kafka.Options{Brokers: c.ListenAddrs()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	err = l.CreateTopics(ctx, broker.TopicConfig{Name: "views", Partitions: 2},
		broker.TopicConfig{Name: "shop-totals-changelog", Partitions: 2, Compacted: true},
		broker.TopicConfig{Name: "shop-totals-repartition", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	addDecoys(t, l)
	member, err := l.NewSession(ctx, broker.SessionConfig{Group: "shop", Member: "m", Topics: []string{"views"}})
	if err != nil {
		t.Fatal(err)
	}
	for assigned := 0; assigned < 2; {
		f, err := member.Poll(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		assigned += len(f.Assigned)
	}
	_, stderr, code := eddy(t, "", "reset", "--app", "shop", "--brokers", brokers)
	if code != 1 || !strings.Contains(stderr, "members alive: 1") || !strings.Contains(stderr, "stop every instance of shop") {
		t.Errorf("reset with a live member: exit %d, stderr:\n%s", code, stderr)
	}
	if err := member.Close(ctx); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // this machine's StateDir, without state
	out := mustEddy(t, "", "reset", "--app", "shop", "--brokers", brokers, "--dir", dir)
	want := `reset of application shop on Kafka at ` + brokers + `:
  delete consumer group shop and its committed offsets
  delete topic shop-totals-changelog
  delete topic shop-totals-repartition
  no local state in ` + filepath.Join(dir, "state") + `
  keep the source and sink topics
reset shop: done; its next run starts from the earliest input
`
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("reset (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"other-counts-changelog", "shop-changelog", "shopx-counts-repartition", "views"}, topicNames(t, l)); diff != "" {
		t.Errorf("topics after reset (-want +got):\n%s", diff)
	}
}

func TestResetUsage(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--dir", empty}, 2, "missing --app"},
		{[]string{"--app", "shop"}, 2, "missing --dir"},
		{[]string{"--app", "shop", "--dir", filepath.Join(empty, "nope")}, 1, "does not exist"},
		{[]string{"--app", "shop", "--dir", empty}, 1, "neither an embedded log (log/) nor local state (state/)"},
		{[]string{"--app", "shop", "--dir", empty, "extra"}, 2, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		_, stderr, code := eddy(t, "", append([]string{"reset"}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("eddy reset %s: exit %d, stderr %q; want exit %d with %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.want)
		}
	}
	_, stderr, code := eddy(t, "", "reset", "-h")
	for _, w := range []string{"usage: eddy reset --app APP", "Source and sink topics are kept", "examples:", "eddy reset --app pageviews --dir ./eddy-data --dry-run"} {
		if code != 0 || !strings.Contains(stderr, w) {
			t.Errorf("reset -h: exit %d, lacks %q:\n%s", code, w, stderr)
		}
	}
}
