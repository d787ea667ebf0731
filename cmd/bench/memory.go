package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

// The payload-memory figure (section 5b) is how far the parent's resident
// memory rises above what it held before, at its peak, while it Maps a task
// that takes a megabyte and returns a small value over an input of
// hundreds of distinct megabyte blocks. A pool that streams its input holds
// a few blocks at a time; one that encodes the whole input ahead of the
// workers holds a second copy of it.
//
// The peak of a process only grows, so the figure is taken in a fresh child
// of this program per run (roleMemory), whose peak nothing else has raised:
// it starts its pool, allocates and touches the input, resets its peak,
// reads it (VmHWM, Linux's /proc/self/status), runs the Map, reads it again
// and prints both. The Python peers do the same in a fresh python3.

// roleMemory is the floor-child role of the memory figure's child; the
// figure's sizes travel in memoryEnv as "blocks,size,workers".
const (
	roleMemory = "memory"
	memoryEnv  = "PROCPOOL_BENCH_MEMORY"
)

// memoryWorkers is the pool's size for the figure: the 2 workers.
const memoryWorkers = 2

// memoryTimeout bounds a memory child's Map: only a hang should trip it.
const memoryTimeout = 5 * time.Minute

// memoryReport is what a memory child prints, one JSON line: the input's
// size and the parent's peak resident memory before and after the Map, in
// bytes; or why it was not measured.
type memoryReport struct {
	Input   int64  `json:"input"`
	Before  int64  `json:"before"`
	After   int64  `json:"after"`
	Skipped string `json:"skipped,omitempty"`
}

// growthMiB is the figure: the peak's rise during the Map, in MiB.
func (m memoryReport) growthMiB() float64 { return mib(m.After - m.Before) }

// serveMemory runs this process as a memory child, prints its report and
// exits.
func serveMemory() {
	var blocks, size, workers int
	if _, err := fmt.Sscanf(os.Getenv(memoryEnv), "%d,%d,%d", &blocks, &size, &workers); err != nil {
		fmt.Fprintf(os.Stderr, "bench: memory child: bad %s=%q: %v\n", memoryEnv, os.Getenv(memoryEnv), err)
		os.Exit(2)
	}
	rep, err := measureMapMemory(blocks, size, workers)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: memory child:", err)
		os.Exit(1)
	}
	if err := json.NewEncoder(os.Stdout).Encode(rep); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// measureMapMemory is the memory child's work: a Map of Length over blocks
// distinct blocks of size bytes, at chunksize 1, in a pool of workers.
func measureMapMemory(blocks, size, workers int) (memoryReport, error) {
	if runtime.GOOS != "linux" {
		return memoryReport{Skipped: "needs Linux's VmHWM (/proc/self/status): not measured on " + runtime.GOOS}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), memoryTimeout)
	defer cancel()
	one := procpool.Chunksize(1)
	// The pool starts first, as a program's would, and is warmed up with
	// one block per worker: its buffers for a megabyte frame are start-up's
	// cost, not the Map's.
	p, err := startWarm(ctx, procpool.Config{Workers: workers}, func(p *procpool.Pool) error {
		_, err := Length.Map(ctx, p, slices.Repeat([][]byte{make([]byte, size)}, workers), one)
		return err
	})
	if err != nil {
		return memoryReport{}, err
	}
	defer p.Close()
	in := make([][]byte, blocks)
	for i := range in {
		b := make([]byte, size)
		for j := range b {
			b[j] = byte(i + j) // every page written: resident before the Map
		}
		in[i] = b
	}
	// A collection now leaves the input as the live heap, and the same GC
	// goal in every run, whatever the warm-up left behind.
	runtime.GC()
	resetPeak()
	rep := memoryReport{Input: int64(blocks) * int64(size)}
	if rep.Before, err = vmHWM(); err != nil {
		return memoryReport{}, err
	}
	lens, err := Length.Map(ctx, p, in, one)
	if err != nil {
		return memoryReport{}, err
	}
	if rep.After, err = vmHWM(); err != nil {
		return memoryReport{}, err
	}
	total := 0
	for _, n := range lens {
		total += n
	}
	if total != blocks*size {
		return memoryReport{}, fmt.Errorf("map memory: %w: %d bytes of %d", errMismatch, total, blocks*size)
	}
	runtime.KeepAlive(in)
	return rep, nil
}

// vmHWM is this process's peak resident memory, in bytes.
func vmHWM() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no VmHWM in /proc/self/status")
}

// resetPeak sets the peak to the current resident memory (Linux 4.0 on),
// so that start-up's and the warm-up's peaks cannot hide the Map's. Where
// it fails the peak so far stands, which can only understate the rise by
// what they freed since.
func resetPeak() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// mapMemory runs one memory child of blocks × size bytes at workers and
// returns its report.
func mapMemory(blocks, size, workers int) (memoryReport, error) {
	c, err := startChild(roleMemory, 1, fmt.Sprintf("%s=%d,%d,%d", memoryEnv, blocks, size, workers))
	if err != nil {
		return memoryReport{}, err
	}
	var rep memoryReport
	derr := json.NewDecoder(c.out).Decode(&rep)
	if err := c.stop(); err != nil {
		return memoryReport{}, fmt.Errorf("memory child: %w", err)
	}
	if derr != nil {
		return memoryReport{}, fmt.Errorf("memory child: read its report: %w", derr)
	}
	return rep, nil
}
