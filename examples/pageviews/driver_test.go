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

// The topology's windows: one minute, 10 s of grace, counted in 4
// partitions (topology.Partitions(4)), each with its own stream-time.
const (
	windowMs        = int64(60_000)
	graceMs         = int64(10_000)
	retentionMs     = int64(time.Hour / time.Millisecond) // topology.Retention(time.Hour)
	countPartitions = 4
)

// regionWindow is a window of a region's counts, as the model computes
// it and as the output and the store give it: the count and the newest
// view's time.
type regionWindow struct {
	Region      string
	Start       int64
	Count, Time int64
}

func compareWindows(a, b regionWindow) int {
	return cmp.Or(cmp.Compare(a.Start, b.Start), strings.Compare(a.Region, b.Region), cmp.Compare(a.Count, b.Count))
}

// viewsModel is the reference of the topology: views without a region
// are dropped; each view is counted in its region's one-minute window
// unless stream-time (the largest view time of the region's partition of
// the repartition topic) is at or past the window's end plus grace, when
// the view is late and dropped; a window is emitted once, with its final
// count, when stream-time reaches its end plus grace, and leaves the
// store once stream-time reaches its start plus the retention.
type viewsModel struct {
	streamTime [countPartitions]int64
	open       map[regionWindow]regionWindow // by region and start; Count, Time zero
	retained   map[regionWindow]regionWindow // closed, still stored; keyed as open
	emitted    []regionWindow
	late       int
	expired    int // retained windows deleted
}

func newViewsModel() *viewsModel {
	m := &viewsModel{open: map[regionWindow]regionWindow{}, retained: map[regionWindow]regionWindow{}}
	for p := range m.streamTime {
		m.streamTime[p] = math.MinInt64
	}
	return m
}

func partitionOf(region string) int32 { return murmur2.Partition([]byte(region), countPartitions) }

// add processes a view at ts and reports whether it was late.
func (m *viewsModel) add(v PageView, ts int64) (late bool) {
	if v.Region == "" {
		return false
	}
	p := partitionOf(v.Region)
	m.streamTime[p] = max(m.streamTime[p], ts)
	closeAt := m.streamTime[p] - graceMs
	start := ts - ts%windowMs
	if start+windowMs <= closeAt {
		m.late++
		late = true
	} else {
		k := regionWindow{Region: v.Region, Start: start}
		w := m.open[k]
		w.Region, w.Start, w.Count, w.Time = v.Region, start, w.Count+1, max(w.Time, ts)
		m.open[k] = w
	}
	for k, w := range m.open {
		if partitionOf(k.Region) == p && k.Start+windowMs <= closeAt {
			m.emitted = append(m.emitted, w)
			delete(m.open, k)
			m.retained[k] = w
		}
	}
	for k := range m.retained {
		if partitionOf(k.Region) == p && k.Start+retentionMs <= m.streamTime[p] {
			delete(m.retained, k)
			m.expired++
		}
	}
	return late
}

// storedWindows returns the windows the store holds, open or retained,
// sorted.
func (m *viewsModel) storedWindows(region string) []regionWindow {
	var ws []regionWindow
	for _, w := range m.open {
		if region == "" || w.Region == region {
			ws = append(ws, w)
		}
	}
	for _, w := range m.retained {
		if region == "" || w.Region == region {
			ws = append(ws, w)
		}
	}
	slices.SortFunc(ws, compareWindows)
	return ws
}

