package serde_test

import (
	"bytes"
	"strings"
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

// FuzzBuiltins feeds arbitrary bytes to every built-in serde's Decode:
// none panics; each fails with a "serde: " error exactly when the bytes
// are not an encoding (fixed-size serdes: the wrong length); what decodes
// re-encodes to the same bytes (JSON, which has many spellings of a value:
// to a canonical encoding that decodes to the same value); and no decoded
// value aliases the input, which callers reuse.
func FuzzBuiltins(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("12345678"))
	f.Add([]byte("1234"))
	f.Add([]byte(`{"X":1}`))
	f.Add([]byte(`{"X":1,"Y":-2,"Z":[1.5e3,"s",null,{"a":true}]}`))
	f.Add([]byte("k\x00\x00\x00\x00\x00\x01\xd4\xc0"))
	f.Add([]byte("\xff\xfe\xfd"))
	f.Fuzz(func(t *testing.T, b []byte) {
		exact(t, "string", serde.String(), b, nil)
		exact(t, "bytes", serde.Bytes(), b, nil)
		exact(t, "int32", serde.Int32(), b, fixedSize(4))
		exact(t, "int64", serde.Int64(), b, fixedSize(8))
		exact(t, "float64", serde.Float64(), b, fixedSize(8))
		exact(t, "windowed string", serde.Windowed(serde.String(), 60_000), b, minSize(8))
		exact(t, "windowed bytes", serde.Windowed(serde.Bytes(), 10), b, minSize(8))
		exact(t, "windowed int32", serde.Windowed(serde.Int32(), 10), b, fixedSize(12))
		canonical(t, "json struct", serde.JSON[point](), b)
		canonical(t, "json any", serde.JSON[any](), b)
		canonical(t, "json map", serde.JSON[map[string][]float64](), b)
		if w, err := serde.Windowed(serde.String(), 60_000).Decode(b); err == nil && w.End != w.Start+60_000 {
			t.Fatalf("windowed %x: end %d, start %d", b, w.End, w.Start)
		}
	})
}

func fixedSize(n int) func([]byte) bool { return func(b []byte) bool { return len(b) == n } }
func minSize(n int) func([]byte) bool   { return func(b []byte) bool { return len(b) >= n } }

// exact checks a serde whose encoding is unique: valid (nil: any input)
// tells the inputs that must decode.
func exact[T any](t *testing.T, name string, s serde.Serde[T], b []byte, valid func([]byte) bool) {
	t.Helper()
	in := bytes.Clone(b)
	v, err := s.Decode(in)
	switch {
	case err != nil && (valid == nil || valid(b)):
		t.Fatalf("%s: Decode(%x): %v", name, b, err)
	case err == nil && valid != nil && !valid(b):
		t.Fatalf("%s: Decode(%x) = %v, want an error", name, b, v)
	case err != nil && !strings.HasPrefix(err.Error(), "serde: "):
		t.Fatalf("%s: Decode(%x): error %q does not start with \"serde: \"", name, b, err)
	case err != nil:
		return
	}
	for i := range in {
		in[i] ^= 0xff // the caller reuses its buffer
	}
	out, err := s.Encode([]byte("prefix"), v)
	if err != nil {
		t.Fatalf("%s: Encode(%v): %v", name, v, err)
	}
	if !bytes.Equal(out[len("prefix"):], b) {
		t.Fatalf("%s: %x decodes to %v, which encodes to %x", name, b, v, out[len("prefix"):])
	}
}

// canonical checks a serde with many encodings of a value: what decodes
// encodes to bytes that decode to the same value and encode to
// themselves.
func canonical[T any](t *testing.T, name string, s serde.Serde[T], b []byte) {
	t.Helper()
	v, err := s.Decode(b)
	if err != nil {
		if !strings.HasPrefix(err.Error(), "serde: ") {
			t.Fatalf("%s: Decode(%x): error %q does not start with \"serde: \"", name, b, err)
		}
		return
	}
	e1, err := s.Encode(nil, v)
	if err != nil {
		t.Fatalf("%s: %x decodes to %v, which does not encode: %v", name, b, v, err)
	}
	v2, err := s.Decode(e1)
	if err != nil {
		t.Fatalf("%s: %x decodes to %v, which encodes to %q, which does not decode: %v", name, b, v, e1, err)
	}
	if diff := cmp.Diff(v, v2); diff != "" {
		t.Fatalf("%s: %x decodes, re-encoded as %q, to another value (-first +second):\n%s", name, b, e1, diff)
	}
	e2, _ := s.Encode(nil, v2)
	if !bytes.Equal(e1, e2) {
		t.Fatalf("%s: %q re-encodes as %q", name, e1, e2)
	}
}
