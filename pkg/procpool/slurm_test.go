//go:build unix

package procpool_test

// The Slurm launcher, against a real slurmctld and slurmd on 127.0.0.1.

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/slurmtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// These tests share one cluster (internal/slurmtest) of four nodes, each a
// slurmd on this machine: the default partition "debug" has node1 and node2,
// and "spare" has node3 and node4, for the tests that set a node down. A
// worker is a real process here, a descendant of its node's slurmstepd,
// which the tests can find, kill and watch, and whose job step they read
// from its slurmstepd's name. The subtests run in parallel; a time limit,
// which Slurm enforces only every 30 s or so, is reached in the background
// meanwhile (started by the subtest TimeLimit, so that -run can leave it
// out), and checked once they have ended, before the leak checks.
func TestSlurm(t *testing.T) {
	c := slurmtest.Start(t, slurmtest.Options{
		Nodes: 4,
		Partitions: []slurmtest.Partition{
			{Name: "debug", Nodes: []string{"node1", "node2"}, Default: true},
			{Name: "spare", Nodes: []string{"node3", "node4"}},
		},
	})
	daemons := children()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() {
		// After every subtest: no process of ours but the daemons, no
		// goroutine left, and (checked by the cluster's Stop, which
		// follows) no job in the queue.
		require.Eventually(t, func() bool {
			return len(slices.DeleteFunc(children(), func(pid int) bool { return slices.Contains(daemons, pid) })) == 0
		},
			5*time.Second, 10*time.Millisecond, "child processes left: %v (daemons %v)", children(), daemons)
		goleak.VerifyNone(t, ignore)
	})
	// Its check comes before the leak checks, which run after it.
	var timeLimit <-chan timeLimit
	t.Run("TimeLimit", func(t *testing.T) { timeLimit = startTimeLimit(c) })
	t.Cleanup(func() {
		if timeLimit != nil {
			testSlurmTimeLimit(t, c, timeLimit)
		}
	})
	for _, tc := range []struct {
		name string
		test func(t *testing.T, c *slurmtest.Cluster)
	}{
		{"Map", testSlurmMap},
		{"Errors", testSlurmErrors},
		{"WorkerLost", testSlurmWorkerLost},
		{"NodeDown", testSlurmNodeDown},
		{"Allocation", testSlurmAllocation},
		{"NoJobLeft", testSlurmNoJobLeft},
		{"ParentKilled", testSlurmParentKilled},
		{"ShipBinary", testSlurmShipBinary},
		{"ProgramMissing", testSlurmProgramMissing},
		{"BadPartition", testSlurmBadPartition},
		{"PendingJobKilled", testSlurmPendingJobKilled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.test(t, c)
		})
	}
}

// newSlurmPool starts a pool on the cluster that logs to the returned
// buffer. When the test ends it terminates the pool and checks that none of
// its workers' jobs or steps is left.
func newSlurmPool(t *testing.T, c *slurmtest.Cluster, cfg procpool.Config) (*procpool.Pool, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = debugLogger(logs)
	cfg.Env = append(slices.Clip(cfg.Env), c.Env()...)
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = time.Minute // a loaded machine, and Slurm's scheduling
	}
	p, err := procpool.New(relCfg(cfg))
	require.NoError(t, err, "pool log:\n%s", logs)
	seen := map[string]bool{}
	note := func() {
		for _, pid := range p.Workers() {
			if job, _, ok := slurmJob(pid); ok {
				seen[job] = true
			}
		}
	}
	note()
	t.Cleanup(func() {
		note()
		p.Terminate()
		assertNoJobs(t, c, seen)
		if t.Failed() {
			t.Logf("pool log:\n%s", logs)
		}
	})
	return p, logs
}

// slurmJob returns the job and step ("12", "12.0") whose task is pid.
func slurmJob(pid int) (job, step string, ok bool) {
	step, ok = slurmtest.StepOf(pid)
	job, _, _ = strings.Cut(step, ".")
	return job, step, ok
}

