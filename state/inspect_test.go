package state

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// writeInspectDB writes, in a DB in dir, key-value stores "a" (partitions
// 0 and 2) and "ab" (a name "a" is a prefix of), a window store "w", and
// a store "nooffset" committed without a changelog offset; then it leaves
// writes staged and deferred that must not show. It returns the open DB.
func writeInspectDB(t *testing.T, dir string, disableWAL bool) *DB {
	t.Helper()
	db, err := Open(Options{Dir: dir, DisableWAL: disableWAL})
	if err != nil {
		t.Fatal(err)
	}
	put := func(kv *KV, kvs ...string) {
		for i := 0; i < len(kvs); i += 2 {
			must(t, kv.Put([]byte(kvs[i]), []byte(kvs[i+1])))
		}
	}
	t0 := db.NewTask("0_0")
	a0, err := t0.KV("a", 0, StoreConfig{CacheBytes: 1 << 10})
	must(t, err)
	ab, err := t0.KV("ab", 0, StoreConfig{})
	must(t, err)
	w, err := t0.Window("w", 0, StoreConfig{})
	must(t, err)
	put(a0, "k1", "a0-1", "k2", "a0-2", "k3", "a0-3")
	must(t, a0.PutMeta("streamtime", []byte("meta")))
	put(ab, "k1", "ab-1")
	must(t, w.Put([]byte("x"), -5, []byte("w-5")))
	must(t, w.Put([]byte("x"), 10, []byte("w10")))
	commit(t, t0, map[string]int64{"a": 3, "ab": 1, "w": 2})
	// Staged, then deferred: committed to the changelog, not to the DB.
	put(a0, "k4", "deferred")
	must(t, t0.Flush())
	must(t, t0.CommitDeferred(map[string]int64{"a": 4}))
	put(a0, "k5", "staged")
	must(t, t0.Close())

	t2 := db.NewTask("0_2")
	a2, err := t2.KV("a", 2, StoreConfig{})
	must(t, err)
	noff, err := t2.KV("nooffset", 2, StoreConfig{})
	must(t, err)
	put(a2, "k1", "a2-1")
	put(noff, "k", "v")
	commit(t, t2, map[string]int64{"a": 7})
	must(t, t2.Close())
	must(t, db.SetStoreKind("a", "key-value"))
	must(t, db.SetStoreKind("w", "window"))
	must(t, db.SetStoreKind("unused", "session"))
	return db
}

func TestInspectStores(t *testing.T) {
	for _, disableWAL := range []bool{false, true} {
		t.Run(map[bool]string{false: "WAL", true: "no WAL"}[disableWAL], func(t *testing.T) {
			dir := t.TempDir()
			live := writeInspectDB(t, dir, disableWAL)
			want := []StoreInfo{
				{Name: "a", Partition: 0, Kind: "key-value", Offset: 3, HasOffset: true},
				{Name: "a", Partition: 2, Kind: "key-value", Offset: 7, HasOffset: true},
				{Name: "ab", Partition: 0, Offset: 1, HasOffset: true},
				{Name: "nooffset", Partition: 2},
				{Name: "w", Partition: 0, Kind: "window", Offset: 2, HasOffset: true},
			}
			ignoreSize := cmpopts.IgnoreFields(StoreInfo{}, "DiskBytes")
			got, err := live.Stores()
			must(t, err)
			if diff := cmp.Diff(want, got, ignoreSize); diff != "" {
				t.Errorf("Stores of the open DB (-want +got):\n%s", diff)
			}
			must(t, live.Close())

			db, err := OpenReadOnly(dir)
			must(t, err)
			defer db.Close()
			got, err = db.Stores()
			must(t, err)
			if diff := cmp.Diff(want, got, ignoreSize); diff != "" {
				t.Errorf("Stores read-only (-want +got):\n%s", diff)
			}
			kinds, err := db.StoreKinds()
			must(t, err)
			if diff := cmp.Diff(map[string]string{"a": "key-value", "w": "window", "unused": "session"}, kinds); diff != "" {
				t.Errorf("StoreKinds (-want +got):\n%s", diff)
			}
		})
	}
}

