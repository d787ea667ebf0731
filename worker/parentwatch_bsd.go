//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package worker

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/internal/procfs"
)

// watchParent makes this worker die with its parent, as Pdeathsig makes it
// on Linux: a goroutine waits on a kqueue for the parent's exit, then kills
// the worker and the process group it leads, its tasks' children with it.
//
// A worker exits at the end of its stdin anyway, even mid-task; this is the
// second guard, for a stdin that outlives the parent (another process holds
// the pipe) and for a worker too stuck to read it. A worker whose parent is
// init from the start (a launcher that daemonized it) watches nothing.
func watchParent() {
	ppid := os.Getppid()
	if ppid <= 1 {
		return
	}
	wait, err := procfs.WatchExit(ppid)
	if err == unix.ESRCH || os.Getppid() != ppid {
		orphaned() // the parent exited before the watch began
	}
	if err != nil {
		return // no kqueue to be had: stdin's end is the only guard
	}
	go func() {
		if wait() == nil {
			orphaned()
		}
	}()
}

// orphaned kills this worker, whose parent is gone, with the process group
// it leads.
func orphaned() {
	if unix.Getpgrp() == os.Getpid() {
		_ = unix.Kill(0, unix.SIGKILL)
	}
	_ = unix.Kill(os.Getpid(), unix.SIGKILL)
}
