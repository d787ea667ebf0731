//go:build race

package procpool_test

// Built with -race: tells leak_test.go the race detector is on.

// relRace reports whether the race detector is on: it makes each pool cycle
// of TestLeakCycles about four times slower.
const relRace = true
