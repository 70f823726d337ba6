package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Descriptions the fake server of TestDescribeURL serves.
const (
	fakeText    = "Topology: fake\n  Sub-topology 0\n"
	fakeMermaid = "flowchart TD\n  t_in([\"in\"])\n"
)

// fakeInstance serves /topology as the engine's HTTP server does, under
// prefix, and records the request URIs it gets.
func fakeInstance(t *testing.T, prefix string, got *[]string) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+prefix+"/topology", func(w http.ResponseWriter, r *http.Request) {
		*got = append(*got, r.URL.RequestURI())
		switch f := r.URL.Query().Get("format"); f {
		case "", "text":
			fmt.Fprint(w, fakeText)
		case "mermaid":
			fmt.Fprint(w, fakeMermaid)
		default:
			http.Error(w, fmt.Sprintf("unknown format %q", f), http.StatusBadRequest)
		}
	})
	mux.HandleFunc("GET /broken/topology", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "topology: on fire", http.StatusInternalServerError)
	})
	s := httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// TestDescribeURL describes a fake running instance: the URL forms
// --url accepts, the request for each format, and what is printed.
func TestDescribeURL(t *testing.T) {
	var requests []string
	s := fakeInstance(t, "", &requests)
	host := strings.TrimPrefix(s.URL, "http://")
	tests := []struct {
		args    []string
		request string
		stdout  string
	}{
		{[]string{"--url", s.URL}, "/topology", fakeText},
		{[]string{"--url", s.URL + "/", "--format", "text"}, "/topology", fakeText},
		{[]string{"--url", host, "--format", "mermaid"}, "/topology?format=mermaid", fakeMermaid},
		{[]string{"--format", "mermaid", "--url", s.URL + "/topology?format=text"}, "/topology?format=mermaid", fakeMermaid},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			requests = nil
			stdout, stderr, code := eddy(t, "", append([]string{"describe"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d\n%s", code, stderr)
			}
			if diff := cmp.Diff(tt.stdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{tt.request}, requests); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
		})
	}

	// An instance behind a path prefix (a reverse proxy).
	requests = nil
	p := fakeInstance(t, "/eddy", &requests)
	if out := mustEddy(t, "", "describe", "--url", p.URL+"/eddy", "--format", "mermaid"); out != fakeMermaid {
		t.Errorf("behind /eddy: printed %q", out)
	}
	if diff := cmp.Diff([]string{"/eddy/topology?format=mermaid"}, requests); diff != "" {
		t.Errorf("requests behind /eddy (-want +got):\n%s", diff)
	}
}

// TestDescribeURLErrors checks that a failed --url says what went wrong
// and what to check.
func TestDescribeURLErrors(t *testing.T) {
	s := fakeInstance(t, "", new([]string))
	// An address nothing listens on: a listener's, closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"not found", []string{"--url", s.URL + "/nothing"}, 1,
			[]string{"GET " + s.URL + "/nothing/topology: 404 Not Found", "check that --url is the HTTP server of an eddy instance"}},
		{"server error", []string{"--url", s.URL + "/broken"}, 1,
			[]string{"GET " + s.URL + "/broken/topology: 500 Internal Server Error: topology: on fire"}},
		{"unreachable", []string{"--url", closed}, 1,
			[]string{"cannot reach http://" + closed + "/topology", "Options.HTTPAddr"}},
		{"scheme", []string{"--url", "ftp://" + closed}, 2, []string{"want an http:// or https:// URL"}},
		{"no host", []string{"--url", "http://"}, 2, []string{`--url "http://": want the address of an instance's HTTP server`}},
		{"both", []string{"--url", s.URL, "wordcount"}, 2, []string{`give either --url or "wordcount", not both`}},
		{"format", []string{"--url", s.URL, "--format", "dot"}, 2, []string{`--format "dot": want text or mermaid`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := eddy(t, "", append([]string{"describe"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr, w)
				}
			}
		})
	}
}

// TestDescribeExample runs `go run ./examples/wordcount -describe text`
// through eddy describe: the one example the tests build with go run (the
// examples' own TestDescribeFlag checks each one's flag).
func TestDescribeExample(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the wordcount example with go run")
	}
	out := mustEddy(t, "", "describe", "wordcount")
	for _, want := range []string{"Topology: wordcount\n", "  Sub-topology 1\n", "Processor: word-counts (count, store: word-counts)",
		"    wordcount-word-counts-changelog (changelog, compacted)\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("eddy describe wordcount lacks %q:\n%s", want, out)
		}
	}
}

