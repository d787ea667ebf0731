//go:build unix

package procpool_test

// Startup: the role check, Config.Command, workers that fail the handshake.

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// A program whose main does not call procpool.Main() first cannot start a
// pool, and says why, whether its worker copy exits or hangs.
func TestForgottenMain(t *testing.T) {
	for _, tc := range []struct {
		role string
		want []string
	}{
		{"forget-main-exit", []string{"exited with code 1", "call procpool.Main() as the first statement of main", "main failed: procpool: New called in a worker process"}},
		{"forget-main-hang", []string{"killed by SIGKILL", "no handshake within 500ms", "call procpool.Main() as the first statement of main"}},
		{"garbage-stdout", []string{"killed by SIGKILL", "data starts 48 65 6c 6c", `"Hello, world!`, "call procpool.Main() as the first statement of main"}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			noLeaks(t)
			p, err := procpool.New(procpool.Config{
				Workers:      2,
				StartTimeout: 500 * time.Millisecond,
				Env:          []string{"PROCPOOL_TEST_ROLE=" + tc.role},
				Logger:       hclog.NewNullLogger(),
			})
			require.Nil(t, p)
			require.ErrorIs(t, err, procpool.ErrStartup)
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestNewInAWorkerIsRefused(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	msg, err := NewInside.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, procpool.ErrInWorker.Error(), msg)
	require.NoError(t, p.Close())
}

// Fake workers, started through Config.Command, that misbehave before the
// handshake: New fails promptly with ErrStartup and a *WorkerExitError that
// names the process and says what it did, and kills its process group.
func TestHostileFakeWorkers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		script   string
		reason   []string
		exitCode int
		signal   string
	}{
		{"garbage", `printf 'Hello, world! This is not a frame.'; exec sleep 60`,
			[]string{"garbled frame", `"Hello, world! This is not a fram"`}, -1, "SIGKILL"},
		{"4 GiB frame", `printf '\377\377\377\377'; exec sleep 60`,
			[]string{"frame of 4294967295 bytes is over the 67108864-byte limit"}, -1, "SIGKILL"},
		{"dies mid-frame", `printf '\000\000\000\1440123456789'; exit 7`,
			[]string{"stream ended after 10 of 100 body bytes"}, 7, ""},
		{"closes stdout and keeps running", `exec >&-; exec sleep 60`,
			[]string{"closed its stdout"}, -1, "SIGKILL"},
		{"silent", `exec sleep 60`,
			[]string{"no handshake within 500ms"}, -1, "SIGKILL"},
		{"exits, its child holding stdout", `sleep 60 & exit 3`,
			[]string{"exited before the handshake"}, 3, ""},
		{"floods stderr", `yes 'stderr flood' | head -c 1000000 >&2; exit 4`,
			[]string{"exited before the handshake"}, 4, ""},
		{"killed before the handshake", `kill -9 $$`,
			[]string{"before the handshake"}, -1, "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			startWatchdog(t, 30*time.Second)
			noLeaks(t)
			start := time.Now()
			limit := 10 * time.Second // none but the silent one may need it
			if tc.name == "silent" {
				limit = 500 * time.Millisecond
			}
			p, err := procpool.New(procpool.Config{
				Workers:      2,
				StartTimeout: limit,
				Command:      []string{"/bin/sh", "-c", tc.script},
				Logger:       nullLogger(),
			})
			took := time.Since(start)
			require.Nil(t, p)
			require.ErrorIs(t, err, procpool.ErrStartup)
			assert.Less(t, took, limit/2+2*time.Second, "New returned after %s", took)
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Positive(t, exit.PID)
			for _, r := range tc.reason {
				assert.Contains(t, exit.Reason, r)
			}
			assert.Equal(t, tc.exitCode, exit.ExitCode)
			assert.Equal(t, tc.signal, exit.Signal)
			assert.Contains(t, err.Error(), fmt.Sprintf("worker pid %d ", exit.PID))
			if tc.signal != "" {
				assert.NotContains(t, exit.Reason, "exited", "BUG: a worker killed by a signal is said to have exited: %s", err)
			}
			if tc.name == "killed before the handshake" {
				assert.NotContains(t, exit.Reason, "procpool.Main()", "BUG: the hint about procpool.Main misleads: this worker did not forget it: %s", err)
			}
			require.Eventually(t, func() bool { return len(relGroupAlive(exit.PID)) == 0 }, 2*time.Second, 5*time.Millisecond,
				"the worker's process group is gone: %v", relGroupAlive(exit.PID))
			t.Logf("%s (after %s)", err, took.Round(time.Millisecond))
		})
	}
}

// relGroupAlive lists the live processes (zombies, which wait for whoever
// reaps them, excepted) of process group pgid.
func relGroupAlive(pgid int) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" && f[0] != "X" {
			pid, _ := strconv.Atoi(e.Name())
			pids = append(pids, pid)
		}
	}
	return pids
}

// Config.Command names a program the way exec.Command does: a bare name is
// looked up in PATH.
func TestCommandIsLookedUpInPath(t *testing.T) {
	startWatchdog(t, 30*time.Second)
	noLeaks(t)
	_, err := procpool.New(procpool.Config{
		Workers:      1,
		StartTimeout: 500 * time.Millisecond,
		Command:      []string{"sh", "-c", `exit 9`},
		Logger:       nullLogger(),
	})
	require.ErrorIs(t, err, procpool.ErrStartup)
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit, "BUG: Command {\"sh\", ...} must run sh from PATH, as exec.Command does; got: %v", err)
	assert.Equal(t, 9, exit.ExitCode)
	assert.False(t, strings.Contains(err.Error(), "no such file"), "%v", err)
}
