package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/eddyflow/eddy/engine"
	"github.com/eddyflow/eddy/state"
)

// storesCommands are the subcommands of "eddy stores".
var storesCommands = map[string]command{
	"list": {summary: "list the store partitions: kind, committed changelog offset, rows, size", run: storesList},
	"get":  {summary: "print the rows of a key in a store", run: storesGet},
	"scan": {summary: "print the rows of a store in key order", run: storesScan},
}

const storesFooter = `DIR is an engine's StateDir (engine.Options.StateDir, default ./eddy-data):
the stores are in DIR/state. They are read as the instance's last commit left
them, without its topology, and nothing is written. Stop the instance first:
a running instance holds its state, and these commands refuse to open it.

examples:
  eddy stores list --dir ./eddy-data
  eddy stores get --dir ./eddy-data counts alice
  eddy stores scan --dir ./eddy-data --from a --to n --limit 20 counts
  eddy stores scan --dir ./eddy-data --value-format int64 --format json counts

Run ` + "`eddy stores SUBCOMMAND -h`" + ` for details.`

func runStores(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	sc := subcommands{name: "stores", usageLine: "SUBCOMMAND --dir DIR [FLAGS] [ARGS]",
		footer: storesFooter, commands: storesCommands, listed: []string{"list", "get", "scan"}}
	return sc.run(ctx, args, stdin, stdout, stderr)
}

// rowsHelp describes the rows get and scan print.
const rowsHelp = `
A store's layout tells how to read its rows; the engine records it with the
state (see --layout):
  key-value  a table: text line  PARTITION KEY TIMESTAMP VALUE
  window     a time-windowed table: PARTITION KEY WINDOW-START TIMESTAMP VALUE
             (the window ends at its start plus the window size)
  session    a session-windowed table: PARTITION KEY SESSION-START SESSION-END
             TIMESTAMP VALUE (the end is the session's last record, inclusive)
  raw        any store (join buffers, indexes): PARTITION KEY VALUE, the bytes
             as the operator stored them
Fields are tab-separated; times are RFC 3339 in UTC with milliseconds; the
timestamp is the newest input record's. Keys and values are the serde's bytes,
printed per --key-format and --value-format: auto prints printable UTF-8 as
text (quoted when it could be mistaken for hex) and anything else as 0x-hex.
With --format json, each row is a JSON object with partition, key (or key_hex),
window_start, window_end (session), timestamp (milliseconds) and value (or
value_hex).`

// storeFlags are the flags that get and scan share.
type storeFlags struct {
	dir, layout, keyFormat, valueFormat, format string
	keyHex                                      bool
	partition                                   int
}

func (f *storeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.dir, "dir", "", "the engine's StateDir, holding state/ (required)")
	fs.StringVar(&f.layout, "layout", "", "read the store as key-value, window, session or raw; default: the layout the engine recorded (raw if none)")
	fs.StringVar(&f.keyFormat, "key-format", "auto", "how keys are printed and KEY, --from and --to parsed: auto, string, hex, int64, int32 or float64 (as eddy's serdes encode them)")
	fs.BoolVar(&f.keyHex, "key-hex", false, "short for --key-format hex")
	fs.StringVar(&f.valueFormat, "value-format", "auto", "how values are printed: auto, string, hex, int64, int32 or float64")
	fs.StringVar(&f.format, "format", "text", "output format: text or json (JSON lines)")
	fs.IntVar(&f.partition, "partition", -1, "only this partition; -1: every partition the state holds")
}

// resolve checks the format flags.
func (f *storeFlags) resolve(cmd string) (keyF, valueF byteFormat, err error) {
	if f.keyHex {
		if f.keyFormat != "auto" && f.keyFormat != "hex" {
			return "", "", &usageError{fmt.Sprintf("%s: --key-hex and --key-format %s contradict each other: use one", cmd, f.keyFormat)}
		}
		f.keyFormat = "hex"
	}
	if keyF, err = parseByteFormat(f.keyFormat); err != nil {
		return "", "", &usageError{fmt.Sprintf("%s: --key-format: %v", cmd, err)}
	}
	if valueF, err = parseByteFormat(f.valueFormat); err != nil {
		return "", "", &usageError{fmt.Sprintf("%s: --value-format: %v", cmd, err)}
	}
	if f.format != "text" && f.format != "json" {
		return "", "", &usageError{fmt.Sprintf("%s: --format %q: want text or json", cmd, f.format)}
	}
	return keyF, valueF, nil
}

