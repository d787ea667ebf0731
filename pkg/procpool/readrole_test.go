//go:build unix

package procpool_test

// A caller whose Get cannot end otherwise (its context has no Done channel)
// reads its result from the worker's stream itself. These tests check that
// nothing a user relies on changes with it: results, deaths, Close,
// Terminate, and futures nobody waits for.

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// getWithin is f.Get(context.Background()), the Get that reads its result
// itself, failing the test if it has not returned within d.
func getWithin[O any](t *testing.T, f *procpool.Future[O], d time.Duration) (O, error) {
	t.Helper()
	type got struct {
		v   O
		err error
	}
	ch := make(chan got, 1)
	go func() {
		v, err := f.Get(context.Background())
		ch <- got{v, err}
	}()
	select {
	case g := <-ch:
		return g.v, g.err
	case <-time.After(d):
		t.Fatalf("Get did not return within %s", d)
		panic("unreachable")
	}
}

func TestGetReadsItsResult(t *testing.T) {
	t.Run("one caller", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		for i := range 2000 {
			v, err := Square.Submit(p, i).Get(context.Background())
			require.NoError(t, err)
			require.Equal(t, i*i, v)
		}
		require.NoError(t, p.Close())
	})
	t.Run("callers contend for the stream", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2})
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 300 {
					x := g*1000 + i
					v, err := Square.Submit(p, x).Get(context.Background())
					if !assert.NoError(t, err) || !assert.Equal(t, x*x, v) {
						return
					}
				}
			})
		}
		wg.Wait()
		require.NoError(t, p.Close())
	})
}

// A future nobody waits for does not hold up the worker that ran it: its
// result is read when other work needs the worker, and at Close.
func TestUnwaitedFuturesDoNotHoldThePool(t *testing.T) {
	t.Run("a Map after them", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		idle := Square.Submit(p, 7)
		in := []int{1, 2, 3, 4, 5, 6, 7, 8}
		out, err := Square.Map(ctx(t), p, in, procpool.Chunksize(1))
		require.NoError(t, err)
		assert.Equal(t, []int{1, 4, 9, 16, 25, 36, 49, 64}, out)
		select {
		case <-idle.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the unwaited future never completed")
		}
		v, err := idle.Get(context.Background())
		require.NoError(t, err)
		assert.Equal(t, 49, v)
	})
	t.Run("a Submit queued behind them", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		fs := make([]*procpool.Future[int], 10)
		for i := range fs {
			fs[i] = Square.Submit(p, i) // more than the worker takes: the last wait in the queue
		}
		v, err := getWithin(t, fs[len(fs)-1], 10*time.Second)
		require.NoError(t, err)
		assert.Equal(t, 81, v)
		for i, f := range fs {
			v, err := getWithin(t, f, 10*time.Second)
			require.NoError(t, err)
			assert.Equal(t, i*i, v)
		}
	})
	t.Run("Close", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2})
		fs := make([]*procpool.Future[int], 2) // one per worker: none queued
		for i := range fs {
			fs[i] = Square.Submit(p, i)
		}
		closeWithin(t, p, 10*time.Second, "Close did not return: it waited for futures nobody waits for")
		for i, f := range fs {
			v, err := getWithin(t, f, time.Second)
			require.NoError(t, err)
			assert.Equal(t, i*i, v)
		}
	})
}

// A death while its caller reads the stream is seen at once, and reported
// as any other.
func TestDeathWhileTheCallerReads(t *testing.T) {
	for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
		t.Run(policy.String(), func(t *testing.T) {
			p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, OnCrash: policy}))
			pid := p.Workers()[0]
			_, err := getWithin(t, Crash.Submit(p, "sigkill"), 10*time.Second)
			exit := relWorkerDeath(t, err, "", policy, []int{pid})
			assert.Equal(t, "SIGKILL", exit.Signal)
			if policy == procpool.Respawn {
				v, err := getWithin(t, Square.Submit(p, 3), 10*time.Second)
				require.NoError(t, err)
				assert.Equal(t, 9, v)
			}
		})
	}
	// A call the dead worker held but had not started moves to the
	// replacement, whose reader must read it: its caller's lease was on
	// the dead worker's stream.
	for _, wait := range []string{"reading", "with a context"} {
		t.Run("a call moved to the replacement, "+wait, func(t *testing.T) {
			p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, OnCrash: procpool.Respawn, Prefetch: 2}))
			crashed := Crash.Submit(p, "sigkill")
			moved := Square.Submit(p, 4)
			var v int
			var err error
			if wait == "reading" {
				v, err = getWithin(t, moved, 10*time.Second)
			} else {
				v, err = moved.Get(ctx(t))
			}
			require.NoError(t, err)
			assert.Equal(t, 16, v)
			_, err = crashed.Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrWorkerLost)
		})
	}
	t.Run("an idle worker, once callers have read", func(t *testing.T) {
		p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, OnCrash: procpool.Respawn}))
		_, err := getWithin(t, Square.Submit(p, 2), 10*time.Second)
		require.NoError(t, err)
		pid := p.Workers()[0]
		require.True(t, relKill(pid))
		require.Eventually(t, func() bool {
			ws := p.Stats().Workers
			return len(ws) == 1 && ws[0].PID != pid && ws[0].State == procpool.WorkerReady
		}, 10*time.Second, time.Millisecond, "the death of an idle worker is seen and it is replaced")
	})
}

func TestTerminateWhileTheCallerReads(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 1}))
	f := Sleep.Submit(p, 60_000)
	got := make(chan error, 1)
	go func() { _, err := f.Get(context.Background()); got <- err }()
	time.Sleep(50 * time.Millisecond) // the caller is reading
	require.NoError(t, p.Terminate())
	select {
	case err := <-got:
		require.ErrorIs(t, err, procpool.ErrClosed)
	case <-time.After(10 * time.Second):
		t.Fatal("Get did not return after Terminate")
	}
}

// A Get whose context ends while it reads returns at once; the call goes
// on, and its result is read all the same.
func TestGetReturnsWhenItsContextEnds(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 1}))
	f := Sleep.Submit(p, 300)
	c, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := f.Get(c)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 250*time.Millisecond, "Get waited for the call rather than its context")
	v, err := getWithin(t, f, 10*time.Second)
	require.NoError(t, err)
	assert.Equal(t, 300, v)
	v, err = getWithin(t, Square.Submit(p, 5), 10*time.Second)
	require.NoError(t, err, "the stream is whole after the cut-short read")
	assert.Equal(t, 25, v)
}
