//go:build unix

// Package slurmtest runs a real Slurm cluster on 127.0.0.1 for tests, the way
// internal/sshtest runs a real sshd: a munged, a slurmctld and one slurmd per
// node, all on this machine, with a private munge key and socket, a private
// slurm.conf, state and spool folders and free ports, so nothing of the
// system's configuration is read or changed. Every Slurm command honours the
// SLURM_CONF variable that Cluster.Env returns.
//
// The cluster is Debian's slurm-wlm 22.05 and munge, run as root with no
// systemd and no cgroups (ProctrackType=proctrack/linuxproc,
// TaskPlugin=task/none). Several slurmd on one machine stand for several
// nodes: node1, node2, ... Where the daemons are not installed, or the tests
// do not run as root, Start skips the test, unless PROCPOOL_REQUIRE_SLURM is
// set, as it is in CI, where a missing Slurm must fail.
package slurmtest

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The daemons, where Debian installs them.
var (
	Slurmctld = "/usr/sbin/slurmctld"
	Slurmd    = "/usr/sbin/slurmd"
	Munged    = "/usr/sbin/munged"
)

// clients are the Slurm commands the tests and the launcher run, found in PATH.
var clients = []string{"srun", "salloc", "sbcast", "scancel", "squeue", "sinfo", "scontrol"}

// Partition is a partition of the test cluster.
type Partition struct {
	Name    string
	Nodes   []string // "node1", ...
	Default bool
}

// Options shape the cluster. The zero value is two nodes of two CPUs each in
// one default partition, "debug".
type Options struct {
	Nodes      int         // nodes, named node1, node2, ...; default 2
	CPUs       int         // CPUs of each node; default 2
	Partitions []Partition // default: "debug", every node, the default partition
}

// Cluster is a running Slurm cluster.
type Cluster struct {
	Dir        string   // holds the configuration, state, spool folders and logs
	Conf       string   // the path of slurm.conf
	Nodes      []string // the node names
	Partitions []Partition

	tb      testing.TB
	mu      sync.Mutex
	daemons []*daemon // munged first, then slurmctld, then each slurmd
	stopped bool
}

type daemon struct {
	name string
	cmd  *exec.Cmd
	out  *tail
	done chan struct{}
}

// Available says why the test cluster cannot run here, or "" if it can.
func Available() string {
	for _, d := range []string{Slurmctld, Slurmd, Munged} {
		if _, err := os.Stat(d); err != nil {
			return fmt.Sprintf("%s not installed (apt-get install slurm-wlm munge)", d)
		}
	}
	for _, c := range clients {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Sprintf("the Slurm command %s is not in PATH (apt-get install slurm-wlm)", c)
		}
	}
	if os.Geteuid() != 0 {
		return "slurmd must run as root to start jobs, and the tests do not"
	}
	return ""
}

// Required reports whether a missing Slurm fails the tests instead of
// skipping them: PROCPOOL_REQUIRE_SLURM is set, as in CI.
func Required() bool { return os.Getenv("PROCPOOL_REQUIRE_SLURM") != "" }

// Start starts a cluster, waits for every node to be idle, and stops it when
// the test ends, after checking that no job is left in its queue.
func Start(tb testing.TB, opt Options) *Cluster {
	tb.Helper()
	if why := Available(); why != "" {
		if Required() {
			tb.Fatalf("slurmtest: Slurm is required (PROCPOOL_REQUIRE_SLURM is set): %s", why)
		}
		tb.Skipf("slurmtest: %s", why)
	}
	if opt.Nodes <= 0 {
		opt.Nodes = 2
	}
	if opt.CPUs <= 0 {
		opt.CPUs = 2
	}
	// Not tb.TempDir: a Unix socket's path must stay under 108 bytes, and
	// test names can be long.
	dir, err := os.MkdirTemp("", "slurmtest")
	if err != nil {
		tb.Fatal(err)
	}
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), tb: tb}
	for i := range opt.Nodes {
		c.Nodes = append(c.Nodes, fmt.Sprintf("node%d", i+1))
	}
	c.Partitions = opt.Partitions
	if len(c.Partitions) == 0 {
		c.Partitions = []Partition{{Name: "debug", Nodes: c.Nodes, Default: true}}
	}
	tb.Cleanup(c.Stop)
	if err := c.start(opt); err != nil {
		tb.Fatalf("slurmtest: %v\n%s", err, c.Logs())
	}
	return c
}

func (c *Cluster) path(name string) string { return filepath.Join(c.Dir, name) }

