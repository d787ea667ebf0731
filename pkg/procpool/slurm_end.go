package procpool

// This file is the end of a Slurm worker: no job left behind (the guard,
// cancelling a killed worker's job, the sweep at the pool's end) and how it
// died, in Slurm's words.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// slurmGuard waits on its stdin. "closed" means the pool closed and left
// nothing behind. "sweep" (the pool killed a worker, whose job may have
// been on its way) or the end of its stdin (this program died) make it
// cancel the jobs, or the allocation's steps, whose name has the pool's
// prefix ($1). Either way it removes the pool's private folder ($3).
const slurmGuard = `prefix=$1 alloc=$2 dir=$3
read -r line
if [ "$line" != closed ]; then
	if [ -n "$alloc" ]; then squeue -h -s -j "$alloc" -o '%i %j'; else squeue -h --me -o '%i %j'; fi 2>/dev/null |
	while read -r id name; do case $name in "$prefix".*) echo "$id";; esac; done |
	xargs -r scancel
fi
rm -rf "$dir"`

// startGuard starts the process that cancels what this program leaves in
// Slurm if it dies: in a session of its own, so that a signal to this
// program's process group spares it, and reading a pipe whose other end
// only this process holds.
func (r *slurmRun) startGuard() error {
	in, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer in.Close()
	cmd := exec.Command("/bin/sh", "-c", slurmGuard, "procpool-slurm-guard", r.prefix, r.alloc, r.dir)
	cmd.Env = r.env
	cmd.Stdin = in
	cmd.SysProcAttr = ownSession() // out of the pool's process group: it outlives a SIGKILL of it
	if err := cmd.Start(); err != nil {
		w.Close()
		return fmt.Errorf("start the Slurm guard: %w", err)
	}
	r.guard, r.guardIn = cmd, w
	return nil
}

// finish ends a pool's run once it has no workers: the guard exits, after
// cancelling what may be left if the pool killed a worker, and removes the
// run's folder.
func (l *slurmLauncher) finish(ctx context.Context) {
	l.mu.Lock()
	r := l.runs[ctx]
	delete(l.runs, ctx)
	for pid, w := range l.reported {
		if w.run == r {
			delete(l.reported, pid)
		}
	}
	l.mu.Unlock()
	if r == nil {
		return
	}
	if r.killed.Load() {
		r.guardIn.WriteString("sweep\n")
	} else {
		r.guardIn.WriteString("closed\n")
	}
	r.guardIn.Close()
	if err := r.guard.Wait(); err != nil {
		r.log.Warn("the Slurm guard failed", "error", err)
	}
	os.RemoveAll(r.dir)
}

// workerEnded forgets the worker whose srun had pid, and cancels its job
// or step if srun was killed: srun cannot end a step when it gets SIGKILL,
// and Slurm would let it run on.
func (l *slurmLauncher) workerEnded(pid int, e *WorkerExitError, cause endCause) {
	w := l.worker(pid)
	l.mu.Lock()
	delete(l.reported, pid)
	runs := make([]*slurmRun, 0, len(l.runs))
	for _, r := range l.runs {
		runs = append(runs, r)
	}
	l.mu.Unlock()
	for _, r := range runs {
		os.Remove(filepath.Join(r.dir, "reports", strconv.Itoa(pid)))
	}
	if e.Signal == "" {
		return // srun ended by itself, and its step with it
	}
	for _, r := range runs {
		r.killed.Store(true)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if w != nil {
		w.run.cancel(ctx, []string{w.id()}, "the worker's srun was killed", "job", w.id(), "node", w.node)
		return
	}
	// Killed before its prolog ran: the job (or step) may exist, pending or
	// about to start; it has srun's pid in its name.
	for _, r := range runs {
		r.cancelNamed(ctx, r.prefix+"."+strconv.Itoa(pid))
	}
}

// cancel cancels jobs or steps by id.
func (r *slurmRun) cancel(ctx context.Context, ids []string, why string, kv ...any) {
	if len(ids) == 0 {
		return
	}
	out, err := r.command(ctx, "scancel", ids...).CombinedOutput()
	if err != nil {
		r.log.Warn("scancel failed", append([]any{"ids", ids, "error", err, "output", strings.TrimSpace(string(out))}, kv...)...)
		return
	}
	r.log.Debug("cancelled: "+why, kv...)
}

// cancelNamed cancels the jobs, or the allocation's steps, named name.
func (r *slurmRun) cancelNamed(ctx context.Context, name string) {
	args := []string{"-h", "--me", "-o", "%i %j"}
	if r.alloc != "" {
		args = []string{"-h", "-s", "-j", r.alloc, "-o", "%i %j"}
	}
	out, err := r.command(ctx, "squeue", args...).Output()
	if err != nil {
		r.log.Warn("squeue failed: cannot look for the job of a killed worker", "name", name, "error", err)
		return
	}
	var ids []string
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[1] == name {
			ids = append(ids, f[0])
		}
	}
	r.cancel(ctx, ids, "a killed worker's job, before it reported", "name", name)
}

