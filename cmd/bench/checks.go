package main

import (
	"fmt"
	"slices"
)

// Check is one target: a ratio of two figures of this run against a bound.
type Check struct {
	Name   string  `json:"name"`
	Detail string  `json:"detail"`
	Ratio  float64 `json:"ratio"`
	Bound  float64 `json:"bound"`
	AtMost bool    `json:"at_most"` // the ratio must be ≤ Bound, else ≥
	// Status is PASS, MISS, or SKIP when a figure is missing.
	Status string `json:"status"`
}

// computeChecks evaluates the targets. Each compares two figures of this
// run, at the configuration the target names: in sections 1 to 6, the
// widest pool is the number of CPUs, and the fast data path's targets are
// at 2 workers; the scaling targets compare its most workers (256 by
// default) with its fewest (2).
func (rep *Report) computeChecks() {
	if len(rep.Workers) > 0 {
		rep.mainChecks()
		rep.dataPathChecks()
	}
	if len(rep.Scaling) > 0 {
		rep.scalingChecks()
	}
}

// ratioFn makes the ratio a check bounds from two figures' medians, and
// detailFn says how it was made.
type (
	ratioFn  func(a, b float64) float64
	detailFn func(a, b *Result, x float64) string
)

func div(a, b float64) float64 { return a / b }
func inv(a, b float64) float64 { return b / a }

// check adds a target: ratio(a, b) against bound, at most or at least; it
// is skipped when either figure is missing.
func (rep *Report) check(name string, a, b *Result, ratio ratioFn, bound float64, atMost bool, detail detailFn) {
	c := Check{Name: name, Bound: bound, AtMost: atMost, Status: "SKIP"}
	if a == nil || b == nil {
		c.Detail = "not measured in this run"
		rep.Checks = append(rep.Checks, c)
		return
	}
	c.Ratio = ratio(a.Median, b.Median)
	if (atMost && c.Ratio <= bound) || (!atMost && c.Ratio >= bound) {
		c.Status = "PASS"
	} else {
		c.Status = "MISS"
	}
	c.Detail = detail(a, b, c.Ratio)
	rep.Checks = append(rep.Checks, c)
}

// show is the usual detail: both figures, the ratio and the target, with
// the workers of each figure when they differ.
func show(op string, bound float64, pct bool) detailFn {
	return func(a, b *Result, x float64) string {
		target := fmt.Sprintf("target %s %g×", op, bound)
		got := fmt.Sprintf("%.2f×", x)
		if pct {
			target = fmt.Sprintf("target %s %.0f %%", op, bound*100)
			got = fmt.Sprintf("%.0f %%", x*100)
		}
		at := func(r *Result) string {
			if a.Workers > 0 && b.Workers > 0 && a.Workers != b.Workers {
				return fmt.Sprintf(" at %d workers", r.Workers)
			}
			return ""
		}
		return fmt.Sprintf("%s %s%s vs %s %s%s = %s (%s)", fmtValue(a.Median, a.Unit), a.Label, at(a), fmtValue(b.Median, b.Unit), b.Label, at(b), got, target)
	}
}

// proc is procpool's worker processes' figure.
func (rep *Report) proc(workload string, workers int, chunk string) *Result {
	return rep.find(workload, iProcesses, workers, chunk)
}

// checkBlock is the payload's block size that the targets name.
const checkBlock = 1 << 20

