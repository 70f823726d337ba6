package benchmarks

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteChart checks that the chart is well-formed XML with one bar
// per result, labelled and valued, the longest for the fastest, and the
// same bytes for the same results.
func TestWriteChart(t *testing.T) {
	results := []Result{
		{System: "eddy", Variant: "tumbling", Backend: "embedded", EventsPerS: 1_234_567.8},
		{System: "loop", Variant: "tumbling", Backend: "memory", EventsPerS: 9_876_543},
		{System: "k<&>s", Variant: "tumbling", Backend: "kafka", EventsPerS: 12_345},
		{System: "zero", Variant: "session", Backend: "kafka", EventsPerS: 0},
	}
	var b bytes.Buffer
	if err := WriteChart(&b, "WA1 & co", results); err != nil {
		t.Fatal(err)
	}
	type bar struct {
		label, value string
		width        string
		texts        []string
	}
	var bars []bar
	var title string
	d := xml.NewDecoder(bytes.NewReader(b.Bytes()))
	var cur *bar
	var text *string
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the SVG does not parse: %v\n%s", err, b.String())
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			attr := func(name string) string {
				for _, a := range tok.Attr {
					if a.Name.Local == name {
						return a.Value
					}
				}
				return ""
			}
			switch tok.Name.Local {
			case "g":
				bars = append(bars, bar{label: attr("data-label"), value: attr("data-value")})
				cur = &bars[len(bars)-1]
			case "rect":
				if cur != nil {
					cur.width = attr("width")
				}
			case "text":
				text = new(string)
			}
		case xml.CharData:
			if text != nil {
				*text += string(tok)
			}
		case xml.EndElement:
			switch tok.Name.Local {
			case "text":
				if cur != nil {
					cur.texts = append(cur.texts, *text)
				} else {
					title = *text
				}
				text = nil
			case "g":
				cur = nil
			}
		}
	}
	if title != "WA1 & co" {
		t.Errorf("title %q", title)
	}
	want := []bar{
		{"eddy · tumbling · embedded", "1234568", "100.0", []string{"eddy · tumbling · embedded", "1,234,568 events/s"}},
		{"loop · tumbling · memory", "9876543", "470.0", []string{"loop · tumbling · memory", "9,876,543 events/s"}},
		{"k<&>s · tumbling · kafka", "12345", "1.0", []string{"k<&>s · tumbling · kafka", "12,345 events/s"}},
		{"zero · session · kafka", "0", "0.0", []string{"zero · session · kafka", "0 events/s"}},
	}
	want[0].width = "58.7" // 1234567.8 / 9876543 * 470
	if diff := cmp.Diff(want, bars, cmp.AllowUnexported(bar{})); diff != "" {
		t.Errorf("bars (-want +got):\n%s", diff)
	}
	var again bytes.Buffer
	if err := WriteChart(&again, "WA1 & co", results); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b.Bytes(), again.Bytes()) {
		t.Error("two charts of the same results differ")
	}
}

// TestReadResults reads JSON lines back, skipping blank lines, and names
// the line of an error.
func TestReadResults(t *testing.T) {
	in := `{"system":"eddy","events_per_s":5,"latency_ms":null}` + "\n\n" + `{"system":"loop","latency_ms":{"p50":1,"p99":2,"max":3,"outputs":4}}` + "\n"
	got, err := ReadResults(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Result{{System: "eddy", EventsPerS: 5}, {System: "loop", Latency: &Latency{P50: 1, P99: 2, Max: 3, Outputs: 4}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadResults (-want +got):\n%s", diff)
	}
	if _, err := ReadResults(strings.NewReader("{}\nnot json\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("ReadResults of a bad line 2: %v", err)
	}
}

func TestGroupThousands(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999.4: "999", 1000: "1,000", 1234567.5: "1,234,568", -12345: "-12,345"} {
		if got := groupThousands(in); got != want {
			t.Errorf("groupThousands(%v) = %q, want %q", in, got, want)
		}
	}
}