// assertNoJobs checks that no job or step of the pool (one named
// "procpool.*" whose job is one of jobs) is left in the queue, within a few
// seconds.
func assertNoJobs(t *testing.T, c *slurmtest.Cluster, jobs map[string]bool) {
	t.Helper()
	var left []slurmtest.Job
	assert.Eventually(t, func() bool {
		all, err := c.Jobs()
		if err != nil {
			return false
		}
		steps, err := c.Steps()
		if err != nil {
			return false
		}
		left = slices.DeleteFunc(append(all, steps...), func(j slurmtest.Job) bool {
			job, _, _ := strings.Cut(j.ID, ".")
			return !jobs[job] || !strings.HasPrefix(j.Name, "procpool.")
		})
		return len(left) == 0
	}, 10*time.Second, 20*time.Millisecond, "jobs or steps of the pool left in Slurm")
	if len(left) > 0 {
		t.Logf("left in Slurm: %v", left)
	}
}

// queue lists the cluster's jobs, or its steps.
func queue(t *testing.T, list func() ([]slurmtest.Job, error)) []slurmtest.Job {
	t.Helper()
	jobs, err := list()
	require.NoError(t, err)
	return jobs
}

// slurmWorkers returns the pool's workers by pid, with their nodes, and
// checks that each is a task of a Slurm job step on this machine, not a
// child of this process.
func slurmWorkers(t *testing.T, p *procpool.Pool) map[int]string {
	t.Helper()
	nodes := map[int]string{}
	for _, w := range p.Stats().Workers {
		nodes[w.PID] = w.Host
		_, step, ok := slurmJob(w.PID)
		assert.True(t, ok, "worker %d runs in no Slurm job step", w.PID)
		ppid, _, _ := procStat(w.PID)
		assert.NotEqual(t, os.Getpid(), ppid, "worker %d is our own child, not Slurm's", w.PID)
		assert.Regexp(t, `^node\d$`, w.Host, "worker %d (step %s): its host is its node", w.PID, step)
		assert.EqualValues(t, -1, w.RSS, "no RSS for a worker on a node")
	}
	return nodes
}

// A user checks: a pool of Slurm workers computes a Map like local workers,
// each worker a task of a job of its own, on a node of the partition, with
// Config.Env and a GOMAXPROCS of its CPUs in Slurm; Close ends the jobs.
func testSlurmMap(t *testing.T, c *slurmtest.Cluster) {
	p, _ := newSlurmPool(t, c, procpool.Config{
		Launcher: procpool.Slurm(2, procpool.SlurmCPUs(2)),
		Env:      []string{"PROCPOOL_TEST_SLURM_ENV=from Config.Env"},
	})
	in := make([]int, 3000)
	want := make([]int, len(in))
	for i := range in {
		in[i] = i - 1000
		want[i] = in[i] * in[i]
	}
	out, err := Square.Map(ctx(t), p, in)
	require.NoError(t, err)
	require.Equal(t, want, out)

	nodes := slurmWorkers(t, p)
	require.Len(t, nodes, 2)
	jobs := map[string]bool{}
	for pid := range nodes {
		job, step, _ := slurmJob(pid)
		assert.Equal(t, job+".0", step, "each worker is the one step of a job of its own")
		jobs[job] = true
	}
	assert.Len(t, jobs, 2)
	st := p.Stats()
	assert.Equal(t, 3000, st.Completed)

	env, err := Getenv.Map(ctx(t), p, []string{"PROCPOOL_TEST_SLURM_ENV", "SLURM_CPUS_PER_TASK", "SLURM_JOB_NAME"}, procpool.Chunksize(1))
	require.NoError(t, err)
	assert.Equal(t, "from Config.Env", env[0])
	assert.Equal(t, "2", env[1], "srun --cpus-per-task")
	assert.Regexp(t, `^procpool\.[0-9a-f]+\.\d+$`, env[2])
	procs, err := GOMAXPROCS.Map(ctx(t), p, make([]struct{}, 4), procpool.Chunksize(1))
	require.NoError(t, err)
	assert.Equal(t, []int{2, 2, 2, 2}, procs)

	require.NoError(t, p.Close())
	for pid := range nodes {
		assert.False(t, running(pid), "worker %d outlived Close", pid)
	}
	assertNoJobs(t, c, jobs)
}

