package main

// The benchmark measures worker processes, which Windows does not run yet;
// these stand-ins only let it build there.

import (
	"os"
	"os/exec"
)

func newProcessGroup(*exec.Cmd) {}

// killGroup kills the process pgid alone: Windows has no process groups to
// signal.
func killGroup(pgid int) { _ = killProcess(pgid) }

func killProcess(pid int) error {
	p, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	return p.Kill()
}

// cpuSeconds is not measured here.
func cpuSeconds() float64 { return 0 }

// peakRSS is unknown here: -1.
func peakRSS(*os.ProcessState) int64 { return -1 }