// openState opens the state in the engine's StateDir dir read-only.
func openState(dir string) (*state.DB, string, error) {
	if dir == "" {
		return nil, "", &usageError{"missing --dir: the engine's StateDir, e.g. --dir ./eddy-data"}
	}
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, "", fmt.Errorf("no eddy state in %s: the directory does not exist: check --dir (the engine's StateDir, default ./eddy-data)", dir)
	case err != nil:
		return nil, "", fmt.Errorf("--dir %s: %w", dir, err)
	case !fi.IsDir():
		return nil, "", fmt.Errorf("--dir %s is a file: --dir is the engine's StateDir, a directory", dir)
	}
	stateDir := filepath.Join(dir, "state")
	if _, err := os.Stat(stateDir); errors.Is(err, fs.ErrNotExist) {
		switch {
		case filepath.Base(filepath.Clean(dir)) == "state" && isLogDir(dir):
			stateDir = dir // the state DB itself
		case isLogDir(filepath.Join(dir, "log")):
			return nil, "", fmt.Errorf("no state in %s: it has an embedded log (log/) but no state/: the application has no state yet (it has not run, or was reset)", dir)
		case isLogDir(dir):
			return nil, "", fmt.Errorf("%s is not an engine's StateDir (it looks like an embedded log): use the directory that holds state/ and log/", dir)
		default:
			return nil, "", fmt.Errorf("no eddy state in %s: %s does not exist: check --dir (the engine's StateDir, default ./eddy-data)", dir, stateDir)
		}
	}
	db, err := state.OpenReadOnly(stateDir)
	if err != nil {
		return nil, "", err
	}
	return db, stateDir, nil
}

func storesList(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("stores list", "--dir DIR [--format text|json]",
		`List the store partitions in the state of a stopped instance: the store's kind
(its layout, as the engine recorded it; - if unknown), the partition, the
committed changelog offset (the offset after the last changelog record the
state reflects: a restore continues there), the number of rows (data, not
metadata: every row is read, so a large state takes a while) and an estimate
of the disk space (data only in the write-ahead log is not counted).`,
		"eddy stores list --dir ./eddy-data",
		"eddy stores list --dir ./eddy-data --format json")
	dir := fs.String("dir", "", "the engine's StateDir, holding state/ (required)")
	format := fs.String("format", "text", "output format: text or json (JSON lines)")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return &usageError{fmt.Sprintf("stores list: unexpected argument %q: list takes no store name; see `eddy stores scan`", pos[0])}
	}
	if *format != "text" && *format != "json" {
		return &usageError{fmt.Sprintf("stores list: --format %q: want text or json", *format)}
	}
	db, stateDir, err := openState(*dir)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	infos, err := db.Stores()
	if err != nil {
		return err
	}
	if len(infos) == 0 {
		fmt.Fprintf(stderr, "no stores in %s: the application has no stores, or has not committed any state\n", stateDir)
		return nil
	}
	rows := make([]int64, len(infos))
	for i, si := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.ReadStore(si.Name, si.Partition, nil, nil, func(k, v []byte) error {
			rows[i]++
			return nil
		})
		if err != nil {
			return err
		}
	}
	if *format == "json" {
		w := bufio.NewWriter(stdout)
		for i, si := range infos {
			js := struct {
				Store     string `json:"store"`
				Kind      string `json:"kind"`
				Partition int32  `json:"partition"`
				Offset    *int64 `json:"offset"`
				Rows      int64  `json:"rows"`
				DiskBytes uint64 `json:"disk_bytes"`
			}{si.Name, si.Kind, si.Partition, nil, rows[i], si.DiskBytes}
			if si.HasOffset {
				js.Offset = &si.Offset
			}
			b, err := json.Marshal(js)
			if err != nil {
				return err
			}
			w.Write(append(b, '\n'))
		}
		return w.Flush()
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "STORE\tKIND\tPARTITION\tOFFSET\tROWS\tDISK\n")
	for i, si := range infos {
		kind, offset := si.Kind, "-"
		if kind == "" {
			kind = "-"
		}
		if si.HasOffset {
			offset = strconv.FormatInt(si.Offset, 10)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%s\n", si.Name, kind, si.Partition, offset, rows[i], humanBytes(si.DiskBytes))
	}
	return tw.Flush()
}

