package procpool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/internal/executable"
)

// Slurm returns a [Launcher] that runs each worker as one Slurm task,
// started with srun:
//
//	srun --ntasks=1 --nodes=1 --unbuffered --quiet --cpus-per-task=N ... program --procpool-worker=...
//
// Inside an allocation (SLURM_JOB_ID is set, as under sbatch or salloc, in
// this process's environment or in [Config.Env]) each worker is a job step of
// it, and the workers are spread over its nodes in turn: worker i runs on the
// allocation's node i mod n. Outside one, each worker is a job of its own,
// which [SlurmPartition], [SlurmTimeLimit] and [SlurmAccount] shape;
// [SlurmArgs] adds any other srun arguments. Each worker gets
// [Config.WorkerGOMAXPROCS] CPUs (--cpus-per-task), or [SlurmCPUs], or one,
// and as many for its GOMAXPROCS.
//
// By default the program on the nodes is this program's own path, as on a
// cluster whose nodes share a filesystem; [SlurmProgram] names another path,
// and [SlurmShipBinary] copies this very program to the nodes with Slurm's
// sbcast instead.
//
// A worker's death is told in Slurm's words: the exit code or signal is the
// task's (not srun's), [WorkerExitError.Host] and [WorkerStats.Host] are its
// node, and a job cancelled with scancel, a step killed for its time limit or
// a node that fails or is set down is the death of its workers under
// [Config.OnCrash], with a [WorkerExitError.Reason] that says so. A worker
// never outlives its pool: when the pool kills a worker, or the program dies
// without closing it (even by SIGKILL), its job or step is cancelled with
// scancel.
//
// The launcher names its jobs (or steps) "procpool.<random>.<pid>", and
// gives srun a --prolog of its own, which reports the job step and node of
// each worker (and ships the program): a SrunProlog of the cluster's
// configuration does not run for the workers' steps. Slurm's commands (srun,
// scancel, squeue, scontrol, sbcast) must be in PATH, and they see the
// pool's environment, so [Config.Env] may set SLURM_CONF.
func Slurm(workers int, opts ...SlurmOption) Launcher {
	l := &slurmLauncher{workers: workers}
	for _, o := range opts {
		o(l)
	}
	return l
}

// A SlurmOption configures a [Slurm] launcher.
type SlurmOption func(*slurmLauncher)

// SlurmPartition runs the workers' jobs in a partition (srun --partition),
// outside an allocation.
func SlurmPartition(name string) SlurmOption {
	return func(l *slurmLauncher) { l.partition = name }
}

// SlurmAccount charges the workers' jobs to an account (srun --account),
// outside an allocation.
func SlurmAccount(name string) SlurmOption {
	return func(l *slurmLauncher) { l.account = name }
}

// SlurmTimeLimit bounds each worker's job, or its step in an allocation
// (srun --time, which Slurm counts in whole minutes). A worker killed for it
// is a death under [Config.OnCrash], whose reason says so.
func SlurmTimeLimit(d time.Duration) SlurmOption {
	return func(l *slurmLauncher) { l.timeLimit = d }
}

// SlurmCPUs is the number of CPUs of each worker (srun --cpus-per-task), and
// its GOMAXPROCS, unless [Config.WorkerGOMAXPROCS] sets both. Default 1.
func SlurmCPUs(n int) SlurmOption {
	return func(l *slurmLauncher) { l.cpus = n }
}

// SlurmArgs adds arguments for srun, such as "--constraint=avx512",
// "--mem=4G", "--qos=debug" or "--overlap". They come after the options
// that [SlurmPartition], [SlurmAccount], [SlurmTimeLimit] and [SlurmCPUs]
// set, and so win over them, and before procpool's own (one task on one
// node, unbuffered, quiet, the job name and the prolog).
func SlurmArgs(args ...string) SlurmOption {
	return func(l *slurmLauncher) { l.args = append(l.args, args...) }
}

// SlurmProgram is the path of the worker program on the nodes: a build of
// this program. Default: this program's own path.
func SlurmProgram(path string) SlurmOption {
	return func(l *slurmLauncher) { l.program = path }
}

// SlurmShipBinary copies this program to each node that runs a worker, with
// Slurm's sbcast, into dir there (default "/tmp"; it must exist on the
// nodes) as procpool-<its SHA-256>. The first worker a pool starts on a node
// ships it; on the node the copy is checked against the hash before it is
// put in place, and a copy there that is not the user's own file is refused.
// Later workers of the pool on that node run the same copy. The nodes must
// have the same operating system and architecture as this machine, and
// sha256sum (or shasum).
func SlurmShipBinary(dir string) SlurmOption {
	return func(l *slurmLauncher) {
		l.ship = true
		l.shipDir = dir
		if l.shipDir == "" {
			l.shipDir = "/tmp"
		}
	}
}

