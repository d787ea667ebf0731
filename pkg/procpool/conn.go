package procpool

import (
	"fmt"

	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/wire"
)

// conn is one worker as the scheduler drives it, whatever the worker is: a
// process on this machine or started by a launcher (processConn), or a
// goroutine of this program (goroutineConn). A new backend is a new conn.
//
// Control flows one way: the scheduler calls a conn's methods; a conn tells
// the scheduler only what it observed, through the events it was started
// with: the handshake completed, a result arrived, the worker ended.
type conn interface {
	// post gives the worker batch b to run after those it has. It is called
	// under the pool's lock, so it must not block.
	post(b *batch)
	// cancel asks the worker to cancel the context of run id's call in
	// progress, and with whole its calls not started too. It is called under
	// the pool's lock.
	cancel(id uint64, whole bool)
	// sendNow writes what was posted from the calling goroutine, unless
	// another goroutine is writing: a Submit to an idle worker then costs
	// no hand-off. It is called without the pool's lock.
	sendNow()
	// stop asks the worker to exit when it is idle: a process at the end of
	// its stdin.
	stop()
	// terminate asks the worker to stop the hard way: SIGTERM to a
	// process's group. A goroutine cannot be stopped; it is abandoned.
	terminate(why string)
	// kill ends the worker at once: SIGKILL to a process's group; a
	// goroutine is abandoned. why is recorded for its exit error.
	kill(why string)
	// pid is the worker's process id on this machine (for a goroutine,
	// this program's).
	pid() int
	// rss is the worker's resident memory in bytes, or -1 if it cannot be
	// read from here.
	rss() int64
	// running is the call the worker runs, or, between calls, ran last, as
	// its journal says: its run's id and its index in the run. ok is false
	// for a worker without a journal, or one that has run nothing yet.
	running() (run uint64, index int, ok bool)
}

// events is what a conn reports, upward, to the scheduler; a member
// implements it for its conn. Each is called from the conn's own goroutine,
// without the pool's lock.
type events interface {
	// ready reports that the handshake completed, and the worker's pid on
	// its own machine.
	ready(workerPID int)
	// results hands over Results, in the order they came; an error means
	// the worker broke the protocol or the scheduler no longer wants it,
	// and ends the conn. They are the caller's again once it returns.
	results(rs []wire.Result) error
	// ended reports the end of the worker, once, after which the conn makes
	// no other report; last is its journal, if it kept one and it can be
	// trusted, which says what completed and which call was running.
	ended(e *WorkerExitError, cause endCause, last *journal.Record)
}

// endCause is why a worker ended, as its conn saw it. The scheduler decides
// what follows from it; a launcher reads its command's exit status by it.
type endCause int

const (
	// endExited: the worker ended by itself after its handshake (it
	// exited, was killed by a signal nobody in the pool sent, or closed its
	// stream), or, for a goroutine, stopped when asked.
	endExited endCause = iota
	// endNoHandshake: it ended by itself before completing the handshake.
	endNoHandshake
	// endInitFailed: its [Config.Initializer] failed.
	endInitFailed
	// endKilled: the pool killed it, for the reason in its exit error: a
	// timeout, a cancel it ignored, a protocol error, Terminate, a broken
	// pool. A goroutine is abandoned instead.
	endKilled
)

func (c endCause) String() string {
	switch c {
	case endExited:
		return "exited"
	case endNoHandshake:
		return "no handshake"
	case endInitFailed:
		return "initializer failed"
	case endKilled:
		return "killed"
	}
	return fmt.Sprintf("endCause(%d)", int(c))
}

// initError is the error of a failed [Config.Initializer], from its outcome.
func initError(task string, it *wire.Item) error {
	if err := itemError(task, it); err != nil {
		return fmt.Errorf("%w: %w", ErrInitFailed, err)
	}
	return nil
}
