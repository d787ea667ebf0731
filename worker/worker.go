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
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/executable"
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
	// Lead a process group, so that whoever started this process can kill
	// the children its tasks start along with it. The pool's own launcher
	// has done this already; a remote shell has not.
	_ = unix.Setpgid(0, 0)
	s := &server{
		r:      wire.NewReader(in, wire.DefaultMaxFrame),
		w:      wire.NewWriter(out, wire.DefaultMaxFrame),
		dec:    wire.NewDecoder(),
		runs:   make(chan *wire.Run, 64),
		queued: map[uint64]bool{},
	}
	if err := s.serve(); err != nil {
		fmt.Fprintf(os.Stderr, "procpool worker: %v\n", err)
		exit(ExitProtocol)
	}
	exit(0)
}

// protectStreams moves the protocol off fds 0 and 1 onto close-on-exec
// copies, then points fd 0 at /dev/null and fd 1 at stderr. After it, a task
// that prints, reads stdin or starts a child cannot touch the protocol.
func protectStreams() (in, out *os.File, err error) {
	inFD, err := unix.FcntlInt(0, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("dup stdin: %w", err)
	}
	outFD, err := unix.FcntlInt(1, unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("dup stdout: %w", err)
	}
	null, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", os.DevNull, err)
	}
	defer unix.Close(null)
	if err := unix.Dup2(null, 0); err != nil {
		return nil, nil, fmt.Errorf("redirect stdin: %w", err)
	}
	if err := unix.Dup2(2, 1); err != nil {
		return nil, nil, fmt.Errorf("redirect stdout: %w", err)
	}
	// Non-blocking descriptors go through the runtime poller instead of
	// tying up an OS thread each.
	for _, fd := range []int{inFD, outFD} {
		if err := unix.SetNonblock(fd, true); err != nil {
			return nil, nil, fmt.Errorf("set non-blocking: %w", err)
		}
	}
	return os.NewFile(uintptr(inFD), "procpool-in"), os.NewFile(uintptr(outFD), "procpool-out"), nil
}

type server struct {
	r   *wire.Reader
	w   *wire.Writer
	dec *wire.Decoder

	runs     chan *wire.Run
	progress bool // send each call's result as soon as it ends

	mu        sync.Mutex
	queued    map[uint64]bool    // runs received and not started: true once cancelled
	currentID uint64             // the run in progress
	cancel    context.CancelFunc // cancels the call in progress (in progress mode) or the run
}

func (s *server) serve() error {
	setup, err := s.handshake()
	if err != nil {
		return err
	}
	s.progress = setup.Progress
	applySettings(setup)
	c := codec.New()
	ready := &wire.Ready{}
	if setup.InitTask != "" {
		ready.Init = registry.Get(setup.InitTask)(context.Background(), c, setup.InitArg)
		c.Reset()
	}
	if err := s.send(ready); err != nil {
		return err
	}
	if ready.Init.Status != wire.StatusOK {
		return nil // the parent reports the failure; nothing to serve
	}

	go s.readLoop()
	budget := s.w.Max() - 64 // room for the Result envelope
	for r := range s.runs {
		if err := s.execute(c, r, budget); err != nil {
			return err
		}
	}
	return nil
}

