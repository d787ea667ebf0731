package procpool_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestSubmitAndMap(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})

	v, err := Square.Submit(p, 7).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 49, v)

	in := make([]int, 1000)
	want := make([]int, len(in))
	for i := range in {
		in[i], want[i] = i, i*i
	}
	for _, tc := range []struct {
		name string
		opts []procpool.MapOption
		in   []int
	}{
		{"default chunksize", nil, in},
		{"chunksize 1", []procpool.MapOption{procpool.Chunksize(1)}, in},
		{"chunksize 7", []procpool.MapOption{procpool.Chunksize(7)}, in},
		{"one chunk", []procpool.MapOption{procpool.Chunksize(5000)}, in},
		{"empty", nil, []int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Square.Map(ctx(t), p, tc.in, tc.opts...)
			require.NoError(t, err)
			assert.Equal(t, want[:len(tc.in)], out)
		})
	}
	require.NoError(t, p.Close())
}

func TestWorkersAreSeparateProcesses(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2, WorkerGOMAXPROCS: 1})
	pids := map[int]bool{}
	fs := make([]*procpool.Future[int], 20)
	for i := range fs {
		fs[i] = Sleep.Submit(p, 20)
	}
	for range 20 {
		pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
		require.NoError(t, err)
		pids[pid] = true
	}
	assert.NotContains(t, pids, os.Getpid())
	assert.Subset(t, p.Workers(), keys(pids))
	n, err := GOMAXPROCS.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "GOMAXPROCS in the worker")
	require.NoError(t, p.Close())
	for _, f := range fs {
		_, err := f.Get(ctx(t))
		assert.NoError(t, err, "Close waits for submitted work")
	}
}

func keys(m map[int]bool) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestTaskErrorsAreNotDeaths(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)

	_, err = Fail.Submit(p, "no such file").Get(ctx(t))
	var re *procpool.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, procpool.RemoteError{Task: "test.fail", Message: "no such file"}, *re)

	_, err = Panic.Submit(p, "boom").Get(ctx(t))
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Panic)
	assert.Equal(t, "boom", re.Message)
	assert.Contains(t, re.Stack, "main_test.go", "the stack shows where the task panicked")
	assert.EqualError(t, err, `procpool: task "test.panic" panicked: boom`)

	again, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, pid, again, "the same worker serves on")
	require.NoError(t, p.Close())
}

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

func TestWorkerStreamsAreProtected(t *testing.T) {
	p, logs := newPool(t, procpool.Config{Workers: 1})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	for range 3 {
		got, err := Stdio.Submit(p, struct{}{}).Get(ctx(t))
		require.NoError(t, err)
		assert.Equal(t, "read 0 bytes of stdin", got)
	}
	v, err := Square.Submit(p, 9).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 81, v)
	require.NoError(t, p.Close())
	for _, line := range []string{"fmt.Println from a task", "os.Stdout.Write from a task", "from a child process", "child read done"} {
		assert.Contains(t, logs.String(), fmt.Sprintf("procpool.worker: %s: pid=%d", line, pid))
	}
}

func TestWorkerLogsKeepTheirLevel(t *testing.T) {
	p, logs := newPool(t, procpool.Config{Workers: 1})
	_, err := LogJSON.Submit(p, "disk almost full").Get(ctx(t))
	require.NoError(t, err)
	require.NoError(t, p.Close())
	assert.Regexp(t, `\[WARN\] +procpool\.worker: disk almost full: pid=\d+ module=task answer=42`, logs.String())
}

func TestValuesThatCannotCross(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)

	for _, tc := range []struct {
		name  string
		get   func() error
		stage procpool.Stage
		text  string
	}{
		{"argument the parent cannot encode", func() error {
			_, err := TakesChan.Submit(p, unencodable{C: make(chan int)}).Get(ctx(t))
			return err
		}, procpool.EncodeArgument, "chan int"},
		{"argument the worker cannot decode", func() error {
			_, err := WorkerRejects.Submit(p, workerRejects{V: 1}).Get(ctx(t))
			return err
		}, procpool.DecodeArgument, "workers do not accept this value"},
		{"result the worker cannot encode", func() error {
			_, err := Unencodable.Submit(p, 1).Get(ctx(t))
			return err
		}, procpool.EncodeResult, "chan int"},
		{"result the parent cannot decode", func() error {
			_, err := ParentRejects.Submit(p, 1).Get(ctx(t))
			return err
		}, procpool.DecodeResult, "the parent does not accept this value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var ce *procpool.CodecError
			require.ErrorAs(t, tc.get(), &ce)
			assert.Equal(t, tc.stage, ce.Stage)
			assert.Contains(t, ce.Message, tc.text)
		})
	}
	_, err = TakesAny.Map(ctx(t), p, []any{1, make(chan int)})
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce)
	assert.Contains(t, err.Error(), "map element 1")

	again, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, pid, again, "no codec failure costs a worker")
	require.NoError(t, p.Close())
}

func TestLargePayloads(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	payload := make([]byte, 16<<20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	got, err := Echo.Submit(p, payload).Get(ctx(t))
	require.NoError(t, err)
	require.Equal(t, payload, got)

	out, err := Echo.Map(ctx(t), p, [][]byte{payload[:3<<20], payload[:5], payload[1<<20:]})
	require.NoError(t, err)
	assert.Equal(t, [][]byte{payload[:3<<20], payload[:5], payload[1<<20:]}, out)
	require.NoError(t, p.Close())
}

func TestFrameLimit(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, MaxFrameSize: 1 << 16})
	_, err := Echo.Submit(p, make([]byte, 1<<16)).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrFrameTooLarge, "an argument over the limit fails at once")

	_, err = Big.Submit(p, 1<<16).Get(ctx(t))
	require.ErrorIs(t, err, procpool.ErrFrameTooLarge, "so does a result")
	var ce *procpool.CodecError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, procpool.EncodeResult, ce.Stage)

	// Results that fit one by one but not together come back in parts.
	out, err := Big.Map(ctx(t), p, []int{40000, 40000, 40000, 10}, procpool.Chunksize(4))
	require.NoError(t, err)
	assert.Equal(t, []int{40000, 40000, 40000, 10}, []int{len(out[0]), len(out[1]), len(out[2]), len(out[3])})
	require.NoError(t, p.Close())
}

