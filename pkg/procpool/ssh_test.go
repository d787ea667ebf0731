//go:build unix

package procpool_test

// The SSH launcher, against a real sshd on 127.0.0.1.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/executable"
	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// These tests run workers through a real OpenSSH server on 127.0.0.1
// (internal/sshtest). The "remote" host is this machine, so a remote
// worker is a real process here: a descendant of the sshd, not of the test,
// which the tests can find, kill and watch.

// sshHost is WorkerExitError.Host and WorkerStats.Host of a worker started
// through the test server.
const sshHost = "ssh " + sshtest.Dest

// startSSHD starts the leak check, then a real sshd. The order matters: the
// server's cleanup (which waits for its sessions to end, and fails the test
// if some remain) then runs before the leak check, while the sshd is still
// our child.
func startSSHD(t *testing.T) *sshtest.Server {
	t.Helper()
	noLeaks(t)
	return sshtest.Start(t)
}

// sshTo is a launcher of workers on the test server.
func sshTo(srv *sshtest.Server, workers int, opts ...procpool.SSHOption) procpool.Launcher {
	return procpool.SSH(sshtest.Dest, workers, append([]procpool.SSHOption{procpool.SSHArgs(srv.ClientArgs()...)}, opts...)...)
}

// debugLogger logs everything to buf.
func debugLogger(buf *syncBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "procpool", Output: buf, Level: hclog.Debug})
}

// newSSHPool starts a pool that logs to the returned buffer. When the test
// ends it terminates the pool and checks that no remote worker is left
// under the sshd, before the server's own cleanup.
func newSSHPool(t *testing.T, srv *sshtest.Server, cfg procpool.Config) (*procpool.Pool, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	cfg.Logger = debugLogger(logs)
	p, err := procpool.New(cfg)
	require.NoError(t, err, "pool log:\n%s\nsshd log:\n%s", logs, srv.Log())
	t.Cleanup(func() {
		p.Terminate()
		assertNoRemoteWorkers(t, srv)
		if t.Failed() {
			t.Logf("pool log:\n%s\nsshd log:\n%s", logs, srv.Log())
		}
	})
	return p, logs
}

// remoteWorkers returns the descendants of the sshd that are workers, or
// their wrapper shell: those with the role marker in their command line.
func remoteWorkers(srv *sshtest.Server) []int {
	var pids []int
	for _, pid := range srv.Sessions() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte("--procpool-worker")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// assertNoRemoteWorkers checks that the remote workers end soon.
func assertNoRemoteWorkers(t *testing.T, srv *sshtest.Server) {
	t.Helper()
	assert.Eventually(t, func() bool { return len(remoteWorkers(srv)) == 0 }, 5*time.Second, 10*time.Millisecond,
		"remote workers left under the sshd: %v", remoteWorkers(srv))
}

// isRemoteWorker reports whether pid is a worker that came through the
// sshd: its descendant, with the role marker, and not a child of the test.
func isRemoteWorker(srv *sshtest.Server, pid int) bool {
	ppid, _, ok := procStat(pid)
	return ok && ppid != os.Getpid() && slices.Contains(remoteWorkers(srv), pid)
}

// sessionOf returns the sshd's per-connection process that serves the
// remote worker pid: its ancestor whose parent is the sshd itself, which is
// this process's child.
func sessionOf(t *testing.T, srv *sshtest.Server, pid int) int {
	t.Helper()
	chain := []int{pid}
	for {
		ppid, _, ok := procStat(chain[len(chain)-1])
		require.True(t, ok, "process %d ended", chain[len(chain)-1])
		require.Greater(t, ppid, 1, "pid %d is not under the sshd: chain %v", pid, chain)
		if ppid == os.Getpid() {
			break // the last of the chain is the sshd
		}
		chain = append(chain, ppid)
	}
	require.GreaterOrEqual(t, len(chain), 3, "chain %v", chain)
	session := chain[len(chain)-2]
	require.Contains(t, srv.Sessions(), session)
	return session
}

// sshWorkers returns the pids of the pool's workers on the test server,
// and of its local workers.
func sshWorkers(p *procpool.Pool) (remote, local []int) {
	for _, w := range p.Stats().Workers {
		if w.Host == sshHost {
			remote = append(remote, w.PID)
		} else {
			local = append(local, w.PID)
		}
	}
	return remote, local
}

// servedBy runs n calls of 10 ms, one per chunk, and counts the calls each
// worker pid served.
func servedBy(t *testing.T, p *procpool.Pool, n int) map[int]int {
	t.Helper()
	out, err := SlowPID.Map(ctx(t), p, slices.Repeat([]int{10}, n), procpool.Chunksize(1))
	require.NoError(t, err)
	served := map[int]int{}
	for _, pid := range out {
		served[pid]++
	}
	return served
}

// waitHold waits for the Hold call that writes to path to run, and returns
// the pid of its worker.
func waitHold(t *testing.T, path string) int {
	t.Helper()
	var pid int
	require.Eventually(t, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		pid, err = strconv.Atoi(string(b))
		return err == nil
	}, 15*time.Second, 5*time.Millisecond, "the held call never started")
	return pid
}