// TestPageviewsDriver runs the example's topology through eddytest with
// one and three partitions of views (the counting sub-topology has four)
// and checks the emitted windows and the windows the store still holds
// against viewsModel. The views come in batches with up to 9 s of
// disorder, below the grace, so that no view of a batch is late whatever
// order the partitions' tasks take them in; between batches single views
// are piped on their own, some late (in the last window closed in their
// region's partition), some in the first window still open. Between
// commits the engine crashes twice, once soon after a checkpoint of the
// stores and once long after, with views processed but not committed in
// both sub-topologies: afterwards every window must still be emitted
// exactly once, with the count of the views the model counted.
func TestPageviewsDriver(t *testing.T) {
	for _, parts := range []int32{1, 3} {
		t.Run(fmt.Sprintf("partitions=%d", parts), func(t *testing.T) {
			r := rand.New(rand.NewPCG(exampletest.Seed(t), 0))
			b, counts := build("")
			d := eddytest.New(t, b, eddytest.Options{Partitions: parts, ManualCommit: true})
			in := eddytest.Input(d, "views", serde.String(), serde.JSON[PageView]())
			out := eddytest.Output(d, "views-per-region", serde.Windowed(serde.String(), windowMs), serde.Int64())
			const rekeyed = "pageviews-views-per-region-repartition"
			desc, err := d.Engine().Log().DescribeTopics(t.Context(), rekeyed)
			if err != nil {
				t.Fatal(err)
			}
			if n := desc[rekeyed].Partitions; n != countPartitions {
				t.Fatalf("%s has %d partitions, want the %d of topology.Partitions", rekeyed, n, countPartitions)
			}

			m := newViewsModel()
			newView := func(region string) PageView {
				return PageView{User: fmt.Sprintf("user-%d", r.IntN(100)), Page: fmt.Sprintf("/page/%d", r.IntN(10)), Region: region}
			}
			var got []eddytest.Record[window.Windowed[string], int64]
			edgeLate, edgeOpen := 0, 0
			top := Start.UnixMilli() // the largest view time piped
			for step := range 36 {
				if step%3 == 2 {
					// A single view at the edge of its region's open windows.
					region := regions[r.IntN(len(regions)-1)]
					st := m.streamTime[partitionOf(region)]
					if st == math.MinInt64 {
						continue
					}
					firstOpen := (st-graceMs)/windowMs*windowMs + windowMs // the first window end not closed
					ts := firstOpen - windowMs + r.Int64N(min(windowMs, st-(firstOpen-windowMs)+1))
					if step%2 == 0 {
						ts = firstOpen - 2*windowMs + r.Int64N(windowMs) // in the last closed window
					}
					v := newView(region)
					in.Pipe(v.User, v, ts)
					if m.add(v, ts) {
						edgeLate++
					} else {
						edgeOpen++
					}
					d.Run()
					got = append(got, out.ReadRecords()...)
					continue
				}
				// A batch: views within [top-4s, top+5s) after a jump of top.
				top += r.Int64N(40_000)
				if step == 30 {
					// Past the retention of the older windows so far, not
					// of the last few minutes'.
					top += retentionMs - 5*windowMs
				}
				batch := make([]eddytest.Record[string, PageView], 1+r.IntN(25))
				for i := range batch {
					v := newView(regions[r.IntN(len(regions))])
					batch[i] = eddytest.Record[string, PageView]{Key: v.User, Value: v, Time: top - 4000 + r.Int64N(9000)}
				}
				in.PipeRecords(batch...)
				for _, rec := range batch {
					if m.add(rec.Value, rec.Time) {
						t.Fatalf("step %d: a view of a batch at %d is late: the batch's order would matter", step, rec.Time)
					}
					top = max(top, rec.Time)
				}
				switch step {
				case 4: // the next commit checkpoints the stores
					d.AdvanceWallClock(2 * time.Second)
					d.Run()
				case 9, 24: // views re-keyed and committed, not counted yet
					d.Process()
					d.Commit()
				case 10, 25: // both sub-topologies processed, then lost
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
			if edgeLate == 0 || edgeOpen == 0 || len(m.emitted) < 20 || len(m.open) == 0 || m.expired == 0 || len(m.retained) == 0 {
				t.Fatalf("input too plain: %d late and %d open edge views, %d windows emitted, %d open, %d expired, %d retained",
					edgeLate, edgeOpen, len(m.emitted), len(m.open), m.expired, len(m.retained))
			}

			// Every window emitted once, when it closed, with its final count.
			var emitted []regionWindow
			for _, rec := range got {
				if rec.Key.End != rec.Key.Start+windowMs {
					t.Errorf("output window %+v: want %d ms long", rec.Key, windowMs)
				}
				emitted = append(emitted, regionWindow{rec.Key.Key, rec.Key.Start, rec.Value, rec.Time})
			}
			slices.SortFunc(emitted, compareWindows)
			slices.SortFunc(m.emitted, compareWindows)
			if diff := gocmp.Diff(m.emitted, emitted); diff != "" {
				t.Errorf("emitted windows (-want +got):\n%s", diff)
			}

			// The store holds the windows still open and the closed ones within
			// their retention, and only them.
			var rows []regionWindow
			for _, row := range eddytest.Rows(d, counts) {
				rows = append(rows, regionWindow{row.Key.Key, row.Key.Start, row.Value, row.Time})
			}
			slices.SortFunc(rows, compareWindows)
			if diff := gocmp.Diff(m.storedWindows(""), rows); diff != "" {
				t.Errorf("store rows (-want +got):\n%s", diff)
			}
			for _, region := range append(regions[:len(regions)-1:len(regions)-1], "nowhere") {
				var fetched []regionWindow
				for _, row := range eddytest.Windows(d, counts, region, 0, top+windowMs) {
					fetched = append(fetched, regionWindow{row.Key.Key, row.Key.Start, row.Value, row.Time})
				}
				if diff := gocmp.Diff(m.storedWindows(region), fetched); diff != "" {
					t.Errorf("Windows(%q) (-want +got):\n%s", region, diff)
				}
			}
		})
	}
}
