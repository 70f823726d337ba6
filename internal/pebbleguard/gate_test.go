package pebbleguard

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/hashicorp/go-hclog"
)

// debtOptions returns options under which a few flushes leave compactions
// due: small memtables, and L0 compacted from two files on.
func debtOptions(fs vfs.FS) *pebble.Options {
	return &pebble.Options{
		FS:                    fs,
		MemTableSize:          256 << 10,
		L0CompactionThreshold: 2,
		FormatMajorVersion:    pebble.FormatNewest,
		Logger:                NewLogger(hclog.NewNullLogger(), New(hclog.NewNullLogger(), "the DB"), "testing"),
	}
}

// makeDebt writes a DB into dir on fs with l0Files files in L0, which
// compactions never ran on, and a write in its write-ahead log that Open
// flushes, as a killed process leaves it. It returns the number of L0
// files.
func makeDebt(t *testing.T, fs vfs.FS, dir string) int64 {
	t.Helper()
	opts := debtOptions(fs)
	opts.DisableAutomaticCompactions = true
	db, err := pebble.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	value := bytes.Repeat([]byte{'v'}, 100)
	for f := 0; f < 8; f++ {
		b := db.NewBatch()
		for i := 0; i < 1000; i++ {
			// Every flush spans the whole key range, so the files overlap.
			if err := b.Set(fmt.Appendf(nil, "key-%06d-%d", i, f), value, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := db.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Set([]byte("key-unflushed"), value, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	l0 := db.Metrics().Levels[0].TablesCount
	if l0 < 4 {
		t.Fatalf("L0 holds %d files, want at least 4", l0)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return l0
}

// compactionRecorder records the compactions of a DB, and whether one
// began before Open returned.
type compactionRecorder struct {
	opened      atomic.Bool
	earlyBegins atomic.Int32
	begins      atomic.Int32
	ends        atomic.Int32
}

func (r *compactionRecorder) listener() *pebble.EventListener {
	return &pebble.EventListener{
		CompactionBegin: func(pebble.CompactionInfo) {
			r.begins.Add(1)
			if !r.opened.Load() {
				r.earlyBegins.Add(1)
			}
		},
		CompactionEnd: func(pebble.CompactionInfo) { r.ends.Add(1) },
	}
}

// reopen opens the DB in dir with a fresh Gate, and records its
// compactions.
func reopen(t *testing.T, fs vfs.FS, dir string) (*pebble.DB, *Gate, *compactionRecorder) {
	t.Helper()
	rec := &compactionRecorder{}
	gate := NewGate()
	opts := debtOptions(fs)
	opts.EventListener = rec.listener()
	opts.Experimental.CompactionScheduler = gate
	db, err := pebble.Open(dir, opts)
	rec.opened.Store(true)
	if err != nil {
		t.Fatal(err)
	}
	return db, gate, rec
}

func TestGateHoldsCompactionsUntilOpen(t *testing.T) {
	fs := vfs.NewMem()
	l0 := makeDebt(t, fs, "db")
	db, _, rec := reopen(t, fs, "db")
	if n := rec.earlyBegins.Load(); n != 0 {
		t.Errorf("%d compactions began before Open returned, want 0", n)
	}
	// The gate stays shut: the debt is still there.
	time.Sleep(3 * grantInterval)
	if n := rec.begins.Load(); n != 0 {
		t.Errorf("%d compactions began with the gate shut, want 0", n)
	}
	if got := db.Metrics().Levels[0].TablesCount; got < l0 {
		t.Errorf("L0 holds %d files, want at least the %d of before", got, l0)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestGateRunsCompactionsAfterOpen(t *testing.T) {
	fs := vfs.NewMem()
	l0 := makeDebt(t, fs, "db")
	db, gate, rec := reopen(t, fs, "db")
	gate.Open()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := db.Metrics().Levels[0].TablesCount
		if rec.ends.Load() > 0 && got < l0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 5s: %d compactions began, %d ended; L0 holds %d files, want fewer than %d",
				rec.begins.Load(), rec.ends.Load(), got, l0)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGateOpenWithoutRegister checks that a Gate whose pebble.Open failed
// before Register starts no goroutine on Open, and that Unregister returns.
func TestGateOpenWithoutRegister(t *testing.T) {
	g := NewGate()
	g.Open()
	g.mu.Lock()
	started := g.mu.started
	g.mu.Unlock()
	if started {
		t.Error("Open without Register started the granting goroutine")
	}
	g.Unregister() // returns at once
}
