package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/embedded"
)

// topicsCommands are the subcommands of "eddy topics".
var topicsCommands = map[string]command{
	"list":    {summary: "list topics with their partitions' offsets", run: topicsList},
	"create":  {summary: "create a topic", run: topicsCreate},
	"produce": {summary: "append lines of stdin to a topic", run: topicsProduce},
	"tail":    {summary: "print the records of a topic", run: topicsTail},
}

const topicsFooter = `DIR is the directory of an embedded log: the log of a pipeline that runs on
the embedded log is in its engine's StateDir/log. The embedded log is used by
one process at a time: stop the pipeline before using these commands on it.

examples:
  eddy topics create --dir ./data/log --partitions 4 views
  printf 'alice\t/home\n' | eddy topics produce --dir ./data/log views
  eddy topics list --dir ./data/log
  eddy topics tail --dir ./data/log --from-beginning views

Run ` + "`eddy topics SUBCOMMAND -h`" + ` for details.`

func runTopics(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sc := subcommands{name: "topics", usageLine: "SUBCOMMAND --dir DIR [FLAGS] [ARGS]",
		footer: topicsFooter, commands: topicsCommands, listed: []string{"list", "create", "produce", "tail"}}
	return sc.run(ctx, args, stdin, stdout, stderr)
}

// openLog opens the embedded log in dir. Unless create is set, the log must
// exist already: a typo in --dir should not create an empty log. Either
// way dir must be a log or new: opening would make any other directory
// (a pipeline's StateDir, say) a log too.
func openLog(dir string, create bool) (*embedded.Log, error) {
	if dir == "" {
		return nil, &usageError{"missing --dir: the directory of the embedded log, e.g. --dir ./data/log"}
	}
	if err := checkLogDir(dir, create); err != nil {
		return nil, err
	}
	l, err := embedded.Open(embedded.Options{Dir: dir, CleanInterval: -1})
	if err != nil {
		if errors.Is(err, embedded.ErrInUse) {
			return nil, fmt.Errorf("%w\nthe embedded log is used by one process at a time: stop the process using %s (a running pipeline?) and try again", err, dir)
		}
		return nil, err
	}
	return l, nil
}

// checkLogDir returns an error saying how to fix --dir unless dir is an
// embedded log, or (with create) does not exist or is empty.
func checkLogDir(dir string, create bool) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist) && create:
		return nil
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("no embedded log in %s: the directory does not exist: check --dir, or create the log with its first topic: eddy topics create --dir %s --partitions N TOPIC", dir, shellQuote(dir))
	case err != nil:
		return fmt.Errorf("--dir %s: %w", dir, err)
	case !fi.IsDir():
		return fmt.Errorf("--dir %s is a file: --dir is the directory of the embedded log", dir)
	case isLogDir(dir):
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("--dir %s: %w", dir, err)
	}
	if len(entries) == 0 && create {
		return nil
	}
	if sub := filepath.Join(dir, "log"); isLogDir(sub) {
		return fmt.Errorf("%s is not an embedded log, but %s is (%s looks like a pipeline's StateDir): use --dir %s", dir, sub, dir, shellQuote(sub))
	}
	if len(entries) == 0 {
		return fmt.Errorf("no embedded log in %s: the directory is empty: check --dir, or create the log with its first topic: eddy topics create --dir %s --partitions N TOPIC", dir, shellQuote(dir))
	}
	return fmt.Errorf("%s is not an embedded log (it holds other files): check --dir; a new log needs a new or empty directory", dir)
}

// isLogDir reports whether dir holds a Pebble database, as an embedded
// log does.
func isLogDir(dir string) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "MANIFEST-") || strings.HasPrefix(e.Name(), "marker.manifest.") {
			return true
		}
	}
	return false
}

// shellQuote quotes s for a POSIX shell when it needs it, so that the
// commands errors suggest can be pasted as they are.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// describeTopic returns the config of topic in l.
func describeTopic(ctx context.Context, l *embedded.Log, dir, topic string) (broker.TopicConfig, error) {
	topics, err := l.DescribeTopics(ctx)
	if err != nil {
		return broker.TopicConfig{}, err
	}
	cfg, ok := topics[topic]
	if !ok {
		have := "it has no topics"
		if len(topics) > 0 {
			have = "its topics: " + strings.Join(slices.Sorted(maps.Keys(topics)), ", ")
		}
		return cfg, fmt.Errorf("topic %q does not exist in %s (%s): check the name, or create it with `eddy topics create --dir %s --partitions N %s`",
			topic, dir, have, shellQuote(dir), shellQuote(topic))
	}
	return cfg, nil
}

