package procpool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/procpool/procpool/internal/wire"
)

var (
	// ErrBrokenPool is matched by the errors of every task that was pending
	// when a worker died under the Break policy, and of every later Submit.
	ErrBrokenPool = errors.New("procpool: pool is broken")

	// ErrWorkerLost is matched by the error of a task whose worker died while
	// running it under the Respawn policy.
	ErrWorkerLost = errors.New("procpool: worker lost")

	// ErrTaskTimeout is matched by the error of a task that ran past
	// Config.TaskTimeout.
	ErrTaskTimeout = errors.New("procpool: task timed out")

	// ErrClosed is matched by the error of a Submit after Close or Terminate,
	// and of every task that Terminate left unfinished.
	ErrClosed = errors.New("procpool: pool is closed")

	// ErrStartup is matched by New's error when a worker fails to start or to
	// complete the handshake.
	ErrStartup = errors.New("procpool: worker failed to start")

	// ErrInitFailed is matched by New's error, and by a broken pool's, when
	// Config.Initializer failed in a worker.
	ErrInitFailed = errors.New("procpool: worker initializer failed")

	// ErrInWorker is returned by New in a worker process: a worker never
	// starts pools of its own, which is what keeps a forgotten Main from
	// becoming a fork bomb.
	ErrInWorker = errors.New("procpool: New called in a worker process; call procpool.Main() as the first statement of main (and of TestMain)")

	// ErrUnknownTask is matched by the error of a call to a task the worker
	// does not have.
	ErrUnknownTask = errors.New("procpool: unknown task")

	// ErrUnsupported is matched by New's error when the Processes backend
	// is asked for on a platform where procpool cannot run worker processes
	// yet (Windows). The Goroutines backend works everywhere, so a program
	// can fall back to it:
	//
	//	p, err := procpool.New(cfg)
	//	if errors.Is(err, procpool.ErrUnsupported) {
	//		cfg.Backend = procpool.Goroutines
	//		p, err = procpool.New(cfg)
	//	}
	ErrUnsupported = errors.New("procpool: worker processes are not supported on this platform yet; the Goroutines backend is (Config.Backend = procpool.Goroutines)")

	// ErrFrameTooLarge is matched by the error of a call whose argument or
	// result does not fit in a frame (Config.MaxFrameSize).
	ErrFrameTooLarge = wire.ErrFrameTooLarge
)

// RemoteError is a task's own failure: the error it returned, or a panic,
// recovered in the worker. The worker lives on.
type RemoteError struct {
	Task    string // the task's registered name
	Message string // the error's text, or the panic value
	Panic   bool   // whether the task panicked
	Stack   string // the goroutine stack at the panic
}

func (e *RemoteError) Error() string {
	if e.Panic {
		return fmt.Sprintf("procpool: task %q panicked: %s", e.Task, e.Message)
	}
	return fmt.Sprintf("procpool: task %q: %s", e.Task, e.Message)
}

// WorkerExitError describes the death of a worker process: who it was, how
// it ended and what it last wrote to stderr.
type WorkerExitError struct {
	PID      int    // process id of the worker, on its own machine
	Host     string // where it ran, for a worker a Launcher other than the default started ("ssh build1")
	ExitCode int    // exit code, or -1 when a signal ended it
	Signal   string // the signal that ended it ("SIGKILL"), or ""
	Stderr   string // the Go crash report it printed, or else the tail of its stderr
	Reason   string // why the pool noticed, when the exit itself does not say (a protocol error, say)
	Held     int    // number of calls it held when it died
	Err      error  // what went wrong in its start-up, such as an initializer's failure
}

func (e *WorkerExitError) Unwrap() error { return e.Err }

func (e *WorkerExitError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "worker pid %d ", e.PID)
	if e.Host != "" {
		fmt.Fprintf(&b, "on %s ", e.Host)
	}
	if e.Signal != "" {
		fmt.Fprintf(&b, "killed by %s", e.Signal)
	} else {
		fmt.Fprintf(&b, "exited with code %d", e.ExitCode)
	}
	if e.Held > 0 {
		fmt.Fprintf(&b, " holding %d call(s)", e.Held)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if line := headline(e.Stderr); line != "" {
		fmt.Fprintf(&b, ": %s", line)
	}
	return b.String()
}

// headline picks the line of a stderr tail that says most: the start of a
// crash report, with the signal line that may follow it, or else the last
// line.
func headline(tail string) string {
	lines := strings.Split(strings.TrimRight(tail, "\n"), "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "panic: ") || strings.HasPrefix(l, "fatal error: ") || strings.HasPrefix(l, "runtime/cgo: ") || strings.HasPrefix(l, "SIGQUIT: ") {
			if i+1 < len(lines) && strings.HasPrefix(lines[i+1], "[signal ") {
				l += " " + lines[i+1]
			}
			return l
		}
	}
	return lines[len(lines)-1]
}

// Stage names where a value failed to cross the pipe.
type Stage string

// The stages of a call's journey.
const (
	EncodeArgument Stage = "encode argument" // in the parent, before sending
	DecodeArgument Stage = "decode argument" // in the worker
	EncodeResult   Stage = "encode result"   // in the worker
	DecodeResult   Stage = "decode result"   // in the parent
)

// CodecError reports a value that could not be encoded or decoded. Only that
// one call fails; the worker and the pool go on.
type CodecError struct {
	Task    string
	Stage   Stage
	Message string
	Err     error // the local cause, when the failure was in this process
}

func (e *CodecError) Error() string {
	return fmt.Sprintf("procpool: task %q: %s: %s", e.Task, e.Stage, e.Message)
}

func (e *CodecError) Unwrap() error { return e.Err }

// itemError turns a call's outcome from the worker into the caller's error.
func itemError(task string, it *wire.Item) error {
	switch it.Status {
	case wire.StatusOK:
		return nil
	case wire.StatusError:
		return &RemoteError{Task: task, Message: it.Message}
	case wire.StatusPanic:
		return &RemoteError{Task: task, Message: it.Message, Panic: true, Stack: it.Stack}
	case wire.StatusDecodeArg:
		return &CodecError{Task: task, Stage: DecodeArgument, Message: it.Message}
	case wire.StatusEncodeResult:
		return &CodecError{Task: task, Stage: EncodeResult, Message: it.Message}
	case wire.StatusTooLarge:
		return &CodecError{Task: task, Stage: EncodeResult, Message: it.Message, Err: ErrFrameTooLarge}
	case wire.StatusUnknownTask:
		return fmt.Errorf("%w: %s", ErrUnknownTask, it.Message)
	}
	return fmt.Errorf("procpool: task %q: unknown outcome %d: %s", task, it.Status, it.Message)
}
