//go:build unix

package procpool_test

// AsCompleted and Wait: completion order, conditions, contexts, watchers.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// waitSleeps submits one Sleep per duration, in order.
func waitSleeps(p *procpool.Pool, ms ...int) []*procpool.Future[int] {
	fs := make([]*procpool.Future[int], len(ms))
	for i, d := range ms {
		fs[i] = Sleep.Submit(p, d)
	}
	return fs
}

// waitCollect runs AsCompleted to the end and returns what it yielded.
func waitCollect(c context.Context, fs ...*procpool.Future[int]) (got []*procpool.Future[int], errs []error) {
	for f, err := range procpool.AsCompleted(c, fs...) {
		got = append(got, f)
		errs = append(errs, err)
	}
	return got, errs
}

// waitPositions says where each of some is in all, or -1 for nil. The tests
// compare positions, not futures: testify prints a mismatched future field by
// field, racing with the pool that owns it.
func waitPositions(all, some []*procpool.Future[int]) []int {
	ps := make([]int, len(some))
	for i, f := range some {
		ps[i] = slices.Index(all, f)
	}
	return ps
}

// waitValues returns the results of futures that must have succeeded.
func waitValues(t *testing.T, fs []*procpool.Future[int]) []int {
	t.Helper()
	vs := make([]int, len(fs))
	for i, f := range fs {
		v, err := f.Get(ctx(t))
		require.NoError(t, err)
		vs[i] = v
	}
	return vs
}

func TestAsCompletedYieldsInCompletionOrder(t *testing.T) {
	// A worker each, and no prefetch, so that no call waits behind another.
	p, _ := newPool(t, procpool.Config{Workers: 3, Prefetch: 1})
	fs := waitSleeps(p, 600, 20, 300)
	got, errs := waitCollect(ctx(t), fs...)
	assert.Equal(t, []error{nil, nil, nil}, errs)
	assert.Equal(t, []int{1, 2, 0}, waitPositions(fs, got))
	assert.Equal(t, []int{20, 300, 600}, waitValues(t, got))
	require.NoError(t, p.Close())
}

func TestAsCompletedYieldsDoneFuturesFirst(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2, Prefetch: 1})
	sq2, sq3, bad := Square.Submit(p, 2), Square.Submit(p, 3), Fail.Submit(p, "bad input")
	for _, f := range []*procpool.Future[int]{sq2, sq3, bad} {
		<-f.Done()
	}
	slow := Sleep.Submit(p, 100)

	fs := []*procpool.Future[int]{slow, sq3, bad, sq2, sq3, slow}
	got, errs := waitCollect(ctx(t), fs...)
	require.Equal(t, []int{1, 2, 3, 0}, waitPositions(fs, got),
		"the done futures first, in argument order, then the slow one; each once")
	assert.NoError(t, errs[0])
	var re *procpool.RemoteError
	require.ErrorAs(t, errs[1], &re, "the error is Get's")
	assert.Equal(t, "bad input", re.Message)
	assert.NoError(t, errs[2])
	assert.NoError(t, errs[3])
	require.NoError(t, p.Close())
}

func TestAsCompletedStopsWhenTheContextEnds(t *testing.T) {
	// 1 slow future is watched by the iterator itself; 500 need watcher
	// goroutines.
	for _, slow := range []int{1, 500} {
		t.Run(fmt.Sprintf("cancelled mid-iteration with %d slow", slow), func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 2, Prefetch: 1})
			fast := Sleep.Submit(p, 20)
			fs := append([]*procpool.Future[int]{fast}, waitSleeps(p, waitRepeat(60_000, slow)...)...)
			c, cancel := context.WithCancel(ctx(t))
			defer cancel()
			var got []*procpool.Future[int]
			var errs []error
			for f, err := range procpool.AsCompleted(c, fs...) {
				got = append(got, f)
				errs = append(errs, err)
				cancel()
			}
			assert.Equal(t, []int{0, -1}, waitPositions(fs, got))
			assert.Equal(t, []error{nil, context.Canceled}, errs)
		})
	}

	t.Run("deadline", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		c, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
		defer cancel()
		start := time.Now()
		fs := waitSleeps(p, 60_000, 60_000)
		got, errs := waitCollect(c, fs...)
		assert.Less(t, time.Since(start), 10*time.Second)
		assert.Equal(t, []int{-1}, waitPositions(fs, got))
		assert.Equal(t, []error{context.DeadlineExceeded}, errs)
	})

	t.Run("already ended", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		done := Square.Submit(p, 4)
		<-done.Done()
		slow := Sleep.Submit(p, 60_000)
		c, cancel := context.WithCancel(ctx(t))
		cancel()
		fs := []*procpool.Future[int]{slow, done}
		got, errs := waitCollect(c, fs...)
		assert.Equal(t, []int{1, -1}, waitPositions(fs, got), "ctx bounds only the waiting")
		assert.Equal(t, []error{nil, context.Canceled}, errs)
	})
}

