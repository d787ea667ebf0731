//go:build !unix

package wire

import (
	"io"
	"os"
)

// Direct returns f: on this system its reads and writes go through the Go
// runtime as they are. (On Unix they are raw system calls, which spare the
// runtime's monitor thread a wake-up per call.)
func Direct(f *os.File) io.ReadWriter { return f }
