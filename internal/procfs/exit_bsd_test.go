//go:build darwin || dragonfly || freebsd || netbsd || openbsd

package procfs

import (
	"errors"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestWatchExit watches a child that is killed: the wait ends, and the child
// is left a zombie for its parent to reap.
func TestWatchExit(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	reaped := false
	t.Cleanup(func() {
		if !reaped {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	wait, err := WatchExit(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err := <-done:
		t.Fatalf("the wait ended while the child ran: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	cmd.Process.Kill()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not end when the child was killed")
	}
	var ws unix.WaitStatus
	pid, err := unix.Wait4(cmd.Process.Pid, &ws, unix.WNOHANG, nil)
	if err != nil || pid != cmd.Process.Pid {
		t.Fatalf("the child was not left for its parent to reap: wait4 = %d, %v", pid, err)
	}
	reaped = true
	if !ws.Signaled() {
		t.Fatalf("the child's status: %v", ws)
	}
}

// TestWatchExitGone watches a pid that names no process.
func TestWatchExitGone(t *testing.T) {
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := WatchExit(cmd.Process.Pid); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("WatchExit of a reaped child = %v, want ESRCH", err)
	}
}
