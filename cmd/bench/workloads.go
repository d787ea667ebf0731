package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/metrics"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// Sizes are the sizes of the workloads. Full runs use fullSizes; -quick
// uses quickSizes, small enough for a test.
type Sizes struct {
	RoundTrips   int // sequential calls per run, Go
	PyRoundTrips int // the same for Python, whose calls are ~10× slower
	PingPongs    int // floor round trips per run
	Chunks       []ChunkCase
	CPUTasks     int           // the 10 ms tasks
	CPUShort     int           // the 1 ms tasks
	AllocTasks   int           // churn tasks
	AllocTask    time.Duration // about how long one churn task takes
	// PayloadSizes are the block sizes of the payload workload, each with
	// the blocks echoed per run: enough that a run takes a fraction of a
	// second at every size.
	PayloadSizes []PayloadCase
	// MemoryBlocks distinct blocks of MemoryBlockSize bytes are the input
	// of the parent's peak-memory figure (see memory.go).
	MemoryBlocks    int
	MemoryBlockSize int

	// The scaling section's sizes, per run and per worker count.
	ScaleRoundTrips   int // sequential calls, Go
	PyScaleRoundTrips int // and Python
	ScaleMapItems     int // trivial calls mapped at chunksize 1, Go
	PyScaleMapItems   int // and Python, whose Pool.map manages ~20,000 a second
	// SleepsPerWorker is the number of 10 ms sleeps mapped per worker, so
	// that the ideal time is the same at every worker count: 20 makes it
	// 200 ms, and 5,120 sleeps at 256 workers.
	SleepsPerWorker int
}

// PayloadCase is one block size of the payload workload, and the blocks
// echoed per run.
type PayloadCase struct {
	Size   int // bytes
	Blocks int
}

// Label names the block size in the table and as the figure's Chunk:
// "64KiB", "1MiB", "16MiB".
func (c PayloadCase) Label() string { return sizeLabel(c.Size) }

// sizeLabel prints a byte count in the largest binary unit that divides it.
func sizeLabel(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", n>>10)
	}
	return fmt.Sprintf("%dB", n)
}

// ChunkCase is one chunk size of the tiny-task workload, with the items
// each implementation maps per run. Python's ProcessPoolExecutor at small
// chunks manages ~10,000 items/s, so it maps fewer items, or a full run
// would take many minutes; the table shows every n.
type ChunkCase struct {
	Label     string `json:"label"`
	Size      int    `json:"chunksize"` // 0: the implementation's default
	GoItems   int    `json:"go_items"`
	PoolItems int    `json:"pool_items"`
	PPEItems  int    `json:"ppe_items"` // 0: not measured
}

var fullSizes = Sizes{
	RoundTrips: 5000, PyRoundTrips: 1000, PingPongs: 20000,
	Chunks: []ChunkCase{
		{"1", 1, 100_000, 20_000, 5_000},
		{"10", 10, 100_000, 100_000, 20_000},
		{"100", 100, 1_000_000, 1_000_000, 200_000},
		{"1000", 1000, 1_000_000, 1_000_000, 1_000_000},
		// ProcessPoolExecutor's default chunksize is 1: its figure is the
		// chunksize-1 one, and is not measured twice.
		{"default", 0, 1_000_000, 1_000_000, 0},
	},
	CPUTasks: 200, CPUShort: 400, AllocTasks: 200, AllocTask: 5 * time.Millisecond,
	// About 130 MB, 210 MB and 270 MB a run: 0.2 to 1 s at the rates of
	// a pipe and of Python's pickling.
	PayloadSizes: []PayloadCase{{64 << 10, 2000}, {1 << 20, 200}, {16 << 20, 16}},
	MemoryBlocks: 512, MemoryBlockSize: 1 << 20,
	ScaleRoundTrips: 2000, PyScaleRoundTrips: 500,
	ScaleMapItems: 50_000, PyScaleMapItems: 10_000,
	SleepsPerWorker: 20,
}

