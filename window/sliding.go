package window

import (
	"fmt"
	"time"
)

// Sliding returns Kafka Streams' sliding windows
// (SlidingWindows.ofTimeDifferenceAndGrace): windows [start, start+maxDiff]
// with both ends inclusive, placed where the records are rather than on a
// fixed grid. Each record at t has a left window [t-maxDiff, t] ending at
// it, and a right window [t+1, t+1+maxDiff] starting just after it that
// exists only while it holds records; no other window exists, so every
// distinct set of records at most maxDiff apart is aggregated once.
// Records earlier than maxDiff share the window [0, maxDiff]: windows
// never start before 0.
//
// A window accepts records while end + grace >= stream-time: because the
// end is inclusive, it closes only once stream-time passes end + grace.
// SizeMs returns maxDiff and AdvanceMs 0; FirstStart, NextEnd and Starts
// do not apply. maxDiff may be 0 (windows of a single instant), as in
// Kafka Streams. Grace defaults to zero.
//
// The key of a sliding-window aggregate is a Windowed whose End is
// Start+maxDiff, inclusive, unlike tumbling and hopping windows whose End
// is exclusive. Kafka Streams writes such keys with its time-windowed serde
// and a window size of maxDiff, so serde.Windowed(inner, SizeMs()) reads
// them back with the same End.
func Sliding(maxDiff time.Duration) Spec {
	return Spec{kind: KindSliding, size: maxDiff.Milliseconds()}
}

// validateSliding reports a sliding spec that cannot be used.
func (s Spec) validateSliding() error {
	switch {
	case s.size < 0:
		return fmt.Errorf("window: sliding maxDiff must not be negative, got %dms", s.size)
	case s.grace < 0:
		return fmt.Errorf("window: grace must not be negative, got %dms", s.grace)
	}
	return nil
}