func TestInspectReadStore(t *testing.T) {
	dir := t.TempDir()
	must(t, writeInspectDB(t, dir, false).Close())
	db, err := OpenReadOnly(dir)
	must(t, err)
	defer db.Close()
	b := func(s string) []byte {
		if s == "-" {
			return nil
		}
		return []byte(s)
	}
	tests := []struct {
		store     string
		partition int32
		from, to  string // "-": unbounded
		want      []string
	}{
		// The deferred k4 and staged k5 never reached the DB; the meta
		// entry is not data.
		{"a", 0, "-", "-", []string{"k1=a0-1", "k2=a0-2", "k3=a0-3"}},
		{"a", 0, "k2", "-", []string{"k2=a0-2", "k3=a0-3"}},
		{"a", 0, "-", "k2", []string{"k1=a0-1"}},
		{"a", 0, "k2", "k3", []string{"k2=a0-2"}},
		{"a", 0, "k3", "k2", nil},
		{"a", 2, "-", "-", []string{"k1=a2-1"}},
		{"a", 1, "-", "-", nil},
		{"ab", 0, "-", "-", []string{"k1=ab-1"}},
		{"missing", 0, "-", "-", nil},
	}
	for _, tc := range tests {
		var got []string
		err := db.ReadStore(tc.store, tc.partition, b(tc.from), b(tc.to), func(k, v []byte) error {
			got = append(got, string(k)+"="+string(v))
			return nil
		})
		must(t, err)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ReadStore(%s/%d, %s, %s) (-want +got):\n%s", tc.store, tc.partition, tc.from, tc.to, diff)
		}
	}
	// Window keys come as stored: start then key, by start.
	var starts []int64
	must(t, db.ReadStore("w", 0, nil, nil, func(k, v []byte) error {
		start, key, err := DecodeWindowKey(k)
		if err != nil || string(key) != "x" {
			t.Errorf("window key %x: %q, %v", k, key, err)
		}
		starts = append(starts, start)
		return nil
	}))
	if !slices.Equal(starts, []int64{-5, 10}) {
		t.Errorf("window starts %v, want [-5 10]", starts)
	}
	// fn's error stops the read and comes back as is.
	stop := errors.New("stop")
	calls := 0
	if err := db.ReadStore("a", 0, nil, nil, func(k, v []byte) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("ReadStore with a failing fn = %v after %d calls, want stop after 1", err, calls)
	}

	for _, tc := range []struct {
		store, key, want string
		ok               bool
	}{
		{"a", "k2", "a0-2", true},
		{"a", "k4", "", false}, // deferred
		{"a", "k5", "", false}, // staged
		{"ab", "k2", "", false},
	} {
		v, ok, err := db.Get(tc.store, 0, []byte(tc.key))
		must(t, err)
		if string(v) != tc.want || ok != tc.ok {
			t.Errorf("Get(%s, %s) = %q, %v; want %q, %v", tc.store, tc.key, v, ok, tc.want, tc.ok)
		}
	}
}

// TestInspectReadOnly checks that a read-only DB changes nothing on disk
// and refuses writes.
func TestInspectReadOnly(t *testing.T) {
	dir := t.TempDir()
	must(t, writeInspectDB(t, dir, false).Close())
	before := dirState(t, dir)
	db, err := OpenReadOnly(dir)
	must(t, err)
	task := db.NewTask("0_0")
	kv, err := task.KV("a", 0, StoreConfig{})
	must(t, err)
	must(t, kv.Put([]byte("k9"), []byte("v")))
	if err := task.Flush(); err == nil {
		if err := task.Commit(map[string]int64{"a": 9}); err == nil {
			t.Error("Commit on a read-only DB succeeded")
		}
	}
	must(t, task.Close())
	if err := db.SetStoreKind("a", "other"); err == nil {
		t.Error("SetStoreKind on a read-only DB succeeded")
	}
	must(t, db.Close())
	if diff := cmp.Diff(before, dirState(t, dir)); diff != "" {
		t.Errorf("files after a read-only open (-before +after):\n%s", diff)
	}
}

