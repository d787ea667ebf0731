//go:build unix

package procpool_test

// Helpers the tests share: pools, leak checks, the watchdog, processes, kills.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/pkg/procpool"
)

// ---------------------------------------------------------------------------
// Pools

// newPool starts a pool for one test, checks for leaks when the test ends,
// and closes the pool before that. Its log goes to the returned buffer.
func newPool(t *testing.T, cfg procpool.Config) (*procpool.Pool, *syncBuffer) {
	t.Helper()
	noLeaks(t)
	logs := &syncBuffer{}
	if cfg.Logger == nil {
		cfg.Logger = hclog.New(&hclog.LoggerOptions{Name: "procpool", Output: logs, Level: hclog.Debug})
	}
	p, err := procpool.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { p.Terminate() })
	return p, logs
}

// relPool starts a pool under a watchdog, with the leak checks of newPool.
func relPool(t *testing.T, limit time.Duration, cfg procpool.Config) (*procpool.Pool, *syncBuffer) {
	t.Helper()
	wd := startWatchdog(t, limit)
	p, logs := newPool(t, relCfg(cfg))
	wd.watch(p, logs)
	return p, logs
}

// relCfg adds to cfg.Env what makes the race detector exit at once, unless
// the environment has it already: a race-enabled Go program that exits with
// status 0 first sleeps atexit_sleep_ms (1 s by default), so every Close of
// a pool of test workers would take a second.
func relCfg(cfg procpool.Config) procpool.Config {
	if g := os.Getenv("GORACE"); !strings.Contains(g, "atexit_sleep_ms") {
		cfg.Env = append(slices.Clip(cfg.Env), "GORACE="+strings.TrimSpace(g+" atexit_sleep_ms=0"))
	}
	return cfg
}

// ctx returns a context that ends with the test, or after a minute: no
// test may hang.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func nullLogger() hclog.Logger { return hclog.NewNullLogger() }

// syncBuffer is a bytes.Buffer safe for concurrent use, for log output.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// closeWithin closes p, failing the test with why if Close has not returned
// within d.
func closeWithin(t *testing.T, p *procpool.Pool, d time.Duration, why string) {
	t.Helper()
	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(d):
		t.Fatal(why)
	}
}

// ---------------------------------------------------------------------------
// Leaks

// noLeaks checks, when the test ends, that it left no child processes (not
// even zombies), no goroutines and no file descriptors behind.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	// The runtime opens its poller's descriptors, for good, with the first
	// pipe of the process; a test that runs first must not count them.
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	fds := openFDs(t)
	t.Cleanup(func() {
		require.Eventually(t, func() bool { return len(children()) == 0 }, 5*time.Second, 10*time.Millisecond,
			"child processes left: %v", children())
		goleak.VerifyNone(t, ignore)
		require.Eventually(t, func() bool { return openFDs(t) <= fds }, 2*time.Second, 10*time.Millisecond,
			"file descriptors: %d at the start, %d at the end", fds, openFDs(t))
	})
}

func openFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// ---------------------------------------------------------------------------
// Processes

// children lists the pids whose parent is this process.
func children() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	me := os.Getpid()
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, _, ok := procStat(pid); ok && ppid == me {
			pids = append(pids, pid)
		}
	}
	return pids
}

// procStat reads a process's parent pid and state letter from /proc.
func procStat(pid int) (ppid int, state byte, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// The command name may hold spaces; the fields after it do not.
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	return ppid, f[0][0], true
}

// running reports whether pid is a live process (a zombie is not).
func running(pid int) bool {
	_, state, ok := procStat(pid)
	return ok && state != 'Z' && state != 'X'
}

// relProcID names a process for as long as it lives: its pid and its start
// time, since pids are reused.
func relProcID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 {
		return ""
	}
	return fmt.Sprintf("%d@%s", pid, f[19])
}

