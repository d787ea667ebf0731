package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// The Python peers run in python3, from a script kept in the repo and
// embedded in this program, so that `go run ./cmd/bench` works from any
// directory and the binary is self-contained.

//go:embed python/pool_bench.py
var poolBenchPy []byte

// pythonConfig is what the script takes: the same sizes as the Go side.
type pythonConfig struct {
	Workers  []int           `json:"workers"`
	Runs     int             `json:"runs"`
	Calls    int             `json:"calls"`
	Chunks   []pythonChunk   `json:"chunks"`
	Payloads []pythonPayload `json:"payloads"`
	Memory   pythonMemory    `json:"memory"`
	Scaling  pythonScaling   `json:"scaling"`
}

// pythonPayload is one block size of the payload workload.
type pythonPayload struct {
	Label     string `json:"label"`
	BlockSize int    `json:"block_size"`
	Blocks    int    `json:"blocks"`
}

// pythonMemory is the payload-memory figure's part: no blocks skips it.
type pythonMemory struct {
	Blocks    int `json:"blocks"`
	BlockSize int `json:"block_size"`
	Workers   int `json:"workers"`
}

// pythonScaling is the scaling section's part: no workers skips it.
type pythonScaling struct {
	Workers         []int `json:"workers"`
	Calls           int   `json:"calls"`
	MapItems        int   `json:"map_items"`
	SleepsPerWorker int   `json:"sleeps_per_worker"`
	SleepMs         int   `json:"sleep_ms"`
}

type pythonChunk struct {
	Label     string `json:"label"`
	ChunkSize int    `json:"chunksize"`
	PoolItems int    `json:"pool_items"`
	PPEItems  int    `json:"ppe_items"`
}

// pythonOutput is what the script prints.
type pythonOutput struct {
	Python  string `json:"python"`
	Results []struct {
		Workload  string    `json:"workload"`
		Impl      string    `json:"impl"`
		Workers   int       `json:"workers"`
		Runs      []float64 `json:"runs"`
		N         int       `json:"n"`
		Chunk     string    `json:"chunk"`
		ChunkSize int       `json:"chunksize"`
		BlockSize int       `json:"block_size"`
		Note      string    `json:"note"`
		Skipped   string    `json:"skipped"`
	} `json:"results"`
}

// findPython returns the path of the interpreter, or "" and why not.
func findPython(name string) (string, string) {
	if name == "" {
		return "", "Python baselines skipped (-python \"\")"
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Sprintf("%s not found on PATH: Python baselines skipped; install python3 to compare with multiprocessing.Pool and ProcessPoolExecutor", name)
	}
	return path, ""
}

// pythonVersion asks the interpreter for its version.
func pythonVersion(path string) string {
	out, err := exec.Command(path, "--version").CombinedOutput()
	if err != nil {
		return "unknown"
	}
	return strings.TrimPrefix(strings.TrimSpace(string(out)), "Python ")
}

// runPython runs the script with the given sizes and returns its results.
// The script and everything it forks run in a process group of their own,
// killed as a whole if ctx ends: a hung multiprocessing.Pool leaves no
// process behind. Its progress lines go to progress.
func runPython(ctx context.Context, python string, s Sizes, workers, scaling []int, runs int, progress io.Writer) ([]*Result, string, error) {
	dir, err := os.MkdirTemp("", "procpool-bench-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "pool_bench.py")
	if err := os.WriteFile(script, poolBenchPy, 0o644); err != nil {
		return nil, "", err
	}
	cfg := pythonConfig{
		Workers: append([]int{}, workers...), Runs: runs, Calls: s.PyRoundTrips,
		Scaling: pythonScaling{
			Workers: append([]int{}, scaling...), Calls: s.PyScaleRoundTrips, MapItems: s.PyScaleMapItems,
			SleepsPerWorker: s.SleepsPerWorker, SleepMs: scaleSleepMs,
		},
	}
	for _, c := range s.Chunks {
		cfg.Chunks = append(cfg.Chunks, pythonChunk{Label: c.Label, ChunkSize: c.Size, PoolItems: c.PoolItems, PPEItems: c.PPEItems})
	}
	if len(workers) > 0 { // with sections 1 to 6 only
		cfg.Memory = pythonMemory{Blocks: s.MemoryBlocks, BlockSize: s.MemoryBlockSize, Workers: memoryWorkers}
	}
	for _, pc := range s.PayloadSizes {
		cfg.Payloads = append(cfg.Payloads, pythonPayload{Label: pc.Label(), BlockSize: pc.Size, Blocks: pc.Blocks})
	}
	arg, err := json.Marshal(cfg)
	if err != nil {
		return nil, "", err
	}
	cmd := exec.Command(python, script, string(arg))
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, progress
	newProcessGroup(cmd)
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	pgid := cmd.Process.Pid
	defer killGroup(pgid) // whatever is left of the group
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		killGroup(pgid)
		<-done
		return nil, "", fmt.Errorf("python: %w", ctx.Err())
	}
	if err != nil {
		return nil, "", fmt.Errorf("python: %w", err)
	}
	var out pythonOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, "", fmt.Errorf("python: read its results: %w", err)
	}
	if len(out.Results) == 0 {
		return nil, "", errors.New("python: no results")
	}
	var rs []*Result
	for _, pr := range out.Results {
		r := newResult(pr.Workload, pr.Impl, implLabel(pr.Impl, pr.Workload), pr.Workers)
		r.Runs, r.N, r.Chunk, r.ChunkSize, r.BlockSize, r.Note, r.Skipped = pr.Runs, pr.N, pr.Chunk, pr.ChunkSize, pr.BlockSize, pr.Note, pr.Skipped
		rs = append(rs, r.finish())
	}
	return rs, out.Python, nil
}

// pythonTimeout bounds the Python part: generous, so that only a hang
// trips it, on a busy machine too, where the payloads' three sizes and the
// memory figure's 512 MiB pickled per run take minutes.
func pythonTimeout(quick, scaling bool) time.Duration {
	d := 15 * time.Minute
	if quick {
		d = 2 * time.Minute
	}
	if scaling {
		d += d / 2
	}
	return d
}
