package serde

import (
	"encoding/binary"
	"fmt"

	"github.com/eddyflow/eddy/window"
)

// sessionSuffixLen is the length of the window a session key ends with:
// its end, then its start, 8 big-endian bytes each.
const sessionSuffixLen = 16

// SessionWindowed encodes the key of a session window as Kafka Streams'
// SessionWindowedSerde does (its SessionKeySchema): the inner key's
// bytes, then the session's end, then its start, each as 8 big-endian
// bytes. Both bounds are inclusive; Decode rejects a start after the end,
// as Kafka Streams' SessionWindow does. It is safe for concurrent use if
// inner is.
func SessionWindowed[K any](inner Serde[K]) Serde[window.Windowed[K]] {
	return sessionWindowedSerde[K]{inner}
}

type sessionWindowedSerde[K any] struct {
	inner Serde[K]
}

func (s sessionWindowedSerde[K]) Encode(dst []byte, w window.Windowed[K]) ([]byte, error) {
	dst, err := s.inner.Encode(dst, w.Key)
	if err != nil {
		return dst, err
	}
	dst = binary.BigEndian.AppendUint64(dst, uint64(w.End))
	return binary.BigEndian.AppendUint64(dst, uint64(w.Start)), nil
}

func (s sessionWindowedSerde[K]) Decode(b []byte) (window.Windowed[K], error) {
	var w window.Windowed[K]
	if len(b) < sessionSuffixLen {
		return w, fmt.Errorf("serde: session windowed key: want at least %d bytes (key, end, start), got %d", sessionSuffixLen, len(b))
	}
	n := len(b) - sessionSuffixLen
	end := int64(binary.BigEndian.Uint64(b[n:]))
	start := int64(binary.BigEndian.Uint64(b[n+8:]))
	if start > end {
		return w, fmt.Errorf("serde: session windowed key: start %d after end %d", start, end)
	}
	k, err := s.inner.Decode(b[:n])
	if err != nil {
		return w, fmt.Errorf("serde: session windowed key: %w", err)
	}
	w.Key, w.Start, w.End = k, start, end
	return w, nil
}