type slurmLauncher struct {
	workers   int
	partition string
	account   string
	timeLimit time.Duration
	cpus      int
	args      []string
	program   string
	ship      bool
	shipDir   string

	mu       sync.Mutex
	runs     map[context.Context]*slurmRun // the pools it serves, by their context
	reported map[int]*slurmWorker          // by srun's pid, once its prolog reported
}

// slurmRun is what a Slurm launcher keeps for one pool it serves.
type slurmRun struct {
	log    hclog.Logger
	env    []string          // the pool's environment, for Slurm's commands
	srun   string            // srun's path
	alloc  string            // the allocation's job id, or "" outside one
	nodes  []string          // the allocation's nodes
	cpus   int               // --cpus-per-task
	dir    string            // private: the prolog, reports/, shipped/
	prefix string            // of the job names: "procpool.<random>"
	digest executable.Digest // of the program to ship
	exe    string            // the program to ship, as the prolog can read it

	guard   *exec.Cmd // cancels what is left if this program dies
	guardIn *os.File
	killed  atomic.Bool // the pool killed a worker's srun
}

// slurmWorker is a worker's job step and node, as its prolog reported them.
type slurmWorker struct {
	run  *slurmRun
	job  string
	step string
	node string
}

// id is the worker's job ("12") outside an allocation, or its step ("12.3").
func (w *slurmWorker) id() string {
	if w.run.alloc != "" {
		return w.job + "." + w.step
	}
	return w.job
}

func (l *slurmLauncher) Workers() int { return l.workers }

func (l *slurmLauncher) String() string {
	if l.partition != "" {
		return "slurm partition " + l.partition
	}
	return "slurm"
}

// workerCPUs is each worker's GOMAXPROCS when Config.WorkerGOMAXPROCS does
// not set it: its CPUs in Slurm.
func (l *slurmLauncher) workerCPUs() int { return max(l.cpus, 1) }

// prepare checks that srun is there, reads the allocation, writes the
// prolog, and starts the guard that cancels the workers' jobs if this
// program dies without closing the pool.
func (l *slurmLauncher) prepare(ctx context.Context, p *Pool) error {
	srun, err := exec.LookPath("srun")
	if err != nil {
		return fmt.Errorf("srun is not in PATH: install Slurm's client commands (Debian: slurm-client): %w", err)
	}
	r := &slurmRun{log: p.log.Named("slurm"), env: p.env, srun: srun, cpus: p.userGOMAXPROCS}
	if r.cpus <= 0 {
		r.cpus = l.workerCPUs()
	}
	r.alloc = lookupEnv(r.env, "SLURM_JOB_ID")
	if r.alloc != "" {
		if r.nodes, err = r.allocationNodes(ctx); err != nil {
			return err
		}
	}
	if l.ship {
		if r.digest, err = executable.SHA256(); err != nil {
			return fmt.Errorf("ship the program: %w", err)
		}
		if r.exe, err = executable.Path(); err != nil {
			return fmt.Errorf("ship the program: %w", err)
		}
		if r.exe == "/proc/self/exe" {
			// What sbcast reads, in the prolog: this very program.
			r.exe = fmt.Sprintf("/proc/%d/exe", os.Getpid())
		}
	}
	var b [6]byte
	rand.Read(b[:])
	r.prefix = "procpool." + hex.EncodeToString(b[:])
	if r.dir, err = os.MkdirTemp("", "procpool-slurm-"); err != nil {
		return err
	}
	for _, d := range []string{"reports", "shipped"} {
		if err := os.Mkdir(filepath.Join(r.dir, d), 0o700); err != nil {
			os.RemoveAll(r.dir)
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(r.dir, "prolog"), []byte(slurmProlog(r.dir)), 0o700); err != nil {
		os.RemoveAll(r.dir)
		return err
	}
	if err := r.startGuard(); err != nil {
		os.RemoveAll(r.dir)
		return err
	}
	l.mu.Lock()
	if l.runs == nil {
		l.runs = map[context.Context]*slurmRun{}
		l.reported = map[int]*slurmWorker{}
	}
	l.runs[ctx] = r
	l.mu.Unlock()
	if r.alloc != "" {
		r.log.Debug("workers run as job steps of the allocation", "job", r.alloc, "nodes", r.nodes)
	}
	return nil
}

// allocationNodes lists the nodes of the allocation this program runs in:
// SLURM_JOB_NODELIST, as sbatch and salloc set it, or else what squeue says
// of the job.
func (r *slurmRun) allocationNodes(ctx context.Context) ([]string, error) {
	list := lookupEnv(r.env, "SLURM_JOB_NODELIST")
	if list == "" {
		out, err := r.command(ctx, "squeue", "-h", "-j", r.alloc, "-o", "%N").Output()
		if list = strings.TrimSpace(string(out)); err != nil || list == "" {
			return nil, fmt.Errorf("SLURM_JOB_ID is %s, but SLURM_JOB_NODELIST is not set and squeue does not list the job's nodes (is it running?): %v%s", r.alloc, err, exitStderr(err))
		}
	}
	out, err := r.command(ctx, "scontrol", "show", "hostnames", list).Output()
	nodes := strings.Fields(string(out))
	if err != nil || len(nodes) == 0 {
		return nil, fmt.Errorf("the nodes of allocation %s: scontrol show hostnames %s: %v%s", r.alloc, list, err, exitStderr(err))
	}
	return nodes, nil
}

// command is one of Slurm's commands, with the pool's environment.
func (r *slurmRun) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.env
	return cmd
}

