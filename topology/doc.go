// Package topology is eddy's typed DSL: users declare streams and tables
// read from topics, transform them, aggregate them in windows, and write
// results to topics. A topology is data: built, validated and described
// before anything runs. Nothing here starts a goroutine or touches a disk.
//
//	b := topology.New("pageviews")
//	views := topology.StreamFrom(b, "views", serde.String(), serde.JSON[PageView]())
//	byRegion := topology.GroupBy(views.Filter(hasRegion),
//		func(_ string, v PageView) string { return v.Region }, serde.String())
//	counts := topology.CountWindows(
//		byRegion.WindowedBy(window.Tumbling(time.Minute).Grace(10*time.Second)).EmitOnWindowClose(),
//		topology.Named("views-per-region"))
//	counts.ToStream().To("views-per-region")
//	topo, err := b.Build() // validates; engine.Open calls it for you
//
// Go methods cannot take type parameters, so operations that change the key
// or value type (Map, GroupBy, Aggregate) are functions, and so are the windowed
// aggregations; those that keep the types (Filter, Peek, Merge, Count)
// are methods.
//
// A key change (Map, SelectKey, FlatMap, GroupBy) followed by a stateful
// operator inserts a repartition topic, <app>-<name>-repartition, and cuts
// the graph into sub-topologies there, as Kafka Streams does. Every store
// has a changelog topic, <app>-<store>-changelog. The engine creates
// internal topics.
//
// Builders are not safe for concurrent use; a built Topology is immutable
// and may be shared.
package topology
