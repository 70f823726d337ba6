package engine

import (
	"cmp"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"github.com/eddyflow/eddy/broker"
)

// Instance lookup: every instance of an application advertises an
// endpoint (Options.AdvertisedAddr) to the application's consumer group,
// each worker's session learns from every assignment which partitions
// each endpoint's workers hold (broker.Session.Endpoints), and the engine
// answers from the newest of its workers' views. So any instance can tell
// a client, or redirect it to, the instance that holds a key's store
// partition.

// Instance is one instance of the application, as the group's newest
// assignment known here places partitions: a process running an Engine
// with Options.AdvertisedAddr (or a default from HTTPAddr) set.
type Instance struct {
	// Endpoint is the host:port the instance advertises.
	Endpoint string
	// Partitions are the source-topic partitions the group assigns to
	// the instance's workers, sorted by topic and partition. A
	// sub-topology's task p, with its stores' partition p, runs where
	// partition p of its source topics is assigned.
	Partitions []broker.TopicPartition
}

// Instances returns the application's instances that advertise an
// endpoint, sorted by endpoint, with their partitions: the view of the
// group's newest assignment among this engine's workers (all workers of a
// group get the same view of a generation). An instance whose workers have
// no partition (more instances than partitions) is listed without any.
// Partitions assigned to instances without an endpoint are missing.
//
// On Kafka, the assignment is the group leader's plan: while the
// cooperative protocol moves a partition, it is listed under the instance
// it moves to, which may still be restoring its stores. The embedded log
// runs in one process, where every partition is local; it lists the
// endpoints of the engines sharing it. Instances returns nil before the
// workers' first assignment and after Run returned. Safe for concurrent
// use.
func (e *Engine) Instances() []Instance {
	view := e.sessions.newest()
	out := make([]Instance, 0, len(view.Partitions))
	for _, ep := range slices.Sorted(maps.Keys(view.Partitions)) {
		out = append(out, Instance{Endpoint: ep, Partitions: view.Partitions[ep]})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// InstanceFor tells which instance holds partition partition of store:
// the endpoint of the instance that the group's newest assignment known
// here gives the store's task (through partition partition of its
// sub-topology's first source topic, which all its sources share), and
// whether the partition should be read here, with Stores. local is true
// when the task runs on this engine, or when the assignment places it on
// this instance (whose task may still be starting: Stores then returns
// ErrNotRunning for a while). With local false, endpoint is the instance
// to ask; "" if none is known: no assignment yet, or the partition's
// instance advertises no endpoint.
//
// A key's partition is the one Kafka's default partitioner gives its
// serialized key (murmur2, modulo the partition count that
// Stores().StorePartitions returns), where topology.Lookup looks first
// and reports topology.ErrNotLocal if it is elsewhere. InstanceFor returns an error
// for an unknown store, a partition out of range, and (wrapping
// ErrNotRunning) before Run or a Stepper sized the tasks. Safe for
// concurrent use.
func (e *Engine) InstanceFor(store string, partition int32) (endpoint string, local bool, err error) {
	sub, err := e.storeSub(store)
	if err != nil {
		return "", false, err
	}
	total, _, ok := e.tasks.partitions(sub.ID)
	if !ok {
		return "", false, fmt.Errorf("store %s: %w: the engine has not started", store, ErrNotRunning)
	}
	if partition < 0 || partition >= total {
		return "", false, fmt.Errorf("engine: store %s has partitions 0 to %d, not %d", store, total-1, partition)
	}
	tp := broker.TopicPartition{Topic: sub.Sources[0], Partition: partition}
	for ep, tps := range e.sessions.newest().Partitions {
		if _, found := slices.BinarySearchFunc(tps, tp, compareTP); found {
			endpoint = ep
			break
		}
	}
	self := e.advertised()
	local = e.tasks.get(taskID{sub.ID, partition}) != nil || (self != "" && endpoint == self)
	return endpoint, local, nil
}

func compareTP(a, b broker.TopicPartition) int {
	return cmp.Or(cmp.Compare(a.Topic, b.Topic), cmp.Compare(a.Partition, b.Partition))
}

// advertised returns the endpoint the engine's members advertise:
// Options.AdvertisedAddr, else the host of Options.HTTPAddr (if it names
// one) with the port the HTTP server listens on (or HTTPAddr's, before it
// listens), else "".
func (e *Engine) advertised() string {
	if e.opts.AdvertisedAddr != "" {
		return e.opts.AdvertisedAddr
	}
	host, port, err := net.SplitHostPort(e.opts.HTTPAddr)
	if err != nil || host == "" {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return ""
	}
	if _, p, err := net.SplitHostPort(e.HTTPAddr()); err == nil {
		port = p
	}
	if port == "" || port == "0" {
		return ""
	}
	return net.JoinHostPort(host, port)
}

// validEndpoint reports whether addr is host:port with both parts set.
func validEndpoint(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	return err == nil && host != "" && port != ""
}

// sessionRegistry holds the sessions of the engine's workers (a worker's
// latest, after a rejoin), for Instances from any goroutine.
type sessionRegistry struct {
	mu       sync.Mutex
	sessions map[int]broker.Session // by worker id
}

func (r *sessionRegistry) set(worker int, s broker.Session) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sessions == nil {
		r.sessions = map[int]broker.Session{}
	}
	r.sessions[worker] = s
}

// newest returns the view of the highest generation among the sessions'
// (closed ones have none).
func (r *sessionRegistry) newest() broker.Endpoints {
	r.mu.Lock()
	sessions := slices.Collect(maps.Values(r.sessions))
	r.mu.Unlock()
	var out broker.Endpoints
	for _, s := range sessions {
		if v := s.Endpoints(); v.Generation > out.Generation {
			out = v
		}
	}
	return out
}
