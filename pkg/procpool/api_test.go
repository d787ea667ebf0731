//go:build unix

package procpool_test

// The API of issue 14: which element failed (ElementError), Shutdown with a
// deadline, Config validation and the zero Pool, Stats of queued and running
// calls and of respawning slots, the workers' names in ps, and what each
// MapOption does for Map and for Imap.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// apiSpan is what APISpan returns: when its call ran, in the worker.
type apiSpan struct {
	Start, End int64 // Unix nanoseconds
	PID        int
}

// APISpan sleeps ms milliseconds, heeding its context, and says when it ran.
var APISpan = procpool.Register("test.api.span", func(ctx context.Context, ms int) (apiSpan, error) {
	s := apiSpan{Start: time.Now().UnixNano(), PID: os.Getpid()}
	select {
	case <-time.After(time.Duration(ms) * time.Millisecond):
	case <-ctx.Done():
		return s, ctx.Err()
	}
	s.End = time.Now().UnixNano()
	return s, nil
})

// ---------------------------------------------------------------------------
// Which element failed

// TestElementErrorMap: Map's error says which element failed, as an
// *ElementError that unwraps to the task's own error.
func TestElementErrorMap(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	_, err := Even.Map(ctx(t), p, []int{0, 2, 4, 7, 8, 9}, procpool.Chunksize(2))
	var ee *procpool.ElementError
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 3, ee.Index, "the first failed element in input order")
	var re *procpool.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "7 is odd", re.Message)
	assert.Same(t, ee.Err, error(re))
	assert.Equal(t, `map element 3: procpool: task "test.even": 7 is odd`, err.Error())

	// An element that cannot be encoded fails Map before any chunk runs.
	_, err = TakesAny.Map(ctx(t), p, []any{1, 2, make(chan int)})
	require.ErrorAs(t, err, &ee)
	assert.Equal(t, 2, ee.Index)
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce)

	// The context's error is no element's.
	done, cancel := context.WithCancel(ctx(t))
	cancel()
	_, err = Even.Map(done, p, []int{1})
	require.ErrorIs(t, err, context.Canceled)
	assert.False(t, errors.As(err, &ee))
	require.NoError(t, p.Close())
}

// TestElementErrorImap: every failed element of Imap and ImapUnordered
// carries its input index, so an unordered consumer knows which input it was
// without carrying the index in its own types.
func TestElementErrorImap(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 3})
	in := make([]int, 40)
	for i := range in {
		in[i] = i
	}
	for _, tc := range []struct {
		name string
		run  func(context.Context, *procpool.Pool, iter.Seq[int], ...procpool.MapOption) iter.Seq2[int, error]
	}{
		{"Imap", Even.Imap},
		{"ImapUnordered", Even.ImapUnordered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var failed []int
			pos := 0
			for _, err := range tc.run(ctx(t), p, slices.Values(in), procpool.Chunksize(3)) {
				if err != nil {
					var ee *procpool.ElementError
					require.ErrorAs(t, err, &ee)
					var re *procpool.RemoteError
					require.ErrorAs(t, err, &re)
					assert.Equal(t, fmt.Sprintf("%d is odd", in[ee.Index]), re.Message, "the index is the input's")
					assert.Equal(t, fmt.Sprintf("map element %d: %v", ee.Index, re), err.Error())
					if tc.name == "Imap" {
						assert.Equal(t, pos, ee.Index, "in order, the index is the position")
					}
					failed = append(failed, ee.Index)
				}
				pos++
			}
			assert.Equal(t, len(in), pos)
			slices.Sort(failed)
			var odd []int
			for i := 1; i < len(in); i += 2 {
				odd = append(odd, i)
			}
			assert.Equal(t, odd, failed)
		})
	}

	// An element that cannot be encoded fails in its place, with its index,
	// whatever the chunk size.
	var idx []int
	for _, err := range TakesAny.ImapUnordered(ctx(t), p, slices.Values([]any{1, 2, 3, make(chan int), 5}), procpool.Chunksize(2)) {
		var ee *procpool.ElementError
		if errors.As(err, &ee) {
			var ce *procpool.CodecError
			require.ErrorAs(t, err, &ce)
			idx = append(idx, ee.Index)
		}
	}
	assert.Equal(t, []int{3}, idx)

	// A pool that takes no more work fails the elements read with the
	// refusal, each with its index.
	require.NoError(t, p.Close())
	idx = nil
	for _, err := range Even.Imap(ctx(t), p, slices.Values([]int{0, 2})) {
		var ee *procpool.ElementError
		require.ErrorAs(t, err, &ee)
		require.ErrorIs(t, err, procpool.ErrClosed)
		idx = append(idx, ee.Index)
	}
	assert.Equal(t, []int{0}, idx, "the element read when the pool refused")
}