// startParent runs this test binary as a parent process in role (with env
// added), in a process group of its own, and returns it with the worker pids
// it printed first. The test kills it at the end if it still runs.
func startParent(t *testing.T, role string, env ...string) (*exec.Cmd, []int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(append(os.Environ(), "PROCPOOL_TEST_ROLE="+role), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("parent's stderr:\n%s", stderr)
		}
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		lines <- line
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatal("the parent process never reported its workers")
	}
	fields := strings.Fields(line)
	require.NotEmpty(t, fields, "the parent printed nothing")
	require.Equal(t, "pids", fields[0], line)
	var pids []int
	for _, f := range fields[1:] {
		pid, err := strconv.Atoi(f)
		require.NoError(t, err)
		pids = append(pids, pid)
	}
	require.Len(t, pids, 2)
	return cmd, pids
}

// ---------------------------------------------------------------------------
// Watchdog

// watchdog fails a test that has not finished in time instead of letting CI
// hang: it fails the test, prints every goroutine's stack, sends SIGQUIT to
// the pool's workers (a Go worker then prints its own stacks on stderr,
// which reaches the pool's log), prints the log's tail, and terminates the
// pool to unblock the test. If the test is still stuck 20 s later, it
// panics, which ends the test binary.
type watchdog struct {
	t     *testing.T
	limit time.Duration
	timer *time.Timer

	mu        sync.Mutex
	pool      *procpool.Pool
	logs      fmt.Stringer
	done      bool
	reporting sync.WaitGroup
	last      *time.Timer // the panic, once it has fired
}

// startWatchdog arms a watchdog for t. Call it first in a test, before
// newPool, so that it covers the test's cleanups too. Until it fires it is a
// timer, with no goroutine for noLeaks to find.
func startWatchdog(t *testing.T, limit time.Duration) *watchdog {
	t.Helper()
	w := &watchdog{t: t, limit: limit}
	w.timer = time.AfterFunc(limit, w.fire)
	t.Cleanup(func() {
		w.timer.Stop()
		w.mu.Lock()
		w.done = true
		if w.last != nil {
			w.last.Stop()
		}
		w.mu.Unlock()
	})
	return w
}

// watch tells the watchdog which pool to inspect and terminate, and where its
// log goes. Its cleanup, which runs before newPool's leak checks, waits for
// a report in progress.
func (w *watchdog) watch(p *procpool.Pool, logs fmt.Stringer) {
	w.mu.Lock()
	w.pool, w.logs = p, logs
	w.mu.Unlock()
	w.t.Cleanup(w.reporting.Wait)
}

func (w *watchdog) fire() {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	// Fail first, while the test is surely running: what follows may
	// unblock it.
	w.t.Errorf("WATCHDOG: the test did not finish within %s; the stacks of every goroutine and the workers' SIGQUIT dumps follow on stderr", w.limit)
	w.reporting.Add(1)
	defer w.reporting.Done()
	pool, logs := w.pool, w.logs
	w.mu.Unlock()

	buf := make([]byte, 16<<20)
	buf = buf[:runtime.Stack(buf, true)]
	fmt.Fprintf(os.Stderr, "\n=== WATCHDOG: %s still running after %s; every goroutine of the test process:\n%s\n", w.t.Name(), w.limit, buf)

	pids := workersOf(pool)
	for _, pid := range pids {
		_ = unix.Kill(pid, unix.SIGQUIT)
	}
	time.Sleep(time.Second) // let the workers' stack dumps reach the log
	if logs != nil {
		s := logs.String()
		fmt.Fprintf(os.Stderr, "=== WATCHDOG: SIGQUIT sent to %v; the pool's log (last 256 KiB):\n%s\n", pids, s[max(0, len(s)-256<<10):])
	}
	if pool != nil {
		terminated := make(chan struct{})
		go func() { pool.Terminate(); close(terminated) }()
		select {
		case <-terminated:
		case <-time.After(5 * time.Second):
			fmt.Fprintln(os.Stderr, "=== WATCHDOG: Terminate did not return within 5s")
		}
	}
	w.mu.Lock()
	if !w.done {
		w.last = time.AfterFunc(20*time.Second, func() {
			panic(fmt.Sprintf("WATCHDOG: %s still hung 20s after its pool was terminated", w.t.Name()))
		})
	}
	w.mu.Unlock()
}