// exitStderr is ": <stderr>" of a command that failed, or "".
func exitStderr(err error) string {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return ": " + strings.TrimSpace(string(ee.Stderr))
	}
	return ""
}

// slurmProlog is the srun prolog of a pool's workers, which srun runs on
// this machine once it has the worker's job step, before it starts it. It
// reports the step and node to the pool, in reports/<srun's pid>; and with
// SlurmShipBinary, the first worker on a node copies the program there
// with sbcast (shipped/<node> marks the nodes done, shipped/<node>.lock the
// node being shipped to).
func slurmProlog(dir string) string {
	return `#!/bin/sh
# procpool: srun runs this for a worker's job step before it starts it.
d=` + shellQuote(dir) + `
n=${PROCPOOL_SLURM_NODE:-$SLURM_NODELIST}
printf '%s %s %s\n' "$SLURM_JOB_ID" "$SLURM_STEP_ID" "$n" >"$d/reports/.$PPID" && mv -f "$d/reports/.$PPID" "$d/reports/$PPID"
[ -n "$PROCPOOL_SLURM_SHIP" ] || exit 0
m=$d/shipped/$n
i=0
until [ -e "$m" ]; do
	if mkdir "$m.lock" 2>/dev/null; then
		if sbcast -f -j "$SLURM_JOB_ID.$SLURM_STEP_ID" "$PROCPOOL_SLURM_SHIP" "$PROCPOOL_SLURM_SHIP_TO/.procpool-$PROCPOOL_SLURM_SHA256.$SLURM_JOB_ID.$SLURM_STEP_ID"; then
			: >"$m"
			rmdir "$m.lock"
			exit 0
		fi
		rmdir "$m.lock"
		echo "procpool: sbcast could not copy the program to $PROCPOOL_SLURM_SHIP_TO on $n" >&2
		exit 1
	fi
	i=$((i+1))
	[ "$i" -lt 1200 ] || { echo "procpool: gave up waiting for another worker to ship the program to $n" >&2; exit 1; }
	sleep 0.05
done`
}

// slurmNodeScript runs a shipped program on the node: $1 the folder, $2 its
// SHA-256, then the worker's arguments. ours tells a file of this user that
// is no symbolic link. If this step's prolog made a copy, it is checked
// against the hash and put in place, unless another worker put one there
// already (a file in place is never replaced: a worker may be running it);
// a worker whose prolog found the node done waits a moment for the copy
// another worker is checking. It runs the program if it is ours, in a
// folder no other user can swap it in.
const slurmNodeScript = `d=$1 h=$2; shift 2
f=$d/procpool-$h
u=$d/.procpool-$h.$SLURM_JOB_ID.$SLURM_STEP_ID
ours() { [ ! -L "$1" ] && [ -O "$1" ]; }
m=$(ls -ldn "$d") || exit 126
o=$(echo "$m" | awk '{print $3}')
if [ "$o" != "$(id -u)" ] && [ "$o" != 0 ]; then
	echo "procpool: the folder $d on $SLURMD_NODENAME belongs to uid $o, who could swap the program: refused" >&2
	exit 126
fi
case $m in
?????????[tT]*) ;;
?????w*|????????w*)
	echo "procpool: the folder $d on $SLURMD_NODENAME is writable by others without the sticky bit (${m%% *}), who could swap the program: refused" >&2
	exit 126;;
esac
if [ -e "$u" ] || [ -L "$u" ]; then
	if ours "$f" && [ -x "$f" ]; then
		rm -f "$u"
	elif ! ours "$u"; then
		echo "procpool: $u on $SLURMD_NODENAME is not a file of this user: refused" >&2
		exit 126
	else
		if command -v sha256sum >/dev/null 2>&1; then s=$(sha256sum "$u"); else s=$(shasum -a 256 "$u"); fi
		if [ "${s%% *}" != "$h" ]; then
			rm -f "$u"
			echo "procpool: the copy sbcast made at $u on $SLURMD_NODENAME does not match the program's SHA-256 (got ${s%% *})" >&2
			exit 126
		fi
		chmod 700 "$u"
		# A link, not a rename: a worker of a node that shares the folder
		# may have put its copy in place meanwhile, and runs it.
		if ! ln "$u" "$f" 2>/dev/null && ! { ours "$f" && [ -x "$f" ]; }; then
			echo "procpool: cannot put the program in place at $f on $SLURMD_NODENAME" >&2
			rm -f "$u"
			exit 126
		fi
		rm -f "$u"
	fi
fi
i=0
while [ ! -e "$f" ] && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i+1)); done
if ! ours "$f" || [ ! -x "$f" ]; then
	echo "procpool: no shipped program at $f on $SLURMD_NODENAME" >&2
	exit 127
fi
exec "$f" "$@"`