// ---------------------------------------------------------------------------
// Shutdown

// TestShutdownDeadline: a Shutdown whose context ends before a call does
// terminates the pool in about the context's time: the workers are gone,
// the call fails with ErrClosed, and Shutdown returns the context's error.
func TestShutdownDeadline(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 2}))
	pids := p.Workers()
	f := Sleep.Submit(p, 60_000)
	require.Eventually(t, func() bool { return p.Stats().Running == 1 }, 10*time.Second, 5*time.Millisecond)

	const limit = 300 * time.Millisecond
	sctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	start := time.Now()
	err := p.Shutdown(sctx)
	took := time.Since(start)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, took, limit-10*time.Millisecond, "Shutdown waits for the call until the context ends")
	assert.Less(t, took, limit+5*time.Second, "then terminates at once (generous for a loaded machine)")

	assert.Empty(t, p.Workers())
	for _, pid := range pids {
		assert.False(t, running(pid), "worker %d is gone when Shutdown returns", pid)
	}
	_, err = f.Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrClosed)
	_, err = Square.Submit(p, 2).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrClosed)
	assert.NoError(t, p.Close(), "Close after Shutdown")
	assert.NoError(t, p.Shutdown(ctx(t)), "a second Shutdown finds nothing to wait for")
}

// TestShutdownInTime: a Shutdown with time enough waits for the call, then
// for the workers to exit, and returns nil.
func TestShutdownInTime(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 2}))
	pids := p.Workers()
	f := Sleep.Submit(p, 300)
	require.Eventually(t, func() bool { return p.Stats().Running == 1 }, 10*time.Second, 5*time.Millisecond)
	require.NoError(t, p.Shutdown(ctx(t)))
	select {
	case <-f.Done():
	default:
		t.Fatal("Shutdown returned before the call completed")
	}
	v, err := f.Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 300, v)
	assert.Empty(t, p.Workers())
	for _, pid := range pids {
		assert.False(t, running(pid), "worker %d is gone when Shutdown returns", pid)
	}
	_, err = Square.Submit(p, 2).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrClosed)
}

// TestShutdownDoneContext: a context that has ended already terminates at
// once.
func TestShutdownDoneContext(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	f := Sleep.Submit(p, 60_000)
	done, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, p.Shutdown(done), context.Canceled)
	_, err := f.Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrClosed)
	assert.Empty(t, p.Workers())
}

// ---------------------------------------------------------------------------
// Config validation and the zero Pool

// TestConfigValidation: New names the field of a negative number, or of an
// undefined policy or backend, and starts no worker.
func TestConfigValidation(t *testing.T) {
	noLeaks(t)
	for _, tc := range []struct {
		field string
		cfg   procpool.Config
	}{
		{"Workers", procpool.Config{Workers: -1}},
		{"OnCrash", procpool.Config{OnCrash: procpool.CrashPolicy(7)}},
		{"Backend", procpool.Config{Backend: procpool.Backend(-1)}},
		{"Remote[1]", procpool.Config{Remote: []procpool.Launcher{procpool.Exec(1, "true"), nil}}},
		{"MaxFrameSize", procpool.Config{MaxFrameSize: -1}},
		{"MaxChunkBytes", procpool.Config{MaxChunkBytes: -1}},
		{"Prefetch", procpool.Config{Prefetch: -2}},
		{"WorkerGOMAXPROCS", procpool.Config{WorkerGOMAXPROCS: -1}},
		{"StartTimeout", procpool.Config{StartTimeout: -time.Second}},
		{"StopTimeout", procpool.Config{StopTimeout: -time.Nanosecond}},
		{"Retries", procpool.Config{Retries: -1}},
		{"MaxConsecutiveDeaths", procpool.Config{MaxConsecutiveDeaths: -5}},
		{"MaxTasksPerWorker", procpool.Config{MaxTasksPerWorker: -1}},
		{"MaxMemoryPerWorker", procpool.Config{MaxMemoryPerWorker: -1 << 20}},
		{"TaskTimeout", procpool.Config{TaskTimeout: -time.Millisecond}},
		{"KillGrace", procpool.Config{KillGrace: -time.Second}},
	} {
		t.Run(tc.field, func(t *testing.T) {
			p, err := procpool.New(tc.cfg)
			require.Nil(t, p)
			require.ErrorIs(t, err, procpool.ErrConfig)
			assert.NotErrorIs(t, err, procpool.ErrStartup)
			var ce *procpool.ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, tc.field, ce.Field)
			assert.Contains(t, err.Error(), "Config."+tc.field+" ")
			assert.NotEmpty(t, ce.Reason)
		})
	}
	assert.Empty(t, children(), "an invalid Config starts no worker")

	// Zero is the default everywhere: a pool with every field zero but
	// Workers runs.
	p, err := procpool.New(relCfg(procpool.Config{Workers: 1, Logger: nullLogger()}))
	require.NoError(t, err)
	v, err := Square.Submit(p, 3).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 9, v)
	require.NoError(t, p.Close())
}