// writeModule writes a Go module example.com/m into a new directory, with
// a main package in each subdirectory of progs, and returns the directory.
func writeModule(t *testing.T, progs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{"go.mod": "module example.com/m\n\ngo 1.22\n"}
	for name, src := range progs {
		files[filepath.Join(name, "main.go")] = src
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestDescribePackage describes programs of a module of the user's own:
// one with the -describe flag (printing the format it was asked for), one
// without it that eddy describe must not run, one that mentions describe
// but has no flag, and a library.
func TestDescribePackage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds programs with go run")
	}
	mod := writeModule(t, map[string]string{
		"good": `package main

import (
	"flag"
	"fmt"
)

func main() {
	describe := flag.String("describe", "", "")
	flag.Parse()
	fmt.Printf("topology as %s\n", *describe)
}
`,
		"noflag": `package main

func main() { panic("run for real") }
`,
		"undefined": `package main

import "flag"

// It does not "describe" anything.
func main() { flag.Parse() }
`,
		"lib": `package lib
`,
	})
	t.Chdir(mod)
	tests := []struct {
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{[]string{"./good"}, 0, "topology as text\n", ""},
		{[]string{"--format", "mermaid", "./good"}, 0, "topology as mermaid\n", ""},
		{[]string{"example.com/m/good"}, 0, "topology as text\n", ""},
		{[]string{"./noflag"}, 1, "", `describe: ./noflag has no -describe flag (no "describe" in its source), so it was not run`},
		{[]string{"./undefined"}, 1, "", "describe: ./undefined has no -describe flag: give it one"},
		{[]string{"./lib"}, 1, "", "describe: ./lib is package lib, not a command"},
		{[]string{"./missing"}, 1, "", "describe: no package ./missing"},
		{[]string{"wordcount"}, 1, "", `describe: "wordcount" is not a package path, and the examples are only in github.com/eddyflow/eddy, but the current module is example.com/m`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			stdout, stderr, code := eddy(t, "", append([]string{"describe"}, tt.args...)...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("stdout = %q, want %q", stdout, tt.stdout)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.stderr)
			}
		})
	}
}

// TestDescribeErrors checks the errors of describe that need no go run.
func TestDescribeErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing", nil, 2, "describe: want an example (e.g. `eddy describe wordcount`), a package (`eddy describe ./cmd/app`) or --url URL"},
		{"two", []string{"wordcount", "pageviews"}, 2, "describe: want one example or package, got 2: wordcount pageviews"},
		{"unknown example", []string{"wordcunt"}, 2,
			`describe: unknown example "wordcunt": the examples are enrichment, pageviews, payments, sessions, wordcount; for a package of your own give its path`},
		{"bad flag", []string{"--fromat", "mermaid"}, 2, "flag provided but not defined: -fromat"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := eddy(t, "", append([]string{"describe"}, tt.args...)...)
			if code != tt.code || !strings.Contains(stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, stderr, tt.code, tt.want)
			}
		})
	}

	// Outside any module, an example cannot be found.
	t.Run("no module", func(t *testing.T) {
		t.Chdir(t.TempDir())
		_, stderr, code := eddy(t, "", "describe", "wordcount")
		want := `is not inside a Go module: to describe the example "wordcount", run eddy describe inside a clone of github.com/eddyflow/eddy`
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("exit %d, stderr %q; want 1 and %q", code, stderr, want)
		}
	})
}

func TestTopologyURL(t *testing.T) {
	tests := []struct{ raw, format, want string }{
		{"localhost:8080", "text", "http://localhost:8080/topology"},
		{"localhost:8080", "mermaid", "http://localhost:8080/topology?format=mermaid"},
		{"https://eddy.example.com/", "text", "https://eddy.example.com/topology"},
		{"http://h:1/topology", "mermaid", "http://h:1/topology?format=mermaid"},
		{"http://h:1/topology?format=mermaid", "text", "http://h:1/topology"},
		{"http://h:1/app/", "text", "http://h:1/app/topology"},
	}
	for _, tt := range tests {
		got, err := topologyURL(tt.raw, tt.format)
		if err != nil || got != tt.want {
			t.Errorf("topologyURL(%q, %q) = %q, %v; want %q", tt.raw, tt.format, got, err, tt.want)
		}
	}
}
