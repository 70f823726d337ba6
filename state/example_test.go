package state_test

import (
	"fmt"
	"log"

	"github.com/eddyflow/eddy/state"
)

// One commit interval of a task counting words: writes go to the cache,
// Flush hands the deduplicated changelog records and updates out, Commit
// applies the state with the changelog offset.
func Example() {
	db, err := state.Open(state.Options{InMemory: true})
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	task := db.NewTask("0_0")
	defer task.Close()

	var changelog []string
	counts, err := task.KV("counts", 0, state.StoreConfig{
		CacheBytes: 1 << 20,
		Changelog:  func(k, v []byte) { changelog = append(changelog, fmt.Sprintf("%q=%s", k, v)) },
		OnFlush: func(k, v, old []byte) error {
			fmt.Printf("update %s: %q -> %q\n", k, old, v)
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range []string{"a", "b", "a", "a"} {
		n, ok, err := counts.Get([]byte(w)) // a single digit, for brevity
		if err != nil {
			log.Fatal(err)
		}
		next := byte('1')
		if ok {
			next = n[0] + 1
		}
		if err := counts.Put([]byte(w), []byte{next}); err != nil {
			log.Fatal(err)
		}
	}
	if err := task.Flush(); err != nil {
		log.Fatal(err)
	}
	// Here the engine commits its log transaction, changelog included.
	if err := task.Commit(map[string]int64{"counts": int64(len(changelog))}); err != nil {
		log.Fatal(err)
	}
	off, _, _ := counts.CommittedOffset()
	fmt.Println("changelog", changelog, "committed offset", off)
	// Output:
	// update a: "" -> "3"
	// update b: "" -> "1"
	// changelog ["\x01a"=3 "\x01b"=1] committed offset 2
}