func (c *Cluster) start(opt Options) error {
	for _, d := range []string{"state", "log"} {
		if err := os.Mkdir(c.path(d), 0o700); err != nil {
			return err
		}
	}
	for _, n := range c.Nodes {
		if err := os.Mkdir(c.path("spool-"+n), 0o700); err != nil {
			return err
		}
	}
	key := make([]byte, 1024)
	rand.Read(key)
	if err := os.WriteFile(c.path("munge.key"), key, 0o400); err != nil {
		return err
	}
	if err := c.startDaemon("munged", Munged, "-F", "--force",
		"--socket="+c.path("munge.sock"), "--key-file="+c.path("munge.key"),
		"--pid-file="+c.path("munged.pid"), "--log-file="+c.path("log/munged.log"),
		"--seed-file="+c.path("munged.seed")); err != nil {
		return err
	}
	if err := waitFor(10*time.Second, func() bool { _, err := os.Stat(c.path("munge.sock")); return err == nil }); err != nil {
		return fmt.Errorf("munged did not create its socket: %w", err)
	}

	host, err := os.Hostname()
	if err != nil {
		return err
	}
	host, _, _ = strings.Cut(host, ".")
	ports, err := freePorts(1 + len(c.Nodes))
	if err != nil {
		return err
	}
	if err := os.WriteFile(c.Conf, []byte(c.config(host, ports, opt.CPUs)), 0o644); err != nil {
		return err
	}
	if err := c.startDaemon("slurmctld", Slurmctld, "-D", "-i", "-f", c.Conf); err != nil {
		return err
	}
	for _, n := range c.Nodes {
		if err := c.startDaemon("slurmd "+n, Slurmd, "-D", "-N", n, "-f", c.Conf); err != nil {
			return err
		}
	}
	// Every node registers, and is idle.
	var last string
	err = waitFor(30*time.Second, func() bool {
		out, err := c.Command("sinfo", "-h", "-N", "-o", "%N %T").Output()
		last = string(out)
		if err != nil {
			return false
		}
		idle := map[string]bool{}
		for _, l := range strings.Split(strings.TrimSpace(last), "\n") {
			if f := strings.Fields(l); len(f) == 2 && f[1] == "idle" {
				idle[f[0]] = true
			}
		}
		return len(idle) == len(c.Nodes)
	})
	if err != nil {
		return fmt.Errorf("the nodes did not become idle: sinfo says %q", last)
	}
	return nil
}

