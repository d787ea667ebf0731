//go:build unix

package procpool_test

// The Break crash policy: a death fails every pending call and refuses work.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// Each way a worker can die under Break fails the task it held and every
// other pending task with ErrBrokenPool and a WorkerExitError saying how it
// died; the other workers are stopped and new work is refused.
func TestDeathBreaksThePool(t *testing.T) {
	for _, tc := range []struct {
		how      string
		exitCode int
		signal   string
		stderr   string // in WorkerExitError.Stderr
		reason   string // in WorkerExitError.Reason
	}{
		{how: "exit0", exitCode: 0},
		{how: "exit1", exitCode: 1},
		{how: "exit3", exitCode: 3},
		{how: "sigkill", exitCode: -1, signal: "SIGKILL"},
		{how: "concurrent-map-writes", exitCode: 2, stderr: "concurrent map writes"}, // -race may print its report inside the line
		{how: "goroutine-panic", exitCode: 2, stderr: "panic: panic in a goroutine the task started"},
		{how: "garble", exitCode: -1, signal: "SIGKILL", reason: "garbled frame"},
		{how: "garble-huge", exitCode: -1, signal: "SIGKILL", reason: "frame of 4294967295 bytes is over the 67108864-byte limit; data starts ff ff ff ff 67 61 72"},
	} {
		t.Run(tc.how, func(t *testing.T) {
			p, logs := newPool(t, procpool.Config{Workers: 2})
			before := p.Workers()
			crashed := Crash.Submit(p, tc.how)
			slow := make([]*procpool.Future[int], 10)
			for i := range slow {
				slow[i] = Sleep.Submit(p, 60_000)
			}
			_, err := crashed.Get(ctx(t))

			require.ErrorIs(t, err, procpool.ErrBrokenPool)
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Contains(t, before, exit.PID)
			assert.Equal(t, tc.exitCode, exit.ExitCode)
			assert.Equal(t, tc.signal, exit.Signal)
			assert.Contains(t, exit.Stderr, tc.stderr)
			assert.Contains(t, exit.Reason, tc.reason)
			assert.Positive(t, exit.Held)

			for _, f := range slow {
				_, serr := f.Get(ctx(t))
				require.ErrorIs(t, serr, procpool.ErrBrokenPool)
				var e2 *procpool.WorkerExitError
				require.ErrorAs(t, serr, &e2)
				assert.Equal(t, exit.PID, e2.PID)
				assert.NotSame(t, err, serr, "each future has its own error value")
			}
			_, err = Square.Submit(p, 2).Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrBrokenPool, "new work is refused")
			_, err = Square.Map(ctx(t), p, []int{1, 2})
			require.ErrorIs(t, err, procpool.ErrBrokenPool)

			require.Eventually(t, func() bool { return len(p.Workers()) == 0 }, 5*time.Second, 5*time.Millisecond)
			for _, pid := range before {
				assert.False(t, running(pid), "worker %d still running", pid)
			}
			assert.Contains(t, logs.String(), fmt.Sprintf("worker died; the pool is broken: pid=%d", exit.PID))
			require.NoError(t, p.Close())
		})
	}
}
