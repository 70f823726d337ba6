//go:build !unix

package nexmark

import "time"

// processCPU returns 0: getrusage is Unix only.
func processCPU() time.Duration { return 0 }
