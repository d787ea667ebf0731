package procpool

import (
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/wire"
)

// CrashPolicy says what a pool does when a worker dies abruptly.
type CrashPolicy int

const (
	// Break fails every pending task with [ErrBrokenPool] and refuses new
	// work, like Python's ProcessPoolExecutor.
	Break CrashPolicy = iota
	// Respawn replaces the dead worker and fails (or retries) only the task
	// it was running, like multiprocessing.Pool without its hang.
	Respawn
)

func (c CrashPolicy) String() string {
	switch c {
	case Break:
		return "break"
	case Respawn:
		return "respawn"
	}
	return fmt.Sprintf("CrashPolicy(%d)", int(c))
}

// Backend says where a pool runs its tasks.
type Backend int

const (
	// Processes runs tasks in worker processes: isolation at the price of
	// a pipe round trip.
	Processes Backend = iota
	// Goroutines runs the same tasks in goroutines of this process, with
	// the same API and errors. Arguments and results still pass through
	// the codec, so a task sees a copy, as it would in a worker, and a
	// value that could not cross a pipe fails here too. A panic in the task
	// is a *[RemoteError]; a crash (a panic in a goroutine the task started,
	// os.Exit, a fatal error) ends the whole program. A goroutine cannot be
	// killed: a call that times out or is cancelled fails on time, and a
	// task that ignores its context is left running, detached from the
	// pool, while a fresh goroutine takes its place.
	Goroutines
)

func (b Backend) String() string {
	switch b {
	case Processes:
		return "processes"
	case Goroutines:
		return "goroutines"
	}
	return fmt.Sprintf("Backend(%d)", int(b))
}

// local is the state of a goroutine worker, the Goroutines backend's