// A user checks: a task's error and panic come back as with local workers,
// and a worker that exits is reported with the task's exit code (not
// srun's), its pid on the node and its node.
func testSlurmErrors(t *testing.T, c *slurmtest.Cluster) {
	p, _ := newSlurmPool(t, c, procpool.Config{Launcher: procpool.Slurm(1), OnCrash: procpool.Respawn})
	nodes := slurmWorkers(t, p)

	_, err := Fail.Submit(p, "no good").Get(ctx(t))
	var re *procpool.RemoteError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, "no good", re.Message)
	_, err = Panic.Submit(p, "oh no").Get(ctx(t))
	require.ErrorAs(t, err, &re)
	assert.True(t, re.Panic)

	pid := p.Workers()[0]
	_, err = Poison.Submit(p, 13).Get(ctx(t))
	t.Log(err)
	require.ErrorIs(t, err, procpool.ErrWorkerLost)
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 13, exit.ExitCode)
	assert.Empty(t, exit.Signal)
	assert.Equal(t, pid, exit.PID)
	assert.Equal(t, nodes[pid], exit.Host)
	assert.Contains(t, err.Error(), fmt.Sprintf("worker pid %d on %s exited with code 13", pid, nodes[pid]))

	v, err := Square.Submit(p, 5).Get(ctx(t))
	require.NoError(t, err, "the replacement serves")
	assert.Equal(t, 25, v)
	require.NoError(t, p.Close())
}

// A user checks: a worker that dies mid-call, killed on its node (as the
// OOM killer would) or with its job cancelled by scancel, is reported with
// its pid on the node, its node and how it ended; Break breaks the pool,
// Respawn fails only that call and starts a replacement job.
func testSlurmWorkerLost(t *testing.T, c *slurmtest.Cluster) {
	for _, how := range []struct {
		name  string
		kill  func(t *testing.T, pid int)
		check func(t *testing.T, exit *procpool.WorkerExitError, err error)
	}{
		{
			name: "worker killed",
			kill: func(t *testing.T, pid int) { require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) },
			check: func(t *testing.T, exit *procpool.WorkerExitError, err error) {
				assert.Equal(t, "SIGKILL", exit.Signal)
				assert.Equal(t, -1, exit.ExitCode)
				assert.Contains(t, err.Error(), "killed by SIGKILL")
			},
		},
		{
			name: "job cancelled",
			kill: func(t *testing.T, pid int) {
				job, _, ok := slurmJob(pid)
				require.True(t, ok)
				c.Run(t, "scancel", job)
			},
			check: func(t *testing.T, exit *procpool.WorkerExitError, err error) {
				assert.Equal(t, "SIGTERM", exit.Signal, "scancel sends SIGTERM first")
				assert.Regexp(t, `^Slurm cancelled job step \d+\.0 on node\d \(scancel\)$`, exit.Reason)
			},
		},
	} {
		for _, policy := range []struct {
			policy procpool.CrashPolicy
			want   error
		}{
			{procpool.Break, procpool.ErrBrokenPool},
			{procpool.Respawn, procpool.ErrWorkerLost},
		} {
			t.Run(how.name+"/"+policy.policy.String(), func(t *testing.T) {
				p, _ := newSlurmPool(t, c, procpool.Config{Launcher: procpool.Slurm(2), OnCrash: policy.policy})
				nodes := slurmWorkers(t, p)
				before := p.Workers()

				marker := filepath.Join(t.TempDir(), "held")
				f := Hold.Submit(p, marker)
				pid := waitHold(t, marker)
				require.Contains(t, before, pid)
				how.kill(t, pid)

				_, err := f.Get(ctx(t))
				t.Log(err)
				require.ErrorIs(t, err, policy.want)
				var exit *procpool.WorkerExitError
				require.ErrorAs(t, err, &exit)
				assert.Equal(t, pid, exit.PID, "the pid on the node, not srun's")
				assert.Equal(t, nodes[pid], exit.Host)
				assert.Equal(t, 1, exit.Held)
				assert.Contains(t, err.Error(), fmt.Sprintf("worker pid %d on %s ", pid, nodes[pid]))
				how.check(t, exit, err)
				require.Eventually(t, func() bool { return !running(pid) }, 5*time.Second, 10*time.Millisecond, "the worker outlived its end")

				if policy.policy == procpool.Break {
					_, err := Square.Submit(p, 2).Get(ctx(t))
					require.ErrorIs(t, err, procpool.ErrBrokenPool, "a broken pool refuses work")
					return
				}
				replacement := waitSlurmReplacement(t, p, before)
				served := servedBy(t, p, 20)
				assert.NotContains(t, served, pid)
				assert.Contains(t, served, replacement, "the new Slurm worker serves calls: %v", served)
				st := p.Stats()
				assert.Equal(t, 1, st.Deaths)
				assert.Equal(t, 1, st.Lost)
				require.NoError(t, p.Close())
			})
		}
	}
}

