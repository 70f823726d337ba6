package cmalloc

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func glibc() bool {
	if _, err := os.Stat("/etc/alpine-release"); err == nil {
		return false // musl
	}
	return runtime.GOOS == "linux" && cgoEnabled
}

// TestTrim checks that Trim trims where glibc is, and only there.
func TestTrim(t *testing.T) {
	if got := Trim(); got != glibc() {
		t.Errorf("Trim = %v, want %v (Linux with cgo and glibc)", got, glibc())
	}
}

// TestStartTrimming checks that callers share one goroutine, which stops
// with the last stop, and that a second stop of one caller changes nothing.
func TestStartTrimming(t *testing.T) {
	if !glibc() {
		StartTrimming()() // a no-op
		t.Skip("no glibc: nothing to trim")
	}
	running := func() bool {
		trimmer.Lock()
		defer trimmer.Unlock()
		return trimmer.users > 0
	}
	stop1 := StartTrimming()
	stop2 := StartTrimming()
	done := trimmer.done
	stop1()
	stop1()
	if !running() {
		t.Fatal("the trimmer stopped while a caller still uses it")
	}
	stop2()
	if running() {
		t.Fatal("the trimmer runs after every caller stopped it")
	}
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("the trim goroutine did not end")
	}
}
