package main

import (
	"testing"

	"github.com/eddyflow/eddy/examples/internal/exampletest"
)

// The test binary runs main when TestDescribeFlag starts it as the example.
func init() { exampletest.RunMainIfChild(main) }

// TestDescribeFlag runs the example with -describe, as eddy describe does:
// it prints the description of Topology as text or Mermaid and exits 0
// without running the pipeline, and refuses another format with exit
// status 2.
func TestDescribeFlag(t *testing.T) { exampletest.CheckDescribeFlag(t, "pageviews", Topology()) }
