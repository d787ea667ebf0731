//go:build unix

// Tests of what a worker's death costs: the call it was running, and no
// other.
package procpool_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// TestDeathCostsTheRunningCall: in chunks of 25 and 50, with one and two
// poisoned calls, for each way of dying, under Break, Respawn and Respawn
// with Retries, a death is charged to the call that was running alone. The
// calls of its chunk that completed keep their results and ran once; those
// that had not started run once, without using a retry.
func TestDeathCostsTheRunningCall(t *testing.T) {
	type policy struct {
		name    string
		onCrash procpool.CrashPolicy
		retries int
	}
	policies := []policy{{"break", procpool.Break, 0}, {"respawn", procpool.Respawn, 0}, {"respawn+retries", procpool.Respawn, 1}}
	for _, chunk := range []int{25, 50} {
		for _, poisons := range []int{1, 2} {
			for _, how := range []string{"sigkill", "exit3", "concurrent-map-writes", "sigsegv"} {
				for _, pol := range policies {
					t.Run(fmt.Sprintf("chunk%d/%dpoison/%s/%s", chunk, poisons, how, pol.name), func(t *testing.T) {
						attribCase(t, chunk, poisons, how, pol.onCrash, pol.retries)
					})
				}
			}
		}
	}
}

func attribCase(t *testing.T, chunk, poisons int, how string, onCrash procpool.CrashPolicy, retries int) {
	p, _ := newPool(t, procpool.Config{Workers: 2, OnCrash: onCrash, Retries: retries, MaxConsecutiveDeaths: 100})
	dir := t.TempDir()
	n := 2 * chunk
	poisoned := []int{13}
	if poisons == 2 {
		poisoned = append(poisoned, chunk-3) // in the same chunk
	}
	in := make([]AttribArg, n)
	for i := range in {
		in[i] = AttribArg{I: i, Dir: dir}
		if slices.Contains(poisoned, i) {
			in[i].Die = how
		}
	}
	runs := func(i int) int {
		st, err := os.Stat(filepath.Join(dir, strconv.Itoa(i)))
		if err != nil {
			return 0
		}
		return int(st.Size())
	}

	i := 0
	for v, err := range Attrib.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(chunk)) {
		var exit *procpool.WorkerExitError
		switch {
		case err == nil:
			assert.Equal(t, i*i, v, "element %d", i)
			assert.Equal(t, 1, runs(i), "element %d completed: it ran once", i)
		case slices.Contains(poisoned, i) && onCrash == procpool.Respawn:
			require.ErrorIs(t, err, procpool.ErrWorkerLost, "element %d", i)
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, "test.attrib", exit.Running)
			assert.Equal(t, i, exit.Element, "the error names the call that was running")
			assert.Equal(t, 1+retries, runs(i), "the poisoned call ran once, and once per retry")
		case onCrash == procpool.Break:
			require.ErrorIs(t, err, procpool.ErrBrokenPool, "element %d", i)
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, poisoned[0], exit.Element, "every error names the call that broke the pool")
			assert.LessOrEqual(t, runs(i), 1, "element %d ran once at most", i)
			if i < poisoned[0] && i >= poisoned[0]/chunk*chunk {
				t.Errorf("element %d completed before the death in its chunk, and lost its result: %v", i, err)
			}
		default:
			t.Errorf("element %d: %v", i, err)
		}
		i++
	}
	require.Equal(t, n, i)
	st := p.Stats()
	if onCrash == procpool.Respawn {
		assert.Equal(t, n-poisons, st.Completed)
		assert.Equal(t, poisons, st.Lost, "only the poisoned calls are lost")
		assert.Equal(t, poisons*retries, st.Retried, "only the poisoned calls are retried")
		assert.Equal(t, poisons*(1+retries), st.Deaths)
		for i := range n {
			if !slices.Contains(poisoned, i) {
				assert.Equal(t, 1, runs(i), "element %d ran once", i)
			}
		}
		require.NoError(t, p.Close())
		return
	}
	p.Close() // broken: it says so, or not, as for any broken pool
}

// TestBrokenMapNamesTheCulprit: under Break, Map's error is the element
// whose call killed the worker, not the first of its chunk.
func TestBrokenMapNamesTheCulprit(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	in := make([]AttribArg, 50)
	for i := range in {
		in[i] = AttribArg{I: i, Dir: t.TempDir()}
	}
	in[13].Die = "exit3"
	_, err := Attrib.Map(ctx(t), p, in, procpool.Chunksize(25))
	require.ErrorIs(t, err, procpool.ErrBrokenPool)
	var ee *procpool.ElementError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 13, ee.Index)
	assert.Contains(t, err.Error(), "map element 13: ")
	assert.Contains(t, err.Error(), "while running test.attrib (element 13)")
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode)
	p.Close()
}

