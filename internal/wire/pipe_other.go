//go:build !linux

package wire

import (
	"errors"
	"fmt"
	"os"
)

// GrowPipe asks the system to let the pipe that f is an end of hold size
// bytes, and returns what the pipe holds afterwards. This system sizes
// pipes itself: GrowPipe returns 0 and an error matching
// [errors.ErrUnsupported], which a caller may ignore. On Linux it grows
// the pipe (fcntl F_SETPIPE_SZ) up to the system's limit.
func GrowPipe(f *os.File, size int) (int, error) {
	return 0, fmt.Errorf("grow pipe: %w", errors.ErrUnsupported)
}
