//go:build unix

package procpool_test

// The Respawn crash policy: replacements, retries and the crash-loop guard.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
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
		assert.Equal(t, 1, st.Retried, "only the poison call was retried")
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

// Workers that SIGKILL each other while a Map runs, at 1, 2, 5 and 13
// workers (loky's test_reusable_executor), three rounds each: under Respawn
// with retries every Map ends with its results, or with ErrWorkerLost, and
// the pool serves on at full strength.
func TestWorkersKillEachOther(t *testing.T) {
	for _, n := range []int{1, 2, 5, 13} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			p, _ := relPool(t, 60*time.Second, procpool.Config{
				Workers: n, OnCrash: procpool.Respawn, Retries: 3,
				MaxConsecutiveDeaths: 1000, // the kills are the test, not a crash loop
			})
			lostRounds := 0
			for round := range 3 {
				pids := p.Workers()
				in := make([]relKillArg, 60)
				for i := range in {
					in[i] = relKillArg{X: i, Kill: i%6 == 3, Pids: pids, Ms: 2}
				}
				out, err := RelKillPeer.Map(ctx(t), p, in)
				if relMapOutcome(t, out, err, len(in)) {
					lostRounds++
				}
				require.Eventually(t, func() bool { return len(p.Workers()) == n }, 10*time.Second, 5*time.Millisecond, "round %d", round)
			}
			st := p.Stats()
			t.Logf("%d workers: %d deaths, %d calls retried, %d lost, %d of 3 Maps lost a call", n, st.Deaths, st.Retried, st.Lost, lostRounds)
			assert.Positive(t, st.Deaths, "the workers did kill each other")
			assert.Equal(t, lostRounds > 0, st.Lost > 0)
			v, err := Square.Submit(p, 9).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 81, v)
			require.NoError(t, p.Close())
		})
	}
}

// Deaths during a retry: the call that was running is retried, a call that
// dies again uses its next retry, and one that dies more often than Retries
// allows fails alone with ErrWorkerLost.
func TestDeathsDuringRetry(t *testing.T) {
	t.Run("a chunk lost, then one of its calls lost again", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 2})
		dir := t.TempDir()
		in := make([]relDieArg, 20)
		for i := range in {
			in[i] = relDieArg{X: i, Dir: dir}
		}
		in[3].Deaths = 2  // dies with its chunk, then alone in its retry, then succeeds
		in[15].Deaths = 1 // dies with its chunk, then succeeds
		out, err := RelDieN.Map(ctx(t), p, in, procpool.Chunksize(10))
		require.NoError(t, err)
		for i, v := range out {
			require.Equal(t, i, v)
		}
		assert.Equal(t, 3, relAttempts(dir, 3))
		assert.Equal(t, 2, relAttempts(dir, 15))
		st := p.Stats()
		assert.Equal(t, 3, st.Deaths)
		assert.Zero(t, st.Lost)
		assert.Equal(t, 3, st.Retried, "only the calls that were running are retried: 3 twice, 15 once")
		for i := range in {
			if i != 3 && i != 15 {
				assert.Equal(t, 1, relAttempts(dir, i), "call %d did not die, and ran once", i)
			}
		}
		require.NoError(t, p.Close())
	})
	t.Run("retries run out", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 2})
		dir := t.TempDir()
		in := make([]relDieArg, 6)
		for i := range in {
			in[i] = relDieArg{X: i, Dir: dir}
		}
		in[4].Deaths = 3
		fs := make([]*procpool.Future[int], len(in))
		for i := range in {
			fs[i] = RelDieN.Submit(p, in[i])
		}
		for i, f := range fs {
			v, err := f.Get(ctx(t))
			if i == 4 {
				require.ErrorIs(t, err, procpool.ErrWorkerLost)
				var exit *procpool.WorkerExitError
				require.ErrorAs(t, err, &exit)
				assert.Equal(t, 1, exit.ExitCode)
				continue
			}
			require.NoError(t, err)
			assert.Equal(t, i, v)
		}
		assert.Equal(t, 3, relAttempts(dir, 4), "a first try and two retries")
		st := p.Stats()
		assert.Equal(t, 3, st.Deaths)
		assert.Equal(t, 1, st.Lost)
		assert.Equal(t, 2, st.Retried)
		require.NoError(t, p.Close())
	})
	t.Run("the worker running a retry is killed", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 1, OnCrash: procpool.Respawn, Retries: 2})
		dir := t.TempDir()
		f := RelDieN.Submit(p, relDieArg{X: 7, Dir: dir, Deaths: 1, Ms: 5000})
		running := filepath.Join(dir, "7.running")
		require.Eventually(t, func() bool { _, err := os.Stat(running); return err == nil }, 10*time.Second, time.Millisecond)
		require.Equal(t, 2, relAttempts(dir, 7), "the retry is running")
		pids := p.Workers()
		require.Len(t, pids, 1)
		require.True(t, relKill(pids[0]))
		v, err := f.Get(ctx(t))
		require.NoError(t, err, "a second retry")
		assert.Equal(t, 7, v)
		assert.Equal(t, 3, relAttempts(dir, 7))
		st := p.Stats()
		assert.Equal(t, 2, st.Deaths)
		assert.Equal(t, 2, st.Retried)
		assert.Zero(t, st.Lost)
		require.NoError(t, p.Close())
	})
}

// relAttempts counts the attempts RelDieN made for x.
func relAttempts(dir string, x int) int {
	m, _ := filepath.Glob(filepath.Join(dir, strconv.Itoa(x)+".[0-9]*"))
	return len(m)
}
