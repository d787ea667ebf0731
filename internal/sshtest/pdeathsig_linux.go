package sshtest

import "syscall"

// dieWithParent makes the server die with the test binary, even one killed.
func dieWithParent(attr *syscall.SysProcAttr) { attr.Pdeathsig = syscall.SIGKILL }
