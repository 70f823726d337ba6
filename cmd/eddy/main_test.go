package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
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
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"no command", nil, 2, "eddy: missing command"},
		{"unknown command", []string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{"unknown subcommand", []string{"topics", "drop"}, 2, `topics: unknown subcommand "drop"`},
		{"missing dir", []string{"topics", "list"}, 2, "missing --dir"},
		{"bad flag", []string{"topics", "list", "--dri", dir}, 2, "flag provided but not defined: -dri"},
		{"no log", []string{"topics", "list", "--dir", missing}, 1, "no embedded log in " + missing},
		{"unknown topic", []string{"topics", "tail", "--dir", dir, "clicks"}, 1,
			"topic clicks does not exist in " + dir + ": create it with `eddy topics create --dir " + dir + " --partitions N clicks`"},
		{"mismatch", []string{"topics", "create", "--dir", dir, "--partitions", "3", "views"}, 1,
			"create topic views with 3 partitions: it exists with 2"},
		{"no partitions", []string{"topics", "create", "--dir", dir, "views"}, 2, "--partitions must be at least 1"},
		{"two names", []string{"topics", "create", "--dir", dir, "--partitions", "1", "a", "b"}, 2, "want exactly one topic NAME"},
		{"bad partition", []string{"topics", "produce", "--dir", dir, "--partition", "2", "views"}, 2, "topic views has partitions 0 to 1"},
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
