package main

// This file is what runs inside the workers: the workload's real work, and
// the faults. Every task is registered at package level, so that the demo
// and its workers (the same program, re-executed) know the same tasks.

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

// The environment a cell gives its workers (Config.Env).
const (
	envFaults = "PROCPOOL_DEMO_FAULTS" // the items that fault, comma-separated
	envDir    = "PROCPOOL_DEMO_DIR"    // where a worker notes when a fault struck
)

// work is an item's real work: the number of steps of its Collatz sequence.
// The caller checks every result against its own.
func work(v int) int {
	steps := 0
	for n := v; n > 1; steps++ {
		if n%2 == 0 {
			n /= 2
		} else {
			n = 3*n + 1
		}
	}
	return steps
}

// faultItems is the set of items that fault in this worker's cell.
var faultItems = sync.OnceValue(func() map[int]bool {
	set := map[int]bool{}
	for f := range strings.SplitSeq(os.Getenv(envFaults), ",") {
		if v, err := strconv.Atoi(f); err == nil {
			set[v] = true
		}
	}
	return set
})

// noteFault records, in the cell's directory, the moment a fault strikes,
// so that the demo can tell how long the pool took to report it.
func noteFault() { noteFaultIn(os.Getenv(envDir)) }

// noteFaultIn records the moment of a fault in dir; the caller uses it for
// the faults it sees itself (an argument that cannot be encoded).
func noteFaultIn(dir string) {
	if dir == "" {
		return
	}
	f, err := os.OpenFile(filepath.Join(dir, faultLog), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	fmt.Fprintln(f, time.Now().UnixNano())
	f.Close()
}

const faultLog = "faults"

// runLogPrefix names, with the pid after it, the file in the cell's
// directory where a process notes each call it begins: the item, a line
// each. The demo counts the calls that ran more than once.
const runLogPrefix = "runs-"

// runLog is this process's run log, opened at its first call; nil outside a
// cell.
var runLog = sync.OnceValue(func() *os.File {
	dir := os.Getenv(envDir)
	if dir == "" {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(dir, runLogPrefix+strconv.Itoa(os.Getpid())), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil
	}
	return f // closed by the process's end
})

// noteRun notes that a call of item v begins. One unbuffered write: a
// process that dies next has noted it. (On the goroutine backend the calls
// share the file; each write is whole.)
func noteRun(v int) {
	if f := runLog(); f != nil {
		f.WriteString(strconv.Itoa(v) + "\n")
	}
}

// reruns counts the items whose calls began more than once, as the run logs
// in dir tell.
func reruns(dir string) (int, error) {
	logs, err := filepath.Glob(filepath.Join(dir, runLogPrefix+"*"))
	if err != nil {
		return 0, err
	}
	runs := map[string]int{}
	for _, name := range logs {
		b, err := os.ReadFile(name)
		if err != nil {
			return 0, err
		}
		for line := range strings.Lines(string(b)) {
			runs[strings.TrimSpace(line)]++
		}
	}
	n := 0
	for _, k := range runs {
		if k > 1 {
			n++
		}
	}
	return n, nil
}

// faulty makes the task of a scenario: it does the work of every item, but
// first runs fault on the items of faultItems. A fault that returns an
// error fails the call with it; most never return.
func faulty(fault func(ctx context.Context, v int) error) func(context.Context, int) (int, error) {
	return func(ctx context.Context, v int) (int, error) {
		noteRun(v)
		if faultItems()[v] {
			noteFault()
			if err := fault(ctx, v); err != nil {
				return 0, err
			}
		}
		return work(v), nil
	}
}

// forever blocks the call while the fault it set off takes the process down.
func forever() { time.Sleep(time.Minute) }

// The scenarios' tasks.
var (
	taskError = procpool.Register("demo.error", faulty(func(_ context.Context, v int) error {
		return fmt.Errorf("item %d is refused", v)
	}))
	taskPanic = procpool.Register("demo.panic", faulty(func(_ context.Context, v int) error {
		panic(fmt.Sprintf("item %d panics", v))
	}))
	taskExit1 = procpool.Register("demo.exit1", faulty(func(context.Context, int) error {
		os.Exit(1)
		return nil
	}))
	taskExit0 = procpool.Register("demo.exit0", faulty(func(context.Context, int) error {
		os.Exit(0)
		return nil
	}))
	// taskFlaky dies the first time it meets a faulting item, and succeeds
	// after: a marker file in the cell's directory remembers.
	taskFlaky = procpool.Register("demo.flaky", faulty(func(_ context.Context, v int) error {
		marker := filepath.Join(os.Getenv(envDir), fmt.Sprintf("flaky-%d", v))
		if f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600); err == nil {
			f.Close()
			os.Exit(1)
		}
		return nil
	}))
	taskSIGKILL = procpool.Register("demo.sigkill", faulty(func(context.Context, int) error {
		killSelf()
		forever()
		return nil
	}))
	taskSIGSEGV = procpool.Register("demo.sigsegv", faulty(func(context.Context, int) error {
		crashHard()
		return nil
	}))
	taskGoroutinePanic = procpool.Register("demo.goroutine-panic", faulty(func(_ context.Context, v int) error {
		go func() { panic(fmt.Sprintf("item %d: panic in a goroutine the task started", v)) }()
		forever()
		return nil
	}))
	taskMapWrites = procpool.Register("demo.map-writes", faulty(func(context.Context, int) error {
		runtime.GOMAXPROCS(4) // a worker has 1 by default: let the writers really race
		m := map[int]int{}
		for i := range 8 {
			go func() {
				for j := 0; ; j++ {
					m[j%100] = i
				}
			}()
		}
		forever()
		return nil
	}))
	taskStackOverflow = procpool.Register("demo.stack-overflow", faulty(func(context.Context, int) error {
		// The default limit is 1 GiB, which takes seconds to fill; 16 MiB
		// overflows as surely, and at once.
		debug.SetMaxStack(16 << 20)
		return fmt.Errorf("recursion ended at depth %d", recurse(0))
	}))
	taskHang = procpool.Register("demo.hang", faulty(func(context.Context, int) error {
		defer running()()
		time.Sleep(time.Minute) // deaf to its context
		return nil
	}))
	taskHangTERM = procpool.Register("demo.hang-sigterm", faulty(func(context.Context, int) error {
		defer running()()
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
		return nil
	}))
	taskStdout = procpool.Register("demo.stdout", faulty(func(_ context.Context, v int) error {
		fmt.Printf("item %d prints to stdout\n", v)
		// What would look like a frame on the protocol stream, if stdout
		// were still the protocol stream.
		os.Stdout.Write([]byte("\x00\x00\x00\x05\xc1garbage\n"))
		return nil
	}))
	taskStdin = procpool.Register("demo.stdin", faulty(func(context.Context, int) error {
		b, err := io.ReadAll(os.Stdin)
		if err != nil {
			return err
		}
		if len(b) > 0 {
			return fmt.Errorf("read %d bytes from stdin: the protocol stream is exposed", len(b))
		}
		return nil
	}))
	// taskAnyArg takes any argument; a chan among them cannot be encoded.
	taskAnyArg = procpool.Register("demo.any-arg", func(_ context.Context, x any) (int, error) {
		v, ok := asInt(x)
		if !ok {
			return 0, fmt.Errorf("unexpected argument %T", x)
		}
		noteRun(v)
		return work(v), nil
	})
	// taskAnyResult returns a chan, which cannot be encoded, for a faulting
	// item.
	taskAnyResult = procpool.Register("demo.any-result", func(_ context.Context, v int) (any, error) {
		noteRun(v)
		if faultItems()[v] {
			noteFault()
			return make(chan int), nil
		}
		return work(v), nil
	})
	// taskAfterSend returns the value of a faulting item at once, but leaves
	// behind a goroutine that kills the process a moment later: the result
	// was sent, the worker dies in its next call.
	taskAfterSend = procpool.Register("demo.after-send", func(_ context.Context, v int) (int, error) {
		noteRun(v)
		if d := doomedAfter.Load(); d != 0 && int64(v) > d {
			// The process is about to die: hold this call until it does, so
			// that the death always strikes a call in progress, as it
			// would with real work. Only the calls of later items: on the
			// goroutine backend the process is shared, and the calls of
			// earlier items, run by other goroutines, must complete for the
			// caller, who sees results in input order, to get the item's.
			forever()
		}
		if faultItems()[v] && doomedAfter.CompareAndSwap(0, int64(v)) {
			go func() {
				time.Sleep(afterSendDelay)
				noteFault()
				os.Exit(1)
			}()
		}
		return work(v), nil
	})

	// taskMemory allocates without bound, a MiB at a time, touching every
	// page, as a runaway call does: the pool's memory watcher sees it grow,
	// and kills its worker near Config.MaxMemoryPerWorker. Nothing bounds
	// a goroutine's memory: there it gives up at runawayCap, with an error,
	// rather than take the machine's memory.
	taskMemory = procpool.Register("demo.memory", faulty(func(context.Context, int) error {
		var held [][]byte
		for len(held) < runawayCap>>20 {
			b := make([]byte, 1<<20)
			for i := 0; i < len(b); i += 4096 {
				b[i] = 1
			}
			held = append(held, b)
			time.Sleep(2 * time.Millisecond) // a runaway, not a single huge allocation
		}
		return fmt.Errorf("grew to %d MiB, and nothing stopped it", len(held))
	}))

	// taskProbe is the call that tells whether a pool still works.
	taskProbe = procpool.Register("demo.probe", func(_ context.Context, v int) (int, error) { return v * v, nil })
)

