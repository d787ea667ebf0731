package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/procpool/procpool/pkg/procpool"
)

// The test binary is the program's stand-in: the pools re-execute it as
// their workers, and the floor re-executes it as its child, so TestMain
// hands both roles over before any test runs.
func TestMain(m *testing.M) {
	procpool.Main()
	serveRole()
	// Under -race, a process that exits with code 0 first sleeps for the
	// race runtime's atexit_sleep_ms, a second by default: every worker and
	// floor child stopped would cost a second. They inherit this.
	if _, set := os.LookupEnv("GORACE"); !set {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

// TestQuick runs the program's -quick mode end to end, Python included
// when python3 is installed, and checks that every workload produced its
// figures, the targets were evaluated, and the files were written: the
// benchmark cannot rot unnoticed. It checks no figure's value: CI machines
// are too noisy for that.
func TestQuick(t *testing.T) {
	python := "python3"
	if _, err := exec.LookPath(python); err != nil {
		t.Log("python3 is not installed: the Python peers are skipped")
		python = ""
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := run(ctx, Options{Runs: 1, Quick: true, Out: dir, Python: python}, &progress)
	require.NoError(t, err, "progress:\n%s", progress.String())

	impls := []string{iProcesses, iGoroutines, iErrgroup}
	if python != "" {
		impls = append(impls, iPool, iPPE)
	}
	// Figures no implementation has: the floor of a Map, bare goroutines'
	// start-up, Python's compute workloads, and a few more.
	missing := map[string]map[string]bool{
		iFloor:    {wMap: true},
		iErrgroup: {wStartup: true, wRecovery: true, wRSS: true},
		iPool:     {wCPU10: true, wCPU1: true, wAlloc: true},
		iPPE:      {wCPU10: true, wCPU1: true, wAlloc: true, wPayload: true, wRSS: true},
	}
	for _, s := range sections {
		for _, impl := range append([]string{iFloor}, impls...) {
			found := false
			for _, r := range rep.Results {
				if r.Workload == s.workload && r.Impl == impl {
					found = true
					if r.Skipped == "" {
						assert.Len(t, r.Runs, 1, "%s %s %d", r.Workload, r.Impl, r.Workers)
						assert.Positive(t, r.Median, "%s %s %d", r.Workload, r.Impl, r.Workers)
					}
				}
			}
			wantMissing := missing[impl][s.workload]
			if !wantMissing {
				assert.True(t, found, "no %s figure for %s", impl, s.workload)
			}
		}
	}
	for _, k := range rep.Workers {
		for _, cc := range quickSizes.Chunks {
			assert.NotNil(t, rep.find(wMap, iProcesses, k, cc.Label), "map, %d workers, chunk %s", k, cc.Label)
		}
	}

	require.Len(t, rep.Checks, 11)
	for _, c := range rep.Checks {
		assert.Contains(t, []string{"PASS", "MISS"}, c.Status, "%s: %s", c.Name, c.Detail)
	}

	var table bytes.Buffer
	rep.writeTable(&table)
	for _, s := range sections {
		assert.Contains(t, table.String(), s.title)
	}
	assert.Contains(t, table.String(), "Targets")
	assert.Contains(t, table.String(), rep.Machine.CPU)

	for _, name := range []string{"throughput.svg", "throughput.png", "latency.svg", "latency.png", "table.txt"} {
		info, err := os.Stat(filepath.Join(dir, name))
		if assert.NoError(t, err) {
			assert.Positive(t, info.Size(), name)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	require.NoError(t, err)
	var back Report
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Len(t, back.Results, len(rep.Results))
}

// Without python3 the program says so and carries on.
func TestPythonMissing(t *testing.T) {
	path, why := findPython("no-such-python3-here")
	assert.Empty(t, path)
	assert.Contains(t, why, "not found")
	assert.Contains(t, why, "skipped")
}

// The GC cycles of a run count each heap once, however its calls overlap.
func TestGCPerHeap(t *testing.T) {
	outs := []ChurnOut{
		{PID: 1, GCStart: 10, GCEnd: 12},
		{PID: 1, GCStart: 11, GCEnd: 15}, // overlaps the first: one heap
		{PID: 2, GCStart: 3, GCEnd: 4},
	}
	assert.Equal(t, 6.0, gcPerHeap(outs))
}

func TestMedian(t *testing.T) {
	r := (&Result{Runs: []float64{5, 1, 3, 2}}).finish()
	assert.Equal(t, 2.5, r.Median)
	assert.Equal(t, 1.0, r.Min)
	assert.Equal(t, 5.0, r.Max)
}

func TestChunkOrDefault(t *testing.T) {
	assert.Equal(t, 7, chunkOrDefault(7, 1000, 2))
	assert.Equal(t, 125_000, chunkOrDefault(0, 1_000_000, 2))
	assert.Equal(t, 1, chunkOrDefault(0, 3, 2))
}

// The embedded script is the one in the repo.
func TestEmbeddedScript(t *testing.T) {
	b, err := os.ReadFile("python/pool_bench.py")
	require.NoError(t, err)
	assert.True(t, bytes.Equal(b, poolBenchPy))
	assert.True(t, strings.HasPrefix(string(b), "#!/usr/bin/env python3"))
}
