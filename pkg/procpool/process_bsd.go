//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package procpool

// Worker processes on macOS and the BSDs: no Pdeathsig (a worker watches its
// parent itself: see package worker), and a kqueue instead of waitid's
// WNOWAIT.

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/internal/procfs"
)

// setProcAttr makes a worker process lead a process group of its own.
func setProcAttr(attr *syscall.SysProcAttr) {
	attr.Setpgid = true
}

// awaitExit blocks until the child pid has exited, without reaping it: it
// stays a zombie, which keeps its pid and process group id from being reused
// until it is reaped. Short of descriptors for the kqueue, it tries again
// until it has one.
func awaitExit(pid int) error {
	for {
		wait, err := procfs.WatchExit(pid)
		switch err {
		case nil:
			return wait()
		case unix.ESRCH:
			return nil // a zombie already (macOS): only we reap it
		case unix.EMFILE, unix.ENFILE, unix.ENOMEM:
			time.Sleep(100 * time.Millisecond)
		default:
			return err
		}
	}
}
