package topology

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/eddyflow/eddy/operators"
)

func itoa(i int) string { return strconv.Itoa(i) }

// Topology is a validated, immutable topology cut into sub-topologies.
type Topology struct {
	app   string
	subs  []*SubTopology
	nodes []*node
}

// SubTopology is a connected part of a topology: operators that pass
// records to each other directly. Sub-topologies exchange records through
// repartition topics. The engine runs one task per sub-topology and
// partition.
type SubTopology struct {
	ID int
	// Sources are the topics the sub-topology reads, sorted; all must
	// have the same partition count.
	Sources []string
	// Sinks are the topics it writes, sorted.
	Sinks []string
	// Stores are its state stores.
	Stores []Store
	nodes  []*node // topological order
}

// Store describes a state store.
type Store struct {
	Name string
	Kind StoreKind
	// Changelog is the store's compacted changelog topic.
	Changelog string
}

// TopicRole tells what a topic is to a topology.
type TopicRole string

const (
	// RoleSource topics are read from outside the topology.
	RoleSource TopicRole = "source"
	// RoleSink topics are written for consumers outside the topology.
	RoleSink TopicRole = "sink"
	// RoleRepartition topics carry re-keyed records between sub-topologies.
	RoleRepartition TopicRole = "repartition"
	// RoleChangelog topics are the compacted changelogs of stores.
	RoleChangelog TopicRole = "changelog"
)

// Topic is a topic a topology reads or writes.
type Topic struct {
	Name string
	Role TopicRole
	// Writer is the sub-topology writing a repartition or changelog
	// topic, whose partition count it takes by default; -1 for source and
	// sink topics.
	Writer int
	// Partitions is the partition count a repartition topic asks for
	// with the Partitions option; 0 for the default.
	Partitions int32
}

// Build validates the builder and cuts the topology into sub-topologies.
func (b *Builder) Build() (*Topology, error) {
	if err := b.Validate(); err != nil {
		return nil, err
	}
	// Union the nodes linked by parent-child edges. Repartition sinks and
	// sources are linked through a topic only, so they split the graph.
	parent := make([]int, len(b.nodes))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	for _, n := range b.nodes {
		for _, c := range n.children {
			parent[find(c.id)] = find(n.id)
		}
	}
	// Number sub-topologies in the order of their first node, which is
	// upstream first since nodes are created from their parents.
	t := &Topology{app: b.app, nodes: b.nodes}
	ids := map[int]*SubTopology{}
	for _, n := range b.nodes {
		root := find(n.id)
		s := ids[root]
		if s == nil {
			s = &SubTopology{ID: len(t.subs)}
			ids[root] = s
			t.subs = append(t.subs, s)
		}
		n.sub = s.ID
		s.nodes = append(s.nodes, n) // node ids are a topological order
		switch n.kind {
		case kindSource, kindTableSource, kindRepartitionSource:
			s.Sources = append(s.Sources, n.topic)
		case kindSink, kindRepartitionSink:
			if !slices.Contains(s.Sinks, n.topic) {
				s.Sinks = append(s.Sinks, n.topic)
			}
		}
		if n.lateTopic != "" && !slices.Contains(s.Sinks, n.lateTopic) {
			s.Sinks = append(s.Sinks, n.lateTopic)
		}
		if n.store != nil {
			s.Stores = append(s.Stores, Store{Name: n.store.name, Kind: n.store.kind, Changelog: b.app + "-" + n.store.name + "-changelog"})
		}
	}
	for _, s := range t.subs {
		slices.Sort(s.Sources)
		slices.Sort(s.Sinks)
	}
	return t, nil
}

// App returns the application name.
func (t *Topology) App() string { return t.app }

// SubTopologies returns the sub-topologies, upstream first.
func (t *Topology) SubTopologies() []*SubTopology { return t.subs }

// Topics lists every topic the topology reads or writes, each once.
func (t *Topology) Topics() []Topic {
	var out []Topic
	seen := map[string]bool{}
	add := func(tp Topic) {
		if !seen[tp.Name] {
			seen[tp.Name] = true
			out = append(out, tp)
		}
	}
	for _, n := range t.nodes {
		switch n.kind {
		case kindSource, kindTableSource:
			add(Topic{Name: n.topic, Role: RoleSource, Writer: -1})
		case kindRepartitionSink:
			add(Topic{Name: n.topic, Role: RoleRepartition, Writer: n.sub, Partitions: n.partitions})
		case kindSink:
			add(Topic{Name: n.topic, Role: RoleSink, Writer: -1})
		}
		if n.lateTopic != "" {
			add(Topic{Name: n.lateTopic, Role: RoleSink, Writer: -1})
		}
	}
	for _, s := range t.subs {
		for _, st := range s.Stores {
			add(Topic{Name: st.Changelog, Role: RoleChangelog, Writer: s.ID})
		}
	}
	return out
}

// NewGraph instantiates the sub-topology for one task: ctx is the task's
// context, stores opens its stores.
func (s *SubTopology) NewGraph(ctx *operators.Context, stores operators.Stores) (*operators.Graph, error) {
	bc := &buildCtx{ctx: ctx, stores: stores, built: make(map[*node]any, len(s.nodes))}
	g := &operators.Graph{Sources: map[string]operators.RawProcessor{}}
	// Children first: node ids are a topological order.
	for i := len(s.nodes) - 1; i >= 0; i-- {
		n := s.nodes[i]
		bc.node = n
		p, err := n.build(bc)
		if err != nil {
			return nil, fmt.Errorf("operator %q: %w", n.name, err)
		}
		bc.built[n] = p
		if n.kind == kindSource || n.kind == kindTableSource || n.kind == kindRepartitionSource {
			g.Sources[n.topic] = p.(operators.RawProcessor)
		}
	}
	for _, n := range s.nodes {
		if f, ok := bc.built[n].(operators.Finisher); ok {
			g.Finishers = append(g.Finishers, f)
		}
	}
	return g, nil
}
