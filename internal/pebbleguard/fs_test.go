package pebbleguard

import (
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/hashicorp/go-hclog"
)

// TestFSExpendableWAL checks what a DB with an expendable write-ahead log
// sees of a failed write: the write reported done and the DB failed;
// then log writes and syncs, directory syncs and new logs reported done
// but kept off the disk, so the failed log stays the last one there;
// everything else refused.
func TestFSExpendableWAL(t *testing.T) {
	mem := vfs.NewMem()
	if err := mem.MkdirAll("db", 0o755); err != nil {
		t.Fatal(err)
	}
	// Fail the second write to 000001.log.
	writes := 0
	inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
		if op.Kind == errorfs.OpFileWrite && op.Path == "db/000001.log" {
			writes++
			if writes == 2 {
				return errorfs.ErrInjected
			}
		}
		return nil
	})
	f := New(hclog.NewNullLogger(), "the test DB")
	gfs := FSExpendableWAL(errorfs.Wrap(mem, inj), f)

	wal, err := gfs.Create("db/000001.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range []string{"one", "two", "three"} {
		n, err := wal.Write([]byte(p))
		if err != nil || n != len(p) {
			t.Fatalf("write %d: %d, %v; want %d, nil", i, n, err, len(p))
		}
	}
	if err := wal.Sync(); err != nil {
		t.Fatalf("sync after the failure: %v, want nil", err)
	}
	if err := f.Err(); !errors.Is(err, errorfs.ErrInjected) {
		t.Fatalf("Failure.Err() = %v, want the injected write error", err)
	}
	next, err := gfs.Create("db/000002.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatalf("create a log after the failure: %v", err)
	}
	if _, err := next.Write([]byte("four")); err != nil {
		t.Fatal(err)
	}
	dir, err := gfs.OpenDir("db")
	if err != nil {
		t.Fatal(err)
	}
	if err := dir.Sync(); err != nil {
		t.Fatalf("directory sync after the failure: %v, want nil", err)
	}
	if _, err := gfs.Create("db/000003.sst", vfs.WriteCategoryUnspecified); err == nil {
		t.Fatalf("create an sstable after the failure: %v, want an error", err)
	}
	names, err := mem.List("db")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(names, []string{"000001.log"}) {
		t.Errorf("files on disk: %v, want only the failed log", names)
	}
	rf, err := mem.Open("db/000001.log")
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	data, err := io.ReadAll(rf)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "one" {
		t.Errorf("the failed log holds %q, want %q: nothing after the failure", data, "one")
	}
}
