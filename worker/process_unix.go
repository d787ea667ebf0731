//go:build unix

package worker

// A worker process's set-up on Unix: its protocol streams and its process
// group.

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// protectStreams moves the protocol off fds 0 and 1 onto close-on-exec
// copies, then points fd 0 at /dev/null and fd 1 at stderr. After it, a task
// that prints, reads stdin or starts a child cannot touch the protocol.
func protectStreams() (in, out *os.File, err error) {
	inFD, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("dup stdin: %w", err)
	}
	outFD, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("dup stdout: %w", err)
	}
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer unix.Close(null)
	if err := unix.Dup2(null, 0); err != nil {
		return nil, nil, fmt.Errorf("redirect stdin: %w", err)
	}
	if err := unix.Dup2(2, 1); err != nil {
		return nil, nil, fmt.Errorf("redirect stdout: %w", err)
	}
	// Non-blocking descriptors go through the runtime poller instead of
	// tying up an OS thread each.
	for _, fd := range []int{inFD, outFD} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, nil, fmt.Errorf("set non-blocking: %w", err)
		}
	}
	return os.NewFile(uintptr(inFD), "procpool-in"), os.NewFile(uintptr(outFD), "procpool-out"), nil
}

// leadProcessGroup makes this process lead a process group of its own; it
// may already.
func leadProcessGroup() { _ = unix.Setpgid(0, 0) }
