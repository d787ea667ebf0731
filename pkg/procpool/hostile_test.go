package procpool_test

// The reliability suite (issue 6), part three: hostile workers. A task that
// misbehaves on the protocol from inside a worker, a worker frozen while
// the parent writes megabytes to it, and fake workers (Config.Command) that
// misbehave before the handshake. Each must become a clear error that names
// the worker, and Terminate must return promptly in every case.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/pkg/procpool"
)

// relHostileArg is the argument of RelHostile.
type relHostileArg struct {
	Mode   string
	Marker string // a file it creates just before it misbehaves
}

// RelHostile misbehaves on its worker's protocol descriptor (found with
// protocolFD), then hangs, unless it died.
var RelHostile = procpool.Register("test.rel.hostile", func(_ context.Context, a relHostileArg) (int, error) {
	fd := protocolFD()
	if a.Marker != "" {
		_ = os.WriteFile(a.Marker, nil, 0o600)
	}
	switch a.Mode {
	case "garbage": // a plausible length, then a body that is no message
		_, _ = unix.Write(fd, []byte("\x00\x00\x00\x0cHello, world"))
	case "close-stdout": // and keep running
		_ = unix.Close(fd)
	case "huge": // a frame length of 4 GiB
		_, _ = unix.Write(fd, []byte("\xff\xff\xff\xffnot a frame"))
	case "mid-frame": // a header promising 100 bytes, 10 of them, and death
		_, _ = unix.Write(fd, []byte("\x00\x00\x00\x640123456789"))
		os.Exit(7)
	case "freeze": // stop reading anything, stop everything
		_ = unix.Kill(os.Getpid(), unix.SIGSTOP)
	case "stuck": // stuck in the task, deaf to its context
	default:
		panic("unknown mode " + a.Mode)
	}
	time.Sleep(time.Hour)
	return 0, nil
})

// relTerminate terminates p and checks that it returned promptly.
func relTerminate(t *testing.T, p *procpool.Pool) {
	t.Helper()
	start := time.Now()
	require.NoError(t, p.Terminate())
	took := time.Since(start)
	assert.Less(t, took, 2*time.Second, "Terminate took %s", took)
	assert.Empty(t, p.Workers())
}

// A worker that breaks the protocol while it holds a call: the call fails
// with an error naming the worker and what it did, the pool applies its
// policy, and Terminate returns promptly.
func TestHostileWorkers(t *testing.T) {
	for _, tc := range []struct {
		mode     string
		reason   []string // in WorkerExitError.Reason
		exitCode int
		signal   string
	}{
		{"garbage", []string{"garbled frame", `"Hello, world"`}, -1, "SIGKILL"},
		{"close-stdout", []string{"it closed its stdout but kept running"}, -1, "SIGKILL"},
		{"huge", []string{"frame of 4294967295 bytes is over the 67108864-byte limit"}, -1, "SIGKILL"},
		{"mid-frame", []string{"stream ended after 10 of 100 body bytes", `"0123456789"`}, 7, ""},
	} {
		for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
			t.Run(fmt.Sprintf("%s/%s", tc.mode, policy), func(t *testing.T) {
				p, logs := relPool(t, 30*time.Second, procpool.Config{Workers: 1, OnCrash: policy})
				pid := p.Workers()[0]
				f := RelHostile.Submit(p, relHostileArg{Mode: tc.mode})
				queued := Square.Submit(p, 5)
				_, err := f.Get(ctx(t))
				exit := relWorkerDeath(t, err, "", policy, []int{pid})
				assert.Equal(t, pid, exit.PID)
				for _, r := range tc.reason {
					assert.Contains(t, exit.Reason, r)
				}
				assert.Equal(t, tc.exitCode, exit.ExitCode)
				assert.Equal(t, tc.signal, exit.Signal)
				assert.Contains(t, err.Error(), fmt.Sprintf("worker pid %d ", pid), "the message names the worker")
				assert.Contains(t, err.Error(), tc.reason[0], "and says what it did")
				assert.Contains(t, logs.String(), fmt.Sprintf("pid=%d", pid))

				v, qerr := queued.Get(ctx(t))
				if policy == procpool.Break {
					require.ErrorIs(t, qerr, procpool.ErrBrokenPool)
				} else {
					require.NoError(t, qerr, "a call it held but had not started runs elsewhere")
					assert.Equal(t, 25, v)
				}
				relTerminate(t, p)
			})
		}
	}
}

// Terminate while a worker is misbehaving, before the pool has noticed or
// while it deals with it: it returns promptly, and the call fails with
// ErrClosed or with its attributed error.
func TestTerminateDuringHostility(t *testing.T) {
	for _, mode := range []string{"garbage", "close-stdout", "huge", "mid-frame", "freeze", "stuck"} {
		for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
			t.Run(fmt.Sprintf("%s/%s", mode, policy), func(t *testing.T) {
				p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 1, OnCrash: policy})
				marker := filepath.Join(t.TempDir(), "marker")
				f := RelHostile.Submit(p, relHostileArg{Mode: mode, Marker: marker})
				require.Eventually(t, func() bool { _, err := os.Stat(marker); return err == nil }, 10*time.Second, time.Millisecond)
				relTerminate(t, p)
				_, err := f.Get(ctx(t))
				require.True(t, relErrIs(err, procpool.ErrClosed, procpool.ErrBrokenPool, procpool.ErrWorkerLost), "%v", err)
			})
		}
	}
}

