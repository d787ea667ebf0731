package procpool

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procpool/procpool/internal/wire"
)

// A Launcher starts worker processes. The pool connects each worker's stdin,
// stdout and stderr to its own pipes, so a worker can run wherever a command
// reaches with its standard streams attached: on this machine (the default),
// over SSH (see SSH), or through srun, kubectl exec -i or docker exec -i (see
// Exec).
type Launcher interface {
	// Workers is the number of workers the pool runs through the launcher.
	// In [Config.Launcher], 0 means [Config.Workers].
	Workers() int

	// Command returns the command that starts one worker. The program it
	// runs must be a build of this program (one that registers the same
	// tasks and calls procpool.Main) and must receive spec.Args as its
	// arguments. The pool sets the command's standard streams and runs it
	// in a process group of its own that is killed with the pool. ctx ends
	// when the pool is terminated or closed.
	Command(ctx context.Context, spec WorkerSpec) (*exec.Cmd, error)

	// String says where the workers run, for logs and errors: "ssh build1".
	String() string
}

// WorkerSpec describes the worker a Launcher is asked to start.
type WorkerSpec struct {
	// Index is the worker's place among the launcher's workers, from 0 to
	// Workers()-1. A replacement has the index of the worker it replaces.
	Index int
	// Executable is the path of this program on this machine.
	Executable string
	// Args are the worker's arguments: the role marker, which carries the
	// protocol version. SSH and schedulers do not forward the environment;
	// the arguments always arrive.
	Args []string
	// Env is the environment of a worker on this machine: this process's,
	// with the role marker, GOMAXPROCS and [Config.Env]. A launcher whose
	// workers run elsewhere may drop it: the handshake carries
	// Config.Env and GOMAXPROCS to every worker.
	Env []string
}

// localLauncher starts this executable, or [Config.Command], on this machine.
// A worker of this executable is named in ps for what it is (see
// workerArgv0); a Command keeps its own argv[0].
type localLauncher struct {
	command []string // nil: this executable
	workers int
}

func (l *localLauncher) Workers() int   { return l.workers }
func (l *localLauncher) String() string { return "local" }

func (l *localLauncher) Command(_ context.Context, spec WorkerSpec) (*exec.Cmd, error) {
	argv := l.command
	if len(argv) == 0 {
		argv = []string{spec.Executable}
	}
	cmd := exec.Command(argv[0], slices.Concat(argv[1:], spec.Args)...)
	if cmd.Err != nil {
		return nil, cmd.Err // a bare name not found in PATH
	}
	if len(l.command) == 0 {
		cmd.Args[0] = workerArgv0(spec.Index)
	}
	cmd.Env = spec.Env
	return cmd, nil
}

// workerArgv0 is the argv[0] of a worker of this executable: this program's
// name and the worker's role, so that ps shows
//
//	myserver [procpool worker 3] --procpool-worker=2
//
// rather than /proc/self/exe, which the worker is started from. The worker
// reads its role from its other arguments, never from argv[0].
func workerArgv0(index int) string {
	prog := "procpool"
	if len(os.Args) > 0 && os.Args[0] != "" {
		prog = filepath.Base(os.Args[0])
	}
	return fmt.Sprintf("%s [procpool worker %d]", prog, index)
}

// Exec returns a Launcher that starts each of its workers with the command
// argv followed by the worker's arguments (WorkerSpec.Args). argv ends with
// the worker program as the launcher's target sees it:
//
//	procpool.Exec(4, "kubectl", "exec", "-i", "my-pod", "--", "/app/server")
//	procpool.Exec(4, "docker", "exec", "-i", "my-container", "/app/server")
//	procpool.Exec(8, "srun", "--ntasks=1", "--cpus-per-task=1", "/shared/bin/server")
//
// The command runs with this process's environment; what reaches the worker
// is up to the launcher. [Config.Env] and GOMAXPROCS travel in the handshake.
func Exec(workers int, argv ...string) Launcher {
	return &execLauncher{argv: slices.Clone(argv), workers: workers}
}

type execLauncher struct {
	argv    []string
	workers int
}

func (l *execLauncher) Workers() int   { return l.workers }
func (l *execLauncher) String() string { return strings.Join(l.argv, " ") }

func (l *execLauncher) Command(_ context.Context, spec WorkerSpec) (*exec.Cmd, error) {
	if len(l.argv) == 0 {
		return nil, fmt.Errorf("procpool.Exec: empty command")
	}
	cmd := exec.Command(l.argv[0], slices.Concat(l.argv[1:], spec.Args)...)
	return cmd, cmd.Err
}

// preparer is a launcher with work to do once per pool before its workers
// start, such as shipping the program to a host.
type preparer interface {
	prepare(ctx context.Context, p *Pool) error
}

// exitDecoder is a launcher whose command's exit status encodes the worker's
// in its own way; it corrects e, which holds the launcher command's status,
// knowing why the connection ended.
type exitDecoder interface {
	decodeExit(e *WorkerExitError, cause endCause)
}

// A placer is a launcher that learns where each of its workers runs only
// once it has started, such as the node a scheduler gave it, and that hears
// of each worker's end. The pool names a worker by the pid of the launcher's
// command on this machine.
type placer interface {
	// hostOf returns where the worker runs, or "" while the launcher does
	// not know. It must be quick: the pool's lock may be held.
	hostOf(cmdPID int) string
	// workerEnded reports the end of the worker, with its command's own
	// exit status in e, before decodeExit reads it.
	workerEnded(cmdPID int, e *WorkerExitError, cause endCause)
}

