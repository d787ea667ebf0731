package procpool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/procfs"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/stderrlog"
	"github.com/procpool/procpool/internal/wire"
)

const (
	// exitGrace is how long a worker whose protocol stream ended may take
	// to exit before it is killed. A process that exits closes its pipes a
	// moment before it becomes a zombie; one that is still alive after this
	// closed its stdout on purpose.
	exitGrace = 250 * time.Millisecond
	// stderrGrace bounds the wait for the rest of a dead worker's stderr; a
	// grandchild may hold the pipe open.
	stderrGrace = 200 * time.Millisecond
)

// proc supervises one worker process: it owns the process and its pipes,
// sends the runs the pool gives it, reads back results, and reports the
// process's end to the pool.
type proc struct {
	pool *Pool
	log  hclog.Logger
	cmd  *exec.Cmd
	pid  int

	stdin  *os.File // our end of the worker's stdin
	stdout *os.File // our end of the worker's stdout
	stderr *os.File // our end of the worker's stderr
	r      *wire.Reader
	dec    *wire.Decoder
	w      *wire.Writer
	fwd    *stderrlog.Forwarder

	slot  int          // its place in the pool; a replacement takes the same
	group *launchGroup // the launcher that started it
	local *local       // set for a goroutine worker, which has no process
	// remotePID is the worker's pid on its own machine, from its hello,
	// when that is not the process we started (an ssh client, say).
	remotePID int

	// Guarded by pool.mu.
	held      []*batch      // runs sent or being sent, in the order sent
	cancels   []uint64      // runs to send a Cancel for
	isReady   bool          // handshake complete
	stopping  bool          // the pool closed its stdin on purpose
	retiring  bool          // takes no more work, then stops
	memExempt bool          // started above MaxMemoryPerWorker: never retired for memory
	onPurpose bool          // the pool is killing it: not a crash
	gone      bool          // the pool has dealt with its end
	assigned  int           // calls sent
	done      int           // calls completed
	callSeq   uint64        // counts calls started, to tell a stale timer
	service   time.Duration // running average of a run's time in the worker
	lastDone  time.Time     // when its last run ended
	timer     *time.Timer
	initErr   error // the initializer's failure

	wake       chan struct{} // the sender has work or room
	sendMu     sync.Mutex    // held while assigning and writing runs
	runs       []*batch      // sendAll's buffer, under sendMu
	ready      chan struct{} // closed when the handshake completes
	finished   chan struct{} // closed when the pool has dealt with its end
	reaped     chan struct{} // closed when the process has been waited for
	stderrDone chan struct{}
	stdinOnce  sync.Once

	killMu    sync.Mutex
	isReaped  bool
	reason    string // why the pool killed it, or why it broke down
	exitErr   *WorkerExitError
	handshook bool
	state     *os.ProcessState
}

