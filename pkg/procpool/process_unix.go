//go:build unix

package procpool

// What every Unix does alike for worker processes: signals to process groups.

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// noProcesses is why worker processes do not run here, or nil where they do.
var noProcesses error

// killGroup sends sig to the process group pgid.
func killGroup(pgid int, sig syscall.Signal) error { return unix.Kill(-pgid, sig) }

// signalName names sig as "SIGKILL", or "" if it has no name here.
func signalName(sig syscall.Signal) string { return unix.SignalName(sig) }

// ownSession starts a process in a session of its own.
func ownSession() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setsid: true} }
