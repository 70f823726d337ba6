package topology_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/topology"
	"github.com/eddyflow/eddy/window"
)

// Scenario builders for the windowed and non-windowed aggregations of
// grouped streams and for table sources. Their scenario files are
// testdata/scenarios/{tumbling,hopping,aggregate,table-source}-*.txt.
//
// Every topology reads the string stream (or table) "in". Aggregates are
// written to "out" as text: windowed keys as key@start-end (A@0-10),
// counts as decimal numbers. The string aggregations fold like Kafka
// Streams' own tests: Aggregate starts at "0" and appends "+value",
// Reduce appends "+value" to the first value, so the output shows the
// order in which values were folded in.

func init() {
	registerScenario("window-count", windowScenario("count"))
	registerScenario("window-aggregate", windowScenario("aggregate"))
	registerScenario("count", streamAggregateScenario("count"))
	registerScenario("reduce", streamAggregateScenario("reduce"))
	registerScenario("aggregate", streamAggregateScenario("aggregate"))
	registerScenario("table", tableScenario)
}

// windowedText prints a windowed key as "key@start-end" and reads it back.
func windowedText() serde.Serde[window.Windowed[string]] {
	return serde.Func(
		func(dst []byte, w window.Windowed[string]) ([]byte, error) {
			return fmt.Appendf(dst, "%s@%d-%d", w.Key, w.Start, w.End), nil
		},
		func(b []byte) (window.Windowed[string], error) {
			var w window.Windowed[string]
			at := strings.LastIndexByte(string(b), '@')
			if at < 0 {
				return w, fmt.Errorf("windowed key %q: no '@'", b)
			}
			start, end, ok := strings.Cut(string(b[at+1:]), "-")
			if !ok {
				return w, fmt.Errorf("windowed key %q: want key@start-end", b)
			}
			var err error
			if w.Start, err = strconv.ParseInt(start, 10, 64); err != nil {
				return w, fmt.Errorf("windowed key %q: %w", b, err)
			}
			if w.End, err = strconv.ParseInt(end, 10, 64); err != nil {
				return w, fmt.Errorf("windowed key %q: %w", b, err)
			}
			w.Key = string(b[:at])
			return w, nil
		})
}

// int64Text prints an int64 as decimal text and reads it back.
func int64Text() serde.Serde[int64] {
	return serde.Func(
		func(dst []byte, n int64) ([]byte, error) { return strconv.AppendInt(dst, n, 10), nil },
		func(b []byte) (int64, error) { return strconv.ParseInt(string(b), 10, 64) })
}

// boolParam reads a parameter that is "true" or "false" (default false).
func boolParam(p *scenarioParams, name string) bool {
	v := p.String(name, "false")
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.errs = append(p.errs, fmt.Errorf("parameter %s: %w", name, err))
	}
	return b
}

// prefixKey is the re-keying of rekey=true: the part of the value before
// a ':' (the whole value if it has none).
func prefixKey(_, v string) string {
	k, _, _ := strings.Cut(v, ":")
	return k
}

// groupedIn reads "in" and groups it, by the part of the value before a
// ':' (through a repartition topic) when the parameter rekey is true.
func groupedIn(b *topology.Builder, p *scenarioParams) topology.Grouped[string, string] {
	in := topology.StreamFrom(b, "in", serde.String(), serde.String())
	if boolParam(p, "rekey") {
		return topology.GroupBy(in, prefixKey, serde.String())
	}
	return in.GroupByKey()
}

