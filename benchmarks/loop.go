package benchmarks

import "time"

// WA1Loop is the ceiling WA1 is measured against: a hand-written,
// single-goroutine loop over events already in memory, counting each key
// in one-minute tumbling windows in a plain Go map, with no durability at
// all. It follows the same rules as eddy's operator (a window accepts
// events until stream-time reaches its end plus 5 s of grace; it is then
// emitted once and forgotten; late events are dropped), and emits the
// windows still open at the end of input. It returns the results and the
// number of late events.
func WA1Loop(events []WA1Event) (results []WA1Result, late int) {
	const size, grace = int64(time.Minute / time.Millisecond), int64(5 * time.Second / time.Millisecond)
	type window struct {
		key   string
		start int64
	}
	open := map[window]int64{}
	streamTime := int64(-1 << 63)
	// nextEnd is the first window end not closed yet: windows close once
	// stream-time minus grace reaches their end.
	nextEnd := int64(-1 << 63)
	for i := range events {
		e := &events[i]
		streamTime = max(streamTime, e.Timestamp)
		start := e.Timestamp - e.Timestamp%size
		if e.Timestamp < 0 || start+size+grace <= streamTime {
			late++
		} else {
			open[window{e.Key, start}]++
		}
		if closeTime := streamTime - grace; closeTime >= nextEnd {
			for w, n := range open {
				if w.start+size <= closeTime {
					results = append(results, WA1Result{Key: w.key, Start: w.start, Count: n})
					delete(open, w)
				}
			}
			nextEnd = closeTime - closeTime%size + size
		}
	}
	for w, n := range open {
		results = append(results, WA1Result{Key: w.key, Start: w.start, Count: n})
	}
	return results, late
}

// WA1Events returns the n events of WA1 over k keys for seed, in memory,
// without their values (the count does not read them; 10M values would
// take a gigabyte).
func WA1Events(seed uint64, n, k int) []WA1Event {
	events := make([]WA1Event, 0, n)
	WA1(seed, n, k, func(e WA1Event) {
		e.Value = nil
		events = append(events, e)
	})
	return events
}
