package pebbleguard

import (
	"errors"
	"io/fs"
	"os"
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
func FS(fs vfs.FS, f *Failure) vfs.FS { return failingFS{fs, f} }

type failingFS struct {
	vfs.FS
	failed *Failure
}

func (ffs failingFS) Unwrap() vfs.FS { return ffs.FS }

// fence returns an error if name is not a write-ahead log and the DB failed.
func (ffs failingFS) fence(op, name string) error {
	if ffs.failed.Err() != nil && !IsWAL(name) {
		return &fs.PathError{Op: op, Path: name, Err: ffs.failed.fenced}
	}
	return nil
}

func (ffs failingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
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
	if err := ffs.fence("rename", oldname); err != nil {
		return nil, err
	}
	f, err := ffs.FS.ReuseForWrite(oldname, newname, category)
	return ffs.wrap(f, newname, err)
}

func (ffs failingFS) OpenDir(name string) (vfs.File, error) {
	f, err := ffs.FS.OpenDir(name)
	return ffs.wrap(f, name, err)
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
	return failingFile{f, name, ffs.failed}, nil
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
}

// do runs op on the file unless the DB failed, and fails the DB if op
// fails, naming the operation and the file unless its error does.
func (f failingFile) do(op string, fn func() error) error {
	if f.failed.Err() != nil && !IsWAL(f.name) {
		return &fs.PathError{Op: op, Path: f.name, Err: f.failed.fenced}
	}
	err := fn()
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			f.failed.Set(err)
		} else {
			f.failed.Set(&fs.PathError{Op: op, Path: f.name, Err: err})
		}
	}
	return err
}

func (f failingFile) Write(p []byte) (n int, err error) {
	err = f.do("write", func() (err error) {
		n, err = f.File.Write(p)
		return err
	})
	return n, err
}

func (f failingFile) WriteAt(p []byte, off int64) (n int, err error) {
	err = f.do("write", func() (err error) {
		n, err = f.File.WriteAt(p, off)
		return err
	})
	return n, err
}

func (f failingFile) Preallocate(off, length int64) error {
	return f.do("preallocate", func() error { return f.File.Preallocate(off, length) })
}

func (f failingFile) Sync() error { return f.do("sync", f.File.Sync) }

func (f failingFile) SyncData() error { return f.do("sync", f.File.SyncData) }

func (f failingFile) SyncTo(length int64) (full bool, err error) {
	err = f.do("sync", func() (err error) {
		full, err = f.File.SyncTo(length)
		return err
	})
	return full, err
}
