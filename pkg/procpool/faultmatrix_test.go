//go:build unix

package procpool_test

// The fault matrix: each stage of a call × each kind of fault × both policies.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// TestFaultMatrix strikes each kind of fault at each stage under each
// policy, and checks the outcome procpool promises with errors.Is/As, in the
// manner of CPython's test_concurrent_futures/test_deadlock.py.
func TestFaultMatrix(t *testing.T) {
	stages := []string{stArgEncode, stArgDecode, stFunc, stResultEncode, stResultDecode, stClose, stBig}
	kinds := []string{kError, kPanic, kExit1, kSIGKILL}
	for _, stage := range stages {
		for _, kind := range kinds {
			for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
				want := relExpect(stage, kind)
				t.Run(fmt.Sprintf("%s/%s/%s", stage, kind, policy), func(t *testing.T) {
					switch {
					case want == outParentDies:
						relParentDeathCell(t, stage, kind, policy)
					case stage == stClose:
						relCloseCell(t, kind, policy, want)
					case stage == stBig:
						relBigCell(t, kind, policy, want)
					default:
						relCell(t, stage, kind, policy, want)
					}
				})
			}
		}
	}
}

// relOutcome is what procpool promises for a cell of the matrix.
type relOutcome int

const (
	// outTaskError: only that call fails, with a *RemoteError or a
	// *CodecError of the stage; the worker and the pool go on.
	outTaskError relOutcome = iota
	// outWorkerDies: the call fails with ErrBrokenPool (Break) or
	// ErrWorkerLost (Respawn) and a *WorkerExitError saying how its worker
	// died; under Break every pending call fails too, under Respawn nothing
	// else is touched.
	outWorkerDies
	// outParentDies: the fault kills the parent itself; every worker is gone
	// within 2 s.
	outParentDies
)

func (o relOutcome) String() string {
	return [...]string{"task error", "worker dies", "parent dies"}[o]
}

func relExpect(stage, kind string) relOutcome {
	switch {
	case kind == kError || kind == kPanic:
		return outTaskError
	case stage == stArgEncode || stage == stResultDecode:
		return outParentDies
	}
	return outWorkerDies
}

// relCatch runs f, turning a panic that escapes it into a value.
func relCatch(f func() error) (err error, panicked any) {
	defer func() { panicked = recover() }()
	return f(), nil
}

// relTaskError checks that err is the per-call error of a fault of kind at
// stage.
func relTaskError(t *testing.T, err error, stage, kind string) {
	t.Helper()
	require.Error(t, err)
	require.NotErrorIs(t, err, procpool.ErrBrokenPool, "BUG: a %s at stage %s must cost only its call, not the pool", kind, stage)
	require.NotErrorIs(t, err, procpool.ErrWorkerLost, "BUG: a %s at stage %s must cost only its call, not a worker", kind, stage)
	var wantStage procpool.Stage
	switch stage {
	case stFunc, stClose, stBig:
		var re *procpool.RemoteError
		require.ErrorAs(t, err, &re, "got %v", err)
		assert.Equal(t, "test.rel.fault", re.Task)
		assert.Equal(t, kind == kPanic, re.Panic)
		assert.Contains(t, re.Message, "rel fault: "+kind+" in the task")
		if kind == kPanic {
			assert.Contains(t, re.Stack, "tasks_test.go", "the stack shows where it panicked")
		}
		return
	case stArgEncode:
		wantStage = procpool.EncodeArgument
	case stArgDecode:
		wantStage = procpool.DecodeArgument
	case stResultEncode:
		wantStage = procpool.EncodeResult
	case stResultDecode:
		wantStage = procpool.DecodeResult
	}
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce, "BUG: a %s in the %s stage must be a *CodecError; got %v", kind, stage, err)
	assert.Equal(t, wantStage, ce.Stage)
	assert.Equal(t, "test.rel.fault", ce.Task)
	assert.Contains(t, ce.Message, "rel fault: "+kind+" in "+stage)
}

