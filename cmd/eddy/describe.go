package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// eddyModule is the module path of eddy: examples are described only
// inside it.
const eddyModule = "github.com/eddyflow/eddy"

// describeTimeout bounds the GET of --url: a wrong address should fail,
// not hang.
const describeTimeout = 30 * time.Second

const describeDescription = `
Print the description of a topology: as text (its sub-topologies with their
sources, processors and sinks, then its stores and internal topics, like
Kafka Streams' describe()), or with --format mermaid as a Mermaid flowchart,
ready to paste into a ` + "```mermaid" + ` block of Markdown.

The topology comes from one of:

  EXAMPLE    an example of eddy, by the name of its directory under examples/
             (e.g. wordcount): runs ` + "`go run ./examples/EXAMPLE -describe FORMAT`" + ` at
             the root of the eddy module, so run it inside a clone of
             github.com/eddyflow/eddy.
  PKG        a main package of yours, as go run takes it (./cmd/app, ../app or
             an import path; anything with a slash): runs
             ` + "`go run PKG -describe FORMAT`" + ` in the current directory's module.
  --url URL  a running instance: GET URL/topology (URL/topology?format=mermaid)
             from its engine's HTTP server (engine.Options.HTTPAddr).

The -describe convention: a program works with eddy describe when it takes a
-describe flag that prints its topology as text or mermaid and exits 0
without running anything. Every example has one; to give your program the
same, parse the flag first thing in main:

    describe := flag.String("describe", "", "print the topology as text or mermaid and exit")
    flag.Parse()
    if *describe != "" {
        t, err := myTopology().Build() // your *topology.Builder
        if err != nil {
            log.Fatal(err)
        }
        text, err := t.Describe().Format(*describe) // text or mermaid
        if err != nil {
            log.Fatal(err)
        }
        fmt.Print(text)
        return
    }

Before running PKG, eddy describe checks that it is a main package whose
source mentions "describe", so that a program without the flag is not
started for real.`

func runDescribe(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("describe", "[--format text|mermaid] (EXAMPLE | PKG | --url URL)", describeDescription,
		"eddy describe wordcount",
		"eddy describe --format mermaid pageviews > pageviews.mmd",
		"eddy describe ./cmd/myapp",
		"eddy describe --url http://localhost:8080 --format mermaid")
	format := fs.String("format", "text", "text or mermaid")
	rawURL := fs.String("url", "", "describe the running instance whose HTTP server is at `URL` (http://host:port)")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if *format != "text" && *format != "mermaid" {
		return &usageError{fmt.Sprintf("describe: --format %q: want text or mermaid", *format)}
	}
	var out string
	switch {
	case *rawURL != "" && len(pos) > 0:
		return &usageError{fmt.Sprintf("describe: give either --url or %q, not both", pos[0])}
	case *rawURL != "":
		out, err = describeURL(ctx, *rawURL, *format)
	case len(pos) == 0:
		return &usageError{"describe: want an example (e.g. `eddy describe wordcount`), a package (`eddy describe ./cmd/app`) or --url URL of a running instance"}
	case len(pos) > 1:
		return &usageError{fmt.Sprintf("describe: want one example or package, got %d: %s", len(pos), strings.Join(pos, " "))}
	default:
		out, err = describePackage(ctx, pos[0], *format)
	}
	if err != nil {
		return err
	}
	if out != "" && !strings.HasSuffix(out, "\n") {
		out += "\n"
	}
	_, err = io.WriteString(stdout, out)
	return err
}

// describeURL gets the topology of the instance whose HTTP server is at
// raw.
func describeURL(ctx context.Context, raw, format string) (string, error) {
	u, err := topologyURL(raw, format)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, describeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", &usageError{fmt.Sprintf("describe: --url %q: %v", raw, err)}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("describe: cannot reach %s: %w\ncheck --url: it is the address of a running instance's HTTP server, which runs when the engine's Options.HTTPAddr is set", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return "", fmt.Errorf("describe: read %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return "", fmt.Errorf("describe: GET %s: %s: the server has no /topology: check that --url is the HTTP server of an eddy instance", u, resp.Status)
	case resp.StatusCode != http.StatusOK:
		return "", fmt.Errorf("describe: GET %s: %s: %s", u, resp.Status, firstLines(string(body), 5))
	}
	return string(body), nil
}

