//go:build unix

package procpool_test

// Workers that break the protocol or stop reading: clear errors, prompt Terminate.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

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

func futErr(t *testing.T, f *procpool.Future[int]) error {
	_, err := f.Get(ctx(t))
	return err
}
