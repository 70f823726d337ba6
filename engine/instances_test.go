package engine_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/engine"
)

// instancesTimeout bounds the waits for a group to settle.
const instancesTimeout = 60 * time.Second

// await polls cond every 20ms until it returns "" or timeout passes, then
// fails with cond's last complaint.
func await(t *testing.T, what string, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: %s", what, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// planInstances returns the Instances that broker.CoPartitioned deals
// over the workers of the instances named, all advertising endpoints.
func planInstances(app string, workers int, endpoints map[string]string, partitions map[string]int32) []engine.Instance {
	var members []string
	memberOf := map[string]string{}
	for name := range endpoints {
		for i := range workers {
			m := fmt.Sprintf("%s-%s-%d", app, name, i)
			members = append(members, m)
			memberOf[m] = name
		}
	}
	slices.Sort(members)
	byEndpoint := map[string][]broker.TopicPartition{}
	for m, tps := range broker.CoPartitioned(members, partitions) {
		ep := endpoints[memberOf[m]]
		byEndpoint[ep] = append(byEndpoint[ep], tps...)
	}
	var out []engine.Instance
	for _, ep := range slices.Sorted(maps.Values(endpoints)) {
		out = append(out, engine.Instance{Endpoint: ep, Partitions: sortTPs(byEndpoint[ep])})
	}
	return out
}

func sortTPs(tps []broker.TopicPartition) []broker.TopicPartition {
	out := slices.Clone(tps)
	slices.SortFunc(out, func(a, b broker.TopicPartition) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return int(a.Partition - b.Partition)
	})
	return out
}

// checkCover returns why the instances' partitions are not disjoint or
// do not cover all, or "".
func checkCover(got []engine.Instance, all map[string]int32) string {
	owner := map[broker.TopicPartition]string{}
	for _, in := range got {
		for _, tp := range in.Partitions {
			if o, dup := owner[tp]; dup {
				return fmt.Sprintf("%v listed under %s and %s", tp, o, in.Endpoint)
			}
			owner[tp] = in.Endpoint
		}
	}
	for topic, n := range all {
		for p := range n {
			if tp := (broker.TopicPartition{Topic: topic, Partition: p}); owner[tp] == "" {
				return fmt.Sprintf("%v listed under no instance", tp)
			}
		}
	}
	return ""
}

