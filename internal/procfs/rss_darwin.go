package procfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// taskInfo is struct proc_taskinfo of <sys/proc_info.h>, which
// proc_pidinfo(pid, PROC_PIDTASKINFO, ...) fills.
type taskInfo struct {
	virtualSize  uint64
	residentSize uint64
	totalUser    uint64
	totalSystem  uint64
	threadsUser  uint64
	threadsSys   uint64
	policy       int32
	faults       int32
	pageins      int32
	cowFaults    int32
	messagesSent int32
	messagesRecv int32
	syscallsMach int32
	syscallsUnix int32
	csw          int32
	threadnum    int32
	numrunning   int32
	priority     int32
}

const (
	procInfoCallPIDInfo = 2 // PROC_INFO_CALL_PIDINFO
	procPIDTaskInfo     = 4 // PROC_PIDTASKINFO
)

// ResidentMemory returns a process's resident set size in bytes, or -1 if
// it cannot be read (the process is gone, or not ours to inspect).
//
// It makes the proc_info system call that libproc's proc_pidinfo wraps,
// which without cgo is out of reach.
func ResidentMemory(pid int) int64 {
	var ti taskInfo
	n, _, errno := unix.Syscall6(unix.SYS_PROC_INFO, procInfoCallPIDInfo, uintptr(pid), procPIDTaskInfo, 0,
		uintptr(unsafe.Pointer(&ti)), unsafe.Sizeof(ti))
	if errno != 0 || n != unsafe.Sizeof(ti) {
		return -1
	}
	return int64(ti.residentSize)
}
