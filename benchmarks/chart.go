package benchmarks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ReadResults reads a results file: one Result in JSON a line, as
// `eddy bench --out` appends them. Blank lines are skipped.
func ReadResults(r io.Reader) ([]Result, error) {
	var out []Result
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; s.Scan(); line++ {
		b := bytes.TrimSpace(s.Bytes())
		if len(b) == 0 {
			continue
		}
		var res Result
		if err := json.Unmarshal(b, &res); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, res)
	}
	return out, s.Err()
}

// ChartLabel is the label of a result's bar: system, variant and backend.
func ChartLabel(r Result) string {
	return r.System + " · " + r.Variant + " · " + r.Backend
}

// Chart geometry, in SVG user units.
const (
	chartWidth  = 960
	chartLabelW = 300 // the labels' column, right-aligned at its edge
	chartValueW = 170 // room for the value after the longest bar
	chartTop    = 48
	chartRow    = 28
	chartBar    = 18
	chartBottom = 24
)

// WriteChart writes a horizontal bar chart of the results' events/s as a
// self-contained SVG: one bar per result, in the order given, labelled
// with ChartLabel and its value. The output depends on the results only.
func WriteChart(w io.Writer, title string, results []Result) error {
	maxV := 0.0
	for _, r := range results {
		maxV = max(maxV, r.EventsPerS)
	}
	barMax := float64(chartWidth - chartLabelW - chartValueW - 20)
	height := chartTop + len(results)*chartRow + chartBottom
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="13">`+"\n",
		chartWidth, height, chartWidth, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`+"\n", chartWidth, height)
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="16" font-weight="bold">%s</text>`+"\n", 12, esc(title))
	x0 := chartLabelW + 10
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#999999"/>`+"\n", x0, chartTop-6, x0, height-chartBottom+6)
	for i, r := range results {
		y := chartTop + i*chartRow
		wBar := 0.0
		if maxV > 0 && r.EventsPerS > 0 {
			wBar = math.Max(1, r.EventsPerS/maxV*barMax)
		}
		fill := "#8da0cb"
		if r.System == "eddy" {
			fill = "#fc8d62"
		}
		fmt.Fprintf(&b, `<g class="bar" data-label="%s" data-value="%s">`+"\n", esc(ChartLabel(r)), strconv.FormatFloat(r.EventsPerS, 'f', 0, 64))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`+"\n", chartLabelW, y+chartBar-4, esc(ChartLabel(r)))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", x0, y, wBar, chartBar, fill)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s events/s</text>`+"\n", float64(x0)+wBar+6, y+chartBar-4, groupThousands(r.EventsPerS))
		fmt.Fprintf(&b, "</g>\n")
	}
	fmt.Fprintf(&b, "</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// esc escapes s for XML text and attributes.
func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// groupThousands formats v rounded to an integer with thousands separated
// by commas: 1234567.8 is "1,234,568".
func groupThousands(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