// windowScenario builds a windowed count ("count") or string aggregation
// ("aggregate") of "in", written to "out". Parameters: size (default
// 10ms), advance (default size: tumbling windows), grace (default 0),
// final=true to emit on window close, late=<topic> to write late records
// there, rekey=true to group by the part of the value before ':'.
func windowScenario(agg string) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		size := p.Duration("size", 10*time.Millisecond)
		spec := window.Tumbling(size)
		if _, hopping := p.m["advance"]; hopping {
			spec = window.Hopping(size, p.Duration("advance", size))
		}
		spec = spec.Grace(p.Duration("grace", 0))
		b := topology.New("scenario")
		ws := groupedIn(b, p).WindowedBy(spec)
		if boolParam(p, "final") {
			ws = ws.EmitOnWindowClose()
		}
		opts := []topology.Option{topology.Named("w")}
		if late := p.String("late", ""); late != "" {
			opts = append(opts, topology.LateRecordsTo(late))
		}
		switch agg {
		case "count":
			topology.CountWindows(ws, opts...).
				WithKeySerde(windowedText()).WithValueSerde(int64Text()).To("out")
		case "aggregate":
			topology.AggregateWindows(ws, func() string { return "0" },
				func(_, v, agg string) string { return agg + "+" + v },
				serde.String(), opts...).
				WithKeySerde(windowedText()).To("out")
		}
		return b
	}
}

// streamAggregateScenario builds a non-windowed Count, Reduce or
// Aggregate of "in", written to "out". Parameter: rekey=true to group by
// the part of the value before ':'.
func streamAggregateScenario(agg string) scenarioBuilder {
	return func(p *scenarioParams) *topology.Builder {
		b := topology.New("scenario")
		g := groupedIn(b, p)
		opts := []topology.Option{topology.Named("a")}
		switch agg {
		case "count":
			g.Count(opts...).WithValueSerde(int64Text()).To("out")
		case "reduce":
			g.Reduce(func(agg, v string) string { return agg + "+" + v }, opts...).To("out")
		case "aggregate":
			topology.Aggregate(g, func() string { return "0" },
				func(_, v, agg string) string { return agg + "+" + v },
				serde.String(), opts...).To("out")
		}
		return b
	}
}

// tableScenario reads "in" as a table and writes its changes to "table"
// (with tombstones) and its stream of updates to "stream".
func tableScenario(p *scenarioParams) *topology.Builder {
	b := topology.New("scenario")
	t := topology.TableFrom(b, "in", serde.String(), serde.String(), topology.Named("t"))
	t.To("table")
	t.ToStream().To("stream")
	return b
}

// TestWindowScenariosCiteRules checks that every scenario file of the
// aggregations and table sources says which rules of SEMANTICS-KS.md it
// checks, in its first comment block.
func TestWindowScenariosCiteRules(t *testing.T) {
	rule := regexp.MustCompile(`(?i)^#.*\brules? \d+`)
	n := 0
	for _, prefix := range []string{"tumbling", "hopping", "aggregate", "table-source"} {
		files, err := filepath.Glob(filepath.Join("testdata", "scenarios", prefix+"-*.txt"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			n++
			cited := false
			for _, line := range scenarioFileLines(t, path) {
				if !strings.HasPrefix(line, "#") {
					break
				}
				cited = cited || rule.MatchString(line)
			}
			if !cited {
				t.Errorf("%s does not begin with a comment citing a rule of SEMANTICS-KS.md", path)
			}
		}
	}
	if n < 12 {
		t.Errorf("%d aggregation and table scenario files, want at least 12", n)
	}
}

// TestWindowedText checks the scenario serdes round-trip.
func TestWindowedText(t *testing.T) {
	ws := windowedText()
	w := window.Windowed[string]{Key: "a@b", Start: 5, End: 15}
	b, err := ws.Encode(nil, w)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != "a@b@5-15" {
		t.Errorf("Encode(%v) = %q, want %q", w, b, "a@b@5-15")
	}
	got, err := ws.Decode(b)
	if err != nil || got != w {
		t.Errorf("Decode(%q) = %v, %v, want %v", b, got, err, w)
	}
	for _, bad := range []string{"a", "a@5", "a@x-1", "a@1-y"} {
		if _, err := ws.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%q): no error", bad)
		}
	}
	n, err := int64Text().Decode([]byte("-42"))
	if err != nil || n != -42 {
		t.Errorf("int64Text Decode(-42) = %d, %v", n, err)
	}
}
