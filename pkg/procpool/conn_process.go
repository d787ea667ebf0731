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

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/journal"
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

// processConn supervises one worker process: it owns the process and its
// pipes, writes the runs posted to it, reads back results, and reports the
// process's end with how it died. A process a launcher starts (over SSH, say)
// is a processConn too.
//
// Its goroutines: run (handshake, then reading, but what a waiting caller
// reads itself: readrole.go), sendLoop (writing), waitExit (reaping) and the
// stderr forwarder.
type processConn struct {
	// Set at start and never changed.
	spec    connSpec
	cmd     *exec.Cmd
	procPID int
	log     hclog.Logger
	stdin   *os.File // our end of the worker's stdin
	stdout  *os.File // our end of the worker's stdout
	stderr  *os.File // our end of the worker's stderr
	stream  *wire.Stream
	fwd     *stderrlog.Forwarder
	ev      events

	wake       chan struct{} // the sender has work
	done       chan struct{} // closed once the end is reported
	reaped     chan struct{} // closed when the process has been waited for; state is set before
	stderrDone chan struct{}
	stdinOnce  sync.Once
	state      *os.ProcessState

	// Owned by the run goroutine.
	remotePID int   // the worker's pid on its machine, from its hello, when not procPID
	handshook bool  // handshake complete
	initErr   error // the initializer's failure

	outMu   sync.Mutex    // guards out and cancels
	out     []*batch      // posted, not yet written
	cancels []wire.Cancel // not yet written

	sendMu  sync.Mutex // held while writing to stdin; guards spare and writing
	spare   []*batch   // the writer's buffer, swapped with out
	writing wire.Run   // the Run being written, kept to spare an allocation per run

	deadlines bool          // stdout takes read deadlines: a caller's read can be cut short (readrole.go)
	rdWake    chan struct{} // wakes the conn's reader to look whether it should read

	rdMu       sync.Mutex    // guards the read role's fields below (readrole.go)
	inflight   []*batch      // posted, in order, their last result not yet read
	leased     int           // of inflight, those leased to their callers (batch.leased)
	rdBusy     bool          // a goroutine holds the read role
	rdFor      *batch        // the batch whose caller holds it, if one does
	rdDeadline bool          // a read deadline is set on stdout: rdFor's caller's context ended
	rdErr      error         // the stream's end or break; no one reads after it
	rdGone     bool          // the conn's reader saw the process reaped: it reads to the end
	lastLeased bool          // the last run posted was leased: the conn's reader does not read ahead
	got        []wire.Result // readOne's buffer; used by whoever holds the read role

	killMu   sync.Mutex // guards isReaped, reason, killed and journal
	isReaped bool       // the pid may name another process now: signal nothing, read nothing of it
	reason   string     // why the pool killed it, or why it broke down
	killed   bool       // the pool signalled it on purpose
	journal  []byte     // the parent's mapping of the worker's journal, or nil; read and unmapped by exit
}

// connSpec is what a conn needs from the pool to start and serve a worker.
type connSpec struct {
	slot     int
	group    *launchGroup
	worker   WorkerSpec
	setup    wire.Setup // the handshake's answer; Env and GOMAXPROCS for this launcher
	initTask string     // Config.Initializer's task, to word its failure
	start    time.Duration
	maxFrame int
	log      hclog.Logger // the pool's, named "worker"
	pool     *Pool        // for the spawner, the pool's context and WaitGroup
}

// serve starts c's goroutines, which report to ev.
func (c *processConn) serve(ev events) {
	c.ev = ev
	wg := &c.spec.pool.wg
	wg.Add(3)
	go func() { defer wg.Done(); c.waitExit() }()
	go func() { defer wg.Done(); defer close(c.stderrDone); c.fwd.Run(c.stderr) }()
	go func() { defer wg.Done(); c.run() }()
}

func (c *processConn) pid() int { return c.procPID }

// rss reads the memory of the process itself, never of one that took its
// pid after it was reaped.
func (c *processConn) rss() int64 {
	if !c.spec.group.local {
		return -1
	}
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if c.isReaped {
		return -1
	}
	return procfs.ResidentMemory(c.procPID)
}

func (c *processConn) running() (run uint64, index int, ok bool) {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if c.journal == nil {
		return 0, 0, false
	}
	return journal.Peek(c.journal)
}