// requireWorkerExit checks that err matches target and carries the death
// of the SSH worker pid.
func requireWorkerExit(t *testing.T, err, target error, pid int) *procpool.WorkerExitError {
	t.Helper()
	require.ErrorIs(t, err, target)
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, sshHost, exit.Host)
	assert.Equal(t, pid, exit.PID, "the remote pid, not the ssh client's")
	assert.Equal(t, 1, exit.Held)
	assert.Contains(t, err.Error(), fmt.Sprintf("worker pid %d on %s", pid, sshHost))
	return exit
}

// A user checks: a pool of SSH workers alone computes a Map correctly, and
// its workers really run behind the sshd, as the remote host's processes.
func TestSSHMap(t *testing.T) {
	srv := startSSHD(t)
	p, _ := newSSHPool(t, srv, procpool.Config{Remote: []procpool.Launcher{sshTo(srv, 2)}})

	in := make([]int, 3000)
	want := make([]int, len(in))
	for i := range in {
		in[i] = i - 1000
		want[i] = in[i] * in[i]
	}
	out, err := Square.Map(ctx(t), p, in)
	require.NoError(t, err)
	require.Equal(t, want, out)

	st := p.Stats()
	require.Len(t, st.Workers, 2)
	var pids []int
	tasks := 0
	for _, w := range st.Workers {
		assert.Equal(t, sshHost, w.Host)
		assert.EqualValues(t, -1, w.RSS, "no RSS for a remote worker")
		tasks += w.Tasks
		pids = append(pids, w.PID)
		assert.True(t, isRemoteWorker(srv, w.PID), "worker %d is not a worker under the sshd (sessions %v)", w.PID, srv.Sessions())
	}
	assert.Equal(t, 3000, tasks)
	assert.Equal(t, 3000, st.Completed)
	assert.ElementsMatch(t, pids, p.Workers())

	require.NoError(t, p.Close())
	assertNoRemoteWorkers(t, srv)
}

// A user checks: local and SSH workers in one pool both take work.
func TestSSHMixedWithLocal(t *testing.T) {
	srv := startSSHD(t)
	p, _ := newSSHPool(t, srv, procpool.Config{Workers: 2, Remote: []procpool.Launcher{sshTo(srv, 2)}})

	remote, local := sshWorkers(p)
	require.Len(t, remote, 2)
	require.Len(t, local, 2)
	for _, pid := range local {
		ppid, _, _ := procStat(pid)
		assert.Equal(t, os.Getpid(), ppid, "local worker %d is our child", pid)
	}
	for _, pid := range remote {
		assert.True(t, isRemoteWorker(srv, pid), "worker %d runs under the sshd", pid)
	}

	served := servedBy(t, p, 60)
	t.Logf("calls per worker: %v (local %v, ssh %v)", served, local, remote)
	var byLocal, byRemote int
	for pid, n := range served {
		switch {
		case slices.Contains(local, pid):
			byLocal += n
		case slices.Contains(remote, pid):
			byRemote += n
		default:
			t.Errorf("pid %d served %d calls but is no worker of the pool", pid, n)
		}
	}
	assert.Positive(t, byLocal, "local workers served no call")
	assert.Positive(t, byRemote, "SSH workers served no call")
	require.NoError(t, p.Close())
}