// dirState lists the files of dir with their sizes.
func dirState(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	entries, err := os.ReadDir(dir)
	must(t, err)
	out := map[string]int64{}
	for _, e := range entries {
		fi, err := e.Info()
		must(t, err)
		out[e.Name()] = fi.Size()
	}
	return out
}

func TestInspectOpenErrors(t *testing.T) {
	dir := t.TempDir()
	live := writeInspectDB(t, dir, false)
	_, err := OpenReadOnly(dir)
	wantMsg := "state dir " + dir + " is in use by a running eddy instance (stop it first)"
	if !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), wantMsg) {
		t.Errorf("OpenReadOnly of an open DB = %v, want ErrInUse saying %q", err, wantMsg)
	}
	must(t, live.Close())
	db, err := OpenReadOnly(dir)
	must(t, err)
	// Two read-only opens exclude each other too: Pebble's lock is one.
	if _, err := OpenReadOnly(dir); !errors.Is(err, ErrInUse) {
		t.Errorf("second OpenReadOnly = %v, want ErrInUse", err)
	}
	must(t, db.Close())

	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := OpenReadOnly(missing); !errors.Is(err, ErrNoDB) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("OpenReadOnly of a missing dir = %v, want ErrNoDB", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("OpenReadOnly created %s", missing)
	}
	other := t.TempDir()
	must(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644))
	if _, err := OpenReadOnly(other); !errors.Is(err, ErrNoDB) {
		t.Errorf("OpenReadOnly of a dir without a DB = %v, want ErrNoDB", err)
	}
	if diff := cmp.Diff(map[string]int64{"notes.txt": 1}, dirState(t, other)); diff != "" {
		t.Errorf("OpenReadOnly changed a dir without a DB (-want +got):\n%s", diff)
	}
}

func TestInspectRemove(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	live := writeInspectDB(t, dir, false)
	for name, fn := range map[string]func(string) error{"CheckNotInUse": CheckNotInUse, "Remove": Remove} {
		if err := fn(dir); !errors.Is(err, ErrInUse) {
			t.Errorf("%s of an open DB = %v, want ErrInUse", name, err)
		}
	}
	must(t, live.Close())
	must(t, CheckNotInUse(dir))
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("CheckNotInUse removed the DB: %v", err)
	}
	must(t, Remove(dir))
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Remove: %v, want the dir gone", err)
	}
	must(t, Remove(dir)) // missing: nothing to do
	must(t, CheckNotInUse(dir))

	other := t.TempDir()
	must(t, os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644))
	for name, fn := range map[string]func(string) error{"CheckNotInUse": CheckNotInUse, "Remove": Remove} {
		if err := fn(other); !errors.Is(err, ErrNoDB) {
			t.Errorf("%s of a dir without a DB = %v, want ErrNoDB", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(other, "notes.txt")); err != nil {
		t.Errorf("Remove touched a dir without a DB: %v", err)
	}
}

func TestInspectSetStoreKind(t *testing.T) {
	db := openMem(t)
	must(t, db.SetStoreKind("s", "window"))
	must(t, db.SetStoreKind("s", "window"))
	must(t, db.SetStoreKind("t", ""))
	must(t, db.SetStoreKind("s", "session"))
	kinds, err := db.StoreKinds()
	must(t, err)
	if diff := cmp.Diff(map[string]string{"s": "session", "t": ""}, kinds); diff != "" {
		t.Errorf("StoreKinds (-want +got):\n%s", diff)
	}
	if err := db.SetStoreKind("", "x"); err == nil {
		t.Error("SetStoreKind of an empty name succeeded")
	}
	// Kinds are outside every store's keys: deleting a store keeps them,
	// and they are no store.
	must(t, db.DeleteStore("s", 0))
	stores, err := db.Stores()
	must(t, err)
	if len(stores) != 0 {
		t.Errorf("Stores of a DB with only kinds: %v", stores)
	}
}
