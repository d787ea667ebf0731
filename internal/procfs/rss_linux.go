package procfs

import (
	"os"
	"strconv"
	"strings"
)

// ResidentMemory returns a process's resident set size in bytes, or -1 if
// it cannot be read (the process is gone, or /proc is not mounted).
func ResidentMemory(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/statm")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return -1
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return -1
	}
	return pages * int64(os.Getpagesize())
}
