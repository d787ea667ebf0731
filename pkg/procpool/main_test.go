//go:build unix

package procpool_test

// TestMain, which makes the test binary its own worker, and its test roles.

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/procpool/procpool/internal/sshtest"
	"github.com/procpool/procpool/pkg/procpool"
)

// The test binary is its own worker: the pool re-executes it, and TestMain
// hands the worker to procpool.Main before any test runs.
func TestMain(m *testing.M) {
	switch os.Getenv("PROCPOOL_TEST_ROLE") {
	case "forget-main-exit":
		// A main that forgot procpool.Main(): it runs the parent's code,
		// whose New refuses to start a pool inside a worker.
		_, err := procpool.New(procpool.Config{})
		fmt.Fprintln(os.Stderr, "main failed:", err)
		os.Exit(1)
	case "forget-main-hang":
		time.Sleep(time.Hour)
	case "pipe-echo":
		pipeEcho()
	case "garbage-stdout":
		fmt.Print("Hello, world! This is not a frame.")
		time.Sleep(time.Hour)
	}
	procpool.Main()
	// Under -race a process lingers a second at exit; workers need not.
	os.Setenv("GORACE", "atexit_sleep_ms=0")
	if os.Getenv("PROCPOOL_TEST_ROLE") == "parent" {
		os.Exit(runParent())
	}
	if os.Getenv("PROCPOOL_TEST_ROLE") == "ssh-parent" {
		os.Exit(runSSHParent())
	}
	if os.Getenv("PROCPOOL_TEST_ROLE") == "slurm-parent" {
		os.Exit(runSlurmParent())
	}
	goleak.VerifyTestMain(m)
}

// runParent is a parent process for the tests that kill one: it starts a
// pool, prints its worker pids, and blocks in a Map.
func runParent() int {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("pids", strings.Trim(fmt.Sprint(p.Workers()), "[]"))
	_, err = Sleep.Map(context.Background(), p, []int{60000, 60000, 60000, 60000})
	fmt.Println("map returned", err)
	return 0
}

// runSSHParent is the "ssh-parent" role of TestMain: a parent process whose
// pool has two workers on the server that PROCPOOL_TEST_SSH_ARGS (the ssh
// client arguments, one a line) reaches. It prints the remote workers' pids
// and blocks in a Map of Hold calls that write to PROCPOOL_TEST_HOLD_DIR.
func runSSHParent() int {
	args := strings.Split(os.Getenv("PROCPOOL_TEST_SSH_ARGS"), "\n")
	p, err := procpool.New(procpool.Config{Remote: []procpool.Launcher{procpool.SSH(sshtest.Dest, 2, procpool.SSHArgs(args...))}})
	return holdParent(p, err)
}

// runSlurmParent is the "slurm-parent" role of TestMain: a parent process
// whose pool has two workers on the Slurm cluster that SLURM_CONF names. It
// prints their pids and blocks in a Map of Hold calls that write to
// PROCPOOL_TEST_HOLD_DIR.
func runSlurmParent() int {
	p, err := procpool.New(procpool.Config{Launcher: procpool.Slurm(2), StartTimeout: time.Minute})
	return holdParent(p, err)
}

// holdParent is the rest of a remote parent role: it prints the pids of its
// pool p (or New's error) and blocks in a Map of two Hold calls that write
// to PROCPOOL_TEST_HOLD_DIR.
func holdParent(p *procpool.Pool, err error) int {
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("pids", strings.Trim(fmt.Sprint(p.Workers()), "[]"))
	dir := os.Getenv("PROCPOOL_TEST_HOLD_DIR")
	_, err = Hold.Map(context.Background(), p, []string{filepath.Join(dir, "0"), filepath.Join(dir, "1")}, procpool.Chunksize(1))
	fmt.Println("map returned", err)
	return 0
}

// pipeEcho copies stdin to stdout in 16-byte messages: the far end of
// BenchmarkPipeFloor.
func pipeEcho() {
	msg := make([]byte, 16)
	for {
		if _, err := io.ReadFull(os.Stdin, msg); err != nil {
			os.Exit(0)
		}
		os.Stdout.Write(msg)
	}
}
