//go:build unix && !linux

package procpool_test

import "syscall"

// pdeathsig is no attribute at all: Pdeathsig is Linux's.
func pdeathsig() *syscall.SysProcAttr { return &syscall.SysProcAttr{} }