// TestZeroPool: a Pool that New did not make, zero or nil, fails every
// call with ErrNoPool, which says to use New, and not with an error about
// frames or a nil pointer.
func TestZeroPool(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    *procpool.Pool
	}{
		{"zero", &procpool.Pool{}},
		{"nil", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.p
			check := func(what string, err error) {
				t.Helper()
				require.ErrorIs(t, err, procpool.ErrNoPool, what)
				assert.Contains(t, err.Error(), "procpool.New", what)
				assert.NotContains(t, err.Error(), "frame", what)
			}
			f := Square.Submit(p, 2)
			_, err := f.Get(ctx(t))
			check("Submit", err)
			assert.False(t, f.Cancel())
			_, err = Square.Map(ctx(t), p, []int{1, 2})
			check("Map", err)
			n := 0
			for _, err := range Square.Imap(ctx(t), p, slices.Values([]int{1, 2})) {
				check("Imap", err)
				n++
			}
			assert.Equal(t, 1, n, "Imap yields the error once")
			n = 0
			for _, err := range Square.ImapUnordered(ctx(t), p, slices.Values([]int{1, 2})) {
				check("ImapUnordered", err)
				n++
			}
			assert.Equal(t, 1, n, "ImapUnordered yields the error once")
			check("Close", p.Close())
			check("Terminate", p.Terminate())
			check("Shutdown", p.Shutdown(ctx(t)))
			for method, call := range map[string]func(){"Stats": func() { p.Stats() }, "Workers": func() { p.Workers() }} {
				v := catch(call)
				err, ok := v.(error)
				require.True(t, ok, "%s panics with an error, not %v", method, v)
				check(method, err)
				assert.Contains(t, err.Error(), "Pool."+method)
			}
		})
	}
}

// catch calls f and returns what it panicked with, or nil.
func catch(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

// ---------------------------------------------------------------------------
// Stats

// TestStatsQueuedRunning: Stats counts calls, not chunks: those a worker
// runs now, and those waiting, in the queue or sent ahead to a worker.
func TestStatsQueuedRunning(t *testing.T) {
	for _, backend := range []procpool.Backend{procpool.Processes, procpool.Goroutines} {
		t.Run(backend.String(), func(t *testing.T) { testStatsQueuedRunning(t, backend) })
	}
}

func testStatsQueuedRunning(t *testing.T, backend procpool.Backend) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 2, Backend: backend}))
	st := p.Stats()
	assert.Zero(t, st.Queued)
	assert.Zero(t, st.Running)

	var fs []*procpool.Future[int]
	for range 3 {
		fs = append(fs, Sleep.Submit(p, 60_000))
	}
	mctx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	var wg sync.WaitGroup
	var mapErr error
	wg.Go(func() {
		_, mapErr = Sleep.Map(mctx, p, []int{60_000, 60_000, 60_000, 60_000, 60_000}, procpool.Chunksize(3))
	})
	// 8 calls on 2 workers: 2 run, 6 wait, wherever they are held.
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Running == 2 && st.Queued == 6
	}, 10*time.Second, 5*time.Millisecond, "stats: %+v", p.Stats())

	cancel()
	wg.Wait()
	require.ErrorIs(t, mapErr, context.Canceled)
	for _, f := range fs {
		f.Cancel()
	}
	require.Eventually(t, func() bool {
		st := p.Stats()
		return st.Running == 0 && st.Queued == 0
	}, 10*time.Second, 5*time.Millisecond, "stats: %+v", p.Stats())
	require.NoError(t, p.Close())
}

// TestStatsStopping: a retired worker finishing its last call shows as
// stopping.
func TestStatsStopping(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 1, MaxTasksPerWorker: 1}))
	f := Sleep.Submit(p, 500)
	require.Eventually(t, func() bool {
		st := p.Stats()
		return len(st.Workers) == 1 && st.Workers[0].State == procpool.WorkerStopping && st.Running == 1
	}, 10*time.Second, 5*time.Millisecond, "stats: %+v", p.Stats())
	_, err := f.Get(ctx(t))
	require.NoError(t, err)
	require.NoError(t, p.Close())
}

