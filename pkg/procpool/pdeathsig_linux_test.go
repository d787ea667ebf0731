package procpool_test

import "syscall"

// pdeathsig is the attribute of a child that gets SIGKILL when the thread
// that started it ends.
func pdeathsig() *syscall.SysProcAttr { return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} }