// startProc starts one worker process and its supervising goroutines.
func (p *Pool) startProc(slot int) (*proc, error) {
	pipes, err := newPipes()
	if err != nil {
		return nil, err
	}
	g := p.groupOf(slot)
	cmd, err := g.launcher.Command(p.ctx, p.workerSpec(slot))
	if err != nil {
		pipes.closeChild()
		pipes.closeParent()
		return nil, fmt.Errorf("%s: %w", g.launcher, err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pipes.childIn, pipes.childOut, pipes.childErr
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// Pdeathsig: the worker dies with us. Its own process group: Ctrl-C
	// reaches the parent alone, which decides, and a kill of the group
	// takes the worker's children too.
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	cmd.SysProcAttr.Setpgid = true
	err = p.spawner.start(cmd)
	pipes.closeChild()
	if err != nil {
		pipes.closeParent()
		return nil, fmt.Errorf("start worker %q (%s): %w", cmd.Path, g.launcher, err)
	}
	w := &proc{
		pool:       p,
		group:      g,
		slot:       slot,
		cmd:        cmd,
		pid:        cmd.Process.Pid,
		stdin:      pipes.in,
		stdout:     pipes.out,
		stderr:     pipes.err,
		r:          wire.NewReader(pipes.out, p.cfg.MaxFrameSize),
		dec:        wire.NewDecoder(),
		w:          wire.NewWriter(pipes.in, p.cfg.MaxFrameSize),
		wake:       make(chan struct{}, 1),
		ready:      make(chan struct{}),
		finished:   make(chan struct{}),
		reaped:     make(chan struct{}),
		stderrDone: make(chan struct{}),
	}
	w.log = p.log.Named("worker").With("pid", w.pid)
	if h := w.host(); h != "" {
		w.log = w.log.With("on", h)
	}
	w.fwd = stderrlog.New(w.log)
	p.adopt(w)
	p.wg.Add(3)
	go w.waitExit()
	go w.forwardStderr()
	go w.run()
	return w, nil
}

// adopt makes w one of the pool's workers. It must come before w's
// goroutines start: a worker that ended before it was counted would be
// waited for for ever.
func (p *Pool) adopt(w *proc) {
	p.mu.Lock()
	p.procs[w] = struct{}{}
	p.mu.Unlock()
}

type pipes struct {
	in, out, err                *os.File // our ends
	childIn, childOut, childErr *os.File
}

func newPipes() (*pipes, error) {
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
	return &ps, nil
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

// run performs the handshake, then reads results until the stream ends,
// then deals with the worker's end.
func (w *proc) run() {
	defer w.pool.wg.Done()
	timer := time.AfterFunc(w.pool.cfg.StartTimeout, func() {
		hint := mainHint
		if !w.group.local {
			hint = "is " + w.group.launcher.String() + " slow to connect, or does its program not call procpool.Main()?"
		}
		w.kill(fmt.Sprintf("no handshake within %s: %s", w.pool.cfg.StartTimeout, hint))
	})
	err := w.handshake()
	timer.Stop()
	if err == nil {
		w.pool.exemptIfBloated(w)
		w.pool.markReady(w)
		w.pool.wg.Add(1)
		go w.sendLoop()
		err = w.readLoop()
	}
	w.exit(err)
}

// errNoHandshake is the end of a worker's stdout before its handshake: it
// exited, or it closed its stdout, which exit tells apart.
var errNoHandshake = errors.New("exited before the handshake: " + mainHint)

const mainHint = "the worker program must call procpool.Main() as the first statement of main (and of TestMain)"

func (w *proc) handshake() error {
	m, err := w.read()
	if err == io.EOF {
		return errNoHandshake
	}
	if v := (*wire.VersionError)(nil); errors.As(err, &v) {
		return fmt.Errorf("%w: is it a build of the same program?", v)
	}
	if err != nil {
		return fmt.Errorf("bad handshake (%v): %s", err, mainHint)
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return fmt.Errorf("handshake began with a %s message, want hello", kindOf(m))
	}
	if err := sameTasks(registry.Signatures(), hello.Tasks); err != nil {
		return err
	}
	if hello.PID != w.pid {
		w.pool.mu.Lock() // Stats and Workers read it
		w.remotePID = hello.PID
		w.log = w.log.With("worker_pid", hello.PID)
		w.pool.mu.Unlock()
	}
	if ours := executable.BuildID(); hello.Build != ours {
		w.log.Debug("the worker runs another build of this program, with the same tasks", "worker_build", hello.Build, "build", ours)
	}
	init := w.pool.cfg.Initializer
	setup := &wire.Setup{MaxFrame: w.pool.cfg.MaxFrameSize, InitTask: init.task, InitArg: init.arg, Progress: w.pool.cfg.TaskTimeout > 0}
	w.pool.setupFor(w.group, setup)
	if err := w.send(setup); err != nil {
		return fmt.Errorf("send setup: %w", err)
	}
	if m, err = w.read(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	ready, ok := m.(*wire.Ready)
	if !ok {
		return fmt.Errorf("handshake: got a %s message, want ready", kindOf(m))
	}
	if err := itemError(init.task, &ready.Init); err != nil {
		w.initErr = fmt.Errorf("%w: %w", ErrInitFailed, err)
		return w.initErr
	}
	w.killMu.Lock()
	w.handshook = true
	w.killMu.Unlock()
	return nil
}

// sameTasks compares the task signatures of the two sides.
func sameTasks(ours, theirs []string) error {
	var missing, extra []string
	for _, n := range ours {
		if _, ok := slices.BinarySearch(theirs, n); !ok {
			missing = append(missing, n)
		}
	}
	for _, n := range theirs {
		if _, ok := slices.BinarySearch(ours, n); !ok {
			extra = append(extra, n)
		}
	}
	if missing == nil && extra == nil {
		return nil
	}
	return fmt.Errorf("the worker's registered tasks differ from the pool's (missing in the worker: %q; unknown to the pool: %q): is it the same build of the program, with no task registered conditionally?", missing, extra)
}

func kindOf(m wire.Message) string { return fmt.Sprintf("%T", m)[len("*wire."):] }

func (w *proc) read() (wire.Message, error) {
	body, err := w.r.ReadFrame()
	if err != nil {
		return nil, err
	}
	return w.dec.Decode(body)
}

func (w *proc) send(m wire.Message) error {
	if err := w.w.Write(m); err != nil {
		return err
	}
	return w.w.Flush()
}

// readLoop hands results to the pool until the stream ends or breaks.
func (w *proc) readLoop() error {
	for {
		m, err := w.read()
		if err != nil {
			return err
		}
		res, ok := m.(*wire.Result)
		if !ok {
			return fmt.Errorf("protocol error: unexpected %s message", kindOf(m))
		}
		rss := int64(-1)
		if !res.More && w.pool.cfg.MaxMemoryPerWorker > 0 && w.group.local {
			rss = procfs.ResidentMemory(w.pid) // before the caller learns of the result, so its next call sees the verdict
		}
		err = w.pool.deliver(w, res, rss)
		w.dec.Release()
		if err != nil {
			return err
		}
	}
}

// sendLoop writes the runs the pool assigns to this worker and the
// cancellations it asks for, whenever it is woken.
func (w *proc) sendLoop() {
	defer w.pool.wg.Done()
	defer w.closeStdin()
	for {
		select {
		case <-w.wake:
		case <-w.finished:
			return
		}
		w.sendMu.Lock()
		ok := w.sendAll()
		w.sendMu.Unlock()
		if !ok {
			return
		}
	}
}

// sendAll writes what the pool assigns to w until there is nothing more,
// flushing once per round so that many small runs share one write. The
// caller holds w.sendMu, which keeps the order of writes that of w.held.
// It reports false if the worker cannot be written to.
func (w *proc) sendAll() bool {
	for {
		runs, cancels := w.pool.assign(w, w.runs[:0])
		w.runs = runs
		if len(runs) == 0 && len(cancels) == 0 {
			return true
		}
		err := error(nil)
		for _, id := range cancels {
			if err == nil {
				err = w.w.Write(&wire.Cancel{ID: id})
			}
		}
		for _, b := range runs {
			if err == nil {
				err = w.w.Write(&wire.Run{ID: b.id, Task: b.task, Args: b.args})
			}
		}
		if err == nil {
			err = w.w.Flush()
		}
		clear(runs) // the buffer must not keep finished batches, and their arguments, alive
		if err != nil {
			// Most often the worker has just died, and its end says why;
			// one that stays alive without reading its stdin is killed.
			select {
			case <-w.reaped:
			case <-time.After(exitGrace):
				w.kill(fmt.Sprintf("write to worker: %v", err))
			}
			return false
		}
	}
}

// trySend writes to w from the calling goroutine if no one else is: a
// Submit to an idle worker then costs no hand-off to the sender goroutine.
// It reports whether it did.
func (w *proc) trySend() bool {
	if !w.sendMu.TryLock() {
		return false
	}
	defer w.sendMu.Unlock()
	return w.sendAll()
}

// signal wakes the sender without blocking.
func (w *proc) signal() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// closeStdin asks the worker to exit: a process at the end of its stdin, a
// goroutine when it is next idle.
func (w *proc) closeStdin() {
	if w.local != nil {
		w.local.stopOnce.Do(func() { close(w.local.stop) })
		return
	}
	w.stdinOnce.Do(func() { w.stdin.Close() })
}

// forwardStderr copies the worker's stderr into the log.
func (w *proc) forwardStderr() {
	defer w.pool.wg.Done()
	defer close(w.stderrDone)
	w.fwd.Run(w.stderr)
}

// waitExit waits for the process to end, kills what is left of its process
// group (children a task started), then reaps it.
func (w *proc) waitExit() {
	defer w.pool.wg.Done()
	var info unix.Siginfo
	for {
		// WNOWAIT leaves a zombie, which keeps the pid and process group id
		// from being reused while the group is killed.
		if err := unix.Waitid(unix.P_PID, w.pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	w.killMu.Lock()
	_ = unix.Kill(-w.pid, unix.SIGKILL)
	w.isReaped = true
	w.killMu.Unlock()
	state, err := w.cmd.Process.Wait()
	if err != nil {
		w.log.Error("wait for worker", "error", err)
	}
	w.state = state
	close(w.reaped)
}

// noHandshake says why a worker that has been reaped never completed its
// handshake. One killed by a signal did not forget procpool.Main.
func (w *proc) noHandshake() string {
	if w.state != nil {
		if ws, ok := w.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return "killed before the handshake"
		}
	}
	return errNoHandshake.Error()
}

// note records why the worker ended, unless a reason is known already.
func (w *proc) note(why string) {
	w.killMu.Lock()
	defer w.killMu.Unlock()
	if w.reason == "" {
		w.reason = why
	}
}

// kill ends the worker and its process group at once, recording why.
func (w *proc) kill(why string) { w.signalGroup(unix.SIGKILL, why) }

// signalGroup sends sig to the worker's process group, unless it has been
// reaped (its pid could then name another process), recording why. A
// goroutine worker cannot be signalled: it is abandoned.
func (w *proc) signalGroup(sig unix.Signal, why string) {
	if w.local != nil {
		w.abandon(why)
		return
	}
	w.note(why)
	w.killMu.Lock()
	defer w.killMu.Unlock()
	if !w.isReaped {
		_ = unix.Kill(-w.pid, sig)
	}
}

// exit deals with the end of the worker's protocol stream: it makes sure the
// process is gone, collects how it died, and reports to the pool.
func (w *proc) exit(streamErr error) {
	ended := streamErr == io.EOF || streamErr == errNoHandshake // the stream ended: did the process?
	if !ended {
		w.kill(streamErr.Error())
	}
	select {
	case <-w.reaped:
		if streamErr == errNoHandshake {
			w.note(w.noHandshake())
		}
	case <-time.After(exitGrace):
		if streamErr == errNoHandshake {
			w.kill("it closed its stdout before the handshake but kept running: " + mainHint)
		} else {
			w.kill("it closed its stdout but kept running")
		}
		<-w.reaped
	}
	select {
	case <-w.stderrDone:
	case <-time.After(stderrGrace):
		w.stderr.Close()
		<-w.stderrDone
	}
	w.closeStdin()
	w.stdout.Close()
	w.stderr.Close()

	w.killMu.Lock()
	e := &WorkerExitError{PID: w.workerPID(), ExitCode: -1, Reason: w.reason, Stderr: w.fwd.Tail()}
	handshook := w.handshook
	w.killMu.Unlock()
	e.Host = w.host()
	if w.state != nil {
		if ws, ok := w.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			e.Signal = unix.SignalName(ws.Signal())
			if e.Signal == "" {
				e.Signal = "signal " + strconv.Itoa(int(ws.Signal()))
			}
		} else {
			e.ExitCode = w.state.ExitCode()
		}
	}
	if d, ok := w.group.launcher.(exitDecoder); ok {
		d.decodeExit(e, handshook)
	}
	e.Err = w.initErr
	w.report(e)
}

// workerPID is the worker's pid on the machine it runs on.
func (w *proc) workerPID() int {
	if w.remotePID != 0 {
		return w.remotePID
	}
	return w.pid
}

// host says where the worker runs: "" for the default launcher's workers,
// else the launcher ("ssh build1").
func (w *proc) host() string {
	if w.group.local {
		return ""
	}
	return w.group.launcher.String()
}

// name identifies the worker in messages: "pid 123", "pid 123 on ssh build1".
func (w *proc) name() string {
	if h := w.host(); h != "" {
		return fmt.Sprintf("pid %d on %s", w.workerPID(), h)
	}
	return fmt.Sprintf("pid %d", w.workerPID())
}

// report hands the end of the worker to the pool, and starts its
// replacement if the pool wants one.
func (w *proc) report(e *WorkerExitError) {
	w.exitErr = e
	if w.pool.onExit(w, e) {
		w.pool.respawn(w.slot)
	}
	close(w.finished)
}

// requestCancel asks the worker to cancel run id. It runs under p.mu.
func (w *proc) requestCancel(id uint64) {
	if w.local != nil {
		w.local.cancelRun(id)
		return
	}
	w.cancels = append(w.cancels, id)
	w.signal()
}
