//go:build unix

package procpool

// The per-platform process functions: awaitExit leaves the worker a zombie,
// so that its process group can still be killed by its id.

import (
	"bufio"
	"errors"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAwaitExitThenKillGroup: a worker exits leaving a child in its process
// group; awaitExit returns, the group is killed by the worker's pid, and the
// worker is still there to reap, with its own exit status.
func TestAwaitExitThenKillGroup(t *testing.T) {
	cmd := exec.Command("sh", "-c", "sleep 60 & echo $!; exit 3")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setProcAttr(cmd.SysProcAttr)
	out, err := cmd.StdoutPipe() // the sleep holds it open while it lives
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	sleeper, err := strconv.Atoi(strings.TrimSpace(line))
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Kill(sleeper, syscall.SIGKILL) })

	done := make(chan error, 1)
	go func() { done <- awaitExit(cmd.Process.Pid) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("awaitExit did not return after the process exited")
	}
	require.NoError(t, killGroup(cmd.Process.Pid, syscall.SIGKILL))
	eof := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, out); eof <- err }()
	select {
	case <-eof: // the sleep is dead: nothing holds the pipe any more
	case <-time.After(10 * time.Second):
		t.Fatal("the process group's other member outlived killGroup")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "reaped after awaitExit: %v", err)
	assert.Equal(t, 3, ee.ExitCode())
}

// TestAwaitExitOfAZombie: a process that exited before the call, a zombie
// already, is waited for at once and left to reap.
func TestAwaitExitOfAZombie(t *testing.T) {
	cmd := exec.Command("sh", "-c", "exit 4")
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	setProcAttr(cmd.SysProcAttr)
	require.NoError(t, cmd.Start())
	time.Sleep(200 * time.Millisecond) // it exits meanwhile
	done := make(chan error, 1)
	go func() { done <- awaitExit(cmd.Process.Pid) }()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("awaitExit did not return for a zombie")
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "reaped after awaitExit: %v", err)
	assert.Equal(t, 4, ee.ExitCode())
}

func TestSignalName(t *testing.T) {
	assert.Equal(t, "SIGKILL", signalName(syscall.SIGKILL))
	assert.Equal(t, "SIGTERM", signalName(syscall.SIGTERM))
}
