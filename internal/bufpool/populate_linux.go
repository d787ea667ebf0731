package bufpool

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// noPopulate is set once the kernel refuses MADV_POPULATE_WRITE (before
// Linux 5.14), so that no later buffer asks again.
var noPopulate atomic.Bool

// populate backs b's pages with memory in one system call, rather than a
// page fault for each page when it is first written.
func populate(b []byte) {
	if noPopulate.Load() {
		return
	}
	if err := unix.Madvise(b, unix.MADV_POPULATE_WRITE); err == unix.EINVAL {
		noPopulate.Store(true)
	}
}
