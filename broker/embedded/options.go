package embedded

import (
	"errors"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// Defaults of Options.
const (
	DefaultCleanInterval = time.Minute
	DefaultMaxBatchBytes = 1 << 20
	DefaultCacheBytes    = 32 << 20
	DefaultMemTableBytes = 64 << 20
	DefaultCompactBytes  = 16 << 20
	// DefaultPollRecords is the number of records Poll returns at most when
	// its max argument is not positive.
	DefaultPollRecords = 4096
)

// Options configures a Log. The zero value is valid apart from Dir.
type Options struct {
	// Dir is the directory of the log's Pebble DB, its own, apart from any
	// state DB. Required unless InMemory.
	Dir string
	// InMemory keeps the log in memory: nothing survives Close. For tests.
	InMemory bool
	// FS overrides the filesystem, e.g. with an error-injecting or
	// crashable vfs in tests. nil: the OS filesystem, or vfs.NewMem() with
	// InMemory.
	FS vfs.FS
	// Logger receives the log's and Pebble's messages. Default: a null logger.
	Logger hclog.Logger
	// NoSync makes commits return once written to the operating system,
	// before they are synced to disk. A process crash loses nothing, a
	// machine crash may lose the last commits (never part of one).
	// Default false: every commit is synced (pebble.Sync).
	NoSync bool
	// CleanInterval is how often the background cleaner applies retention
	// and compaction. 0 means DefaultCleanInterval (one minute); a negative
	// value never cleans in the background (call Clean instead).
	CleanInterval time.Duration
	// Now is the clock retention measures record age against.
	// Default: time.Now.
	Now func() time.Time
	// MaxBatchBytes bounds the size of one stored record batch. A commit
	// writes one batch per partition, split in several when the partition's
	// records exceed it. Default DefaultMaxBatchBytes (1 MiB).
	MaxBatchBytes int
	// CacheBytes is the size of Pebble's block cache. Default 32 MiB.
	// Pebble reserves its memtables inside it, evicting blocks to make
	// room: the log's Pebble holds max(CacheBytes, 3*MemTableBytes) of
	// blocks and memtables together (outside the Go heap).
	CacheBytes int64
	// MemTableBytes is the size of one Pebble memtable. Default 64 MiB.
	// Pebble holds up to three: two queued (writes stall when a third
	// would be needed, until a flush ends) and one kept for reuse; a
	// commit larger than half a memtable becomes one more until flushed.
	MemTableBytes uint64
	// CompactBytes bounds the memory of the key map a compaction of a
	// compacted topic's partition builds (see Clean): about 64 bytes per
	// key, so the default, DefaultCompactBytes (16 MiB), maps 262144 keys.
	// A partition with more keys appended since its last compaction is
	// compacted that far, and the rest at the next Clean.
	CompactBytes int64
	// Compress compresses the log's files with Snappy: less disk, more
	// CPU on every read. Default false, like a Kafka producer's
	// compression.type: on the WA1 benchmark, decompressing the log took
	// 5% of eddy's CPU.
	Compress bool
}

// EnsureDefaults fills in the defaults of unset fields and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	if o.FS == nil {
		if o.InMemory {
			o.FS = vfs.NewMem()
		} else {
			o.FS = vfs.Default
		}
	}
	if o.Dir == "" && o.InMemory {
		o.Dir = "log"
	}
	if o.CleanInterval == 0 {
		o.CleanInterval = DefaultCleanInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = DefaultMemTableBytes
	}
	if o.CompactBytes <= 0 {
		o.CompactBytes = DefaultCompactBytes
	}
	return o
}

// Validate reports options that cannot work.
func (o *Options) Validate() error {
	if o.Dir == "" && !o.InMemory {
		return errors.New("embedded: Options.Dir is required unless InMemory is set")
	}
	return nil
}