// stillRunning counts the hanging calls running in this process: in a
// worker, nobody reads it; on the goroutine backend, the caller's program
// reads it after Close, to tell how many it left behind.
var stillRunning atomic.Int32

// running counts a hanging call as running until the function it returns
// is called.
func running() func() {
	stillRunning.Add(1)
	return func() { stillRunning.Add(-1) }
}

// runawayCap is as far as a runaway call grows, if nothing stops it: far
// over memoryLimit.
const runawayCap = 256 << 20

// afterSendDelay is how long the goroutine an after-send item leaves behind
// waits before it ends the process: long after the item's result was sent.
const afterSendDelay = 50 * time.Millisecond

// doomedAfter is, in a process an after-send item is about to end, that
// item.
var doomedAfter atomic.Int64

// recurse never returns: each call needs a deeper stack.
//
//go:noinline
func recurse(depth int) int {
	var pad [128]byte
	pad[depth%len(pad)] = byte(depth)
	return recurse(depth+1) + int(pad[0])
}

// asInt reads an integer decoded into an interface: msgpack gives int64 or
// uint64, whatever width was sent.
func asInt(x any) (int, bool) {
	switch n := x.(type) {
	case int:
		return n, true
	case int8:
		return int(n), true
	case int16:
		return int(n), true
	case int32:
		return int(n), true
	case int64:
		return int(n), true
	case uint8:
		return int(n), true
	case uint16:
		return int(n), true
	case uint32:
		return int(n), true
	case uint64:
		return int(n), true
	}
	return 0, false
}