// slowLauncher runs this program, but holds back every replacement's start
// until release is closed: the slot stays empty for as long as the test
// wants to look at it.
type slowLauncher struct {
	workers int
	release chan struct{}
	mu      sync.Mutex
	started map[int]int // per index: commands made
}

func (l *slowLauncher) Workers() int   { return l.workers }
func (l *slowLauncher) String() string { return "slow" }

func (l *slowLauncher) Command(ctx context.Context, spec procpool.WorkerSpec) (*exec.Cmd, error) {
	l.mu.Lock()
	l.started[spec.Index]++
	again := l.started[spec.Index] > 1
	l.mu.Unlock()
	if again {
		select {
		case <-l.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	cmd := exec.Command(spec.Executable, spec.Args...)
	cmd.Env = spec.Env
	return cmd, nil
}

// TestStatsRespawning: between a worker's death and its replacement's start
// its slot shows as respawning, with no pid, rather than vanishing; each
// worker says when it became ready, a replacement after its release.
func TestStatsRespawning(t *testing.T) {
	l := &slowLauncher{workers: 2, release: make(chan struct{}), started: map[int]int{}}
	before := time.Now()
	p, _ := newPool(t, relCfg(procpool.Config{Launcher: l, OnCrash: procpool.Respawn}))
	st := p.Stats()
	require.Len(t, st.Workers, 2)
	for i, ws := range st.Workers {
		assert.Equal(t, i, ws.Slot, "in slot order")
		assert.Equal(t, procpool.WorkerReady, ws.State)
		assert.True(t, ws.ReadyAt.After(before) && !ws.ReadyAt.After(time.Now()), "ready at %s, pool started at %s", ws.ReadyAt, before)
		assert.NotZero(t, ws.PID)
		assert.Equal(t, "slow", ws.Host)
	}

	_, err := Crash.Submit(p, "sigkill").Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrWorkerLost)
	st = p.Stats()
	require.Len(t, st.Workers, 2, "the dead worker's slot is still listed: %+v", st.Workers)
	var vacant procpool.WorkerStats
	for _, ws := range st.Workers {
		if ws.State != procpool.WorkerReady {
			vacant = ws
		}
	}
	assert.Equal(t, procpool.WorkerRespawning, vacant.State, "%+v", st.Workers)
	assert.Zero(t, vacant.PID)
	assert.Equal(t, 1, vacant.Restarts)
	assert.Equal(t, int64(-1), vacant.RSS)
	assert.Equal(t, "slow", vacant.Host)
	assert.Zero(t, vacant.ReadyAt)
	assert.Len(t, p.Workers(), 1, "Workers lists live processes only")

	// It stays so while the launcher holds the replacement back.
	time.Sleep(100 * time.Millisecond)
	assert.Equal(t, procpool.WorkerRespawning, p.Stats().Workers[vacant.Slot].State)

	released := time.Now()
	close(l.release)
	require.Eventually(t, func() bool {
		ws := p.Stats().Workers
		return len(ws) == 2 && ws[vacant.Slot].State == procpool.WorkerReady && ws[vacant.Slot].PID != 0
	}, 10*time.Second, 5*time.Millisecond, "workers: %+v", p.Stats().Workers)
	replacement := p.Stats().Workers[vacant.Slot]
	assert.Equal(t, 1, replacement.Restarts)
	assert.True(t, replacement.ReadyAt.After(released), "the replacement ready at %s, released at %s", replacement.ReadyAt, released)
	assert.Len(t, p.Workers(), 2)
	require.NoError(t, p.Close())
}

// ---------------------------------------------------------------------------
// The workers' names in ps

// TestWorkerArgv0: a worker of this executable shows in ps as this
// program's name and its role, though it runs /proc/self/exe; a Command
// keeps its own argv[0].
func TestWorkerArgv0(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 2}))
	self, err := os.Executable()
	require.NoError(t, err)
	prog := filepath.Base(os.Args[0])
	for _, ws := range p.Stats().Workers {
		argv := cmdline(t, ws.PID)
		require.Len(t, argv, 2, "%q", argv)
		assert.Equal(t, fmt.Sprintf("%s [procpool worker %d]", prog, ws.Slot), argv[0])
		assert.Regexp(t, `^--procpool-worker=\d+$`, argv[1])
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", ws.PID))
		require.NoError(t, err)
		assert.Equal(t, self, exe, "the worker runs this very program")
	}
	pids := p.Workers()
	got, err := PID.Map(ctx(t), p, make([]struct{}, 8), procpool.Chunksize(1))
	require.NoError(t, err, "a worker so named serves")
	assert.Subset(t, pids, got)
	require.NoError(t, p.Close())

	c, _ := newPool(t, relCfg(procpool.Config{Workers: 1, Command: []string{self}}))
	argv := cmdline(t, c.Workers()[0])
	require.Len(t, argv, 2)
	assert.Equal(t, self, argv[0], "a Command's argv[0] is left as given")
	require.NoError(t, c.Close())
}

