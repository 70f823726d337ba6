package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/eddyflow/eddy/state"
	"github.com/eddyflow/eddy/topology"
)

// rawStore is a task's store as queries read it: rows by raw key.
type rawStore interface {
	Get(key []byte) ([]byte, bool, error)
	Range(from, to []byte, fn func(key, value []byte) error) error
}

// windowRaw reads a window store by its raw (window) keys.
type windowRaw struct{ ws *state.WindowStore }

func (w windowRaw) Get(key []byte) ([]byte, bool, error) { return w.ws.RawGet(key) }
func (w windowRaw) Range(from, to []byte, fn func(key, value []byte) error) error {
	return w.ws.RawRange(from, to, fn)
}

// taskRegistry maps the running tasks to their workers, for queries
// from other goroutines.
type taskRegistry struct {
	mu    sync.Mutex
	owner map[taskID]*worker
	parts []int32 // tasks per sub-topology; nil before Run sized them
}

func (r *taskRegistry) setParts(parts []int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.parts = parts
}

// partitions returns the partition count of sub-topology sub and the
// partitions whose tasks run here.
func (r *taskRegistry) partitions(sub int) (int32, []int32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.parts == nil {
		return 0, nil, false
	}
	total := r.parts[sub]
	var local []int32
	for p := range total {
		if r.owner[taskID{sub, p}] != nil {
			local = append(local, p)
		}
	}
	return total, local, true
}

func (r *taskRegistry) add(id taskID, w *worker) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.owner == nil {
		r.owner = map[taskID]*worker{}
	}
	r.owner[id] = w
}

func (r *taskRegistry) remove(id taskID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.owner, id)
}

func (r *taskRegistry) get(id taskID) *worker {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.owner[id]
}

// ErrNotRunning is returned (wrapped) by store queries when the engine is
// not running the store's task: before Run has created it, or after Run
// returned.
var ErrNotRunning = errors.New("engine: store not running here")

// Stores returns a reader of the engine's stores, for topology.Lookup,
// Rows and FetchWindows while Run runs (or through a Stepper). It reads
// at read-committed: the worker that runs a store's task answers a read
// between its commits, when the stores hold exactly what the last commit
// committed, so a read may wait up to about one CommitInterval. A
// Stepper's reads run at once, in the caller's goroutine, and see what
// processing left in the stores, committed or not. The reader is safe for
// concurrent use. Stores of tasks that run on another instance (on Kafka)
// are not local: their partitions are missing from StorePartitions.
func (e *Engine) Stores() topology.StoreReader { return storeReader{e} }

type storeReader struct{ e *Engine }

// storeTask returns the sub-topology running store.
func (e *Engine) storeSub(store string) (*topology.SubTopology, error) {
	for _, s := range e.topo.SubTopologies() {
		for _, st := range s.Stores {
			if st.Name == store {
				return s, nil
			}
		}
	}
	names := []string{}
	for _, s := range e.topo.SubTopologies() {
		for _, st := range s.Stores {
			names = append(names, st.Name)
		}
	}
	slices.Sort(names)
	return nil, fmt.Errorf("engine: no store %q in application %s (stores: %v)", store, e.topo.App(), names)
}

func (r storeReader) StorePartitions(ctx context.Context, store string) (int32, []int32, error) {
	e := r.e
	sub, err := e.storeSub(store)
	if err != nil {
		return 0, nil, err
	}
	total, local, ok := e.tasks.partitions(sub.ID)
	if !ok {
		return 0, nil, fmt.Errorf("store %s: %w: the engine has not started", store, ErrNotRunning)
	}
	return total, local, nil
}

func (r storeReader) Get(ctx context.Context, store string, partition int32, key []byte) (value []byte, ok bool, err error) {
	err = r.e.readStore(ctx, store, partition, func(s rawStore) error {
		v, found, err := s.Get(key)
		value, ok = slices.Clone(v), found
		return err
	})
	return value, ok, err
}

func (r storeReader) Range(ctx context.Context, store string, partition int32, from, to []byte, fn func(key, value []byte) error) error {
	return r.e.readStore(ctx, store, partition, func(s rawStore) error { return s.Range(from, to, fn) })
}

// storeQuery is a read of a store partition, run by the worker of its
// task at a commit boundary.
type storeQuery struct {
	id    taskID
	store string
	fn    func(rawStore) error
	// state: 0 queued, 1 taken by the worker, 2 abandoned by the caller.
	state atomic.Int32
	done  chan error
}

// readStore runs fn on a store partition: in the caller's goroutine under
// a Stepper, else in the goroutine of the worker running its task.
func (e *Engine) readStore(ctx context.Context, store string, partition int32, fn func(rawStore) error) error {
	sub, err := e.storeSub(store)
	if err != nil {
		return err
	}
	id := taskID{sub.ID, partition}
	if e.stepper != nil {
		return e.stepper.w.query(id, store, fn)
	}
	w := e.tasks.get(id)
	if w == nil {
		return fmt.Errorf("store %s partition %d: %w", store, partition, ErrNotRunning)
	}
	q := &storeQuery{id: id, store: store, fn: fn, done: make(chan error, 1)}
	select {
	case w.queries <- q:
		w.wakeUp()
	case <-w.stopped:
		return fmt.Errorf("store %s partition %d: %w", store, partition, ErrNotRunning)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-q.done:
		return err
	case <-ctx.Done():
		if q.state.CompareAndSwap(0, 2) {
			return ctx.Err()
		}
		return <-q.done // fn is running: it calls back into the caller's state
	}
}

// queryBacklog bounds the queries waiting for one worker; more wait to
// be queued.
const queryBacklog = 64

// setWake sets the function that ends the worker's current wait in Poll
// (nil: not waiting).
func (w *worker) setWake(cancel context.CancelFunc) {
	w.wake.Lock()
	w.wake.cancel = cancel
	w.wake.Unlock()
}

// wakeUp ends the worker's wait in Poll, if it is waiting, so that it
// reaches its next commit boundary and answers the queries.
func (w *worker) wakeUp() {
	w.wake.Lock()
	if w.wake.cancel != nil {
		w.wake.cancel()
	}
	w.wake.Unlock()
}

// serveQueries answers the queries waiting for the worker. It runs at a
// commit boundary, so the stores hold what the last commit committed.
func (w *worker) serveQueries() {
	for {
		select {
		case q := <-w.queries:
			if !q.state.CompareAndSwap(0, 1) {
				continue
			}
			q.done <- w.query(q.id, q.store, q.fn)
		default:
			return
		}
	}
}

// query runs fn on a store of one of the worker's tasks.
func (w *worker) query(id taskID, store string, fn func(rawStore) error) error {
	t := w.tasks[id]
	if t == nil {
		return fmt.Errorf("store %s partition %d: %w", store, id.partition, ErrNotRunning)
	}
	s := t.stores[store]
	if s == nil {
		return fmt.Errorf("engine: task %s has no store %s", id, store)
	}
	return fn(s)
}