func (l *slurmLauncher) Command(ctx context.Context, spec WorkerSpec) (*exec.Cmd, error) {
	l.mu.Lock()
	r := l.runs[ctx]
	l.mu.Unlock()
	if r == nil {
		return nil, fmt.Errorf("procpool: the Slurm launcher was not prepared for this pool")
	}
	// sh gives srun a job name with its own pid, which is the pid the pool
	// knows the worker by: if srun is killed before its prolog reports the
	// job, the job can still be found and cancelled.
	argv := []string{"/bin/sh", "-c", `exec "$0" --job-name=` + r.prefix + `.$$ "$@"`, r.srun}
	if r.alloc == "" {
		if l.partition != "" {
			argv = append(argv, "--partition="+l.partition)
		}
		if l.account != "" {
			argv = append(argv, "--account="+l.account)
		}
	}
	if l.timeLimit > 0 {
		s := int((l.timeLimit + time.Second - 1) / time.Second)
		argv = append(argv, fmt.Sprintf("--time=%d:%02d:%02d", s/3600, s/60%60, s%60))
	}
	argv = append(argv, "--cpus-per-task="+strconv.Itoa(r.cpus))
	argv = append(argv, l.args...)
	argv = append(argv, "--ntasks=1", "--nodes=1", "--ntasks-per-node=1", "--unbuffered", "--quiet", "--mpi=none",
		"--prolog="+filepath.Join(r.dir, "prolog"))
	env := slices.Clip(spec.Env)
	if r.alloc != "" {
		node := r.nodes[spec.Index%len(r.nodes)]
		argv = append(argv, "--nodelist="+node)
		env = append(env, "PROCPOOL_SLURM_NODE="+node)
	}
	switch {
	case l.ship && l.program == "":
		argv = append(argv, "/bin/sh", "-c", slurmNodeScript, "procpool", l.shipDir, r.digest.SHA256)
		env = append(env,
			"PROCPOOL_SLURM_SHIP="+r.exe,
			"PROCPOOL_SLURM_SHIP_TO="+l.shipDir,
			"PROCPOOL_SLURM_SHA256="+r.digest.SHA256)
	case l.program != "":
		argv = append(argv, l.program)
	default:
		argv = append(argv, selfPath())
	}
	cmd := exec.Command(argv[0], append(argv[1:], spec.Args...)...)
	cmd.Env = env
	return cmd, cmd.Err
}

// worker returns what the prolog reported of the worker whose srun has pid,
// or nil if it has not reported yet. The answer is kept: it is asked under
// the pool's lock, for Stats, and must be quick.
func (l *slurmLauncher) worker(pid int) *slurmWorker {
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.reported[pid]; w != nil {
		return w
	}
	for _, r := range l.runs {
		b, err := os.ReadFile(filepath.Join(r.dir, "reports", strconv.Itoa(pid)))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) != 3 {
			continue
		}
		w := &slurmWorker{run: r, job: f[0], step: f[1], node: f[2]}
		l.reported[pid] = w
		return w
	}
	return nil
}

// hostOf is the node of the worker whose srun has pid, once known.
func (l *slurmLauncher) hostOf(pid int) string {
	if w := l.worker(pid); w != nil {
		return w.node
	}
	return ""
}
