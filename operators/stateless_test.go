package operators

import (
	"testing"

	"github.com/eddyflow/eddy/serde"
)

// keep is a Processor that keeps what it gets.
type keep[K, V any] struct{ got []Record[K, V] }

func (c *keep[K, V]) Process(_ *Context, r Record[K, V]) error {
	c.got = append(c.got, r)
	return nil
}

// TestSourceValues checks that a source hands out the record's own value
// bytes with serde.Bytes (no copy: record bytes are never modified) and
// decodes other serdes as usual.
func TestSourceValues(t *testing.T) {
	raw := &RawRecord{Topic: "in", Key: []byte("k"), Value: []byte("value"), Timestamp: 7}

	bytesOut := &keep[string, []byte]{}
	src := &Source[string, []byte]{KeySerde: serde.String(), ValueSerde: serde.Bytes(), Out: Downstream[string, []byte]{bytesOut}}
	if err := src.ProcessRaw(&Context{}, raw); err != nil {
		t.Fatal(err)
	}
	if len(bytesOut.got) != 1 || string(bytesOut.got[0].Value) != "value" || bytesOut.got[0].Key != "k" || bytesOut.got[0].Time != 7 {
		t.Fatalf("got %+v, want k=value@7", bytesOut.got)
	}
	if &bytesOut.got[0].Value[0] != &raw.Value[0] {
		t.Errorf("serde.Bytes value was copied, want the record's bytes")
	}

	strOut := &keep[string, string]{}
	ssrc := &Source[string, string]{KeySerde: serde.String(), ValueSerde: serde.String(), Out: Downstream[string, string]{strOut}}
	if err := ssrc.ProcessRaw(&Context{}, raw); err != nil {
		t.Fatal(err)
	}
	if len(strOut.got) != 1 || strOut.got[0].Value != "value" {
		t.Fatalf("got %+v, want value", strOut.got)
	}
}