func topicsList(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("topics list", "--dir DIR",
		"List the topics of the embedded log in DIR: partitions, compaction, retention, and the\nfirst and next offset of every partition.",
		"eddy topics list --dir ./data/log")
	dir := fs.String("dir", "", "directory of the embedded log (required)")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("topics list: unexpected argument %q", pos[0])}
	}
	l, err := openLog(*dir, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	topics, err := l.DescribeTopics(ctx)
	if err != nil {
		return err
	}
	if len(topics) == 0 {
		fmt.Fprintf(stdout, "no topics in %s: create one with `eddy topics create --dir %s --partitions N TOPIC`\n", *dir, shellQuote(*dir))
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TOPIC\tPARTITIONS\tCOMPACTED\tRETENTION\tPARTITION\tSTART\tEND\n")
	for _, name := range slices.Sorted(maps.Keys(topics)) {
		cfg := topics[name]
		retention := "forever"
		if cfg.Retention > 0 {
			retention = cfg.Retention.String()
		}
		for p := range cfg.Partitions {
			o, err := l.Offsets(ctx, broker.TopicPartition{Topic: name, Partition: p})
			if err != nil {
				return err
			}
			if p == 0 {
				fmt.Fprintf(tw, "%s\t%d\t%t\t%s\t%d\t%d\t%d\n", name, cfg.Partitions, cfg.Compacted, retention, p, o.Start, o.End)
			} else {
				fmt.Fprintf(tw, "\t\t\t\t%d\t%d\t%d\n", p, o.Start, o.End)
			}
		}
	}
	return tw.Flush()
}

func topicsCreate(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("topics create", "--dir DIR --partitions N [--compact] [--retention DUR] NAME",
		"Create the topic NAME in the embedded log in DIR, creating the log if needed. Creating a\ntopic that exists with the same partition count does nothing.",
		"eddy topics create --dir ./data/log --partitions 4 views",
		"eddy topics create --dir ./data/log --partitions 4 --retention 168h clicks",
		"eddy topics create --dir ./data/log --partitions 4 --compact profiles")
	dir := fs.String("dir", "", "directory of the embedded log (required)")
	partitions := fs.Int("partitions", 0, "number of partitions (required)")
	compact := fs.Bool("compact", false, "keep only the latest record of every key (for changelogs and tables)")
	retention := fs.Duration("retention", 0, "delete records older than this, e.g. 168h; 0 keeps them forever")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 1:
		return &usageError{fmt.Sprintf("topics create: want exactly one topic NAME, got %d, e.g. `eddy topics create --dir ./data/log --partitions 4 views`", len(pos))}
	case pos[0] == "":
		return &usageError{"topics create: the topic NAME is empty"}
	case *partitions <= 0:
		return &usageError{"topics create: --partitions must be at least 1, e.g. --partitions 4: the partition count of a topic cannot change later"}
	case *partitions > embedded.MaxPartitions:
		return &usageError{fmt.Sprintf("topics create: --partitions %d: at most %d", *partitions, embedded.MaxPartitions)}
	case *retention < 0:
		return &usageError{"topics create: --retention must not be negative; 0 keeps records forever"}
	}
	l, err := openLog(*dir, true)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	cfg := broker.TopicConfig{Name: pos[0], Partitions: int32(*partitions), Compacted: *compact, Retention: *retention}
	if err := l.CreateTopics(ctx, cfg); err != nil {
		if errors.Is(err, broker.ErrTopicMismatch) {
			return fmt.Errorf("%w\nthe partition count of a topic cannot change: use another name, or delete the log directory if its data is disposable", err)
		}
		return err
	}
	fmt.Fprintf(stdout, "topic %s: %d partitions\n", cfg.Name, cfg.Partitions)
	return nil
}

// produceBatch is how many lines topics produce appends atomically at once.
const produceBatch = 1000

func topicsProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("topics produce", "--dir DIR [--partition P] [--key-sep SEP] [--timestamp-ms MS] TOPIC",
		`Append the lines of stdin to TOPIC as records. A line "key<SEP>value" is split at the
first SEP (a tab by default); a line without SEP is a value with no key. Records with a key
go to the partition of Kafka's murmur2 of the key, others round robin, unless --partition
is set. Lines are appended in atomic batches of 1000.`,
		`printf 'alice\t/home\nbob\t/cart\n' | eddy topics produce --dir ./data/log views`,
		`printf 'alice,/home\n' | eddy topics produce --dir ./data/log --key-sep , views`,
		`cat values.txt | eddy topics produce --dir ./data/log --key-sep '' --partition 0 views`)
	dir := fs.String("dir", "", "directory of the embedded log (required)")
	partition := fs.Int("partition", -1, "partition to append to; -1 picks one by key")
	sep := fs.String("key-sep", "\t", "separator of key and value in a line; empty: lines are values")
	tsMillis := fs.Int64("timestamp-ms", 0, "timestamp of the records in ms since the Unix epoch; 0: now")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{fmt.Sprintf("topics produce: want exactly one TOPIC, got %d, e.g. `eddy topics produce --dir ./data/log views < lines.txt`", len(pos))}
	}
	topic := pos[0]
	l, err := openLog(*dir, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	cfg, err := describeTopic(ctx, l, *dir, topic)
	if err != nil {
		return err
	}
	if *partition < -1 || *partition >= int(cfg.Partitions) {
		return &usageError{fmt.Sprintf("topics produce: --partition %d: topic %s has partitions 0 to %d; leave --partition out to pick one by key", *partition, topic, cfg.Partitions-1)}
	}

	sc := bufio.NewScanner(stdin)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	var batch []broker.Record
	total := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := l.Produce(ctx, batch...); err != nil {
			return fmt.Errorf("produce to %s after %d records: %w", topic, total, err)
		}
		total += len(batch)
		batch = batch[:0]
		return nil
	}
	for sc.Scan() {
		line := sc.Text()
		r := broker.Record{Topic: topic, Partition: int32(*partition), Timestamp: *tsMillis}
		if r.Timestamp == 0 {
			r.Timestamp = time.Now().UnixMilli()
		}
		if k, v, ok := strings.Cut(line, *sep); ok && *sep != "" {
			r.Key, r.Value = []byte(k), []byte(v)
		} else {
			r.Value = []byte(line)
		}
		batch = append(batch, r)
		if len(batch) == produceBatch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return errors.Join(fmt.Errorf("read stdin: %w", err), flush())
	}
	if err := flush(); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "produced %d records to %s\n", total, topic)
	return nil
}

