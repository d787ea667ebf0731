//go:build unix

package worker

import (
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/wire"
)

// TestWatch: a run that lasts longRun starts the reader when it ends, or,
// still executing at a tick of the watch, then; quick runs do not, and stop
// it; and the watch stops ticking once no run comes, or while the reader
// reads: an idle worker wakes for nothing.
func TestWatch(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pw.Close()
	defer pr.Close()
	in := newIntake(wire.NewStream(pr, nil, wire.DefaultMaxFrame), pr)
	in.start(NewExecutor(&wire.Setup{}))
	require.True(t, in.inline, "a pipe takes read deadlines")
	idle := func() bool { return !in.armed.Load() }

	for range 100 {
		in.running(time.Now())
		in.ran(time.Microsecond)
	}
	assert.False(t, in.reading, "quick runs")
	assert.Eventually(t, idle, 10*tickEvery, tickEvery/2, "the watch stops ticking")

	in.running(time.Now())
	assert.Eventually(t, func() bool { return in.now.Load()&readerBit != 0 }, 10*tickEvery, tickEvery/2,
		"a run still executing at a tick")
	in.ran(2 * tickEvery)
	assert.True(t, in.reading)
	in.running(time.Now())
	in.ran(time.Microsecond)
	assert.False(t, in.reading, "a quick run stops the reader")

	in.running(time.Now())
	in.ran(2 * longRun)
	assert.True(t, in.reading, "a run that lasted longRun")
	assert.Eventually(t, idle, 10*tickEvery, tickEvery/2, "the watch stops ticking while the reader reads")
	in.running(time.Now())
	in.ran(time.Microsecond)
	assert.False(t, in.reading)
	assert.Eventually(t, idle, 10*tickEvery, tickEvery/2, "the watch stops ticking")
}
