package procfs

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// kinfoProc is the start of struct kinfo_proc of <sys/user.h>, up to
// ki_rssize, with C's pointers as uintptr and its longs as int, which keeps
// the layout on every FreeBSD port.
type kinfoProc struct {
	structSize int32
	layout     int32
	_          [8]uintptr // ki_args … ki_wchan
	pid        int32
	_          [5]int32 // ki_ppid … ki_tsid
	_          [2]int16 // ki_jobc, ki_spare_short1
	_          uint32   // ki_tdev_freebsd11
	_          [4][4]uint32
	_          [5]uint32 // ki_uid … ki_svgid
	_          [2]int16  // ki_ngroups, ki_spare_short2
	_          [16]uint32
	size       uintptr // ki_size, a vm_size_t
	rssize     int     // ki_rssize, a segsz_t: pages
}

// ResidentMemory returns a process's resident set size in bytes, or -1 if
// it cannot be read (the process is gone), from the kern.proc.pid sysctl.
func ResidentMemory(pid int) int64 {
	b, err := unix.SysctlRaw("kern.proc.pid", pid)
	if err != nil || len(b) < int(unsafe.Sizeof(kinfoProc{})) {
		return -1
	}
	var k kinfoProc
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&k)), unsafe.Sizeof(k)), b)
	if int(k.structSize) != len(b) || int(k.pid) != pid {
		return -1 // not the layout this was written for
	}
	return int64(k.rssize) * int64(os.Getpagesize())
}
