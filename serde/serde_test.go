package serde_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/window"
)

func roundTrip[T any](t *testing.T, s serde.Serde[T], v T, wantBytes []byte) {
	t.Helper()
	b, err := s.Encode([]byte("prefix"), v)
	if err != nil {
		t.Fatalf("Encode(%v): %v", v, err)
	}
	if diff := cmp.Diff(append([]byte("prefix"), wantBytes...), b); diff != "" {
		t.Errorf("Encode(%v) (-want +got):\n%s", v, diff)
	}
	got, err := s.Decode(b[len("prefix"):])
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if diff := cmp.Diff(v, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

type point struct{ X, Y int }

func TestRoundTrips(t *testing.T) {
	roundTrip(t, serde.String(), "héllo", []byte("héllo"))
	roundTrip(t, serde.Bytes(), []byte{0, 1, 2}, []byte{0, 1, 2})
	roundTrip(t, serde.Int64(), -2, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe})
	roundTrip(t, serde.Int32(), 258, []byte{0, 0, 1, 2})
	roundTrip(t, serde.Float64(), 1.5, []byte{0x3f, 0xf8, 0, 0, 0, 0, 0, 0})
	roundTrip(t, serde.JSON[point](), point{1, 2}, []byte(`{"X":1,"Y":2}`))
	roundTrip(t, serde.Windowed(serde.String(), 60_000),
		window.Windowed[string]{Key: "k", Start: 120_000, End: 180_000},
		[]byte{'k', 0, 0, 0, 0, 0, 1, 0xd4, 0xc0})
}

func TestBytesDecodeCopies(t *testing.T) {
	in := []byte{1, 2, 3}
	out, _ := serde.Bytes().Decode(in)
	in[0] = 9
	if out[0] != 1 {
		t.Error("Bytes().Decode aliases its input, which callers reuse")
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"int64", err(serde.Int64().Decode([]byte{1, 2})), "serde: int64: want 8 bytes, got 2"},
		{"int32", err(serde.Int32().Decode(nil)), "serde: int32: want 4 bytes, got 0"},
		{"float64", err(serde.Float64().Decode([]byte{1})), "serde: float64: want 8 bytes, got 1"},
		{"json", err(serde.JSON[point]().Decode([]byte("{"))), "serde: json: unexpected end of JSON input"},
		{"windowed", err(serde.Windowed(serde.String(), 1).Decode([]byte("abc"))), "serde: windowed key: want at least 8 bytes, got 3"},
	}
	for _, tc := range tests {
		if tc.err == nil || tc.err.Error() != tc.want {
			t.Errorf("%s: got %v, want %q", tc.name, tc.err, tc.want)
		}
	}
}

func err[T any](_ T, e error) error { return e }

// FuzzBuiltins checks that no built-in serde panics on arbitrary bytes
// and that whatever decodes re-encodes to the same bytes.
func FuzzBuiltins(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("12345678"))
	f.Add([]byte(`{"X":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := serde.Int64().Decode(b); err == nil {
			if out, _ := serde.Int64().Encode(nil, v); string(out) != string(b) {
				t.Fatalf("int64 %x re-encodes to %x", b, out)
			}
		}
		if v, err := serde.Windowed(serde.Bytes(), 10).Decode(b); err == nil {
			if out, _ := serde.Windowed(serde.Bytes(), 10).Encode(nil, v); string(out) != string(b) {
				t.Fatalf("windowed %x re-encodes to %x", b, out)
			}
		}
		serde.JSON[point]().Decode(b)
		serde.Float64().Decode(b)
		serde.Int32().Decode(b)
	})
}