// A user checks: ShipBinary uploads this very program into the cache
// folder under its SHA-256, the workers run that copy, and a second pool
// finds it there instead of uploading it again.
func TestSSHShipBinary(t *testing.T) {
	srv := startSSHD(t)
	cache := filepath.Join(t.TempDir(), "cache")
	exe, err := os.ReadFile("/proc/self/exe")
	require.NoError(t, err)
	sum := sha256.Sum256(exe)
	shipped := filepath.Join(cache, hex.EncodeToString(sum[:]))

	for i, wantLog := range []string{"shipped the program", "the host has the program already"} {
		p, logs := newSSHPool(t, srv, procpool.Config{Remote: []procpool.Launcher{sshTo(srv, 2, procpool.ShipBinary(cache))}})
		assert.Contains(t, logs.String(), wantLog, "pool %d", i)
		if i > 0 {
			assert.NotContains(t, logs.String(), "shipped the program", "the second pool uploaded again")
		}

		ents, err := os.ReadDir(cache)
		require.NoError(t, err)
		names := []string{}
		for _, e := range ents {
			names = append(names, e.Name())
		}
		require.Equal(t, []string{filepath.Base(shipped)}, names, "the cache holds the program under its SHA-256, and no leftover upload")
		got, err := os.ReadFile(shipped)
		require.NoError(t, err)
		require.True(t, bytes.Equal(exe, got), "the shipped copy differs from the program (%d bytes, want %d)", len(got), len(exe))
		fi, err := os.Stat(shipped)
		require.NoError(t, err)
		assert.NotZero(t, fi.Mode()&0o111, "the shipped copy is executable: %v", fi.Mode())

		workers := p.Workers()
		require.Len(t, workers, 2)
		for _, pid := range workers {
			assert.True(t, isRemoteWorker(srv, pid))
			link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
			require.NoError(t, err)
			assert.Equal(t, shipped, link, "worker %d runs the shipped copy", pid)
		}
		out, err := Square.Map(ctx(t), p, []int{1, 2, 3})
		require.NoError(t, err)
		assert.Equal(t, []int{1, 4, 9}, out)
		require.NoError(t, p.Close())
	}
	// The "~/" form of the cache folder is not tested: the remote home is
	// the real one of the user the tests run as, which they must not touch.
}

// A user checks: a RemoteProgram path with nothing there fails New at once,
// and the error names the path and points to ShipBinary.
func TestSSHRemoteProgramMissing(t *testing.T) {
	srv := startSSHD(t)
	missing := filepath.Join(t.TempDir(), "no-such-program")
	start := time.Now()
	p, err := procpool.New(procpool.Config{
		Remote: []procpool.Launcher{sshTo(srv, 2, procpool.RemoteProgram(missing))},
		Logger: nullLogger(),
	})
	took := time.Since(start)
	require.Nil(t, p)
	require.ErrorIs(t, err, procpool.ErrStartup)
	t.Log(err)
	assert.Less(t, took, 5*time.Second)
	assert.Contains(t, err.Error(), "no worker program at "+missing)
	assert.Contains(t, err.Error(), "ShipBinary")
	var exit *procpool.WorkerExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, sshHost, exit.Host)
	assert.Equal(t, 127, exit.ExitCode)
	assertNoRemoteWorkers(t, srv)
}