// waitSlurmReplacement waits for the pool to have as many workers as
// before, each a task of a Slurm job, and returns the one that is new.
func waitSlurmReplacement(t *testing.T, p *procpool.Pool, before []int) int {
	t.Helper()
	var fresh int
	require.Eventually(t, func() bool {
		fresh = 0
		now := p.Workers()
		for _, pid := range now {
			if !slices.Contains(before, pid) {
				if _, _, ok := slurmJob(pid); !ok {
					return false // still starting: the pid is srun's
				}
				fresh = pid
			}
		}
		return len(now) == len(before) && fresh != 0
	}, 30*time.Second, 10*time.Millisecond, "no replacement Slurm worker: %v", p.Stats())
	return fresh
}

// A user checks: when an administrator sets a worker's node down, the
// worker's death says so; Break breaks the pool, Respawn runs a replacement
// on the partition's other node.
func testSlurmNodeDown(t *testing.T, c *slurmtest.Cluster) {
	for _, policy := range []struct {
		policy procpool.CrashPolicy
		want   error
	}{
		{procpool.Break, procpool.ErrBrokenPool},
		{procpool.Respawn, procpool.ErrWorkerLost},
	} {
		t.Run(policy.policy.String(), func(t *testing.T) {
			p, _ := newSlurmPool(t, c, procpool.Config{Launcher: procpool.Slurm(1, procpool.SlurmPartition("spare")), OnCrash: policy.policy})
			marker := filepath.Join(t.TempDir(), "held")
			f := Hold.Submit(p, marker)
			pid := waitHold(t, marker)
			node := slurmWorkers(t, p)[pid]
			require.Contains(t, []string{"node3", "node4"}, node)

			c.SetNodeDown(t, node, "procpool-test")
			defer c.Resume(t, node)
			_, err := f.Get(ctx(t))
			t.Log(err)
			require.ErrorIs(t, err, policy.want)
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, pid, exit.PID)
			assert.Equal(t, node, exit.Host)
			assert.Equal(t, "node "+node+" failed or was set down: Slurm ended the job step", exit.Reason)
			require.Eventually(t, func() bool { return !running(pid) }, 5*time.Second, 10*time.Millisecond, "the worker outlived its node")
			if policy.policy == procpool.Break {
				return
			}
			fresh := waitSlurmReplacement(t, p, []int{pid})
			other := slurmWorkers(t, p)[fresh]
			assert.NotEqual(t, node, other, "the replacement runs on the node that is up")
			v, err := Square.Submit(p, 4).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 16, v)
			require.NoError(t, p.Close())
		})
	}
}

// timeLimit is the outcome of a worker whose job reached its time limit.
type timeLimit struct {
	pid    int
	job    string
	limit  string // the job's TimeLimit, as scontrol shows it
	err    error  // the held call's
	failed error  // the scenario's own failure
}