// Config configures a Pool. The zero value is ready to use: a zero field
// means its default. New rejects a negative number in any field with a
// *[ConfigError], as it does an OnCrash or Backend that is none of the
// defined values.
type Config struct {
	// Workers is the number of workers Launcher starts, if it does not say:
	// by default, worker processes on this machine. 0 means one per CPU
	// available to this process, or none when Remote is set.
	Workers int

	// Launcher starts the workers. Default: this executable (or Command)
	// on this machine, as a child process. See SSH and Exec for others.
	Launcher Launcher

	// Remote adds the workers of more launchers to those of Launcher, each
	// launcher with its own count: SSH("build1", 8), SSH("build2", 8).
	// Their workers are equal members of the pool; a lost host is the
	// death of its workers, under OnCrash.
	Remote []Launcher

	// OnCrash is what happens when a worker dies abruptly.
	OnCrash CrashPolicy

	// Backend is where tasks run: Processes (the default) or Goroutines.
	Backend Backend

	// Logger receives the pool's log lines and every worker's stderr, one
	// sub-logger per worker. Default: an hclog logger named "procpool" whose
	// level comes from the PROCPOOL_LOG_LEVEL environment variable.
	Logger hclog.Logger

	// MaxFrameSize bounds one message on the pipes, in bytes, and so the
	// size of one encoded argument or result. Default 64 MiB.
	MaxFrameSize int

	// MaxChunkBytes bounds the encoded arguments of one Map chunk, whatever
	// the chunk size. Default 1 MiB.
	MaxChunkBytes int

	// Prefetch is the least number of chunks a worker holds at once, so
	// that it finds the next one waiting when it finishes one, whatever
	// they cost. When chunks take a worker only microseconds, it holds
	// more, enough to cover a round trip through the parent, up to 64.
	//
	// Default (0): 2, but a worker takes a second chunk only while the one
	// it runs has been measured to be quick, and has not run far longer
	// than measured; otherwise the chunk waits in the parent for the first
	// worker to be free, as in Python's multiprocessing.Pool, rather than
	// behind a long call.
	Prefetch int

	// WorkerGOMAXPROCS is GOMAXPROCS in each worker. Default: the CPUs of
	// each machine divided among the workers there, at least 1, so they do
	// not oversubscribe it.
	WorkerGOMAXPROCS int

	// StartTimeout bounds a worker's start and handshake. Default 10s.
	StartTimeout time.Duration

	// StopTimeout bounds how long Close waits for an idle worker to exit
	// before killing it. Default 5s.
	StopTimeout time.Duration

	// Command is the command line of a worker started by the default
	// launcher. Default: this executable, whose workers show in ps as
	// "<program> [procpool worker N]" (argv[0]; the file run is
	// /proc/self/exe). The program Command runs must call procpool.Main;
	// it gets the role marker as one more argument, and its argv[0] is
	// left as given.
	Command []string

	// Env is added to the environment each worker inherits.
	Env []string

	// Retries is how many times a call lost with a dying worker is run
	// again, under Respawn, before it fails with [ErrWorkerLost]. Only the
	// call that was running is lost (see "When a worker dies" in the
	// package documentation); where the pool cannot tell which, a lost
	// chunk is retried call by call, so one poison call cannot sink its
	// neighbours.
	Retries int

	// MaxConsecutiveDeaths is the crash-loop guard of Respawn: after that
	// many deaths with no call completing in between, the pool breaks with
	// the last death as the cause. Default: 2 × Workers, at least 5.
	MaxConsecutiveDeaths int

	// MaxTasksPerWorker retires a worker once it has been given that many
	// calls, and starts a fresh one; 0 means never.
	MaxTasksPerWorker int

	// MaxMemoryPerWorker bounds the resident memory of each worker, in
	// bytes; 0 means no bound. The pool reads it every 100 ms while a worker
	// runs a call, and after each run:
	//
	//   - A call that takes its worker over the limit while it runs is
	//     stopped: the pool kills the worker (SIGKILL) and replaces it, under
	//     either [Config.OnCrash] (the pool does not break). The call fails
	//     with [ErrMemoryLimit], a *[MemoryLimitError] that says how far the
	//     worker grew, is not run again, whatever Retries, and counts in
	//     [Stats.MemoryKills]; the other calls the worker held keep their
	//     results or run on another worker, as after any death. The kill is
	//     the pool's, not a crash: it is not in Stats.Deaths, nor counts
	//     towards MaxConsecutiveDeaths. Between two reads a call may grow
	//     past the limit by what it allocates in 100 ms. A call is charged
	//     for what it adds after the pool first sees it run, within 100 ms
	//     of its start, for a worker's memory is all its calls': one that
	//     finds its worker over the limit then (left so by the calls before
	//     it, or by its own first moments) is killed only once it adds a
	//     further quarter of the limit.
	//   - A worker over the limit after a run, left so by its calls, is
	//     retired: it takes no more work and is replaced once it has run
	//     what it holds.
	//
	// A worker that starts above the limit is exempt from both, lest the
	// pool replace it forever. The memory is read from /proc on Linux,
	// proc_info on macOS and the kern.proc sysctl on FreeBSD, for the
	// default launcher's workers only, children of this process: those of
	// other launchers (SSH, Slurm, Exec) are not bounded, nor are the
	// Goroutines backend's, whose memory is the program's. Where it cannot
	// be read, New fails with an error matching [errors.ErrUnsupported]
	// rather than run without the limit.
	MaxMemoryPerWorker int64

	// Initializer runs once in every worker, replacements too, before it
	// takes any task: make it with [Task.Bind].
	Initializer Call

	// TaskTimeout bounds each call; 0 means no bound. A call that runs past
	// it fails with [ErrTaskTimeout] and its context is cancelled in the
	// worker; a worker that has not stopped it KillGrace later gets
	// SIGTERM, then SIGKILL, and is replaced.
	TaskTimeout time.Duration

	// KillGrace is how long a worker may take to stop an abandoned call
	// (timed out or cancelled) before SIGTERM, and to exit on SIGTERM
	// before SIGKILL. Default 1s.
	KillGrace time.Duration
}

