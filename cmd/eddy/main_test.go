package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
	"github.com/eddyflow/eddy/internal/murmur2"
)

// eddy runs the command line args in-process and returns its output and
// exit status.
func eddy(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	code = exitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

// mustEddy runs args and fails the test unless they succeed.
func mustEddy(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errOut, code := eddy(t, stdin, args...)
	if code != 0 {
		t.Fatalf("eddy %s: exit %d\n%s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func TestTopicsCreateProduceListTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	if out := mustEddy(t, "", "topics", "create", "--dir", dir, "--partitions", "2", "views"); out != "topic views: 2 partitions\n" {
		t.Errorf("create printed %q", out)
	}
	// Flags after the name work too.
	mustEddy(t, "", "topics", "create", "profiles", "--dir", dir, "--partitions", "1", "--compact")
	mustEddy(t, "", "topics", "create", "--dir", dir, "--partitions", "1", "--retention", "168h", "clicks")

	// Keys alice and bob go to their murmur2 partitions; the line without
	// a separator is a value without key.
	stdin := "alice\t/home\nbob\t/cart\nalice\t/checkout\n"
	_, errOut, code := eddy(t, stdin, "topics", "produce", "--dir", dir, "--timestamp-ms", "1700000000000", "views")
	if code != 0 || errOut != "produced 3 records to views\n" {
		t.Fatalf("produce: exit %d, stderr %q", code, errOut)
	}
	mustEddy(t, "just-a-value\nk,v,w\n", "topics", "produce", "--dir", dir, "--partition", "0", "--key-sep", ",", "--timestamp-ms", "1700000000001", "profiles")

	wantEnds := map[int32]int64{}
	for _, k := range []string{"alice", "bob", "alice"} {
		wantEnds[murmur2.Partition([]byte(k), 2)]++
	}
	list := mustEddy(t, "", "topics", "list", "--dir", dir)
	want := fmt.Sprintf(`TOPIC     PARTITIONS  COMPACTED  RETENTION  PARTITION  START  END
clicks    1           false      168h0m0s   0          0      0
profiles  1           true       forever    0          0      2
views     2           false      forever    0          0      %d
                                            1          0      %d
`, wantEnds[0], wantEnds[1])
	if diff := cmp.Diff(want, list); diff != "" {
		t.Errorf("list (-want +got):\n%s", diff)
	}

	tail := mustEddy(t, "", "topics", "tail", "--dir", dir, "--from-beginning", "profiles")
	want = "0\t0\t2023-11-14T22:13:20.001Z\t<nil>\tjust-a-value\n" +
		"0\t1\t2023-11-14T22:13:20.001Z\tk\tv,w\n"
	if diff := cmp.Diff(want, tail); diff != "" {
		t.Errorf("tail (-want +got):\n%s", diff)
	}

	// JSON lines of views, alice's partition first if it is partition 0.
	tail = mustEddy(t, "", "topics", "tail", "--dir", dir, "--format", "json", "--partition", fmt.Sprint(murmur2.Partition([]byte("alice"), 2)), "views")
	var got []jsonRecord
	for _, line := range strings.Split(strings.TrimSuffix(tail, "\n"), "\n") {
		var r jsonRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got = append(got, r)
	}
	var values []string
	for _, r := range got {
		if *r.Key == "alice" {
			values = append(values, *r.Value)
		}
	}
	if diff := cmp.Diff([]string{"/home", "/checkout"}, values); diff != "" {
		t.Errorf("alice's values in the JSON tail (-want +got):\n%s", diff)
	}
}

// TestTail checks the text rendering of bytes, -n and the JSON fields,
// on records written through the package API.
func TestTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	l, err := embedded.Open(embedded.Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := l.CreateTopics(ctx, broker.TopicConfig{Name: "t", Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	recs := []broker.Record{
		{Topic: "t", Timestamp: 0, Key: []byte("k"), Value: []byte("plain text")},
		{Topic: "t", Timestamp: 0, Key: []byte{}, Value: nil},
		{Topic: "t", Timestamp: 0, Key: []byte{0xff, 0x00}, Value: []byte("two\nlines")},
		{Topic: "t", Timestamp: 0, Key: []byte("<nil>"), Value: []byte("0x00"),
			Headers: []broker.Header{{Key: "h", Value: []byte("v")}, {Key: "bin", Value: []byte{0xfe}}}},
	}
	if err := l.Produce(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	text := mustEddy(t, "", "topics", "tail", "--dir", dir, "-n", "3", "t")
	want := "0\t1\t1970-01-01T00:00:00.000Z\t\"\"\t<nil>\n" +
		"0\t2\t1970-01-01T00:00:00.000Z\t0xff00\t\"two\\nlines\"\n" +
		"0\t3\t1970-01-01T00:00:00.000Z\t\"<nil>\"\t\"0x00\"\n"
	if diff := cmp.Diff(want, text); diff != "" {
		t.Errorf("text tail (-want +got):\n%s", diff)
	}
	js := mustEddy(t, "", "topics", "tail", "--dir", dir, "-n", "2", "--format", "json", "t")
	want = `{"topic":"t","partition":0,"offset":2,"timestamp":0,"key":null,"key_base64":"/wA=","value":"two\nlines"}` + "\n" +
		`{"topic":"t","partition":0,"offset":3,"timestamp":0,"key":"\u003cnil\u003e","value":"0x00","headers":[{"key":"h","value":"v"},{"key":"bin","value":null,"value_base64":"/g=="}]}` + "\n"
	if diff := cmp.Diff(want, js); diff != "" {
		t.Errorf("json tail (-want +got):\n%s", diff)
	}
}

// TestTailFollow runs tail --follow until its context ends: it prints what
// is there, then waits, and ends without error when interrupted.
func TestTailFollow(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	mustEddy(t, "", "topics", "create", "--dir", dir, "--partitions", "1", "t")
	mustEddy(t, "a\tb\n", "topics", "produce", "--dir", dir, "--timestamp-ms", "1", "t")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &notifyBuffer{want: "b\n", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"topics", "tail", "--dir", dir, "--follow", "t"}, strings.NewReader(""), out, &bytes.Buffer{})
	}()
	select {
	case <-out.seen:
	case <-time.After(10 * time.Second):
		t.Fatal("tail --follow printed nothing")
	}
	select {
	case err := <-done:
		t.Fatalf("tail --follow returned %v before it was interrupted", err)
	default:
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail --follow after interrupt = %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("tail --follow did not end after its context")
	}
	if got, want := out.String(), "0\t0\t1970-01-01T00:00:00.001Z\ta\tb\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

// notifyBuffer closes seen once its contents end with want.
type notifyBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (b *notifyBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	if strings.HasSuffix(b.buf.String(), b.want) {
		b.once.Do(func() { close(b.seen) })
	}
	return n, err
}

func (b *notifyBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestErrors(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	mustEddy(t, "", "topics", "create", "--dir", dir, "--partitions", "2", "views")
	missing := filepath.Join(t.TempDir(), "nothing-here")
	// A pipeline's StateDir: the log is in its subdirectory log.
	stateDir := t.TempDir()
	mustEddy(t, "", "topics", "create", "--dir", filepath.Join(stateDir, "log"), "--partitions", "1", "views")
	empty, other := t.TempDir(), t.TempDir()
	file := filepath.Join(other, "notes.txt")
	if err := os.WriteFile(file, []byte("not a log"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", nil, 2, "eddy: missing command"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate": the commands are listed above`},
		{"help unknown command", []string{"help", "frobnicate"}, 2, `help: unknown command "frobnicate"`},
		{"unknown subcommand", []string{"topics", "drop"}, 2, `topics: unknown subcommand "drop"`},
		{"missing dir", []string{"topics", "list"}, 2, "missing --dir"},
		{"bad flag", []string{"topics", "list", "--dri", dir}, 2, "flag provided but not defined: -dri"},
		{"no log", []string{"topics", "list", "--dir", missing}, 1, "no embedded log in " + missing +
			": the directory does not exist: check --dir, or create the log with its first topic: eddy topics create --dir " + missing + " --partitions N TOPIC"},
		{"empty dir", []string{"topics", "tail", "--dir", empty, "views"}, 1, "no embedded log in " + empty + ": the directory is empty"},
		{"state dir", []string{"topics", "list", "--dir", stateDir}, 1,
			stateDir + " is not an embedded log, but " + filepath.Join(stateDir, "log") + " is (" + stateDir +
				" looks like a pipeline's StateDir): use --dir " + filepath.Join(stateDir, "log")},
		{"create in state dir", []string{"topics", "create", "--dir", stateDir, "--partitions", "1", "views"}, 1, "use --dir " + filepath.Join(stateDir, "log")},
		{"other files", []string{"topics", "create", "--dir", other, "--partitions", "1", "views"}, 1,
			other + " is not an embedded log (it holds other files): check --dir; a new log needs a new or empty directory"},
		{"dir is a file", []string{"topics", "list", "--dir", file}, 1, "--dir " + file + " is a file"},
		{"unknown topic", []string{"topics", "tail", "--dir", dir, "clicks"}, 1,
			`topic "clicks" does not exist in ` + dir + " (its topics: views): check the name, or create it with `eddy topics create --dir " + dir + " --partitions N clicks`"},
		{"empty name", []string{"topics", "create", "--dir", dir, "--partitions", "1", ""}, 2, "topics create: the topic NAME is empty"},
		{"too many partitions", []string{"topics", "create", "--dir", dir, "--partitions", "70000", "big"}, 2, "--partitions 70000: at most 65536"},
		{"mismatch", []string{"topics", "create", "--dir", dir, "--partitions", "3", "views"}, 1,
			"create topic views with 3 partitions: it exists with 2"},
		{"no partitions", []string{"topics", "create", "--dir", dir, "views"}, 2, "--partitions must be at least 1"},
		{"two names", []string{"topics", "create", "--dir", dir, "--partitions", "1", "a", "b"}, 2, "want exactly one topic NAME"},
		{"bad partition", []string{"topics", "produce", "--dir", dir, "--partition", "2", "views"}, 2,
			"topics produce: --partition 2: topic views has partitions 0 to 1; leave --partition out to pick one by key"},
		{"bad tail partition", []string{"topics", "tail", "--dir", dir, "--partition", "-2", "views"}, 2,
			"topics tail: --partition -2: topic views has partitions 0 to 1; leave --partition out for all"},
		{"chart without file", []string{"bench", "chart", "--in", missing}, 1,
			"bench chart: --in " + missing + ": no such file: write one with `eddy bench wa1 --out " + missing + "`"},
		{"chart of an empty file", []string{"bench", "chart", "--in", file}, 1, "bench chart: " + file + ": "},
		{"bad keys", []string{"bench", "wa1", "--keys", "1"}, 2, "bench wa1: --keys 1: must be at least 2"},
		{"bad workers", []string{"bench", "nexmark", "--query", "q0", "--workers", "0"}, 2, "bench nexmark: --workers 0: must be positive"},
		{"bad format", []string{"topics", "tail", "--dir", dir, "--format", "xml", "views"}, 2, `--format "xml": want text or json`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, stderr, code := eddy(t, "", tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tt.code, stderr)
			}
			if !strings.Contains(stderr, tt.stderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr, tt.stderr)
			}
		})
	}
	// The refused directories were left as they were: no log was made in
	// them.
	for d, want := range map[string][]string{stateDir: {"log"}, other: {"notes.txt"}, empty: nil} {
		var got []string
		entries, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			got = append(got, e.Name())
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("files in %s (-want +got):\n%s", d, diff)
		}
	}
}

// TestShellQuote checks the quoting of the directories and topics that
// suggested commands hold.
func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"./data/log":   "./data/log",
		"/tmp/a-b_c.1": "/tmp/a-b_c.1",
		"my dir":       "'my dir'",
		"it's":         `'it'\''s'`,
		"":             "''",
		"$HOME":        "'$HOME'",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestHelpEverywhere walks every command of the commands table and every
// subcommand its usage lists (so commands added later are walked too) and
// checks that -h, --help and eddy help print the usage with a description
// and examples and exit 0.
func TestHelpEverywhere(t *testing.T) {
	var paths [][]string
	for _, name := range slices.Sorted(maps.Keys(commands)) {
		paths = append(paths, []string{name})
	}
	var walked []string
	for i := 0; i < len(paths); i++ { // paths grows by the subcommands found
		path := paths[i]
		walked = append(walked, strings.Join(path, " "))
		var help string
		for _, args := range [][]string{
			slices.Concat(path, []string{"-h"}),
			slices.Concat(path, []string{"--help"}),
			slices.Concat([]string{"help"}, path),
		} {
			stdout, stderr, code := eddy(t, "", args...)
			out := stdout + stderr
			if code != 0 {
				t.Errorf("eddy %s: exit %d, want 0\n%s", strings.Join(args, " "), code, out)
			}
			if help != "" && out != help {
				t.Errorf("eddy %s printed another help than eddy %s -h:\n%s", strings.Join(args, " "), strings.Join(path, " "), out)
			}
			help = out
		}
		checkHelp(t, "eddy "+strings.Join(path, " "), help)
		if len(path) == 1 {
			for _, sub := range listedSubcommands(help) {
				paths = append(paths, []string{path[0], sub})
			}
		}
	}
	for _, want := range []string{"describe", "topics create", "topics list", "topics produce", "topics tail", "bench wa1", "bench nexmark", "bench chart"} {
		if !slices.Contains(walked, want) {
			t.Errorf("the walk missed %q; it walked %q", want, walked)
		}
	}

	// eddy's own usage lists every command, with examples.
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		out := mustEddy(t, "", args...)
		checkHelp(t, "eddy", out)
		for name := range commands {
			if !strings.Contains(out, "\n  "+name+" ") {
				t.Errorf("eddy %s does not list %s:\n%s", args[0], name, out)
			}
		}
	}
}

// checkHelp checks that help, the -h output of the command line cmd, has
// its usage line, a description (a line of prose) and examples.
func checkHelp(t *testing.T, cmd, help string) {
	t.Helper()
	if !strings.Contains(help, "usage: "+cmd+" ") {
		t.Errorf("%s -h has no usage line %q:\n%s", cmd, "usage: "+cmd, help)
	}
	header, examples, prose := false, 0, 0
	for _, line := range strings.Split(help, "\n") {
		switch {
		case line == "examples:":
			header = true
		case header && strings.HasPrefix(line, "  ") && strings.Contains(line, "eddy "):
			examples++
		case header:
			header = false // the examples end at the first other line
		case line != "" && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t") && !strings.HasSuffix(line, ":") && !strings.HasPrefix(line, "usage: "):
			prose++
		}
	}
	if prose == 0 {
		t.Errorf("%s -h has no description:\n%s", cmd, help)
	}
	if examples == 0 {
		t.Errorf("%s -h has no examples (a line \"examples:\" then \"  ... eddy ...\"):\n%s", cmd, help)
	}
}

// listedSubcommands returns the subcommands the usage of a command lists
// under "subcommands:".
func listedSubcommands(help string) []string {
	_, list, ok := strings.Cut(help, "\nsubcommands:\n")
	if !ok {
		return nil
	}
	var names []string
	for _, line := range strings.Split(list, "\n") {
		if strings.TrimSpace(line) == "" {
			break
		}
		names = append(names, strings.Fields(line)[0])
	}
	return names
}

// TestDocListsCommands keeps doc.go true: its list of commands has every
// command of the commands table.
func TestDocListsCommands(t *testing.T) {
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range commands {
		if !strings.Contains(string(doc), "\n//\t"+name+" ") {
			t.Errorf("doc.go does not list the command %s (%s)", name, c.summary)
		}
	}
}

// TestHelp checks that every command answers -h with its usage line and an
// example, and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{
		{"help"},
		{"topics", "-h"},
		{"topics", "list", "-h"},
		{"topics", "create", "--help"},
		{"topics", "produce", "-h"},
		{"topics", "tail", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
			if err != nil && !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("err = %v", err)
			}
			if code := exitCode(err, &errOut); code != 0 {
				t.Errorf("exit %d, want 0", code)
			}
			help := out.String() + errOut.String()
			if !strings.Contains(help, "usage: eddy") {
				t.Errorf("help has no usage line:\n%s", help)
			}
			if len(args) > 2 && (!strings.Contains(help, "examples:\n") || !strings.Contains(help, "eddy "+strings.Join(args[:2], " ")+" --dir ./data/log")) {
				t.Errorf("help has no example:\n%s", help)
			}
		})
	}
}

// TestTopicsLogInUse checks that a command on a log another holder has
// open (a running pipeline) says so and how to fix it.
func TestTopicsLogInUse(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	mustEddy(t, "", "topics", "create", "--dir", dir, "--partitions", "1", "views")
	l, err := embedded.Open(embedded.Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, stderr, code := eddy(t, "", "topics", "list", "--dir", dir)
	if want := "the embedded log is used by one process at a time: stop the process using " + dir; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("topics list on a log in use: exit %d, stderr:\n%s\nwant it to contain %q", code, stderr, want)
	}
}