// TestKafkaInstances runs two instances of an application with a
// repartition on kfake, two workers each, advertising different
// endpoints. Once the group settles, each instance's Instances lists both
// endpoints with the co-partitioned plan's partitions (disjoint, covering
// every partition of the group's topics), and both instances' InstanceFor
// name the same instance for every partition of the store, local on that
// one only. When one stops, the survivor's Instances list only itself,
// with every partition, and InstanceFor is local everywhere.
func TestKafkaInstances(t *testing.T) {
	brokers := newKfake(t)
	log := openKafka(t, brokers)
	ctx := context.Background()
	if err := log.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 4}, broker.TopicConfig{Name: "out", Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	endpoints := map[string]string{"a": "a.example:8080", "b": "[2001:db8::b]:9090"}
	type instance struct {
		eng  *engine.Engine
		stop context.CancelFunc
		done chan error
	}
	start := func(name string) *instance {
		eng, err := engine.Open(windowTopology(), engine.Options{
			StateDir: t.TempDir(), Log: openKafka(t, brokers), InstanceID: name, AdvertisedAddr: endpoints[name],
			CacheBytes: -1, CommitInterval: 20 * time.Millisecond, Workers: 2,
		})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		in := &instance{eng, stop, make(chan error, 1)}
		go func() { in.done <- eng.Run(runCtx) }()
		t.Cleanup(func() { stop(); <-in.done; eng.Close() })
		return in
	}
	a, b := start("a"), start("b")
	instances := map[string]*instance{"a": a, "b": b}

	// The group's topics: "in" and the repartition topic, 4 partitions each.
	topo := a.eng.Topology()
	all := map[string]int32{}
	for _, s := range topo.SubTopologies() {
		for _, src := range s.Sources {
			all[src] = 4
		}
	}
	if len(all) != 2 {
		t.Fatalf("the topology reads %v, want in and a repartition topic", all)
	}
	want := planInstances(topo.App(), 2, endpoints, all)
	if msg := checkCover(want, all); msg != "" || len(want) != 2 || len(want[0].Partitions) == 0 || len(want[1].Partitions) == 0 {
		t.Fatalf("the plan %+v does not share the work: %s", want, msg)
	}
	// owner returns the endpoint that want gives partition p of the store.
	storeSource := ""
	for _, s := range topo.SubTopologies() {
		if len(s.Stores) > 0 {
			storeSource = s.Sources[0]
		}
	}
	owner := func(p int32) string {
		for _, in := range want {
			if slices.Contains(in.Partitions, broker.TopicPartition{Topic: storeSource, Partition: p}) {
				return in.Endpoint
			}
		}
		return ""
	}
	settled := func(want []engine.Instance, names ...string) func() string {
		return func() string {
			for _, name := range names {
				got := instances[name].eng.Instances()
				if diff := cmp.Diff(want, got); diff != "" {
					return fmt.Sprintf("%s's Instances (-want +got):\n%s", name, diff)
				}
				if msg := checkCover(got, all); msg != "" {
					return fmt.Sprintf("%s's Instances: %s", name, msg)
				}
				for p := range int32(4) {
					ep, local, err := instances[name].eng.InstanceFor("counts", p)
					if err != nil {
						return fmt.Sprintf("%s: InstanceFor(counts, %d): %v", name, p, err)
					}
					if ep != owner(p) || local != (ep == endpoints[name]) {
						return fmt.Sprintf("%s: InstanceFor(counts, %d) = %q, %v; want %q, %v", name, p, ep, local, owner(p), owner(p) == endpoints[name])
					}
				}
			}
			return ""
		}
	}
	await(t, "both instances to see both", instancesTimeout, settled(want, "a", "b"))

	a.stop()
	if err := <-a.done; err != nil {
		t.Fatalf("instance a: %v", err)
	}
	a.done <- nil // for the cleanup
	if got := a.eng.Instances(); got != nil {
		t.Errorf("a's Instances after Run returned = %+v, want nil", got)
	}
	want = []engine.Instance{{Endpoint: endpoints["b"], Partitions: sortTPs(slices.Concat(want[0].Partitions, want[1].Partitions))}}
	owner = func(int32) string { return endpoints["b"] }
	await(t, "b to see only itself", instancesTimeout, settled(want, "b"))
}