// relAfterDeath checks the pool after a worker died by a fault: broken under
// Break, serving with a replacement under Respawn.
func relAfterDeath(t *testing.T, p *procpool.Pool, policy procpool.CrashPolicy, dead int, workers int) {
	t.Helper()
	if policy == procpool.Break {
		_, err := Square.Submit(p, 2).Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrBrokenPool, "new work is refused")
		require.Eventually(t, func() bool { return len(p.Workers()) == 0 }, 5*time.Second, 5*time.Millisecond)
		return
	}
	v, err := Square.Submit(p, 7).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 49, v)
	require.Eventually(t, func() bool { return len(p.Workers()) == workers }, 10*time.Second, 5*time.Millisecond)
	assert.NotContains(t, p.Workers(), dead, "the dead worker was replaced")
	st := p.Stats()
	assert.Equal(t, 1, st.Deaths)
	assert.Equal(t, 1, st.Lost)
}

// relAfterTaskError checks that a per-call fault cost no worker.
func relAfterTaskError(t *testing.T, p *procpool.Pool, before []int) {
	t.Helper()
	v, err := Square.Submit(p, 7).Get(ctx(t))
	require.NoError(t, err, "the pool serves on")
	assert.Equal(t, 49, v)
	assert.Equal(t, before, p.Workers(), "BUG if not: no worker was lost")
	assert.Zero(t, p.Stats().Deaths)
}

// relCell runs one cell of the stages that fault one call: the fault strikes
// on one worker while the other runs a sibling call that must be untouched
// (Respawn, or a per-call fault) or fail with the pool (Break).
func relCell(t *testing.T, stage, kind string, policy procpool.CrashPolicy, want relOutcome) {
	p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2, Prefetch: 1, OnCrash: policy})
	before := p.Workers()
	sibling := Sleep.Submit(p, 60_000) // on one worker; Prefetch 1 sends the fault to the other

	arg := relFault{Stage: stage, Kind: kind}
	var f *procpool.Future[relFault]
	err, panicked := relCatch(func() error {
		f = RelFault.Submit(p, arg)
		_, err := f.Get(ctx(t))
		return err
	})
	if panicked != nil {
		t.Errorf("BUG: a %s in the %s stage escaped into the caller's goroutine as a panic (%v); want a *CodecError", kind, stage, panicked)
	}

	switch want {
	case outTaskError:
		if panicked == nil {
			relTaskError(t, err, stage, kind)
		}
		if f != nil && stage == stResultDecode {
			// A second Get must give the same answer, never a zero result
			// with a nil error.
			_, again, p2 := func() (v relFault, err error, p any) {
				defer func() { p = recover() }()
				v, err = f.Get(ctx(t))
				return v, err, nil
			}()
			switch {
			case p2 != nil:
				t.Errorf("BUG: a second Get panicked too: %v", p2)
			case again == nil:
				t.Errorf("BUG: after a failed decode, a second Get returned a zero result and no error")
			default:
				relTaskError(t, again, stage, kind)
			}
		}
		if stage == stArgEncode || stage == stResultDecode {
			relParentStageBulk(t, p, stage, kind)
		}
		relAfterTaskError(t, p, before)
		select {
		case <-sibling.Done():
			t.Fatal("the sibling call ended")
		default:
		}
		require.True(t, sibling.Cancel())
	case outWorkerDies:
		exit := relWorkerDeath(t, err, kind, policy, before)
		if policy == procpool.Break {
			_, serr := sibling.Get(ctx(t))
			require.ErrorIs(t, serr, procpool.ErrBrokenPool, "every pending call fails with the pool")
			var e2 *procpool.WorkerExitError
			require.ErrorAs(t, serr, &e2)
			assert.Equal(t, exit.PID, e2.PID)
		} else {
			select {
			case <-sibling.Done():
				t.Fatal("the sibling call ended: another worker's death must not touch it")
			default:
			}
		}
		relAfterDeath(t, p, policy, exit.PID, 2)
		if policy == procpool.Respawn {
			require.True(t, sibling.Cancel())
		}
	}
	require.NoError(t, p.Close())
}