// humanBytes renders n bytes with a binary unit.
func humanBytes(n uint64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f, unit := float64(n)/1024, "KiB"
	for _, u := range []string{"MiB", "GiB", "TiB"} {
		if f < 1024 {
			break
		}
		f, unit = f/1024, u
	}
	return fmt.Sprintf("%.1f %s", f, unit)
}

// storeView is a store opened for get and scan: its partitions, its
// layout and how rows are printed.
type storeView struct {
	db         *state.DB
	name       string
	partitions []int32
	layout     layout
	keyF       byteFormat
	valueF     byteFormat
	json       bool
	w          *bufio.Writer
}

// openStore opens the store called name for get or scan.
func openStore(cmd string, f *storeFlags, name string, stdout, stderr io.Writer) (*storeView, error) {
	keyF, valueF, err := f.resolve(cmd)
	if err != nil {
		return nil, err
	}
	var forced layout
	if f.layout != "" {
		if forced, err = parseLayout(f.layout); err != nil {
			return nil, &usageError{fmt.Sprintf("%s: --layout: %v", cmd, err)}
		}
	}
	db, stateDir, err := openState(f.dir)
	if err != nil {
		return nil, err
	}
	v, err := findStore(db, stateDir, f, name)
	if err != nil {
		db.Close()
		return nil, err
	}
	v.keyF, v.valueF, v.json = keyF, valueF, f.format == "json"
	v.w = bufio.NewWriter(stdout)
	if forced != "" {
		v.layout = forced
	} else if v.layout == "" {
		fmt.Fprintf(stderr, "eddy: the layout of store %s is not recorded (state of an older eddy?): printing raw rows; choose one with --layout\n", name)
		v.layout = layoutRaw
	}
	return v, nil
}

// findStore returns the view of the store called name, with the layout
// its recorded kind gives ("" if none).
func findStore(db *state.DB, stateDir string, f *storeFlags, name string) (*storeView, error) {
	infos, err := db.Stores()
	if err != nil {
		return nil, err
	}
	v := &storeView{db: db, name: name}
	var names []string
	kind := ""
	for _, si := range infos {
		if !slices.Contains(names, si.Name) {
			names = append(names, si.Name)
		}
		if si.Name == name {
			v.partitions = append(v.partitions, si.Partition)
			kind = si.Kind
		}
	}
	if len(v.partitions) == 0 {
		if len(names) == 0 {
			return nil, fmt.Errorf("store %q not found: %s holds no stores", name, stateDir)
		}
		return nil, fmt.Errorf("store %q not found in %s; its stores: %s (see `eddy stores list --dir %s`)", name, stateDir, strings.Join(names, ", "), shellQuote(f.dir))
	}
	if f.partition >= 0 {
		if !slices.Contains(v.partitions, int32(f.partition)) {
			return nil, &usageError{fmt.Sprintf("--partition %d: the state holds partitions %s of store %s; leave --partition out for all", f.partition, joinInts(v.partitions), name)}
		}
		v.partitions = []int32{int32(f.partition)}
	} else if f.partition != -1 {
		return nil, &usageError{fmt.Sprintf("--partition %d: want a partition number, or -1 for all", f.partition)}
	}
	v.layout = layoutOfKind(kind)
	return v, nil
}

func joinInts(ps []int32) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

func (v *storeView) close() error {
	return errors.Join(v.w.Flush(), v.db.Close())
}

