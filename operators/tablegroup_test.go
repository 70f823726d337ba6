package operators

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/eddyflow/eddy/serde"
	"github.com/eddyflow/eddy/state"
)

func TestChangeRecordFormat(t *testing.T) {
	tests := []struct {
		name string
		c    Change[string]
		want []byte
	}{
		{"new", Change[string]{New: "ab", HasNew: true}, []byte("\x01ab")},
		{"old", Change[string]{Old: "ab", HasOld: true}, []byte("\x02ab")},
		{"both", Change[string]{New: "ab", Old: "c", HasNew: true, HasOld: true}, []byte("\x03\x02abc")},
		{"empty new", Change[string]{HasNew: true}, []byte("\x01")},
		{"empty old", Change[string]{HasOld: true}, []byte("\x02")},
		{"both empty", Change[string]{HasNew: true, HasOld: true}, []byte("\x03\x00")},
		{"empty new, old", Change[string]{Old: "x", HasNew: true, HasOld: true}, []byte("\x03\x00x")},
		{"long new", Change[string]{New: strings.Repeat("n", 200), Old: "o", HasNew: true, HasOld: true},
			append(append([]byte("\x03\xc8\x01"), strings.Repeat("n", 200)...), 'o')},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := appendChange([]byte("key"), serde.String(), tt.c, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(append([]byte("key"), tt.want...), got); diff != "" {
				t.Errorf("encoding (-want +got):\n%s", diff)
			}
			back, err := decodeChange(serde.String(), got[len("key"):])
			if err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tt.c, back); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
	if _, _, err := appendChange(nil, serde.String(), Change[string]{}, nil); !errors.Is(err, errEmptyChange) {
		t.Errorf("empty change: got %v, want %v", err, errEmptyChange)
	}
}

// TestChangeSourceCorrupt checks that every kind of corrupt change record
// is a DecodeError naming the record, and that nothing is forwarded.
func TestChangeSourceCorrupt(t *testing.T) {
	tests := []struct {
		name       string
		key, value []byte
		field      string
		msg        string
	}{
		{"nil key", nil, []byte("\x01\x00\x00\x00\x00\x00\x00\x00\x01"), "key", "nil key"},
		{"tombstone", []byte("k"), nil, "value", "tombstone"},
		{"empty", []byte("k"), []byte{}, "value", "empty change record"},
		{"flags 0", []byte("k"), []byte("\x00abc"), "value", "unknown flags 0x00"},
		{"flags 4", []byte("k"), []byte("\x04abc"), "value", "unknown flags 0x04"},
		{"flags 0x83", []byte("k"), []byte("\x83abc"), "value", "unknown flags 0x83"},
		{"no length", []byte("k"), []byte("\x03"), "value", "bad length"},
		{"truncated length", []byte("k"), []byte("\x03\x80"), "value", "bad length"},
		{"length past end", []byte("k"), []byte("\x03\x09\x00\x00\x00\x00\x00\x00\x00\x01"), "value", "runs past the end"},
		{"bad new value", []byte("k"), []byte("\x01\x00\x01"), "value", "new value: serde: int64"},
		{"bad old value", []byte("k"), []byte("\x02\x00\x01"), "value", "old value: serde: int64"},
		{"bad old in both", []byte("k"), []byte("\x03\x08\x00\x00\x00\x00\x00\x00\x00\x01\x07"), "value", "old value: serde: int64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Record[string, Change[int64]]
			src := &ChangeSource[string, int64]{
				KeySerde: serde.String(), ValueSerde: serde.Int64(),
				Out: Downstream[string, Change[int64]]{collect[string, Change[int64]](&got)},
			}
			ctx := &Context{Logger: hclog.NewNullLogger()}
			err := src.ProcessRaw(ctx, &RawRecord{Topic: "app-g-repartition", Partition: 3, Offset: 42, Key: tt.key, Value: tt.value})
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("got %v, want a *DecodeError", err)
			}
			if de.Topic != "app-g-repartition" || de.Partition != 3 || de.Offset != 42 || de.Field != tt.field {
				t.Errorf("DecodeError names %s/%d@%d %s, want app-g-repartition/3@42 %s", de.Topic, de.Partition, de.Offset, de.Field, tt.field)
			}
			if msg := err.Error(); !strings.Contains(msg, "app-g-repartition/3@42") || !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q does not name the record and say %q", msg, tt.msg)
			}
			if len(got) != 0 {
				t.Errorf("forwarded %v", got)
			}
		})
	}
}

