package engine_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
)

// TestQueriesWhileRunning reads a count table through Engine.Stores while
// Run runs and input keeps arriving: every read must see a committed
// state, so a key's count never goes down from one read to the next and,
// once the input is processed, equals the model's.
func TestQueriesWhileRunning(t *testing.T) {
	b := topology.New("q")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	counts := in.GroupByKey().Count(topology.Named("counts"))
	eng, err := engine.Open(b, engine.Options{InMemory: true, Workers: 2, CommitInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	r := eng.Stores()
	if _, _, err := topology.Lookup(ctx, r, counts, "k0"); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("Lookup before Run: err %v, want ErrNotRunning", err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(ctx) }()

	const keys, rounds = 10, 30
	var wg sync.WaitGroup
	stop := make(chan struct{})
	readErr := make(chan error, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		last := map[string]int64{}
		for {
			select {
			case <-stop:
				return
			default:
			}
			for k := range keys {
				key := fmt.Sprint("k", k)
				row, ok, err := topology.Lookup(ctx, r, counts, key)
				if errors.Is(err, topology.ErrNotLocal) || errors.Is(err, engine.ErrNotRunning) {
					continue // tasks not started yet
				}
				if err != nil {
					readErr <- err
					return
				}
				if ok && row.Value < last[key] {
					readErr <- fmt.Errorf("%s: count %d after %d", key, row.Value, last[key])
					return
				}
				last[key] = row.Value
			}
		}
	}()
	for range rounds {
		var recs []broker.Record
		for k := range keys {
			recs = append(recs, broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: fmt.Appendf(nil, "k%d", k), Value: []byte("x")})
		}
		if err := log.Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := topology.Rows(ctx, r, counts, nil, nil)
		done := err == nil && len(rows) == keys
		for _, row := range rows {
			done = done && row.Value == rounds
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows never reached %d per key: %v %v", rounds, rows, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	select {
	case err := <-readErr:
		t.Error(err)
	default:
	}
	if _, _, err := topology.Lookup(ctx, r, topology.Table[string, int64]{}, "k"); err == nil {
		t.Error("Lookup on a zero Table: no error")
	}
	_, _, err = r.Get(ctx, "nope", 0, []byte("k"))
	if err == nil || !strings.Contains(err.Error(), `no store "nope"`) || !strings.Contains(err.Error(), "counts") {
		t.Errorf("Get of an unknown store: %v, want an error naming it and the stores", err)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
	if _, _, err := topology.Lookup(context.Background(), r, counts, "k1"); !errors.Is(err, engine.ErrNotRunning) && !errors.Is(err, topology.ErrNotLocal) {
		t.Errorf("Lookup after Run: err %v, want ErrNotRunning or ErrNotLocal", err)
	}
}

// TestQueriesReadCommitted checks that a read waits for the commit of
// what the worker processed, and that an idle worker answers at once
// rather than at its next commit.
func TestQueriesReadCommitted(t *testing.T) {
	b := topology.New("rc")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	counts := in.GroupByKey().Count(topology.Named("counts"))
	eng, err := engine.Open(b, engine.Options{InMemory: true, Workers: 1, CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := eng.Log()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- eng.Run(ctx) }()
	r := eng.Stores()

	// Idle: answered without waiting for the hourly commit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		_, ok, err := topology.Lookup(qctx, r, counts, "k")
		qcancel()
		if err == nil {
			if ok {
				t.Fatal("a row before any input")
			}
			break
		}
		if !errors.Is(err, engine.ErrNotRunning) && !errors.Is(err, topology.ErrNotLocal) || time.Now().After(deadline) {
			t.Fatalf("Lookup on an idle engine: %v", err)
		}
		time.Sleep(5 * time.Millisecond) // the task is not created yet
	}

	var recs []broker.Record
	for range 5 {
		recs = append(recs, broker.Record{Topic: "in", Partition: 0, Key: []byte("k"), Value: []byte("x")})
	}
	if err := log.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // processed, not committed for an hour
	qctx, qcancel := context.WithTimeout(ctx, 300*time.Millisecond)
	row, ok, err := topology.Lookup(qctx, r, counts, "k")
	qcancel()
	if ok {
		t.Errorf("read an uncommitted count: %+v", row)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Lookup with uncommitted work: %v, want it to wait for the commit", err)
	}
	cancel()
	if err := <-runErr; err != nil {
		t.Fatal(err)
	}
}
