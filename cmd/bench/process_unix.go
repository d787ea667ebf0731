//go:build unix

package main

import (
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// newProcessGroup makes cmd lead a process group of its own.
func newProcessGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }

// killGroup sends SIGKILL to the process group pgid.
func killGroup(pgid int) { _ = syscall.Kill(-pgid, syscall.SIGKILL) }

// killProcess sends SIGKILL to pid.
func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// cpuSeconds is the CPU time, user and system, of this process and its
// reaped children.
func cpuSeconds() float64 {
	s := 0.0
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		if syscall.Getrusage(who, &ru) == nil {
			s += tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		}
	}
	return s
}

func tvSeconds(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }

// peakRSS returns the peak resident memory of a process that has ended, in
// bytes, or -1 if unknown: the kernel's count, which wait reports in the
// rusage, in kilobytes on Linux (bytes on macOS). It is the same count of
// pages as the /proc figure the pool's Stats reports, taken at its highest.
func peakRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return -1
	}
	ru, ok := ps.SysUsage().(*syscall.Rusage)
	if !ok {
		return -1
	}
	if runtime.GOOS == "darwin" || runtime.GOOS == "ios" {
		return int64(ru.Maxrss)
	}
	return int64(ru.Maxrss) << 10
}