// relParentStageBulk strikes a parent-side fault through Map and Imap too:
// only the faulty element may fail, with a *CodecError, in its place.
func relParentStageBulk(t *testing.T, p *procpool.Pool, stage, kind string) {
	t.Helper()
	in := []relFault{{}, {Stage: stage, Kind: kind}, {}}
	err, panicked := relCatch(func() error {
		_, err := RelFault.Map(ctx(t), p, in, procpool.Chunksize(1))
		return err
	})
	if panicked != nil {
		t.Errorf("BUG: a %s in the %s stage of a Map escaped into the caller's goroutine as a panic (%v); want a *CodecError", kind, stage, panicked)
	} else {
		relTaskError(t, err, stage, kind)
		assert.Contains(t, err.Error(), "map element 1")
	}
	var errs []error
	_, panicked = relCatch(func() error {
		for _, err := range RelFault.Imap(ctx(t), p, slices.Values(in), procpool.Chunksize(3)) {
			errs = append(errs, err)
		}
		return nil
	})
	if panicked != nil {
		t.Errorf("BUG: a %s in the %s stage of an Imap escaped into the caller's goroutine as a panic (%v); want a *CodecError in its place", kind, stage, panicked)
		return
	}
	require.Len(t, errs, 3, "one outcome per element")
	assert.NoError(t, errs[0])
	relTaskError(t, errs[1], stage, kind)
	assert.NoError(t, errs[2])
}

// relCloseCell strikes the fault in a task while Close drains the pool.
func relCloseCell(t *testing.T, kind string, policy procpool.CrashPolicy, want relOutcome) {
	p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2, Prefetch: 1, OnCrash: policy})
	before := p.Workers()
	sibling := Sleep.Submit(p, 800)
	f := RelFault.Submit(p, relFault{Stage: stClose, Kind: kind, Delay: 100})
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()

	_, err := f.Get(ctx(t))
	var exit *procpool.WorkerExitError
	if want == outTaskError {
		relTaskError(t, err, stClose, kind)
	} else {
		exit = relWorkerDeath(t, err, kind, policy, before)
	}
	select {
	case cerr := <-closed:
		require.NoError(t, cerr)
	case <-time.After(15 * time.Second):
		t.Fatal("Close did not return")
	}
	v, serr := sibling.Get(ctx(t))
	if exit != nil && policy == procpool.Break {
		require.ErrorIs(t, serr, procpool.ErrBrokenPool)
	} else {
		require.NoError(t, serr, "Close waits for the other calls")
		assert.Equal(t, 800, v)
	}
	assert.Empty(t, p.Workers())
	_, err = Square.Submit(p, 1).Get(ctx(t))
	if exit != nil && policy == procpool.Break {
		require.ErrorIs(t, err, procpool.ErrBrokenPool)
	} else {
		require.ErrorIs(t, err, procpool.ErrClosed)
	}
}

// relBigData is a 4 MiB argument, different for each i.
func relBigData(i int) []byte {
	b := make([]byte, 4<<20)
	const block = 64 << 10
	for j := range block {
		b[j] = byte(j*7 + i*13)
	}
	for off := block; off < len(b); off += block {
		copy(b[off:], b[:block])
		b[off] = byte(off / block) // no two blocks alike
	}
	return b
}

