package pebbleguard

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/go-hclog"
)

// ErrAbandoned wraps the failure when Pebble could not be closed (see
// Failure.Wait).
var ErrAbandoned = errors.New("abandoned after a fatal error")

// Failure records the first error that fails a DB. Safe for concurrent
// use: Pebble's goroutines set it while holding Pebble's locks.
type Failure struct {
	logger hclog.Logger
	what   string
	// fenced is what FS returns once the DB failed.
	fenced error
	err    atomic.Pointer[error]
	// abandoned is closed when Pebble cannot be closed any more: a job of
	// its own ended in Fatalf, or a panic left its commit pipeline locked.
	// Pebble's Close, which waits for both, would wait forever.
	abandoned chan struct{}
	once      sync.Once
}

// New returns a Failure that logs the failure, when it is set, to logger.
// what names the DB in the log line and in errors: "the log", "the state
// DB".
func New(logger hclog.Logger, what string) *Failure {
	return &Failure{
		logger:    logger,
		what:      what,
		fenced:    fmt.Errorf("refused: %s failed before", what),
		abandoned: make(chan struct{}),
	}
}

// Set records err unless a failure was recorded before.
func (f *Failure) Set(err error) {
	if f.err.CompareAndSwap(nil, &err) {
		// Logged as well as returned: it may happen in the background,
		// long before a call returns it.
		f.logger.Error(f.what+" failed and must be reopened", "error", err)
	}
}

// Err returns the failure, or nil.
func (f *Failure) Err() error {
	if p := f.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Abandon records that Pebble cannot be closed any more.
func (f *Failure) Abandon() { f.once.Do(func() { close(f.abandoned) }) }

// Wait returns fn's error, a call that waits for Pebble's jobs (Close,
// Flush), unless Pebble cannot be closed any more, before fn starts or
// while it runs: then it leaves fn's goroutine to the end of the process
// and returns the failure, wrapped in ErrAbandoned.
func (f *Failure) Wait(fn func() error) error {
	select {
	case <-f.abandoned:
		return fmt.Errorf("%w: %w", ErrAbandoned, f.Err())
	default:
	}
	done := make(chan error, 1)
	go func() { done <- fn() }()
	select {
	case err := <-done:
		return err
	case <-f.abandoned:
		return fmt.Errorf("%w: %w", ErrAbandoned, f.Err())
	}
}

// Guard calls fn, a call into Pebble, and turns a panic of Pebble (its
// Fatalf, or a panic with an error, such as a failed write-ahead log write)
// into fn's error, failing the DB. Other panics go on.
func Guard(f *Failure, fn func() error) (err error) {
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		perr, ok := r.(error)
		var rerr runtime.Error
		if !ok || errors.As(perr, &rerr) {
			panic(r)
		}
		var fe *fatalError
		if !errors.As(perr, &fe) {
			// Pebble panics so in its commit pipeline, which it leaves
			// locked.
			perr = fmt.Errorf("pebble panicked: %w", perr)
			f.Abandon()
		}
		f.Set(perr)
		err = perr
	}()
	return fn()
}

// fatalError is an error Pebble cannot recover from.
type fatalError struct {
	msg   string
	cause error
}

func (e *fatalError) Error() string { return e.msg }
func (e *fatalError) Unwrap() error { return e.cause }

// Logger routes Pebble's messages to hclog and turns its Fatalf into a
// failure. Pebble's informational messages (flushes, compactions) are
// noise at the engine's level, so they go to debug. Safe for concurrent
// use.
type Logger struct {
	l      hclog.Logger
	failed *Failure
	caller string
}

var _ pebble.Logger = (*Logger)(nil)

// NewLogger returns a Logger that logs to l and fails f. callerPkg is the
// import path of the package that calls into Pebble, such as
// reflect.TypeFor[DB]().PkgPath(): Fatalf panics only when called under
// one of its functions.
func NewLogger(l hclog.Logger, f *Failure, callerPkg string) *Logger {
	return &Logger{l: l, failed: f, caller: callerPkg + "."}
}

// Infof logs at debug level.
func (p *Logger) Infof(format string, args ...any) {
	if p.l.IsDebug() {
		p.l.Debug(fmt.Sprintf(format, args...))
	}
}

// Errorf logs at error level.
func (p *Logger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

// Fatalf is called by Pebble when it cannot go on: a write-ahead log or
// MANIFEST write that failed, a broken invariant. Pebble expects it not to
// return. It fails the DB. Called by the caller's package (through Guard),
// it then panics with an error that Guard turns into the call's error.
// Called by one of Pebble's own goroutines (a flush or compaction), where a
// panic would end the process, it ends that goroutine with runtime.Goexit:
// its deferred calls release Pebble's locks, so that reads in flight
// finish; the DB refuses later writes with the error, and FS keeps Pebble
// from changing anything on disk any more. The job never finishes, so
// Failure.Wait abandons the DB.
func (p *Logger) Fatalf(format string, args ...any) {
	fe := &fatalError{msg: fmt.Sprintf(format, args...)}
	for _, a := range args {
		if err, ok := a.(error); ok {
			fe.cause = err
			break
		}
	}
	p.failed.Set(fe)
	if calledFrom(p.caller) {
		panic(fe)
	}
	p.failed.Abandon()
	runtime.Goexit()
}

// calledFrom reports whether the calling goroutine runs a function whose
// name starts with pkg: whether Pebble was called by that package rather
// than running one of its own goroutines.
func calledFrom(pkg string) bool {
	pcs := make([]uintptr, 128)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasPrefix(f.Function, pkg) {
			return true
		}
		if !more {
			return false
		}
	}
}