// cpus is the number of CPUs this process may use.
func cpus() int { return runtime.GOMAXPROCS(0) }

// withDefaults returns c with every zero field set.
func (c Config) withDefaults() Config {
	// From here on Workers counts every worker, whichever launcher runs it.
	local := primaryWorkers(c)
	c.Workers = local
	for _, l := range c.Remote {
		c.Workers += max(l.Workers(), 0)
	}
	if c.Logger == nil {
		c.Logger = hclog.New(&hclog.LoggerOptions{
			Name:  "procpool",
			Level: hclog.LevelFromString(os.Getenv("PROCPOOL_LOG_LEVEL")),
		})
	}
	if c.MaxFrameSize <= 0 {
		c.MaxFrameSize = wire.DefaultMaxFrame
	}
	if c.MaxChunkBytes <= 0 {
		c.MaxChunkBytes = 1 << 20
	}
	c.MaxChunkBytes = min(c.MaxChunkBytes, c.MaxFrameSize/2)
	if c.WorkerGOMAXPROCS <= 0 {
		c.WorkerGOMAXPROCS = max(1, cpus()/max(1, local))
	}
	if c.StartTimeout <= 0 {
		c.StartTimeout = 10 * time.Second
	}
	if c.MaxConsecutiveDeaths <= 0 {
		c.MaxConsecutiveDeaths = max(5, 2*c.Workers)
	}
	if c.KillGrace <= 0 {
		c.KillGrace = time.Second
	}
	if c.StopTimeout <= 0 {
		c.StopTimeout = 5 * time.Second
	}
	return c
}

// validate rejects what no default can stand for: a negative count, size or
// duration, or a policy or backend that is none of the defined ones. Zero
// always means the default.
func (c *Config) validate() error {
	if c.OnCrash != Break && c.OnCrash != Respawn {
		return &ConfigError{Field: "OnCrash", Value: c.OnCrash, Reason: "not a CrashPolicy: use Break or Respawn"}
	}
	if c.Backend != Processes && c.Backend != Goroutines {
		return &ConfigError{Field: "Backend", Value: c.Backend, Reason: "not a Backend: use Processes or Goroutines"}
	}
	for i, l := range c.Remote {
		if l == nil {
			return &ConfigError{Field: fmt.Sprintf("Remote[%d]", i), Value: l, Reason: "a nil Launcher"}
		}
	}
	for _, f := range []struct {
		field    string
		negative bool
		value    any
	}{
		{"Workers", c.Workers < 0, c.Workers},
		{"MaxFrameSize", c.MaxFrameSize < 0, c.MaxFrameSize},
		{"MaxChunkBytes", c.MaxChunkBytes < 0, c.MaxChunkBytes},
		{"Prefetch", c.Prefetch < 0, c.Prefetch},
		{"WorkerGOMAXPROCS", c.WorkerGOMAXPROCS < 0, c.WorkerGOMAXPROCS},
		{"StartTimeout", c.StartTimeout < 0, c.StartTimeout},
		{"StopTimeout", c.StopTimeout < 0, c.StopTimeout},
		{"Retries", c.Retries < 0, c.Retries},
		{"MaxConsecutiveDeaths", c.MaxConsecutiveDeaths < 0, c.MaxConsecutiveDeaths},
		{"MaxTasksPerWorker", c.MaxTasksPerWorker < 0, c.MaxTasksPerWorker},
		{"MaxMemoryPerWorker", c.MaxMemoryPerWorker < 0, c.MaxMemoryPerWorker},
		{"TaskTimeout", c.TaskTimeout < 0, c.TaskTimeout},
		{"KillGrace", c.KillGrace < 0, c.KillGrace},
	} {
		if f.negative {
			return &ConfigError{Field: f.field, Value: f.value, Reason: "must not be negative"}
		}
	}
	return nil
}
