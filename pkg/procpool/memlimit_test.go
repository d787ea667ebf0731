//go:build unix

// Tests of the live memory limit: a call that takes its worker over
// Config.MaxMemoryPerWorker is stopped while it runs, fails alone, and the
// pool carries on. The retirement after a run is in recycle_test.go.
package procpool_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

const (
	memLimit = 150 << 20
	// memCeiling is what a runaway must be stopped below: the limit, and
	// what it grows by in the watcher's reads, with room to spare on a
	// loaded machine.
	memCeiling = 600 << 20
)

// TestMemoryLimitStopsARunawayCall: in an Imap chunk of 10 on one worker, the
// fifth call allocates without bound. The pool kills the worker near the
// limit; that call fails with ErrMemoryLimit, a *MemoryLimitError and the
// *WorkerExitError, and is not retried; the calls before it in the chunk
// keep their results, those after it run once, on the replacement. Under
// Break the pool does not break; under Respawn the kill is no death for the
// crash-loop guard, which here would break the pool at the first.
func TestMemoryLimitStopsARunawayCall(t *testing.T) {
	for _, tc := range []struct {
		name    string
		onCrash procpool.CrashPolicy
		retries int
	}{
		{"break", procpool.Break, 0},
		{"respawn+retries", procpool.Respawn, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, logs := relPool(t, time.Minute, procpool.Config{
				Workers: 1, OnCrash: tc.onCrash, Retries: tc.retries,
				MaxMemoryPerWorker: memLimit, MaxConsecutiveDeaths: 1,
			})
			first := p.Workers()[0]
			const runaway, n = 4, 20
			dir := t.TempDir()
			in := make([]GrowArg, n)
			for i := range in {
				in[i] = GrowArg{I: i, Runaway: i == runaway, Dir: dir}
			}
			out, errs := make([]int, n), make([]error, n)
			i := 0
			for v, err := range Grow.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(10)) {
				out[i], errs[i] = v, err
				i++
			}
			require.Equal(t, n, i)
			for i, err := range errs {
				if i != runaway {
					require.NoError(t, err, "element %d", i)
				}
			}
			err := errs[runaway]

			require.ErrorIs(t, err, procpool.ErrMemoryLimit)
			assert.NotErrorIs(t, err, procpool.ErrWorkerLost)
			assert.NotErrorIs(t, err, procpool.ErrBrokenPool)
			var ee *procpool.ElementError
			require.ErrorAs(t, err, &ee)
			assert.Equal(t, runaway, ee.Index)
			var mle *procpool.MemoryLimitError
			require.ErrorAs(t, err, &mle)
			assert.Equal(t, int64(memLimit), mle.Limit)
			assert.Greater(t, mle.RSS, int64(memLimit))
			assert.Less(t, mle.RSS, int64(memCeiling), "the runaway was stopped near the limit")
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Same(t, mle.Exit, exit)
			assert.Equal(t, first, exit.PID)
			assert.Equal(t, "SIGKILL", exit.Signal)
			assert.Equal(t, "test.grow", exit.Running)
			assert.Equal(t, runaway, exit.Element, "the error names the runaway call")
			assert.Contains(t, err.Error(), fmt.Sprintf("map element %d: procpool: worker pid %d used ", runaway, first))
			assert.Contains(t, err.Error(), ", over MaxMemoryPerWorker 150 MiB")
			t.Logf("%v", err)

			for i := range n {
				pids := memRuns(t, dir, i)
				require.Len(t, pids, 1, "element %d ran once", i)
				switch {
				case i == runaway:
					assert.Equal(t, first, pids[0])
				case i < runaway:
					assert.Equal(t, i*i, out[i], "element %d", i)
					assert.Equal(t, first, pids[0], "element %d completed before the kill, in the killed worker", i)
				default:
					assert.Equal(t, i*i, out[i], "element %d", i)
					assert.NotEqual(t, first, pids[0], "element %d ran on a replacement", i)
				}
			}

			st := p.Stats()
			assert.Equal(t, 1, st.MemoryKills)
			assert.Zero(t, st.Deaths, "a memory kill is not a crash")
			assert.Zero(t, st.Lost)
			assert.Zero(t, st.Retried, "the runaway is not retried, whatever Retries")
			assert.Zero(t, st.Failed)
			assert.Equal(t, n-1, st.Completed)
			assert.Contains(t, logs.String(), "killing worker: its resident memory is over MaxMemoryPerWorker")

			v, err := Square.Submit(p, 7).Get(ctx(t))
			require.NoError(t, err, "the pool carries on")
			assert.Equal(t, 49, v)
			require.Eventually(t, func() bool { return len(p.Workers()) == 1 }, 5*time.Second, 5*time.Millisecond)
			assert.NotEqual(t, []int{first}, p.Workers())
			require.NoError(t, p.Close())
		})
	}
}

// memRuns reads the pids of the runs of element i, as Grow notes them.
func memRuns(t *testing.T, dir string, i int) []int {
	b, err := os.ReadFile(filepath.Join(dir, strconv.Itoa(i)))
	if os.IsNotExist(err) {
		return nil
	}
	require.NoError(t, err)
	var pids []int
	for line := range strings.Lines(string(b)) {
		pid, err := strconv.Atoi(strings.TrimSpace(line))
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	return pids
}

// TestMemoryLimitSubmit: a runaway Submit fails with ErrMemoryLimit, its
// Element -1; its neighbour on another worker completes.
func TestMemoryLimitSubmit(t *testing.T) {
	p, _ := relPool(t, time.Minute, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, MaxMemoryPerWorker: memLimit})
	dir := t.TempDir()
	calm := Sleep.Submit(p, 500)
	_, err := Grow.Submit(p, GrowArg{I: 1, Runaway: true, Dir: dir}).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrMemoryLimit)
	var mle *procpool.MemoryLimitError
	require.ErrorAs(t, err, &mle)
	assert.Less(t, mle.RSS, int64(memCeiling))
	assert.Equal(t, "test.grow", mle.Exit.Running)
	assert.Equal(t, -1, mle.Exit.Element)
	_, err = calm.Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 1, p.Stats().MemoryKills)
	require.NoError(t, p.Close())
}

// TestMemoryLimitSparesAWorkerThatStartsAboveIt: a worker that starts above
// the limit is exempt: a call that runs for several of the watcher's reads
// is not killed, however little it grows.
func TestMemoryLimitSparesAWorkerThatStartsAboveIt(t *testing.T) {
	p, logs := relPool(t, time.Minute, procpool.Config{Workers: 1, MaxMemoryPerWorker: 1 << 20})
	pid := p.Workers()[0]
	_, err := Leak.Submit(p, 4).Get(ctx(t))
	require.NoError(t, err)
	_, err = Sleep.Submit(p, 400).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, []int{pid}, p.Workers())
	assert.Zero(t, p.Stats().MemoryKills)
	assert.Contains(t, logs.String(), "a fresh worker is already over MaxMemoryPerWorker")
	assert.NotContains(t, logs.String(), "killing worker")
	require.NoError(t, p.Close())
}