// TestKilledWorkerNeverYieldsATornResult: workers SIGKILLed at random while
// they write results of many sizes: every result that arrives is whole.
func TestKilledWorkerNeverYieldsATornResult(t *testing.T) {
	started := time.Now()
	p, _ := relPool(t, 2*time.Minute, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 3, MaxConsecutiveDeaths: 1 << 30})
	stop := make(chan struct{})
	var kills atomic.Int64
	chaos := relChaos(p, relChaosEvery(30*time.Millisecond, started, 2), stop, &kills)
	// Up to 64 KiB a result is copied into the journal; larger ones are
	// written to the pipe at once.
	sizes := []int{0, 1, 100, 4000, 40_000, 65_000, 70_000, 200_000}
	in := make([][2]int, 800)
	for i := range in {
		in[i] = [2]int{i, sizes[i%len(sizes)]}
	}
	ok, lost := 0, 0
	i := 0
	for v, err := range Pattern.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(64)) {
		switch {
		case err == nil:
			require.Equal(t, pattern(in[i][0], in[i][1]), v, "element %d arrived corrupt", i)
			ok++
		case errors.Is(err, procpool.ErrWorkerLost):
			lost++
		default:
			t.Fatalf("element %d: %v", i, err)
		}
		i++
	}
	close(stop)
	chaos.Wait()
	t.Logf("%d ok, %d lost, %d kills", ok, lost, kills.Load())
	assert.Positive(t, kills.Load())
	require.NoError(t, p.Close())
}

// TestLaunchedWorkersChargeTheRunningChunk: a worker of another launcher
// keeps no journal, so its death costs every call of the running chunk
// without a result, and nothing else; with TaskTimeout, whose results come
// call by call, the running call alone.
func TestLaunchedWorkersChargeTheRunningChunk(t *testing.T) {
	for _, timeout := range []time.Duration{0, time.Minute} {
		t.Run(fmt.Sprintf("TaskTimeout=%s", timeout), func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Launcher: viaShell(t, 2), OnCrash: procpool.Respawn, TaskTimeout: timeout})
			dir := t.TempDir()
			in := make([]AttribArg, 20)
			for i := range in {
				in[i] = AttribArg{I: i, Dir: dir}
			}
			in[3].Die = "exit3"
			var lost []int
			i := 0
			for v, err := range Attrib.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(10)) {
				if err != nil {
					require.ErrorIs(t, err, procpool.ErrWorkerLost)
					lost = append(lost, i)
				} else {
					assert.Equal(t, i*i, v)
				}
				i++
			}
			if timeout == 0 {
				assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, lost, "the running chunk is charged")
				assert.Equal(t, 10, p.Stats().Lost)
			} else {
				assert.Equal(t, []int{3}, lost, "the running call alone is charged")
				assert.Equal(t, 1, p.Stats().Lost)
			}
			require.NoError(t, p.Close())
		})
	}
}

// TestDeathKeepsHeldResults: a worker holds the Result of a run that
// another follows at once, to send both in one write; killed before it
// sends them, it loses none of them. One worker runs a Map in chunks of
// one call, so it holds many runs at once; call 13 kills it as it starts.
// Every other call completes, and runs once.
func TestDeathKeepsHeldResults(t *testing.T) {
	for range 5 {
		p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: procpool.Respawn})
		dir := t.TempDir()
		in := make([]AttribArg, 200)
		for i := range in {
			in[i] = AttribArg{I: i, Dir: dir}
		}
		// Warm up: measured to be tiny, the calls are sent ahead many at
		// a time.
		_, err := DieAtOnce.Map(ctx(t), p, in[100:], procpool.Chunksize(1))
		require.NoError(t, err)
		in[13].Die = "sigkill"
		_, err = DieAtOnce.Map(ctx(t), p, in[:100], procpool.Chunksize(1))
		var elem *procpool.ElementError
		require.ErrorAs(t, err, &elem)
		require.Equal(t, 13, elem.Index)
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		for i := range 100 {
			st, err := os.Stat(filepath.Join(dir, strconv.Itoa(i)))
			if i == 13 {
				require.ErrorIs(t, err, os.ErrNotExist)
				continue
			}
			require.NoError(t, err, "element %d never ran", i)
			require.EqualValues(t, 1, st.Size(), "element %d ran %d times", i, st.Size())
		}
		st := p.Stats()
		require.Equal(t, 1, st.Lost)
		require.Equal(t, 199, st.Completed)
		require.NoError(t, p.Close())
	}
}
