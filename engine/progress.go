package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/topology"
)

// progress tracks a bounded run. The input of a task is complete when it
// has consumed every source partition up to its target: for source
// topics, their end when Run started; for a repartition topic, its end
// once every task of the writing sub-topology has finished.
type progress struct {
	e  *Engine
	mu struct {
		sync.Mutex
		targets  map[broker.TopicPartition]int64
		finished map[taskID]bool
		subDone  []int // finished tasks per sub-topology
		total    int   // finished tasks
	}
	tasks int // tasks in the topology
}

func newProgress(ctx context.Context, e *Engine) (*progress, error) {
	p := &progress{e: e}
	p.mu.targets = map[broker.TopicPartition]int64{}
	p.mu.finished = map[taskID]bool{}
	p.mu.subDone = make([]int, len(e.subParts))
	for _, n := range e.subParts {
		p.tasks += int(n)
	}
	for _, t := range e.topo.Topics() {
		if t.Role != topology.RoleSource {
			continue
		}
		for i := range e.partitions[t.Name] {
			tp := broker.TopicPartition{Topic: t.Name, Partition: i}
			off, err := e.log.Offsets(ctx, tp)
			if err != nil {
				return nil, fmt.Errorf("engine: bounded run: offsets of %s: %w", tp, err)
			}
			p.mu.targets[tp] = off.End
		}
	}
	return p, nil
}

// target returns the offset up to which tp must be consumed, if known yet.
func (p *progress) target(tp broker.TopicPartition) (int64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	off, ok := p.mu.targets[tp]
	return off, ok
}

// finish records that a task has finished and committed. When its
// sub-topology is done, the repartition topics it writes get targets.
func (p *progress) finish(ctx context.Context, id taskID) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.finished[id] {
		return nil
	}
	p.mu.finished[id] = true
	p.mu.total++
	p.mu.subDone[id.sub]++
	if p.mu.subDone[id.sub] < int(p.e.subParts[id.sub]) {
		return nil
	}
	for _, t := range p.e.topo.Topics() {
		if t.Role != topology.RoleRepartition || t.Writer != id.sub {
			continue
		}
		for i := range p.e.partitions[t.Name] {
			tp := broker.TopicPartition{Topic: t.Name, Partition: i}
			off, err := p.e.log.Offsets(ctx, tp)
			if err != nil {
				return fmt.Errorf("engine: bounded run: offsets of %s: %w", tp, err)
			}
			p.mu.targets[tp] = off.End
		}
	}
	return nil
}

// done reports whether every task has finished.
func (p *progress) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.total == p.tasks
}
