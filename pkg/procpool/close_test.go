//go:build unix

package procpool_test

// Close and Terminate: with work pending, with a backlog, while workers die.

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestCloseAndTerminate(t *testing.T) {
	t.Run("Close waits for the work", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2})
		fs := make([]*procpool.Future[int], 6)
		for i := range fs {
			fs[i] = Sleep.Submit(p, 50)
		}
		require.NoError(t, p.Close())
		for _, f := range fs {
			v, err := f.Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 50, v)
		}
		_, err := Square.Submit(p, 1).Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrClosed)
		_, err = Square.Map(ctx(t), p, []int{1})
		require.ErrorIs(t, err, procpool.ErrClosed)
		require.NoError(t, p.Close(), "Close twice")
		require.NoError(t, p.Terminate(), "Terminate after Close")
	})
	t.Run("Terminate fails what is unfinished", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2})
		fs := make([]*procpool.Future[int], 100)
		for i := range fs {
			fs[i] = Sleep.Submit(p, 60_000)
		}
		require.NoError(t, p.Terminate())
		for _, f := range fs {
			_, err := f.Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrClosed)
		}
		require.NoError(t, p.Terminate(), "Terminate twice")
		require.NoError(t, p.Close(), "Close after Terminate")
	})
	t.Run("Terminate ends a Close that waits", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		f := Sleep.Submit(p, 60_000)
		closed := make(chan error)
		go func() { closed <- p.Close() }()
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, p.Terminate())
		require.NoError(t, <-closed)
		_, err := f.Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrClosed)
	})
}

// Terminate with 10,000 calls queued, from Submit and from a Map: it returns
// at once and fails every one with ErrClosed.
func TestTerminateWithABacklog(t *testing.T) {
	p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2})
	fs := make([]*procpool.Future[int], 10_000)
	for i := range fs {
		fs[i] = Sleep.Submit(p, 60_000)
	}
	in := make([]int, 10_000)
	for i := range in {
		in[i] = 60_000
	}
	mapped := make(chan error, 1)
	go func() {
		_, err := Sleep.Map(ctx(t), p, in, procpool.Chunksize(1))
		mapped <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the Map queue its calls and the workers start some
	start := time.Now()
	require.NoError(t, p.Terminate())
	took := time.Since(start)
	t.Logf("Terminate took %s with 20,000 calls queued or running", took)
	assert.Less(t, took, 2*time.Second)
	for i, f := range fs {
		select {
		case <-f.Done():
		default:
			t.Fatalf("call %d is still pending after Terminate", i)
		}
		_, err := f.Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrClosed, "call %d", i)
	}
	select {
	case err := <-mapped:
		require.ErrorIs(t, err, procpool.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Map did not return after Terminate")
	}
	assert.Empty(t, p.Workers())
}

// Workers killed while Close drains the pool, or while it stops them, and
// sometimes while Terminate runs too: Close returns, every call ends as its
// policy promises, nothing is left behind.
func TestDeathsDuringClose(t *testing.T) {
	for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
		for i := range 8 {
			t.Run(fmt.Sprintf("%s/%d", policy, i), func(t *testing.T) {
				p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 3, OnCrash: policy, Retries: 1, MaxConsecutiveDeaths: 1000})
				var fs []*procpool.Future[int]
				if i%4 != 3 { // one run in four has no work: the kills hit workers being stopped
					for j := range 30 {
						fs = append(fs, Sleep.Submit(p, 5+j%20))
					}
				}
				pids := p.Workers()
				closed := make(chan error, 1)
				go func() { closed <- p.Close() }()
				terminate := i%4 == 1 // and Terminate, racing the kills and Close
				terminated := make(chan error, 1)
				if terminate {
					go func() { time.Sleep(time.Duration(i) * time.Millisecond); terminated <- p.Terminate() }()
				}
				time.Sleep(time.Duration(i*7) * time.Millisecond)
				for _, pid := range pids[:1+i%3] {
					relKill(pid)
				}
				if terminate {
					select {
					case err := <-terminated:
						require.NoError(t, err)
					case <-time.After(5 * time.Second):
						t.Fatal("Terminate did not return")
					}
				}
				select {
				case err := <-closed:
					require.NoError(t, err)
				case <-time.After(15 * time.Second):
					t.Fatal("Close did not return")
				}
				for j, f := range fs {
					v, err := f.Get(ctx(t))
					switch {
					case err == nil:
						assert.Equal(t, 5+j%20, v)
					case terminate && errors.Is(err, procpool.ErrClosed):
					case policy == procpool.Break:
						require.ErrorIs(t, err, procpool.ErrBrokenPool, "call %d", j)
					default:
						require.ErrorIs(t, err, procpool.ErrWorkerLost, "call %d", j)
					}
				}
				assert.Empty(t, p.Workers())
				_, err := Square.Submit(p, 1).Get(ctx(t))
				require.True(t, relErrIs(err, procpool.ErrClosed, procpool.ErrBrokenPool), "after Close: %v", err)
			})
		}
	}
}
