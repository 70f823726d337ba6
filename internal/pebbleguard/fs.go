package pebbleguard

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS returns fs wrapped so that a failed write or sync of a file fails f,
// and from then on every change to the disk but to write-ahead logs (see
// IsWAL) is refused: what Pebble writes after a failure (a record after a
// torn one in its MANIFEST, say) could make the directory unreadable,
// while the DB holds every commit that succeeded. Pebble writes its
// write-ahead log in the background and learns of a failure only later,
// at a commit that then panics with its commit pipeline locked, or at a
// log rotation that ends the process (a panic unwinding through an unlock
// of a mutex already unlocked, cockroachdb/pebble#2300); failing the DB
// when the write fails makes the next write return the error instead.
func FS(fs vfs.FS, f *Failure) vfs.FS { return failingFS{FS: fs, failed: f} }

// FSExpendableWAL is FS for a DB whose write-ahead log is not its source
// of truth: the state DB, whose committed changelog offsets travel with
// its state and whose changelogs restore what it lacks. A failed
// write-ahead log write fails f but is reported to Pebble as done, and
// every write-ahead log write and sync after a failure is dropped and
// reported done. Pebble then never holds a write-ahead log error, so a
// log rotation cannot end the process (cockroachdb/pebble#2300), and the
// log on disk stops at the failure: a restart recovers the DB up to
// there, as after a crash, and restores the rest from the changelogs.
// Logs Pebble creates after the failure live in memory only, so the
// failed log stays the last one on disk, whose torn tail Open accepts.
// The DB is useless once f failed; its owner must refuse writes.
func FSExpendableWAL(fs vfs.FS, f *Failure) vfs.FS {
	return failingFS{FS: fs, failed: f, expendableWAL: true}
}

type failingFS struct {
	vfs.FS
	failed        *Failure
	expendableWAL bool
}

func (ffs failingFS) Unwrap() vfs.FS { return ffs.FS }

// fence returns an error if name is not a write-ahead log and the DB failed.
func (ffs failingFS) fence(op, name string) error {
	if ffs.failed.Err() != nil && !IsWAL(name) {
		return &fs.PathError{Op: op, Path: name, Err: ffs.failed.fenced}
	}
	return nil
}

// discarded returns, for a write-ahead log of a failed DB with an
// expendable log, a file in memory that Pebble may write and sync: a new
// log on disk after the failed one would make Open treat the failed one's
// torn tail as corruption, while the last log may end torn.
func (ffs failingFS) discarded(name string) (vfs.File, bool) {
	if !ffs.expendableWAL || !IsWAL(name) || ffs.failed.Err() == nil {
		return nil, false
	}
	f, err := vfs.NewMem().Create(path.Base(name), vfs.WriteCategoryUnspecified)
	return f, err == nil
}

func (ffs failingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if f, ok := ffs.discarded(name); ok {
		return f, nil
	}
	if err := ffs.fence("create", name); err != nil {
		return nil, err
	}
	f, err := ffs.FS.Create(name, category)
	return ffs.wrap(f, name, err)
}

func (ffs failingFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	if err := ffs.fence("open", name); err != nil {
		return nil, err
	}
	f, err := ffs.FS.OpenReadWrite(name, category, opts...)
	return ffs.wrap(f, name, err)
}

func (ffs failingFS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if f, ok := ffs.discarded(newname); ok {
		return f, nil
	}
	if err := ffs.fence("rename", oldname); err != nil {
		return nil, err
	}
	f, err := ffs.FS.ReuseForWrite(oldname, newname, category)
	return ffs.wrap(f, newname, err)
}

func (ffs failingFS) OpenDir(name string) (vfs.File, error) {
	f, err := ffs.FS.OpenDir(name)
	if err != nil {
		return nil, err
	}
	// Creating a write-ahead log syncs its directory: with an expendable
	// log, a failed DB drops those syncs too.
	return failingFile{File: f, name: name, failed: ffs.failed, dropOnFailure: ffs.expendableWAL}, nil
}

func (ffs failingFS) Link(oldname, newname string) error {
	if err := ffs.fence("link", newname); err != nil {
		return err
	}
	return ffs.FS.Link(oldname, newname)
}

func (ffs failingFS) Remove(name string) error {
	if err := ffs.fence("remove", name); err != nil {
		return err
	}
	return ffs.FS.Remove(name)
}

func (ffs failingFS) RemoveAll(name string) error {
	if err := ffs.fence("remove", name); err != nil {
		return err
	}
	return ffs.FS.RemoveAll(name)
}

func (ffs failingFS) Rename(oldname, newname string) error {
	if err := ffs.fence("rename", oldname); err != nil {
		return err
	}
	return ffs.FS.Rename(oldname, newname)
}

func (ffs failingFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := ffs.fence("mkdir", dir); err != nil {
		return err
	}
	return ffs.FS.MkdirAll(dir, perm)
}

func (ffs failingFS) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return failingFile{File: f, name: name, failed: ffs.failed, dropOnFailure: ffs.expendableWAL && IsWAL(name)}, nil
}

// IsWAL reports whether name is a write-ahead log. A failed write-ahead
// log write stops Pebble's writer for good; the fence lets the others
// through, since Pebble turns a failed write-ahead log rotation into the
// end of the process (see FS): a commit under way when something else
// failed completes, and the next one is refused.
func IsWAL(name string) bool { return strings.HasSuffix(name, ".log") }

type failingFile struct {
	vfs.File
	name   string
	failed *Failure
	// dropOnFailure is set for the write-ahead logs and directories of
	// FSExpendableWAL: their failed operations, and all of them once the
	// DB failed, are dropped and reported done.
	dropOnFailure bool
}

// errDropped is what do returns for an operation it dropped.
var errDropped = errors.New("pebbleguard: dropped")

// do runs op on the file unless the DB failed, and fails the DB if op
// fails, naming the operation and the file unless its error does. A
// dropped operation returns errDropped, which the caller reports to
// Pebble as done.
func (f failingFile) do(op string, fn func() error) error {
	if f.failed.Err() != nil {
		if f.dropOnFailure {
			return errDropped
		}
		if !IsWAL(f.name) {
			return &fs.PathError{Op: op, Path: f.name, Err: f.failed.fenced}
		}
	}
	err := fn()
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			f.failed.Set(err)
		} else {
			f.failed.Set(&fs.PathError{Op: op, Path: f.name, Err: err})
		}
		if f.dropOnFailure {
			return errDropped
		}
	}
	return err
}

// done turns a dropped operation's error into success.
func done(err error) error {
	if err == errDropped {
		return nil
	}
	return err
}

func (f failingFile) Write(p []byte) (n int, err error) {
	err = f.do("write", func() (err error) {
		n, err = f.File.Write(p)
		return err
	})
	if err == errDropped {
		return len(p), nil
	}
	return n, err
}

func (f failingFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.do("write", func() (err error) {
		n, err = f.File.WriteAt(p, off)
		return err
	})
	if err == errDropped {
		return len(p), nil
	}
	return n, err
}

func (f failingFile) Preallocate(off, length int64) error {
	return done(f.do("preallocate", func() error { return f.File.Preallocate(off, length) }))
}

func (f failingFile) Sync() error { return done(f.do("sync", f.File.Sync)) }

func (f failingFile) SyncData() error { return done(f.do("sync", f.File.SyncData)) }

func (f failingFile) SyncTo(length int64) (full bool, err error) {
	err = f.do("sync", func() (err error) {
		full, err = f.File.SyncTo(length)
		return err
	})
	if err == errDropped {
		return true, nil
	}
	return full, err
}
