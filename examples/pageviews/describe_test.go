package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// describeMainEnv makes the test binary run the example's main with the
// arguments it was started with, so that TestDescribeFlag runs the real
// flag handling of main in a child process.
const describeMainEnv = "EDDY_EXAMPLE_RUN_MAIN"

func init() {
	if os.Getenv(describeMainEnv) == "1" {
		main()
		os.Exit(0)
	}
}

// TestDescribeFlag runs the example with -describe, as eddy describe does:
// it prints the description of Topology as text or Mermaid and exits 0
// without running the pipeline (whose output would follow), and refuses
// another format with exit status 2.
func TestDescribeFlag(t *testing.T) {
	topo, err := Topology().Build()
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
		{"dot", 2, "", `pageviews: -describe: unknown format "dot": want text or mermaid` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-describe", tt.format)
			cmd.Env = append(os.Environ(), describeMainEnv+"=1")
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
