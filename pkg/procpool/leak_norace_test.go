//go:build !race

package procpool_test

// Built without -race: tells leak_test.go the race detector is off.

// relRace reports whether the race detector is on: it makes each pool cycle
// of TestLeakCycles about four times slower.
const relRace = false
