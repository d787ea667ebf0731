//go:build unix

package procpool_test

// A thousand pools started and stopped leave no resource behind.

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// Cycles of New/Map/Close and of New/crash/Terminate leave goroutines, file
// descriptors, child processes (zombies included) and memory where they
// started.
func TestLeakCycles(t *testing.T) {
	cycles := relLeakCycles(t)
	limit := 60*time.Second + time.Duration(cycles)*200*time.Millisecond
	startWatchdog(t, limit)
	noLeaks(t)
	in := []int{1, 2, 3, 4, 5, 6, 7, 8}
	// One context for every cycle (each ctx(t) adds a cleanup to the test,
	// which would count as a leak), as long as the watchdog's: a loaded
	// machine takes longer than a minute for them all.
	c, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	mapCycle := func() {
		p, err := procpool.New(relCfg(procpool.Config{Workers: 1, Logger: nullLogger()}))
		require.NoError(t, err)
		out, err := Square.Map(c, p, in)
		require.NoError(t, err)
		require.Equal(t, []int{1, 4, 9, 16, 25, 36, 49, 64}, out)
		require.NoError(t, p.Close())
	}
	crashCycle := func(i int) {
		policy := procpool.CrashPolicy(i % 2)
		p, err := procpool.New(relCfg(procpool.Config{Workers: 2, OnCrash: policy, Logger: nullLogger()}))
		require.NoError(t, err)
		how := []string{"exit1", "sigkill"}[i/2%2]
		_, err = Crash.Submit(p, how).Get(c)
		if policy == procpool.Break {
			require.ErrorIs(t, err, procpool.ErrBrokenPool)
		} else {
			require.ErrorIs(t, err, procpool.ErrWorkerLost)
		}
		require.NoError(t, p.Terminate())
	}
	for i := range 4 { // warm up: code paths, sync.Pools, msgpack's type caches
		mapCycle()
		crashCycle(i)
	}
	var base relResources
	require.Eventually(t, func() bool {
		base = relMeasure(t)
		return base.children == 0
	}, 5*time.Second, 10*time.Millisecond)
	start := time.Now()
	for i := range cycles {
		mapCycle()
		crashCycle(i)
		if (i+1)%max(1, cycles/4) == 0 {
			t.Logf("after %d cycles: %s", i+1, relMeasure(t))
		}
	}
	took := time.Since(start)
	var end relResources
	assert.Eventually(t, func() bool {
		end = relMeasure(t)
		return end.children == 0 && end.goroutines <= base.goroutines && end.fds <= base.fds
	}, 5*time.Second, 50*time.Millisecond, "before: %s; after: %s", base, end)
	t.Logf("%d × (New/Map/Close + New/crash/Terminate) in %s; before: %s; after: %s", cycles, took.Round(time.Millisecond), base, end)
	assert.Zero(t, end.children)
	const slack = 1 << 20
	assert.LessOrEqual(t, end.heap, base.heap+slack, "heap grew by %d bytes over %d cycles", int64(end.heap)-int64(base.heap), cycles)
}

// relLeakCycles is the number of cycles of TestLeakCycles:
// PROCPOOL_LEAK_CYCLES, or else 1,000 (about 10 s on two CPUs), or 100 under
// the race detector, which makes them four times slower (1,000 take 40 s).
func relLeakCycles(t *testing.T) int {
	if s := os.Getenv("PROCPOOL_LEAK_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, "PROCPOOL_LEAK_CYCLES")
		return n
	}
	if relRace {
		return 100
	}
	return 1000
}

// relResources is what a pool could leak.
type relResources struct {
	goroutines, fds, children int
	heap                      uint64
}

func relMeasure(t *testing.T) relResources {
	for range 3 { // the second GC frees what sync.Pools kept through the first
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return relResources{goroutines: runtime.NumGoroutine(), fds: openFDs(t), children: len(children()), heap: ms.HeapAlloc}
}

func (r relResources) String() string {
	return fmt.Sprintf("%d goroutines, %d fds, %d children, %.2f MiB heap", r.goroutines, r.fds, r.children, float64(r.heap)/(1<<20))
}