// A user checks: a remote worker that dies mid-call, killed on its host
// (as the OOM killer would) or cut off with its connection, is reported with
// its remote pid, its host and how it ended; Break breaks the pool, Respawn
// fails only that call and connects a replacement; no remote worker lingers.
func TestSSHWorkerLost(t *testing.T) {
	for _, how := range []struct {
		name  string
		kill  func(t *testing.T, srv *sshtest.Server, pid int)
		check func(t *testing.T, exit *procpool.WorkerExitError, err error)
	}{
		{
			name: "worker killed",
			kill: func(t *testing.T, _ *sshtest.Server, pid int) { require.NoError(t, syscall.Kill(pid, syscall.SIGKILL)) },
			check: func(t *testing.T, exit *procpool.WorkerExitError, err error) {
				assert.Equal(t, "SIGKILL", exit.Signal)
				assert.Equal(t, -1, exit.ExitCode)
				assert.Contains(t, err.Error(), "killed by SIGKILL")
			},
		},
		{
			name: "connection cut",
			kill: func(t *testing.T, srv *sshtest.Server, pid int) {
				require.NoError(t, syscall.Kill(sessionOf(t, srv, pid), syscall.SIGKILL))
			},
			check: func(t *testing.T, exit *procpool.WorkerExitError, _ error) {
				assert.Equal(t, 255, exit.ExitCode)
				assert.Empty(t, exit.Signal)
				assert.Contains(t, exit.Reason, "ssh")
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
				srv := startSSHD(t)
				p, _ := newSSHPool(t, srv, procpool.Config{Remote: []procpool.Launcher{sshTo(srv, 2)}, OnCrash: policy.policy})
				before := p.Workers()

				marker := filepath.Join(t.TempDir(), "held")
				f := Hold.Submit(p, marker)
				pid := waitHold(t, marker)
				require.Contains(t, before, pid)
				require.True(t, isRemoteWorker(srv, pid))
				how.kill(t, srv, pid)

				_, err := f.Get(ctx(t))
				t.Log(err)
				how.check(t, requireWorkerExit(t, err, policy.want, pid), err)
				require.Eventually(t, func() bool { return !running(pid) }, 3*time.Second, 10*time.Millisecond,
					"the remote worker outlived its end")

				if policy.policy == procpool.Break {
					_, err := Square.Submit(p, 2).Get(ctx(t))
					require.ErrorIs(t, err, procpool.ErrBrokenPool, "a broken pool refuses work")
					return
				}
				replacement := waitReplacement(t, srv, p, before)
				served := servedBy(t, p, 40)
				assert.NotContains(t, served, pid)
				assert.Contains(t, served, replacement, "the new SSH worker serves calls: %v", served)
				st := p.Stats()
				assert.Equal(t, 1, st.Deaths)
				assert.Equal(t, 1, st.Lost)
				require.NoError(t, p.Close())
			})
		}
	}
}

// waitReplacement waits for the pool to have as many SSH workers as before,
// every one of them a live worker under the sshd, and returns the one that
// is new.
func waitReplacement(t *testing.T, srv *sshtest.Server, p *procpool.Pool, before []int) int {
	t.Helper()
	var fresh int
	require.Eventually(t, func() bool {
		remote, _ := sshWorkers(p)
		fresh = 0
		for _, pid := range remote {
			if !isRemoteWorker(srv, pid) {
				return false // still connecting: the pid is the ssh client's
			}
			if !slices.Contains(before, pid) {
				fresh = pid
			}
		}
		return len(remote) == len(before) && fresh != 0
	}, 15*time.Second, 10*time.Millisecond, "no replacement SSH worker: %v", p.Stats())
	return fresh
}

// A user checks: a host that cannot be reached fails New within moments,
// with an error that names the launcher and carries ssh's own message.
func TestSSHUnreachable(t *testing.T) {
	srv := startSSHD(t)
	for _, tc := range []struct {
		name string
		dest string
		args []string
		want string
	}{
		{"connection refused", sshtest.Dest, []string{"-p", strconv.Itoa(closedPort(t))}, "Connection refused"},
		{"unknown host", "nosuchhost.invalid", nil, "Could not resolve hostname"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			p, err := procpool.New(procpool.Config{
				Remote: []procpool.Launcher{procpool.SSH(tc.dest, 2, procpool.SSHArgs(srv.ClientArgs()...), procpool.SSHArgs(tc.args...))},
				Logger: nullLogger(),
			})
			took := time.Since(start)
			require.Nil(t, p)
			t.Log(took, err)
			require.ErrorIs(t, err, procpool.ErrStartup)
			assert.Less(t, took, 5*time.Second)
			assert.Contains(t, err.Error(), " on ssh "+tc.dest+" ")
			assert.Contains(t, err.Error(), tc.want)
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, "ssh "+tc.dest, exit.Host)
			assert.Equal(t, 255, exit.ExitCode)
			assert.Contains(t, exit.Reason, "ssh failed")
			assert.Contains(t, exit.Stderr, tc.want)
		})
	}
	assert.Empty(t, srv.Sessions())
}

