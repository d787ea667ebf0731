package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// The floor is what a pipe to a re-exec'd child costs with no library on
// either side: no framing, no encoding, no scheduling. The child is this
// very program, started with roleEnv set, so its start-up pays for the same
// binary and package initialisation as a procpool worker does.

// roleEnv selects the floor child's role. It is checked after
// procpool.Main(), so a procpool worker never looks at it, and the parent
// sets it only on the children it starts itself.
const roleEnv = "PROCPOOL_BENCH_ROLE"

const (
	roleEcho    = "echo"    // answers each 16-byte message with itself
	roleStream  = "stream"  // copies stdin to stdout in 1 MiB reads
	roleSleeper = "sleeper" // answers each byte n after n sleeps of 10 ms
)

// pingSize is the message of the ping-pong floor: about the size of a
// procpool frame carrying a small int.
const pingSize = 16

// serveRole runs this process as a floor child, or as the memory child of
// memory.go, if it was started as one; then it never returns. In any other
// process it returns at once.
func serveRole() {
	role := os.Getenv(roleEnv)
	switch role {
	case "":
		return
	case roleEcho:
		msg := make([]byte, pingSize)
		for {
			if _, err := io.ReadFull(os.Stdin, msg); err != nil {
				os.Exit(0)
			}
			if _, err := os.Stdout.Write(msg); err != nil {
				os.Exit(1)
			}
		}
	case roleStream:
		if _, err := io.CopyBuffer(os.Stdout, os.Stdin, make([]byte, 1<<20)); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	case roleSleeper:
		msg := make([]byte, 1)
		for {
			if _, err := io.ReadFull(os.Stdin, msg); err != nil {
				os.Exit(0)
			}
			for range msg[0] {
				time.Sleep(scaleSleepMs * time.Millisecond)
			}
			if _, err := os.Stdout.Write(msg); err != nil {
				os.Exit(1)
			}
		}
	case roleMemory:
		serveMemory()
	}
	fmt.Fprintf(os.Stderr, "bench: unknown %s %q\n", roleEnv, role)
	os.Exit(2)
}

// child is a floor child and our ends of its pipes.
type child struct {
	cmd     *exec.Cmd
	in, out *os.File
}

// startChild starts this program as a floor child in role, with the
// GOMAXPROCS a procpool worker would get in a pool of that many workers,
// and env added to its environment. Its pipes are plain os.Pipe pairs, as a
// pool's are.
func startChild(role string, workers int, env ...string) (*child, error) {
	exe, err := selfExe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "PROCPOOL_WORKER=")
	}), roleEnv+"="+role, "GOMAXPROCS="+strconv.Itoa(max(1, runtime.NumCPU()/max(1, workers))))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	childIn, in, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	out, childOut, err := os.Pipe()
	if err != nil {
		childIn.Close()
		in.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout = childIn, childOut
	err = cmd.Start()
	childIn.Close()
	childOut.Close()
	if err != nil {
		in.Close()
		out.Close()
		return nil, err
	}
	return &child{cmd: cmd, in: in, out: out}, nil
}

// stop closes the child's stdin, which ends it, and reaps it.
func (c *child) stop() error {
	c.in.Close()
	err := c.cmd.Wait()
	c.out.Close()
	return err
}

// ping sends one message and waits for it to come back.
func (c *child) ping(msg []byte) error {
	if _, err := c.in.Write(msg); err != nil {
		return err
	}
	_, err := io.ReadFull(c.out, msg)
	return err
}