func storesGet(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("stores get", "--dir DIR [FLAGS] STORE KEY",
		`Print the rows of KEY in STORE, in the state of a stopped instance: its row in a
key-value store, its windows in a window or session store. Every partition the
state holds is searched (the key is in one of them). KEY is text, or parsed per
--key-format (e.g. --key-hex 0a0b, --key-format int64 42). A key with no row is
an error (exit status 1).`+"\n"+rowsHelp,
		"eddy stores get --dir ./eddy-data counts alice",
		"eddy stores get --dir ./eddy-data --value-format int64 counts alice",
		"eddy stores get --dir ./eddy-data --key-hex --format json counts 616c696365")
	var f storeFlags
	f.register(fs)
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 2 {
		return &usageError{fmt.Sprintf("stores get: want STORE and KEY, got %d arguments, e.g. `eddy stores get --dir ./eddy-data counts alice`", len(pos))}
	}
	v, err := openStore("stores get", &f, pos[0], stdout, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, v.close()) }()
	key, err := v.keyF.parse(pos[1])
	if err != nil {
		return &usageError{fmt.Sprintf("stores get: KEY %q: %v", pos[1], err)}
	}
	found := 0
	emit := func(p int32, k, val []byte) error {
		found++
		return v.print(p, k, val)
	}
	for _, p := range v.partitions {
		if err := ctx.Err(); err != nil {
			return err
		}
		switch v.layout {
		case layoutKV, layoutRaw:
			val, ok, err := v.db.Get(v.name, p, key)
			if err != nil {
				return err
			}
			if ok {
				err = emit(p, key, val)
			}
			if err != nil {
				return err
			}
		case layoutWindow:
			// Window keys sort by start: the key's windows are spread
			// over the store.
			err = v.db.ReadStore(v.name, p, nil, nil, func(k, val []byte) error {
				if _, kb, err := state.DecodeWindowKey(k); err == nil && string(kb) == string(key) {
					return emit(p, k, val)
				}
				return nil
			})
		case layoutSession:
			// Session keys are key, end, start: the key's sessions are
			// together.
			err = v.db.ReadStore(v.name, p, key, prefixAfter(key), func(k, val []byte) error {
				if len(k) == len(key)+16 {
					return emit(p, k, val)
				}
				return nil
			})
		}
		if err != nil {
			return err
		}
	}
	if found == 0 {
		return fmt.Errorf("key %s not found in store %s (partitions %s searched)", v.keyF.text(key), v.name, joinInts(v.partitions))
	}
	return nil
}

// prefixAfter returns the smallest key above every key starting with p,
// nil if none.
func prefixAfter(p []byte) []byte {
	end := slices.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	return nil
}

// errLimit stops a scan at --limit.
var errLimit = errors.New("limit reached")

func storesScan(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) (err error) {
	fs := newFlagSet("stores scan", "--dir DIR [--from K] [--to K] [--limit N] [FLAGS] STORE",
		`Print the rows of STORE in the state of a stopped instance, partition by
partition, each in key order. --from and --to bound the keys (from inclusive,
to exclusive; parsed per --key-format); for a window store they bound the
window start instead, as RFC 3339 times or milliseconds since the epoch.`+"\n"+rowsHelp,
		"eddy stores scan --dir ./eddy-data counts",
		"eddy stores scan --dir ./eddy-data --from a --to n --limit 20 counts",
		"eddy stores scan --dir ./eddy-data --from 2024-05-01T10:00:00Z --to 2024-05-01T11:00:00Z pageviews-per-minute",
		"eddy stores scan --dir ./eddy-data --partition 2 --layout raw --format json joined-left-store")
	var f storeFlags
	f.register(fs)
	from := fs.String("from", "", "first key (window store: first window start) to print; default: the first")
	to := fs.String("to", "", "key (window store: window start) to stop before; default: the end")
	limit := fs.Int("limit", 0, "print at most N rows; 0: all")
	pos, err := parseArgs(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return &usageError{fmt.Sprintf("stores scan: want exactly one STORE, got %d, e.g. `eddy stores scan --dir ./eddy-data counts`", len(pos))}
	}
	if *limit < 0 {
		return &usageError{"stores scan: --limit must not be negative; 0 prints every row"}
	}
	v, err := openStore("stores scan", &f, pos[0], stdout, stderr)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, v.close()) }()
	var lo, hi []byte
	bound := func(flagName, s string) ([]byte, error) {
		if s == "" {
			return nil, nil
		}
		if v.layout == layoutWindow {
			ms, err := parseTime(s)
			if err != nil {
				return nil, &usageError{fmt.Sprintf("stores scan: --%s %q: %v", flagName, s, err)}
			}
			return state.AppendWindowKey(nil, ms, nil), nil
		}
		b, err := v.keyF.parse(s)
		if err != nil {
			return nil, &usageError{fmt.Sprintf("stores scan: --%s %q: %v", flagName, s, err)}
		}
		return b, nil
	}
	if lo, err = bound("from", *from); err != nil {
		return err
	}
	if hi, err = bound("to", *to); err != nil {
		return err
	}
	n := 0
	for _, p := range v.partitions {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := v.db.ReadStore(v.name, p, lo, hi, func(k, val []byte) error {
			if *limit > 0 && n >= *limit {
				return errLimit
			}
			n++
			return v.print(p, k, val)
		})
		if errors.Is(err, errLimit) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseTime parses a time given as milliseconds since the Unix epoch or
// in RFC 3339.
func parseTime(s string) (int64, error) {
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, errors.New("want milliseconds since the Unix epoch or an RFC 3339 time such as 2024-05-01T10:00:00Z")
	}
	return t.UnixMilli(), nil
}

