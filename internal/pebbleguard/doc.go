// Package pebbleguard holds what the state and broker/embedded packages
// wrap around a Pebble DB: a record of the first failure that fails the
// DB, and a compaction scheduler that keeps Open fast.
//
// A Failure records the first error that fails a DB (a failed write or
// sync, a failed flush or compaction, a Fatalf or panic of Pebble). FS
// wraps the DB's vfs.FS so that a failed write or sync fails the DB and
// every later change to the disk but to write-ahead logs is refused;
// Guard turns a panic of Pebble into an error; Logger routes Pebble's
// messages to hclog and turns its Fatalf into a failure; Failure.Wait
// runs Close or Flush unless Pebble cannot be closed any more.
//
// A Gate is a pebble.CompactionScheduler that grants no compaction until
// Open is called, and then behaves like Pebble's default
// ConcurrencyLimitScheduler. Pebble v2.1's Open waits for every
// compaction it starts while opening, so a DB with compaction debt (a
// killed process) would open only after a compaction of a size
// proportional to the DB.
//
// Usage:
//
//	failed := pebbleguard.New(logger, "the log")
//	gate := pebbleguard.NewGate()
//	popts := &pebble.Options{
//		FS:     pebbleguard.FS(fs, failed),
//		Logger: pebbleguard.NewLogger(logger, failed, reflect.TypeFor[Log]().PkgPath()),
//	}
//	popts.Experimental.CompactionScheduler = gate
//	var db *pebble.DB
//	err := pebbleguard.Guard(failed, func() (err error) {
//		db, err = pebble.Open(dir, popts)
//		return err
//	})
//	if err != nil {
//		return err
//	}
//	gate.Open()
package pebbleguard
