package wire

import (
	"errors"
	"io"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Direct returns f, a non-blocking pipe or socket in the runtime poller, as
// an io.ReadWriter whose reads and writes are raw system calls: the Go
// scheduler is not told of them, and waits for readiness in its poller as
// f itself does. On such a descriptor neither call blocks, so there is
// nothing to hand the P over for; and telling the scheduler costs more than
// the call: entering a system call wakes the runtime's monitor thread
// (sysmon) whenever it sleeps because the process was idle, which in a
// worker that waits for each call is every call, a wake-up of a thread of
// its own each, and on a machine of more workers than CPUs those wake-ups
// take CPU from the work.
//
// A read may poll the descriptor for a while before it waits in the poller
// (see [Stream.SetPoll]).
//
// An error of f's closing reads as [os.ErrClosed]; a passed read deadline
// as [os.ErrDeadlineExceeded], as with f. A file that is not in the poller
// (a blocking descriptor) is returned as it is: a raw call on it could
// block the whole process.
func Direct(f *os.File) io.ReadWriter {
	rc, err := f.SyscallConn()
	if err != nil || !nonblocking(rc) {
		return f
	}
	return &direct{f: f, rc: rc}
}

// nonblocking reports whether the descriptor is in non-blocking mode.
func nonblocking(rc syscall.RawConn) bool {
	nb := false
	rc.Control(func(fd uintptr) {
		flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
		nb = err == nil && flags&unix.O_NONBLOCK != 0
	})
	return nb
}

type direct struct {
	f    *os.File
	rc   syscall.RawConn
	poll time.Duration // how long a read that finds nothing tries again before it waits; only the reader uses it
}

// setPoll sets how long a read that finds nothing tries again before it
// waits in the poller.
func (d *direct) setPoll(t time.Duration) { d.poll = t }

func (d *direct) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	var until time.Time // the end of the poll, once a read found nothing
	err := d.rc.Read(func(fd uintptr) bool {
		for {
			r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			switch e {
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				if d.poll <= 0 {
					return false
				}
				if now := time.Now(); until.IsZero() {
					until = now.Add(d.poll)
				} else if now.After(until) {
					return false
				}
				continue
			}
			n, errno = int(r), e
			return true
		}
	})
	switch {
	case err != nil:
		return 0, d.err("read", err)
	case errno != 0:
		return 0, &os.PathError{Op: "read", Path: d.f.Name(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (d *direct) Write(p []byte) (int, error) {
	n := 0
	var errno syscall.Errno
	err := d.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch e {
			case 0:
				n += int(r)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	switch {
	case err != nil:
		return n, d.err("write", err)
	case errno != 0:
		return n, &os.PathError{Op: "write", Path: d.f.Name(), Err: errno}
	}
	return n, nil
}

// err translates the poller's errors into the os package's.
func (d *direct) err(op string, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		err = os.ErrClosed
	}
	return &os.PathError{Op: op, Path: d.f.Name(), Err: err}
}
