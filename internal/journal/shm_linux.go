package journal

import (
	"os"

	"golang.org/x/sys/unix"
)

// create makes an anonymous memory file; a temporary file where memfd is
// not allowed (an old kernel, a seccomp filter).
func create() (*os.File, error) {
	fd, err := unix.MemfdCreate("procpool-journal", unix.MFD_CLOEXEC)
	if err != nil {
		return createTemp()
	}
	return os.NewFile(uintptr(fd), "procpool-journal"), nil
}
