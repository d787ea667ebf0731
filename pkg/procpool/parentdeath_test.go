//go:build unix

package procpool_test

// A parent killed, or sent Ctrl-C, leaves no worker running.

import (
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Killing the parent, or sending Ctrl-C to its process group, leaves no
// worker running.
func TestParentDeathTakesTheWorkers(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(parent *os.Process) error
	}{
		{"SIGKILL", func(p *os.Process) error { return p.Signal(syscall.SIGKILL) }},
		{"Ctrl-C to the process group", func(p *os.Process) error { return syscall.Kill(-p.Pid, syscall.SIGINT) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			noLeaks(t)
			cmd, pids := startParent(t, "parent")
			for _, pid := range pids {
				require.True(t, running(pid))
			}
			require.Len(t, pids, 2)
			time.Sleep(50 * time.Millisecond) // let the Map reach the workers
			require.NoError(t, tc.kill(cmd.Process))
			require.Eventually(t, func() bool {
				for _, pid := range pids {
					if running(pid) {
						return false
					}
				}
				return true
			}, 2*time.Second, 10*time.Millisecond, "workers outlived their parent")
		})
	}
}
