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

// TestWatch: a run that lasts longRun starts the reader at the watch's next
// tick, quick runs do not, and the watch stops ticking once no run comes: an idle
// worker wakes for nothing.
func TestWatch(t *testing.T) {
	pr, pw, err := os.Pipe()
	require.NoError(t, err)
	defer pw.Close()
	defer pr.Close()
	in := newIntake(wire.NewStream(pr, nil, wire.DefaultMaxFrame), pr)
	in.start(NewExecutor(&wire.Setup{}))
	require.True(t, in.inline, "a pipe takes read deadlines")

	for range 100 {
		in.running(time.Now())
		in.ran(time.Microsecond)
	}
	assert.False(t, in.reading, "quick runs")
	assert.Eventually(t, func() bool { return !in.armed.Load() }, 10*tickEvery, tickEvery/2, "the watch stops ticking")

	in.running(time.Now())
	time.Sleep(2 * tickEvery)
	in.ran(2 * tickEvery)
	assert.True(t, in.reading, "a run that lasted longRun at a tick")
	in.ran(time.Microsecond) // a quick run stops the reader
	assert.False(t, in.reading)
	assert.Eventually(t, func() bool { return !in.armed.Load() }, 10*tickEvery, tickEvery/2, "the watch stops ticking")
}