// startTimeLimit runs, in the background, a pool whose one worker's job has
// a time limit, holds a call on it, and makes Slurm enforce the limit. Slurm
// counts time limits in minutes and enforces them every 30 s or so: the
// scenario moves the job's end time to now, and Slurm's own check kills the
// job soon after. It runs outside the parallel subtests, whose slots
// (-parallel, GOMAXPROCS by default) it would hold for half a minute.
func startTimeLimit(c *slurmtest.Cluster) <-chan timeLimit {
	done := make(chan timeLimit, 1)
	go func() {
		var r timeLimit
		defer func() { done <- r }()
		p, err := procpool.New(relCfg(procpool.Config{
			Launcher:     procpool.Slurm(1, procpool.SlurmTimeLimit(10*time.Minute)),
			Env:          c.Env(),
			Logger:       nullLogger(),
			StartTimeout: time.Minute,
		}))
		if err != nil {
			r.failed = err
			return
		}
		defer p.Terminate()
		r.pid = p.Workers()[0]
		var ok bool
		if r.job, _, ok = slurmJob(r.pid); !ok {
			r.failed = fmt.Errorf("worker %d runs in no Slurm job", r.pid)
			return
		}
		out, _ := c.Command("scontrol", "show", "job", r.job).Output()
		if m := regexp.MustCompile(`TimeLimit=(\S+)`).FindSubmatch(out); m != nil {
			r.limit = string(m[1])
		}
		dir, err := os.MkdirTemp("", "slurm-time-limit")
		if err != nil {
			r.failed = err
			return
		}
		defer os.RemoveAll(dir)
		f := Hold.Submit(p, filepath.Join(dir, "held"))
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, "held")); err == nil {
				break
			}
			if time.Now().After(deadline) {
				r.failed = fmt.Errorf("the held call never started")
				return
			}
		}
		// An end time must come after the start time, which is in whole
		// seconds: in the second the job started, now is refused.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			out, err := c.Command("scontrol", "update", "jobid="+r.job, "EndTime=now").CombinedOutput()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				r.failed = fmt.Errorf("scontrol update: %v: %s", err, out)
				return
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		_, r.err = f.Get(ctx)
	}()
	return done
}

// A user checks: a worker whose job reaches its time limit dies of it, and
// the error says so. TestSlurm checks it once its subtests have ended.
func testSlurmTimeLimit(t *testing.T, c *slurmtest.Cluster, started <-chan timeLimit) {
	r := <-started
	require.NoError(t, r.failed, "TimeLimit")
	t.Log("TimeLimit:", r.err)
	assert.Equal(t, "00:10:00", r.limit, "TimeLimit: srun --time")
	require.ErrorIs(t, r.err, procpool.ErrBrokenPool, "TimeLimit")
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, r.err, &exit, "TimeLimit")
	assert.Equal(t, r.pid, exit.PID, "TimeLimit")
	assert.Equal(t, "SIGTERM", exit.Signal, "TimeLimit")
	assert.Regexp(t, `^Slurm killed job step `+r.job+`\.0 on node\d: it reached its time limit$`, exit.Reason, "TimeLimit")
	assertNoJobs(t, c, map[string]bool{r.job: true})
}

