package operators

import (
	"flag"
	"math/rand/v2"
	"strings"
	"testing"
)

var seedFlag = flag.Uint64("seed", 0, "seed of the randomized tests (0: random); replay one case with -run and -seed")

// testSeed returns the seed of a randomized test case and logs how to
// replay it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (replay with -run '^%s$' -seed=%d)", seed, strings.ReplaceAll(t.Name(), "/", "$/^"), seed)
	return seed
}