// relBig8 is an 8 MiB argument, different for each i.
func relBig8(i int) []byte {
	b := make([]byte, 8<<20)
	for j := 0; j < len(b); j += 4096 {
		b[j] = byte(i)
		b[j+1] = byte(j >> 12)
	}
	return b
}

// relSendBlocked reports whether some goroutine of this process is parked
// writing to a pipe from a worker's sender (procpool's proc.sendLoop): the
// parent's write to a worker that does not read is stuck, which is the
// situation under test. It reads goroutine stacks, so it only informs.
func relSendBlocked() bool {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("sendLoop")) && bytes.Contains(g, []byte("waitWrite")) {
			return true
		}
	}
	return false
}

// A worker that stops reading its stdin (it is stopped with SIGSTOP, or stuck
// in a task) while the parent submits 8 MiB arguments to it: the parent stays
// responsive, Terminate returns promptly, and with TaskTimeout the frozen
// worker is killed and replaced, and its other calls complete elsewhere.
func TestHostileWorkerStopsReading(t *testing.T) {
	type variant struct {
		mode    string
		timeout bool
		policy  procpool.CrashPolicy
	}
	var variants []variant
	for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
		variants = append(variants, variant{"freeze", false, policy}, variant{"freeze", true, policy}, variant{"stuck", false, policy})
	}
	for _, v := range variants {
		name := v.mode
		if v.timeout {
			name += "+TaskTimeout"
		}
		t.Run(fmt.Sprintf("%s/%s", name, v.policy), func(t *testing.T) {
			cfg := procpool.Config{Workers: 1, OnCrash: v.policy}
			if v.timeout {
				cfg.TaskTimeout, cfg.KillGrace = 1500*time.Millisecond, 200*time.Millisecond // long enough for an 8 MiB echo under -race
			}
			p, logs := relPool(t, 60*time.Second, cfg)
			pid := p.Workers()[0]
			data := make([][]byte, 3)
			for i := range data {
				data[i] = relBig8(i)
			}
			marker := filepath.Join(t.TempDir(), "marker")
			hostile := RelHostile.Submit(p, relHostileArg{Mode: v.mode, Marker: marker})
			require.Eventually(t, func() bool { _, err := os.Stat(marker); return err == nil }, 10*time.Second, time.Millisecond)
			if v.mode == "freeze" {
				require.Eventually(t, func() bool { _, st, _ := procStat(pid); return st == 'T' }, 5*time.Second, time.Millisecond, "the worker is stopped")
			}
			bigs := make([]*procpool.Future[[]byte], 3)
			for i := range bigs {
				bigs[i] = Echo.Submit(p, data[i])
			}

			// The parent answers at once while its write is stuck.
			start := time.Now()
			if workers := p.Workers(); !v.timeout {
				assert.Equal(t, []int{pid}, workers)
			}
			_ = p.Stats()
			small := Square.Submit(p, 3)
			assert.Less(t, time.Since(start), 500*time.Millisecond, "the parent stays responsive")
			if v.mode == "freeze" && !v.timeout {
				blocked := false
				for deadline := time.Now().Add(2 * time.Second); !blocked && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					blocked = relSendBlocked()
				}
				t.Logf("a write to the frozen worker seen blocked: %v", blocked)
			}

			if !v.timeout {
				relTerminate(t, p)
				for _, f := range append([]*procpool.Future[[]byte]{}, bigs...) {
					_, err := f.Get(ctx(t))
					require.ErrorIs(t, err, procpool.ErrClosed)
				}
				for _, err := range []error{futErr(t, hostile), futErr(t, small)} {
					require.ErrorIs(t, err, procpool.ErrClosed)
				}
				return
			}

			_, err := hostile.Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrTaskTimeout)
			for i, f := range bigs {
				got, err := f.Get(ctx(t))
				require.NoError(t, err, "call %d runs on the replacement", i)
				require.True(t, bytes.Equal(data[i], got), "call %d came back with the wrong data", i)
			}
			n, err := small.Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 9, n)
			assert.NotEqual(t, []int{pid}, p.Workers(), "the frozen worker was replaced")
			assert.False(t, running(pid))
			st := p.Stats()
			assert.Equal(t, 1, st.TimedOut)
			assert.Zero(t, st.Deaths, "killed on purpose: no crash")
			assert.Contains(t, logs.String(), "worker replaced after it did not stop an abandoned task")
			assert.Contains(t, logs.String(), fmt.Sprintf("pid=%d", pid))
			relTerminate(t, p)
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

func futErr(t *testing.T, f *procpool.Future[int]) error {
	_, err := f.Get(ctx(t))
	return err
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
