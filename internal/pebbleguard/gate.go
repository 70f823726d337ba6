package pebbleguard

import (
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// grantInterval is how often a Gate samples
// DBForCompaction.GetAllowedWithoutPermission, as Pebble's
// ConcurrencyLimitScheduler does: flushes, which can raise it, are not
// otherwise visible to the scheduler.
const grantInterval = 100 * time.Millisecond

// Gate is a pebble.CompactionScheduler that grants no compaction until
// Open is called, and then behaves like Pebble's ConcurrencyLimitScheduler:
// at most DBForCompaction.GetAllowedWithoutPermission compactions run at
// once; a waiting one is granted when one finishes, on
// UpdateGetAllowedWithoutPermission, and every 100 ms.
//
// Pebble v2.1's Open waits for every compaction it starts while opening
// (scanObsoleteFiles waits while compactions run, and the flush of the
// replayed write-ahead log triggers one), so a DB with compaction debt
// would open only after a compaction of a size proportional to the DB.
// Fixed upstream by cockroachdb/pebble#5431, in no v2 release. Open must
// not need a compaction to finish: true of DBs created at
// pebble.FormatNewest, whose Open ratchets no format major version.
//
// A Gate serves one pebble.Open: set it as
// Options.Experimental.CompactionScheduler, and call Open once pebble.Open
// returned the DB. Its granting goroutine starts in Open, so a failed
// pebble.Open (which never calls Unregister) leaves nothing behind; it
// stops in Unregister, which the DB's Close calls. Safe for concurrent use.
type Gate struct {
	poke chan struct{}
	stop chan struct{}
	done chan struct{}

	mu struct {
		sync.Mutex
		// db is set by Register, before any other call of the DB.
		db pebble.DBForCompaction
		// open is set by Open; unregistered by Unregister. Each goes
		// from false to true once.
		open         bool
		unregistered bool
		// started is whether Open started the granting goroutine.
		started bool
		// granting serializes granting between Done and the granting
		// goroutine, and lets Unregister wait for the one under way:
		// it runs without mu, calling into the DB.
		granting     bool
		grantingDone *sync.Cond
		running      int
	}
}

var _ pebble.CompactionScheduler = (*Gate)(nil)
var _ pebble.CompactionGrantHandle = (*Gate)(nil)

// NewGate returns a closed Gate.
func NewGate() *Gate {
	g := &Gate{
		poke: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	g.mu.grantingDone = sync.NewCond(&g.mu.Mutex)
	return g
}

// Open lets compactions run, and starts the goroutine that grants the
// compactions the DB asked for while the gate was closed. Call it after
// pebble.Open returned; later calls do nothing.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.mu.open || g.mu.unregistered || g.mu.db == nil {
		return
	}
	g.mu.open = true
	g.mu.started = true
	go g.granter()
	g.pokeGranter()
}

// Register implements pebble.CompactionScheduler.
func (g *Gate) Register(_ int, db pebble.DBForCompaction) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.mu.db = db
}

// Unregister implements pebble.CompactionScheduler: once it returns, the
// Gate calls no method of the DB any more. The DB calls it from Close,
// without holding its locks.
func (g *Gate) Unregister() {
	g.mu.Lock()
	g.mu.unregistered = true
	// Once granting is false, no more granting happens: every grant
	// checks unregistered first.
	for g.mu.granting {
		g.mu.grantingDone.Wait()
	}
	started := g.mu.started
	g.mu.Unlock()
	if started {
		close(g.stop)
		<-g.done
	}
}

// TrySchedule implements pebble.CompactionScheduler. Called by the DB with
// its mutex held; GetAllowedWithoutPermission takes none of the DB's.
func (g *Gate) TrySchedule() (bool, pebble.CompactionGrantHandle) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.mu.open || g.mu.unregistered {
		return false, nil
	}
	if g.mu.db.GetAllowedWithoutPermission() > g.mu.running {
		g.mu.running++
		return true, g
	}
	return false, nil
}

// UpdateGetAllowedWithoutPermission implements pebble.CompactionScheduler:
// the granting goroutine looks at once.
func (g *Gate) UpdateGetAllowedWithoutPermission() { g.pokeGranter() }

// Started implements pebble.CompactionGrantHandle.
func (g *Gate) Started() {}

// MeasureCPU implements pebble.CompactionGrantHandle.
func (g *Gate) MeasureCPU(pebble.CompactionGoroutineKind) {}

// CumulativeStats implements pebble.CompactionGrantHandle.
func (g *Gate) CumulativeStats(pebble.CompactionGrantHandleStats) {}

// Done implements pebble.CompactionGrantHandle: a compaction finished, so
// a waiting one may start. The DB calls it without holding its locks.
func (g *Gate) Done() {
	g.mu.Lock()
	g.mu.running--
	g.tryGrantLockedAndUnlock()
}

func (g *Gate) pokeGranter() {
	select {
	case g.poke <- struct{}{}:
	default:
	}
}

// tryGrantLockedAndUnlock grants waiting compactions up to the limit. It
// is called with mu held and returns with it released.
func (g *Gate) tryGrantLockedAndUnlock() {
	defer g.mu.Unlock()
	for g.mu.granting {
		g.mu.grantingDone.Wait()
	}
	if !g.mu.open || g.mu.unregistered {
		return
	}
	db := g.mu.db
	n := db.GetAllowedWithoutPermission() - g.mu.running
	if n <= 0 {
		return
	}
	g.mu.granting = true
	// Without mu: GetWaitingCompaction and Schedule take the DB's mutex,
	// which is ordered before mu (the DB holds it calling TrySchedule).
	g.mu.Unlock()
	for ; n > 0; n-- {
		if waiting, _ := db.GetWaitingCompaction(); !waiting {
			break
		}
		if !db.Schedule(g) {
			break
		}
		g.mu.Lock()
		g.mu.running++
		g.mu.Unlock()
	}
	g.mu.Lock()
	g.mu.granting = false
	g.mu.grantingDone.Broadcast()
}

// granter grants waiting compactions when poked and every grantInterval,
// until Unregister.
func (g *Gate) granter() {
	defer close(g.done)
	t := time.NewTicker(grantInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-g.poke:
		case <-g.stop:
			return
		}
		g.mu.Lock()
		g.tryGrantLockedAndUnlock()
	}
}
