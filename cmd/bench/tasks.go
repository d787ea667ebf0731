package main

import (
	"context"
	"os"
	"runtime/metrics"
	"sync/atomic"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

// The tasks are registered at package level, so that the parent, its
// re-exec'd workers and the test binary all know them. Each is the plain
// function beside it, wrapped: the errgroup and serial baselines call the
// plain function, procpool calls the task, and both do the same work.

// Noop returns its argument: a trivial task, so that what is measured is
// the cost of getting a call to a worker and its result back.
var Noop = procpool.Register("bench.noop", func(_ context.Context, x int) (int, error) {
	return x, nil
})

// Spin is CPU-bound: n rounds of xorshift arithmetic, no memory traffic.
var Spin = procpool.Register("bench.spin", func(_ context.Context, n int) (uint64, error) {
	return spin(n), nil
})

// Churn allocates and drops n small binary trees: the garbage collector's
// workload, where separate heaps (processes) and one shared heap
// (goroutines) can differ.
var Churn = procpool.Register("bench.churn", func(_ context.Context, n int) (ChurnOut, error) {
	return churn(n), nil
})

// Echo returns the bytes it was given: the payload workload, where the cost
// is moving and copying megabytes.
var Echo = procpool.Register("bench.echo", func(_ context.Context, b []byte) ([]byte, error) {
	return b, nil
})

// Length returns the length of the bytes it was given: the payload-memory
// figure's task, whose input is large and whose result is small, so that
// what the parent holds is the input on its way out.
var Length = procpool.Register("bench.length", func(_ context.Context, b []byte) (int, error) {
	return len(b), nil
})

// WhoAmI returns the worker's pid after a short pause. The pause keeps a
// worker busy long enough that calls submitted together spread over the
// pool, so that a replacement worker gets one as soon as it is ready.
var WhoAmI = procpool.Register("bench.whoami", func(_ context.Context, pauseMicros int) (int, error) {
	time.Sleep(time.Duration(pauseMicros) * time.Microsecond)
	return os.Getpid(), nil
})

// Sleep sleeps ms milliseconds and returns the worker's pid: the scaling
// section's calls that keep a worker busy without using a CPU, so that
// many more workers than CPUs can all be busy at once. It is a task of its
// own, not WhoAmI: a pool measures what each task's calls cost, and the
// recovery workload's 50 µs calls must not set the estimate of 10 ms ones.
var Sleep = procpool.Register("bench.sleep", func(_ context.Context, ms int) (int, error) {
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return os.Getpid(), nil
})

// sink keeps the results of the plain functions alive: a loop whose result
// is dropped is compiled to a cheaper one, and the serial and errgroup
// baselines would time less work than the tasks do.
var sink atomic.Uint64

// spin runs n rounds of a xorshift generator. The result is returned so
// the compiler cannot drop the loop.
func spin(n int) uint64 {
	x := uint64(88172645463325252)
	for range n {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	return x
}

// ChurnOut is what a churn call reports: a checksum, and where and between
// which garbage-collection counts it ran, so that the GC cycles of a run can
// be added up per heap.
type ChurnOut struct {
	Nodes   int
	PID     int
	GCStart uint64
	GCEnd   uint64
}

type node struct{ left, right *node }

// treeDepth makes each tree 2^13-1 nodes of 16 bytes: 128 KiB of small
// objects, dropped as soon as it is counted.
const treeDepth = 12

func build(d int) *node {
	if d == 0 {
		return &node{}
	}
	return &node{build(d - 1), build(d - 1)}
}

func (n *node) count() int {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.count() + n.right.count()
}

func churn(n int) ChurnOut {
	out := ChurnOut{PID: os.Getpid(), GCStart: gcCycles()}
	for range n {
		out.Nodes += build(treeDepth).count()
	}
	out.GCEnd = gcCycles()
	return out
}

// gcCycles is the number of GC cycles this process has completed; reading
// it does not stop the world, unlike runtime.ReadMemStats.
func gcCycles() uint64 {
	s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// calibrate returns how many units of work fn must do to take about d,
// measured in this process on one goroutine. It doubles n until a call
// takes a few times d, then scales; the best of three timings guards
// against a preemption.
func calibrate(d time.Duration, fn func(n int)) int {
	n := 1
	for {
		took := bestOf(3, func() { fn(n) })
		if took >= d/4 || n >= 1<<40 {
			return max(1, int(float64(n)*float64(d)/float64(took)))
		}
		n *= 2
	}
}

// bestOf returns the shortest of k timings of fn.
func bestOf(k int, fn func()) time.Duration {
	best := time.Duration(1<<63 - 1)
	for range k {
		start := time.Now()
		fn()
		best = min(best, time.Since(start))
	}
	return best
}
