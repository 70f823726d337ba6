package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/eddyflow/eddy/benchmarks"
)

// mainEnv makes the test binary run as eddy itself: the harness starts
// it as `eddy bench worker` (see workerCommand).
const mainEnv = "EDDY_BENCH_TEST_MAIN"

func init() {
	if os.Getenv(mainEnv) != "" {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
		stop()
		os.Exit(exitCode(err, os.Stderr))
	}
	workerCommand = func() ([]string, []string, error) {
		return []string{os.Args[0], "bench", "worker"}, []string{mainEnv + "=1"}, nil
	}
}

// jsonResults parses the JSON lines of out into generic maps and Results.
func jsonResults(t *testing.T, out string) ([]map[string]any, []benchmarks.Result) {
	t.Helper()
	var raw []map[string]any
	var results []benchmarks.Result
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		var r benchmarks.Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		raw, results = append(raw, m), append(results, r)
	}
	return raw, results
}

// resultFields are the fields every JSON result has.
var resultFields = []string{"system", "workload", "variant", "emit", "guarantee", "backend", "partitions", "workers",
	"events", "load_seconds", "seconds", "events_per_s", "events_per_cpu_s", "cpu_seconds", "peak_rss_bytes",
	"state_bytes", "results", "latency_ms", "machine", "go_version", "date", "seed"}

func checkJSON(t *testing.T, raw []map[string]any, results []benchmarks.Result, systems []string, events int64) {
	t.Helper()
	var got []string
	for i, r := range results {
		got = append(got, r.System)
		for _, f := range resultFields {
			if _, ok := raw[i][f]; !ok {
				t.Errorf("%s: no field %q", r.System, f)
			}
		}
		if raw[i]["latency_ms"] != nil {
			t.Errorf("%s: latency_ms = %v in throughput mode, want null", r.System, raw[i]["latency_ms"])
		}
		if r.Events != events || r.EventsPerS <= 0 || r.EventsPerCPUS <= 0 || r.PeakRSSBytes <= 0 || r.Results == 0 || r.Machine.CPUs == 0 {
			t.Errorf("%s: insane result %+v", r.System, r)
		}
	}
	if diff := cmp.Diff(systems, got); diff != "" {
		t.Errorf("systems (-want +got):\n%s", diff)
	}
}

