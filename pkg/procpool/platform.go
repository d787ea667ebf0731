package procpool

import (
	"errors"
	"fmt"
)

// platformError is New's error for a configuration that this platform
// cannot run, or nil. noProcesses says why worker processes do not run here
// (nil where they do); rss reads a process's resident memory, -1 where it
// cannot, and is tried on pid, this process, when Config.MaxMemoryPerWorker
// needs it. A limit that cannot be enforced is an error, never silently off.
func platformError(cfg Config, goos string, noProcesses error, rss func(pid int) int64, pid int) error {
	if cfg.Backend != Processes {
		return nil
	}
	if noProcesses != nil {
		return fmt.Errorf("%w (GOOS=%s)", noProcesses, goos)
	}
	if cfg.MaxMemoryPerWorker > 0 && rss(pid) < 0 {
		return fmt.Errorf("procpool: Config.MaxMemoryPerWorker is set, but a process's resident memory cannot be read on %s: %w", goos, errors.ErrUnsupported)
	}
	return nil
}
