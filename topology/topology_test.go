package topology_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

type view struct {
	User, Region string
}

// pageviews is the topology of the README: filter, re-key, windowed count.
func pageviews() *topology.Builder {
	b := topology.New("pageviews")
	views := topology.StreamFrom(b, "views", serde.String(), serde.JSON[view]())
	byRegion := topology.GroupBy(
		views.Filter(func(_ string, v view) bool { return v.Region != "" }),
		func(_ string, v view) string { return v.Region }, serde.String())
	counts := topology.CountWindows(
		byRegion.WindowedBy(window.Tumbling(time.Minute).Grace(10*time.Second)).EmitOnWindowClose(),
		topology.Named("views-per-region"))
	counts.ToStream().To("views-per-region")
	return b
}

func TestBuildSplitsAtRepartition(t *testing.T) {
	topo, err := pageviews().Build()
	if err != nil {
		t.Fatal(err)
	}
	type sub struct {
		Sources, Sinks []string
		Stores         []topology.Store
	}
	var got []sub
	for _, s := range topo.SubTopologies() {
		got = append(got, sub{s.Sources, s.Sinks, s.Stores})
	}
	want := []sub{
		{Sources: []string{"views"}, Sinks: []string{"pageviews-views-per-region-repartition"}},
		{
			Sources: []string{"pageviews-views-per-region-repartition"},
			Sinks:   []string{"views-per-region"},
			Stores:  []topology.Store{{Name: "views-per-region", Kind: topology.WindowStore, Changelog: "pageviews-views-per-region-changelog"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sub-topologies (-want +got):\n%s", diff)
	}
	wantTopics := []topology.Topic{
		{Name: "views", Role: topology.RoleSource, Writer: -1},
		{Name: "pageviews-views-per-region-repartition", Role: topology.RoleRepartition, Writer: 0},
		{Name: "views-per-region", Role: topology.RoleSink, Writer: -1},
		{Name: "pageviews-views-per-region-changelog", Role: topology.RoleChangelog, Writer: 1},
	}
	if diff := cmp.Diff(wantTopics, topo.Topics()); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
}

func TestNoRepartitionWithoutKeyChange(t *testing.T) {
	b := topology.New("app")
	s := topology.StreamFrom(b, "in", serde.String(), serde.String())
	topology.MapValues(s, func(_ string, v string) int64 { return int64(len(v)) }).
		WithValueSerde(serde.Int64()).
		GroupByKey().
		Count(topology.Named("lengths")).
		To("out")
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(topo.SubTopologies()); n != 1 {
		t.Fatalf("got %d sub-topologies, want 1 (MapValues keeps the key)", n)
	}
}

func TestValidateMessages(t *testing.T) {
	tests := []struct {
		name  string
		build func(b *topology.Builder)
		want  []string
	}{
		{
			name:  "no source",
			build: func(b *topology.Builder) {},
			want:  []string{"topology app: no source: read a topic with StreamFrom or TableFrom"},
		},
		{
			name: "missing serde",
			build: func(b *topology.Builder) {
				topology.StreamFrom[string, string](b, "in", nil, serde.String())
			},
			want: []string{`topology app: source "source-0" (topic "in"): missing key serde`},
		},
		{
			name: "duplicate names",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String(), topology.Named("x"))
				s.Filter(func(string, string) bool { return true }, topology.Named("x"))
			},
			want: []string{`topology app: duplicate name "x": used by source and filter`},
		},
		{
			name: "topic read twice",
			build: func(b *topology.Builder) {
				topology.StreamFrom(b, "in", serde.String(), serde.String())
				topology.TableFrom(b, "in", serde.String(), serde.String())
			},
			want: []string{`topology app: topic "in" is read by both source "source-0" and table-source "table-source-1": read it once and share the stream`},
		},
		{
			name: "serde unknown after key change",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				topology.Map(s, func(k, v string) (int64, string) { return 1, v }).To("out")
			},
			want: []string{
				`topology app: To(out) at "sink-2": the stream's key serde is unknown after a key change: set it with WithKeySerde`,
				`topology app: To(out) at "sink-2": the stream's value serde is unknown after a value change: set it with WithValueSerde`,
			},
		},
		{
			name: "repartition needs serdes",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				topology.MapValues(s, func(_, v string) int { return len(v) }).
					GroupByKey().Count(topology.Named("c"))
				topology.SelectKey(s, func(k, v string) string { return v }).GroupByKey().Count(topology.Named("d"))
			},
			want: []string{
				`topology app: count (repartition) at "d-repartition-sink": the stream's key serde is unknown after a key change: set it with WithKeySerde`,
				`topology app: count "d": the grouped stream's key serde is unknown: set it with WithKeySerde`,
			},
		},
		{
			name: "bad window",
			build: func(b *topology.Builder) {
				s := topology.StreamFrom(b, "in", serde.String(), serde.String())
				s.GroupByKey().WindowedBy(window.Hopping(time.Second, 2*time.Second))
			},
			want: []string{`topology app: WindowedBy after "source-0": window: hopping advance must be in [1ms, size=1000ms], got 2000ms`},
		},
		{
			name: "merge across builders",
			build: func(b *topology.Builder) {
				other := topology.StreamFrom(topology.New("other"), "x", serde.String(), serde.String())
				topology.StreamFrom(b, "in", serde.String(), serde.String()).Merge(other)
			},
			want: []string{`topology app: Merge: stream "source-0" comes from another Builder (other)`},
		},
		{
			name: "bad names",
			build: func(b *topology.Builder) {
				topology.StreamFrom(b, "", serde.String(), serde.String(), topology.Named("a b"))
			},
			want: []string{
				`topology app: name "a b" (source): use only letters, digits, '.', '_' and '-'`,
				`topology app: source "a b": empty topic name`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := topology.New("app")
			tc.build(b)
			err := b.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want errors")
			}
			got := strings.Split(err.Error(), "\n")
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			if _, err := b.Build(); err == nil {
				t.Error("Build() succeeded on an invalid topology")
			}
		})
	}
}

