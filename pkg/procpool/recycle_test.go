//go:build unix

package procpool_test

// Worker retirement by MaxTasksPerWorker and MaxMemoryPerWorker, kills included.

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

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
		// Leaks of 8 MiB, each quicker than the memory watcher's period:
		// the call that takes the worker over the limit is over before the
		// watcher can catch it growing, and the worker is retired after it.
		p, logs := newPool(t, procpool.Config{Workers: 1, MaxMemoryPerWorker: 64 << 20})
		pids := map[int]bool{}
		for range 12 {
			n, err := Leak.Submit(p, 8).Get(ctx(t))
			require.NoError(t, err)
			assert.LessOrEqual(t, n, 8, "no worker holds more than 8 leaks of 8 MiB")
			pids[p.Workers()[0]] = true
		}
		assert.Greater(t, len(pids), 1)
		assert.Contains(t, logs.String(), "retiring worker: resident memory over MaxMemoryPerWorker")
		assert.Zero(t, p.Stats().Deaths)
		assert.Zero(t, p.Stats().MemoryKills)
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

// Workers killed while they are being recycled after every call
// (MaxTasksPerWorker: 1): a kill of a retiring worker is no crash, a kill of
// a working one costs a retry, and the Map ends.
func TestDeathsDuringRecycling(t *testing.T) {
	p, _ := relPool(t, 60*time.Second, procpool.Config{
		Workers: 2, OnCrash: procpool.Respawn, Retries: 3, MaxTasksPerWorker: 1, MaxConsecutiveDeaths: 1000,
	})
	var kills atomic.Int64
	stop := make(chan struct{})
	chaos := relChaos(p, 7*time.Millisecond, stop, &kills)
	lost := 0
	for range 3 {
		in := make([]relKillArg, 40)
		for i := range in {
			in[i] = relKillArg{X: i, Ms: 3}
		}
		out, err := RelKillPeer.Map(ctx(t), p, in, procpool.Chunksize(1))
		if relMapOutcome(t, out, err, len(in)) {
			lost++
		}
	}
	close(stop)
	chaos.Wait()
	require.Eventually(t, func() bool { return len(p.Workers()) == 2 }, 10*time.Second, 5*time.Millisecond)
	st := p.Stats()
	t.Logf("%d kills, %d deaths, %d retried, %d lost; %d of 3 Maps lost a call", kills.Load(), st.Deaths, st.Retried, st.Lost, lost)
	assert.Positive(t, kills.Load())
	assert.LessOrEqual(t, st.Deaths, int(kills.Load()), "a death is a kill; a retirement is not a death")
	restarts := 0
	for _, w := range st.Workers {
		restarts += w.Restarts
	}
	assert.GreaterOrEqual(t, restarts, 120-2, "every call retired its worker")
	require.NoError(t, p.Close())
}
