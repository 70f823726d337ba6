package main

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/eddytest"
	"github.com/eddyflow/eddy/examples/internal/exampletest"
	"github.com/eddyflow/eddy/internal/murmur2"
	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// session is a session as the model computes it and as the output and
// the store give it: its first and last click, its visit, and the
// timestamp of its row (its end).
type session struct {
	User       string
	Start, End int64
	Visit      Visit
	Time       int64
}

func compareSessions(a, b session) int {
	return cmp.Or(strings.Compare(a.User, b.User), cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
}

// sessionsModel is the reference of the topology, partition by partition
// of the clicks topic (each a task with its own stream-time, the largest
// click time it has seen). A click at t merges with its user's open
// sessions that end at or after max(t-Gap, close) and start by t+Gap,
// where close is stream-time minus Gap minus Grace; if the merged session
// still ends before close, the click is late and dropped. Then every
// session of the partition ending before close is emitted, once, with its
// final visit, and leaves the store.
type sessionsModel struct {
	partitions int32
	streamTime []int64
	open       map[string][]session // by user
	emitted    []session
	late       int
	bridges    int // clicks that merged two sessions
}

func newSessionsModel(partitions int32) *sessionsModel {
	m := &sessionsModel{partitions: partitions, streamTime: make([]int64, partitions), open: map[string][]session{}}
	for p := range m.streamTime {
		m.streamTime[p] = math.MinInt64
	}
	return m
}

func (m *sessionsModel) partition(user string) int32 {
	return murmur2.Partition([]byte(user), m.partitions)
}

func (m *sessionsModel) click(c Click, t int64) {
	gap, grace := Gap.Milliseconds(), Grace.Milliseconds()
	p := m.partition(c.User)
	m.streamTime[p] = max(m.streamTime[p], t)
	closeAt := m.streamTime[p] - gap - grace
	s := session{User: c.User, Start: t, End: t, Visit: Visit{Clicks: 1, Pages: []string{c.Page}}}
	var kept []session
	merged := 0
	for _, o := range m.open[c.User] {
		if o.End < max(t-gap, closeAt) || o.Start > t+gap {
			kept = append(kept, o)
			continue
		}
		merged++
		s.Start, s.End = min(s.Start, o.Start), max(s.End, o.End)
		s.Visit = Visit{Clicks: s.Visit.Clicks + o.Visit.Clicks, Pages: union(s.Visit.Pages, o.Visit.Pages)}
	}
	if s.End < closeAt {
		m.late++
	} else {
		s.Time = s.End
		m.open[c.User] = append(kept, s)
		if merged >= 2 {
			m.bridges++
		}
	}
	for user, list := range m.open {
		if m.partition(user) != p {
			continue
		}
		m.open[user] = slices.DeleteFunc(list, func(o session) bool {
			if o.End < closeAt {
				m.emitted = append(m.emitted, o)
				return true
			}
			return false
		})
	}
}

// openSessions returns the sessions not emitted yet, of user or of all.
func (m *sessionsModel) openSessions(user string) []session {
	var out []session
	for u, list := range m.open {
		if user == "" || u == user {
			out = append(out, list...)
		}
	}
	slices.SortFunc(out, compareSessions)
	return out
}

func sessionOf(k window.Windowed[string], v Visit, ts int64) session {
	return session{User: k.Key, Start: k.Start, End: k.End, Visit: v, Time: ts}
}

// TestSessionsDriver runs the example's topology through eddytest with
// one and three partitions of clicks and checks the emitted sessions and
// the sessions the store still holds against sessionsModel. A task takes
// its partition's clicks in the order they were piped, so the model
// follows them exactly, with clicks up to 3 minutes out of order
// (merging sessions backwards), clicks that bridge two open sessions,
// and clicks too late for any open session. Between commits the engine
// crashes twice, once soon after a checkpoint of the stores and once
// long after: afterwards every session must still be emitted exactly
// once, with the visit the model computed.
func TestSessionsDriver(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(exampletest.Seed(t), 0))
			b, sessions := build("")
			d := eddytest.New(t, b, eddytest.Options{Partitions: parts, ManualCommit: true})
			in := eddytest.Input(d, "clicks", serde.String(), serde.JSON[Click]())
			out := eddytest.Output(d, "sessions", serde.SessionWindowed(serde.String()), serde.JSON[Visit]())

			m := newSessionsModel(parts)
			ms := func(d time.Duration) int64 { return d.Milliseconds() }
			clickOf := func(user string, ts int64) eddytest.Record[string, Click] {
				return eddytest.Record[string, Click]{Key: user, Value: Click{User: user, Page: pages[r.IntN(len(pages))]}, Time: ts}
			}
			next := map[string]int64{} // each user's next click time
			for _, u := range users {
				next[u] = Start.UnixMilli() + r.Int64N(ms(10*time.Minute))
			}
			top := Start.UnixMilli() // the largest click time piped
			var got []eddytest.Record[window.Windowed[string], Visit]
			for step := range 30 {
				var batch []eddytest.Record[string, Click]
				switch step % 5 {
				case 3: // a click bridging two sessions, more than Gap apart
					u := users[r.IntN(len(users))]
					batch = append(batch, clickOf(u, top), clickOf(u, top+ms(Gap+30*time.Second)), clickOf(u, top+ms(Gap/2+15*time.Second)))
					next[u] = top + ms(Gap+30*time.Second) + r.Int64N(ms(Gap))
				case 4: // a click before its user's open sessions, too late for a new one
					u := users[r.IntN(len(users))]
					st := m.streamTime[m.partition(u)]
					if st == math.MinInt64 {
						continue
					}
					ts := st - ms(Gap+Grace) - 1
					for _, s := range m.open[u] {
						ts = min(ts, s.Start-ms(Gap)-1)
					}
					batch = append(batch, clickOf(u, ts-r.Int64N(ms(10*time.Minute))))
				default: // clicks in time order per user, but for up to 3 minutes
					type arrival struct {
						rec eddytest.Record[string, Click]
						at  int64
					}
					var as []arrival
					for range 1 + r.IntN(30) {
						u := users[r.IntN(len(users))]
						// A user who clicked less than the others stays
						// within 2 minutes of the newest click.
						next[u] = max(next[u], top-ms(2*time.Minute))
						as = append(as, arrival{clickOf(u, next[u]), next[u] + r.Int64N(ms(3*time.Minute))})
						switch k := r.IntN(20); {
						case k < 4: // a pause: a new session
							next[u] += ms(Gap) + 1 + r.Int64N(ms(30*time.Minute))
						case k == 4: // exactly Gap: the same session
							next[u] += ms(Gap)
						default:
							next[u] += ms(5*time.Second) + r.Int64N(ms(Gap-5*time.Second))
						}
					}
					slices.SortStableFunc(as, func(a, b arrival) int { return cmp.Compare(a.at, b.at) })
					for _, a := range as {
						batch = append(batch, a.rec)
					}
				}
				in.PipeRecords(batch...)
				for _, rec := range batch {
					m.click(rec.Value, rec.Time)
					top = max(top, rec.Time)
				}
				switch step {
				case 5: // the next commit checkpoints the stores
					d.AdvanceWallClock(2 * time.Second)
					d.Run()
				case 11, 22: // processed, then lost
					if n := d.Process(); n == 0 {
						t.Fatalf("step %d: nothing processed before the crash", step)
					}
					got = append(got, out.ReadRecords()...) // committed only
					d.Crash()
					d.Restart()
					// How much is restored from the changelogs depends on what
					// the state DB had synced: not checked.
					t.Logf("step %d: restart restored %d changelog records", step, d.Engine().Metrics().RestoredRecords)
					d.Run()
				default:
					d.Run()
				}
				got = append(got, out.ReadRecords()...)
			}
			if m.late == 0 || m.bridges == 0 || len(m.emitted) < 20 || len(m.openSessions("")) == 0 {
				t.Fatalf("input too plain: %d late clicks, %d bridging ones, %d sessions emitted, %d open", m.late, m.bridges, len(m.emitted), len(m.openSessions("")))
			}

			t.Logf("%d sessions emitted, %d open; %d late clicks, %d bridging ones", len(m.emitted), len(m.openSessions("")), m.late, m.bridges)

			// Every session emitted once, when it closed, final.
			var emitted []session
			for _, rec := range got {
				if rec.Tombstone {
					t.Errorf("tombstone for session %+v: sessions emitted on close are never retracted", rec.Key)
					continue
				}
				emitted = append(emitted, sessionOf(rec.Key, rec.Value, rec.Time))
			}
			slices.SortFunc(emitted, compareSessions)
			slices.SortFunc(m.emitted, compareSessions)
			if diff := gocmp.Diff(m.emitted, emitted); diff != "" {
				t.Errorf("emitted sessions (-want +got):\n%s", diff)
			}

			// The store holds the open sessions, and only them.
			var rows []session
			for _, row := range eddytest.Rows(d, sessions) {
				rows = append(rows, sessionOf(row.Key, row.Value, row.Time))
			}
			slices.SortFunc(rows, compareSessions)
			if diff := gocmp.Diff(m.openSessions(""), rows); diff != "" {
				t.Errorf("store rows (-want +got):\n%s", diff)
			}
			for _, u := range append(users[:len(users):len(users)], "nobody") {
				var fetched []session
				for _, row := range eddytest.Windows(d, sessions, u, 0, top+ms(time.Hour)) {
					fetched = append(fetched, sessionOf(row.Key, row.Value, row.Time))
				}
				if diff := gocmp.Diff(m.openSessions(u), fetched); diff != "" {
					t.Errorf("Windows(%q) (-want +got):\n%s", u, diff)
				}
			}
		})
	}
}
