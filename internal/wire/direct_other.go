//go:build !linux

package wire

import (
	"io"
	"os"
)

// Direct returns f: on this system its reads and writes go through the Go
// runtime as they are. (On Linux they are raw system calls, which spare the
// runtime's monitor thread a wake-up per call; elsewhere the runtime makes
// system calls through libc, or a raw one is not a stable interface.)
func Direct(f *os.File) io.ReadWriter { return f }