func topicsTail(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("topics tail", "--dir DIR [--from-beginning] [-n N] [--partition P] [--follow] [--format text|json] TOPIC",
		`Print the records of TOPIC: the last N of every partition, or all of them with
--from-beginning. With --follow, keep waiting for new records until interrupted.
Text lines are "partition offset timestamp key value", tab-separated; keys and values are
printed as text when they are UTF-8 (quoted if they hold control characters), else as
hex (0x...); <nil> is a missing key or a tombstone. JSON lines hold the same fields,
with key_base64/value_base64 for bytes that are not UTF-8.`,
		"eddy topics tail --dir ./data/log views",
		"eddy topics tail --dir ./data/log --from-beginning --format json views",
		"eddy topics tail --dir ./data/log --partition 2 --follow views")
	dir := fs.String("dir", "", "directory of the embedded log (required)")
	fromBeginning := fs.Bool("from-beginning", false, "print every record, not only the last N")
	lastN := fs.Int64("n", 10, "number of records to print per partition, counted back from its end")
	partition := fs.Int("partition", -1, "only this partition; -1: all")
	follow := fs.Bool("follow", false, "wait for new records until interrupted")
	format := fs.String("format", "text", "output format: text or json")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{fmt.Sprintf("topics tail: want exactly one TOPIC, got %d, e.g. `eddy topics tail --dir ./data/log views`", len(pos))}
	}
	var printRecord func(w *bufio.Writer, r broker.Record) error
	switch *format {
	case "text":
		printRecord = printText
	case "json":
		printRecord = printJSON
	default:
		return &usageError{fmt.Sprintf("topics tail: --format %q: want text or json", *format)}
	}
	if *lastN < 0 {
		return &usageError{"topics tail: -n must not be negative; use --from-beginning for every record"}
	}
	topic := pos[0]
	l, err := openLog(*dir, false)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, l.Close()) }()
	cfg, err := describeTopic(ctx, l, *dir, topic)
	if err != nil {
		return err
	}
	var tps []broker.TopicPartition
	switch {
	case *partition == -1:
		for p := range cfg.Partitions {
			tps = append(tps, broker.TopicPartition{Topic: topic, Partition: p})
		}
	case *partition >= 0 && *partition < int(cfg.Partitions):
		tps = append(tps, broker.TopicPartition{Topic: topic, Partition: int32(*partition)})
	default:
		return &usageError{fmt.Sprintf("topics tail: --partition %d: topic %s has partitions 0 to %d; leave --partition out for all", *partition, topic, cfg.Partitions-1)}
	}

	// next is the next offset to print of every partition.
	next := make(map[broker.TopicPartition]int64, len(tps))
	for _, tp := range tps {
		o, err := l.Offsets(ctx, tp)
		if err != nil {
			return err
		}
		next[tp] = o.Start
		if !*fromBeginning {
			next[tp] = max(o.Start, o.End-*lastN)
		}
	}
	w := bufio.NewWriter(stdout)
	for {
		for _, tp := range tps {
			// Read up to the end as it is now; compaction may have left
			// gaps before it, so next becomes the end, not the last offset+1.
			o, err := l.Offsets(ctx, tp)
			if err != nil {
				return err
			}
			err = l.Read(ctx, tp, next[tp], o.End, func(r broker.Record) error {
				return printRecord(w, r)
			})
			if err != nil {
				return err
			}
			next[tp] = max(next[tp], o.End)
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if !*follow {
			return nil
		}
		if err := l.Await(ctx, next); err != nil {
			if ctx.Err() != nil {
				return nil // interrupted: the normal end of --follow
			}
			return err
		}
	}
}

func printText(w *bufio.Writer, r broker.Record) error {
	ts := time.UnixMilli(r.Timestamp).UTC().Format("2006-01-02T15:04:05.000Z")
	_, err := fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\n", r.Partition, r.Offset, ts, textBytes(r.Key), textBytes(r.Value))
	return err
}

// textBytes renders b for a text line: <nil>, UTF-8 text (quoted if it
// holds control characters or could be mistaken for <nil>), or hex.
func textBytes(b []byte) string {
	switch {
	case b == nil:
		return "<nil>"
	case !utf8.Valid(b):
		return "0x" + hex.EncodeToString(b)
	}
	s := string(b)
	if s == "" || s == "<nil>" || strings.HasPrefix(s, "0x") || strings.HasPrefix(s, `"`) || strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return strconv.Quote(s)
	}
	return s
}

// jsonRecord is a record as topics tail --format json prints it.
type jsonRecord struct {
	Topic       string       `json:"topic"`
	Partition   int32        `json:"partition"`
	Offset      int64        `json:"offset"`
	Timestamp   int64        `json:"timestamp"`
	Key         *string      `json:"key"`
	KeyBase64   string       `json:"key_base64,omitempty"`
	Value       *string      `json:"value"`
	ValueBase64 string       `json:"value_base64,omitempty"`
	Headers     []jsonHeader `json:"headers,omitempty"`
}

type jsonHeader struct {
	Key         string  `json:"key"`
	Value       *string `json:"value"`
	ValueBase64 string  `json:"value_base64,omitempty"`
}

// jsonBytes returns b as a string when it is UTF-8, else as base64; both
// empty for nil.
func jsonBytes(b []byte) (*string, string) {
	switch {
	case b == nil:
		return nil, ""
	case utf8.Valid(b):
		s := string(b)
		return &s, ""
	default:
		return nil, base64.StdEncoding.EncodeToString(b)
	}
}

func printJSON(w *bufio.Writer, r broker.Record) error {
	jr := jsonRecord{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp}
	jr.Key, jr.KeyBase64 = jsonBytes(r.Key)
	jr.Value, jr.ValueBase64 = jsonBytes(r.Value)
	for _, h := range r.Headers {
		jh := jsonHeader{Key: h.Key}
		jh.Value, jh.ValueBase64 = jsonBytes(h.Value)
		jr.Headers = append(jr.Headers, jh)
	}
	b, err := json.Marshal(jr)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}
