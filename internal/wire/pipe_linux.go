package wire

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// GrowPipe asks the system to let the pipe that f is an end of hold size
// bytes, so that a writer of a large frame blocks less often, and returns
// what the pipe holds afterwards. It never shrinks a pipe.
//
// The result may be less than size. On Linux a process without
// CAP_SYS_RESOURCE gets at most /proc/sys/fs/pipe-max-size (1 MiB by
// default), which GrowPipe then settles for, and an unprivileged one
// nothing beyond the default 64 KiB once its user's pipes hold more than
// /proc/sys/fs/pipe-user-pages-soft. Other systems size pipes themselves:
// there GrowPipe returns 0 and an error matching [errors.ErrUnsupported].
// An error says why the pipe did not grow as asked; the pipe works as
// before, so a caller may ignore it.
//
// GrowPipe leaves the file's mode alone, unlike [os.File.Fd], which puts
// the descriptor in blocking mode.
func GrowPipe(f *os.File, size int) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("grow pipe: %w", err)
	}
	var got int
	ctlErr := rc.Control(func(fd uintptr) {
		got, err = growPipe(fd, size)
	})
	if ctlErr != nil {
		return 0, fmt.Errorf("grow pipe: %w", ctlErr)
	}
	return got, err
}

func growPipe(fd uintptr, size int) (int, error) {
	cur, err := unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
	if err != nil {
		return 0, fmt.Errorf("grow pipe: size of descriptor %d: %w", fd, err)
	}
	if size <= cur {
		return cur, nil
	}
	// The kernel reads the size as 32 bits: more would wrap round.
	size = int(min(int64(size), math.MaxInt32))
	got, err := unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
	if err == unix.EPERM {
		// Over the limit for unprivileged processes: settle for the limit.
		if max := pipeMaxSize(); max > cur && max < size {
			got, err = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, max)
		}
	}
	if err != nil {
		return cur, fmt.Errorf("grow pipe from %d to %d bytes: %w", cur, size, err)
	}
	return got, nil
}

// pipeMaxSize returns the largest pipe a process without CAP_SYS_RESOURCE
// may ask for, or 0 when it cannot tell.
func pipeMaxSize() int {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}
