//go:build !race

package integration

// raceEnabled reports whether the race detector is on: it doubles goroutine
// stacks, so figures of stack size hold without it only.
const raceEnabled = false
