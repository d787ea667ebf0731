//go:build unix

package procpool_test

// Launchers: Exec through a command, a Launcher of one's own, and their errors.

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// viaShell is an Exec launcher that starts each worker as a child of sh,
// which does not pass on procpool's environment marker: the worker must
// find its role in argv.
func viaShell(t *testing.T, workers int) procpool.Launcher {
	exe, err := os.Executable()
	require.NoError(t, err)
	return procpool.Exec(workers, "sh", "-c", `"$0" "$@"`, exe)
}

// TestExecLauncher runs workers through a launcher command, as srun or
// kubectl exec -i would: the results are right, the workers are the
// launcher's children, and Config.Env arrives through the handshake.
func TestExecLauncher(t *testing.T) {
	l := viaShell(t, 2)
	p, _ := newPool(t, procpool.Config{Launcher: l, Env: []string{"PROCPOOL_TEST_LAUNCHED=yes"}})

	in := make([]int, 500)
	for i := range in {
		in[i] = i
	}
	out, err := Square.Map(ctx(t), p, in)
	require.NoError(t, err)
	for i, v := range out {
		require.Equal(t, i*i, v)
	}
	v, err := LauncherEnv.Submit(p, "PROCPOOL_TEST_LAUNCHED").Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, "yes", v)

	st := p.Stats()
	require.Len(t, st.Workers, 2)
	for _, w := range st.Workers {
		assert.Equal(t, l.String(), w.Host)
		assert.Equal(t, int64(-1), w.RSS, "memory of a worker the pool did not start itself is unknown")
		ppid, _, ok := procStat(w.PID)
		require.True(t, ok)
		assert.NotEqual(t, os.Getpid(), ppid, "worker %d is a child of the launcher, not of the test", w.PID)
		assert.Contains(t, children(), ppid, "worker %d's parent is the launcher command", w.PID)
	}
	require.NoError(t, p.Close())
}

// TestExecLauncherWorkerDies: the death of a launched worker names the
// launcher and the worker's own pid, and Respawn starts another through it.
func TestExecLauncherWorkerDies(t *testing.T) {
	l := viaShell(t, 1)
	p, _ := newPool(t, procpool.Config{Launcher: l, OnCrash: procpool.Respawn})
	pid := p.Workers()[0]
	_, err := Crash.Submit(p, "exit3").Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrWorkerLost)
	var we *procpool.WorkerExitError
	require.ErrorAs(t, err, &we)
	assert.Equal(t, pid, we.PID)
	assert.Equal(t, l.String(), we.Host)
	assert.Contains(t, err.Error(), "on "+l.String())
	v, err := Square.Submit(p, 9).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 81, v)
	require.NoError(t, p.Close())
}

// recordingLauncher is a Launcher of the user's own: it runs this program
// and records what it was asked for.
type recordingLauncher struct {
	workers int
	mu      sync.Mutex
	specs   []procpool.WorkerSpec
}

func (l *recordingLauncher) Workers() int   { return l.workers }
func (l *recordingLauncher) String() string { return "recorder" }

func (l *recordingLauncher) Command(_ context.Context, spec procpool.WorkerSpec) (*exec.Cmd, error) {
	l.mu.Lock()
	l.specs = append(l.specs, spec)
	l.mu.Unlock()
	cmd := exec.Command(spec.Executable, spec.Args...)
	cmd.Env = spec.Env
	return cmd, nil
}

func (l *recordingLauncher) indexes() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var ix []int
	for _, s := range l.specs {
		ix = append(ix, s.Index)
	}
	return ix
}

// TestCustomLauncher: a Launcher of one's own decides the number of
// workers, gets each worker's index and role marker, and a replacement has
// the index of the worker it replaces.
func TestCustomLauncher(t *testing.T) {
	l := &recordingLauncher{workers: 3}
	p, _ := newPool(t, procpool.Config{Launcher: l, OnCrash: procpool.Respawn})
	require.Len(t, p.Workers(), 3)
	ix := l.indexes()
	slices.Sort(ix)
	require.Equal(t, []int{0, 1, 2}, ix)
	for _, s := range l.specs {
		require.Len(t, s.Args, 1)
		assert.Regexp(t, `^--procpool-worker=\d+$`, s.Args[0])
		assert.Contains(t, s.Env, "PROCPOOL_WORKER="+s.Args[0][len("--procpool-worker="):])
	}
	_, err := Crash.Submit(p, "sigkill").Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrWorkerLost)
	require.Eventually(t, func() bool { return len(l.indexes()) == 4 }, 5*time.Second, 10*time.Millisecond)
	replaced := l.indexes()[3]
	slot := -1
	require.Eventually(t, func() bool {
		for _, w := range p.Stats().Workers {
			if w.Restarts == 1 {
				slot = w.Slot
			}
		}
		return slot >= 0
	}, 5*time.Second, 10*time.Millisecond)
	assert.Equal(t, slot, replaced, "the replacement keeps its predecessor's index")
	require.NoError(t, p.Close())
}

// TestLauncherErrors: configurations that cannot start a worker fail New
// with ErrStartup and say why.
func TestLauncherErrors(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  procpool.Config
		want string
	}{
		{"no workers", procpool.Config{Remote: []procpool.Launcher{procpool.Exec(0, "sh")}}, "no workers"},
		{"goroutines", procpool.Config{Backend: procpool.Goroutines, Remote: []procpool.Launcher{procpool.Exec(1, "sh")}}, "Goroutines backend"},
		{"missing launcher", procpool.Config{Launcher: procpool.Exec(1, "/nonexistent/launcher")}, "/nonexistent/launcher"},
		{"empty command", procpool.Config{Launcher: procpool.Exec(1)}, "empty command"},
		{"not a worker", procpool.Config{Launcher: procpool.Exec(1, "true")}, "exited before the handshake"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			noLeaks(t)
			tt.cfg.Logger = nullLogger()
			p, err := procpool.New(tt.cfg)
			require.Nil(t, p)
			require.ErrorIs(t, err, procpool.ErrStartup)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}
