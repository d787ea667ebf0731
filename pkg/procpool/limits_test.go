//go:build unix

package procpool_test

// Resource limits (address space, process count, descriptors) give clear errors.

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// A worker that cannot even start, because of a small address-space limit
// or process-count limit: New fails promptly with ErrStartup and says what
// the worker printed.
func TestWorkerThatCannotStart(t *testing.T) {
	t.Run("address space", func(t *testing.T) {
		startWatchdog(t, 30*time.Second)
		noLeaks(t)
		_ = relCannotStart(t, []string{"/bin/sh", "-c", `ulimit -v 20000; exec "$0"`, os.Args[0]})
	})
	t.Run("process count", func(t *testing.T) {
		startWatchdog(t, 30*time.Second)
		noLeaks(t)
		prlimit, err := exec.LookPath("prlimit")
		if err != nil {
			t.Skip("no prlimit")
		}
		bin := os.Args[0]
		cmd := []string{prlimit, "--nproc=1", "--"}
		if os.Geteuid() == 0 {
			// Root ignores RLIMIT_NPROC: run the worker as nobody, from a
			// copy of the test binary that nobody may execute.
			setpriv, err := exec.LookPath("setpriv")
			if err != nil {
				t.Skip("running as root, and no setpriv to drop privileges")
			}
			bin = relWorldExecutableCopy(t)
			cmd = append([]string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"}, cmd...)
		}
		err = relCannotStart(t, append(cmd, bin))
		// The Go runtime says it could not create a thread: with cgo
		// "runtime/cgo: pthread_create failed", without "runtime: failed to
		// create new OS thread" then "fatal error: newosproc".
		assert.Regexp(t, `pthread_create failed|newosproc|failed to create new OS thread`, err.Error(),
			"BUG: the error's headline must be the runtime's complaint, not the last line of its register dump")
	})
}

func relCannotStart(t *testing.T, command []string) error {
	t.Helper()
	start := time.Now()
	p, err := procpool.New(relCfg(procpool.Config{Workers: 2, StartTimeout: 10 * time.Second, Command: command, Logger: nullLogger()}))
	took := time.Since(start)
	require.Nil(t, p)
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Less(t, took, 5*time.Second, "New waited %s for a worker that died at once", took)
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Positive(t, exit.PID)
	assert.True(t, exit.ExitCode != 0 || exit.Signal != "", "it failed")
	if exit.Signal == "" {
		assert.NotEmpty(t, exit.Stderr, "what it printed is kept")
	}
	t.Logf("after %s: %v", took.Round(time.Millisecond), err)
	return err
}

// relWorldExecutableCopy copies the test binary into a directory anyone may
// enter, and returns its path.
func relWorldExecutableCopy(t *testing.T) string {
	dir, err := os.MkdirTemp("", "procpool-rel-")
	require.NoError(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	require.NoError(t, os.Chmod(dir, 0o755))
	src, err := os.Open(os.Args[0])
	require.NoError(t, err)
	defer src.Close()
	dst := filepath.Join(dir, "procpool.test")
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	require.NoError(t, err)
	_, err = io.Copy(out, src)
	require.NoError(t, err)
	require.NoError(t, out.Close())
	return dst
}

// relLowerFDLimit sets the soft RLIMIT_NOFILE of this process to n, and
// returns what restores it.
func relLowerFDLimit(t *testing.T, n uint64) (restore func()) {
	var orig syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &orig))
	low := orig
	setLimit(&low.Cur, n)
	require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low))
	restored := false
	restore = func() {
		if !restored {
			restored = true
			require.NoError(t, syscall.Setrlimit(syscall.RLIMIT_NOFILE, &orig))
		}
	}
	t.Cleanup(restore) // before noLeaks counts the descriptors
	return restore
}

// setLimit sets a field of a syscall.Rlimit, which is a uint64 on Linux and
// an int64 on the BSDs.
func setLimit[T int64 | uint64](field *T, n uint64) { *field = T(n) }

// The parent runs out of file descriptors while it spawns workers: New, or
// the respawn of a dead worker, fails with a clear error, and nothing leaks.
func TestParentOutOfFDs(t *testing.T) {
	t.Run("New", func(t *testing.T) {
		startWatchdog(t, 30*time.Second)
		noLeaks(t)
		restore := relLowerFDLimit(t, uint64(openFDs(t)+8)) // room for one worker or two, not four
		start := time.Now()
		p, err := procpool.New(relCfg(procpool.Config{Workers: 4, Logger: nullLogger()}))
		took := time.Since(start)
		restore()
		require.Nil(t, p)
		require.ErrorIs(t, err, procpool.ErrStartup)
		require.ErrorIs(t, err, syscall.EMFILE, "the error says why: %v", err)
		assert.Contains(t, err.Error(), "too many open files")
		assert.Less(t, took, 5*time.Second)
		t.Logf("after %s: %v", took.Round(time.Millisecond), err)
	})
	t.Run("respawn", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 1, OnCrash: procpool.Respawn})
		running := Sleep.Submit(p, 60_000)
		time.Sleep(20 * time.Millisecond)
		pid := p.Workers()[0]
		// Less than the dead worker's descriptors give back: no pipe can be made.
		restore := relLowerFDLimit(t, uint64(openFDs(t)-6))
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) // relKill would need a descriptor to check the pid
		_, err := running.Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		require.Eventually(t, func() bool {
			_, err = Square.Submit(p, 2).Get(ctx(t))
			return err != nil
		}, 5*time.Second, 5*time.Millisecond)
		restore()
		require.ErrorIs(t, err, procpool.ErrBrokenPool, "no replacement could start")
		require.ErrorIs(t, err, procpool.ErrStartup)
		require.ErrorIs(t, err, syscall.EMFILE, "the error says why: %v", err)
		t.Logf("%v", err)
		require.NoError(t, p.Terminate())
	})
}