// config is the cluster's slurm.conf.
func (c *Cluster) config(host string, ports []int, cpus int) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# slurmtest: a private cluster on 127.0.0.1
ClusterName=slurmtest%d
SlurmctldHost=%s(127.0.0.1)
SlurmctldPort=%d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=%s
CredType=cred/munge
StateSaveLocation=%s
SlurmdSpoolDir=%s
SlurmctldPidFile=%s
SlurmdPidFile=%s
SlurmctldLogFile=%s
SlurmdLogFile=%s
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
# A node set down stays down until it is resumed.
ReturnToService=1
# Slurm itself never ends a job whose srun is gone: the tests see that
# procpool does.
InactiveLimit=0
# A cancelled task gets SIGKILL 2 s after SIGTERM, not 30.
KillWait=2
`, os.Getpid(), host, ports[0], c.path("munge.sock"), c.path("state"), c.path("spool-%n"),
		c.path("slurmctld.pid"), c.path("slurmd-%n.pid"), c.path("log/slurmctld.log"), c.path("log/slurmd-%n.log"))
	for i, n := range c.Nodes {
		fmt.Fprintf(&b, "NodeName=%s NodeHostname=%s NodeAddr=127.0.0.1 Port=%d CPUs=%d State=UNKNOWN\n", n, host, ports[1+i], cpus)
	}
	for _, p := range c.Partitions {
		def := "NO"
		if p.Default {
			def = "YES"
		}
		// Up to four jobs share a core, so tests may run more workers
		// than the nodes have CPUs.
		fmt.Fprintf(&b, "PartitionName=%s Nodes=%s Default=%s MaxTime=INFINITE State=UP OverSubscribe=FORCE:4\n", p.Name, strings.Join(p.Nodes, ","), def)
	}
	return b.String()
}

func (c *Cluster) startDaemon(name, path string, args ...string) error {
	d := &daemon{name: name, out: &tail{}, done: make(chan struct{})}
	d.cmd = exec.Command(path, args...)
	d.cmd.Env = append(os.Environ(), c.Env()...)
	d.cmd.Dir = c.Dir
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	// The daemons die with the test binary, whatever ends it.
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	dieWithParent(d.cmd.SysProcAttr)
	if err := d.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	c.mu.Lock()
	c.daemons = append(c.daemons, d)
	c.mu.Unlock()
	return nil
}

// Env is what the Slurm commands need to reach the cluster: SLURM_CONF.
func (c *Cluster) Env() []string { return []string{"SLURM_CONF=" + c.Conf} }

// Command is a Slurm command, such as squeue, that reaches the cluster.
func (c *Cluster) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), c.Env()...)
	return cmd
}

// Run runs a Slurm command and returns its output; it fails the test if the
// command fails.
func (c *Cluster) Run(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := c.Command(name, args...).CombinedOutput()
	if err != nil {
		tb.Fatalf("slurmtest: %s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// A Job is a line of squeue: a job, or a job step.
type Job struct {
	ID    string // "12", or "12.0" for a step
	Name  string
	State string // "RUNNING", "PENDING", ... (steps: "")
	Nodes string
}

func (j Job) String() string { return fmt.Sprintf("%s %s %s %s", j.ID, j.Name, j.State, j.Nodes) }

// Jobs lists the jobs in the queue: pending, running or completing.
func (c *Cluster) Jobs() ([]Job, error) {
	return c.queue("-h", "-o", "%i|%j|%T|%N")
}

// Steps lists the running job steps.
func (c *Cluster) Steps() ([]Job, error) {
	return c.queue("-h", "-s", "-o", "%i|%j||%N")
}

func (c *Cluster) queue(args ...string) ([]Job, error) {
	out, err := c.Command("squeue", args...).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("squeue: %v: %s", err, out)
	}
	var jobs []Job
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "|")
		if len(f) == 4 {
			jobs = append(jobs, Job{ID: f[0], Name: f[1], State: f[2], Nodes: f[3]})
		}
	}
	return jobs, nil
}

// NodeState returns a node's state as sinfo tells it: "idle", "mixed",
// "down*", ...
func (c *Cluster) NodeState(node string) string {
	out, _ := c.Command("sinfo", "-h", "-N", "-n", node, "-o", "%T").Output()
	return strings.TrimSpace(string(out))
}

// SetNodeDown sets a node down, as an administrator would: Slurm ends the
// jobs on it with a node failure.
func (c *Cluster) SetNodeDown(tb testing.TB, node, reason string) {
	tb.Helper()
	c.Run(tb, "scontrol", "update", "nodename="+node, "state=down", "reason="+reason)
}

// Resume returns a node that was set down to service, and waits for it to be
// idle.
func (c *Cluster) Resume(tb testing.TB, node string) {
	tb.Helper()
	c.Run(tb, "scontrol", "update", "nodename="+node, "state=resume")
	if err := waitFor(15*time.Second, func() bool { return c.NodeState(node) == "idle" }); err != nil {
		tb.Fatalf("slurmtest: %s did not come back: sinfo says %q", node, c.NodeState(node))
	}
}

// Logs returns the end of the daemons' logs.
func (c *Cluster) Logs() string {
	var b strings.Builder
	c.mu.Lock()
	for _, d := range c.daemons {
		fmt.Fprintf(&b, "--- %s:\n%s\n", d.name, d.out)
	}
	c.mu.Unlock()
	logs, _ := filepath.Glob(c.path("log/*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		if len(data) > 8<<10 {
			data = data[len(data)-8<<10:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", filepath.Base(l), data)
	}
	return b.String()
}

// Stop checks that the queue is empty (waiting up to five seconds for jobs to
// end), then cancels what is left, stops the daemons, kills any job step
// process of the cluster still running, and removes its folder.
func (c *Cluster) Stop() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	running := len(c.daemons) >= 2+len(c.Nodes)
	c.mu.Unlock()

	if running {
		var left []Job
		waitFor(5*time.Second, func() bool {
			left, _ = c.Jobs()
			return len(left) == 0
		})
		if len(left) > 0 {
			c.tb.Errorf("slurmtest: jobs still in the queue when the test ended: %v", left)
			c.Command("scancel", "--me").Run()
			waitFor(10*time.Second, func() bool { l, _ := c.Jobs(); return len(l) == 0 })
		}
	}
	// slurmd before slurmctld before munged.
	c.mu.Lock()
	daemons := slices.Clone(c.daemons)
	c.mu.Unlock()
	slices.Reverse(daemons)
	for _, d := range daemons {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.done:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.done
		}
	}
	if strays := c.stepProcesses(); len(strays) > 0 {
		c.tb.Errorf("slurmtest: job step processes outlived the cluster (killed): %v", strays)
		for _, pid := range strays {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	os.RemoveAll(c.Dir)
}
