//go:build unix

package procpool_test

// The tasks the tests run: every procpool.Register, with its argument types.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/go-hclog"
	"github.com/vmihailenco/msgpack/v5"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/pkg/procpool"
	"github.com/procpool/procpool/worker"
)

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
	// SlowLen takes 5 ms to measure a payload.
	SlowLen = procpool.Register("test.slow-len", func(_ context.Context, b []byte) (int, error) {
		time.Sleep(5 * time.Millisecond)
		return len(b), nil
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
	// Register refuses a type holding a channel, so these two send theirs
	// in an any, where only the value can tell.
	Unencodable = procpool.Register("test.unencodable", func(_ context.Context, v int) (any, error) { return unencodable{}, nil })
	TakesChan   = procpool.Register("test.takes-chan", func(_ context.Context, v any) (int, error) { return 0, nil })
	TakesAny    = procpool.Register("test.takes-any", func(_ context.Context, v any) (int, error) { return 0, nil })
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
	// Leak keeps n MiB it will never free. It touches a byte per page,
	// which makes each resident, and no more: a leak of a few MiB is over
	// before the memory watcher has read it twice, so that a worker it
	// takes over MaxMemoryPerWorker is retired after the run rather than
	// killed in it.
	Leak = procpool.Register("test.leak", func(_ context.Context, n int) (int, error) {
		b := make([]byte, n<<20)
		for i := 0; i < len(b); i += 4096 {
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
	case "sigsegv": // as a fault in C code: Go prints a crash report and exits
		unix.Kill(os.Getpid(), unix.SIGSEGV)
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

// A task only some processes register, so the handshake sees two programs
// that differ.
func init() {
	if os.Getenv("PROCPOOL_TEST_EXTRA_TASK") != "" {
		procpool.Register("test.extra", func(context.Context, int) (int, error) { return 0, nil })
	}
}

// Slowpoke ignores its context for ms milliseconds, then returns.
var Slowpoke = procpool.Register("test.slowpoke", func(_ context.Context, ms int) (int, error) {
	time.Sleep(time.Duration(ms) * time.Millisecond)
	return ms, nil
})

// LauncherEnv reads a variable in the worker: Config.Env must reach workers
// whose launcher does not pass the environment on.
var LauncherEnv = procpool.Register("test.launcher-env", func(_ context.Context, name string) (string, error) {
	return os.Getenv(name), nil
})

// Tasks for the SSH tests, registered at package level like every other.
var (
	// Getenv reads a variable of the worker's environment.
	Getenv = procpool.Register("test.getenv", func(_ context.Context, key string) (string, error) { return os.Getenv(key), nil })
	// SlowPID sleeps ms milliseconds and returns the worker's pid, so that
	// a Map of it spreads over every worker.
	SlowPID = procpool.Register("test.slow-pid", func(ctx context.Context, ms int) (int, error) {
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
			return os.Getpid(), nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})
	// Hold writes the worker's pid to the file path names, then runs for a
	// minute: the test learns which worker holds the call, and that the call
	// is running.
	Hold = procpool.Register("test.hold", func(ctx context.Context, path string) (int, error) {
		if err := os.WriteFile(path+".tmp", []byte(strconv.Itoa(os.Getpid())), 0o600); err != nil {
			return 0, err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return 0, err
		}
		select {
		case <-time.After(time.Minute):
		case <-ctx.Done():
		}
		return os.Getpid(), nil
	})
)

// ---------------------------------------------------------------------------
// Tasks that kill and die

// relKillArg is the argument of RelKillPeer.
type relKillArg struct {
	X    int
	Kill bool  // kill a random other worker of Pids (itself if it is alone)
	Pids []int // the pool's workers when the Map started
	Ms   int   // milliseconds to sleep first
}

// RelKillPeer squares X, and first, if Kill is set, sends SIGKILL to a
// random other worker of the list (a sibling: a process with the same
// parent, so that a reused pid is never hit).
var RelKillPeer = procpool.Register("test.rel.kill-peer", func(_ context.Context, a relKillArg) (int, error) {
	time.Sleep(time.Duration(a.Ms) * time.Millisecond)
	if a.Kill {
		others := slices.DeleteFunc(slices.Clone(a.Pids), func(pid int) bool { return pid == os.Getpid() })
		if len(others) == 0 {
			others = a.Pids
		}
		if victim := others[rand.IntN(len(others))]; victim > 0 {
			if ppid, state, ok := procStat(victim); ok && ppid == os.Getppid() && state != 'Z' {
				_ = unix.Kill(victim, unix.SIGKILL)
			}
		}
	}
	return a.X * a.X, nil
})

// relDieArg is the argument of RelDieN.
type relDieArg struct {
	X      int
	Dir    string // where the attempts are counted
	Deaths int    // how many attempts die before one succeeds
	Ms     int    // milliseconds a surviving attempt sleeps
}

// RelDieN dies (os.Exit(1)) on its first Deaths attempts and returns X on
// the next; every attempt leaves a file in Dir, and the first surviving
// attempt marks that it is running before it sleeps Ms.
var RelDieN = procpool.Register("test.rel.die-n", func(_ context.Context, a relDieArg) (int, error) {
	key := filepath.Join(a.Dir, strconv.Itoa(a.X))
	n := 0
	for {
		f, err := os.OpenFile(fmt.Sprintf("%s.%d", key, n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			break
		}
		n++
	}
	if n < a.Deaths {
		os.Exit(1)
	}
	if a.Ms > 0 && n == a.Deaths { // the first attempt that survives
		_ = os.WriteFile(key+".running", nil, 0o600)
		time.Sleep(time.Duration(a.Ms) * time.Millisecond)
	}
	return a.X, nil
})

// RelChaos is the chaos soak's task: a value only the right input gives.
var RelChaos = procpool.Register("test.rel.chaos", func(_ context.Context, x int) (int, error) {
	if runs := relRunCounters(); x < len(runs) {
		atomic.AddUint32(&runs[x], 1)
	}
	return relChaosValue(x), nil
})

// relRunCounters maps the file PROCPOOL_TEST_RUNS names, where RelChaos
// counts the runs of each call, or returns nil.
var relRunCounters = sync.OnceValue(func() []uint32 {
	mem, err := relMapCounters(os.Getenv("PROCPOOL_TEST_RUNS"))
	if err != nil {
		return nil
	}
	return mem
})

// relMapCounters maps the file at path as counters shared between
// processes.
func relMapCounters(path string) ([]uint32, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < 4 {
		return nil, fmt.Errorf("counters at %q: %v", path, err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*uint32)(unsafe.Pointer(&b[0])), len(b)/4), nil
}

func relChaosValue(x int) int { return 3*x + 1 }

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

// ---------------------------------------------------------------------------
// Faults

// The stages of a call's journey where a fault can strike.
const (
	stArgEncode    = "arg-encode"    // the argument's encoder, in the parent
	stArgDecode    = "arg-decode"    // the argument's decoder, in the worker
	stFunc         = "func"          // the task function, in the worker
	stResultEncode = "result-encode" // the result's encoder, in the worker
	stResultDecode = "result-decode" // the result's decoder, in the parent
	stClose        = "close"         // the task function, while Close drains the pool
	stBig          = "big-data"      // the task function, with 4 MiB arguments and results in flight
)

// The kinds of fault.
const (
	kError   = "error"   // an error returned (by the function, the encoder or the decoder)
	kPanic   = "panic"   // a panic
	kExit1   = "exit1"   // os.Exit(1)
	kSIGKILL = "sigkill" // SIGKILL to its own process
)

// relFault is the argument and the result of the RelFault task. Its msgpack
// encoder and decoder strike the fault Kind when Stage names them and they
// run on the side that stage belongs to (worker.IsWorker tells).
type relFault struct {
	Stage string
	Kind  string
	Delay int // milliseconds the task sleeps first
	Data  []byte
}

// relFaultFields has relFault's fields and no methods: msgpack encodes it as
// a plain struct.
type relFaultFields relFault

func (v relFault) EncodeMsgpack(e *msgpack.Encoder) error {
	if v.Stage == stArgEncode && !worker.IsWorker() || v.Stage == stResultEncode && worker.IsWorker() {
		if err := relStrike(v.Kind, v.Stage); err != nil {
			return err
		}
	}
	return e.Encode(relFaultFields(v))
}

func (v *relFault) DecodeMsgpack(d *msgpack.Decoder) error {
	var f relFaultFields
	if err := d.Decode(&f); err != nil {
		return err
	}
	*v = relFault(f)
	if v.Stage == stArgDecode && worker.IsWorker() || v.Stage == stResultDecode && !worker.IsWorker() {
		return relStrike(v.Kind, v.Stage)
	}
	return nil
}

// relStrike is the fault itself.
func relStrike(kind, where string) error {
	switch kind {
	case kError:
		return fmt.Errorf("rel fault: error in %s", where)
	case kPanic:
		panic("rel fault: panic in " + where)
	case kExit1:
		os.Exit(1)
	case kSIGKILL:
		_ = unix.Kill(os.Getpid(), unix.SIGKILL)
		time.Sleep(time.Hour)
	case "":
	default:
		panic("unknown fault kind " + kind)
	}
	return nil
}

// RelFault sleeps Delay ms, strikes its fault if its stage is the function,
// and returns its argument.
var RelFault = procpool.Register("test.rel.fault", func(_ context.Context, a relFault) (relFault, error) {
	time.Sleep(time.Duration(a.Delay) * time.Millisecond)
	if a.Stage == stFunc || a.Stage == stClose || a.Stage == stBig {
		if err := relStrike(a.Kind, "the task"); err != nil {
			return relFault{}, err
		}
	}
	return a, nil
})

// Tasks of the cancellation, deadline and error-identity tests.
var (
	// Mark records that a call started, and when, in a file of its own
	// under Dir, then works for Ms milliseconds; with Stubborn it ignores
	// its context (and SIGTERM's default is not caught: it dies of it).
	Mark = procpool.Register("test.mark", func(ctx context.Context, a MarkArg) (int, error) {
		name := filepath.Join(a.Dir, strconv.Itoa(a.I))
		if err := os.WriteFile(name, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o600); err != nil {
			return 0, err
		}
		if a.Stubborn {
			time.Sleep(time.Duration(a.Ms) * time.Millisecond)
			return a.I, nil
		}
		select {
		case <-time.After(time.Duration(a.Ms) * time.Millisecond):
			return a.I, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	})

	// Deadline reports how long the call's context had left when it
	// started, in milliseconds, or -1 if it had no deadline.
	Deadline = procpool.Register("test.deadline", func(ctx context.Context, _ int) (int64, error) {
		d, ok := ctx.Deadline()
		if !ok {
			return -1, nil
		}
		return time.Until(d).Milliseconds(), nil
	})

	// FailWith returns the error named by its argument, wrapped.
	FailWith = procpool.Register("test.fail-with", func(_ context.Context, which string) (int, error) {
		errs := map[string]error{
			"canceled": context.Canceled, "deadline": context.DeadlineExceeded, "os-deadline": os.ErrDeadlineExceeded,
			"not-exist": fs.ErrNotExist, "exist": fs.ErrExist, "permission": fs.ErrPermission,
			"eof": io.EOF, "unexpected-eof": io.ErrUnexpectedEOF, "quota": ErrQuota, "plain": errors.New("plain"),
		}
		return 0, fmt.Errorf("step %q: %w", which, errs[which])
	})
)

// ErrQuota is a program's own sentinel, registered to keep its identity.
var ErrQuota = errors.New("test: quota exceeded")

func init() { procpool.RegisterError(ErrQuota) }

// MarkArg is Mark's argument.
type MarkArg struct {
	Dir      string
	I, Ms    int
	Stubborn bool
}

// Tasks of the attribution tests.

// AttribArg is Attrib's argument.
type AttribArg struct {
	I   int
	Die string // how to die, as crash does, after the run is marked; "" to square I
	Dir string // where each run appends a byte to a file named I
}

// Attrib marks each run of its call in a file, then dies as Die says or
// returns I squared.
var Attrib = procpool.Register("test.attrib", func(_ context.Context, a AttribArg) (int, error) {
	if err := markRun(a); err != nil {
		return 0, err
	}
	if a.Die != "" {
		crash(a.Die)
	}
	return a.I * a.I, nil
})

// DieAtOnce is Attrib, but a call told to die does so as it starts,
// unmarked: within microseconds of the call before it.
var DieAtOnce = procpool.Register("test.die-at-once", func(_ context.Context, a AttribArg) (int, error) {
	if a.Die != "" {
		crash(a.Die)
	}
	if err := markRun(a); err != nil {
		return 0, err
	}
	return a.I * a.I, nil
})

// markRun appends a byte to the file of a's call.
func markRun(a AttribArg) error {
	f, err := os.OpenFile(filepath.Join(a.Dir, strconv.Itoa(a.I)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	f.Write([]byte{'x'})
	return f.Close()
}

// Pattern returns n bytes that depend on seed, for results a test can
// check byte for byte.
var Pattern = procpool.Register("test.pattern", func(_ context.Context, a [2]int) ([]byte, error) {
	return pattern(a[0], a[1]), nil
})

func pattern(seed, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed*31 + i*7)
	}
	return b
}

// Tasks of the memory limit tests.

// GrowArg is Grow's argument.
type GrowArg struct {
	I       int
	Runaway bool   // grow without bound
	Dir     string // where each run appends its pid, as a line, to a file named I
}

// Grow notes each run of its call in a file, then returns I squared, or,
// for a runaway, allocates 1 MiB after 1 MiB, touching every page, a little
// at a time so that the pool's memory watcher sees it grow, until the pool
// kills it. It gives up at 1 GiB, rather than take a shared machine's memory,
// if nothing stopped it.
var Grow = procpool.Register("test.grow", func(_ context.Context, a GrowArg) (int, error) {
	f, err := os.OpenFile(filepath.Join(a.Dir, strconv.Itoa(a.I)), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(f, os.Getpid())
	f.Close()
	if !a.Runaway {
		return a.I * a.I, nil
	}
	var held [][]byte
	for len(held) < 1<<10 {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		held = append(held, b)
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("grew to %d MiB, and nothing stopped it", len(held))
})