// TestBenchWA1Embedded runs `eddy bench wa1` on the embedded log with
// eddy and the loop as child processes, checks the JSON lines, the
// results files and the comparison, then charts the results file.
func TestBenchWA1Embedded(t *testing.T) {
	dir := t.TempDir()
	results, out := filepath.Join(dir, "wa1"), filepath.Join(dir, "results.jsonl")
	stdout, stderr, code := eddy(t, "", "bench", "wa1", "--events", "20000", "--keys", "300", "--seed", "3",
		"--json", "--results", results, "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	raw, rs := jsonResults(t, stdout)
	checkJSON(t, raw, rs, []string{"loop", "eddy"}, 20000)
	for _, want := range []string{"eddy: results identical to the loop's", "RATIO", "eddy/loop", "latency: not measured"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	loop, err1 := os.ReadFile(results + ".loop")
	eddyRes, err2 := os.ReadFile(results + ".eddy")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(loop, eddyRes) || len(loop) == 0 {
		t.Errorf("results files differ or are empty (%d and %d bytes)", len(loop), len(eddyRes))
	}
	saved, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if string(saved) != stdout {
		t.Errorf("--out file differs from the JSON lines on stdout:\n%s\n%s", saved, stdout)
	}

	// A second run appends to the results file; the chart has a bar per line.
	mustEddy(t, "", "bench", "wa1", "--events", "5000", "--keys", "100", "--variant", "session", "--peers", "none", "--out", out)
	svg := filepath.Join(dir, "chart.svg")
	mustEddy(t, "", "bench", "chart", "--in", out, "--out", svg)
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	d := xml.NewDecoder(bytes.NewReader(b))
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("chart is not XML: %v", err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "g" {
			for _, a := range se.Attr {
				if a.Name.Local == "data-label" {
					labels = append(labels, a.Value)
				}
			}
		}
	}
	want := []string{"loop · tumbling · memory", "eddy · tumbling · embedded", "eddy · session · embedded"}
	if diff := cmp.Diff(want, labels); diff != "" {
		t.Errorf("chart bars (-want +got):\n%s", diff)
	}
}

// TestBenchWA1Table prints the human table by default.
func TestBenchWA1Table(t *testing.T) {
	stdout := mustEddy(t, "", "bench", "wa1", "--events", "5000", "--keys", "100", "--variant", "hopping", "--emit", "update")
	for _, want := range []string{"SYSTEM", "EVENTS/S", "PEAK-RSS", "hopping", "embedded", "eddy: results not compared (no reference for variant hopping)"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "loop  ") {
		t.Errorf("the loop ran on a hopping variant:\n%s", stdout)
	}
}

// TestBenchWA1Live measures latency on the embedded log.
func TestBenchWA1Live(t *testing.T) {
	stdout, stderr, code := eddy(t, "", "bench", "wa1", "--events", "8000", "--keys", "100", "--rate", "20000", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	_, rs := jsonResults(t, stdout)
	if len(rs) != 1 || rs[0].System != "eddy" || rs[0].Latency == nil || rs[0].Latency.Outputs == 0 {
		t.Errorf("want eddy's result with latency, got %+v", rs)
	}
	if !strings.Contains(stderr, "eddy: results identical to the loop's") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestBenchWA1Kafka runs eddy's Kafka worker and the loop on kfake.
func TestBenchWA1Kafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	stdout, stderr, code := eddy(t, "", "bench", "wa1", "--backend", "kafka", "--brokers", brokers, "--peers", "loop",
		"--events", "20000", "--keys", "300", "--json", "--timeout", "2m")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	raw, rs := jsonResults(t, stdout)
	checkJSON(t, raw, rs, []string{"loop", "eddy"}, 20000)
	if rs[1].Backend != "kafka" || rs[1].LoadSeconds <= 0 {
		t.Errorf("eddy on kafka: %+v", rs[1])
	}
	if !strings.Contains(stderr, "eddy: results identical to the loop's") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

// TestRealKafkaBenchWA1 runs the command on the real broker
// EDDY_KAFKA_BROKERS names, with the loop as its peer.
func TestRealKafkaBenchWA1(t *testing.T) {
	brokers := os.Getenv("EDDY_KAFKA_BROKERS")
	if brokers == "" {
		t.Skip("EDDY_KAFKA_BROKERS not set: real-broker tests skipped")
	}
	stdout, stderr, code := eddy(t, "", "bench", "wa1", "--backend", "kafka", "--brokers", brokers, "--peers", "loop",
		"--events", "20000", "--keys", "300", "--json", "--timeout", "2m")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	raw, rs := jsonResults(t, stdout)
	checkJSON(t, raw, rs, []string{"loop", "eddy"}, 20000)
}

// TestBenchNexmark runs one query through its child process.
func TestBenchNexmark(t *testing.T) {
	stdout, stderr, code := eddy(t, "", "bench", "nexmark", "--query", "q0", "--events", "3000", "--json")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	_, rs := jsonResults(t, stdout)
	if len(rs) != 1 || rs[0].Workload != "nexmark" || rs[0].Variant != "q0" || rs[0].Events != 3000 || rs[0].EventsPerS <= 0 || rs[0].PeakRSSBytes <= 0 {
		t.Errorf("nexmark result %+v", rs)
	}
}

// TestBenchUsage checks the command lines refused with exit status 2.
func TestBenchUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "bench: missing subcommand"},
		{[]string{"bench", "fly"}, `bench: unknown subcommand "fly"`},
		{[]string{"bench", "wa1", "--guarantee", "twice"}, `--guarantee "twice"`},
		{[]string{"bench", "wa1", "--variant", "cubic"}, `--variant "cubic"`},
		{[]string{"bench", "wa1", "--emit", "never"}, `--emit "never"`},
		{[]string{"bench", "wa1", "--backend", "pulsar"}, `--backend "pulsar"`},
		{[]string{"bench", "wa1", "--backend", "kafka"}, "--backend kafka needs --brokers"},
		{[]string{"bench", "wa1", "--brokers", "x:9092"}, "--brokers is for --backend kafka"},
		{[]string{"bench", "wa1", "--peers", "flink"}, `--peers: unknown system "flink"`},
		{[]string{"bench", "wa1", "--events", "0"}, "must be positive"},
		{[]string{"bench", "wa1", "--rate", "-1"}, "--rate must not be negative"},
		{[]string{"bench", "wa1", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "wa1", "--nope"}, "flag provided but not defined: -nope"},
		{[]string{"bench", "chart"}, "bench chart: missing --in FILE"},
		{[]string{"bench", "nexmark"}, "bench nexmark: missing --query"},
		{[]string{"bench", "nexmark", "--query", "q99"}, `unknown query "q99"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			_, stderr, code := eddy(t, "", tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, stderr, tt.want)
			}
		})
	}
}

// TestBenchHelp lists the visible subcommands, not the workers.
func TestBenchHelp(t *testing.T) {
	out := mustEddy(t, "", "bench", "-h")
	for _, name := range []string{"wa1", "chart", "nexmark"} {
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("help lacks %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "worker") {
		t.Errorf("help lists a worker:\n%s", out)
	}
	if !slices.Contains(benchListed, "nexmark") {
		t.Error("nexmark is not listed")
	}
	if out := mustEddy(t, "", "help"); !strings.Contains(out, "bench") {
		t.Errorf("eddy help lacks bench:\n%s", out)
	}
}

// TestProgressLine renders the bar.
func TestProgressLine(t *testing.T) {
	got := progressLine(benchmarks.Progress{System: "eddy", Done: 500, Total: 1000, Elapsed: 2 * time.Second})
	want := "eddy     [###############---------------]  50%  500/1000  250/s  2s"
	if got != want {
		t.Errorf("progressLine = %q, want %q", got, want)
	}
	// Not a terminal: nothing is drawn.
	var b bytes.Buffer
	bar := newProgressBar(&b)
	bar.update(benchmarks.Progress{System: "eddy", Done: 1, Total: 2})
	bar.clear()
	if b.Len() != 0 {
		t.Errorf("progress written to a non-terminal: %q", b.String())
	}
}