var quickSizes = Sizes{
	RoundTrips: 300, PyRoundTrips: 100, PingPongs: 1000,
	Chunks: []ChunkCase{
		{"1", 1, 2_000, 500, 200},
		{"10", 10, 5_000, 2_000, 500},
		{"100", 100, 20_000, 20_000, 5_000},
		{"1000", 1000, 20_000, 20_000, 20_000},
		{"default", 0, 20_000, 20_000, 0},
	},
	CPUTasks: 20, CPUShort: 20, AllocTasks: 20, AllocTask: 2 * time.Millisecond,
	PayloadSizes: []PayloadCase{{64 << 10, 64}, {1 << 20, 16}, {16 << 20, 2}},
	MemoryBlocks: 64, MemoryBlockSize: 1 << 20,
	ScaleRoundTrips: 100, PyScaleRoundTrips: 50,
	ScaleMapItems: 2_000, PyScaleMapItems: 500,
	SleepsPerWorker: 4,
}

// work is the calibrated size of the CPU-bound and allocation tasks, and
// the inputs shared by every implementation.
type work struct {
	spin10 int // xorshift rounds of a ~10 ms task
	spin1  int // and of a ~1 ms one
	trees  int // trees of a churn task
	ints   []int
	out    []int // errgroup's Map results: one buffer, touched, reused
	// payloads are, per PayloadSizes case, Blocks references to one
	// block: no Go side memoises, and the parent's heap stays small.
	payloads [][][]byte
}

// newWork calibrates the tasks on this machine. It runs before the big
// inputs are allocated, so the churn calibration sees a small heap, like a
// worker's.
func newWork(s Sizes) *work {
	w := &work{}
	w.spin10 = calibrate(10*time.Millisecond, func(n int) { sink.Add(spin(n)) })
	w.spin1 = w.spin10 / 10
	w.trees = calibrate(s.AllocTask, func(n int) { sink.Add(uint64(churn(n).Nodes)) })
	maxItems := 0
	for _, c := range s.Chunks {
		maxItems = max(maxItems, c.GoItems)
	}
	w.ints = make([]int, maxItems)
	w.out = make([]int, maxItems)
	for i := range w.ints {
		w.ints[i] = i
		w.out[i] = i // page it in, so that no run pays for its faults
	}
	for _, pc := range s.PayloadSizes {
		block := make([]byte, pc.Size)
		for i := range block {
			block[i] = byte(i)
		}
		w.payloads = append(w.payloads, slices.Repeat([][]byte{block}, pc.Blocks))
	}
	return w
}

// cpuCase is one of the compute workloads: how many tasks, of what size.
type cpuCase struct {
	workload string
	tasks    int
	arg      int
}

func (w *work) cpuCases(s Sizes) []cpuCase {
	return []cpuCase{
		{wCPU10, s.CPUTasks, w.spin10},
		{wCPU1, s.CPUShort, w.spin1},
		{wAlloc, s.AllocTasks, w.trees},
	}
}

// computeLocal runs a compute workload in this process, serially
// (workers 0) or on at most workers goroutines, and returns its wall time
// and, for churn, the GC cycles it cost.
func computeLocal(cc cpuCase, workers int) (time.Duration, float64) {
	outs, spun := make([]ChurnOut, cc.tasks), make([]uint64, cc.tasks)
	fn := func(i int) {
		if cc.workload == wAlloc {
			outs[i] = churn(cc.arg)
		} else {
			spun[i] = spin(cc.arg)
		}
	}
	settleHeap()
	var d time.Duration
	if workers == 0 {
		d = serialEach(cc.tasks, fn)
	} else {
		d = errgroupEach(workers, cc.tasks, fn)
	}
	sink.Add(spun[0])
	if cc.workload != wAlloc {
		return d, 0
	}
	return d, gcPerHeap(outs)
}

// settleHeap collects the parent's garbage before a compute run, so that
// every run starts with the same heap and GC goal: the steps before it
// (a Map's results, a megabyte payload) would otherwise leave a goal that
// depends on the order of the steps, and the goroutines' GC cycles with it.
func settleHeap() { runtime.GC() }

