package topology_test

import (
	"cmp"
	"strings"
	"time"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

func init() { registerScenario("stateless", statelessScenario) }

// statelessScenario chains the stateless operators over string topics:
// "in" and "more" are merged; values starting with '-' are filtered out;
// the rest are split on ',' (FlatMapValues), upper-cased (MapValues),
// re-keyed by their first letter (SelectKey) and branched: values
// starting with a digit go to "digits", the others to "words". Every
// record keeps its input timestamp.
func statelessScenario(p *scenarioParams) *topology.Builder {
	b := topology.New("scenario")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	more := topology.StreamFrom(b, "more", serde.String(), serde.String())
	kept := in.Merge(more).Filter(func(_, v string) bool { return !strings.HasPrefix(v, "-") })
	split := topology.FlatMapValues(kept, func(_, v string) []string { return strings.Split(v, ",") })
	upper := topology.MapValues(split, func(_, v string) string { return strings.ToUpper(v) })
	keyed := topology.SelectKey(upper, func(_, v string) string { return v[:min(len(v), 1)] }).WithKeySerde(serde.String())
	br := keyed.Branch(
		func(_, v string) bool { return v != "" && v[0] >= '0' && v[0] <= '9' },
		func(string, string) bool { return true },
	)
	br[0].WithValueSerde(serde.String()).To("digits")
	br[1].WithValueSerde(serde.String()).To("words")
	return b
}

func init() { registerScenario("nil-key", nilKeyScenario) }

// nilKeyScenario feeds the string stream "in" to a pass-through sink
// "pass", a Count ("count"), a 10ms tumbling count ("window", keys
// printed key@start-end), and a 10ms join with the stream "right"
// ("join"): rule 39's nil keys reach only "pass".
func nilKeyScenario(p *scenarioParams) *topology.Builder {
	b := topology.New("scenario")
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	right := topology.StreamFrom(b, "right", serde.String(), serde.String())
	// The empty key prints as "-".
	topology.SelectKey(in, func(k, _ string) string { return cmp.Or(k, "-") }).WithKeySerde(serde.String()).To("pass")
	in.GroupByKey().Count(topology.Named("count")).WithValueSerde(int64Text()).To("count")
	topology.CountWindows(in.GroupByKey().WindowedBy(window.Tumbling(10*time.Millisecond)), topology.Named("window")).
		WithKeySerde(windowedText()).WithValueSerde(int64Text()).To("window")
	topology.Join(in, right, topology.JoinTimeDifference(10*time.Millisecond).Grace(time.Second),
		func(_, l, r string) string { return l + "+" + r }, topology.Named("j")).WithValueSerde(serde.String()).To("join")
	return b
}
