package benchmarks

import (
	"fmt"
	"io"
	"runtime"
	"text/tabwriter"
	"time"
)

// ResultBase returns a Result with what every result of a run shares
// filled in: the machine, Go version, date, seed and eddy commit (from
// the binary, or from the repository at repoRoot if not "").
func ResultBase(seed uint64, repoRoot string) Result {
	return Result{Machine: thisMachine(), GoVersion: runtime.Version(), Date: time.Now().UTC().Format(time.RFC3339),
		Seed: seed, Commit: commitOf(repoRoot)}
}

// WriteTable writes results as a table for people.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "SYSTEM\tVARIANT\tBACKEND\tEVENTS\tEVENTS/S\tEVENTS/CPU-S\tCPU-S\tSECONDS\tLOAD-S\tPEAK-RSS\tSTATE\tRESULTS\tLATENCY-MS p50/p99/max\t\n")
	for _, r := range results {
		state := "-"
		if r.StateBytes != nil {
			state = formatBytes(*r.StateBytes)
		}
		lat := "-"
		if r.Latency != nil {
			lat = fmt.Sprintf("%.1f/%.1f/%.1f %s", r.Latency.P50, r.Latency.P99, r.Latency.Max, r.Latency.Cause)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%d\t%s\t\n",
			r.System, r.Variant, r.Backend, r.Events, groupThousands(r.EventsPerS), groupThousands(r.EventsPerCPUS),
			r.CPUSeconds, r.Seconds, r.LoadSeconds, formatBytes(r.PeakRSSBytes), state, r.Results, lat)
	}
	return tw.Flush()
}

// WriteRatios writes the table of eddy's result over each other system's:
// throughput, events per CPU-second and peak RSS. Above 1 eddy is faster
// or more frugal in CPU for the first two, and uses more memory for the
// third. It writes nothing without eddy and another system.
func WriteRatios(w io.Writer, results []Result) error {
	var eddy *Result
	for i := range results {
		if results[i].System == "eddy" {
			eddy = &results[i]
		}
	}
	if eddy == nil || len(results) < 2 {
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "RATIO\tEVENTS/S\tEVENTS/CPU-S\tPEAK-RSS\n")
	ratio := func(a, b float64) string {
		if a <= 0 || b <= 0 {
			return "-"
		}
		return fmt.Sprintf("%.2fx", a/b)
	}
	for _, r := range results {
		if r.System == "eddy" {
			continue
		}
		fmt.Fprintf(tw, "eddy/%s\t%s\t%s\t%s\n", r.System, ratio(eddy.EventsPerS, r.EventsPerS),
			ratio(eddy.EventsPerCPUS, r.EventsPerCPUS), ratio(float64(eddy.PeakRSSBytes), float64(r.PeakRSSBytes)))
	}
	return tw.Flush()
}

// WriteChecks writes one line per system on how its results compare with
// the loop's.
func WriteChecks(w io.Writer, checks []Check) error {
	for _, c := range checks {
		var err error
		switch {
		case c.Skipped != "":
			_, err = fmt.Fprintf(w, "%s: results not compared (%s)\n", c.System, c.Skipped)
		case c.Identical:
			_, err = fmt.Fprintf(w, "%s: results identical to the loop's\n", c.System)
		default:
			_, err = fmt.Fprintf(w, "%s: RESULTS DIFFER from the loop's: %s\n", c.System, c.Diff)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// formatBytes formats n in binary units: "512 B", "1.5 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
