package procpool_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// Under Respawn a death costs exactly the call that was running; the calls
// the dead worker held but had not started run on its replacement.
func TestRespawnLosesOnlyTheRunningCall(t *testing.T) {
	for _, how := range []string{"exit1", "sigkill", "concurrent-map-writes"} {
		t.Run(how, func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 1, Prefetch: 3, OnCrash: procpool.Respawn})
			before := p.Workers()
			crashed := Crash.Submit(p, how)
			after := make([]*procpool.Future[int], 6)
			for i := range after {
				after[i] = Square.Submit(p, i)
			}
			_, err := crashed.Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrWorkerLost)
			require.NotErrorIs(t, err, procpool.ErrBrokenPool)
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, before[0], exit.PID)
			for i, f := range after {
				v, err := f.Get(ctx(t))
				require.NoError(t, err, "call %d", i)
				assert.Equal(t, i*i, v)
			}
			now := p.Workers()
			require.Len(t, now, 1)
			assert.NotEqual(t, before, now, "the dead worker was replaced")
			st := p.Stats()
			assert.Equal(t, 1, st.Deaths)
			assert.Equal(t, 1, st.Lost)
			assert.Equal(t, 1, st.Workers[0].Restarts)
			require.NoError(t, p.Close())
		})
	}
}

func TestRetries(t *testing.T) {
	t.Run("a transient death becomes a success", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 1})
		marker := filepath.Join(t.TempDir(), "crashed")
		got, err := CrashOnce.Submit(p, marker).Get(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, marker, got)
		assert.Equal(t, 1, p.Stats().Retried)
		require.NoError(t, p.Close())
	})
	t.Run("a poison call does not sink its chunk", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 1})
		in := make([]int, 40)
		for i := range in {
			in[i] = i
		}
		_, err := Poison.Map(ctx(t), p, in, procpool.Chunksize(10))
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		assert.Contains(t, err.Error(), "map element 13")
		var exit *procpool.WorkerExitError
		require.ErrorAs(t, err, &exit)
		assert.Equal(t, 13, exit.ExitCode)
		st := p.Stats()
		assert.Equal(t, 39, st.Completed, "every neighbour completed")
		assert.Equal(t, 1, st.Lost)
		assert.Equal(t, 10, st.Retried, "the lost chunk was retried call by call")
		assert.Equal(t, 2, st.Deaths, "the poison call killed a worker on each try")
		require.NoError(t, p.Close())
	})
}

func TestCrashLoopGuard(t *testing.T) {
	t.Run("deaths in a row break the pool", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: procpool.Respawn, MaxConsecutiveDeaths: 3})
		fs := make([]*procpool.Future[int], 10)
		for i := range fs {
			fs[i] = Crash.Submit(p, "exit1")
		}
		var lost, broken int
		for _, f := range fs {
			_, err := f.Get(ctx(t))
			switch {
			case errors.Is(err, procpool.ErrBrokenPool):
				broken++
			case errors.Is(err, procpool.ErrWorkerLost):
				lost++
			default:
				t.Fatalf("unexpected error %v", err)
			}
		}
		assert.Equal(t, 3, lost, "three deaths, then the guard")
		assert.Equal(t, 7, broken)
		_, err := Square.Submit(p, 1).Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrBrokenPool)
		assert.Contains(t, err.Error(), "exited with code 1")
		require.NoError(t, p.Close())
	})
	t.Run("deaths among progress do not", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: procpool.Respawn, MaxConsecutiveDeaths: 2})
		var crashes, squares []*procpool.Future[int]
		for i := range 8 {
			crashes = append(crashes, Crash.Submit(p, "sigkill"))
			squares = append(squares, Square.Submit(p, i))
		}
		for i := range 8 {
			_, err := crashes[i].Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrWorkerLost)
			v, err := squares[i].Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, i*i, v)
		}
		assert.Equal(t, 8, p.Stats().Deaths)
		require.NoError(t, p.Close())
	})
}

