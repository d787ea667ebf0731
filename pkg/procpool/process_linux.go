package procpool

// Worker processes on Linux: Pdeathsig, and waitid's WNOWAIT.

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// setProcAttr makes a worker process lead a process group of its own, and
// die with this one: Pdeathsig sends it SIGKILL when the thread that started
// it ends, which the spawner makes the end of the pool or of this process.
func setProcAttr(attr *syscall.SysProcAttr) {
	attr.Setpgid = true
	attr.Pdeathsig = syscall.SIGKILL
}

// awaitExit blocks until the child pid has exited, without reaping it: it
// stays a zombie, which keeps its pid and process group id from being reused
// until it is reaped.
func awaitExit(pid int) error {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			return err
		}
	}
}
