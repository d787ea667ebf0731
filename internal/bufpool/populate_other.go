//go:build !linux

package bufpool

// populate does nothing: only Linux backs a range of pages in one call.
func populate([]byte) {}
