package engine_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddyflow/eddy/broker"
	"github.com/eddyflow/eddy/broker/kafka"
	"github.com/eddyflow/eddy/engine"
)

// childEnv makes the test binary run as a child pipeline (see TestMain).
const childEnv = "EDDY_ENGINE_TEST_CHILD_DIR"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(crashChildEnv); cfg != "" {
		os.Exit(runCrashChild(cfg))
	}
	if dir := os.Getenv(childEnv); dir != "" {
		os.Exit(runChild(dir))
	}
	os.Exit(m.Run())
}

// runChild runs countTopology on dir until SIGINT, as a user's main would,
// printing "ready" once it has committed some work.
func runChild(dir string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	b, opts := countTopology(), engine.Options{StateDir: dir, CacheBytes: -1, CommitInterval: 5 * time.Millisecond}
	if brokers := os.Getenv(kafkaChildEnv); brokers != "" {
		l, err := kafka.Open(ctx, kafka.Options{Brokers: strings.Split(brokers, ",")})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer l.Close()
		b, opts.Log, opts.InstanceID, opts.CommitInterval = windowTopology(), l, os.Getenv("EDDY_ENGINE_TEST_CHILD_ID"), 20*time.Millisecond
	}
	eng, err := engine.Open(b, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	go func() {
		for eng.Metrics().Commits == 0 {
			time.Sleep(time.Millisecond)
		}
		fmt.Println("ready")
	}()
	if err := eng.Run(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := eng.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestSIGINTStopsGracefully interrupts a pipeline process mid-stream: it
// must exit 0, and a restart must continue with no duplicate and no gap.
func TestSIGINTStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	want := map[string]int64{}
	eng, err := engine.Open(countTopology(), engine.Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Log().CreateTopics(ctx, broker.TopicConfig{Name: "in", Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for batch := range 50 {
		recs := make([]broker.Record, 1000)
		for i := range recs {
			v := fmt.Sprintf("v%d", (batch*1000+i)%17)
			want[v]++
			recs[i] = broker.Record{Topic: "in", Partition: broker.AnyPartition, Key: []byte("k"), Value: []byte(v), Timestamp: int64(i)}
		}
		if err := eng.Log().Produce(ctx, recs...); err != nil {
			t.Fatal(err)
		}
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "ready\n" {
		cmd.Process.Kill()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("child did not stop cleanly on SIGINT: %v", err)
		}
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("child still running 60 s after SIGINT")
	}

	eng, err = engine.Open(countTopology(), engine.Options{StateDir: dir, Bounded: true, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Run(ctx); err != nil {
		t.Fatal(err)
	}
	got, outputs := countSequences(t, eng.Log())
	for k, n := range want {
		if got[k] != n {
			t.Errorf("key %s: final count %d, want %d", k, got[k], n)
		}
	}
	if outputs != 50000 {
		t.Errorf("%d outputs, want one per input (50000)", outputs)
	}
}