func TestBadAppName(t *testing.T) {
	b := topology.New("my app")
	topology.StreamFrom(b, "in", serde.String(), serde.String())
	err := b.Validate()
	want := `topology my app: application name "my app" must be non-empty and use only letters, digits, '.', '_' and '-'`
	if err == nil || err.Error() != want {
		t.Errorf("Validate() = %v, want %q", err, want)
	}
}

func TestDescribe(t *testing.T) {
	topo, err := pageviews().Build()
	if err != nil {
		t.Fatal(err)
	}
	want := `Topology: pageviews
  Sub-topology 0
    Source: source-0 (topic: views)
      --> filter-1
    Processor: filter-1 (filter)
      --> select-key-2
      <-- source-0
    Processor: select-key-2 (select-key)
      --> views-per-region-repartition-sink
      <-- filter-1
    Sink: views-per-region-repartition-sink (topic: pageviews-views-per-region-repartition)
      <-- select-key-2
  Sub-topology 1
    Source: views-per-region-repartition-source (topic: pageviews-views-per-region-repartition)
      --> views-per-region
    Processor: views-per-region (windowed-count, store: views-per-region)
      --> to-stream-6
      <-- views-per-region-repartition-source
    Processor: to-stream-6 (to-stream)
      --> sink-7
      <-- views-per-region
    Sink: sink-7 (topic: views-per-region)
      <-- to-stream-6
  Stores:
    views-per-region (window, tumbling(size=1m0s, grace=10s), emit on window close)
  Internal topics:
    pageviews-views-per-region-repartition (repartition, written by sub-topology 0)
    pageviews-views-per-region-changelog (changelog, compacted)
`
	if diff := cmp.Diff(want, topo.Describe().String()); diff != "" {
		t.Errorf("Describe (-want +got):\n%s", diff)
	}
	m := topo.Describe().Mermaid()
	for _, line := range []string{
		"flowchart TD",
		`  subgraph sub1["Sub-topology 1"]`,
		`  t_views(["views"])`,
		"  t_views --> n0",
		"  n3 --> t_pageviews_views_per_region_repartition",
		"  t_pageviews_views_per_region_repartition --> n4",
		"  n5 --- s5",
	} {
		if !strings.Contains(m, line+"\n") {
			t.Errorf("Mermaid output lacks %q:\n%s", line, m)
		}
	}
}
