package serde

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"

	"github.com/eddyflow/eddy/window"
)

// Serde encodes values of type T to bytes and decodes them back.
// Implementations must be safe for concurrent use and must not keep a
// reference to the slice passed to Decode, which the caller may reuse.
type Serde[T any] interface {
	// Encode appends the encoding of v to dst and returns the extended slice.
	Encode(dst []byte, v T) ([]byte, error)
	// Decode decodes b, which it must not retain.
	Decode(b []byte) (T, error)
}

// Func builds a Serde from two functions.
func Func[T any](encode func(dst []byte, v T) ([]byte, error), decode func([]byte) (T, error)) Serde[T] {
	return funcSerde[T]{encode, decode}
}

type funcSerde[T any] struct {
	encode func([]byte, T) ([]byte, error)
	decode func([]byte) (T, error)
}

func (s funcSerde[T]) Encode(dst []byte, v T) ([]byte, error) { return s.encode(dst, v) }
func (s funcSerde[T]) Decode(b []byte) (T, error)             { return s.decode(b) }

// String encodes a string as its UTF-8 bytes, as Kafka's StringSerializer does.
func String() Serde[string] { return stringSerde{} }

type stringSerde struct{}

func (stringSerde) Encode(dst []byte, v string) ([]byte, error) { return append(dst, v...), nil }
func (stringSerde) Decode(b []byte) (string, error)             { return string(b), nil }

// OwnedDecoder is implemented by serdes that can decode without copying
// from bytes nobody modifies again, such as the key and value of a record
// read from a log: the decoded value may then share their memory. Sources
// use it; everything else calls Decode.
type OwnedDecoder[T any] interface {
	// DecodeOwned decodes b, which it may retain.
	DecodeOwned(b []byte) (T, error)
}

// Bytes passes byte slices through. Decode copies, since the input is
// reused. A source hands out the record's own bytes (DecodeOwned): they
// share memory with the batch of records they were read with, so copy a
// value kept long after its record was processed.
func Bytes() Serde[[]byte] { return bytesSerde{} }

type bytesSerde struct{}

func (bytesSerde) DecodeOwned(b []byte) ([]byte, error) { return b, nil }

func (bytesSerde) Encode(dst []byte, v []byte) ([]byte, error) { return append(dst, v...), nil }
func (bytesSerde) Decode(b []byte) ([]byte, error) {
	if b == nil {
		return nil, nil
	}
	return append([]byte(nil), b...), nil
}

// Int64 encodes an int64 as 8 big-endian bytes, as Kafka's LongSerializer does.
func Int64() Serde[int64] { return int64Serde{} }

type int64Serde struct{}

func (int64Serde) Encode(dst []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
}

func (int64Serde) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("serde: int64: want 8 bytes, got %d", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Int32 encodes an int32 as 4 big-endian bytes, as Kafka's IntegerSerializer does.
func Int32() Serde[int32] { return int32Serde{} }

type int32Serde struct{}

func (int32Serde) Encode(dst []byte, v int32) ([]byte, error) {
	return binary.BigEndian.AppendUint32(dst, uint32(v)), nil
}

func (int32Serde) Decode(b []byte) (int32, error) {
	if len(b) != 4 {
		return 0, fmt.Errorf("serde: int32: want 4 bytes, got %d", len(b))
	}
	return int32(binary.BigEndian.Uint32(b)), nil
}

// Float64 encodes a float64 as its 8 big-endian IEEE 754 bytes, as Kafka's DoubleSerializer does.
func Float64() Serde[float64] { return float64Serde{} }

type float64Serde struct{}

func (float64Serde) Encode(dst []byte, v float64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(v)), nil
}

func (float64Serde) Decode(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("serde: float64: want 8 bytes, got %d", len(b))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b)), nil
}

// JSON encodes values with encoding/json.
func JSON[T any]() Serde[T] { return jsonSerde[T]{} }

type jsonSerde[T any] struct{}

func (jsonSerde[T]) Encode(dst []byte, v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return dst, fmt.Errorf("serde: json: %w", err)
	}
	return append(dst, b...), nil
}

func (jsonSerde[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("serde: json: %w", err)
	}
	return v, nil
}

// Windowed encodes a windowed key as Kafka Streams' TimeWindowedSerde
// does: the inner key's bytes, then the window start as 8 big-endian bytes.
// The end is not stored: Decode derives it from sizeMs.
func Windowed[K any](inner Serde[K], sizeMs int64) Serde[window.Windowed[K]] {
	return windowedSerde[K]{inner, sizeMs}
}

type windowedSerde[K any] struct {
	inner  Serde[K]
	sizeMs int64
}

func (s windowedSerde[K]) Encode(dst []byte, w window.Windowed[K]) ([]byte, error) {
	dst, err := s.inner.Encode(dst, w.Key)
	if err != nil {
		return dst, err
	}
	return binary.BigEndian.AppendUint64(dst, uint64(w.Start)), nil
}

func (s windowedSerde[K]) Decode(b []byte) (window.Windowed[K], error) {
	var w window.Windowed[K]
	if len(b) < 8 {
		return w, fmt.Errorf("serde: windowed key: want at least 8 bytes, got %d", len(b))
	}
	k, err := s.inner.Decode(b[:len(b)-8])
	if err != nil {
		return w, err
	}
	w.Key = k
	w.Start = int64(binary.BigEndian.Uint64(b[len(b)-8:]))
	w.End = w.Start + s.sizeMs
	return w, nil
}