// closedPort returns a port on 127.0.0.1 where nothing listens.
func closedPort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A user checks: when a host goes down under Respawn, the pool carries on
// with its other workers, backs off that host instead of breaking, and
// takes the host back when it returns.
func TestSSHHostDownAndBack(t *testing.T) {
	srv := startSSHD(t)
	p, logs := newSSHPool(t, srv, procpool.Config{Workers: 1, Remote: []procpool.Launcher{sshTo(srv, 1)}, OnCrash: procpool.Respawn})
	remote, local := sshWorkers(p)
	require.Len(t, remote, 1)
	require.Len(t, local, 1)

	require.NoError(t, syscall.Kill(remote[0], syscall.SIGKILL))
	srv.Kill()
	require.Eventually(t, func() bool { return !slices.Contains(p.Workers(), remote[0]) }, 5*time.Second, 10*time.Millisecond,
		"the pool did not notice its SSH worker die")

	deadline := time.Now().Add(1500 * time.Millisecond)
	calls := 0
	for ; time.Now().Before(deadline); calls++ {
		v, err := Square.Submit(p, calls).Get(ctx(t))
		require.NoError(t, err, "a call failed while the host was down")
		require.Equal(t, calls*calls, v)
	}
	t.Logf("%d calls completed while the host was down", calls)
	assert.Contains(t, logs.String(), "workers keep failing to start; backing off")
	assert.Contains(t, logs.String(), "Connection refused")
	_, stillLocal := sshWorkers(p)
	assert.Equal(t, local, stillLocal, "the local worker carried on")

	srv.Restart()
	back := waitReplacement(t, srv, p, remote)
	served := servedBy(t, p, 40)
	assert.Contains(t, served, back, "the SSH worker that came back serves calls: %v", served)
	require.NoError(t, p.Close())
}

// A user checks: a worker that is another build of the program, one with
// other tasks or another protocol, fails New with an error that says so.
func TestSSHWorkerIsAnotherBuild(t *testing.T) {
	srv := startSSHD(t)
	exe, err := os.Executable()
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		script string
		want   []string
	}{
		{
			"other tasks",
			"exec env PROCPOOL_TEST_EXTRA_TASK=1 '" + exe + "' \"$@\"",
			[]string{"registered tasks differ", `unknown to the pool: ["test.extra(int) int"]`},
		},
		{
			// A hello of protocol 1 (the frame's length, then [hello, 1, 1,
			// []]); then it waits, as an old worker would, for a setup that
			// never comes, and ends at the end of its stdin.
			"protocol 1",
			`printf '\000\000\000\005\224\001\001\001\220'; exec cat >/dev/null`,
			[]string{"protocol version 1", "is it a build of the same program?"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			program := filepath.Join(t.TempDir(), "worker.sh")
			require.NoError(t, os.WriteFile(program, []byte("#!/bin/sh\n"+tc.script+"\n"), 0o755))
			p, err := procpool.New(procpool.Config{
				Remote: []procpool.Launcher{sshTo(srv, 1, procpool.RemoteProgram(program))},
				Logger: nullLogger(),
			})
			require.Nil(t, p)
			t.Log(err)
			require.ErrorIs(t, err, procpool.ErrStartup)
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			var exit *procpool.WorkerExitError
			require.ErrorAs(t, err, &exit)
			assert.Equal(t, sshHost, exit.Host)
			assertNoRemoteWorkers(t, srv)
		})
	}
}

// A user checks: if the program dies (SIGKILL: no deferred Close), its
// remote workers end too, and the host is left with no session.
func TestSSHParentKilled(t *testing.T) {
	srv := startSSHD(t)
	holds := t.TempDir()
	cmd, pids := startParent(t, "ssh-parent",
		"PROCPOOL_TEST_SSH_ARGS="+strings.Join(srv.ClientArgs(), "\n"),
		"PROCPOOL_TEST_HOLD_DIR="+holds)
	for _, pid := range pids {
		require.True(t, isRemoteWorker(srv, pid), "pid %d is a worker under the sshd", pid)
	}
	require.Len(t, pids, 2)
	require.Eventually(t, func() bool {
		ents, _ := os.ReadDir(holds)
		return len(ents) > 0
	}, 15*time.Second, 5*time.Millisecond, "the parent's Map never reached a worker")

	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	require.ErrorContains(t, cmd.Wait(), "signal: killed")
	require.Eventually(t, func() bool {
		for _, pid := range pids {
			if running(pid) {
				return false
			}
		}
		return len(srv.Sessions()) == 0
	}, 3*time.Second, 10*time.Millisecond, "remote workers or sessions outlived their parent: sessions %v", srv.Sessions())
}