// A cpuLauncher gives each worker a number of CPUs, such as a scheduler's
// allocation: the workers' GOMAXPROCS, unless Config.WorkerGOMAXPROCS sets
// it.
type cpuLauncher interface {
	workerCPUs() int
}

// A finisher is a launcher with work to do once a pool it prepared has no
// worker left, such as stopping what prepare started. ctx is the pool's, as
// prepare had it.
type finisher interface {
	finish(ctx context.Context)
}

// launchGroup is one launcher's share of the pool's worker slots, with the
// back-off of a launcher whose workers keep failing to start.
type launchGroup struct {
	launcher Launcher
	first    int  // the slot of its worker 0
	workers  int  // how many slots it fills
	local    bool // the default launcher: workers are our children, whose /proc we can read

	// Guarded by pool.mu.
	failures int // workers in a row that died before their handshake
}

func (g *launchGroup) String() string { return fmt.Sprintf("%d × %s", g.workers, g.launcher) }

// host says where the group's workers run: "" for the default launcher's,
// else the launcher ("ssh build1").
func (g *launchGroup) host() string {
	if g.local {
		return ""
	}
	return g.launcher.String()
}

// hostOf says where the worker of the group whose launcher command has
// cmdPID runs: its launcher's word if it is a placer that knows, else the
// group's host.
func (g *launchGroup) hostOf(cmdPID int) string {
	if pl, ok := g.launcher.(placer); ok {
		if h := pl.hostOf(cmdPID); h != "" {
			return h
		}
	}
	return g.host()
}

// backoff is how long a replacement waits after failures workers of its
// launcher died in a row before their handshake: nothing after the first,
// then doubling from 100ms to 10s.
func backoff(failures int) time.Duration {
	if failures < 2 {
		return 0
	}
	return min(100*time.Millisecond<<min(failures-2, 10), 10*time.Second)
}

// groups lays out the pool's slots: [Config.Launcher]'s workers first, then
// each of [Config.Remote]'s.
func groups(cfg Config, command []string) []*launchGroup {
	var gs []*launchGroup
	n := 0
	add := func(l Launcher, workers int, local bool) {
		if workers > 0 {
			gs = append(gs, &launchGroup{launcher: l, first: n, workers: workers, local: local})
			n += workers
		}
	}
	if cfg.Launcher != nil {
		add(cfg.Launcher, primaryWorkers(cfg), false)
	} else {
		add(&localLauncher{command: command, workers: primaryWorkers(cfg)}, primaryWorkers(cfg), true)
	}
	for _, l := range cfg.Remote {
		add(l, l.Workers(), false)
	}
	return gs
}

// primaryWorkers is the number of workers of [Config.Launcher] (or of the
// local default): its own count, else [Config.Workers], else one per CPU
// unless Remote supplies the workers.
func primaryWorkers(cfg Config) int {
	if cfg.Launcher != nil && cfg.Launcher.Workers() > 0 {
		return cfg.Launcher.Workers()
	}
	if cfg.Workers > 0 || len(cfg.Remote) > 0 {
		return max(cfg.Workers, 0)
	}
	return cpus()
}

// groupOf returns the group of a slot.
func (p *Pool) groupOf(slot int) *launchGroup {
	for i := len(p.groups) - 1; i >= 0; i-- {
		if slot >= p.groups[i].first {
			return p.groups[i]
		}
	}
	panic("procpool: slot " + strconv.Itoa(slot) + " has no launcher")
}

// workerSpec is what the launcher of slot is asked to start.
func (p *Pool) workerSpec(slot int) WorkerSpec {
	g := p.groupOf(slot)
	return WorkerSpec{Index: slot - g.first, Executable: p.executable, Args: []string{wire.RoleArg()}, Env: p.env}
}

// setupFor fills in the part of the handshake that replaces the environment for
// workers a launcher started: GOMAXPROCS, or the workers sharing a host.
func (p *Pool) setupFor(g *launchGroup, s *wire.Setup) {
	s.Env = p.cfg.Env
	switch c, isCPU := g.launcher.(cpuLauncher); {
	case g.local || p.userGOMAXPROCS > 0:
		s.GOMAXPROCS = p.cfg.WorkerGOMAXPROCS
	case isCPU:
		s.GOMAXPROCS = c.workerCPUs()
	default:
		s.Share = g.workers
	}
}

// prepareLaunchers runs every launcher's preparation at once, and returns the
// first failure. A finisher's finish runs once the pool has shut down and
// its last worker is gone, whether or not its preparation succeeded.
func (p *Pool) prepareLaunchers(ctx context.Context) error {
	errs := make(chan error, len(p.groups))
	n := 0
	for _, g := range p.groups {
		if f, ok := g.launcher.(finisher); ok {
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				<-ctx.Done()
				p.mu.Lock()
				for len(p.members) > 0 || p.spawning > 0 {
					p.settled.Wait()
				}
				p.mu.Unlock()
				f.finish(ctx)
			}()
		}
		if pr, ok := g.launcher.(preparer); ok {
			n++
			go func() {
				if err := pr.prepare(ctx, p); err != nil {
					errs <- fmt.Errorf("%s: %w", g.launcher, err)
					return
				}
				errs <- nil
			}()
		}
	}
	var first error
	for range n {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// selfPath is this executable's own path, as another host would see it if
// the same file were there: the default program of remote launchers.
func selfPath() string {
	if exe, err := os.Executable(); err == nil {
		return exe
	}
	return os.Args[0]
}
