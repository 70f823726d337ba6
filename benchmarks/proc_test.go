package benchmarks

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		// pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
		{"1234 (eddy) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 37 0 0 20 0 8 0", 2870 * time.Millisecond, true},
		{"1234 (a b) c)) R 1 1 1 0 -1 0 0 0 0 0 1 2 0 0", 30 * time.Millisecond, true},
		{"1234 (eddy) S 1 2", 0, false},
		{"garbage", 0, false},
	}
	for _, tt := range tests {
		got, ok := parseProcStat([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("parseProcStat(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseVmHWM(t *testing.T) {
	status := "Name:\teddy\nVmPeak:\t  900 kB\nVmHWM:\t   51200 kB\nVmRSS:\t 40000 kB\n"
	if got, ok := parseVmHWM([]byte(status)); !ok || got != 51200*1024 {
		t.Errorf("parseVmHWM = %d, %v; want %d", got, ok, 51200*1024)
	}
	if _, ok := parseVmHWM([]byte("Name:\tx\n")); ok {
		t.Error("parseVmHWM without VmHWM: ok")
	}
}

// TestChildMeasured runs a child that burns CPU and memory, and checks
// what the harness measures of it from outside.
func TestChildMeasured(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	// The harness is large when it starts the child: the child's peak
	// RSS must be its own (the kernel charges a vforked child's rusage
	// with its parent's).
	ballast := make([]byte, 256<<20)
	for i := 0; i < len(ballast); i += 4096 {
		ballast[i] = 1
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), burnEnv+"=1")
	c, err := startChild("burner", cmd, filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	runtime.KeepAlive(ballast)
	h := &harness{}
	cpu, err := h.bounded(context.Background(), c, 1, &WorkerReport{})
	if err != nil {
		t.Fatal(err)
	}
	total, _ := c.usage()
	if cpu < 200*time.Millisecond || cpu > total+20*time.Millisecond {
		t.Errorf("CPU between START and DONE %s, total %s: want about 300ms", cpu, total)
	}
	var r Result
	measured(&r, c)
	// The race detector's shadow memory makes the child several times
	// its size: the bound above holds without it only.
	if r.PeakRSSBytes < 64<<20 || (r.PeakRSSBytes > 160<<20 && !raceDetector()) {
		t.Errorf("peak RSS %d MiB, want the child's 64 MiB and its runtime's, not the harness's 256 MiB", r.PeakRSSBytes>>20)
	}
}

// raceDetector reports whether the test binary runs under the race detector.
func raceDetector() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// burnEnv makes the test binary a child that, between START and DONE,
// touches 64 MiB and spins for 300 ms of CPU.
const burnEnv = "EDDY_BENCH_BURN"

func runBurner() int {
	w := &workerIO{in: bufio.NewReader(os.Stdin), out: os.Stdout}
	if err := w.handshake(lineStart); err != nil {
		return 1
	}
	mem := make([]byte, 64<<20)
	for i := range mem {
		mem[i] = byte(i)
	}
	sum := 0
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
		for i := 0; i < len(mem); i += 4096 {
			sum += int(mem[i])
		}
	}
	if err := w.done(WorkerReport{RecordsIn: int64(sum % 2)}); err != nil {
		return 1
	}
	return 0
}

// TestChildExitError names the child and shows its stderr.
func TestChildExitError(t *testing.T) {
	c, err := startChild("failing", exec.Command("sh", "-c", "echo oops >&2; exit 3"), filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.await(context.Background(), lineReady)
	if err == nil || !strings.Contains(err.Error(), "failing exited before printing READY (exit status 3)") || !strings.Contains(err.Error(), "oops") {
		t.Errorf("await: %v", err)
	}
}