// heapLive is the parent's live heap as of the last GC, in bytes: right
// after settleHeap, the heap the goroutines' allocation-heavy tasks share.
func heapLive() uint64 {
	m := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// chunkOrDefault is the chunk size a Map uses: the one asked for, or
// procpool's (and multiprocessing.Pool's) default, ceil(n / (4 × workers)).
func chunkOrDefault(size, n, workers int) int {
	if size > 0 {
		return size
	}
	return max(1, (n+4*workers-1)/(4*workers))
}

// quietLogger keeps the pools' log lines (a killed worker's death, for one)
// out of the report.
var quietLogger = hclog.NewNullLogger()

func implOf(b procpool.Backend) string {
	if b == procpool.Goroutines {
		return iGoroutines
	}
	return iProcesses
}

// newPool starts a pool and warms it up (see startWarm) with a Map of
// trivial calls.
func newPool(ctx context.Context, cfg procpool.Config, w *work) (*procpool.Pool, error) {
	return startWarm(ctx, cfg, func(p *procpool.Pool) error {
		_, err := Noop.Map(ctx, p, w.ints[:min(len(w.ints), 10_000)])
		return err
	})
}

// startWarm starts a pool and warms it up with round trips, then warm: the
// first calls page in code, grow buffers and make the scheduler's
// estimates, which is start-up's cost, not what a run measures.
func startWarm(ctx context.Context, cfg procpool.Config, warm func(*procpool.Pool) error) (*procpool.Pool, error) {
	cfg.Logger = quietLogger
	p, err := procpool.New(cfg)
	if err != nil {
		return nil, err
	}
	err = func() error {
		for i := range 100 {
			if _, err := Noop.Submit(p, i).Get(ctx); err != nil {
				return err
			}
		}
		return warm(p)
	}()
	if err != nil {
		p.Terminate()
		return nil, err
	}
	return p, nil
}

// poolRoundTrip times calls sequential Submit+Get of the trivial task.
func poolRoundTrip(ctx context.Context, p *procpool.Pool, calls int) (time.Duration, error) {
	start := time.Now()
	for i := range calls {
		v, err := Noop.Submit(p, i).Get(ctx)
		if err != nil {
			return 0, err
		}
		if v != i {
			return 0, fmt.Errorf("round trip: %w: %d for %d", errMismatch, v, i)
		}
	}
	return time.Since(start), nil
}

// poolMap times one Map of the trivial task over in, in a pool of its own,
// warmed up by a Map of up to 10,000 items at the same chunk size and
// closed afterwards. A pool keeps tens of MiB of a large Map's state live
// until later work or Close releases it, and the long-lived pools would
// carry it into the other workloads: the allocation-heavy goroutines share
// the parent's heap, and its size sets how often their GC runs.
func poolMap(ctx context.Context, workers int, backend procpool.Backend, in []int, chunk int) (time.Duration, error) {
	p, err := procpool.New(procpool.Config{Workers: workers, Backend: backend, Logger: quietLogger})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	var opts []procpool.MapOption
	if chunk > 0 {
		opts = append(opts, procpool.Chunksize(chunk))
	}
	if _, err := Noop.Map(ctx, p, in[:min(len(in), 10_000)], opts...); err != nil {
		return 0, err
	}
	start := time.Now()
	out, err := Noop.Map(ctx, p, in, opts...)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	if n := len(in); len(out) != n || out[n-1] != in[n-1] {
		return 0, fmt.Errorf("map: %w", errMismatch)
	}
	return took, nil
}

// poolCompute times one Map of a compute workload, at the default chunk
// size, in a fresh pool, and returns the GC cycles it cost for churn. A
// pool that has just served tiny calls hands most chunks of the next heavy
// Map to one worker (its estimate of a call's cost is stale), so a pool
// shared with the other workloads would measure the order of the steps.
func poolCompute(ctx context.Context, workers int, backend procpool.Backend, cc cpuCase) (time.Duration, float64, error) {
	p, err := procpool.New(procpool.Config{Workers: workers, Backend: backend, Logger: quietLogger})
	if err != nil {
		return 0, 0, err
	}
	defer p.Close()
	args := slices.Repeat([]int{cc.arg}, cc.tasks)
	settleHeap()
	start := time.Now()
	if cc.workload == wAlloc {
		outs, err := Churn.Map(ctx, p, args)
		return time.Since(start), gcPerHeap(outs), err
	}
	_, err = Spin.Map(ctx, p, args)
	return time.Since(start), 0, err
}

// poolPayload times one Map of Echo over the blocks at chunksize 1, in a
// pool of its own, closed afterwards: the buffers a pool grows for
// megabyte frames would otherwise stay in the parent's heap, which the
// goroutine backend's allocation-heavy tasks share. Chunksize 1 is what the
// 1 MiB chunk limit makes of larger blocks anyway, and what the Python
// peers use at every size.
//
// The pool is warmed up by an untimed Map of the same blocks, as the
// Python peers are by an untimed first run: the timed Map then finds the
// parent's heap and the workers' buffers grown, rather than faulting in
// fresh memory for its results, a cost of the program's first large Map
// that the README names.
func poolPayload(ctx context.Context, workers int, backend procpool.Backend, blocks [][]byte) (time.Duration, error) {
	p, err := procpool.New(procpool.Config{Workers: workers, Backend: backend, Logger: quietLogger})
	if err != nil {
		return 0, err
	}
	defer p.Close()
	one := procpool.Chunksize(1)
	if _, err := Echo.Map(ctx, p, blocks, one); err != nil {
		return 0, err
	}
	// The warm-up left its copies of the blocks as garbage: collected now,
	// their memory holds this run's, as a Python peer's freed blocks do.
	settleHeap()
	start := time.Now()
	out, err := Echo.Map(ctx, p, blocks, one)
	took := time.Since(start)
	if err != nil {
		return 0, err
	}
	last := len(blocks[0]) - 1
	if len(out) != len(blocks) || len(out[0]) != len(blocks[0]) || out[0][last] != blocks[0][last] {
		return 0, fmt.Errorf("payload: %w", errMismatch)
	}
	return took, nil
}

// startOncePool times New to the first result of a fresh pool, and returns
// the median resident memory of its workers once they have served it.
func startOncePool(ctx context.Context, workers int, backend procpool.Backend) (time.Duration, float64, error) {
	start := time.Now()
	p, err := procpool.New(procpool.Config{Workers: workers, Backend: backend, Logger: quietLogger})
	if err != nil {
		return 0, 0, err
	}
	_, err = Noop.Submit(p, 1).Get(ctx)
	took := time.Since(start)
	var rss []float64
	for _, ws := range p.Stats().Workers {
		rss = append(rss, mib(ws.RSS))
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return took, medianOf(rss), err
}

// recoverOnce kills one worker of a Respawn pool and times SIGKILL to a
// result from its replacement. Each round submits one call per worker, so
// the replacement gets one as soon as it is ready rather than the survivors
// taking them all; the calls pause whoamiPause, which the figure includes.
func recoverOnce(ctx context.Context, p *procpool.Pool, workers int) (time.Duration, error) {
	old := p.Workers()
	start := time.Now()
	if err := killProcess(old[0]); err != nil {
		return 0, err
	}
	for time.Since(start) < 10*time.Second {
		fs := make([]*procpool.Future[int], workers)
		for i := range fs {
			fs[i] = WhoAmI.Submit(p, whoamiPause)
		}
		var took time.Duration
		for _, f := range fs {
			pid, err := f.Get(ctx)
			if errors.Is(err, procpool.ErrWorkerLost) {
				continue // sent to the dying worker before its death was seen
			}
			if err != nil {
				return 0, err
			}
			if took == 0 && !slices.Contains(old, pid) {
				took = time.Since(start)
			}
		}
		if took > 0 {
			return took, nil
		}
	}
	return 0, errors.New("recovery: no replacement served within 10s")
}

// respawnOnce kills an idle worker of a Respawn pool and times SIGKILL to
// its replacement's handshake, as Stats says (ReadyAt): the respawn alone,
// with no calls that compete with the replacement's start for the CPUs. It
// watches the cheap Workers until the replacement is listed, then waits for
// its handshake with few Stats, which read every worker's memory.
func respawnOnce(p *procpool.Pool) (time.Duration, error) {
	old := p.Workers()
	start := time.Now()
	if err := killProcess(old[0]); err != nil {
		return 0, err
	}
	for time.Since(start) < 10*time.Second {
		fresh := slices.DeleteFunc(p.Workers(), func(pid int) bool { return slices.Contains(old, pid) })
		if len(fresh) == 0 {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		time.Sleep(20 * time.Millisecond)
		for _, ws := range p.Stats().Workers {
			if ws.PID == fresh[0] && !ws.ReadyAt.IsZero() {
				return ws.ReadyAt.Sub(start), nil
			}
		}
	}
	return 0, errors.New("respawn: no replacement ready within 10s")
}

// whoamiPause is the pause of the recovery workload's calls, in µs.
const whoamiPause = 50