// A user checks: inside an allocation (here one salloc made, as a batch
// script's would be), the workers are job steps of it, spread over its
// nodes; Close ends the steps and leaves the allocation to its owner.
func testSlurmAllocation(t *testing.T, c *slurmtest.Cluster) {
	out := c.Run(t, "salloc", "--no-shell", "--nodes=2", "--ntasks-per-node=2", "--job-name=procpool-test-allocation")
	m := regexp.MustCompile(`Granted job allocation (\d+)`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	alloc := m[1]
	t.Cleanup(func() { c.Run(t, "scancel", alloc) })
	var nodelist string
	for _, j := range queue(t, c.Jobs) {
		if j.ID == alloc {
			nodelist = j.Nodes
		}
	}
	require.NotEmpty(t, nodelist)

	// SLURM_JOB_ID alone: the launcher asks squeue for the nodes that
	// SLURM_JOB_NODELIST would list under sbatch or salloc.
	p, _ := newSlurmPool(t, c, procpool.Config{
		Launcher: procpool.Slurm(4),
		Env:      []string{"SLURM_JOB_ID=" + alloc},
	})
	nodes := slurmWorkers(t, p)
	perNode := map[string]int{}
	for pid, node := range nodes {
		job, step, _ := slurmJob(pid)
		assert.Equal(t, alloc, job, "worker %d runs in step %s, not in the allocation", pid, step)
		perNode[node]++
	}
	assert.Equal(t, map[string]int{"node1": 2, "node2": 2}, perNode, "the workers are spread over the allocation's nodes")
	steps := 0
	for _, s := range queue(t, c.Steps) {
		if strings.HasPrefix(s.ID, alloc+".") {
			assert.Regexp(t, `^procpool\.[0-9a-f]+\.\d+$`, s.Name)
			steps++
		}
	}
	assert.Equal(t, 4, steps)
	served := servedBy(t, p, 40)
	assert.Len(t, served, 4, "every step serves calls: %v", served)

	require.NoError(t, p.Close())
	require.Eventually(t, func() bool {
		return !slices.ContainsFunc(queue(t, c.Steps), func(s slurmtest.Job) bool { return strings.HasPrefix(s.ID, alloc+".") })
	}, 5*time.Second, 20*time.Millisecond, "steps left in the allocation: %v", queue(t, c.Steps))
	assert.Contains(t, queue(t, c.Jobs), slurmtest.Job{ID: alloc, Name: "procpool-test-allocation", State: "RUNNING", Nodes: nodelist}, "the allocation is its owner's")
}

// A user checks: after Close, or Terminate with calls running, no job of
// the pool is left in Slurm, and no worker runs.
func testSlurmNoJobLeft(t *testing.T, c *slurmtest.Cluster) {
	for _, end := range []string{"Close", "Terminate"} {
		t.Run(end, func(t *testing.T) {
			p, logs := newSlurmPool(t, c, procpool.Config{Launcher: procpool.Slurm(2)})
			pids := p.Workers()
			jobs := map[string]bool{}
			for _, pid := range pids {
				job, _, ok := slurmJob(pid)
				require.True(t, ok)
				jobs[job] = true
			}
			if end == "Close" {
				require.NoError(t, p.Close())
			} else {
				dir := t.TempDir()
				Hold.Submit(p, filepath.Join(dir, "0"))
				Hold.Submit(p, filepath.Join(dir, "1"))
				waitHold(t, filepath.Join(dir, "0"))
				waitHold(t, filepath.Join(dir, "1"))
				p.Terminate()
				assert.Contains(t, logs.String(), "cancelled: the worker's srun was killed")
			}
			assertNoJobs(t, c, jobs)
			for _, pid := range pids {
				assert.Eventually(t, func() bool { return !running(pid) }, 5*time.Second, 10*time.Millisecond, "worker %d outlived the pool", pid)
			}
		})
	}
}

// A user checks: if the program dies (SIGKILL: no deferred Close, and srun
// killed with it, which cannot end its step), its workers' jobs are
// cancelled all the same, and the workers end.
func testSlurmParentKilled(t *testing.T, c *slurmtest.Cluster) {
	holds := t.TempDir()
	cmd, pids := startParent(t, "slurm-parent", append(c.Env(), "PROCPOOL_TEST_HOLD_DIR="+holds)...)
	jobs := map[string]bool{}
	for _, pid := range pids {
		job, _, ok := slurmJob(pid)
		require.True(t, ok, "pid %d is a Slurm worker", pid)
		jobs[job] = true
	}
	require.Eventually(t, func() bool {
		ents, _ := os.ReadDir(holds)
		return len(ents) == 2
	}, 15*time.Second, 5*time.Millisecond, "the parent's Map never reached its workers")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	require.ErrorContains(t, cmd.Wait(), "signal: killed")
	assertNoJobs(t, c, jobs)
	require.Eventually(t, func() bool { return !running(pids[0]) && !running(pids[1]) }, 5*time.Second, 10*time.Millisecond,
		"workers outlived their parent")
}

// A user checks: SlurmShipBinary copies this program to the nodes with
// sbcast, under its SHA-256, and the workers run that copy.
func testSlurmShipBinary(t *testing.T, c *slurmtest.Cluster) {
	dir := t.TempDir()
	p, logs := newSlurmPool(t, c, procpool.Config{Launcher: procpool.Slurm(3, procpool.SlurmShipBinary(dir))})
	d, err := executable.SHA256()
	require.NoError(t, err)
	shipped := filepath.Join(dir, "procpool-"+d.SHA256)
	for _, pid := range p.Workers() {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		require.NoError(t, err)
		assert.Equal(t, shipped, link, "worker %d runs the shipped copy", pid)
	}
	ents, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, ents, 1, "the folder holds the program, and no upload left: %v", ents)
	fi, err := os.Stat(shipped)
	require.NoError(t, err)
	assert.Equal(t, d.Size, fi.Size())
	assert.Equal(t, os.FileMode(0o700), fi.Mode().Perm())
	out, err := Square.Map(ctx(t), p, []int{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 4, 9}, out)
	require.NoError(t, p.Close(), logs.String())
}

