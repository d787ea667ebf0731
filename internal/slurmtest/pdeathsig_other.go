//go:build unix && !linux

package slurmtest

import "syscall"

// dieWithParent does nothing: without Linux's Pdeathsig, a test binary that
// is killed leaves its server running, and a Stop or Kill ends it.
func dieWithParent(*syscall.SysProcAttr) {}
