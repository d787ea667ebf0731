package main

import (
	"cmp"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// Report is everything one run of the program measured; -json prints it.
type Report struct {
	Machine Machine `json:"machine"`
	Quick   bool    `json:"quick"`
	Runs    int     `json:"runs"`
	Workers []int   `json:"workers"`
	// Scaling are the worker counts of the scaling section.
	Scaling []int `json:"scaling_workers,omitempty"`
	// SpinRounds and ChurnTrees are the calibrated sizes of a 10 ms
	// CPU-bound task and of an allocation task.
	SpinRounds  int       `json:"spin_rounds_10ms"`
	ChurnTrees  int       `json:"churn_trees"`
	Results     []*Result `json:"results"`
	Checks      []Check   `json:"checks"`
	Notes       []string  `json:"notes,omitempty"`
	WallSeconds float64   `json:"wall_seconds"`
}

// sections are the workloads in the order of the table, with their titles.
// footnotes say, under a section, what its figures need to be read.
var footnotes = map[string]string{
	wMap:   "Python maps fewer items at small chunk sizes (column n), or a full run would take many minutes; a rate only needs enough items to be steady.",
	wAlloc: "Each process has a heap and a collector of its own; goroutines share the parent's. GC cycles are counted per heap, from each heap's first call to its last.",
	wPayload: "MB/s counts each payload byte once, though it travels out and back. Every Map is at chunksize 1, one block a message, as procpool's 1 MiB chunk limit makes it from 1 MiB up; Python pickles distinct blocks both ways. " +
		"errgroup passes the slice by reference: it is shown, and is no peer of a copy.",
	wMapMemory: "Each run is a fresh child process of this program (of python3 for Python) that starts its pool, allocates and touches the input (n blocks), then maps; " +
		"the figure is its peak resident memory (VmHWM) after the Map minus before it, the input excluded. Go's default GOGC lets a heap grow to twice its live size, " +
		"the input included, before a collection: a buffer allocated per block counts until then.",
	wRecovery: "Python's Pool worker waits for tasks holding the task queue's lock: one killed while holding it hangs the Pool, and its terminate(), for good.",
	wRSS:      "Resident memory from /proc, as Stats().Workers[i].RSS reports it; the floor is this same binary idle, with no pool: its resident memory after its first reply (its peak at exit where there is no /proc).",
	wScaleRoundTrip: "Sections 7a–7g: × at N divides a figure by the same implementation's at the fewest workers measured. One pool per worker count (OnCrash: Respawn) serves each run's " +
		"round trips, Maps, sleeps and one SIGKILL; each run starts and closes a fresh pool for start-up and Close.",
	wScaleSleep:   "The same number of sleeps per worker at every count, so that the ideal, every worker always asleep, is the same time; a busiest worker far above an even spread is work piled on a few workers while the others idle.",
	wScaleStartup: "procpool's New returns once every worker has completed its handshake; Pool() returns once it has forked them.",
	wScaleRespawn: "The figures of the Python Pool are of a fresh Pool per run in a child process, whose hang (see 6b) is counted, not timed. " +
		"Each round of calls is one per worker, so past a few workers per CPU the figure is mostly the round the replacement waits for (7h times the respawn alone).",
	wScaleReady: "A kill in the idle pool, timed to the replacement's handshake (Stats().Workers[i].ReadyAt): the pool's own work of a respawn, which should not grow with the workers. Python's Pool does not say when a worker is ready.",
}

var sections = []struct{ workload, title string }{
	{wRoundTrip, "1. Per-task round trip: sequential Submit+Get of a trivial task"},
	{wMap, "2. Tiny-task throughput: Map of a trivial function over ints"},
	{wCPU10, "3a. CPU-bound: tasks of ~10 ms of arithmetic, speed-up over serial"},
	{wCPU1, "3b. CPU-bound: tasks of ~1 ms of arithmetic, speed-up over serial"},
	{wAlloc, "4. Allocation-heavy: tasks that build and drop binary trees, speed-up over serial"},
	{wPayload, "5a. Payload: byte slices of 64 KiB to 16 MiB echoed back, at chunksize 1"},
	{wMapMemory, "5b. Payload memory: the parent's peak RSS growth during a Map of distinct 1 MiB blocks to their lengths, chunksize 1"},
	{wStartup, "6a. Start-up: New (or Pool()) to the first result"},
	{wRecovery, "6b. Recovery (Respawn): a worker's SIGKILL to a result from its replacement"},
	{wRSS, "6c. Idle worker resident memory"},
	{wScaleRoundTrip, "7a. Scaling: round trip of a trivial call, sequential, with many more workers than CPUs"},
	{wScaleMap, "7b. Scaling: Map of a trivial function at chunksize 1"},
	{wScaleSleep, "7c. Scaling: Map of 10 ms sleeps at chunksize 1, the same number per worker"},
	{wScaleStartup, "7d. Scaling: New (or Pool()) to the first result"},
	{wScaleClose, "7e. Scaling: Close (Pool close+join) of an idle pool"},
	{wScaleTerminate, "7f. Scaling: Terminate (Pool terminate+join) of a pool after its runs"},
	{wScaleRespawn, "7g. Scaling, Respawn: a worker's SIGKILL to a result from its replacement"},
	{wScaleReady, "7h. Scaling, Respawn: a worker's SIGKILL to its replacement ready for work"},
}

var implOrder = []string{iFloor, iSerial, iBare, iProcesses, iGoroutines, iErrgroup, iPool, iPPE}

var chunkOrder = []string{"", "1", "10", "100", "1000", "default"}

// isPeer says whether an implementation competes; floors and the serial
// and bare references do not.
func isPeer(impl string) bool { return impl != iFloor && impl != iSerial && impl != iBare }

// floorOf returns the floor of r's workload at r's worker count, and at its
// chunk (the payload's block size) if the floor has one.
func (rep *Report) floorOf(r *Result) *Result {
	for _, f := range rep.Results {
		if f.Impl == iFloor && f.Workload == r.Workload && (f.Workers == 0 || f.Workers == r.Workers) &&
			(f.Chunk == "" || f.Chunk == r.Chunk) && f.Skipped == "" {
			return f
		}
	}
	return nil
}

// bestPeer returns the best figure of another implementation on r's
// workload, worker count and chunk size.
func (rep *Report) bestPeer(r *Result) *Result {
	var best *Result
	for _, o := range rep.Results {
		if o.Workload != r.Workload || o.Workers != r.Workers || o.Chunk != r.Chunk ||
			o.Impl == r.Impl || !isPeer(o.Impl) || o.Skipped != "" || len(o.Runs) == 0 {
			continue
		}
		if o.Workload == wPayload && o.Impl == iErrgroup {
			continue // by reference, nothing moves: no peer of a copy
		}
		if best == nil || (r.Higher && o.Median > best.Median) || (!r.Higher && o.Median < best.Median) {
			best = o
		}
	}
	return best
}

// find returns the figure of impl on a workload, worker count and chunk.
func (rep *Report) find(workload, impl string, workers int, chunk string) *Result {
	for _, r := range rep.Results {
		if r.Workload == workload && r.Impl == impl && (r.Workers == workers || r.Workers == 0) && r.Chunk == chunk && r.Skipped == "" && len(r.Runs) > 0 {
			return r
		}
	}
	return nil
}

// sortResults puts the results in table order.
func (rep *Report) sortResults() {
	sec := func(w string) int {
		return slices.IndexFunc(sections, func(s struct{ workload, title string }) bool { return s.workload == w })
	}
	slices.SortStableFunc(rep.Results, func(a, b *Result) int {
		return cmp.Or(
			cmp.Compare(sec(a.Workload), sec(b.Workload)),
			cmp.Compare(a.Workers, b.Workers),
			cmp.Compare(slices.Index(chunkOrder, a.Chunk), slices.Index(chunkOrder, b.Chunk)),
			cmp.Compare(a.BlockSize, b.BlockSize),
			cmp.Compare(slices.Index(implOrder, a.Impl), slices.Index(implOrder, b.Impl)),
		)
	})
}

// writeTable prints the machine, every figure with its ratios, and the
// target checks.
func (rep *Report) writeTable(w io.Writer) {
	m := rep.Machine
	fmt.Fprintf(w, "Machine: %s, %d cores, %d GiB, Linux %s; %s; Python %s\n", m.CPU, m.Cores, m.MemoryGiB, m.Kernel, m.Go, m.Python)
	mode := "full"
	if rep.Quick {
		mode = "quick (small sizes: a smoke run, not figures to quote)"
	}
	fmt.Fprintf(w, "Mode: %s; %d run(s) per figure: median [min … max]. Workers: %v; scaling section: %v.\n", mode, rep.Runs, rep.Workers, rep.Scaling)
	if rep.SpinRounds > 0 {
		fmt.Fprintf(w, "Calibrated: a 10 ms task is %d xorshift rounds; an allocation task builds %d trees of %d nodes.\n",
			rep.SpinRounds, rep.ChurnTrees, 1<<(treeDepth+1)-1)
	}
	fmt.Fprintln(w, "Ratios divide this figure by the floor's, and by the best other implementation's at the same workers (and chunk size);")
	fmt.Fprintln(w, "for µs, ms and MiB lower is better, for the rest higher is better. n: items, calls or blocks per run.")
	fmt.Fprintf(w, "Other processes used %.1f %% of the CPUs during the run (load average %.2f at its start).\n", 100*m.OthersCPU, m.LoadStart)
	if m.OthersCPU > 0.05 {
		fmt.Fprintln(w, "WARNING: the machine was busy with other work, which disturbed the figures: run again on a quiet machine.")
	}
	for _, n := range rep.Notes {
		fmt.Fprintln(w, "Note:", n)
	}
	for _, s := range sections {
		var rows []*Result
		for _, r := range rep.Results {
			if r.Workload == s.workload {
				rows = append(rows, r)
			}
		}
		if len(rows) == 0 {
			continue
		}
		better := "lower is better"
		if rows[0].Higher {
			better = "higher is better"
		}
		fmt.Fprintf(w, "\n%s (%s, %s)\n", s.title, rows[0].Unit, better)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprint(tw, "workers\timplementation\t")
		switch s.workload {
		case wMap:
			fmt.Fprint(tw, "chunk\t")
		case wPayload:
			fmt.Fprint(tw, "block\t")
		}
		fmt.Fprint(tw, "n\tmedian\tmin\tmax\t× floor\t")
		scaling := isScaling(s.workload)
		if scaling {
			fmt.Fprintf(tw, "× at %d\t", slices.Min(rep.Scaling))
		}
		fmt.Fprint(tw, "× best peer\t\n")
		for _, r := range rows {
			workers := "any"
			if r.Workers > 0 {
				workers = fmt.Sprint(r.Workers)
			}
			fmt.Fprintf(tw, "%s\t%s\t", workers, r.Label)
			if s.workload == wMap {
				chunk := fmt.Sprint(r.ChunkSize)
				if r.Chunk == "default" {
					chunk = fmt.Sprintf("default=%d", r.ChunkSize)
				}
				fmt.Fprintf(tw, "%s\t", chunk)
			}
			if s.workload == wPayload {
				fmt.Fprintf(tw, "%s\t", r.Chunk)
			}
			n := ""
			if r.N > 0 {
				n = fmt.Sprint(r.N)
			}
			if r.Skipped != "" || len(r.Runs) == 0 {
				empty := "\t\t\t\t\t"
				if scaling {
					empty += "\t"
				}
				fmt.Fprintf(tw, "%s\t—%s  %s\n", n, empty, r.Skipped)
				continue
			}
			vsFloor, vsPeer := "", ""
			if r.VsFloor != 0 {
				vsFloor = fmt.Sprintf("%.2f×", r.VsFloor)
			}
			if r.BestPeer != "" {
				vsPeer = fmt.Sprintf("%s× %s", fmtRatio(r.VsBestPeer), r.BestPeer)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t", n, fmtValue(r.Median, r.Unit), fmtValue(r.Min, r.Unit), fmtValue(r.Max, r.Unit), vsFloor)
			if scaling {
				vsFewest := ""
				if r.VsFewest != 0 {
					vsFewest = fmt.Sprintf("%.2f×", r.VsFewest)
				}
				fmt.Fprintf(tw, "%s\t", vsFewest)
			}
			fmt.Fprintf(tw, "%s\t  %s\n", vsPeer, r.note())
		}
		tw.Flush()
		python := slices.ContainsFunc(rows, func(r *Result) bool { return r.Impl == iPool || r.Impl == iPPE })
		if f := footnotes[s.workload]; f != "" && (python || (s.workload != wMap && s.workload != wRecovery)) {
			fmt.Fprintln(w, "  ("+f+")")
		}
	}
	fmt.Fprintln(w, "\nTargets (ratios of figures of this run; a MISS does not fail the program):")
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "  %-4s  %s: %s\n", c.Status, c.Name, c.Detail)
	}
	if rep.WallSeconds > 0 {
		fmt.Fprintf(w, "\nWall time: %.0f s\n", rep.WallSeconds)
	}
}

