package procpool

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/procpool/procpool/internal/wire"
)

// measuredBatch returns a batch of n calls of a task measured to take least each.
func measuredBatch(n int, least time.Duration) *batch {
	return &batch{args: wire.Values{Span: make([]uint32, 2*n)}, cost: &taskCost{warm: least, least: least}}
}

// TestWakeCostIgnoresOneOutlier: one worker that waited long for a CPU
// (an overloaded machine) must not make every wake-up look dear, which
// once piled a Map of 10 ms sleeps on two workers of 256 for 18 s.
func TestWakeCostIgnoresOneOutlier(t *testing.T) {
	pl := &placement{}
	b := measuredBatch(1, 10*time.Millisecond)
	b.cold = true
	pl.learn(b, 1, 10*time.Millisecond, 10*time.Millisecond+50*time.Microsecond)
	assert.Equal(t, 50*time.Microsecond, pl.wake)
	for range 3 {
		pl.learn(b, 1, 10*time.Millisecond, 310*time.Millisecond)
	}
	assert.Less(t, pl.wake, 60*time.Microsecond, "three waits of 300 ms moved the wake-up cost from 50 µs")
	pl.learn(b, 1, 10*time.Millisecond, 10*time.Millisecond+20*time.Microsecond)
	assert.Equal(t, 20*time.Microsecond, pl.wake, "a quicker wake-up is taken at once")
}

// TestFeedRunningOnlyTinyCalls: the running workers are fed only calls
// that take less than queueTarget; longer ones may wait rather than
// compute, and spread, however dear a wake-up was measured.
func TestFeedRunningOnlyTinyCalls(t *testing.T) {
	pl := &placement{ready: 8 * cpus(), busy: cpus(), wake: time.Second}
	assert.True(t, pl.feedRunning(measuredBatch(1, time.Microsecond)), "a 1 µs call")
	assert.True(t, pl.feedRunning(measuredBatch(100, time.Microsecond)), "a chunk of 100 µs")
	assert.False(t, pl.feedRunning(measuredBatch(1, 10*time.Millisecond)), "a 10 ms call")
	assert.False(t, pl.feedRunning(measuredBatch(1000, time.Microsecond)), "a chunk of 1 ms")
	assert.False(t, pl.feedRunning(measuredBatch(1, 0)), "a call never measured")

	pl.wake = time.Microsecond
	assert.False(t, pl.feedRunning(measuredBatch(1, time.Microsecond)), "a wake-up that costs less than twice the call")
	pl.wake, pl.ready = time.Second, 2*cpus()
	assert.False(t, pl.feedRunning(measuredBatch(1, time.Microsecond)), "no more than twice as many workers as CPUs")
}
