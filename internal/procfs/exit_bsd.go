//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package procfs

import "golang.org/x/sys/unix"

// WatchExit registers for the exit of process pid, with a kqueue's
// EVFILT_PROC and NOTE_EXIT, and returns a function that blocks until the
// process has exited, then releases the kqueue. It works on any process this
// one may see, its parent included; a child is left unreaped, a zombie.
//
// An exit after WatchExit returns is not missed. One before it may be:
// registering for a process that is gone, or already a zombie, fails with
// ESRCH on macOS (FreeBSD's fires at once instead).
func WatchExit(pid int) (wait func() error, err error) {
	kq, err := unix.Kqueue()
	if err != nil {
		return nil, err
	}
	// A kqueue is not inherited by a child: no close-on-exec needed.
	var ev unix.Kevent_t
	unix.SetKevent(&ev, pid, unix.EVFILT_PROC, unix.EV_ADD|unix.EV_ONESHOT)
	ev.Fflags = unix.NOTE_EXIT
	if _, err := unix.Kevent(kq, []unix.Kevent_t{ev}, nil, nil); err != nil {
		unix.Close(kq)
		return nil, err
	}
	return func() error {
		defer unix.Close(kq)
		events := make([]unix.Kevent_t, 1)
		for {
			n, err := unix.Kevent(kq, nil, events, nil)
			if err == unix.EINTR || (err == nil && n == 0) {
				continue
			}
			return err
		}
	}, nil
}