// A user checks: Config.Env and GOMAXPROCS reach SSH workers, which get
// no environment from ssh, through the handshake: GOMAXPROCS as set, or by
// default the host's CPUs divided among the launcher's workers.
func TestSSHWorkerSettings(t *testing.T) {
	srv := startSSHD(t)
	for _, tc := range []struct {
		name       string
		gomaxprocs int
		want       int
	}{
		{"WorkerGOMAXPROCS 3", 3, 3},
		{"default", 0, max(1, runtime.NumCPU()/2)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newSSHPool(t, srv, procpool.Config{
				Remote:           []procpool.Launcher{sshTo(srv, 2)},
				Env:              []string{"PROCPOOL_TEST_SSH_ENV=from Config.Env"},
				WorkerGOMAXPROCS: tc.gomaxprocs,
			})
			env, err := Getenv.Map(ctx(t), p, slices.Repeat([]string{"PROCPOOL_TEST_SSH_ENV"}, 8), procpool.Chunksize(1))
			require.NoError(t, err)
			assert.Equal(t, slices.Repeat([]string{"from Config.Env"}, 8), env)
			procs, err := GOMAXPROCS.Map(ctx(t), p, make([]struct{}, 8), procpool.Chunksize(1))
			require.NoError(t, err)
			assert.Equal(t, slices.Repeat([]int{tc.want}, 8), procs)
			require.NoError(t, p.Close())
		})
	}
}

// A user checks: closing a pool leaves the program's other children alone,
// such as the sshd the next pool connects to. The pool's spawner goroutine
// locks whatever OS thread it runs on and lets that thread exit when the
// pool shuts down, and Pdeathsig fires when the thread that started a child
// exits, not the process: a child the program started from that thread with
// Pdeathsig (as internal/sshtest starts the sshd) is killed. Each round
// starts such a child from the test's goroutine, then starts and closes
// pools from subtests, as the tests here do with their sshd; at the end the
// sshd must still take a pool.
func TestSSHServerOutlivesPools(t *testing.T) {
	srv := startSSHD(t)
	for round := range 10 {
		child := exec.Command("sleep", "60")
		child.SysProcAttr = pdeathsig()
		require.NoError(t, child.Start())
		t.Cleanup(func() {
			child.Process.Kill()
			child.Wait()
		})
		for i := range 3 {
			t.Run(fmt.Sprintf("round %d pool %d", round, i), func(t *testing.T) {
				p, err := procpool.New(procpool.Config{Workers: 1, Logger: nullLogger()})
				require.NoError(t, err)
				require.NoError(t, p.Close())
			})
			require.True(t, running(child.Process.Pid), "round %d: closing pool %d killed a child the program started with Pdeathsig", round, i)
		}
		// The thread may end a moment after Close returns.
		require.Never(t, func() bool { return !running(child.Process.Pid) }, 100*time.Millisecond, 5*time.Millisecond,
			"round %d: closing a pool killed a child the program started with Pdeathsig", round)
	}
	p, _ := newSSHPool(t, srv, procpool.Config{Remote: []procpool.Launcher{sshTo(srv, 1)}})
	out, err := Square.Map(ctx(t), p, []int{1, 2, 3})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 4, 9}, out)
	require.NoError(t, p.Close())
}

// TestSSHReshipsAfterCacheLoss: when the shipped copy vanishes from the
// host's cache (a cleaner of ~/.cache, say), the next replacement ships the
// program again instead of failing for ever.
func TestSSHReshipsAfterCacheLoss(t *testing.T) {
	srv := startSSHD(t)
	cache := filepath.Join(t.TempDir(), "cache")
	p, logs := newSSHPool(t, srv, procpool.Config{
		Remote:  []procpool.Launcher{sshTo(srv, 1, procpool.ShipBinary(cache))},
		OnCrash: procpool.Respawn,
	})
	require.Equal(t, 1, strings.Count(logs.String(), "shipped the program"))

	d, err := executable.SHA256()
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(cache, d.SHA256)))
	old := p.Workers()[0]
	require.NoError(t, syscall.Kill(old, syscall.SIGKILL))

	require.Eventually(t, func() bool { return p.Stats().Deaths == 1 }, 5*time.Second, 5*time.Millisecond)
	// The call waits for a replacement that completes its handshake.
	v, err := Square.Submit(p, 12).Get(ctx(t))
	require.NoError(t, err, logs.String())
	require.Equal(t, 144, v)
	require.NotEqual(t, old, p.Workers()[0])
	require.Equal(t, 2, strings.Count(logs.String(), "shipped the program"), logs.String())
	require.FileExists(t, filepath.Join(cache, d.SHA256))
	require.NoError(t, p.Close())
}
