//go:build unix

package slurmtest

// This file finds processes: a step's, a process's descendants and parent;
// and the small helpers of the fixture.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/procpool/procpool/internal/procfs"
)

// stepProcesses returns the slurmstepd processes of this cluster (those with
// a file of its folder open, such as their node's log) and their
// descendants: the tasks of its job steps.
func (c *Cluster) stepProcesses() []int {
	var stepds []int
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(comm)) != "slurmstepd" {
			continue
		}
		fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		for _, fd := range fds {
			link, _ := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if strings.HasPrefix(link, c.Dir+"/") {
				stepds = append(stepds, pid)
				break
			}
		}
	}
	out := slices.Clone(stepds)
	for _, pid := range stepds {
		out = append(out, procfs.Descendants(pid)...)
	}
	return out
}

// StepOf returns the job step ("12.0") that runs pid on this machine: the
// name of its slurmstepd ancestor, "slurmstepd: [12.0]".
func StepOf(pid int) (string, bool) {
	for p := pid; p > 1; {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			return "", false
		}
		if s, ok := strings.CutPrefix(string(bytes.TrimRight(cmdline, "\x00")), "slurmstepd: ["); ok {
			return strings.TrimSuffix(s, "]"), true
		}
		var ok bool
		if p, ok = procfs.Parent(p); !ok {
			return "", false
		}
	}
	return "", false
}

// waitFor polls cond every 20 ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// freePorts returns n ports on 127.0.0.1 that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail keeps the last lines written to it.
type tail struct {
	mu    sync.Mutex
	lines []string
	part  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.part[:i]))
		t.part = t.part[i+1:]
	}
	if len(t.lines) > 200 {
		t.lines = t.lines[len(t.lines)-200:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(append(slices.Clone(t.lines), string(t.part)), "\n")
}