// FuzzDecodeChange checks that no input makes the decoder panic, and that
// whatever decodes encodes back to a record decoding to the same change.
func FuzzDecodeChange(f *testing.F) {
	for _, s := range []string{"", "\x01", "\x02x", "\x03\x01ab", "\x03\x05ab", "\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", "\x07"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeChange(serde.String(), b)
		if err != nil {
			return
		}
		enc, _, err := appendChange(nil, serde.String(), c, nil)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", c, err)
		}
		back, err := decodeChange(serde.String(), enc)
		if err != nil {
			t.Fatalf("decode re-encoded %q: %v", enc, err)
		}
		if diff := gocmp.Diff(c, back); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

type collector[K, V any] struct{ out *[]Record[K, V] }

func (c collector[K, V]) Process(_ *Context, r Record[K, V]) error {
	*c.out = append(*c.out, r)
	return nil
}

func collect[K, V any](out *[]Record[K, V]) Processor[K, V] { return collector[K, V]{out} }

// failingKeys is a string serde that cannot encode "bad".
func failingKeys() serde.Serde[string] {
	return serde.Func(
		func(dst []byte, s string) ([]byte, error) {
			if s == "bad" {
				return dst, errors.New("cannot encode bad")
			}
			return append(dst, s...), nil
		},
		func(b []byte) (string, error) { return string(b), nil })
}

// TestTableGroupBy checks the split of a row change into retraction and
// insertion, and KIP-904's single record when the group does not change.
func TestTableGroupBy(t *testing.T) {
	type rec = Record[string, Change[string]]
	split := func(_, v string) (string, string) {
		g, rest, _ := strings.Cut(v, ":")
		return g, rest
	}
	hdr := []Header{{Key: "h", Value: []byte("1")}}
	tests := []struct {
		name string
		in   Change[string]
		want []rec
	}{
		{"insert", Change[string]{New: "a:1", HasNew: true},
			[]rec{{Key: "a", Value: Change[string]{New: "1", HasNew: true}, Time: 7, Headers: hdr}}},
		{"delete", Change[string]{Old: "a:1", HasOld: true},
			[]rec{{Key: "a", Value: Change[string]{Old: "1", HasOld: true}, Time: 7, Headers: hdr}}},
		{"update within the group", Change[string]{New: "a:2", Old: "a:1", HasNew: true, HasOld: true},
			[]rec{{Key: "a", Value: Change[string]{New: "2", Old: "1", HasNew: true, HasOld: true}, Time: 7, Headers: hdr}}},
		{"move to another group", Change[string]{New: "b:2", Old: "a:1", HasNew: true, HasOld: true},
			[]rec{
				{Key: "a", Value: Change[string]{Old: "1", HasOld: true}, Time: 7, Headers: hdr},
				{Key: "b", Value: Change[string]{New: "2", HasNew: true}, Time: 7, Headers: hdr},
			}},
		{"delete of an absent row", Change[string]{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []rec
			g := &TableGroupBy[string, string, string, string]{Name: "gb", Fn: split, KeySerde: serde.String(), Out: Downstream[string, Change[string]]{collect(&got)}}
			ctx := &Context{Logger: hclog.NewNullLogger()}
			if err := g.Process(ctx, Record[string, Change[string]]{Key: "row", Value: tt.in, Time: 7, Headers: hdr}); err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tt.want, got); diff != "" {
				t.Errorf("forwarded (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("unencodable key", func(t *testing.T) {
		for _, c := range []Change[string]{
			{New: "bad:1", HasNew: true},
			{Old: "bad:1", HasOld: true},
			{New: "a:1", Old: "bad:1", HasNew: true, HasOld: true},
		} {
			var got []rec
			g := &TableGroupBy[string, string, string, string]{Name: "gb", Fn: split, KeySerde: failingKeys(), Out: Downstream[string, Change[string]]{collect(&got)}}
			err := g.Process(&Context{}, Record[string, Change[string]]{Key: "row", Value: c})
			if err == nil || !strings.Contains(err.Error(), "operator gb") || !strings.Contains(err.Error(), "cannot encode bad") {
				t.Errorf("%+v: got error %v, want one naming operator gb", c, err)
			}
			if len(got) != 0 {
				t.Errorf("%+v: forwarded %v", c, got)
			}
		}
	})
}

type tgStores struct{ task *state.Task }

func (s tgStores) KV(name string, cfg state.StoreConfig) (*state.KV, error) {
	return s.task.KV(name, 0, cfg)
}

func (s tgStores) Window(name string, cfg state.StoreConfig) (*state.WindowStore, error) {
	return s.task.Window(name, 0, cfg)
}

// TestTableAggregate runs changes through a string aggregate that records
// every operation, on an uncached store: each change gives one update,
// subtractor before adder, stamped with the largest time so far.
func TestTableAggregate(t *testing.T) {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	task := db.NewTask("0_0")
	defer task.Close()
	var got []Record[string, Change[string]]
	a := &TableAggregate[string, string, string]{
		Name: "agg", Store: "agg", KeySerde: serde.String(), AggSerde: serde.String(),
		Add: func(_ string, v, agg string, found bool) string {
			if !found {
				agg = "init"
			}
			return agg + "+" + v
		},
		Sub: func(_ string, v, agg string) string { return agg + "-" + v },
		Out: Downstream[string, Change[string]]{collect(&got)},
	}
	ctx := &Context{Logger: hclog.NewNullLogger()}
	if err := a.Init(ctx, tgStores{task}); err != nil {
		t.Fatal(err)
	}
	steps := []Record[string, Change[string]]{
		{Key: "a", Value: Change[string]{Old: "x", HasOld: true}, Time: 1}, // nothing to retract from
		{Key: "a", Value: Change[string]{New: "x", HasNew: true}, Time: 10},
		{Key: "a", Value: Change[string]{New: "y", Old: "x", HasNew: true, HasOld: true}, Time: 5},
		{Key: "a", Value: Change[string]{Old: "y", HasOld: true}, Time: 20},
		{Key: "a", Value: Change[string]{}, Time: 30}, // an empty change
	}
	for _, r := range steps {
		if err := a.Process(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	want := []Record[string, Change[string]]{
		{Key: "a", Value: Change[string]{New: "init+x", HasNew: true}, Time: 10},
		{Key: "a", Value: Change[string]{New: "init+x-x+y", Old: "init+x", HasNew: true, HasOld: true}, Time: 10},
		{Key: "a", Value: Change[string]{New: "init+x-x+y-y", Old: "init+x-x+y", HasNew: true, HasOld: true}, Time: 20},
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("updates (-want +got):\n%s", diff)
	}
	t.Run("unencodable key", func(t *testing.T) {
		b := *a
		b.KeySerde = failingKeys()
		err := b.Process(ctx, Record[string, Change[string]]{Key: "bad", Value: Change[string]{New: "x", HasNew: true}})
		if err == nil || !strings.Contains(err.Error(), "operator agg") {
			t.Errorf("got %v, want an error naming operator agg", err)
		}
	})
}

// TestChangeSinkPartitions checks that ChangeSink partitions by the key
// and writes decodable change records.
func TestChangeSinkPartitions(t *testing.T) {
	var sent []RawRecord
	ctx := &Context{
		Send:       func(r RawRecord) { sent = append(sent, r) },
		Partitions: func(string) int32 { return 8 },
	}
	s := &ChangeSink[string, string]{Name: "sink", Sink: Sink[string, string]{Topic: "t", KeySerde: serde.String(), ValueSerde: serde.String()}}
	var want []Record[string, Change[string]]
	for i := range 20 {
		r := Record[string, Change[string]]{Key: fmt.Sprint("k", i), Value: Change[string]{New: fmt.Sprint(i), Old: "o", HasNew: true, HasOld: i%2 == 0}, Time: int64(i)}
		if i%2 != 0 {
			r.Value.Old = ""
		}
		want = append(want, r)
		if err := s.Process(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	var got []Record[string, Change[string]]
	src := &ChangeSource[string, string]{KeySerde: serde.String(), ValueSerde: serde.String(), Out: Downstream[string, Change[string]]{collect(&got)}}
	parts := map[int32]bool{}
	for i := range sent {
		r := &sent[i]
		parts[r.Partition] = true
		other := Sink[string, string]{Topic: "t", KeySerde: serde.String(), ValueSerde: serde.String()}
		var plain []RawRecord
		pctx := &Context{Send: func(r RawRecord) { plain = append(plain, r) }, Partitions: ctx.Partitions}
		if err := other.Process(pctx, Record[string, string]{Key: string(r.Key), Value: ""}); err != nil {
			t.Fatal(err)
		}
		if plain[0].Partition != r.Partition || !bytes.Equal(plain[0].Key, r.Key) {
			t.Errorf("record %q went to partition %d, a plain sink sends it to %d", r.Key, r.Partition, plain[0].Partition)
		}
		if err := src.ProcessRaw(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("read back (-want +got):\n%s", diff)
	}
	if len(parts) < 2 {
		t.Errorf("20 keys all went to partitions %v", parts)
	}
	if err := s.Process(ctx, Record[string, Change[string]]{Key: "k"}); err == nil || !strings.Contains(err.Error(), "operator sink") {
		t.Errorf("empty change: got %v, want an error naming operator sink", err)
	}
}