// formatTime renders milliseconds since the Unix epoch as RFC 3339 in UTC.
func formatTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}

// layout is how a store's rows are read.
type layout string

const (
	layoutKV      layout = "key-value"
	layoutWindow  layout = "window"
	layoutSession layout = "session"
	layoutRaw     layout = "raw"
)

func parseLayout(s string) (layout, error) {
	switch s {
	case "key-value", "kv":
		return layoutKV, nil
	case "window":
		return layoutWindow, nil
	case "session":
		return layoutSession, nil
	case "raw", "internal":
		return layoutRaw, nil
	}
	return "", fmt.Errorf("unknown layout %q: want key-value, window, session or raw", s)
}

// layoutOfKind returns the layout of a store of the kind the engine
// recorded: "" if none was.
func layoutOfKind(kind string) layout {
	switch kind {
	case "":
		return ""
	case engine.StoreKindKeyValue:
		return layoutKV
	case engine.StoreKindWindow:
		return layoutWindow
	case engine.StoreKindSession:
		return layoutSession
	}
	return layoutRaw
}

// row is a store row as get and scan print it.
type row struct {
	Partition int32
	Key       []byte
	// Start and End of the window or session (End for sessions only),
	// Time the row's timestamp: set when the layout has them.
	Start, End, Time *int64
	Value            []byte
}

// decode splits the stored key k and value val of partition p per the
// view's layout.
func (v *storeView) decode(p int32, k, val []byte) (row, error) {
	r := row{Partition: p, Key: k, Value: val}
	switch v.layout {
	case layoutRaw:
		return r, nil
	case layoutWindow:
		start, kb, err := state.DecodeWindowKey(k)
		if err != nil {
			return r, err
		}
		r.Key, r.Start = kb, &start
	case layoutSession:
		if len(k) < 16 {
			return r, fmt.Errorf("session key of %d bytes, want the key then 16 bytes of end and start", len(k))
		}
		end := int64(binary.BigEndian.Uint64(k[len(k)-16:]))
		start := int64(binary.BigEndian.Uint64(k[len(k)-8:]))
		r.Key, r.Start, r.End = k[:len(k)-16], &start, &end
	}
	if len(val) < 8 {
		return r, fmt.Errorf("value of %d bytes, too short for its 8-byte timestamp", len(val))
	}
	ts := int64(binary.BigEndian.Uint64(val))
	r.Time, r.Value = &ts, val[8:]
	return r, nil
}

// print writes the row of stored key k and value val of partition p.
func (v *storeView) print(p int32, k, val []byte) error {
	r, err := v.decode(p, k, val)
	if err != nil {
		return fmt.Errorf("store %s partition %d key 0x%x: %v: is it a %s store? read it with --layout raw", v.name, p, k, err, v.layout)
	}
	if v.json {
		return v.printJSON(r)
	}
	value, err := v.valueF.format(r.Value)
	if err != nil {
		return fmt.Errorf("store %s partition %d key %s: value: %v", v.name, p, v.keyF.text(r.Key), err)
	}
	key, err := v.keyF.format(r.Key)
	if err != nil {
		return fmt.Errorf("store %s partition %d key 0x%x: %v", v.name, p, r.Key, err)
	}
	fields := []string{strconv.Itoa(int(p)), key}
	for _, t := range []*int64{r.Start, r.End, r.Time} {
		if t != nil {
			fields = append(fields, formatTime(*t))
		}
	}
	fields = append(fields, value)
	_, err = v.w.WriteString(strings.Join(fields, "\t") + "\n")
	return err
}

