package procpool

import (
	"errors"
	"fmt"
	"strings"

	"github.com/procpool/procpool/internal/errcode"
	"github.com/procpool/procpool/internal/stderrlog"
	"github.com/procpool/procpool/internal/wire"
)

var (
	// ErrBrokenPool is matched by the errors of every task that was pending
	// when a worker died under the Break policy, and of every later Submit.
	ErrBrokenPool = errors.New("procpool: pool is broken")

	// ErrWorkerLost is matched by the error of a task whose worker died while
	// running it under the Respawn policy.
	ErrWorkerLost = errors.New("procpool: worker lost")

	// ErrMemoryLimit is matched by the error of a call that was running
	// when the pool killed its worker for going over
	// [Config.MaxMemoryPerWorker]. The error is a *[MemoryLimitError]. The
	// call is not run again, whatever [Config.Retries], and the pool does
	// not break, whatever [Config.OnCrash]: the kill is the pool's own, not
	// a crash.
	ErrMemoryLimit = errors.New("procpool: worker over MaxMemoryPerWorker")

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
	// result does not fit in a frame ([Config.MaxFrameSize]).
	ErrFrameTooLarge = wire.ErrFrameTooLarge

	// ErrConfig is matched by New's error when the [Config] is invalid. The
	// error is a *[ConfigError], which names the field.
	ErrConfig = errors.New("procpool: invalid Config")

	// ErrNoPool is matched by the error of every method used on a Pool
	// that New did not make: a zero Pool{} or a nil *Pool. Methods that
	// return no error ([Pool.Stats], [Pool.Workers]) panic with an error
	// that matches it.
	ErrNoPool = errors.New("procpool: Pool not made by procpool.New: a zero Pool{} or a nil *Pool has no workers")
)

// ElementError is the error of one element of a [Task.Map], [Task.Imap] or
// [Task.ImapUnordered]: which element of the input failed, and how. Err is
// what a [Task.Submit] of that element would have failed with, such as a
// *[RemoteError] or a *[CodecError]; errors.Is and errors.As see through
// to it.
//
//	for v, err := range task.ImapUnordered(ctx, p, inputs) {
//		var ee *procpool.ElementError
//		if errors.As(err, &ee) {
//			log.Printf("input %d failed: %v", ee.Index, ee.Err)
//		}
//	}
//
// An error that belongs to no element, such as the context's, is not an
// ElementError.
type ElementError struct {
	Index int   // the element's position in the input, from 0
	Err   error // what went wrong with it
}

func (e *ElementError) Error() string { return fmt.Sprintf("map element %d: %v", e.Index, e.Err) }

func (e *ElementError) Unwrap() error { return e.Err }

// ConfigError is New's error for an invalid [Config]: a negative count,
// size or duration, or a [CrashPolicy] or [Backend] that is none of the
// defined ones. It matches [ErrConfig].
type ConfigError struct {
	Field  string // the field of Config, such as "Workers" or "Remote[1]"
	Value  any    // the value it had
	Reason string // what is wrong with it
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("procpool: invalid Config.%s %v: %s", e.Field, e.Value, e.Reason)
}

// Is reports whether target is [ErrConfig].
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// RemoteError is a task's own failure: the error it returned, or a panic,
// recovered in the worker. The worker lives on.
//
// The error itself stays in the worker; its text travels, and so does its
// identity where it matters: if it matched one of the standard library's
// common sentinels (context.Canceled, context.DeadlineExceeded,
// os.ErrDeadlineExceeded, fs.ErrNotExist, fs.ErrExist, fs.ErrPermission,
// io.EOF, io.ErrUnexpectedEOF) or an error given to [RegisterError], the
// RemoteError matches it too, with errors.Is.
type RemoteError struct {
	Task    string  // the task's registered name
	Message string  // the error's text, or the panic value
	Panic   bool    // whether the task panicked
	Stack   string  // the goroutine stack at the panic
	Errs    []error // the well-known errors the task's error matched
}

// Unwrap returns the well-known errors the task's error matched.
func (e *RemoteError) Unwrap() []error { return e.Errs }

// RegisterError adds errors that keep their identity across the pipe: a
// task's error that matches one of them (errors.Is) in the worker makes the
// caller's [RemoteError] match it too. Call it at package level (in a var
// declaration or init), like [Register], so that the parent and its workers
// know the same errors. They are told apart by their text: two with the same
// text panic.
func RegisterError(errs ...error) { errcode.Register(errs...) }

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
	// Running is the task of the call the worker was running when it
	// died, and Element that call's index in the input of its Map or Imap
	// (-1 for a Submit). Running is "" when it ran none, or when the pool
	// cannot know: see "When a worker dies" in the package documentation.
	Running string
	Element int
	Err     error // what went wrong in its start-up, such as an initializer's failure
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
	if e.Running != "" {
		fmt.Fprintf(&b, " while running %s", e.Running)
		if e.Element >= 0 {
			fmt.Fprintf(&b, " (element %d)", e.Element)
		}
	}
	if e.Held > 0 {
		fmt.Fprintf(&b, " holding %d call(s)", e.Held)
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, " (%s)", e.Reason)
	}
	if line := e.Headline(); line != "" {
		fmt.Fprintf(&b, ": %s", line)
	}
	return b.String()
}

// Headline returns the line of Stderr that says most about how the worker
// died: the first line of its Go crash report that names the failure ("panic:
// ...", "fatal error: ...", "SIGSEGV: segmentation violation", with the
// "[signal ...]" line that may follow), or else the last line it printed
// that is not part of a goroutine or register dump. Error ends with it.
func (e *WorkerExitError) Headline() string { return stderrlog.Headline(e.Stderr) }

// MemoryLimitError is the error of a call that was running when the pool
// killed its worker, whose resident memory had gone over
// [Config.MaxMemoryPerWorker]: the call that made it grow, as far as the pool
// can tell (see [Config.MaxMemoryPerWorker]). It matches [ErrMemoryLimit], and
// errors.As finds the worker's *[WorkerExitError] through it.
//
//	var mle *procpool.MemoryLimitError
//	if errors.As(err, &mle) {
//		log.Printf("input too large: its worker reached %d MiB", mle.RSS>>20)
//	}
type MemoryLimitError struct {
	RSS   int64            // the worker's resident memory, in bytes, when the pool saw it over the limit
	Limit int64            // Config.MaxMemoryPerWorker, in bytes
	Exit  *WorkerExitError // the worker's end: its pid, the SIGKILL, the call it was running
}

func (e *MemoryLimitError) Error() string {
	who := "worker"
	if e.Exit != nil {
		who = "worker " + name(e.Exit.PID, e.Exit.Host)
	}
	return fmt.Sprintf("procpool: %s used %s, over MaxMemoryPerWorker %s", who, mib(e.RSS), mib(e.Limit))
}

// Is reports whether target is [ErrMemoryLimit].
func (e *MemoryLimitError) Is(target error) bool { return target == ErrMemoryLimit }

// Unwrap returns the worker's *[WorkerExitError].
func (e *MemoryLimitError) Unwrap() error {
	if e.Exit == nil {
		return nil // not a nil *WorkerExitError in an interface
	}
	return e.Exit
}

// mib writes a size in bytes as people read memory: "200 MiB", "612.4 MiB",
// or "4096 bytes" below a mebibyte.
func mib(n int64) string {
	switch {
	case n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d bytes", n)
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
		return &RemoteError{Task: task, Message: it.Message, Errs: errcode.Errors(it.Codes)}
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
