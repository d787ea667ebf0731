//go:build !linux && !darwin && !freebsd

package procfs

// ResidentMemory returns -1: this platform's processes' resident memory is
// not read here.
func ResidentMemory(pid int) int64 { return -1 }
