package kafka

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
)

// TestDeleteGroupKafka checks DeleteGroup on kfake beyond the
// conformance suite: the group itself is gone from the cluster after it,
// and a closed log refuses.
func TestDeleteGroupKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l := openTest(t, newFake(t).ListenAddrs())
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	s, err := l.NewSession(ctx, broker.SessionConfig{Group: "app", Member: "m", Topics: []string{"in"}})
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
	tp := broker.TopicPartition{Topic: "in", Partition: 0}
	if _, err := s.Commit(ctx, map[broker.TopicPartition]broker.Offset{tp: {Offset: 0}}); err != nil {
		t.Fatal(err)
	}
	err = l.DeleteGroup(ctx, "app")
	if !errors.Is(err, broker.ErrGroupActive) || !strings.Contains(err.Error(), "members alive: 1") {
		t.Errorf("DeleteGroup with a member = %v, want ErrGroupActive with its count", err)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.DeleteGroup(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	groups, err := l.adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := groups["app"]; ok {
		t.Errorf("group app still listed after DeleteGroup: %v", groups.Groups())
	}
	if err := l.DeleteGroup(ctx, "app"); err != nil {
		t.Errorf("DeleteGroup of a deleted group = %v, want nil", err)
	}
	if err := l.DeleteGroup(ctx, ""); err == nil {
		t.Error("DeleteGroup of an empty name succeeded")
	}
	l.Close()
	if err := l.DeleteGroup(ctx, "app"); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("DeleteGroup on a closed log = %v, want ErrClosed", err)
	}
}