func TestMaxTasksPerWorker(t *testing.T) {
	// A backlog far larger than workers × limit must complete (CPython
	// gh-115634 deadlocked here).
	p, _ := newPool(t, procpool.Config{Workers: 2, MaxTasksPerWorker: 3})
	fs := make([]*procpool.Future[int], 30)
	for i := range fs {
		fs[i] = PID.Submit(p, struct{}{})
	}
	count := map[int]int{}
	for _, f := range fs {
		pid, err := f.Get(ctx(t))
		require.NoError(t, err)
		count[pid]++
	}
	assert.GreaterOrEqual(t, len(count), 10, "every worker retired after 3 calls")
	for pid, n := range count {
		assert.LessOrEqual(t, n, 3, "worker %d", pid)
	}
	var st procpool.Stats
	require.Eventually(t, func() bool {
		st = p.Stats()
		return len(st.Workers) == 2 && st.Workers[0].RSS > 0 && st.Workers[1].RSS > 0
	}, 5*time.Second, time.Millisecond, "two live workers, the retired ones gone")
	assert.Zero(t, st.Deaths, "retirement is not a death")
	assert.Equal(t, 30, st.Completed)
	require.Len(t, st.Workers, 2)
	restarts := 0
	for _, ws := range st.Workers {
		assert.LessOrEqual(t, ws.Tasks, 3)
		restarts += ws.Restarts
	}
	assert.GreaterOrEqual(t, restarts, 8, "30 calls at 3 per worker need 10 workers over 2 slots")
	require.NoError(t, p.Close())
}

func TestMaxMemoryPerWorker(t *testing.T) {
	t.Run("a leaking worker is retired", func(t *testing.T) {
		p, logs := newPool(t, procpool.Config{Workers: 1, MaxMemoryPerWorker: 100 << 20})
		pids := map[int]bool{}
		for range 6 {
			n, err := Leak.Submit(p, 40).Get(ctx(t))
			require.NoError(t, err)
			assert.LessOrEqual(t, n, 3, "no worker holds more than 3 leaks of 40 MiB")
			pids[p.Workers()[0]] = true
		}
		assert.Greater(t, len(pids), 1)
		assert.Contains(t, logs.String(), "retiring worker: resident memory over MaxMemoryPerWorker")
		assert.Zero(t, p.Stats().Deaths)
		require.NoError(t, p.Close())
	})
	t.Run("a worker that starts above the limit is kept", func(t *testing.T) {
		p, logs := newPool(t, procpool.Config{Workers: 1, MaxMemoryPerWorker: 1})
		pid := p.Workers()[0]
		for range 5 {
			_, err := Square.Submit(p, 2).Get(ctx(t))
			require.NoError(t, err)
		}
		assert.Equal(t, []int{pid}, p.Workers())
		assert.Contains(t, logs.String(), "a fresh worker is already over MaxMemoryPerWorker")
		require.NoError(t, p.Close())
	})
}

func TestInitializer(t *testing.T) {
	dir := t.TempDir()
	t.Run("runs in every worker, replacements too", func(t *testing.T) {
		hello := filepath.Join(dir, "hello")
		p, _ := newPool(t, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Initializer: SetGreeting.Bind(hello)})
		for range 4 {
			g, err := Greeting.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, hello, g)
		}
		_, err := Crash.Submit(p, "exit1").Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		for range 4 {
			g, err := Greeting.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, hello, g)
		}
		require.NoError(t, p.Close())
	})
	t.Run("a failure fails New", func(t *testing.T) {
		noLeaks(t)
		bad := filepath.Join(dir, "bad")
		require.NoError(t, os.WriteFile(bad, nil, 0o600))
		_, err := procpool.New(procpool.Config{Workers: 2, Initializer: SetGreeting.Bind(bad), Logger: nullLogger()})
		require.ErrorIs(t, err, procpool.ErrInitFailed)
		require.ErrorIs(t, err, procpool.ErrStartup)
		assert.Contains(t, err.Error(), "greeting file exists: "+bad)
	})
	t.Run("a failure in a replacement breaks the pool", func(t *testing.T) {
		later := filepath.Join(dir, "later")
		p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: procpool.Respawn, Initializer: SetGreeting.Bind(later)})
		require.NoError(t, os.WriteFile(later, nil, 0o600))
		_, err := Crash.Submit(p, "exit1").Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		require.Eventually(t, func() bool {
			_, err = Square.Submit(p, 2).Get(ctx(t))
			return err != nil
		}, 5*time.Second, 10*time.Millisecond)
		require.ErrorIs(t, err, procpool.ErrBrokenPool)
		require.ErrorIs(t, err, procpool.ErrInitFailed)
		assert.Contains(t, err.Error(), "greeting file exists")
		require.NoError(t, p.Close())
	})
}