// run performs the handshake, then reads results until the stream ends,
// then reports the worker's end.
func (c *processConn) run() {
	timer := time.AfterFunc(c.spec.start, func() {
		hint := mainHint
		if !c.spec.group.local {
			hint = "is " + c.spec.group.launcher.String() + " slow to connect, or does its program not call procpool.Main()?"
		}
		c.kill(fmt.Sprintf("no handshake within %s: %s", c.spec.start, hint))
	})
	err := c.handshake()
	timer.Stop()
	if err == nil {
		c.handshook = true
		c.ev.ready(c.workerPID())
		c.spec.pool.wg.Add(1)
		go c.sendLoop()
		err = c.readLoop()
	}
	c.exit(err)
}

// errNoHandshake is the end of a worker's stdout before its handshake: it
// exited, or it closed its stdout, which exit tells apart.
var errNoHandshake = errors.New("exited before the handshake: " + mainHint)

const mainHint = "the worker program must call procpool.Main() as the first statement of main (and of TestMain)"

func (c *processConn) handshake() error {
	m, err := c.stream.Read()
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
	if hello.PID != c.procPID {
		c.remotePID = hello.PID
	}
	if ours := executable.BuildID(); hello.Build != ours {
		c.log.Debug("the worker runs another build of this program, with the same tasks", "worker_build", hello.Build, "build", ours)
	}
	setup := c.spec.setup
	setup.Clock = time.Now().UnixNano()
	if err := c.stream.Send(&setup); err != nil {
		return fmt.Errorf("send setup: %w", err)
	}
	if m, err = c.stream.Read(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	ready, ok := m.(*wire.Ready)
	if !ok {
		return fmt.Errorf("handshake: got a %s message, want ready", kindOf(m))
	}
	if c.initErr = initError(c.spec.initTask, &ready.Init); c.initErr != nil {
		return c.initErr
	}
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

func (c *processConn) post(b *batch) {
	if !c.track(b) {
		c.wantRead()
	}
	c.outMu.Lock()
	c.out = append(c.out, b)
	c.outMu.Unlock()
	if !b.quiet {
		c.signal()
	}
}

func (c *processConn) cancel(id uint64, whole bool) {
	c.outMu.Lock()
	c.cancels = append(c.cancels, wire.Cancel{ID: id, Whole: whole})
	c.outMu.Unlock()
	c.signal()
}

// signal wakes the sender without blocking.
func (c *processConn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// sendLoop writes what is posted whenever it is woken.
func (c *processConn) sendLoop() {
	defer c.spec.pool.wg.Done()
	defer c.stop()
	for {
		select {
		case <-c.wake:
		case <-c.done:
			return
		}
		c.sendMu.Lock()
		ok := c.sendAll()
		c.sendMu.Unlock()
		if !ok {
			return
		}
	}
}

// sendNow may write from any goroutine once the handshake is done: the
// scheduler posts work to a worker only after its ready event, which comes
// after the handshake's last write.
func (c *processConn) sendNow() {
	if !c.sendMu.TryLock() {
		c.signal() // the writer may have looked for work already: it looks again
		return
	}
	defer c.sendMu.Unlock()
	c.sendAll()
}

// sendAll writes what is posted until there is nothing more, flushing once
// per round so that many small runs share one write. The caller holds
// sendMu, which keeps the order of writes that of posting. A Cancel follows
// the runs posted with it, so it never arrives before its run. It reports
// false if the worker cannot be written to.
func (c *processConn) sendAll() bool {
	for {
		c.outMu.Lock()
		runs, cancels := c.out, c.cancels
		c.out, c.cancels = c.spare[:0], nil
		c.outMu.Unlock()
		if len(runs) == 0 && len(cancels) == 0 {
			c.spare = runs
			return true
		}
		err := error(nil)
		for _, b := range runs {
			if err == nil {
				c.writing = wire.Run{ID: b.id, Task: b.task, Args: b.args, Deadline: b.deadline}
				err = c.stream.Write(&c.writing)
			}
			if err == nil {
				b.written.Store(true) // its arguments are read no more
			}
		}
		for i := range cancels {
			if err == nil {
				err = c.stream.Write(&cancels[i])
			}
		}
		if err == nil {
			err = c.stream.Flush()
		}
		clear(runs) // the buffer must not keep finished batches, and their arguments, alive
		c.writing = wire.Run{}
		c.spare = runs
		if err != nil {
			// Most often the worker has just died, and its end says why;
			// one that stays alive without reading its stdin is killed.
			select {
			case <-c.reaped:
			case <-time.After(exitGrace):
				c.kill(fmt.Sprintf("write to worker: %v", err))
			}
			return false
		}
	}
}

// stop closes the worker's stdin: a worker exits at its end.
func (c *processConn) stop() { c.stdinOnce.Do(func() { c.stdin.Close() }) }

// waitExit waits for the process to end, kills what is left of its process
// group (children a task started), then reaps it.
func (c *processConn) waitExit() {
	// awaitExit leaves a zombie, which keeps the pid and process group id
	// from being reused while the group is killed.
	if err := awaitExit(c.procPID); err != nil {
		c.log.Debug("wait for worker to exit", "error", err)
	}
	c.killMu.Lock()
	_ = killGroup(c.procPID, syscall.SIGKILL)
	c.isReaped = true
	c.killMu.Unlock()
	state, err := c.cmd.Process.Wait()
	if err != nil {
		c.log.Error("wait for worker", "error", err)
	}
	c.state = state
	close(c.reaped)
}

// signaled reports whether the reaped process was ended by a signal, and
// which.
func (c *processConn) signaled() (syscall.Signal, bool) {
	if c.state != nil {
		if ws, ok := c.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal(), true
		}
	}
	return 0, false
}

// note records why the worker ended, unless a reason is known already.
func (c *processConn) note(why string, killed bool) {
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if c.reason == "" {
		c.reason = why
	}
	c.killed = c.killed || killed
}

func (c *processConn) kill(why string) { c.signalGroup(syscall.SIGKILL, why) }

func (c *processConn) terminate(why string) { c.signalGroup(syscall.SIGTERM, why) }

// signalGroup sends sig to the worker's process group, unless it has been
// reaped (its pid could then name another process), recording why.
func (c *processConn) signalGroup(sig syscall.Signal, why string) {
	c.note(why, true)
	c.killMu.Lock()
	defer c.killMu.Unlock()
	if !c.isReaped {
		_ = killGroup(c.procPID, sig)
	}
}

// exit deals with the end of the worker's protocol stream: it makes sure the
// process is gone, collects how it died, and reports it.
func (c *processConn) exit(streamErr error) {
	ended := streamErr == io.EOF || streamErr == errNoHandshake // the stream ended: did the process?
	if !ended {
		c.kill(streamErr.Error())
	}
	select {
	case <-c.reaped:
		if streamErr == errNoHandshake {
			if _, ok := c.signaled(); ok {
				c.note("killed before the handshake", false) // so it did not forget procpool.Main
			} else {
				c.note(errNoHandshake.Error(), false)
			}
		}
	case <-time.After(exitGrace):
		if streamErr == errNoHandshake {
			c.kill("it closed its stdout before the handshake but kept running: " + mainHint)
		} else {
			c.kill("it closed its stdout but kept running")
		}
		<-c.reaped
	}
	select {
	case <-c.stderrDone:
	case <-time.After(stderrGrace):
		c.stderr.Close()
		<-c.stderrDone
	}
	c.stop()
	c.stdout.Close()
	c.stderr.Close()

	c.killMu.Lock()
	e := &WorkerExitError{PID: c.workerPID(), Host: c.spec.group.hostOf(c.procPID), ExitCode: -1, Reason: c.reason, Stderr: c.fwd.Tail(), Err: c.initErr}
	killed := c.killed
	c.killMu.Unlock()
	if sig, ok := c.signaled(); ok {
		e.Signal = signalName(sig)
		if e.Signal == "" {
			e.Signal = "signal " + strconv.Itoa(int(sig))
		}
	} else if c.state != nil {
		e.ExitCode = c.state.ExitCode()
	}
	cause := endExited
	switch {
	case c.initErr != nil:
		cause = endInitFailed
	case killed:
		cause = endKilled
	case !c.handshook:
		cause = endNoHandshake
	}
	if pl, ok := c.spec.group.launcher.(placer); ok {
		pl.workerEnded(c.procPID, e, cause)
	}
	if d, ok := c.spec.group.launcher.(exitDecoder); ok {
		d.decodeExit(e, cause)
	}
	c.ev.ended(e, cause, c.lastWords(streamErr))
	close(c.done)
}

// lastWords reads the journal of the worker, which is gone, and releases
// it. It is nil without a journal, or if the stream broke rather than
// ended: results the worker wrote may then be unread, and the journal,
// which keeps only those not written, cannot replace them.
func (c *processConn) lastWords(streamErr error) *journal.Record {
	c.killMu.Lock()
	mem := c.journal
	c.journal = nil // running peeks at it no more
	c.killMu.Unlock()
	if mem == nil {
		return nil
	}
	defer journal.Unmap(mem)
	if streamErr != io.EOF {
		return nil
	}
	rec, err := journal.Read(mem)
	if err != nil {
		c.log.Warn("worker's journal unreadable; its death is charged to every call it held", "error", err)
		return nil
	}
	return rec
}

// workerPID is the worker's pid on the machine it runs on.
func (c *processConn) workerPID() int {
	if c.remotePID != 0 {
		return c.remotePID
	}
	return c.procPID
}