// relBigCell strikes the fault in one of six calls with 4 MiB arguments and
// results, so that megabytes are in flight both ways when it strikes.
func relBigCell(t *testing.T, kind string, policy procpool.CrashPolicy, want relOutcome) {
	p, _ := relPool(t, 60*time.Second, procpool.Config{Workers: 2, OnCrash: policy})
	before := p.Workers()
	const faulty = 2
	fs := make([]*procpool.Future[relFault], 6)
	for i := range fs {
		a := relFault{Delay: 20, Data: relBigData(i)}
		if i == faulty {
			a.Stage, a.Kind = stBig, kind
		}
		fs[i] = RelFault.Submit(p, a)
	}
	_, err := fs[faulty].Get(ctx(t))
	var exit *procpool.WorkerExitError
	if want == outTaskError {
		relTaskError(t, err, stBig, kind)
	} else {
		exit = relWorkerDeath(t, err, kind, policy, before)
	}
	for i, f := range fs {
		if i == faulty {
			continue
		}
		v, err := f.Get(ctx(t))
		if exit != nil && policy == procpool.Break && err != nil {
			require.ErrorIs(t, err, procpool.ErrBrokenPool, "call %d", i)
			continue
		}
		require.NoError(t, err, "call %d", i)
		require.True(t, bytes.Equal(relBigData(i), v.Data), "call %d came back with the wrong data", i)
	}
	if exit != nil {
		relAfterDeath(t, p, policy, exit.PID, 2)
	} else {
		relAfterTaskError(t, p, before)
	}
	require.NoError(t, p.Close())
}

// relParentDeathCell strikes exit or SIGKILL in the parent's own encoder or
// decoder: the parent dies, which is the parent's business, and procpool's is
// that no worker outlives it. The parent is a child process running
// TestRelParentFaultHelper.
func relParentDeathCell(t *testing.T, stage, kind string, policy procpool.CrashPolicy) {
	startWatchdog(t, 30*time.Second)
	noLeaks(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelParentFaultHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s,%s,%d", relParentFaultEnv, stage, kind, int(policy)))
	var stderr syncBuffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var pids []int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && f[0] == "pids" {
			for _, s := range f[1:] {
				pid, err := strconv.Atoi(s)
				require.NoError(t, err)
				pids = append(pids, pid)
			}
			break
		}
	}
	require.Len(t, pids, 2, "the helper's workers; stderr: %s", stderr.String())
	for sc.Scan() {
		t.Logf("helper: %s", sc.Text())
	}
	err = cmd.Wait()
	died := time.Now()
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee, "the parent must die of its fault; stderr: %s", stderr.String())
	ws := ee.Sys().(syscall.WaitStatus)
	if kind == kExit1 {
		assert.Equal(t, 1, ws.ExitStatus())
	} else {
		assert.True(t, ws.Signaled() && ws.Signal() == syscall.SIGKILL, "killed by SIGKILL: %v", ws)
	}
	require.Eventually(t, func() bool {
		for _, pid := range pids {
			if running(pid) {
				return false
			}
		}
		return true
	}, 2*time.Second, 10*time.Millisecond, "workers %v outlived their parent", pids)
	t.Logf("every worker gone %s after the parent died", time.Since(died).Round(time.Millisecond))
}

const relParentFaultEnv = "PROCPOOL_REL_PARENT_FAULT"

// TestRelParentFaultHelper is the parent of relParentDeathCell, run in a
// child process; it does nothing in a normal test run.
func TestRelParentFaultHelper(t *testing.T) {
	spec := os.Getenv(relParentFaultEnv)
	if spec == "" {
		t.Skip("a helper process for TestFaultMatrix")
	}
	parts := strings.Split(spec, ",")
	policy, _ := strconv.Atoi(parts[2])
	p, err := procpool.New(procpool.Config{Workers: 2, OnCrash: procpool.CrashPolicy(policy), Logger: nullLogger()})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(5)
	}
	fmt.Println("pids", strings.Trim(fmt.Sprint(p.Workers()), "[]"))
	// Keep both workers busy, so that they die mid-task.
	Sleep.Submit(p, 60_000)
	time.Sleep(20 * time.Millisecond)
	_, err = RelFault.Submit(p, relFault{Stage: parts[0], Kind: parts[1]}).Get(context.Background())
	fmt.Println("survived the fault:", err)
	os.Exit(4)
}
