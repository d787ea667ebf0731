package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

// The scaling section runs the same work at many more workers than CPUs
// (2, 16, 64 and 256 by default), to show what the pool's own bookkeeping
// costs as it grows: a scheduler that scans its workers makes every call
// dearer at 256 workers than at 2, one that does not keeps the round trip
// flat. Python's multiprocessing.Pool does the same work in the same run.
//
// It runs after the other sections, with pools of its own: one Respawn pool
// per worker count, started and warmed up once, serves every run's round
// trips, Maps, sleeps and one SIGKILL; each run starts and closes a fresh
// pool per count for the start-up and Close figures; and the shared pools
// are terminated, timed, once after the runs.

// defaultScaling and quickScaling are the worker counts of -scaling.
var (
	defaultScaling = []int{2, 16, 64, 256}
	quickScaling   = []int{2, 16}
)

// scaleSleepMs is one call of the sleep workload.
const scaleSleepMs = 10

// parseCounts reads a comma list of worker counts; "" is none. The counts
// are sorted and each kept once.
func parseCounts(s string) ([]int, error) {
	var ks []int
	for f := range strings.SplitSeq(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		k, err := strconv.Atoi(f)
		if err != nil || k < 1 {
			return nil, fmt.Errorf("bad worker count %q", f)
		}
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return slices.Compact(ks), nil
}

// scaleSleeps is the number of sleeps mapped at k workers, and the ideal
// time of their Map in ms: every worker sleeping all the time.
func scaleSleeps(sizes Sizes, k int) (n int, idealMs float64) {
	n = sizes.SleepsPerWorker * k
	return n, float64(n*scaleSleepMs) / float64(k)
}

// newScalingSuite starts and warms up a Respawn pool per worker count, and
// plans the steps of a run of the scaling section.
func newScalingSuite(ctx context.Context, sizes Sizes, counts []int, progress func(string, ...any)) (_ *suite, err error) {
	s := &suite{ctx: ctx, sizes: sizes, serial: map[string]*Result{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	ints := make([]int, max(sizes.ScaleMapItems, 2000))
	for i := range ints {
		ints[i] = i
	}
	pools := map[int]*procpool.Pool{}
	for _, k := range counts {
		progress("scaling: starting a pool of %d workers", k)
		p, err := newScalingPool(ctx, k, ints)
		if err != nil {
			return nil, fmt.Errorf("scaling: %d workers: %w", k, err)
		}
		s.closers = append(s.closers, func() { p.Close() })
		pools[k] = p
	}
	proc := func(workload string, k int) *Result {
		return s.add(newResult(workload, iProcesses, implLabel(iProcesses, workload), k))
	}

	sec := "scaling: round trip"
	for _, k := range counts {
		r := proc(wScaleRoundTrip, k)
		r.N = sizes.ScaleRoundTrips
		s.do(sec, func() error {
			d, err := poolRoundTrip(ctx, pools[k], r.N)
			r.Runs = append(r.Runs, micros(d)/float64(r.N))
			return err
		})
	}

	sec = "scaling: Map at chunksize 1"
	for _, k := range counts {
		r := proc(wScaleMap, k)
		r.Chunk, r.ChunkSize, r.N = "1", 1, sizes.ScaleMapItems
		in := ints[:r.N]
		s.do(sec, func() error {
			start := time.Now()
			out, err := Noop.Map(ctx, pools[k], in, procpool.Chunksize(1))
			d := time.Since(start)
			if err != nil {
				return err
			}
			if len(out) != len(in) || out[len(in)-1] != in[len(in)-1] {
				return fmt.Errorf("map: %w", errMismatch)
			}
			r.Runs = append(r.Runs, perSecond(len(in), d))
			return nil
		})
	}

	sec = fmt.Sprintf("scaling: %d ms sleeps", scaleSleepMs)
	for _, k := range counts {
		n, idealMs := scaleSleeps(sizes, k)
		ideal := s.add(newResult(wScaleSleep, iFloor, implLabel(iFloor, wScaleSleep), k))
		ideal.N, ideal.Runs, ideal.Note = n, []float64{idealMs}, "computed"
		bare := s.add(newResult(wScaleSleep, iBare, implLabel(iBare, wScaleSleep), k))
		bare.N = n
		bare.Note = fmt.Sprintf("%d processes of this program each sleep %d × %d ms, started together; no pool, no message per sleep", k, sizes.SleepsPerWorker, scaleSleepMs)
		s.do(sec, func() error {
			d, err := bareSleeps(k, sizes.SleepsPerWorker)
			bare.Runs = append(bare.Runs, millis(d))
			return err
		})
		r := proc(wScaleSleep, k)
		r.Chunk, r.ChunkSize, r.N = "1", 1, n
		args := slices.Repeat([]int{scaleSleepMs}, n)
		busiest := 0
		s.do(sec, func() error {
			start := time.Now()
			pids, err := Sleep.Map(ctx, pools[k], args, procpool.Chunksize(1))
			d := time.Since(start)
			if err != nil {
				return err
			}
			r.Runs = append(r.Runs, millis(d))
			busiest = max(busiest, mostCommon(pids))
			r.Note = fmt.Sprintf("busiest worker: %d sleeps in a run (an even spread: %d)", busiest, sizes.SleepsPerWorker)
			return nil
		})
	}

	sec = "scaling: respawn"
	for _, k := range counts {
		r := proc(wScaleRespawn, k)
		r.Note = fmt.Sprintf("SIGKILL to a result from the new pid (calls pause %d µs)", whoamiPause)
		s.do(sec, func() error {
			settle()
			d, err := recoverOnce(ctx, pools[k], k)
			r.Runs = append(r.Runs, millis(d))
			return err
		})
		ready := proc(wScaleReady, k)
		ready.Note = "SIGKILL of an idle worker to its replacement's handshake"
		s.do(sec, func() error {
			settle()
			d, err := respawnOnce(pools[k])
			ready.Runs = append(ready.Runs, millis(d))
			return err
		})
	}

	sec = "scaling: start-up and Close"
	for _, k := range counts {
		up := proc(wScaleStartup, k)
		up.Note = "New to first result (New waits for every handshake)"
		cl := proc(wScaleClose, k)
		cl.Note = "a fresh pool, idle after one call"
		s.do(sec, func() error {
			settle()
			u, c, err := startAndClose(ctx, k)
			up.Runs, cl.Runs = append(up.Runs, millis(u)), append(cl.Runs, millis(c))
			return err
		})
	}

	// Last, once: the end of the shared pools, after every run.
	for _, k := range counts {
		r := proc(wScaleTerminate, k)
		r.Note = "once per run set: the shared pool after its runs"
		s.once("scaling: Terminate", func() error {
			start := time.Now()
			err := pools[k].Terminate()
			r.Runs = append(r.Runs, millis(time.Since(start)))
			return err
		})
	}
	return s, nil
}

// newScalingPool starts a Respawn pool of k workers and warms it up (see
// startWarm) with a Map of tiny calls at chunksize 1 and a Map of one sleep
// per worker.
func newScalingPool(ctx context.Context, k int, ints []int) (*procpool.Pool, error) {
	return startWarm(ctx, procpool.Config{Workers: k, OnCrash: procpool.Respawn}, func(p *procpool.Pool) error {
		if _, err := Noop.Map(ctx, p, ints[:2000], procpool.Chunksize(1)); err != nil {
			return err
		}
		_, err := Sleep.Map(ctx, p, slices.Repeat([]int{scaleSleepMs}, k), procpool.Chunksize(1))
		return err
	})
}

// startAndClose times New of a pool of k workers to its first result, and
// then Close of that pool, idle.
func startAndClose(ctx context.Context, k int) (up, closed time.Duration, err error) {
	start := time.Now()
	p, err := procpool.New(procpool.Config{Workers: k, Logger: quietLogger})
	if err != nil {
		return 0, 0, err
	}
	if _, err := Noop.Submit(p, 1).Get(ctx); err != nil {
		p.Terminate()
		return 0, 0, err
	}
	up = time.Since(start)
	start = time.Now()
	err = p.Close()
	return up, time.Since(start), err
}

// mostCommon is how many times the most common value of v occurs in it:
// given the pids that served a Map, the calls of its busiest worker.
func mostCommon(v []int) int {
	n := map[int]int{}
	most := 0
	for _, x := range v {
		n[x]++
		most = max(most, n[x])
	}
	return most
}
