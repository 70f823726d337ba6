// Package cmalloc returns to the operating system the memory that C's
// allocator keeps after Pebble freed it. Pebble allocates its block caches
// and memtables with C's malloc (through cgo, outside the Go heap).
//
// glibc's malloc gives threads arenas of their own, up to eight per CPU,
// and keeps what is freed in them for later allocations. Pebble allocates
// a cache block on the thread that reads it and frees it on the thread
// that evicts it, so freed blocks pile up in arenas that allocate little:
// measured, a state DB whose Pebble held 59 MiB of C memory (its 57 MiB
// cache) grew to 118 MiB resident, and kept growing. malloc_trim hands
// the free pages of every arena back: called every second, it brought the
// C memory of the memory benchmark (3M keys, a 128 MiB budget, Pebble
// caches of 83 MiB) from 140 MiB down to 98 MiB.
package cmalloc

import (
	"sync"
	"time"
)

// Trim returns the free memory of C's allocator to the operating system,
// and reports whether it could: only on Linux with cgo and glibc.
func Trim() bool { return trim() }

// TrimInterval is how often StartTrimming trims.
const TrimInterval = time.Second

var trimmer struct {
	sync.Mutex
	users int
	stop  chan struct{}
	done  chan struct{}
}

// StartTrimming trims every TrimInterval until every caller has called the
// stop function it returned (once). Callers share one goroutine. Where
// Trim cannot trim, it starts nothing.
func StartTrimming() (stop func()) {
	if !Trim() {
		return func() {}
	}
	t := &trimmer
	t.Lock()
	defer t.Unlock()
	if t.users == 0 {
		t.stop, t.done = make(chan struct{}), make(chan struct{})
		go trimLoop(t.stop, t.done)
	}
	t.users++
	return sync.OnceFunc(func() {
		t.Lock()
		defer t.Unlock()
		if t.users--; t.users == 0 {
			close(t.stop)
			<-t.done
		}
	})
}

func trimLoop(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(TrimInterval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			trim()
		}
	}
}
