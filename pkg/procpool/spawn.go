package procpool

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/stderrlog"
	"github.com/procpool/procpool/internal/wire"
)

// This file starts worker processes: the command from the launcher, its
// pipes, and the one OS thread they are all started from.

// startProcess starts one worker process. Its goroutines start with serve.
func startProcess(s connSpec) (*processConn, error) {
	pipes, err := newPipes(pipeSize(s.pool.cfg.Workers))
	if err != nil {
		return nil, err
	}
	l := s.group.launcher
	cmd, err := l.Command(s.pool.ctx, s.worker)
	if err != nil {
		pipes.closeChild()
		pipes.closeParent()
		return nil, fmt.Errorf("%s: %w", l, err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pipes.childIn, pipes.childOut, pipes.childErr
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// The worker dies with us (Pdeathsig, on Linux). Its own process group:
	// Ctrl-C reaches the parent alone, which decides, and a kill of the
	// group takes the worker's children too.
	setProcAttr(cmd.SysProcAttr)
	jmem, jfile := shareJournal(s, cmd)
	err = s.pool.spawner.start(cmd)
	pipes.closeChild()
	if jfile != nil {
		jfile.Close() // the child has its copy; the parent needs only the mapping
	}
	if err != nil {
		pipes.closeParent()
		if jmem != nil {
			journal.Unmap(jmem)
		}
		return nil, fmt.Errorf("start worker %q (%s): %w", cmd.Path, l, err)
	}
	c := &processConn{
		spec:       s,
		cmd:        cmd,
		procPID:    cmd.Process.Pid,
		stdin:      pipes.in,
		stdout:     pipes.out,
		stderr:     pipes.err,
		stream:     wire.NewStream(wire.Direct(pipes.out), wire.Direct(pipes.in), s.maxFrame),
		wake:       make(chan struct{}, 1),
		rdWake:     make(chan struct{}, 1),
		deadlines:  pipes.out.SetReadDeadline(time.Time{}) == nil,
		done:       make(chan struct{}),
		reaped:     make(chan struct{}),
		stderrDone: make(chan struct{}),
		journal:    jmem,
	}
	c.log = s.log.With("pid", c.procPID)
	if h := s.group.host(); h != "" {
		c.log = c.log.With("on", h)
	}
	c.fwd = stderrlog.New(c.log)
	return c, nil
}

// shareJournal gives a worker of the default launcher a journal (package
// journal), so that its death costs only the call it was running, and
// returns the parent's mapping of it and the file to close once the worker
// has started. Other launchers' commands may run
// elsewhere, and wrappers need not pass descriptors on: their workers have
// none. Without one, which a failure here also means, the pool charges a
// death to every call of the running batch without a result.
func shareJournal(s connSpec, cmd *exec.Cmd) ([]byte, *os.File) {
	if !s.group.local {
		return nil, nil
	}
	f, mem, err := journal.Create()
	if err != nil {
		s.log.Debug("worker without a journal", "error", err)
		return nil, nil
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.ExtraFiles = append(cmd.ExtraFiles, f)
	cmd.Env = append(slices.Clip(cmd.Env), fmt.Sprintf("%s=%d", wire.EnvJournal, 2+len(cmd.ExtraFiles))) // Env may be shared
	return mem, f
}

type pipes struct {
	in, out, err                *os.File // our ends
	childIn, childOut, childErr *os.File
}

func newPipes(size int) (*pipes, error) {
	var ps pipes
	var err error
	if ps.childIn, ps.in, err = os.Pipe(); err != nil {
		return nil, fmt.Errorf("worker stdin pipe: %w", err)
	}
	if ps.out, ps.childOut, err = os.Pipe(); err != nil {
		ps.closeChild()
		ps.in.Close()
		return nil, fmt.Errorf("worker stdout pipe: %w", err)
	}
	if ps.err, ps.childErr, err = os.Pipe(); err != nil {
		ps.closeChild()
		ps.in.Close()
		ps.out.Close()
		return nil, fmt.Errorf("worker stderr pipe: %w", err)
	}
	// A megabyte then crosses in one wake-up of each side instead of
	// sixteen. A system that refuses leaves the pipes as they were.
	if size > 0 {
		wire.GrowPipe(ps.in, size)
		wire.GrowPipe(ps.out, size)
	}
	return &ps, nil
}

// pipeBudget is what the protocol pipes of one pool may hold in all. Linux
// gives an unprivileged user's pipes 64 MiB in all (pipe-user-pages-soft);
// past that, every new pipe of that user holds a page or two. A pool keeps
// well inside it.
const pipeBudget = 16 << 20

// pipeSize is what the two protocol pipes of each worker of a pool of n are
// grown to: up to 1 MiB, the most an unprivileged process may ask for by
// default, within pipeBudget; 0 when that is no more than a pipe's default
// 64 KiB.
func pipeSize(n int) int {
	size := 1 << 20
	for size > 64<<10 && 2*n*size > pipeBudget {
		size /= 2
	}
	if size <= 64<<10 {
		return 0
	}
	return size
}

func (ps *pipes) closeChild() {
	for _, f := range []*os.File{ps.childIn, ps.childOut, ps.childErr} {
		if f != nil {
			f.Close()
		}
	}
}

func (ps *pipes) closeParent() {
	ps.in.Close()
	ps.out.Close()
	ps.err.Close()
}

// spawner starts every worker of a pool from one goroutine locked to its OS
// thread. Pdeathsig fires when the thread that forked a child ends, not the
// process (go.dev/issue/27505); a thread that lives as long as the pool makes
// the signal mean "the parent died".
type spawner struct {
	reqs chan spawnReq
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner(wg *sync.WaitGroup) *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Unlocked, not left to die with the goroutine: the thread may have
		// started children of the program's own with Pdeathsig before we
		// locked it, and its exit would kill them. Ours are reaped by now.
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	return s
}

// start starts cmd on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	reply := make(chan error)
	s.reqs <- spawnReq{cmd: cmd, reply: reply}
	return <-reply
}

// stop ends the spawner. No start may follow or be in progress.
func (s *spawner) stop() { close(s.reqs) }
