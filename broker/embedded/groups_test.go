package embedded

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/eddyflow/eddy/broker"
)

// TestOpenInUse checks that opening a log directory another Log holds
// fails with ErrInUse naming the directory, and succeeds once it closed.
func TestOpenInUse(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: dir, CleanInterval: -1})
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), dir) {
		t.Errorf("Open of a directory in use = %v, want ErrInUse naming %s", err, dir)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2, err := Open(Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatalf("Open after the holder closed: %v", err)
	}
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestDeleteGroupDurable checks that DeleteGroup's deletion survives a
// reopen, and that it deletes only the named group's offsets, not those
// of a group whose name it is a prefix of.
func TestDeleteGroupDurable(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := Open(Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	createTopics(t, l, broker.TopicConfig{Name: "in", Partitions: 2})
	tp0 := broker.TopicPartition{Topic: "in", Partition: 0}
	for _, g := range []string{"app", "app-2"} {
		s, err := l.Join(ctx, broker.SessionConfig{Group: g, Member: "m", Topics: []string{"in"}})
		if err != nil {
			t.Fatal(err)
		}
		for {
			f, err := s.Poll(ctx, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Assigned) > 0 {
				break
			}
		}
		if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{tp0: {Offset: 7}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.DeleteGroup(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, Options{Dir: dir})
	got := map[string]map[broker.TopicPartition]broker.Offset{}
	for _, g := range []string{"app", "app-2"} {
		s, err := l.Join(ctx, broker.SessionConfig{Group: g, Member: "m", Topics: []string{"in"}})
		if err != nil {
			t.Fatal(err)
		}
		f, err := s.Poll(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		got[g] = f.Committed
		if err := s.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]map[broker.TopicPartition]broker.Offset{
		"app":   {},
		"app-2": {tp0: {Offset: 7}},
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("committed offsets after DeleteGroup and a reopen (-want +got):\n%s", diff)
	}
}
