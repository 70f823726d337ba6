package topology

import (
	"fmt"
	"strings"
)

// Description is a printable picture of a topology.
type Description struct {
	t *Topology
}

// Describe describes the topology.
func (t *Topology) Describe() Description { return Description{t} }

// Format returns the description in format: "text" (String) or "mermaid"
// (Mermaid); the formats of eddy describe, of a program's -describe flag
// and of the HTTP server's /topology.
func (d Description) Format(format string) (string, error) {
	switch format {
	case "text":
		return d.String(), nil
	case "mermaid":
		return d.Mermaid(), nil
	}
	return "", fmt.Errorf("unknown format %q: want text or mermaid", format)
}

// String lists the sub-topologies with their operators, then the stores
// and internal topics, in the style of Kafka Streams' describe().
func (d Description) String() string {
	t := d.t
	var sb strings.Builder
	fmt.Fprintf(&sb, "Topology: %s\n", t.app)
	for _, s := range t.subs {
		fmt.Fprintf(&sb, "  Sub-topology %d\n", s.ID)
		for _, n := range s.nodes {
			switch n.kind {
			case kindSource, kindRepartitionSource:
				fmt.Fprintf(&sb, "    Source: %s (topic: %s)\n", n.name, n.topic)
			case kindTableSource:
				fmt.Fprintf(&sb, "    Table source: %s (topic: %s, store: %s)\n", n.name, n.topic, n.store.name)
			case kindSink, kindRepartitionSink:
				fmt.Fprintf(&sb, "    Sink: %s (topic: %s)\n", n.name, n.topic)
			default:
				if n.store != nil {
					fmt.Fprintf(&sb, "    Processor: %s (%s, store: %s)\n", n.name, n.op, n.store.name)
				} else {
					fmt.Fprintf(&sb, "    Processor: %s (%s)\n", n.name, n.op)
				}
			}
			if n.lateTopic != "" {
				fmt.Fprintf(&sb, "      late records --> topic %s\n", n.lateTopic)
			}
			if len(n.children) > 0 {
				fmt.Fprintf(&sb, "      --> %s\n", names(n.children))
			}
			if len(n.parents) > 0 {
				fmt.Fprintf(&sb, "      <-- %s\n", names(n.parents))
			}
		}
	}
	var stores []string
	for _, n := range t.nodes {
		if n.store != nil {
			line := fmt.Sprintf("    %s (%s", n.store.name, n.store.kind)
			if n.store.detail != "" {
				line += ", " + n.store.detail
			}
			stores = append(stores, line+")")
		}
	}
	if len(stores) > 0 {
		sb.WriteString("  Stores:\n")
		sb.WriteString(strings.Join(stores, "\n") + "\n")
	}
	var internal []string
	for _, tp := range t.Topics() {
		switch tp.Role {
		case RoleRepartition:
			internal = append(internal, fmt.Sprintf("    %s (repartition, written by sub-topology %d)", tp.Name, tp.Writer))
		case RoleChangelog:
			internal = append(internal, fmt.Sprintf("    %s (changelog, compacted)", tp.Name))
		}
	}
	if len(internal) > 0 {
		sb.WriteString("  Internal topics:\n")
		sb.WriteString(strings.Join(internal, "\n") + "\n")
	}
	return sb.String()
}

func names(ns []*node) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = n.name
	}
	return strings.Join(s, ", ")
}

// Mermaid renders the topology as a Mermaid flowchart: one subgraph per
// sub-topology, topics as stadium-shaped nodes, stores as cylinders.
func (d Description) Mermaid() string {
	t := d.t
	var sb strings.Builder
	sb.WriteString("flowchart TD\n")
	topicID := func(name string) string { return "t_" + mermaidID(name) }
	topics := map[string]bool{}
	for _, s := range t.subs {
		fmt.Fprintf(&sb, "  subgraph sub%d[\"Sub-topology %d\"]\n", s.ID, s.ID)
		for _, n := range s.nodes {
			fmt.Fprintf(&sb, "    n%d[\"%s<br/>%s\"]\n", n.id, n.name, n.op)
			if n.store != nil {
				fmt.Fprintf(&sb, "    s%d[(\"%s\")]\n", n.id, n.store.name)
			}
		}
		sb.WriteString("  end\n")
	}
	for _, n := range t.nodes {
		for _, tp := range []string{n.topic, n.lateTopic} {
			if tp != "" && !topics[tp] {
				topics[tp] = true
				fmt.Fprintf(&sb, "  %s([\"%s\"])\n", topicID(tp), tp)
			}
		}
	}
	for _, n := range t.nodes {
		switch n.kind {
		case kindSource, kindTableSource, kindRepartitionSource:
			fmt.Fprintf(&sb, "  %s --> n%d\n", topicID(n.topic), n.id)
		case kindSink, kindRepartitionSink:
			fmt.Fprintf(&sb, "  n%d --> %s\n", n.id, topicID(n.topic))
		}
		if n.lateTopic != "" {
			fmt.Fprintf(&sb, "  n%d -. late .-> %s\n", n.id, topicID(n.lateTopic))
		}
		for _, c := range n.children {
			fmt.Fprintf(&sb, "  n%d --> n%d\n", n.id, c.id)
		}
		if n.store != nil {
			fmt.Fprintf(&sb, "  n%d --- s%d\n", n.id, n.id)
		}
	}
	return sb.String()
}

// mermaidID keeps the characters Mermaid accepts in node ids.
func mermaidID(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, s)
}
