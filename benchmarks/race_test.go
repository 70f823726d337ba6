//go:build race

package benchmarks

// raceEnabled: the race detector is on (its shadow memory inflates RSS).
const raceEnabled = true