// Lines that srun and slurmstepd print about a task's end.
var (
	// srun: error: node1: task 0: Exited with exit code 3
	// srun: error: node1: task 0: Killed
	srunTaskEnd = regexp.MustCompile(`(?m)^srun: error: (\S+): task \d+: (.+)$`)
	// slurmstepd-node1: error: *** STEP 12.0 ON node1 CANCELLED AT 2026-12-01T00:12:12 DUE TO TIME LIMIT ***
	slurmCancelled = regexp.MustCompile(`\*\*\* (JOB|STEP) (\S+) ON (\S+) CANCELLED AT \S+(.*?) ?\*\*\*`)
	slurmDueTo     = regexp.MustCompile(`DUE TO ([A-Z][A-Z ]*[A-Z])`)
	// srun: error: Node failure on node1
	srunNodeFailure = regexp.MustCompile(`(?m)^srun: error: Node failure on (\S+)`)
	// slurmstepd-node1: error: execve(): /path: No such file or directory
	slurmExecFailed = regexp.MustCompile(`(?m)^slurmstepd\S*: error: execve\(\): (.+): ([^:\n]+)$`)
	srunError       = regexp.MustCompile(`(?m)^srun: error: (.+)$`)
)

// signalNames maps the text srun prints for a signal ("Killed",
// "Segmentation fault") to its name ("SIGKILL").
var signalNames = func() map[string]string {
	m := map[string]string{}
	for s := syscall.Signal(1); s < 65; s++ {
		if name := signalName(s); name != "" {
			m[strings.ToLower(s.String())] = name
		}
	}
	return m
}()

// decodeExit reads how the task ended from what srun and slurmstepd printed,
// since srun's own exit code hides a signal in 128+n and says nothing of a
// cancelled job or a failed node.
func (l *slurmLauncher) decodeExit(e *WorkerExitError, cause endCause) {
	if e.Signal != "" {
		return // srun itself was killed: by the pool, which said why
	}
	tail := e.Stderr
	node := ""
	if m := srunTaskEnd.FindAllStringSubmatch(tail, -1); m != nil {
		last := m[len(m)-1]
		node = last[1]
		status := strings.TrimSuffix(last[2], " (core dumped)")
		if code, ok := strings.CutPrefix(status, "Exited with exit code "); ok {
			if n, err := strconv.Atoi(code); err == nil {
				e.ExitCode = n
			}
		} else if name, ok := signalNames[strings.ToLower(status)]; ok {
			e.ExitCode, e.Signal = -1, name
		}
	} else if e.ExitCode > 128 && e.ExitCode < 128+65 {
		e.ExitCode, e.Signal = -1, signalName(syscall.Signal(e.ExitCode-128))
	}
	if node != "" && (e.Host == "" || e.Host == l.String()) {
		e.Host = node
	}
	// A node that failed or was set down: srun says so, and slurmstepd may
	// add that it cancelled the step DUE TO NODE FAILURE.
	failed := ""
	if m := srunNodeFailure.FindStringSubmatch(tail); m != nil {
		failed = m[1]
	}
	var cancelled []string // JOB or STEP, its id, its node, why
	if m := slurmCancelled.FindAllStringSubmatch(tail, -1); m != nil {
		last := m[len(m)-1]
		due := ""
		if d := slurmDueTo.FindStringSubmatch(last[4]); d != nil {
			due = d[1]
		}
		cancelled = []string{last[1], last[2], last[3], due}
		if due == "NODE FAILURE" && failed == "" {
			failed = last[3]
		}
	}
	reason := ""
	switch {
	case failed != "":
		reason = fmt.Sprintf("node %s failed or was set down: Slurm ended the job step", failed)
		if e.Host == "" || e.Host == l.String() {
			e.Host = failed
		}
		if e.ExitCode == 0 && e.Signal == "" {
			e.ExitCode = -1 // srun exits 0; the task never exited
		}
	case cancelled != nil:
		what := "job " + cancelled[1]
		if cancelled[0] == "STEP" {
			what = "job step " + cancelled[1]
		}
		switch cancelled[3] {
		case "":
			reason = fmt.Sprintf("Slurm cancelled %s on %s (scancel)", what, cancelled[2])
		case "TIME LIMIT":
			reason = fmt.Sprintf("Slurm killed %s on %s: it reached its time limit", what, cancelled[2])
		default:
			reason = fmt.Sprintf("Slurm cancelled %s on %s because of %s", what, cancelled[2], strings.ToLower(cancelled[3]))
		}
	case slurmExecFailed.MatchString(tail):
		m := slurmExecFailed.FindStringSubmatch(tail)
		reason = fmt.Sprintf("the node cannot run the worker program %s (%s): install a build of this program there and name it with SlurmProgram, or use SlurmShipBinary", m[1], strings.ToLower(m[2]))
	case strings.Contains(tail, "procpool: no shipped program at"):
		l.unship(e.Host)
		reason = "the shipped program is missing on the node; a replacement ships it again"
	case cause == endNoHandshake && node == "" && e.ExitCode != 0:
		reason = "srun could not start the worker"
		if m := srunError.FindAllStringSubmatch(tail, -1); m != nil {
			reason += ": " + m[len(m)-1][1]
		}
	}
	if reason != "" {
		e.Reason = reason
	}
}

// unship forgets that node has the shipped program.
func (l *slurmLauncher) unship(node string) {
	if node == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.runs {
		os.Remove(filepath.Join(r.dir, "shipped", node))
	}
}

// lookupEnv returns the last value of key in env.
func lookupEnv(env []string, key string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], key+"="); ok {
			return v
		}
	}
	return ""
}
