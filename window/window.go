// Package window describes event-time windows: tumbling and hopping windows
// over fixed-size intervals, with a grace period for out-of-order records.
//
// A Spec is data; the operators package computes which windows a record
// falls in and when a window closes, following Kafka Streams' rules:
// a record at t belongs to every window [start, start+size) with start a
// multiple of the advance, start <= t < start+size and start >= 0; a window
// accepts records while end+grace > stream-time.
//
//	w := window.Tumbling(time.Minute).Grace(10 * time.Second)
package window

import (
	"fmt"
	"time"
)

// Kind names the family of a window.
type Kind int

const (
	// KindTumbling windows are fixed-size, gap-less and non-overlapping.
	KindTumbling Kind = iota + 1
	// KindHopping windows are fixed-size and advance by less than their size, so they overlap.
	KindHopping
	// KindSliding windows [start, start+maxDiff], both ends inclusive, exist
	// where records are: see Sliding.
	KindSliding
)

func (k Kind) String() string {
	switch k {
	case KindTumbling:
		return "tumbling"
	case KindHopping:
		return "hopping"
	case KindSliding:
		return "sliding"
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Spec is an immutable window definition. Sizes are kept in milliseconds,
// the resolution of record timestamps.
type Spec struct {
	kind    Kind
	size    int64
	advance int64
	grace   int64
}

// Tumbling returns windows of the given size that follow each other with no
// gap and no overlap: hopping windows whose advance equals their size.
// Grace defaults to zero.
func Tumbling(size time.Duration) Spec {
	ms := size.Milliseconds()
	return Spec{kind: KindTumbling, size: ms, advance: ms}
}

// Hopping returns windows of the given size starting every advance.
func Hopping(size, advance time.Duration) Spec {
	return Spec{kind: KindHopping, size: size.Milliseconds(), advance: advance.Milliseconds()}
}

// Grace returns a copy of s that accepts out-of-order records until
// stream-time reaches a window's end plus d.
func (s Spec) Grace(d time.Duration) Spec {
	s.grace = d.Milliseconds()
	return s
}

// Kind returns the window family.
func (s Spec) Kind() Kind { return s.kind }

// SizeMs returns the window size in milliseconds.
func (s Spec) SizeMs() int64 { return s.size }

// AdvanceMs returns the distance between consecutive window starts in milliseconds.
func (s Spec) AdvanceMs() int64 { return s.advance }

// GraceMs returns the grace period in milliseconds.
func (s Spec) GraceMs() int64 { return s.grace }

// Validate reports a spec that cannot be used.
func (s Spec) Validate() error {
	switch {
	case s.kind == 0:
		return fmt.Errorf("window: zero Spec: use window.Tumbling or window.Hopping")
	case s.kind == KindSliding:
		return s.validateSliding()
	case s.size <= 0:
		return fmt.Errorf("window: %s size must be at least 1ms, got %dms", s.kind, s.size)
	case s.advance <= 0 || s.advance > s.size:
		return fmt.Errorf("window: hopping advance must be in [1ms, size=%dms], got %dms", s.size, s.advance)
	case s.grace < 0:
		return fmt.Errorf("window: grace must not be negative, got %dms", s.grace)
	}
	return nil
}

// String describes the spec, e.g. "tumbling(size=1m0s, grace=10s)".
func (s Spec) String() string {
	d := func(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
	switch s.kind {
	case KindHopping:
		return fmt.Sprintf("hopping(size=%s, advance=%s, grace=%s)", d(s.size), d(s.advance), d(s.grace))
	case KindSliding:
		return fmt.Sprintf("sliding(maxDiff=%s, grace=%s)", d(s.size), d(s.grace))
	}
	return fmt.Sprintf("%s(size=%s, grace=%s)", s.kind, d(s.size), d(s.grace))
}

// FirstStart returns the start of the earliest window containing t. The
// windows containing t start at FirstStart(t), then every AdvanceMs() while
// start <= t.
func (s Spec) FirstStart(t int64) int64 {
	// The last window containing t starts at the multiple of advance at or
	// below t; earlier windows still contain t while start > t-size.
	last := t - mod(t, s.advance)
	first := last - (last-t+s.size-1)/s.advance*s.advance
	for first < 0 {
		first += s.advance
	}
	return first
}

// NextEnd returns the smallest window end greater than t.
func (s Spec) NextEnd(t int64) int64 {
	if t < s.size {
		return s.size
	}
	// Ends are k*advance + size for k >= 0.
	k := (t-s.size)/s.advance + 1
	return k*s.advance + s.size
}

// Starts calls fn with the start of every window containing t, in ascending
// order. Windows never start before 0.
func (s Spec) Starts(t int64, fn func(start int64)) {
	for start := s.FirstStart(t); start <= t; start += s.advance {
		fn(start)
	}
}

// mod is the non-negative remainder, so that negative timestamps floor correctly.
func mod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

// Windowed is the key of a windowed aggregate: the grouping key and the
// window [Start, End) it covers, in milliseconds. Sliding windows are the
// exception: their End is inclusive, [Start, End] with End = Start+maxDiff.
type Windowed[K any] struct {
	Key        K
	Start, End int64
}
