//go:build unix

package procpool_test

// The Goroutines backend: it agrees with Processes; its timeouts and recycling.

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// The same calls give the same results and the same errors on both backends.
func TestBackendsAgree(t *testing.T) {
	for _, backend := range []procpool.Backend{procpool.Processes, procpool.Goroutines} {
		t.Run(backend.String(), func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 2, Backend: backend})

			v, err := Square.Submit(p, 12).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 144, v)

			in := make([]int, 500)
			for i := range in {
				in[i] = i
			}
			out, err := Square.Map(ctx(t), p, in, procpool.Chunksize(7))
			require.NoError(t, err)
			for i, v := range out {
				require.Equal(t, i*i, v)
			}
			var got []int
			for v, err := range Even.Imap(ctx(t), p, slices.Values([]int{2, 3, 4})) {
				if err == nil {
					got = append(got, v)
				}
			}
			assert.Equal(t, []int{4, 16}, got)

			_, err = Panic.Submit(p, "boom").Get(ctx(t))
			var re *procpool.RemoteError
			require.ErrorAs(t, err, &re)
			assert.True(t, re.Panic)

			var ce *procpool.CodecError
			_, err = Unencodable.Submit(p, 1).Get(ctx(t))
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, procpool.EncodeResult, ce.Stage)
			_, err = ParentRejects.Submit(p, 1).Get(ctx(t))
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, procpool.DecodeResult, ce.Stage)

			pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
			require.NoError(t, err)
			if backend == procpool.Goroutines {
				assert.Equal(t, os.Getpid(), pid, "goroutines run in this process")
			} else {
				assert.NotEqual(t, os.Getpid(), pid)
			}
			require.NoError(t, p.Close())
		})
	}
}

// A goroutine cannot be killed, but a call that runs too long still fails
// on time, and the pool goes on with a fresh goroutine.
func TestGoroutineBackendTimeouts(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, Backend: procpool.Goroutines, TaskTimeout: 100 * time.Millisecond, KillGrace: 50 * time.Millisecond})
	start := time.Now()
	_, err := Sleep.Submit(p, 60_000).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrTaskTimeout, "a task that heeds its context")
	_, err = Slowpoke.Submit(p, 700).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrTaskTimeout, "a task that ignores it")
	assert.Less(t, time.Since(start), 600*time.Millisecond, "both failed on time")
	v, err := Square.Submit(p, 5).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 25, v)
	assert.Equal(t, 2, p.Stats().TimedOut)

	f := Sleep.Submit(p, 60_000)
	time.Sleep(20 * time.Millisecond)
	assert.True(t, f.Cancel())
	_, err = f.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	require.NoError(t, p.Close())
	time.Sleep(700 * time.Millisecond) // the abandoned goroutine returns; noLeaks checks it is gone
}

func TestGoroutineBackendRecyclesAndInitializes(t *testing.T) {
	hello := "hello from the initializer"
	p, _ := newPool(t, procpool.Config{Workers: 2, Backend: procpool.Goroutines, MaxTasksPerWorker: 2, Initializer: SetGreeting.Bind(hello)})
	fs := make([]*procpool.Future[string], 20)
	for i := range fs {
		fs[i] = Greeting.Submit(p, struct{}{})
	}
	for _, f := range fs {
		g, err := f.Get(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, hello, g)
	}
	require.Eventually(t, func() bool { return len(p.Stats().Workers) == 2 }, time.Second, time.Millisecond)
	restarts := 0
	for _, ws := range p.Stats().Workers {
		restarts += ws.Restarts
	}
	assert.GreaterOrEqual(t, restarts, 8)
	require.NoError(t, p.Terminate())
}

// TestGoroutineBackendFastRecycling retires a goroutine worker after every
// call, so replacements start, serve and end as fast as the scheduler
// allows. A replacement that ends before the pool has counted it must not
// stay counted, or Close would wait for it for ever.
func TestGoroutineBackendFastRecycling(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2, Backend: procpool.Goroutines, MaxTasksPerWorker: 1})
	fs := make([]*procpool.Future[int], 2000)
	for i := range fs {
		fs[i] = Square.Submit(p, i)
	}
	for i, f := range fs {
		v, err := f.Get(ctx(t))
		require.NoError(t, err)
		require.Equal(t, i*i, v)
	}
	require.Eventually(t, func() bool { return len(p.Stats().Workers) == 2 }, 5*time.Second, time.Millisecond,
		"workers: %v", p.Stats().Workers)
	closeWithin(t, p, 10*time.Second, "Close hangs: the pool waits for a worker that has ended")
}
