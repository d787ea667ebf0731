//go:build unix

package procpool_test

// Imap and ImapUnordered: order, errors, endless input, break and context.

import (
	"context"
	"iter"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// naturals yields 0, 1, 2, ... forever, counting what it produced.
func naturals(produced *int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; ; i++ {
			*produced = i + 1
			if !yield(i) {
				return
			}
		}
	}
}

func TestImap(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	var got []int
	var errs []string
	for v, err := range Even.Imap(ctx(t), p, slices.Values([]int{0, 1, 2, 3, 4, 5, 6})) {
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		got = append(got, v)
	}
	assert.Equal(t, []int{0, 4, 16, 36}, got)
	assert.Equal(t, []string{`map element 1: procpool: task "test.even": 1 is odd`, `map element 3: procpool: task "test.even": 3 is odd`, `map element 5: procpool: task "test.even": 5 is odd`}, errs,
		"a failed call yields its error and iteration goes on")

	var codecErr []int
	i := 0
	for _, err := range TakesAny.Imap(ctx(t), p, slices.Values([]any{1, make(chan int), 3}), procpool.Chunksize(3)) {
		var ce *procpool.CodecError
		if err != nil {
			require.ErrorAs(t, err, &ce)
			codecErr = append(codecErr, i)
		}
		i++
	}
	assert.Equal(t, 3, i)
	assert.Equal(t, []int{1}, codecErr, "an element that cannot be encoded fails in its place")
	require.NoError(t, p.Close())
}

func TestImapUnorderedYieldsInCompletionOrder(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 3})
	var got []int
	for v, err := range Sleep.ImapUnordered(ctx(t), p, slices.Values([]int{400, 10, 200}), procpool.Chunksize(1)) {
		require.NoError(t, err)
		got = append(got, v)
	}
	assert.Equal(t, []int{10, 200, 400}, got)

	got = got[:0]
	for v, err := range Sleep.Imap(ctx(t), p, slices.Values([]int{400, 10, 200}), procpool.Chunksize(1)) {
		require.NoError(t, err)
		got = append(got, v)
	}
	assert.Equal(t, []int{400, 10, 200}, got, "Imap keeps input order")
	require.NoError(t, p.Close())
}

// An endless input runs in bounded memory: what has been read but not yet
// yielded never exceeds the window of chunks.
func TestImapEndlessInputInBoundedMemory(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	const window = 4
	var produced, consumed, ahead int
	var heap []uint64
	for v, err := range Square.Imap(ctx(t), p, naturals(&produced), procpool.Window(window)) {
		require.NoError(t, err)
		require.Equal(t, consumed*consumed, v)
		consumed++
		ahead = max(ahead, produced-consumed)
		if consumed%100_000 == 0 {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			heap = append(heap, ms.HeapAlloc)
		}
		if consumed == 400_000 {
			break
		}
	}
	assert.LessOrEqual(t, ahead, window*(1<<14), "read-ahead is bounded by the window")
	assert.Less(t, float64(heap[3]), float64(heap[0])*1.5+8<<20, "heap grows with the input: %v", heap)
	require.NoError(t, p.Close())
}

func TestImapBreakCancelsWhatIsQueued(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	start := time.Now()
	n := 0
	for v, err := range Sleep.Imap(ctx(t), p, slices.Values([]int{10, 30_000, 30_000, 30_000}), procpool.Chunksize(1), procpool.Window(4)) {
		require.NoError(t, err)
		assert.Equal(t, 10, v)
		n++
		break
	}
	assert.Equal(t, 1, n)
	v, err := Square.Submit(p, 6).Get(ctx(t))
	require.NoError(t, err, "the calls left behind were cancelled: the worker is free")
	assert.Equal(t, 36, v)
	assert.Less(t, time.Since(start), 10*time.Second)
	require.NoError(t, p.Close())
}

func TestImapContext(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	c, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	var produced int
	var errs []error
	for _, err := range Sleep.Imap(c, p, func(yield func(int) bool) {
		for produced = 1; yield(20); produced++ {
		}
	}, procpool.Chunksize(1)) {
		if err != nil {
			errs = append(errs, err)
		}
	}
	require.Len(t, errs, 1)
	require.ErrorIs(t, errs[0], context.DeadlineExceeded)
	require.NoError(t, p.Close())
}

// TestHeldResultIsNotLate: a quick run's Result, held back to share a
// write with the next run's, goes out on its own once that run turns out
// to be long: the results of tiny calls are yielded at once, not after the
// long call queued behind them on the same worker.
func TestHeldResultIsNotLate(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	_, err := Sleep.Map(ctx(t), p, make([]int, 50), procpool.Chunksize(1)) // measured tiny: sent ahead
	require.NoError(t, err)
	in := append(make([]int, 30), 2000)
	start := time.Now()
	var took []time.Duration
	for _, err := range Sleep.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(1)) {
		require.NoError(t, err)
		took = append(took, time.Since(start))
	}
	require.Len(t, took, len(in))
	assert.Less(t, took[len(in)-2], time.Second, "a tiny call's result waited for the long call after it")
	require.NoError(t, p.Close())
}
