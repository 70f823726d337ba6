package serde_test

import (
	"encoding/binary"
	"math"
	"testing"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

// TestSessionWindowedLayout checks the byte layout of Kafka Streams'
// SessionKeySchema.toBinary: key bytes, then end, then start, each 8
// bytes big-endian.
func TestSessionWindowedLayout(t *testing.T) {
	roundTrip(t, serde.SessionWindowed(serde.String()),
		window.Windowed[string]{Key: "user", Start: 1000, End: 300_000},
		[]byte{'u', 's', 'e', 'r', 0, 0, 0, 0, 0, 0x04, 0x93, 0xe0, 0, 0, 0, 0, 0, 0, 0x03, 0xe8})
	roundTrip(t, serde.SessionWindowed(serde.String()),
		window.Windowed[string]{Key: "", Start: 7, End: 7},
		[]byte{0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 7})
	roundTrip(t, serde.SessionWindowed(serde.Int32()),
		window.Windowed[int32]{Key: 258, Start: -2, End: -1},
		[]byte{0, 0, 1, 2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})
	roundTrip(t, serde.SessionWindowed(serde.Bytes()),
		window.Windowed[[]byte]{Key: []byte{0xff}, Start: math.MinInt64, End: math.MaxInt64},
		[]byte{0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0})
}

func TestSessionWindowedDecodeErrors(t *testing.T) {
	encoded := func(key []byte, start, end int64) []byte {
		b := binary.BigEndian.AppendUint64(key, uint64(end))
		return binary.BigEndian.AppendUint64(b, uint64(start))
	}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"empty", err(serde.SessionWindowed(serde.String()).Decode(nil)),
			"serde: session windowed key: want at least 16 bytes (key, end, start), got 0"},
		{"short", err(serde.SessionWindowed(serde.String()).Decode(make([]byte, 15))),
			"serde: session windowed key: want at least 16 bytes (key, end, start), got 15"},
		{"start after end", err(serde.SessionWindowed(serde.String()).Decode(encoded([]byte("k"), 6, 5))),
			"serde: session windowed key: start 6 after end 5"},
		{"inner key", err(serde.SessionWindowed(serde.Int32()).Decode(encoded([]byte{1, 2}, 0, 5))),
			"serde: session windowed key: serde: int32: want 4 bytes, got 2"},
	}
	for _, tc := range tests {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

// FuzzSessionWindowed decodes arbitrary bytes: nothing panics, exactly the
// inputs of at least 16 bytes whose start is not after their end decode,
// and what decodes re-encodes to the same bytes.
func FuzzSessionWindowed(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("k\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x01"))
	f.Add([]byte("k\x00\x00\x00\x00\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x06"))
	f.Add([]byte("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := func(b []byte) bool {
			if len(b) < 16 {
				return false
			}
			n := len(b) - 16
			return int64(binary.BigEndian.Uint64(b[n+8:])) <= int64(binary.BigEndian.Uint64(b[n:]))
		}
		exact(t, "session windowed string", serde.SessionWindowed(serde.String()), b, valid)
		exact(t, "session windowed bytes", serde.SessionWindowed(serde.Bytes()), b, valid)
		exact(t, "session windowed int32", serde.SessionWindowed(serde.Int32()), b,
			func(b []byte) bool { return len(b) == 20 && valid(b) })
	})
}
