package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
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
	rep, err := run(ctx, Options{Runs: 1, Quick: true, Out: dir, Python: python, Scaling: quickScaling}, &progress)
	require.NoError(t, err, "progress:\n%s", progress.String())

	impls := []string{iProcesses, iGoroutines, iErrgroup}
	if python != "" {
		impls = append(impls, iPool, iPPE)
	}
	// Figures no implementation has: the floor of a Map, bare goroutines'
	// start-up, Python's compute workloads and its respawn to ready, and a few more. The scaling
	// section is procpool's processes against Python's Pool, with an ideal
	// for its sleeps only.
	missing := map[string]map[string]bool{
		iFloor:      {wMap: true, wMapMemory: true},
		iGoroutines: {wMapMemory: true},
		iErrgroup:   {wStartup: true, wRecovery: true, wRSS: true, wMapMemory: true},
		iPool:       {wCPU10: true, wCPU1: true, wAlloc: true, wScaleReady: true}, // a Pool does not say when a worker is ready
		iPPE:        {wCPU10: true, wCPU1: true, wAlloc: true, wRSS: true},
	}
	for _, s := range sections {
		if isScaling(s.workload) {
			for _, impl := range []string{iGoroutines, iErrgroup, iPPE} {
				missing[impl][s.workload] = true
			}
			missing[iFloor][s.workload] = s.workload != wScaleSleep
		}
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
		// Every block size has its floor and its peers, Python's too.
		for _, pc := range quickSizes.PayloadSizes {
			for _, impl := range impls {
				if impl == iErrgroup {
					continue
				}
				r := rep.find(wPayload, impl, k, pc.Label())
				if assert.NotNil(t, r, "payload %s, %s, %d workers", pc.Label(), impl, k) {
					assert.Equal(t, pc.Size, r.BlockSize)
					assert.Equal(t, pc.Blocks, r.N)
					assert.Positive(t, r.VsFloor, "payload %s, %s, %d workers: × floor", pc.Label(), impl, k)
					assert.NotEmpty(t, r.BestPeer, "payload %s, %s, %d workers", pc.Label(), impl, k)
				}
			}
		}
	}
	// The payload-memory figure: a fresh child's peak, on Linux, of an
	// input it reports.
	for _, impl := range impls {
		if impl == iGoroutines || impl == iErrgroup {
			continue
		}
		r := rep.find(wMapMemory, impl, memoryWorkers, "")
		if runtime.GOOS != "linux" && impl == iProcesses {
			assert.Nil(t, r, "no VmHWM: skipped")
			continue
		}
		if assert.NotNil(t, r, "payload memory, %s", impl) {
			assert.Equal(t, quickSizes.MemoryBlocks, r.N)
			assert.Contains(t, r.Note, fmt.Sprintf("input %d MiB", quickSizes.MemoryBlocks*quickSizes.MemoryBlockSize>>20))
		}
	}

	for _, k := range quickScaling {
		for _, wl := range []string{wScaleRoundTrip, wScaleMap, wScaleSleep, wScaleStartup, wScaleClose, wScaleTerminate, wScaleRespawn, wScaleReady} {
			chunk := map[string]string{wScaleMap: "1", wScaleSleep: "1"}[wl]
			r := rep.find(wl, iProcesses, k, chunk)
			if assert.NotNil(t, r, "%s, %d workers", wl, k) {
				assert.Positive(t, r.VsFewest, "%s, %d workers", wl, k)
			}
		}
		ideal := rep.find(wScaleSleep, iFloor, k, "")
		if assert.NotNil(t, ideal, "ideal sleeps, %d workers", k) {
			assert.Equal(t, float64(quickSizes.SleepsPerWorker*scaleSleepMs), ideal.Median)
		}
		// Bare processes sleep at least the ideal: they sleep it.
		bare := rep.find(wScaleSleep, iBare, k, "")
		if assert.NotNil(t, bare, "bare sleeps, %d workers", k) && ideal != nil {
			assert.GreaterOrEqual(t, bare.Median, ideal.Median, "bare sleeps, %d workers", k)
		}
	}

	// 11 targets of sections 1 to 6, 4 of the fast data path's at 2
	// workers (3 more where the widest pool is not 2), and 6 of scaling.
	main := 11 + 4
	if slices.Max(rep.Workers) != dataPathWorkers {
		main += 3
	}
	require.Len(t, rep.Checks, main+6)
	names := map[string]bool{}
	for _, c := range rep.Checks {
		assert.False(t, names[c.Name], "two targets named %q", c.Name)
		names[c.Name] = true
		if (python == "" && (strings.Contains(c.Name, "Pool") || strings.Contains(c.Name, "Python"))) ||
			(runtime.GOOS != "linux" && strings.Contains(c.Name, "peak RSS")) {
			assert.Equal(t, "SKIP", c.Status, c.Name)
			continue
		}
		assert.Contains(t, []string{"PASS", "MISS"}, c.Status, "%s: %s", c.Name, c.Detail)
	}
	for _, want := range []string{"data path: payload of 1MiB blocks ≥ 1.5 × Python PPE.map", "data path: round trip ≤ 1.5 ×", "data path: the parent's peak RSS growth"} {
		assert.True(t, slices.ContainsFunc(rep.Checks, func(c Check) bool { return strings.HasPrefix(c.Name, want) }), want)
	}

	var table bytes.Buffer
	rep.writeTable(&table)
	for _, s := range sections {
		assert.Contains(t, table.String(), s.title)
	}
	assert.Contains(t, table.String(), "Targets")
	assert.Contains(t, table.String(), rep.Machine.CPU)

	for _, name := range []string{"throughput.svg", "throughput.png", "latency.svg", "latency.png", "scaling.svg", "scaling.png", "table.txt"} {
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

// The scaling section runs alone with the other sections skipped: no
// figure, check or chart of theirs, and no panic for their missing workers.
func TestScalingAlone(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	rep, err := run(ctx, Options{Runs: 2, Quick: true, Out: dir, SkipMain: true, Scaling: []int{2, 3}}, &progress)
	require.NoError(t, err, "progress:\n%s", progress.String())
	for _, r := range rep.Results {
		assert.True(t, isScaling(r.Workload), r.Workload)
		if r.Impl != iFloor && r.Workload != wScaleTerminate {
			assert.Len(t, r.Runs, 2, "%s %d", r.Workload, r.Workers)
		}
	}
	term := rep.find(wScaleTerminate, iProcesses, 3, "")
	require.NotNil(t, term)
	assert.Len(t, term.Runs, 1, "Terminate is measured once per run set")
	require.Len(t, rep.Checks, 6)
	for _, c := range rep.Checks {
		if strings.Contains(c.Name, "Pool") || strings.Contains(c.Name, "16 workers") {
			assert.Equal(t, "SKIP", c.Status, c.Name) // no Python, no 16 workers
		} else {
			assert.Contains(t, []string{"PASS", "MISS"}, c.Status, "%s: %s", c.Name, c.Detail)
		}
	}
	var table bytes.Buffer
	rep.writeTable(&table)
	assert.Contains(t, table.String(), "× at 2")
	assert.NotContains(t, table.String(), sections[0].title)
	_, err = os.Stat(filepath.Join(dir, "scaling.svg"))
	assert.NoError(t, err)
	_, err = os.Stat(filepath.Join(dir, "throughput.svg"))
	assert.True(t, os.IsNotExist(err), "no throughput chart without section 2")
}

// The fast data path's targets: each from the figures it names, the peak
// RSS growth strictly under its bound, none repeating a target of sections
// 1 to 6 at the same workers, and a skipped figure's reason in the detail.
func TestDataPathChecks(t *testing.T) {
	fig := func(workload, impl string, workers int, chunk string, v float64) *Result {
		r := newResult(workload, impl, implLabel(impl, workload), workers)
		r.Chunk, r.Runs = chunk, []float64{v}
		return r.finish()
	}
	rep := &Report{Workers: []int{1, 2}, Results: []*Result{
		fig(wPayload, iProcesses, 2, "1MiB", 300),
		fig(wPayload, iPPE, 2, "1MiB", 100),
		fig(wPayload, iFloor, 2, "1MiB", 1000),
		fig(wRoundTrip, iFloor, 0, "", 20),
		fig(wRoundTrip, iProcesses, 2, "", 40),
		fig(wRoundTrip, iPool, 2, "", 250),
		fig(wMapMemory, iPool, 2, "", 1),
	}}
	mem := fig(wMapMemory, iProcesses, 2, "", 128)
	mem.N, mem.BlockSize = 512, 1<<20
	rep.Results = append(rep.Results, mem)
	rep.computeChecks()
	status := map[string]string{}
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.Name, "data path: ") {
			status[strings.TrimPrefix(c.Name, "data path: ")] = c.Status + ": " + c.Detail
		}
	}
	assert.Len(t, status, 4, "the Map and floor targets are mainChecks' at 2 workers")
	assert.Contains(t, status["payload of 1MiB blocks ≥ 1.5 × Python PPE.map (2 workers)"], "PASS: 300 procpool processes vs 100 Python PPE.map = 3.00×")
	assert.Contains(t, status["round trip ≤ 1.5 × the raw ping-pong floor (2 workers)"], "MISS: 40.0 procpool processes vs 20.0 raw pipe ping-pong (floor) = 2.00×")
	assert.Contains(t, status["round trip ≥ 10 × faster than Pool.apply (2 workers)"], "MISS")
	peak := status["the parent's peak RSS growth during a Map of 512 × 1MiB < 128 MiB above the input (2 workers)"]
	assert.True(t, strings.HasPrefix(peak, "MISS: 128 MiB median"), "128 MiB is not under 128: %s", peak)
	assert.Contains(t, peak, "Python Pool.map: 1.00 MiB")

	// Where the widest pool is not 2, the Map and floor targets are at 2
	// too; a skipped figure says why.
	mem.Runs, mem.Skipped = nil, "needs Linux's VmHWM"
	rep.Workers, rep.Checks = []int{1, 2, 4}, nil
	rep.computeChecks()
	n := 0
	for _, c := range rep.Checks {
		if strings.HasPrefix(c.Name, "data path: ") {
			n++
			if strings.Contains(c.Name, "peak RSS") {
				assert.Equal(t, "SKIP", c.Status)
				assert.Contains(t, c.Detail, "needs Linux's VmHWM")
			}
		}
	}
	assert.Equal(t, 7, n)
}

func TestSizeLabel(t *testing.T) {
	assert.Equal(t, "64KiB", sizeLabel(64<<10))
	assert.Equal(t, "1MiB", sizeLabel(1<<20))
	assert.Equal(t, "16MiB", sizeLabel(16<<20))
	assert.Equal(t, "1536KiB", sizeLabel(1536<<10))
	assert.Equal(t, "100B", sizeLabel(100))
}

func TestParseCounts(t *testing.T) {
	ks, err := parseCounts("256, 2,16,64,16")
	require.NoError(t, err)
	assert.Equal(t, []int{2, 16, 64, 256}, ks)
	ks, err = parseCounts("")
	require.NoError(t, err)
	assert.Empty(t, ks)
	_, err = parseCounts("2,x")
	assert.Error(t, err)
	_, err = parseCounts("0")
	assert.Error(t, err)
	assert.Equal(t, "2,16,64,256", countsString(defaultScaling))
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