// mainChecks evaluates the targets of sections 1 to 6.
func (rep *Report) mainChecks() {
	wide := slices.Max(rep.Workers)
	check, proc := rep.check, rep.proc
	check("round trip ≤ 2 × the raw ping-pong floor (1 worker)",
		proc(wRoundTrip, 1, ""), rep.find(wRoundTrip, iFloor, 1, ""), div, 2, true, show("≤", 2, false))
	check("round trip ≥ 10 × faster than Pool.apply (1 worker)",
		proc(wRoundTrip, 1, ""), rep.find(wRoundTrip, iPool, 1, ""), inv, 10, false, show("≥", 10, false))
	check(fmt.Sprintf("Map at chunksize 1 ≥ 10 × Pool.map at chunksize 1 (%d workers)", wide),
		proc(wMap, wide, "1"), rep.find(wMap, iPool, wide, "1"), div, 10, false, show("≥", 10, false))
	check(fmt.Sprintf("Map at the default chunksize ≥ 2 × Pool.map at its default (%d workers)", wide),
		proc(wMap, wide, "default"), rep.find(wMap, iPool, wide, "default"), div, 2, false, show("≥", 2, false))
	mb := sizeLabel(checkBlock)
	check(fmt.Sprintf("payload echo of %s blocks ≥ 60 %% of the raw pipe stream floor (%d workers)", mb, wide),
		proc(wPayload, wide, mb), rep.find(wPayload, iFloor, wide, mb), div, 0.6, false, show("≥", 0.6, true))
	cores := newResult(wCPU10, iFloor, fmt.Sprintf("%d cores", rep.Machine.Cores), 0)
	cores.Runs = []float64{float64(rep.Machine.Cores)}
	check(fmt.Sprintf("CPU-bound speed-up ≥ 0.95 × the cores (10 ms tasks, %d workers)", wide),
		proc(wCPU10, wide, ""), cores.finish(), div, 0.95, false, show("≥", 0.95, false))
	for _, wl := range []string{wCPU10, wCPU1} {
		ms := map[string]string{wCPU10: "10 ms", wCPU1: "1 ms"}[wl]
		// Speed-ups over the same serial time: their inverse ratio is the
		// ratio of the wall times.
		check(fmt.Sprintf("%s tasks: processes within 5 %% of the goroutine backend (%d workers)", ms, wide),
			proc(wl, wide, ""), rep.find(wl, iGoroutines, wide, ""), inv, 1.05, true,
			func(a, b *Result, x float64) string {
				return fmt.Sprintf("processes take %.3f× the goroutines' time (speed-ups %s vs %s; target ≤ 1.05×)", x, fmtValue(a.Median, a.Unit), fmtValue(b.Median, b.Unit))
			})
	}
	check("New with 2 workers to first result ≤ 3 × one child's start-up floor",
		proc(wStartup, 2, ""), rep.find(wStartup, iFloor, 2, ""), div, 3, true, show("≤", 3, false))
	rep.limit(fmt.Sprintf("a killed worker replaced and serving within 5 ms (%d workers)", wide), proc(wRecovery, wide, ""), "≤", 5, "ms")
	rep.limit(fmt.Sprintf("idle worker RSS ≤ 10 MiB (%d workers)", wide), proc(wRSS, wide, ""), "≤", 10, "MiB")
}

// limit adds a target on one figure: its median at most bound (op "≤") or
// below it (op "<"); it is skipped when the figure is missing. It returns
// the check, whose detail the caller may extend before the next check.
func (rep *Report) limit(name string, r *Result, op string, bound float64, unit string) *Check {
	c := Check{Name: name, Bound: bound, AtMost: true, Status: "SKIP", Detail: "not measured in this run"}
	if r != nil {
		c.Ratio = r.Median / bound
		ok := r.Median <= bound
		if op == "<" {
			ok = r.Median < bound
		}
		c.Status = map[bool]string{true: "PASS", false: "MISS"}[ok]
		c.Detail = fmt.Sprintf("%s %s median, max %s (target %s %g %s)", sig3(r.Median), unit, sig3(r.Max), op, bound, unit)
	}
	rep.Checks = append(rep.Checks, c)
	return &rep.Checks[len(rep.Checks)-1]
}

// dataPathWorkers is the pool size of the fast data path's targets: the
// issue states them at 2 workers, on its 2-core machine.
const dataPathWorkers = 2

// dataPathChecks evaluates the fast data path's targets, each against
// Python's pools or a floor of this run, at 2 workers. Those that
// mainChecks already evaluates at the same workers (its widest pool is 2
// on 2 cores) are not repeated.
func (rep *Report) dataPathChecks() {
	k, check, proc := dataPathWorkers, rep.check, rep.proc
	mb := sizeLabel(checkBlock)
	check(fmt.Sprintf("data path: payload of %s blocks ≥ 1.5 × Python PPE.map (%d workers)", mb, k),
		proc(wPayload, k, mb), rep.find(wPayload, iPPE, k, mb), div, 1.5, false, show("≥", 1.5, false))
	if k != slices.Max(rep.Workers) {
		check(fmt.Sprintf("data path: payload of %s blocks ≥ 60 %% of the raw pipe stream floor (%d workers)", mb, k),
			proc(wPayload, k, mb), rep.find(wPayload, iFloor, k, mb), div, 0.6, false, show("≥", 0.6, true))
		check(fmt.Sprintf("data path: Map at the default chunksize ≥ 2 × Pool.map at its default (%d workers)", k),
			proc(wMap, k, "default"), rep.find(wMap, iPool, k, "default"), div, 2, false, show("≥", 2, false))
		check(fmt.Sprintf("data path: Map at chunksize 1 ≥ 10 × Pool.map at chunksize 1 (%d workers)", k),
			proc(wMap, k, "1"), rep.find(wMap, iPool, k, "1"), div, 10, false, show("≥", 10, false))
	}
	check(fmt.Sprintf("data path: round trip ≤ 1.5 × the raw ping-pong floor (%d workers)", k),
		proc(wRoundTrip, k, ""), rep.find(wRoundTrip, iFloor, k, ""), div, 1.5, true, show("≤", 1.5, false))
	check(fmt.Sprintf("data path: round trip ≥ 10 × faster than Pool.apply (%d workers)", k),
		proc(wRoundTrip, k, ""), rep.find(wRoundTrip, iPool, k, ""), inv, 10, false, show("≥", 10, false))

	mem := proc(wMapMemory, memoryWorkers, "")
	name := fmt.Sprintf("data path: the parent's peak RSS growth during a Map of 1 MiB blocks < 128 MiB above the input (%d workers)", memoryWorkers)
	if mem != nil {
		name = fmt.Sprintf("data path: the parent's peak RSS growth during a Map of %d × %s < 128 MiB above the input (%d workers)",
			mem.N, sizeLabel(mem.BlockSize), memoryWorkers)
	}
	c := rep.limit(name, mem, "<", 128, "MiB")
	if mem == nil {
		c.Detail = rep.whyMissing(wMapMemory, iProcesses)
		return
	}
	for _, impl := range []string{iPool, iPPE} {
		if py := rep.find(wMapMemory, impl, memoryWorkers, ""); py != nil {
			c.Detail += fmt.Sprintf("; %s: %s MiB", py.Label, sig3(py.Median))
		}
	}
}