// note is a row's remark: its note, and its GC cycles if counted.
func (r *Result) note() string {
	parts := []string{}
	if r.Workload == wAlloc && r.Impl != iFloor {
		parts = append(parts, fmt.Sprintf("%.0f GC cycles per run", r.GCCycles))
	}
	if r.Note != "" {
		parts = append(parts, r.Note)
	}
	return strings.Join(parts, "; ")
}

// fmtValue prints a figure with about three significant digits.
func fmtValue(v float64, unit string) string {
	switch unit {
	case "items/s":
		switch {
		case v >= 1e6:
			return fmt.Sprintf("%.2fM", v/1e6)
		case v >= 1e3:
			return fmt.Sprintf("%.1fk", v/1e3)
		}
		return fmt.Sprintf("%.0f", v)
	case "× serial":
		return fmt.Sprintf("%.2f×", v)
	}
	return sig3(v)
}

// sig3 prints v with three significant digits, without an exponent.
func sig3(v float64) string {
	a := math.Abs(v)
	switch {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

func fmtRatio(v float64) string {
	if v >= 100 || v < 0.01 {
		return fmt.Sprintf("%.3g", v)
	}
	return sig3(v)
}

// computeRatios fills in every figure's ratio to its floor and best peer,
// and in the scaling section to its figure at the fewest workers.
func (rep *Report) computeRatios() {
	for _, r := range rep.Results {
		r.VsFloor, r.BestPeer, r.VsBestPeer, r.VsFewest = 0, "", 0, 0
		if isScaling(r.Workload) && len(rep.Scaling) > 0 && r.Impl != iFloor && r.Skipped == "" && len(r.Runs) > 0 {
			if f := rep.find(r.Workload, r.Impl, slices.Min(rep.Scaling), r.Chunk); f != nil && f.Median != 0 {
				r.VsFewest = r.Median / f.Median
			}
		}
		if r.Skipped != "" || len(r.Runs) == 0 || r.Impl == iFloor {
			continue
		}
		if f := rep.floorOf(r); f != nil && f.Median != 0 {
			r.VsFloor = r.Median / f.Median
		}
		if isPeer(r.Impl) {
			if p := rep.bestPeer(r); p != nil && p.Median != 0 {
				r.BestPeer, r.VsBestPeer = p.Label, r.Median/p.Median
			}
		}
	}
}