func (s *server) handshake() (*wire.Setup, error) {
	if role != strconv.Itoa(wire.Version) {
		fmt.Fprintf(os.Stderr, "procpool worker: parent speaks protocol %q, this binary %d\n", role, wire.Version)
	}
	hello := &wire.Hello{Version: wire.Version, PID: os.Getpid(), Tasks: registry.Signatures(), Build: executable.BuildID()}
	if err := s.send(hello); err != nil {
		return nil, err
	}
	m, err := s.read()
	if err != nil {
		return nil, fmt.Errorf("handshake: %w", err)
	}
	setup, ok := m.(*wire.Setup)
	if !ok {
		return nil, fmt.Errorf("handshake: got a %T message, want setup", m)
	}
	if setup.MaxFrame > 0 {
		s.r.SetMax(setup.MaxFrame)
		s.w.SetMax(setup.MaxFrame)
	}
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

func (s *server) read() (wire.Message, error) {
	body, err := s.r.ReadFrame()
	if err != nil {
		return nil, err
	}
	return s.dec.Decode(body)
}

func (s *server) send(m wire.Message) error {
	if err := s.w.Write(m); err != nil {
		return err
	}
	return s.w.Flush()
}

// readLoop reads frames until the parent closes the stream. The end of the
// stream ends the process at once, even mid-task: the parent is gone or has
// no more use for this worker, and nothing may outlive it.
func (s *server) readLoop() {
	for {
		m, err := s.read()
		if err == io.EOF {
			exit(0)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "procpool worker: read from parent: %v\n", err)
			exit(ExitProtocol)
		}
		switch m := m.(type) {
		case *wire.Run:
			s.mu.Lock()
			s.queued[m.ID] = false
			s.mu.Unlock()
			s.runs <- m
		case *wire.Cancel:
			s.mu.Lock()
			if m.ID == s.currentID && s.cancel != nil {
				s.cancel()
			} else if _, ok := s.queued[m.ID]; ok {
				s.queued[m.ID] = true
			}
			s.mu.Unlock()
		default:
			fmt.Fprintf(os.Stderr, "procpool worker: unexpected %T message from parent\n", m)
			exit(ExitProtocol)
		}
	}
}

// execute runs every call of r in order and sends the results, split into
// frames of at most budget bytes, or one frame per call in progress mode. The
// last frame is flushed before execute returns, so the parent knows which run
// was in progress if this process dies: the first one it has no complete
// result for.
func (s *server) execute(c *codec.Codec, r *wire.Run, budget int) error {
	runCtx, cancelRun := context.WithCancel(context.Background())
	defer cancelRun()
	s.mu.Lock()
	if s.queued[r.ID] {
		cancelRun()
	}
	delete(s.queued, r.ID)
	s.currentID, s.cancel = r.ID, cancelRun
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.currentID, s.cancel = 0, nil
		s.mu.Unlock()
	}()

	res := &wire.Result{ID: r.ID, Items: make([]wire.Item, 0, len(r.Args))}
	size := 0
	h := registry.Get(r.Task)
	for i, arg := range r.Args {
		it := s.callOne(runCtx, c, h, arg)
		n := itemSize(&it)
		if n > budget {
			it = wire.Item{Status: wire.StatusTooLarge, Message: fmt.Sprintf("encoded result of %d bytes is over the %d-byte frame limit", len(it.Value), budget)}
			n = itemSize(&it)
		}
		if size+n > budget {
			if err := s.sendPart(c, res, &it); err != nil {
				return err
			}
			size = 0
		}
		res.Items = append(res.Items, it)
		size += n
		if s.progress && i < len(r.Args)-1 {
			if err := s.sendPart(c, res, nil); err != nil {
				return err
			}
			if err := s.w.Flush(); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
			size = 0
		}
	}
	err := s.send(res)
	c.Reset()
	if err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// callOne runs one call; in progress mode under a context of its own, so
// that cancelling it spares the rest of the run.
func (s *server) callOne(runCtx context.Context, c *codec.Codec, h registry.Handler, arg []byte) wire.Item {
	if !s.progress {
		return h(runCtx, c, arg)
	}
	ctx, cancel := context.WithCancel(runCtx)
	defer cancel()
	s.mu.Lock()
	s.cancel = cancel
	s.mu.Unlock()
	return h(ctx, c, arg)
}

// sendPart writes the results so far as a part (More set) and empties res.
// The arena is reset, so next, the item not yet in res, gets its own copy.
func (s *server) sendPart(c *codec.Codec, res *wire.Result, next *wire.Item) error {
	res.More = true
	if err := s.w.Write(res); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	if next != nil {
		next.Value = bytes.Clone(next.Value)
	}
	c.Reset()
	res.Items, res.More = res.Items[:0], false
	return nil
}

// itemSize bounds the encoded size of an item.
func itemSize(it *wire.Item) int { return len(it.Value) + len(it.Message) + len(it.Stack) + 16 }