// whyMissing says why a figure the targets need is missing: its Skipped,
// or that it was not measured.
func (rep *Report) whyMissing(workload, impl string) string {
	for _, r := range rep.Results {
		if r.Workload == workload && r.Impl == impl && r.Skipped != "" {
			return "skipped: " + r.Skipped
		}
	}
	return "not measured in this run"
}

// scalingChecks evaluates the targets of the scaling section.
func (rep *Report) scalingChecks() {
	check, proc := rep.check, rep.proc
	fewest, most := slices.Min(rep.Scaling), slices.Max(rep.Scaling)
	// A ratio of a figure to itself checks nothing: with one worker count,
	// the checks that compare two are skipped.
	other := func(r *Result) *Result {
		if fewest == most {
			return nil
		}
		return r
	}
	check(fmt.Sprintf("scaling: round trip at %d workers ≤ 1.5 × at %d", most, fewest),
		proc(wScaleRoundTrip, most, ""), other(proc(wScaleRoundTrip, fewest, "")), div, 1.5, true, show("≤", 1.5, false))
	check(fmt.Sprintf("scaling: round trip ≥ 5 × faster than Pool.apply (%d workers)", most),
		proc(wScaleRoundTrip, most, ""), rep.find(wScaleRoundTrip, iPool, most, ""), inv, 5, false, show("≥", 5, false))
	// The case: 16 workers on 2 cores, where tiny calls should
	// feed the running workers rather than wake idle ones.
	var m16, m2 *Result
	if slices.Contains(rep.Scaling, 16) && slices.Contains(rep.Scaling, 2) {
		m16, m2 = proc(wScaleMap, 16, "1"), proc(wScaleMap, 2, "1")
	}
	check(fmt.Sprintf("scaling: Map at chunksize 1 with 16 workers ≥ 0.6 × its throughput with 2 (%d cores)", rep.Machine.Cores),
		m16, m2, div, 0.6, false, show("≥", 0.6, false))
	sleeps, ideal := proc(wScaleSleep, most, "1"), rep.find(wScaleSleep, iFloor, most, "")
	name := fmt.Sprintf("scaling: Map of 10 ms sleeps at chunksize 1 within 1.25 × its ideal (%d workers)", most)
	if sleeps != nil && ideal != nil {
		name = fmt.Sprintf("scaling: Map of %d × 10 ms sleeps at chunksize 1 within 1.25 × its ideal %s ms (%d workers)", sleeps.N, sig3(ideal.Median), most)
	}
	check(name, sleeps, ideal, div, 1.25, true, show("≤", 1.25, false))
	// The issue puts no number on these two; the bounds are the least that
	// "proportionate" means: Close no slower than Python's, and a
	// replacement no slower than twice what it takes in the smallest pool.
	check(fmt.Sprintf("scaling: Close of %d idle workers ≤ Pool close+join", most),
		proc(wScaleClose, most, ""), rep.find(wScaleClose, iPool, most, ""), div, 1, true, show("≤", 1, false))
	check(fmt.Sprintf("scaling: respawn (SIGKILL to the replacement ready) at %d workers ≤ 2 × at %d", most, fewest),
		proc(wScaleReady, most, ""), other(proc(wScaleReady, fewest, "")), div, 2, true, show("≤", 2, false))
}
