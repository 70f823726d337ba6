package topology_test

import (
	"strings"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
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