// workersOf lists the pool's workers, and any other child of this process,
// without trusting the pool: if the hang is a deadlock on its lock, Workers
// would never return.
func workersOf(p *procpool.Pool) []int {
	pids := children()
	if p != nil {
		got := make(chan []int, 1)
		go func() { got <- p.Workers() }()
		select {
		case ws := <-got:
			pids = append(pids, ws...)
		case <-time.After(time.Second):
			fmt.Fprintln(os.Stderr, "=== WATCHDOG: Pool.Workers did not return within 1s: the pool's lock is held")
		}
	}
	slices.Sort(pids)
	return slices.Compact(pids)
}

// ---------------------------------------------------------------------------
// Deaths

// relKill sends SIGKILL to pid if it is still a child of this process (a
// reaped worker's pid may have been reused by a stranger).
func relKill(pid int) bool {
	if ppid, state, ok := procStat(pid); !ok || ppid != os.Getpid() || state == 'Z' {
		return false
	}
	return unix.Kill(pid, unix.SIGKILL) == nil
}

// relChaosEvery is how often the chaos may kill in a pool of workers that
// took since started to start: every least, or less often if workers start
// more slowly than that, since killing them faster than they start would
// leave none to work (a -race build takes about 100 ms to start).
func relChaosEvery(least time.Duration, started time.Time, workers int) time.Duration {
	return max(least, time.Since(started)/time.Duration(workers))
}

// relChaos SIGKILLs a random worker of p every interval until stop is
// closed, and counts the workers it killed (a worker hit twice before it
// died counts once; a pid that names a new worker counts again). It spares
// workers still starting: a -race build takes longer to start than the
// interval, and deaths before the handshake are the crash-loop guard's
// subject, not the chaos's.
func relChaos(p *procpool.Pool, interval time.Duration, stop <-chan struct{}, kills *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		killed := map[string]bool{} // pid and start time
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var pids []int
			for _, w := range p.Stats().Workers {
				if w.State == procpool.WorkerReady || w.State == procpool.WorkerStopping {
					pids = append(pids, w.PID)
				}
			}
			if len(pids) == 0 {
				continue
			}
			pid := pids[rand.IntN(len(pids))]
			id := relProcID(pid)
			if id != "" && relKill(pid) && !killed[id] {
				killed[id] = true
				kills.Add(1)
			}
		}
	})
	return &wg
}

// relWorkerDeath checks that err reports the death of one of pids by a
// fault of kind, as policy promises.
func relWorkerDeath(t *testing.T, err error, kind string, policy procpool.CrashPolicy, pids []int) *procpool.WorkerExitError {
	t.Helper()
	if policy == procpool.Break {
		require.ErrorIs(t, err, procpool.ErrBrokenPool)
		require.NotErrorIs(t, err, procpool.ErrWorkerLost)
	} else {
		require.ErrorIs(t, err, procpool.ErrWorkerLost)
		require.NotErrorIs(t, err, procpool.ErrBrokenPool)
	}
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Contains(t, pids, exit.PID, "the error names the worker that died")
	switch kind {
	case kExit1:
		assert.Equal(t, 1, exit.ExitCode)
		assert.Empty(t, exit.Signal)
	case kSIGKILL:
		assert.Equal(t, -1, exit.ExitCode)
		assert.Equal(t, "SIGKILL", exit.Signal)
	}
	assert.Positive(t, exit.Held)
	return exit
}

// relMapOutcome checks the outcome of a Map under Respawn with retries while
// workers die: every result right, or the error of a call whose retries ran
// out.
func relMapOutcome(t *testing.T, out []int, err error, n int) (lost bool) {
	t.Helper()
	if err != nil {
		require.ErrorIs(t, err, procpool.ErrWorkerLost, "the only failure allowed is a lost call")
		require.NotErrorIs(t, err, procpool.ErrBrokenPool)
		var exit *procpool.WorkerExitError
		require.ErrorAs(t, err, &exit)
		assert.Positive(t, exit.PID)
		return true
	}
	require.Len(t, out, n)
	for i, v := range out {
		require.Equal(t, i*i, v, "result %d", i)
	}
	return false
}

// relErrIs reports whether err matches any of targets.
func relErrIs(err error, targets ...error) bool {
	for _, t := range targets {
		if errors.Is(err, t) {
			return true
		}
	}
	return false
}