// A user checks: a program path with nothing there on the nodes fails New
// at once, with an error that names the path and the node and points to
// SlurmShipBinary.
func testSlurmProgramMissing(t *testing.T, c *slurmtest.Cluster) {
	missing := filepath.Join(t.TempDir(), "no-such-program")
	p, err := procpool.New(procpool.Config{
		Launcher: procpool.Slurm(1, procpool.SlurmProgram(missing)),
		Env:      c.Env(),
		Logger:   nullLogger(),
	})
	require.Nil(t, p)
	t.Log(err)
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Contains(t, err.Error(), "cannot run the worker program "+missing+" (no such file or directory)")
	assert.Contains(t, err.Error(), "SlurmShipBinary")
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Regexp(t, `^node\d$`, exit.Host)
}

// A user checks: a partition Slurm does not have fails New with srun's own
// words.
func testSlurmBadPartition(t *testing.T, c *slurmtest.Cluster) {
	p, err := procpool.New(procpool.Config{
		Launcher: procpool.Slurm(1, procpool.SlurmPartition("nosuchpartition")),
		Env:      c.Env(),
		Logger:   nullLogger(),
	})
	require.Nil(t, p)
	t.Log(err)
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Contains(t, err.Error(), "srun could not start the worker")
	assert.Contains(t, err.Error(), "Invalid partition name specified")
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, "slurm partition nosuchpartition", exit.Host)
}

// A user checks: a worker whose job waits in the queue past StartTimeout
// fails New, and its pending job does not stay in the queue: srun, killed,
// cannot withdraw it, and its prolog never reported it.
func testSlurmPendingJobKilled(t *testing.T, c *slurmtest.Cluster) {
	comment := fmt.Sprintf("procpool-test-pending-%d", time.Now().UnixNano())
	p, err := procpool.New(procpool.Config{
		Launcher:     procpool.Slurm(1, procpool.SlurmArgs("--begin=now+3600", "--comment="+comment)),
		Env:          c.Env(),
		Logger:       nullLogger(),
		StartTimeout: 3 * time.Second,
	})
	require.Nil(t, p)
	t.Log(err)
	require.ErrorIs(t, err, procpool.ErrStartup)
	assert.Contains(t, err.Error(), "no handshake within 3s")
	assert.Eventually(t, func() bool {
		out, err := c.Command("squeue", "-h", "-o", "%i %k").Output()
		return err == nil && !strings.Contains(string(out), comment)
	}, 5*time.Second, 20*time.Millisecond, "the pending job of the killed srun is left in the queue")
}

// Workers as Slurm tasks. Run under sbatch or salloc, the workers are job
// steps of the allocation, spread over its nodes; run elsewhere, each is a
// job of its own in the partition named. (Not run: it needs a cluster.)
func ExampleSlurm() {
	p, err := procpool.New(procpool.Config{
		Launcher: procpool.Slurm(32,
			procpool.SlurmPartition("compute"),         // outside an allocation
			procpool.SlurmTimeLimit(2*time.Hour),       // each worker's job, or step
			procpool.SlurmCPUs(2),                      // --cpus-per-task, and GOMAXPROCS
			procpool.SlurmShipBinary("/local/scratch"), // nodes without a shared filesystem
		),
		OnCrash:      procpool.Respawn,
		Retries:      2,
		StartTimeout: 10 * time.Minute, // time in the queue counts
	})
	if err != nil {
		log.Fatal(err) // quotes srun, such as "Invalid partition name specified"
	}
	defer p.Close()
	out, err := Cube.Map(context.Background(), p, []int{1, 2, 3})
	fmt.Println(out, err)
}
