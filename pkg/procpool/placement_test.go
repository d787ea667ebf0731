//go:build unix

// Tests of where calls run: tiny calls stay on as many workers as there are
// CPUs, long calls spread over every worker.
package procpool_test

import (
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// placementWorkers outnumbers the CPUs four to one.
func placementWorkers() int { return 4 * runtime.NumCPU() }

// TestTinyCallsStayOnRunningWorkers: when calls take microseconds and the
// workers outnumber the CPUs, waking another worker costs more than the call,
// so the calls stay on about as many workers as there are CPUs.
func TestTinyCallsStayOnRunningWorkers(t *testing.T) {
	n := placementWorkers()
	p, _ := newPool(t, procpool.Config{Workers: n})
	pids, err := PID.Map(ctx(t), p, make([]struct{}, 40_000), procpool.Chunksize(1))
	require.NoError(t, err)
	late := map[int]int{}
	for _, pid := range pids[30_000:] {
		late[pid]++
	}
	assert.LessOrEqual(t, len(late), n/2, "the last 10,000 tiny calls ran on %d of %d workers: %v", len(late), n, late)
	require.NoError(t, p.Close())
}

// TestLongCallsSpreadOverEveryWorker: calls long enough to pay for a
// wake-up go to every worker, even right after tiny calls of another task
// kept most workers asleep.
func TestLongCallsSpreadOverEveryWorker(t *testing.T) {
	n := placementWorkers()
	p, _ := newPool(t, procpool.Config{Workers: n})
	_, err := PID.Map(ctx(t), p, make([]struct{}, 20_000), procpool.Chunksize(1))
	require.NoError(t, err)
	in := make([]int, 2*n)
	for i := range in {
		in[i] = 50
	}
	pids, err := SlowPID.Map(ctx(t), p, in, procpool.Chunksize(1))
	require.NoError(t, err)
	per := map[int]int{}
	for _, pid := range pids {
		per[pid]++
	}
	assert.Len(t, per, n, "%d calls of 50 ms ran on %d of %d workers: %v", len(in), len(per), n, per)
	require.NoError(t, p.Close())
}

// TestChunksDoNotWaitBehindALongCall: by default a worker takes a second
// chunk only while the call it runs is measured to be quick, so a Map's
// chunks run on the free worker instead of queueing behind a long call:
// one never measured, or one of a task measured quick that runs far longer.
func TestChunksDoNotWaitBehindALongCall(t *testing.T) {
	for _, warm := range []bool{false, true} {
		name := map[bool]string{false: "not measured", true: "slower than measured"}[warm]
		t.Run(name, func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 2})
			if warm {
				_, err := Sleep.Map(ctx(t), p, []int{1, 1, 1, 1, 1, 1, 1, 1}, procpool.Chunksize(1))
				require.NoError(t, err)
			}
			long := Sleep.Submit(p, 60_000)
			if warm {
				time.Sleep(20 * time.Millisecond) // far longer than a measured call
			}
			pids, err := PID.Map(ctx(t), p, make([]struct{}, 8), procpool.Chunksize(1))
			require.NoError(t, err)
			assert.Len(t, slices.Compact(slices.Sorted(slices.Values(pids))), 1, "every chunk ran on the free worker: %v", pids)
			select {
			case <-long.Done():
				t.Fatal("the long call ended")
			default:
			}
			require.True(t, long.Cancel())
			require.NoError(t, p.Close())
		})
	}
}