// TestInstancesEmbedded runs a Stepper on the embedded log: its one
// instance holds every partition.
func TestInstancesEmbedded(t *testing.T) {
	eng, err := engine.Open(windowTopology(), engine.Options{InMemory: true, AdvertisedAddr: "self:1", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := eng.InstanceFor("counts", 0); !errors.Is(err, engine.ErrNotRunning) {
		t.Errorf("InstanceFor before the start: %v, want ErrNotRunning", err)
	}
	s, err := eng.Stepper(ctx, time.UnixMilli(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop(ctx)
	if _, err := s.Process(ctx); err != nil {
		t.Fatal(err)
	}
	all := map[string]int32{}
	for _, sub := range eng.Topology().SubTopologies() {
		for _, src := range sub.Sources {
			all[src] = 3
		}
	}
	var tps []broker.TopicPartition
	for topic, n := range all {
		for p := range n {
			tps = append(tps, broker.TopicPartition{Topic: topic, Partition: p})
		}
	}
	want := []engine.Instance{{Endpoint: "self:1", Partitions: sortTPs(tps)}}
	if diff := cmp.Diff(want, eng.Instances()); diff != "" {
		t.Errorf("Instances (-want +got):\n%s", diff)
	}
	for p := range int32(3) {
		ep, local, err := eng.InstanceFor("counts", p)
		if ep != "self:1" || !local || err != nil {
			t.Errorf("InstanceFor(counts, %d) = %q, %v, %v; want self:1, true, nil", p, ep, local, err)
		}
	}
	for _, tc := range []struct {
		store     string
		partition int32
		want      string
	}{
		{"nope", 0, `no store "nope"`},
		{"counts", 3, "not 3"},
		{"counts", -1, "not -1"},
	} {
		if _, _, err := eng.InstanceFor(tc.store, tc.partition); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("InstanceFor(%s, %d) = %v, want an error with %q", tc.store, tc.partition, err, tc.want)
		}
	}
}

// TestInstancesAdvertisedDefault checks what an engine advertises
// without AdvertisedAddr: its HTTP server's address if HTTPAddr names a
// host, else nothing; and that Open rejects an AdvertisedAddr that is not
// host:port.
func TestInstancesAdvertisedDefault(t *testing.T) {
	tests := []struct {
		name, httpAddr, advertised string
		// want returns the endpoint wanted, given the server's address.
		want func(listening string) string
	}{
		{"host and port 0", "127.0.0.1:0", "", func(l string) string { return l }},
		{"advertised wins", "127.0.0.1:0", "me.example:443", func(string) string { return "me.example:443" }},
		{"no host", ":0", "", func(string) string { return "" }},
		{"unspecified host", "0.0.0.0:0", "", func(string) string { return "" }},
		{"no server", "", "", func(string) string { return "" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng, err := engine.Open(windowTopology(), engine.Options{
				InMemory: true, HTTPAddr: tc.httpAddr, AdvertisedAddr: tc.advertised, Workers: 1,
				CommitInterval: 10 * time.Millisecond,
			})
			if err != nil {
				t.Fatal(err)
			}
			defer eng.Close()
			ctx, stop := context.WithCancel(context.Background())
			if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- eng.Run(ctx) }()
			defer func() { stop(); <-done }()
			await(t, "the first assignment", instancesTimeout, func() string {
				if _, local, err := eng.InstanceFor("counts", 0); err != nil || !local {
					return fmt.Sprintf("InstanceFor(counts, 0): local %v, %v", local, err)
				}
				return ""
			})
			var got []string
			for _, in := range eng.Instances() {
				got = append(got, in.Endpoint)
			}
			var want []string
			if ep := tc.want(eng.HTTPAddr()); ep != "" {
				want = []string{ep}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("endpoints (-want +got):\n%s", diff)
			}
		})
	}
	for _, addr := range []string{"nohost", ":8080", "host:", "host"} {
		if _, err := engine.Open(windowTopology(), engine.Options{InMemory: true, AdvertisedAddr: addr}); err == nil || !strings.Contains(err.Error(), "AdvertisedAddr") {
			t.Errorf("Open with AdvertisedAddr %q: %v, want an AdvertisedAddr error", addr, err)
		}
	}
}

// staleLog's first session reports a stale view of the group's endpoints,
// of generation 1: the engine must answer from its other worker's newer
// view.
type staleLog struct {
	broker.Log
	mu     sync.Mutex
	joined int
}

func (l *staleLog) NewSession(ctx context.Context, cfg broker.SessionConfig) (broker.Session, error) {
	l.mu.Lock()
	l.joined++
	first := l.joined == 1
	l.mu.Unlock()
	s, err := l.Log.NewSession(ctx, cfg)
	if err != nil || !first {
		return s, err
	}
	return staleSession{s}, nil
}

type staleSession struct{ broker.Session }

func (staleSession) Endpoints() broker.Endpoints {
	return broker.Endpoints{Generation: 1, Partitions: map[string][]broker.TopicPartition{"stale:1": {{Topic: "in", Partition: 0}}}}
}

// TestInstancesNewestView runs two workers whose views differ: Instances
// and InstanceFor answer from the newer one.
func TestInstancesNewestView(t *testing.T) {
	l, err := embedded.Open(embedded.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	eng, err := engine.Open(windowTopology(), engine.Options{
		InMemory: true, Log: &staleLog{Log: l}, AdvertisedAddr: "self:1", Workers: 2, CommitInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, stop := context.WithCancel(context.Background())
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	defer func() { stop(); <-done }()
	await(t, "the newer view", 5*time.Second, func() string {
		got := eng.Instances()
		if len(got) != 1 || got[0].Endpoint != "self:1" || len(got[0].Partitions) != 4 {
			return fmt.Sprintf("Instances = %+v, want self:1 with 4 partitions", got)
		}
		if ep, local, err := eng.InstanceFor("counts", 0); ep != "self:1" || !local || err != nil {
			return fmt.Sprintf("InstanceFor(counts, 0) = %q, %v, %v; want self:1, true, nil", ep, local, err)
		}
		return ""
	})
}
