package procpool

// What New refuses on a platform that cannot run it: every branch, on every
// platform, with the platform's facts passed in.

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/procfs"
)

func TestPlatformErrorNoProcesses(t *testing.T) {
	readable := func(int) int64 { return 1 << 20 }
	err := platformError(Config{}, "windows", ErrUnsupported, readable, 1)
	require.ErrorIs(t, err, ErrUnsupported)
	assert.Contains(t, err.Error(), "worker processes are not supported on this platform yet")
	assert.Contains(t, err.Error(), "Goroutines backend is")
	assert.Contains(t, err.Error(), "windows")
	assert.NoError(t, platformError(Config{Backend: Goroutines}, "windows", ErrUnsupported, readable, 1),
		"the Goroutines backend runs everywhere")
	assert.NoError(t, platformError(Config{Backend: Goroutines, MaxMemoryPerWorker: 1}, "windows", ErrUnsupported, readable, 1))
}

func TestPlatformErrorMemory(t *testing.T) {
	unreadable := func(int) int64 { return -1 }
	err := platformError(Config{MaxMemoryPerWorker: 1 << 30}, "plan9", nil, unreadable, 1)
	require.ErrorIs(t, err, errors.ErrUnsupported)
	assert.NotErrorIs(t, err, ErrUnsupported, "falling back to goroutines is no answer to a memory limit")
	assert.Contains(t, err.Error(), "Config.MaxMemoryPerWorker")
	assert.Contains(t, err.Error(), "plan9")
	assert.NoError(t, platformError(Config{}, "plan9", nil, unreadable, 1), "no limit, nothing to read")
	assert.NoError(t, platformError(Config{MaxMemoryPerWorker: 1 << 30}, "linux", nil, func(int) int64 { return 0 }, 1))
}

// TestPlatformHere checks the facts of the platform the tests run on.
func TestPlatformHere(t *testing.T) {
	err := platformError(Config{MaxMemoryPerWorker: 1 << 30}, runtime.GOOS, noProcesses, procfs.ResidentMemory, os.Getpid())
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd":
		assert.NoError(t, err)
	case "windows":
		assert.ErrorIs(t, err, ErrUnsupported)
	}
}
