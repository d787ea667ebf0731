package procpool_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/require"
	"github.com/vmihailenco/msgpack/v5"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/pkg/procpool"
	"github.com/procpool/procpool/worker"
)

// The test binary is its own worker: the pool re-executes it, and TestMain
// hands the worker to procpool.Main before any test runs.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCPOOL_TEST_ROLE") {
	case "forget-main-exit":
		// A main that forgot procpool.Main(): it runs the parent's code,
		// whose New refuses to start a pool inside a worker.
		_, err := procpool.New(procpool.Config{})
		fmt.Fprintln(os.Stderr, "main failed:", err)
		os.Exit(1)
	case "forget-main-hang":
		time.Sleep(time.Hour)
	case "pipe-echo":
		pipeEcho()
	case "garbage-stdout":
		fmt.Print("Hello, world! This is not a frame.")
		time.Sleep(time.Hour)
	}
	procpool.Main()
	// Under -race a process lingers a second at exit; workers need not.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	if os.Getenv("PROCPOOL_TEST_ROLE") == "parent" {
		os.Exit(runParent())
	}
	if os.Getenv("PROCPOOL_TEST_ROLE") == "ssh-parent" {
		os.Exit(runSSHParent())
	}
	goleak.VerifyTestMain(m)
}

// runParent is a parent process for the tests that kill one: it starts a
// pool, prints its worker pids, and blocks in a Map.
func runParent() int {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("pids", strings.Trim(fmt.Sprint(p.Workers()), "[]"))
	_, err = Sleep.Map(context.Background(), p, []int{60000, 60000, 60000, 60000})
	fmt.Println("map returned", err)
	return 0
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

// Tasks the tests run. Each is registered at package level, so the parent
// and its workers have the same set.
var (
	Square = procpool.Register("test.square", func(_ context.Context, x int) (int, error) { return x * x, nil })
	Echo   = procpool.Register("test.echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	PID    = procpool.Register("test.pid", func(context.Context, struct{}) (int, error) { return os.Getpid(), nil })
	Fail   = procpool.Register("test.fail", func(_ context.Context, msg string) (int, error) { return 0, errors.New(msg) })
	Panic  = procpool.Register("test.panic", func(_ context.Context, msg string) (int, error) { panic(msg) })
	Sleep  = procpool.Register("test.sleep", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return ms, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	GOMAXPROCS = procpool.Register("test.gomaxprocs", func(context.Context, struct{}) (int, error) { return runtime.GOMAXPROCS(0), nil })
	NewInside  = procpool.Register("test.new-inside", func(context.Context, struct{}) (string, error) {
		_, err := procpool.New(procpool.Config{Workers: 1})
		return fmt.Sprint(err), nil
	})
	LogJSON = procpool.Register("test.log-json", func(_ context.Context, msg string) (int, error) {
		hclog.New(&hclog.LoggerOptions{Name: "task", JSONFormat: true, Output: os.Stderr}).Warn(msg, "answer", 42)
		return 0, nil
	})
	Crash = procpool.Register("test.crash", func(_ context.Context, how string) (int, error) {
		crash(how)
		return 0, nil
	})
	Stdio = procpool.Register("test.stdio", func(context.Context, struct{}) (string, error) {
		fmt.Println("fmt.Println from a task")
		os.Stdout.WriteString("os.Stdout.Write from a task\n")
		in, err := os.ReadFile("/dev/stdin")
		if err != nil {
			return "", err
		}
		sh := exec.Command("sh", "-c", "echo from a child process; cat; echo child read done")
		sh.Stdin, sh.Stdout, sh.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := sh.Run(); err != nil {
			return "", err
		}
		return fmt.Sprintf("read %d bytes of stdin", len(in)), nil
	})
	WorkerRejects = procpool.Register("test.worker-rejects", func(_ context.Context, v workerRejects) (int, error) { return v.V, nil })
	ParentRejects = procpool.Register("test.parent-rejects", func(_ context.Context, v int) (parentRejects, error) { return parentRejects{v}, nil })
	Unencodable   = procpool.Register("test.unencodable", func(_ context.Context, v int) (unencodable, error) { return unencodable{}, nil })
	TakesChan     = procpool.Register("test.takes-chan", func(_ context.Context, v unencodable) (int, error) { return 0, nil })
	TakesAny      = procpool.Register("test.takes-any", func(_ context.Context, v any) (int, error) { return 0, nil })
	// CrashOnce dies the first time it sees a path, and succeeds after.
	CrashOnce = procpool.Register("test.crash-once", func(_ context.Context, path string) (string, error) {
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			os.Exit(1)
		}
		return path, nil
	})
	// Poison dies on 13 and squares anything else.
	Poison = procpool.Register("test.poison", func(_ context.Context, x int) (int, error) {
		if x == 13 {
			os.Exit(13)
		}
		return x * x, nil
	})
	// Stubborn sleeps and ignores its context; with "term" it ignores
	// SIGTERM too.
	Stubborn = procpool.Register("test.stubborn", func(_ context.Context, how string) (int, error) {
		if how == "term" {
			signal.Ignore(syscall.SIGTERM)
		}
		time.Sleep(time.Hour)
		return 0, nil
	})
	// Leak keeps n MiB it will never free.
	Leak = procpool.Register("test.leak", func(_ context.Context, n int) (int, error) {
		b := make([]byte, n<<20)
		for i := range b {
			b[i] = 1
		}
		leaked = append(leaked, b)
		return len(leaked), nil
	})
	// SetGreeting is an initializer; Greeting reads what it set.
	SetGreeting = procpool.Register("test.set-greeting", func(_ context.Context, g string) (struct{}, error) {
		if _, err := os.Stat(g); err == nil {
			return struct{}{}, errors.New("greeting file exists: " + g)
		}
		greeting.Store(g)
		return struct{}{}, nil
	})
	Greeting = procpool.Register("test.greeting", func(context.Context, struct{}) (string, error) {
		g, _ := greeting.Load().(string)
		return g, nil
	})
	// Even squares even numbers and refuses odd ones.
	Even = procpool.Register("test.even", func(_ context.Context, x int) (int, error) {
		if x%2 != 0 {
			return 0, fmt.Errorf("%d is odd", x)
		}
		return x * x, nil
	})
	Big = procpool.Register("test.big", func(_ context.Context, n int) ([]byte, error) { return make([]byte, n), nil })
)

var (
	leaked   [][]byte
	greeting atomic.Value // a string; atomic, for the Goroutines backend shares it
)

// crash ends the worker process in one of many ways.
func crash(how string) {
	switch how {
	case "exit0":
		os.Exit(0)
	case "exit1":
		os.Exit(1)
	case "exit3":
		os.Exit(3)
	case "sigkill":
		unix.Kill(os.Getpid(), unix.SIGKILL)
	case "concurrent-map-writes":
		runtime.GOMAXPROCS(4)
		m := map[int]int{}
		for i := range 8 {
			go func() {
				for j := 0; ; j++ {
					m[j%100] = i
				}
			}()
		}
	case "goroutine-panic":
		go panic("panic in a goroutine the task started")
	case "garble":
		unix.Write(protocolFD(), []byte("\x00\x00\x00\x05\xc1garbage after a valid-looking header"))
	case "garble-huge":
		unix.Write(protocolFD(), []byte("\xff\xff\xff\xffgarbage"))
	default:
		panic("unknown crash " + how)
	}
	time.Sleep(time.Hour)
}

// protocolFD finds the worker's private copy of its stdout: the
// close-on-exec write end of a pipe that is not the one fds 1 and 2 now
// share. (Descriptors inherited from whatever ran the tests lack
// close-on-exec.)
func protocolFD() int {
	stderr, _ := os.Readlink("/proc/self/fd/2")
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		fd, _ := strconv.Atoi(e.Name())
		link, _ := os.Readlink("/proc/self/fd/" + e.Name())
		if fd > 2 && strings.HasPrefix(link, "pipe:") && link != stderr {
			fl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
			fdfl, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
			if fl&unix.O_ACCMODE == unix.O_WRONLY && fdfl&unix.FD_CLOEXEC != 0 {
				return fd
			}
		}
	}
	panic("no protocol fd")
}

// workerRejects decodes everywhere but in a worker.
type workerRejects struct{ V int }

func (v *workerRejects) DecodeMsgpack(d *msgpack.Decoder) error {
	if worker.IsWorker() {
		return errors.New("workers do not accept this value")
	}
	return d.Decode(&v.V)
}

// parentRejects decodes only in a worker.
type parentRejects struct{ V int }

func (v *parentRejects) DecodeMsgpack(d *msgpack.Decoder) error {
	if !worker.IsWorker() {
		return errors.New("the parent does not accept this value")
	}
	return d.Decode(&v.V)
}

// unencodable holds a channel, which msgpack cannot encode.
type unencodable struct{ C chan int }

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

// ctx returns a context that ends with the test, or after a minute: no
// test may hang.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return c
}

func nullLogger() hclog.Logger { return hclog.NewNullLogger() }
