package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/eddyflow/eddy/broker"
)

// ErrInUse is returned (wrapped) by Open when a process, this one or
// another, has the log's directory open: its Pebble LOCK file is held. A
// running pipeline on the embedded log holds its log so.
var ErrInUse = errors.New("is in use by another process or Log")

// inUse returns err, the failure of opening Pebble in dir, wrapped with
// ErrInUse when it was the directory's lock that could not be taken: the
// lock is then still held (the probe fails too). A probe that gets the
// lock releases it at once.
func inUse(dir string, fsys vfs.FS, err error) error {
	if _, serr := fsys.Stat(dir); errors.Is(serr, fs.ErrNotExist) {
		return err
	}
	lock, lerr := pebble.LockDirectory(dir, fsys)
	if lerr == nil {
		_ = lock.Close()
		return err
	}
	return fmt.Errorf("log directory %s %w: %w", dir, ErrInUse, err)
}

// DeleteGroup deletes group's committed offsets, in one atomic write, and
// forgets the group, so that members joining it later start every
// partition at its log start. It fails with an error wrapping
// broker.ErrGroupActive, deleting nothing, while the group has members:
// sessions of this Log that are neither closed nor fenced. (Another
// process cannot have members: it would hold the log's directory.) A
// group without members or offsets is deleted without error.
func (l *Log) DeleteGroup(ctx context.Context, group string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if group == "" {
		return errors.New("embedded: delete group: empty group name")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkLocked(); err != nil {
		return err
	}
	g := l.mu.groups[group]
	if g != nil && len(g.members) > 0 {
		return fmt.Errorf("embedded: delete group %s: members alive: %d: %w", group, len(g.members), broker.ErrGroupActive)
	}
	// Offset keys are kind id partition group: the group is the tail of
	// every key, so they are found by a scan of the offsets of every
	// group, which are few (a key per group and partition it consumes).
	it, err := l.db.NewIter(&pebble.IterOptions{
		LowerBound: []byte{kindOffset},
		UpperBound: []byte{kindOffset + 1},
	})
	if err != nil {
		return fmt.Errorf("embedded: delete group %s: %w", group, err)
	}
	b := l.db.NewBatch()
	defer b.Close()
	for valid := it.First(); valid; valid = it.Next() {
		k := it.Key()
		if len(k) == tpKeyLen+len(group) && bytes.Equal(k[tpKeyLen:], []byte(group)) {
			if err := b.Delete(k, nil); err != nil {
				_ = it.Close()
				return fmt.Errorf("embedded: delete group %s: %w", group, err)
			}
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("embedded: delete group %s: %w", group, err)
	}
	if !b.Empty() {
		if err := l.commitLocked(b); err != nil {
			return fmt.Errorf("embedded: delete group %s in log %s: %w", group, l.opts.Dir, err)
		}
	}
	delete(l.mu.groups, group)
	l.logger.Debug("deleted group", "group", group)
	return nil
}