func TestConcurrentSubmitters(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for g := range 50 {
		wg.Go(func() {
			fs := make([]*procpool.Future[int], 40)
			for i := range fs {
				fs[i] = Square.Submit(p, g*1000+i)
			}
			for i, f := range fs {
				v, err := f.Get(ctx(t))
				if err == nil && v != (g*1000+i)*(g*1000+i) {
					err = fmt.Errorf("square(%d) = %d", g*1000+i, v)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, p.Close())
}

func TestCloseAndTerminate(t *testing.T) {
	t.Run("Close waits for the work", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2})
		fs := make([]*procpool.Future[int], 6)
		for i := range fs {
			fs[i] = Sleep.Submit(p, 50)
		}
		require.NoError(t, p.Close())
		for _, f := range fs {
			v, err := f.Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 50, v)
		}
		_, err := Square.Submit(p, 1).Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrClosed)
		_, err = Square.Map(ctx(t), p, []int{1})
		require.ErrorIs(t, err, procpool.ErrClosed)
		require.NoError(t, p.Close(), "Close twice")
		require.NoError(t, p.Terminate(), "Terminate after Close")
	})
	t.Run("Terminate fails what is unfinished", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 2})
		fs := make([]*procpool.Future[int], 100)
		for i := range fs {
			fs[i] = Sleep.Submit(p, 60_000)
		}
		require.NoError(t, p.Terminate())
		for _, f := range fs {
			_, err := f.Get(ctx(t))
			require.ErrorIs(t, err, procpool.ErrClosed)
		}
		require.NoError(t, p.Terminate(), "Terminate twice")
		require.NoError(t, p.Close(), "Close after Terminate")
	})
	t.Run("Terminate ends a Close that waits", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		f := Sleep.Submit(p, 60_000)
		closed := make(chan error)
		go func() { closed <- p.Close() }()
		time.Sleep(50 * time.Millisecond)
		require.NoError(t, p.Terminate())
		require.NoError(t, <-closed)
		_, err := f.Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrClosed)
	})
}

func TestGetAndCancel(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, Prefetch: 1})
	running := Sleep.Submit(p, 300)
	queued := Sleep.Submit(p, 300)

	short, cancel := context.WithTimeout(ctx(t), 20*time.Millisecond)
	defer cancel()
	_, err := running.Get(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Get gives up when its context ends")

	assert.True(t, queued.Cancel(), "a queued task is cancelled")
	_, err = queued.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	<-queued.Done()

	pid := p.Workers()[0]
	assert.True(t, running.Cancel(), "so is a running one")
	_, err = running.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	v, err := Square.Submit(p, 5).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 25, v)
	assert.Equal(t, []int{pid}, p.Workers(), "a task that heeds its context stops without a kill")
	require.NoError(t, p.Close())
}

func TestMapContext(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	c, cancel := context.WithTimeout(ctx(t), 100*time.Millisecond)
	defer cancel()
	_, err := Sleep.Map(c, p, []int{50, 50, 50, 50, 50, 50, 50, 50, 50, 50}, procpool.Chunksize(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	v, err := Square.Submit(p, 3).Get(ctx(t))
	require.NoError(t, err, "the pool goes on")
	assert.Equal(t, 9, v)
	require.NoError(t, p.Close())
}

func TestMapReturnsTheFirstErrorInInputOrder(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	_, err := Fail.Map(ctx(t), p, []string{"first", "second"}, procpool.Chunksize(1))
	var re *procpool.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "first", re.Message)
	assert.Contains(t, err.Error(), "map element 0")
	require.NoError(t, p.Close())
}

func TestNewInAWorkerIsRefused(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1})
	msg, err := NewInside.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, procpool.ErrInWorker.Error(), msg)
	require.NoError(t, p.Close())
}

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

func TestTaskSetsMustMatch(t *testing.T) {
	noLeaks(t)
	_, err := procpool.New(procpool.Config{Workers: 1, Env: []string{"PROCPOOL_TEST_EXTRA_TASK=1"}, Logger: hclog.NewNullLogger()})
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Contains(t, err.Error(), `unknown to the pool: ["test.extra(int) int"]`)
}

func TestDuplicateRegistrationPanics(t *testing.T) {
	defer func() {
		msg := fmt.Sprint(recover())
		assert.Contains(t, msg, `procpool: task "test.square" registered twice: at `)
		assert.Contains(t, msg, "main_test.go")
		assert.Contains(t, msg, "procpool_test.go")
	}()
	procpool.Register("test.square", func(_ context.Context, x int) (int, error) { return x, nil })
}

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

// TestMapReleasesMemory: once a big Map has returned and its results are
// dropped, an open pool keeps none of its arguments or results alive.
func TestMapReleasesMemory(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	heap := func() float64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return float64(ms.HeapAlloc) / (1 << 20)
	}
	before := heap()
	out, err := Square.Map(ctx(t), p, make([]int, 1_000_000))
	require.NoError(t, err)
	require.Len(t, out, 1_000_000)
	out = nil
	after := heap()
	assert.Less(t, after, before+8, "heap: %.1f MiB before the Map, %.1f MiB after (it held about 35 MiB when the sender kept its last runs)", before, after)
	require.NoError(t, p.Close())
}