func waitRepeat(v, n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = v
	}
	return s
}

func TestAsCompletedBreakingEarlyLeaksNothing(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2, Prefetch: 1})
	fast := Sleep.Submit(p, 200)
	fs := append([]*procpool.Future[int]{fast}, waitSleeps(p, waitRepeat(60_000, 1000)...)...)
	require.False(t, waitIsDone(fast), "the fast future is still pending, so AsCompleted must start its watchers")

	n := 0
	for f, err := range procpool.AsCompleted(ctx(t), fs...) {
		require.NoError(t, err)
		require.True(t, f == fast)
		// This goroutine, and one watcher per group of futures.
		assert.Greater(t, waitGoroutines(), 1, "watchers")
		assert.Less(t, waitGoroutines(), len(fs)/10, "no goroutine per future")
		n++
		break
	}
	assert.Equal(t, 1, n)
	assert.Zero(t, waitGoroutines(), "the watchers are gone when the loop ends")
}

// waitGoroutines counts the goroutines that are running code of wait.go.
func waitGoroutines() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	k := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "/pkg/procpool/wait.go:") {
			k++
		}
	}
	return k
}

func waitIsDone(f *procpool.Future[int]) bool {
	select {
	case <-f.Done():
		return true
	default:
		return false
	}
}

func TestAsCompletedManyFutures(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	fs := make([]*procpool.Future[int], 2000)
	for i := range fs {
		fs[i] = Square.Submit(p, i)
	}
	seen := map[*procpool.Future[int]]bool{}
	for f, err := range procpool.AsCompleted(ctx(t), fs...) {
		require.NoError(t, err)
		require.NotNil(t, f)
		require.False(t, seen[f], "a future is yielded once")
		seen[f] = true
	}
	assert.Len(t, seen, len(fs))
	require.NoError(t, p.Close())
}

func TestAsCompletedAndWaitWithNoFutures(t *testing.T) {
	noLeaks(t)
	c, cancel := context.WithCancel(ctx(t))
	cancel()
	for range procpool.AsCompleted[int](c) {
		t.Fatal("AsCompleted yielded with no futures")
	}
	for _, until := range []procpool.WaitCondition{procpool.FirstCompleted, procpool.FirstError, procpool.AllCompleted} {
		done, pending := procpool.Wait[int](c, nil, until)
		assert.Empty(t, done)
		assert.Empty(t, pending)
	}
}

