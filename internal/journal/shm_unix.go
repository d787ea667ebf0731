//go:build unix

package journal

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Create returns a file of Size bytes to pass to a worker, and the parent's
// mapping of it, to Peek at while the worker lives, to Read once it is dead
// and then to Unmap.
func Create() (*os.File, []byte, error) {
	f, err := create()
	if err != nil {
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	if err := f.Truncate(Size); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal: %w", err)
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, Size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("journal: mmap: %w", err)
	}
	return f, mem, nil
}

// createTemp is a file nobody else can open: created in the temporary
// directory, then unlinked.
func createTemp() (*os.File, error) {
	f, err := os.CreateTemp("", "procpool-journal-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}

// Open maps the journal its parent passed as file f, for writing.
func Open(f *os.File) ([]byte, error) {
	mem, err := unix.Mmap(int(f.Fd()), 0, Size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("journal: mmap: %w", err)
	}
	return mem, nil
}

// Unmap releases a mapping from Create or Open.
func Unmap(mem []byte) error { return unix.Munmap(mem) }
