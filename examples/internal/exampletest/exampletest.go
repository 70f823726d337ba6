// Package exampletest holds what the examples' tests share: the seed of
// their randomized tests, and the check of the -describe flag every
// example has (eddy describe runs it). Like the examples, it uses eddy's
// public API only.
package exampletest

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/eddyflow/eddy/topology"
)

// Seed returns the seed of a randomized test, logged: EDDY_TEST_SEED if
// set (to replay a failure), else a random one.
func Seed(t testing.TB) uint64 {
	t.Helper()
	seed := rand.Uint64()
	if s := os.Getenv("EDDY_TEST_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("EDDY_TEST_SEED=%q: %v", s, err)
		}
	}
	t.Logf("seed %d (replay with EDDY_TEST_SEED=%d)", seed, seed)
	return seed
}

// runMainEnv makes a test binary run the example's main with the
// arguments it was started with (see RunMainIfChild).
const runMainEnv = "EDDY_EXAMPLE_RUN_MAIN"

// RunMainIfChild runs main and exits if the test binary was started by
// CheckDescribeFlag to run the example. An example's test calls it from
// init, so that the child runs the real flag handling of main.
func RunMainIfChild(main func()) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// CheckDescribeFlag runs the example named name with -describe, as eddy
// describe does, in a child process of the test binary (see
// RunMainIfChild): it must print the description of b as text or Mermaid
// and exit 0 without running the pipeline (whose output would follow),
// and refuse another format with exit status 2.
func CheckDescribeFlag(t *testing.T, name string, b *topology.Builder) {
	t.Helper()
	topo, err := b.Build()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		format         string
		code           int
		stdout, stderr string
	}{
		{"text", 0, topo.Describe().String(), ""},
		{"mermaid", 0, topo.Describe().Mermaid(), ""},
		{"dot", 2, "", name + `: -describe: unknown format "dot": want text or mermaid` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-describe", tt.format)
			cmd.Env = append(os.Environ(), runMainEnv+"=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			code := 0
			if err := cmd.Run(); err != nil {
				var ee *exec.ExitError
				if !errors.As(err, &ee) {
					t.Fatal(err)
				}
				code = ee.ExitCode()
			}
			if code != tt.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tt.code, stderr.String())
			}
			if diff := cmp.Diff(tt.stdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.stderr, stderr.String()); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
		})
	}
}