func TestWait(t *testing.T) {
	type futures = []*procpool.Future[int]

	t.Run("FirstCompleted", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 3, Prefetch: 1})
		fs := waitSleeps(p, 60_000, 10, 60_000)
		done, pending := procpool.Wait(ctx(t), fs, procpool.FirstCompleted)
		assert.Equal(t, []int{1}, waitPositions(fs, done))
		assert.Equal(t, []int{0, 2}, waitPositions(fs, pending), "in input order")
	})

	t.Run("FirstCompleted with one already done", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1, Prefetch: 1})
		sq := Square.Submit(p, 5)
		<-sq.Done()
		slow := Sleep.Submit(p, 60_000)
		start := time.Now()
		fs := futures{slow, sq}
		done, pending := procpool.Wait(ctx(t), fs, procpool.FirstCompleted)
		assert.Less(t, time.Since(start), 10*time.Second)
		assert.Equal(t, []int{1}, waitPositions(fs, done))
		assert.Equal(t, []int{0}, waitPositions(fs, pending))
	})

	t.Run("FirstError", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 3, Prefetch: 1})
		ok := Sleep.Submit(p, 2000)
		bad := Fail.Submit(p, "disk full")
		slow := Sleep.Submit(p, 60_000)
		fs := futures{ok, bad, slow}
		done, pending := procpool.Wait(ctx(t), fs, procpool.FirstError)
		assert.Equal(t, []int{1}, waitPositions(fs, done))
		assert.Equal(t, []int{0, 2}, waitPositions(fs, pending))
		_, err := bad.Get(ctx(t))
		var re *procpool.RemoteError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, "disk full", re.Message)
	})

	t.Run("FirstError with no error waits for all", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2, Prefetch: 1})
		fs := futures{Sleep.Submit(p, 150), Square.Submit(p, 3), Sleep.Submit(p, 50)}
		done, pending := procpool.Wait(ctx(t), fs, procpool.FirstError)
		assert.Equal(t, []int{0, 1, 2}, waitPositions(fs, done))
		assert.Empty(t, waitPositions(fs, pending))
		assert.Equal(t, []int{150, 9, 50}, waitValues(t, done))
		require.NoError(t, p.Close())
	})

	t.Run("AllCompleted goes on past errors", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2, Prefetch: 1})
		fs := futures{Sleep.Submit(p, 150), Fail.Submit(p, "no"), Square.Submit(p, 3), Sleep.Submit(p, 50)}
		done, pending := procpool.Wait(ctx(t), append(fs, fs[0]), procpool.AllCompleted)
		assert.Equal(t, []int{0, 1, 2, 3}, waitPositions(fs, done), "in input order, without the duplicate")
		assert.Empty(t, waitPositions(fs, pending))
		require.NoError(t, p.Close())
	})

	for _, until := range []procpool.WaitCondition{procpool.FirstCompleted, procpool.FirstError, procpool.AllCompleted} {
		t.Run(fmt.Sprintf("timeout with condition %d", until), func(t *testing.T) {
			p, _ := newPool(t, procpool.Config{Workers: 1, Prefetch: 1})
			slow := Sleep.Submit(p, 60_000)
			c, cancel := context.WithTimeout(ctx(t), 50*time.Millisecond)
			defer cancel()
			start := time.Now()
			fs := futures{slow}
			done, pending := procpool.Wait(c, fs, until)
			assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
			assert.Less(t, time.Since(start), 10*time.Second)
			assert.Empty(t, waitPositions(fs, done))
			assert.Equal(t, []int{0}, waitPositions(fs, pending))
		})
	}

	t.Run("timeout keeps what finished", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2, Prefetch: 1})
		fs := futures{Sleep.Submit(p, 60_000), Square.Submit(p, 2), Fail.Submit(p, "late")}
		c, cancel := context.WithTimeout(ctx(t), 500*time.Millisecond)
		defer cancel()
		done, pending := procpool.Wait(c, fs, procpool.AllCompleted)
		require.ErrorIs(t, c.Err(), context.DeadlineExceeded)
		assert.Equal(t, []int{1, 2}, waitPositions(fs, done))
		assert.Equal(t, []int{0}, waitPositions(fs, pending))
	})

	t.Run("unknown condition", func(t *testing.T) {
		assert.Panics(t, func() { procpool.Wait[int](ctx(t), nil, procpool.WaitCondition(7)) })
	})
}

// BenchmarkAsCompleted measures AsCompleted over 10,000 futures: "done" is
// its own cost when every future has finished; "in flight" consumes the
// futures while the pool still runs them. Two references run the same calls:
// "Get in order", with no completion ordering at all, and "goroutine per
// future", the simple design AsCompleted avoids.
func BenchmarkAsCompleted(b *testing.B) {
	const n = 10_000
	newBenchPool := func(b *testing.B) *procpool.Pool {
		p, err := procpool.New(procpool.Config{Workers: 2, Logger: hclog.NewNullLogger()})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { p.Close() })
		return p
	}
	submit := func(p *procpool.Pool) []*procpool.Future[int] {
		fs := make([]*procpool.Future[int], n)
		for i := range fs {
			fs[i] = Square.Submit(p, i)
		}
		return fs
	}
	perFuture := func(b *testing.B) {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/future")
	}
	bg := context.Background()

	b.Run("done", func(b *testing.B) {
		fs := submit(newBenchPool(b))
		for _, f := range fs {
			<-f.Done()
		}
		b.ReportAllocs()
		for b.Loop() {
			k := 0
			for _, err := range procpool.AsCompleted(bg, fs...) {
				if err != nil {
					b.Fatal(err)
				}
				k++
			}
			if k != n {
				b.Fatal(k, "yields")
			}
		}
		perFuture(b)
	})
	b.Run("in flight", func(b *testing.B) {
		p := newBenchPool(b)
		b.ReportAllocs()
		for b.Loop() {
			k := 0
			for _, err := range procpool.AsCompleted(bg, submit(p)...) {
				if err != nil {
					b.Fatal(err)
				}
				k++
			}
			if k != n {
				b.Fatal(k, "yields")
			}
		}
		perFuture(b)
	})
	b.Run("Get in order", func(b *testing.B) {
		p := newBenchPool(b)
		b.ReportAllocs()
		for b.Loop() {
			for _, f := range submit(p) {
				if _, err := f.Get(bg); err != nil {
					b.Fatal(err)
				}
			}
		}
		perFuture(b)
	})
	b.Run("goroutine per future", func(b *testing.B) {
		p := newBenchPool(b)
		b.ReportAllocs()
		for b.Loop() {
			fs := submit(p)
			out := make(chan *procpool.Future[int], len(fs))
			for _, f := range fs {
				go func() {
					<-f.Done()
					out <- f
				}()
			}
			for range fs {
				if _, err := (<-out).Get(bg); err != nil {
					b.Fatal(err)
				}
			}
		}
		perFuture(b)
	})
}
