//go:build unix

package procpool_test

// Map: its context, its first error, its load balance, the memory it keeps.

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestMapContext(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	c, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	_, err := Sleep.Map(c, p, []int{50, 50, 50, 50, 50, 50, 50, 50, 50, 50}, procpool.Chunksize(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	v, err := Square.Submit(p, 3).Get(ctx(t))
	require.NoError(t, err, "the pool goes on")
	assert.Equal(t, 9, v)
	require.NoError(t, p.Close())
}

func TestMapReturnsTheFirstErrorInInputOrder(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	_, err := Fail.Map(ctx(t), p, []string{"first", "second"}, procpool.Chunksize(1))
	var re *procpool.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "first", re.Message)
	assert.Contains(t, err.Error(), "map element 0")
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

// TestMapReleasesMemory: once a big Map has returned and its results are
// dropped, an open pool keeps none of its arguments or results alive.
func TestMapReleasesMemory(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	heap := func() float64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc) / (1 << 20)
	}
	before := heap()
	out, err := Square.Map(ctx(t), p, make([]int, 1_000_000))
	require.NoError(t, err)
	require.Len(t, out, 1_000_000)
	out = nil
	after := heap()
	assert.Less(t, after, before+8, "heap: %.1f MiB before the Map, %.1f MiB after (it held about 35 MiB when the sender kept its last runs)", before, after)
	require.NoError(t, p.Close())
}

// TestMapKeepsOnlyAWindowInFlight: a Map of large arguments encodes and
// queues only a window of them at a time (16 MiB), and builds later chunks
// in the buffers of finished ones, so the parent's memory does not grow with
// the input.
func TestMapKeepsOnlyAWindowInFlight(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	in := make([][]byte, 128)
	for i := range in {
		in[i] = bytes.Repeat([]byte{byte(i)}, 1<<20)
	}
	stop := make(chan struct{})
	most := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				most <- n
				return
			case <-time.After(time.Millisecond):
				s := p.Stats()
				n = max(n, s.Queued+s.Running)
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	out, err := SlowLen.Map(ctx(t), p, in, procpool.Chunksize(1))
	runtime.ReadMemStats(&after)
	close(stop)
	require.NoError(t, err)
	for i, n := range out {
		require.Equal(t, 1<<20, n, "element %d", i)
	}
	inFlight := <-most
	assert.LessOrEqual(t, inFlight, 16, "calls queued or running at once, of 128 of 1 MiB")
	assert.GreaterOrEqual(t, inFlight, 2, "calls queued or running at once")
	alloc := float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
	assert.Less(t, alloc, 48.0, "MiB allocated by a Map of 128 MiB (a copy of the input would be 128)")
	require.NoError(t, p.Close())
}

// TestLargeByteResultsAreTheCallers: []byte results large enough to be handed
// out in the frame they arrived in (several per frame here) are each the
// caller's: byte-exact, and writing one leaves the others alone.
func TestLargeByteResultsAreTheCallers(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	in := make([][]byte, 12)
	for i := range in {
		in[i] = bytes.Repeat([]byte{byte(i)}, 100<<10+i)
	}
	out, err := Echo.Map(ctx(t), p, in, procpool.Chunksize(4))
	require.NoError(t, err)
	for i := range out {
		out[i] = append(out[i], 0xff) // must not run into the next result
		clear(out[i][:10])
	}
	for i := range out {
		require.Len(t, out[i], len(in[i])+1, "result %d", i)
		require.Equal(t, in[i][10:], out[i][10:len(in[i])], "result %d", i)
	}
	require.NoError(t, p.Close())
}

// Kept is a task that keeps every argument it is given, in its worker, and
// reports whether all it kept still holds what it held when it came: each
// argument is one byte value repeated. An argument handed to it in the
// frame it came in must keep that frame out of reuse.
var Kept = procpool.Register("test.kept", func(_ context.Context, b []byte) (bool, error) {
	keptMu.Lock()
	defer keptMu.Unlock()
	kept = append(kept, b)
	for _, k := range kept {
		if len(k) > 0 && !bytes.Equal(k, bytes.Repeat(k[:1], len(k))) {
			return false, nil
		}
	}
	return true, nil
})

var (
	keptMu sync.Mutex
	kept   [][]byte
)

// TestRecycledBuffersStayApart runs Maps side by side, over and over, on
// both backends: their frames and chunk buffers are recycled between them,
// and each must still get exactly its own results. Arguments large enough
// to be lent to a task in their frame stay as they came while the task
// keeps them, and large []byte results, handed out in their frames, stay
// the caller's after later Maps.
func TestRecycledBuffersStayApart(t *testing.T) {
	for name, backend := range map[string]procpool.Backend{"processes": procpool.Processes, "goroutines": procpool.Goroutines} {
		t.Run(name, func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 2, Backend: backend})
			var g errgroup.Group
			for k := range 4 {
				g.Go(func() error {
					in := make([]int, 20_000+k*3_001)
					for i := range in {
						in[i] = i*7 + k<<20
					}
					for range 10 {
						out, err := Square.Map(ctx(t), p, in)
						if err != nil {
							return err
						}
						for i, v := range out {
							if v != in[i]*in[i] {
								return fmt.Errorf("map %d: element %d is %d, want %d", k, i, v, in[i]*in[i])
							}
						}
					}
					return nil
				})
			}
			var echoed, sent [][]byte
			g.Go(func() error {
				for r := range 6 {
					in := make([][]byte, 8)
					for i := range in {
						in[i] = bytes.Repeat([]byte{byte(r*8 + i)}, 60<<10+i*2<<10) // both sides of 64 KiB
					}
					if ok, err := Kept.Map(ctx(t), p, in, procpool.Chunksize(2)); err != nil || slices.Contains(ok, false) {
						return fmt.Errorf("round %d: a kept argument changed under its task (%v, %v)", r, ok, err)
					}
					out, err := Echo.Map(ctx(t), p, in, procpool.Chunksize(3))
					if err != nil {
						return err
					}
					echoed, sent = append(echoed, out...), append(sent, in...)
				}
				return nil
			})
			require.NoError(t, g.Wait())
			for i := range echoed {
				require.Equal(t, sent[i], echoed[i], "echoed value %d, after later Maps", i)
			}
			require.NoError(t, p.Close())
		})
	}
}

// refilled is the one buffer Refill returns: each call fills it anew.
var refilled = make([]byte, 128<<10)

// Refill returns refilled, filled with byte(n). Only one worker process may
// run it at a time: the goroutine backend's calls would race on refilled.
var Refill = procpool.Register("test.refill", func(_ context.Context, n int) ([]byte, error) {
	for i := range refilled {
		refilled[i] = byte(n)
	}
	return refilled, nil
})

// TestResultFromReusedBuffer: a task that returns the same buffer from every
// call, refilled, gets each call's result back as it returned it, in chunks
// of several calls too: a worker writes a large []byte result from the
// task's own bytes, and must do so before the task runs again.
func TestResultFromReusedBuffer(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	in := make([]int, 40)
	for i := range in {
		in[i] = i
	}
	out, err := Refill.Map(ctx(t), p, in, procpool.Chunksize(4))
	require.NoError(t, err)
	for i, b := range out {
		require.Equal(t, bytes.Repeat([]byte{byte(i)}, len(refilled)), b, "result %d", i)
	}
	require.NoError(t, p.Close())
}