func (v *storeView) printJSON(r row) error {
	m := map[string]any{"partition": r.Partition}
	if err := v.keyF.addJSON(m, "key", r.Key); err != nil {
		return fmt.Errorf("store %s partition %d key 0x%x: %v", v.name, r.Partition, r.Key, err)
	}
	if err := v.valueF.addJSON(m, "value", r.Value); err != nil {
		return fmt.Errorf("store %s partition %d key 0x%x: value: %v", v.name, r.Partition, r.Key, err)
	}
	if r.Start != nil {
		m["window_start"] = *r.Start
	}
	if r.End != nil {
		m["window_end"] = *r.End
	}
	if r.Time != nil {
		m["timestamp"] = *r.Time
	}
	b, err := json.Marshal(m) // keys sorted: a stable order
	if err != nil {
		return err
	}
	_, err = v.w.Write(append(b, '\n'))
	return err
}

// byteFormat tells how the bytes of a key or value are printed and
// parsed: as eddy's serdes encode strings, int64, int32 and float64.
type byteFormat string

func parseByteFormat(s string) (byteFormat, error) {
	switch s {
	case "auto", "string", "hex", "int64", "int32", "float64":
		return byteFormat(s), nil
	}
	return "", fmt.Errorf("unknown format %q: want auto, string, hex, int64, int32 or float64", s)
}

// printable reports whether b is UTF-8 text without control characters.
func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	return strings.IndexFunc(string(b), func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) < 0
}

// number decodes b as the format's number, nil for a text format.
func (f byteFormat) number(b []byte) (any, error) {
	want := map[byteFormat]int{"int64": 8, "int32": 4, "float64": 8}[f]
	if want == 0 {
		return nil, nil
	}
	if len(b) != want {
		return nil, fmt.Errorf("%d bytes are not an %s (%d bytes): try --key-format or --value-format hex", len(b), f, want)
	}
	switch f {
	case "int64":
		return int64(binary.BigEndian.Uint64(b)), nil
	case "int32":
		return int32(binary.BigEndian.Uint32(b)), nil
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

// format renders b for a text line.
func (f byteFormat) format(b []byte) (string, error) {
	n, err := f.number(b)
	switch {
	case err != nil:
		return "", err
	case n != nil:
		return fmt.Sprint(n), nil
	case f == "hex", f == "auto" && !printable(b):
		return "0x" + hex.EncodeToString(b), nil
	}
	return textBytes(b), nil
}

// text renders b for an error message: as format does, or in hex.
func (f byteFormat) text(b []byte) string {
	if s, err := f.format(b); err == nil {
		return s
	}
	return "0x" + hex.EncodeToString(b)
}

// addJSON sets m[name] to b as a JSON string or number, or m[name+"_hex"]
// to its hex.
func (f byteFormat) addJSON(m map[string]any, name string, b []byte) error {
	n, err := f.number(b)
	switch {
	case err != nil:
		return err
	case n != nil:
		m[name] = n
	case f == "hex", f == "auto" && !printable(b), f == "string" && !utf8.Valid(b):
		m[name+"_hex"] = hex.EncodeToString(b)
	default:
		m[name] = string(b)
	}
	return nil
}

// parse encodes a key given on the command line.
func (f byteFormat) parse(s string) ([]byte, error) {
	switch f {
	case "hex":
		b, err := hex.DecodeString(strings.TrimPrefix(s, "0x"))
		if err != nil {
			return nil, fmt.Errorf("not hex: %v", err)
		}
		return b, nil
	case "int64":
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("not an int64: %v", err)
		}
		return binary.BigEndian.AppendUint64(nil, uint64(n)), nil
	case "int32":
		n, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("not an int32: %v", err)
		}
		return binary.BigEndian.AppendUint32(nil, uint32(n)), nil
	case "float64":
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, fmt.Errorf("not a float64: %v", err)
		}
		return binary.BigEndian.AppendUint64(nil, math.Float64bits(x)), nil
	}
	return []byte(s), nil
}
