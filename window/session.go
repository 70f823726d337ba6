package window

import (
	"fmt"
	"time"
)

// SessionSpec is an immutable session window definition: a key's
// records at most the inactivity gap apart belong to one session, as in
// Kafka Streams' SessionWindows. Gap and grace are kept in milliseconds,
// the resolution of record timestamps.
//
// Unlike the windows of Spec, a session window's bounds are both
// inclusive: the Windowed key of a session has Start = its earliest
// record's time and End = its latest record's time, and a session of one
// record is [t, t]. A session accepts a record while its end plus gap
// plus grace is not behind stream-time.
//
//	s := window.Sessions(5 * time.Minute).Grace(30 * time.Second)
type SessionSpec struct {
	gap   int64
	grace int64
}

// Sessions returns session windows that close after gap without a
// record of their key. Grace defaults to zero, as Kafka Streams'
// SessionWindows.ofInactivityGapWithNoGrace.
func Sessions(gap time.Duration) SessionSpec {
	return SessionSpec{gap: gap.Milliseconds()}
}

// Grace returns a copy of s that accepts out-of-order records until
// stream-time passes a session's end plus gap plus d.
func (s SessionSpec) Grace(d time.Duration) SessionSpec {
	s.grace = d.Milliseconds()
	return s
}

// GapMs returns the inactivity gap in milliseconds.
func (s SessionSpec) GapMs() int64 { return s.gap }

// GraceMs returns the grace period in milliseconds.
func (s SessionSpec) GraceMs() int64 { return s.grace }

// Validate reports a spec that cannot be used: a gap under 1ms (the zero
// SessionSpec included) or a negative grace.
func (s SessionSpec) Validate() error {
	switch {
	case s.gap <= 0:
		return fmt.Errorf("window: session gap must be at least 1ms, got %dms (use window.Sessions)", s.gap)
	case s.grace < 0:
		return fmt.Errorf("window: session grace must not be negative, got %dms", s.grace)
	}
	return nil
}

// String describes the spec, e.g. "session(gap=5m0s, grace=30s)".
func (s SessionSpec) String() string {
	d := func(ms int64) time.Duration { return time.Duration(ms) * time.Millisecond }
	return fmt.Sprintf("session(gap=%s, grace=%s)", d(s.gap), d(s.grace))
}
