package topology

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/eddyflow/eddy/operators"
)

// Builder collects a topology's operators. Misuse is recorded as it
// happens and reported by Validate and Build.
type Builder struct {
	app     string
	nodes   []*node
	names   map[string]*node
	sources map[string]*node // topic -> the node that reads it
	errs    []error
}

// New returns a Builder for the application app. The app name prefixes
// internal topics and is the consumer group; letters, digits, '.', '_'
// and '-' only.
func New(app string) *Builder {
	b := &Builder{app: app, names: map[string]*node{}, sources: map[string]*node{}}
	if !validName.MatchString(app) {
		b.errorf("application name %q must be non-empty and use only letters, digits, '.', '_' and '-'", app)
	}
	return b
}

var validName = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// App returns the application name.
func (b *Builder) App() string { return b.app }

func (b *Builder) errorf(format string, args ...any) {
	b.errs = append(b.errs, fmt.Errorf(format, args...))
}

// Validate reports every misuse of the builder found so far, joined.
func (b *Builder) Validate() error {
	errs := append([]error(nil), b.errs...)
	if !slices.ContainsFunc(b.nodes, func(n *node) bool { return n.kind == kindSource || n.kind == kindTableSource }) {
		errs = append(errs, errors.New("no source: read a topic with StreamFrom or TableFrom"))
	}
	if len(errs) == 0 {
		return nil
	}
	for i, e := range errs {
		errs[i] = fmt.Errorf("topology %s: %w", b.app, e)
	}
	return errors.Join(errs...)
}

// kind of operator node.
type kind string

const (
	kindSource            kind = "source"
	kindTableSource       kind = "table-source"
	kindRepartitionSource kind = "repartition-source"
	kindSink              kind = "sink"
	kindRepartitionSink   kind = "repartition-sink"
	kindProcessor         kind = "processor"
)

// StoreKind tells the layout of a store.
type StoreKind string

const (
	// KeyValueStore holds one row per key.
	KeyValueStore StoreKind = "key-value"
	// WindowStore holds one row per key and window.
	WindowStore StoreKind = "window"
)

// node is an operator of the logical graph.
type node struct {
	id       int
	name     string
	kind     kind
	op       string // what the operator does, for Describe: "filter", "count", ...
	parents  []*node
	children []*node
	topic    string // sources and sinks
	// partitions of a repartition topic, 0 for the default.
	partitions int32
	// lateTopic receives the records a windowed operator drops as late.
	lateTopic string
	store     *storeSpec
	// query reads the node's store, if a queryable table is materialized
	// there.
	query *tableQuery
	// build instantiates the operator for one task, its children built.
	build func(bc *buildCtx) (any, error)
	sub   int
}

type storeSpec struct {
	name   string
	kind   StoreKind
	detail string // window spec, for Describe
}

// newNode adds a node. name is the user's Named option, or "" for a
// generated "<op>-<id>".
func (b *Builder) newNode(k kind, op, name string, parents ...*node) *node {
	n := &node{id: len(b.nodes), kind: k, op: op, parents: parents}
	if name == "" {
		name = op + "-" + strconv.Itoa(n.id)
	} else if !validName.MatchString(name) {
		b.errorf("name %q (%s): use only letters, digits, '.', '_' and '-'", name, op)
	}
	if prev, dup := b.names[name]; dup {
		b.errorf("duplicate name %q: used by %s and %s", name, prev.op, op)
	}
	n.name = name
	b.names[name] = n
	for _, p := range parents {
		p.children = append(p.children, n)
	}
	b.nodes = append(b.nodes, n)
	return n
}

// Option tunes one operator.
type Option func(*options)

type options struct {
	name       string
	partitions int32
	lateTopic  string
	// retention is the Retention option; 0 when not given.
	retention    time.Duration
	hasRetention bool
}

// Named names an operator. A stateful operator's name also names its
// store and internal topics, so naming them keeps state compatible when
// the topology changes.
func Named(name string) Option { return func(o *options) { o.name = name } }

// Partitions sets the partition count of the repartition topic a stateful
// operator reads from after a key change. Default: as many as the
// sub-topology writing it has tasks.
func Partitions(n int32) Option { return func(o *options) { o.partitions = n } }

// LateRecordsTo makes a windowed aggregation write every record it drops
// as late (past its window's end plus grace) to topic, unchanged, besides
// counting it in the engine's LateRecords metric. The stream's key and
// value serdes encode them. Other operators ignore it.
func LateRecordsTo(topic string) Option { return func(o *options) { o.lateTopic = topic } }

// Retention sets how long a windowed aggregation keeps each window in its
// store, where it stays queryable (FetchWindows, the engine's HTTP
// server) after it closes, as Kafka Streams' Materialized.withRetention
// does. A time or sliding window is deleted once stream-time reaches its
// start plus d; a session once its end plus d is before stream-time.
// Closing is unchanged: a retained window is final, never updated nor
// emitted again, and records for it are late. The default keeps a
// window until it closes (size plus grace; sessions: gap plus grace);
// d must be at least that, else Build fails. Sliding windows need more,
// as in Kafka Streams: d must be at least twice the maximum time
// difference plus grace, as a closed window shapes later ones that long;
// they may stay a little longer, as they are deleted in batches (of at
// least max(maxDiff, 1s) of starts). Other operators ignore it.
func Retention(d time.Duration) Option {
	return func(o *options) { o.retention, o.hasRetention = d, true }
}

// retentionMs checks the Retention option of the windowed aggregation
// op named name, whose windows last minimum (size plus grace, or gap
// plus grace, described by what), and returns it in milliseconds, 0 for
// the default. It also returns the Describe text of a retention that is
// not the default, else "".
func (b *Builder) retentionMs(op, name string, o options, minimum int64, what string) (int64, string) {
	if !o.hasRetention {
		return 0, ""
	}
	ms := o.retention.Milliseconds()
	if o.retention < time.Duration(minimum)*time.Millisecond {
		b.errorf("windowed %s %q: retention %s is less than %s, %s", op, name, o.retention, what, time.Duration(minimum)*time.Millisecond)
		return 0, ""
	}
	return ms, ", retention " + o.retention.String()
}

// operatorName returns the name of a stateful operator op: its Named
// option, or "<op>-<id>" with the id the operator's node will get.
func (b *Builder) operatorName(op string, o options) string {
	if o.name != "" {
		return o.name
	}
	return op + "-" + itoa(len(b.nodes))
}

// emitMode describes a windowed aggregation's emission, for Describe.
func emitMode(final bool) string {
	if final {
		return "emit on window close"
	}
	return "emit on update"
}

func applyOptions(opts []Option) options {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o
}

// buildCtx instantiates a sub-topology for one task.
type buildCtx struct {
	ctx    *operators.Context
	stores operators.Stores
	built  map[*node]any
	node   *node
}

// out returns the built children of the node being built.
func out[K, V any](bc *buildCtx) operators.Downstream[K, V] {
	return downstream[K, V](bc, bc.node.children)
}

func downstream[K, V any](bc *buildCtx, nodes []*node) operators.Downstream[K, V] {
	d := make(operators.Downstream[K, V], 0, len(nodes))
	for _, c := range nodes {
		if p, ok := bc.built[c].(operators.Processor[K, V]); ok {
			d = append(d, p)
		}
		// Children in another sub-topology are reached through a topic.
	}
	return d
}

// pass forwards records unchanged: branches and merges.
type pass[K, V any] struct{ out operators.Downstream[K, V] }

func (p *pass[K, V]) Process(ctx *operators.Context, r operators.Record[K, V]) error {
	return p.out.Forward(ctx, r)
}
