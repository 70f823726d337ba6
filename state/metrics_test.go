package state

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestStoreSizes fills one store partition past several memtables and
// another with a few rows, and checks that StoreSizes lists both, with the
// large one's estimate near what was written once Pebble has flushed it.
func TestStoreSizes(t *testing.T) {
	db, err := Open(Options{InMemory: true, MemTableBytes: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("s", 200) // a two-byte uvarint length
	task := db.NewTask("0_0")
	big, err := task.KV("big", 0, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	small, err := task.KV(long, 300, StoreConfig{})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	value := make([]byte, 1000) // random: Pebble compresses blocks
	const rows = 4000           // about 4 MB
	for i := range rows {
		for j := range value {
			value[j] = byte(r.Uint32())
		}
		if err := big.Put(fmt.Appendf(nil, "key-%06d", i), value); err != nil {
			t.Fatal(err)
		}
		if i%500 == 499 {
			if err := task.Commit(map[string]int64{"big": int64(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := small.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := task.Commit(map[string]int64{long: 1}); err != nil {
		t.Fatal(err)
	}

	// Memtables flush in the background.
	var sizes []StoreSize
	for deadline := time.Now().Add(10 * time.Second); ; {
		if sizes, err = db.StoreSizes(); err != nil {
			t.Fatal(err)
		}
		if len(sizes) == 2 && sizes[0].Bytes > rows*1000/2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	type id struct {
		Name      string
		Partition int32
	}
	var got []id
	for _, s := range sizes {
		got = append(got, id{s.Name, s.Partition})
	}
	if diff := cmp.Diff([]id{{"big", 0}, {long, 300}}, got); diff != "" {
		t.Fatalf("store partitions (-want +got):\n%s", diff)
	}
	if b := sizes[0].Bytes; b < rows*1000/2 || b > rows*1000*2 {
		t.Errorf("big: %d bytes, want about %d", b, rows*1000)
	}
	if sizes[1].Bytes >= sizes[0].Bytes {
		t.Errorf("small store %d bytes, not below the big one's %d", sizes[1].Bytes, sizes[0].Bytes)
	}

	if err := task.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := db.StoreSizes(); !errors.Is(err, ErrClosed) {
		t.Errorf("StoreSizes on a closed DB: got %v, want ErrClosed", err)
	}
}