// selfExe names this program for re-exec: /proc/self/exe on Linux, as
// procpool uses.
func selfExe() (string, error) {
	if runtime.GOOS == "linux" {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// pingPong times calls 16-byte round trips, each awaited before the next.
func (c *child) pingPong(calls int) (time.Duration, error) {
	msg := make([]byte, pingSize)
	start := time.Now()
	for range calls {
		if err := c.ping(msg); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// startOnce starts one echo child and times it from exec to its first
// reply; it also returns the child's resident memory, in bytes, idle after
// that reply, from /proc where there is one. Elsewhere it is the child's
// peak (see peakRSS), which for a child that does nothing more is what it
// holds idle; on Linux that peak is no use, as it starts at the bench's own
// peak (the kernel carries it across the exec of a vforked child).
func startOnce() (time.Duration, int64, error) {
	start := time.Now()
	c, err := startChild(roleEcho, 2)
	if err != nil {
		return 0, 0, err
	}
	err = c.ping(make([]byte, pingSize))
	took := time.Since(start)
	rss := residentNow(c.cmd.Process.Pid)
	if serr := c.stop(); err == nil {
		err = serr
	}
	if rss < 0 {
		rss = peakRSS(c.cmd.ProcessState)
	}
	return took, rss, err
}

// residentNow is the resident memory of process pid, in bytes, from
// /proc/<pid>/status (VmRSS), or -1 where there is no such file.
func residentNow(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return -1
}

// stream sends blocks copies of block round robin through the stream
// children and reads them back, each child's writes and reads overlapping,
// as a pool's do.
func stream(cs []*child, blocks int, block []byte) (time.Duration, error) {
	start := time.Now()
	var g errgroup.Group
	for i, c := range cs {
		n := (blocks - i + len(cs) - 1) / len(cs) // blocks i, i+len(cs), ...
		g.Go(func() error {
			for range n {
				if _, err := c.in.Write(block); err != nil {
					return err
				}
			}
			return nil
		})
		g.Go(func() error {
			buf := make([]byte, len(block))
			for range n {
				if _, err := io.ReadFull(c.out, buf); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := g.Wait()
	return time.Since(start), err
}

// The errgroup baseline is goroutines without procpool: the same plain
// functions, arguments and results by reference, no codec, at most
// `workers` goroutines at once. It is what the Goroutines backend's copy
// semantics and scheduling cost on top of bare goroutines.

// errgroupRoundTrip times calls goroutines, each started and awaited
// before the next.
func errgroupRoundTrip(workers, calls int) time.Duration {
	var g errgroup.Group
	g.SetLimit(workers)
	out := make([]int, calls)
	start := time.Now()
	for i := range calls {
		g.Go(func() error { out[i] = noop(i); return nil })
		g.Wait()
	}
	return time.Since(start)
}

// noop is Noop's function.
func noop(x int) int { return x }

// errgroupMap runs noop over in, one goroutine per chunk of size items.
func errgroupMap(workers int, in, out []int, size int) time.Duration {
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(workers)
	for lo := 0; lo < len(in); lo += size {
		hi := min(lo+size, len(in))
		g.Go(func() error {
			for i := lo; i < hi; i++ {
				out[i] = noop(in[i])
			}
			return nil
		})
	}
	g.Wait()
	return time.Since(start)
}

// errgroupEach runs fn(i) for i in [0, n), one goroutine per call.
func errgroupEach(workers, n int, fn func(i int)) time.Duration {
	start := time.Now()
	var g errgroup.Group
	g.SetLimit(workers)
	for i := range n {
		g.Go(func() error { fn(i); return nil })
	}
	g.Wait()
	return time.Since(start)
}

// serialEach runs fn(i) for i in [0, n) on this goroutine.
func serialEach(n int, fn func(i int)) time.Duration {
	start := time.Now()
	for i := range n {
		fn(i)
	}
	return time.Since(start)
}

// gcPerHeap adds up the GC cycles a run of churn calls cost: for each
// process (heap), from the first call's start to the last call's end.
// Calls sharing a heap are counted once, however they overlapped.
func gcPerHeap(outs []ChurnOut) float64 {
	type span struct{ lo, hi uint64 }
	heaps := map[int]*span{}
	for _, o := range outs {
		s, ok := heaps[o.PID]
		if !ok {
			heaps[o.PID] = &span{o.GCStart, o.GCEnd}
			continue
		}
		s.lo, s.hi = min(s.lo, o.GCStart), max(s.hi, o.GCEnd)
	}
	total := uint64(0)
	for _, s := range heaps {
		total += s.hi - s.lo
	}
	return float64(total)
}

// errMismatch reports a result that is not what the task should return: a
// benchmark that measured wrong work must not print a figure.
var errMismatch = errors.New("wrong result")

// bareSleeps times k sleeper children each sleeping perChild sleeps of
// 10 ms, all at once: from the bytes that start them to the last one's
// answer, the children started and answering beforehand. It is the sleep
// Map's work with no pool and no message per call: what k Go processes
// asleep and waking cost on this machine.
func bareSleeps(k, perChild int) (time.Duration, error) {
	if perChild > math.MaxUint8 {
		return 0, fmt.Errorf("bare sleeps: %d sleeps per child, at most %d", perChild, math.MaxUint8)
	}
	cs := make([]*child, 0, k)
	defer func() {
		for _, c := range cs {
			c.stop()
		}
	}()
	for range k {
		c, err := startChild(roleSleeper, k)
		if err != nil {
			return 0, err
		}
		cs = append(cs, c)
	}
	for _, c := range cs {
		if err := c.ping([]byte{0}); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for _, c := range cs {
		if _, err := c.in.Write([]byte{byte(perChild)}); err != nil {
			return 0, err
		}
	}
	msg := make([]byte, 1)
	for _, c := range cs {
		if _, err := io.ReadFull(c.out, msg); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