// cmdline reads a process's arguments from /proc.
func cmdline(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	require.NoError(t, err)
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// ---------------------------------------------------------------------------
// What each MapOption does for each call

// overlaps reports whether any two spans ran at the same time.
func overlaps(spans []apiSpan) bool {
	s := slices.Clone(spans)
	slices.SortFunc(s, func(a, b apiSpan) int { return int(a.Start - b.Start) })
	for i := 1; i < len(s); i++ {
		if s[i].Start < s[i-1].End {
			return true
		}
	}
	return false
}

// TestWindowOption: Window bounds the chunks Imap and ImapUnordered have in
// flight, and so how far they read ahead; Map ignores it and runs its
// chunks at once.
func TestWindowOption(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 4}))
	in := []int{300, 300, 300, 300}

	spans, err := APISpan.Map(ctx(t), p, in, procpool.Chunksize(1), procpool.Window(1))
	require.NoError(t, err)
	assert.True(t, overlaps(spans), "Map ignores Window: its chunks run at once: %+v", spans)

	for name, run := range map[string]func(context.Context, *procpool.Pool, iter.Seq[int], ...procpool.MapOption) iter.Seq2[apiSpan, error]{
		"Imap": APISpan.Imap, "ImapUnordered": APISpan.ImapUnordered,
	} {
		spans = nil
		for s, err := range run(ctx(t), p, slices.Values(in), procpool.Chunksize(1), procpool.Window(1)) {
			require.NoError(t, err)
			spans = append(spans, s)
		}
		assert.Len(t, spans, len(in))
		assert.False(t, overlaps(spans), "%s with Window(1) runs one chunk at a time: %+v", name, spans)

		// Window(3): the input is read at most 3 chunks ahead of the loop.
		read, yielded, ahead := 0, 0, 0
		counted := func(yield func(int) bool) {
			for i := range 30 {
				read++
				if !yield(i) {
					return
				}
			}
		}
		sq := Square.Imap
		if name == "ImapUnordered" {
			sq = Square.ImapUnordered
		}
		for _, err := range sq(ctx(t), p, counted, procpool.Chunksize(1), procpool.Window(3)) {
			require.NoError(t, err)
			yielded++
			ahead = max(ahead, read-yielded)
		}
		assert.Equal(t, 30, yielded)
		assert.LessOrEqual(t, ahead, 3, "%s reads at most a window ahead", name)
		assert.Positive(t, ahead, "%s reads ahead", name)
	}
	require.NoError(t, p.Close())
}

// TestChunksizeOption: Chunksize sets the calls per chunk of Map, and fixes
// those of Imap and ImapUnordered: each chunk runs on one worker.
func TestChunksizeOption(t *testing.T) {
	p, _ := newPool(t, relCfg(procpool.Config{Workers: 4}))
	in := make([]int, 24) // SlowPID of 0 ms: the worker's pid at once
	pids, err := SlowPID.Map(ctx(t), p, in, procpool.Chunksize(len(in)))
	require.NoError(t, err)
	assert.Len(t, slices.Compact(slices.Clone(pids)), 1, "Map in one chunk runs on one worker: %v", pids)

	pids, err = SlowPID.Map(ctx(t), p, in, procpool.Chunksize(6))
	require.NoError(t, err)
	for c := range slices.Chunk(pids, 6) {
		assert.Len(t, slices.Compact(slices.Clone(c)), 1, "a chunk of Map runs on one worker: %v", pids)
	}

	for _, run := range []func(context.Context, *procpool.Pool, iter.Seq[int], ...procpool.MapOption) iter.Seq2[int, error]{SlowPID.Imap, SlowPID.ImapUnordered} {
		pids = nil
		for pid, err := range run(ctx(t), p, slices.Values(in), procpool.Chunksize(8)) {
			require.NoError(t, err)
			pids = append(pids, pid)
		}
		require.Len(t, pids, len(in))
		// A chunk's results are yielded together, so every run of 8 is one
		// worker's, in either order of chunks.
		for c := range slices.Chunk(pids, 8) {
			assert.Len(t, slices.Compact(slices.Clone(c)), 1, "a fixed chunk of Imap runs on one worker: %v", pids)
		}
	}
	require.NoError(t, p.Close())
}