func TestTaskTimeout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		submit   func(p *procpool.Pool) *procpool.Future[int]
		replaced bool
	}{
		{"a task that heeds its context stops", func(p *procpool.Pool) *procpool.Future[int] { return Sleep.Submit(p, 60_000) }, false},
		{"a task that ignores it is killed", func(p *procpool.Pool) *procpool.Future[int] { return Stubborn.Submit(p, "") }, true},
		{"a task that ignores SIGTERM too is killed", func(p *procpool.Pool) *procpool.Future[int] { return Stubborn.Submit(p, "term") }, true},
	} {
		for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, policy), func(t *testing.T) {
				p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: policy, TaskTimeout: 200 * time.Millisecond, KillGrace: 100 * time.Millisecond})
				before := p.Workers()
				slow := tc.submit(p)
				others := []*procpool.Future[int]{Square.Submit(p, 2), Square.Submit(p, 3)}
				start := time.Now()
				_, err := slow.Get(ctx(t))
				require.ErrorIs(t, err, procpool.ErrTaskTimeout)
				assert.Less(t, time.Since(start), 5*time.Second, "the future fails on time")
				for i, f := range others {
					v, err := f.Get(ctx(t))
					require.NoError(t, err, "no other task is lost")
					assert.Equal(t, (i+2)*(i+2), v)
				}
				require.Eventually(t, func() bool { return len(p.Workers()) == 1 }, 5*time.Second, 10*time.Millisecond)
				if tc.replaced {
					assert.NotEqual(t, before, p.Workers())
				} else {
					assert.Equal(t, before, p.Workers())
				}
				st := p.Stats()
				assert.Equal(t, 1, st.TimedOut)
				assert.Zero(t, st.Deaths)
				require.NoError(t, p.Close())
			})
		}
	}
}

func TestCancelRunningStubbornTask(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, KillGrace: 50 * time.Millisecond})
	before := p.Workers()
	f := Stubborn.Submit(p, "")
	time.Sleep(50 * time.Millisecond) // let it start
	assert.True(t, f.Cancel())
	_, err := f.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	v, err := Square.Submit(p, 4).Get(ctx(t))
	require.NoError(t, err, "the pool serves on, under Break too")
	assert.Equal(t, 16, v)
	assert.NotEqual(t, before, p.Workers(), "the worker was replaced")
	assert.True(t, f.Cancel(), "it stays cancelled")
	require.NoError(t, p.Close())
}

// TestHeavyMapAfterTinyCallsIsBalanced: a pool that has just served tiny
// calls (and so expects runs to take microseconds) still spreads a Map of
// slow calls evenly; no worker hoards the chunks it would have prefetched
// for quick ones.
func TestHeavyMapAfterTinyCallsIsBalanced(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	tiny := make([]int, 20_000)
	_, err := Square.Map(ctx(t), p, tiny, procpool.Chunksize(1))
	require.NoError(t, err)

	in := make([]int, 200)
	for i := range in {
		in[i] = 5
	}
	pids, err := SlowPID.Map(ctx(t), p, in)
	require.NoError(t, err)
	per := map[int]int{}
	for _, pid := range pids {
		per[pid]++
	}
	require.Len(t, per, 2, "both workers ran calls: %v", per)
	for pid, n := range per {
		assert.GreaterOrEqual(t, n, 50, "worker %d ran %d of 200 calls: %v", pid, n, per)
	}
	require.NoError(t, p.Close())
}