// topologyURL returns the URL of the topology description in format at
// the HTTP server raw: "host:port", "http://host:port[/prefix]" or the
// full URL of /topology.
func topologyURL(raw, format string) (string, error) {
	s := raw
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return "", &usageError{fmt.Sprintf("describe: --url %q: want the address of an instance's HTTP server, e.g. http://localhost:8080", raw)}
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", &usageError{fmt.Sprintf("describe: --url %q: want an http:// or https:// URL", raw)}
	}
	if !strings.HasSuffix(u.Path, "/topology") {
		u.Path = strings.TrimSuffix(u.Path, "/") + "/topology"
	}
	q := u.Query()
	q.Del("format")
	if format == "mermaid" {
		q.Set("format", "mermaid")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// describePackage runs `go run PKG -describe format`, where arg is an
// example's name or a package path, and returns what it printed.
func describePackage(ctx context.Context, arg, format string) (string, error) {
	cwd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	modFile, err := goEnvGOMOD(ctx, cwd)
	if err != nil {
		return "", err
	}
	isPath := strings.ContainsRune(arg, '/') || strings.HasPrefix(arg, ".") || filepath.IsAbs(arg)
	if modFile == "" {
		if !isPath {
			return "", fmt.Errorf("describe: %s is not inside a Go module: to describe the example %q, run eddy describe inside a clone of %s; or describe a running instance with --url", cwd, arg, eddyModule)
		}
		return "", fmt.Errorf("describe: %s is not inside a Go module: run eddy describe in the module that holds %s", cwd, arg)
	}
	root := filepath.Dir(modFile)
	dir, pkg := cwd, arg
	if !isPath {
		if mod := modulePath(modFile); mod != eddyModule {
			return "", fmt.Errorf("describe: %q is not a package path, and the examples are only in %s, but the current module is %s (%s): give a package path such as ./cmd/app, or run eddy describe inside a clone of eddy", arg, eddyModule, mod, root)
		}
		examples := exampleNames(root)
		if !slices.Contains(examples, arg) {
			return "", &usageError{fmt.Sprintf("describe: unknown example %q: the examples are %s; for a package of your own give its path, e.g. ./cmd/app", arg, strings.Join(examples, ", "))}
		}
		dir, pkg = root, "./examples/"+arg
	}
	if err := checkDescribeFlag(ctx, dir, pkg); err != nil {
		return "", err
	}
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "run", pkg, "-describe", format)
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &out, &errOut
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errOut.String())
		if strings.Contains(msg, "flag provided but not defined: -describe") {
			return "", fmt.Errorf("describe: %s has no -describe flag: give it one that prints its topology and exits (see `eddy describe -h`)", pkg)
		}
		return "", fmt.Errorf("describe: go run %s -describe %s (in %s): %v\n%s", pkg, format, dir, err, msg)
	}
	return out.String(), nil
}

// goEnvGOMOD returns the go.mod of the module holding dir, or "" outside
// any module.
func goEnvGOMOD(ctx context.Context, dir string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", "GOMOD")
	cmd.Dir = dir
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if errors.Is(err, exec.ErrNotFound) {
		return "", errors.New("describe: the go command is not installed (or not in PATH): describing an example or a package runs `go run`; install Go, or describe a running instance with --url")
	}
	if err != nil {
		return "", fmt.Errorf("describe: go env GOMOD: %v\n%s", err, strings.TrimSpace(errOut.String()))
	}
	mod := strings.TrimSpace(string(out))
	if mod == os.DevNull {
		mod = ""
	}
	return mod, nil
}

// modulePath returns the module path declared in the go.mod file modFile,
// or "" if it cannot be read.
func modulePath(modFile string) string {
	f, err := os.Open(modFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			return strings.Trim(strings.TrimSpace(rest), `"`)
		}
	}
	return ""
}

// exampleNames returns the examples of the eddy module at root: the
// directories under examples/ with a main.go, sorted.
func exampleNames(root string) []string {
	entries, _ := os.ReadDir(filepath.Join(root, "examples"))
	var names []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(root, "examples", e.Name(), "main.go")); e.IsDir() && err == nil {
			names = append(names, e.Name())
		}
	}
	return names
}

// checkDescribeFlag makes sure pkg is a main package whose sources
// mention "describe" before it is run: a program without the -describe
// flag may not fail on it (it might not parse flags at all) but start
// processing for real.
func checkDescribeFlag(ctx context.Context, dir, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "list", "-f", "{{.Name}}\n{{.Dir}}\n{{range .GoFiles}}{{.}}\n{{end}}", pkg)
	cmd.Dir = dir
	var errOut bytes.Buffer
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("describe: no package %s (from %s): %v\n%s", pkg, dir, err, strings.TrimSpace(errOut.String()))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) < 2 {
		return fmt.Errorf("describe: go list %s printed %q", pkg, out)
	}
	if lines[0] != "main" {
		return fmt.Errorf("describe: %s is package %s, not a command: give the main package that builds and runs the topology", pkg, lines[0])
	}
	for _, name := range lines[2:] {
		src, err := os.ReadFile(filepath.Join(lines[1], name))
		if err != nil {
			return fmt.Errorf("describe: %w", err)
		}
		if bytes.Contains(src, []byte(`"describe"`)) {
			return nil
		}
	}
	return fmt.Errorf("describe: %s has no -describe flag (no \"describe\" in its source), so it was not run: give it one that prints its topology and exits, as the examples do (see `eddy describe -h`)", pkg)
}

// firstLines returns the first n lines of s, trimmed.
func firstLines(s string, n int) string {
	lines := strings.SplitN(strings.TrimSpace(s), "\n", n+1)
	if len(lines) > n {
		lines = append(lines[:n], "...")
	}
	return strings.Join(lines, "\n")
}
