// Package worker is the runtime inside a worker process: the role check,
// file-descriptor hygiene, the handshake and the serve loop.
//
// A pool starts workers as copies of its own executable marked as workers by
// the environment variable wire.EnvRole, or by the argument wire.ArgRole for
// launchers that do not pass the environment on (SSH, schedulers). Such a
// process is a worker from its first instruction on (IsWorker is decided at
// package init); it starts serving when main calls procpool.Main, which calls
// Serve.
package worker

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/wire"
)

// ExitProtocol is the exit code of a worker that received a garbled frame or
// could not write to its parent.
const ExitProtocol = 120

// role is read once at init, before any user code can change the
// environment or the arguments. Its value is the parent's protocol version.
var role = roleOf(os.Getenv(wire.EnvRole), os.Args)

func roleOf(env string, args []string) string {
	if env != "" {
		return env
	}
	for _, a := range args[min(1, len(args)):] {
		if v, ok := strings.CutPrefix(a, wire.ArgRole+"="); ok && v != "" {
			return v
		}
	}
	return ""
}

// IsWorker reports whether this process was started as a pool worker.
func IsWorker() bool { return role != "" }

// EnvCPUProfile names an environment variable: when it is set, each worker
// writes a CPU profile of its life to the file it names, with ".<pid>"
// appended. A pool's hot path is half in its workers; this shows that half.
const EnvCPUProfile = "PROCPOOL_WORKER_CPUPROFILE"

// exit ends the worker process, first finishing the CPU profile, if any.
func exit(code int) {
	pprof.StopCPUProfile()
	os.Exit(code)
}

// Serve runs the worker until its parent closes the protocol stream, then
// exits the process. It never returns.
func Serve() {
	if path := os.Getenv(EnvCPUProfile); path != "" {
		if f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid())); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	in, out, err := protectStreams()
	if err != nil {
		fmt.Fprintf(os.Stderr, "procpool worker: set up protocol streams: %v\n", err)
		exit(ExitProtocol)
	}
	// Processes a task starts are not workers, even if they are this binary.
	os.Unsetenv(wire.EnvRole)
	j := openJournal()
	// Lead a process group, so that whoever started this process can kill
	// the children its tasks start along with it. The pool's own launcher
	// has done this already; a remote shell has not.
	leadProcessGroup()
	// Die with the parent where no Pdeathsig does it.
	watchParent()
	stream := wire.NewStream(wire.Direct(in), wire.Direct(out), wire.DefaultMaxFrame)
	s := &server{stream: stream, in: newIntake(stream, in), j: j}
	if err := s.serve(); err != nil {
		fmt.Fprintf(os.Stderr, "procpool worker: %v\n", err)
		exit(ExitProtocol)
	}
	exit(0)
}

// server is a worker process's side of the protocol: its intake takes Runs
// and Cancels off the stream, and the serve loop executes the runs in order.
type server struct {
	stream *wire.Stream
	in     *intake
	x      *Executor
	j      *journal.Writer // nil for a worker its pool did not start itself

	wmu     sync.Mutex  // guards the stream's writes, and the fields below
	pending bool        // Results written and not yet flushed
	flusher *time.Timer // flushes them holdLimit after, if nothing else has
}

func (s *server) serve() error {
	setup, err := s.handshake()
	if err != nil {
		return err
	}
	applySettings(setup)
	s.x = NewExecutor(setup)
	s.x.j = s.j
	s.x.c.Share = true // each frame read is the run's alone, and recycled only if not lent
	ready := &wire.Ready{}
	if setup.InitTask != "" {
		ready.Init = s.x.Init(setup.InitTask, setup.InitArg)
	}
	if err := s.stream.Send(ready); err != nil {
		return err
	}
	if ready.Init.Status != wire.StatusOK {
		return nil // the parent reports the failure; nothing to serve
	}

	s.in.start(s.x)
	s.x.next = s.in.waiting
	s.flusher = time.AfterFunc(time.Hour, s.flushPending)
	s.flusher.Stop()
	for {
		r := s.in.next()
		start := time.Now()
		s.in.running(start)
		if err := s.x.Execute(r, s.emit); err != nil {
			return err
		}
		s.in.ran(time.Since(start))
		// The frame is read no more, unless a task was handed an argument
		// in it: then it is the task's.
		if !s.x.c.Lent {
			wire.Recycle(r.Args)
		}
		s.x.c.Lent = false
	}
}

// emit writes a Result; flushes it, or has the timer flush it soon.
func (s *server) emit(res *wire.Result, flush bool) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	err := s.stream.Write(res)
	if err == nil && flush {
		err = s.stream.Flush()
		if s.pending {
			s.pending = false
			s.flusher.Stop()
		}
	} else if err == nil && !s.pending {
		s.pending = true
		s.flusher.Reset(holdLimit)
	}
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// flushPending flushes the Results that waited holdLimit for a run's. An
// error is left for the serve loop's next write to meet.
func (s *server) flushPending() {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.pending {
		s.pending = false
		_ = s.stream.Flush()
	}
}

// openJournal maps the journal the pool passed, if it did, and closes its
// descriptor, which the processes tasks start must not inherit. Without it
// the worker runs as well; the pool charges a death to every call it holds
// without a result.
func openJournal() *journal.Writer {
	v := os.Getenv(wire.EnvJournal)
	os.Unsetenv(wire.EnvJournal)
	fd, err := strconv.Atoi(v)
	if v == "" || err != nil || fd < 3 {
		return nil
	}
	f := os.NewFile(uintptr(fd), "procpool-journal")
	defer f.Close()
	mem, err := journal.Open(f)
	if err != nil {
		fmt.Fprintf(os.Stderr, "procpool worker: %v\n", err)
		return nil
	}
	return journal.NewWriter(mem)
}

func (s *server) handshake() (*wire.Setup, error) {
	if role != strconv.Itoa(wire.Version) {
		fmt.Fprintf(os.Stderr, "procpool worker: parent speaks protocol %q, this binary %d\n", role, wire.Version)
	}
	hello := &wire.Hello{Version: wire.Version, PID: os.Getpid(), Tasks: registry.Signatures(), Build: executable.BuildID()}
	if err := s.stream.Send(hello); err != nil {
		return nil, err
	}
	m, err := s.stream.Read()
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	setup, ok := m.(*wire.Setup)
	if !ok {
		return nil, fmt.Errorf("handshake: got a %T message, want setup", m)
	}
	if setup.MaxFrame <= 0 {
		setup.MaxFrame = wire.DefaultMaxFrame
	}
	s.stream.SetMax(setup.MaxFrame)
	return setup, nil
}

// applySettings applies what the parent could not put in the environment.
func applySettings(setup *wire.Setup) {
	for _, kv := range setup.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	switch {
	case setup.GOMAXPROCS > 0:
		runtime.GOMAXPROCS(setup.GOMAXPROCS)
	case setup.Share > 0:
		runtime.GOMAXPROCS(max(1, runtime.NumCPU()/setup.Share))
	}
}
