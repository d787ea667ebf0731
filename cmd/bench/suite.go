package main

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

// suite is the plan of the Go side of a benchmark: every figure's Result,
// and the steps that one run, a pass over every figure, executes in order.
// Each run measures every implementation once, in turn, rather than one
// implementation's runs back to back: a disturbance of the machine (another
// process, a frequency change) then lands on one run of everything, and the
// median discards it, instead of landing on all the runs of one contender.
type suite struct {
	ctx     context.Context
	sizes   Sizes
	w       *work
	results []*Result
	steps   []step
	// final are steps run once, after the runs: the measurement of
	// something a run cannot repeat, such as the end of a pool it shares.
	final   []step
	serial  map[string]*Result // per compute workload
	closers []func()
	// allocHeap is the parent's live heap before each run's serial
	// allocation-heavy step.
	allocHeap []float64
}

type step struct {
	section string // shown as progress when it changes
	fn      func() error
}

// add records a result and returns it.
func (s *suite) add(r *Result) *Result {
	s.results = append(s.results, r)
	return r
}

// do appends a step to every run.
func (s *suite) do(section string, fn func() error) {
	s.steps = append(s.steps, step{section, fn})
}

// once appends a step run once, after every run.
func (s *suite) once(section string, fn func() error) {
	s.final = append(s.final, step{section, fn})
}

// close ends every child and pool the suite started.
func (s *suite) close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
	s.closers = nil
}

// newSuite calibrates the tasks, starts the floor children and the pools,
// and plans the steps of a run.
func newSuite(ctx context.Context, sizes Sizes, workers []int) (_ *suite, err error) {
	s := &suite{ctx: ctx, sizes: sizes, w: newWork(sizes), serial: map[string]*Result{}}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	w := s.w
	type pools struct{ proc, gor, respawn *procpool.Pool }
	ps := map[int]pools{}
	streams := map[int][]*child{}
	for _, k := range workers {
		var p pools
		if p.proc, err = newPool(ctx, procpool.Config{Workers: k}, w); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { p.proc.Close() })
		if p.gor, err = newPool(ctx, procpool.Config{Workers: k, Backend: procpool.Goroutines}, w); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { p.gor.Close() })
		if p.respawn, err = newPool(ctx, procpool.Config{Workers: k, OnCrash: procpool.Respawn}, w); err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { p.respawn.Close() })
		ps[k] = p
		for range k {
			c, err := startChild(roleStream, k)
			if err != nil {
				return nil, err
			}
			s.closers = append(s.closers, func() { c.stop() })
			streams[k] = append(streams[k], c)
		}
		for _, blocks := range w.payloads { // warm up, at every size
			if _, err := stream(streams[k], k, blocks[0]); err != nil {
				return nil, err
			}
		}
	}
	echo, err := startChild(roleEcho, 1)
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { echo.stop() })
	if _, err := echo.pingPong(1000); err != nil { // warm up
		return nil, err
	}
	backends := []procpool.Backend{procpool.Processes, procpool.Goroutines}
	poolOf := func(k int, b procpool.Backend) *procpool.Pool {
		if b == procpool.Goroutines {
			return ps[k].gor
		}
		return ps[k].proc
	}

	// 1. Round trip.
	sec := "round trip"
	floor := s.add(newResult(wRoundTrip, iFloor, implLabel(iFloor, wRoundTrip), 0))
	floor.N = sizes.PingPongs
	s.do(sec, func() error {
		d, err := echo.pingPong(sizes.PingPongs)
		floor.Runs = append(floor.Runs, micros(d)/float64(sizes.PingPongs))
		return err
	})
	for _, k := range workers {
		r := s.add(newResult(wRoundTrip, iErrgroup, implLabel(iErrgroup, wRoundTrip), k))
		r.N = sizes.RoundTrips
		s.do(sec, func() error {
			r.Runs = append(r.Runs, micros(errgroupRoundTrip(k, sizes.RoundTrips))/float64(sizes.RoundTrips))
			return nil
		})
		for _, b := range backends {
			r := s.add(newResult(wRoundTrip, implOf(b), implLabel(implOf(b), wRoundTrip), k))
			r.N = sizes.RoundTrips
			s.do(sec, func() error {
				d, err := poolRoundTrip(ctx, poolOf(k, b), sizes.RoundTrips)
				r.Runs = append(r.Runs, micros(d)/float64(sizes.RoundTrips))
				return err
			})
		}
	}

	// 2. Tiny-task throughput.
	sec = "tiny-task throughput"
	for _, k := range workers {
		for _, cc := range sizes.Chunks {
			n := cc.GoItems
			in := w.ints[:n]
			mapResult := func(impl string) *Result {
				r := s.add(newResult(wMap, impl, implLabel(impl, wMap), k))
				r.Chunk, r.ChunkSize, r.N = cc.Label, chunkOrDefault(cc.Size, n, k), n
				return r
			}
			r := mapResult(iErrgroup)
			s.do(sec, func() error {
				r.Runs = append(r.Runs, perSecond(n, errgroupMap(k, in, w.out[:n], r.ChunkSize)))
				return nil
			})
			for _, b := range backends {
				r := mapResult(implOf(b))
				s.do(sec, func() error {
					d, err := poolMap(ctx, k, b, in, cc.Size)
					r.Runs = append(r.Runs, perSecond(n, d))
					return err
				})
			}
		}
	}

	// 3 and 4. CPU-bound and allocation-heavy, as speed-ups over the serial
	// time of the same run: the steps record seconds, finish divides.
	for _, cc := range w.cpuCases(sizes) {
		sec := map[string]string{wCPU10: "CPU-bound, 10 ms tasks", wCPU1: "CPU-bound, 1 ms tasks", wAlloc: "allocation-heavy"}[cc.workload]
		serial := s.add(newResult(cc.workload, iSerial, implLabel(iSerial, cc.workload), 0))
		serial.N = cc.tasks
		s.serial[cc.workload] = serial
		s.do(sec, func() error {
			if cc.workload == wAlloc {
				settleHeap()
				s.allocHeap = append(s.allocHeap, float64(heapLive()))
			}
			d, gc := computeLocal(cc, 0)
			serial.secs, serial.gcs = append(serial.secs, d.Seconds()), append(serial.gcs, gc)
			return nil
		})
		for _, k := range workers {
			ideal := s.add(newResult(cc.workload, iFloor, implLabel(iFloor, cc.workload), k))
			ideal.Runs, ideal.Note = []float64{float64(min(k, cpus()))}, "computed"
			r := s.add(newResult(cc.workload, iErrgroup, implLabel(iErrgroup, cc.workload), k))
			r.N = cc.tasks
			s.do(sec, func() error {
				d, gc := computeLocal(cc, k)
				r.secs, r.gcs = append(r.secs, d.Seconds()), append(r.gcs, gc)
				return nil
			})
			for _, b := range backends {
				r := s.add(newResult(cc.workload, implOf(b), implLabel(implOf(b), cc.workload), k))
				r.N = cc.tasks
				s.do(sec, func() error {
					d, gc, err := poolCompute(ctx, k, b, cc)
					r.secs, r.gcs = append(r.secs, d.Seconds()), append(r.gcs, gc)
					return err
				})
			}
		}
	}

	// 5a. Payload, at each block size.
	sec = "payload"
	for _, k := range workers {
		for pi, pc := range sizes.PayloadSizes {
			blocks := w.payloads[pi]
			bytes := int64(len(blocks)) * int64(pc.Size)
			payloadResult := func(impl, note string) *Result {
				r := s.add(newResult(wPayload, impl, implLabel(impl, wPayload), k))
				r.Chunk, r.BlockSize, r.N, r.Note = pc.Label(), pc.Size, len(blocks), note
				if impl != iFloor {
					r.ChunkSize = 1
				}
				return r
			}
			floor := payloadResult(iFloor, fmt.Sprintf("%d child(ren), no encoding", k))
			s.do(sec, func() error {
				d, err := stream(streams[k], len(blocks), blocks[0])
				floor.Runs = append(floor.Runs, mbPerSecond(bytes, d))
				return err
			})
			r := payloadResult(iErrgroup, "by reference: nothing is copied")
			s.do(sec, func() error {
				echoed := make([][]byte, len(blocks))
				d := errgroupEach(k, len(blocks), func(i int) { echoed[i] = blocks[i] })
				r.Runs = append(r.Runs, mbPerSecond(bytes, d))
				return nil
			})
			for _, b := range backends {
				r := payloadResult(implOf(b), "copied both ways")
				s.do(sec, func() error {
					d, err := poolPayload(ctx, k, b, blocks)
					r.Runs = append(r.Runs, mbPerSecond(bytes, d))
					return err
				})
			}
		}
	}

	// 5b. The parent's peak memory during a Map of a large input, in a
	// fresh child per run.
	mem := s.add(newResult(wMapMemory, iProcesses, implLabel(iProcesses, wMapMemory), memoryWorkers))
	mem.N, mem.ChunkSize, mem.BlockSize = sizes.MemoryBlocks, 1, sizes.MemoryBlockSize
	s.do("payload memory", func() error {
		m, err := mapMemory(sizes.MemoryBlocks, sizes.MemoryBlockSize, memoryWorkers)
		if err != nil || m.Skipped != "" {
			mem.Skipped = m.Skipped
			return err
		}
		mem.Runs = append(mem.Runs, m.growthMiB())
		mem.Note = fmt.Sprintf("input %.0f MiB; peak RSS %.0f → %.0f MiB (last run)", mib(m.Input), mib(m.Before), mib(m.After))
		return nil
	})

	// 6. Start-up, idle memory and recovery.
	sec = "start-up and recovery"
	startF := s.add(newResult(wStartup, iFloor, implLabel(iFloor, wStartup), 0))
	startF.Note = "one child"
	recF := s.add(newResult(wRecovery, iFloor, implLabel(iFloor, wRecovery), 0))
	recF.Note = "a replacement is one child's start-up"
	rssF := s.add(newResult(wRSS, iFloor, implLabel(iFloor, wRSS), 0))
	rssF.Note = "this same binary, no procpool"
	s.do(sec, func() error {
		settle()
		d, rss, err := startOnce()
		startF.Runs = append(startF.Runs, millis(d))
		recF.Runs = append(recF.Runs, millis(d))
		rssF.Runs = append(rssF.Runs, mib(rss))
		return err
	})
	for _, k := range workers {
		for _, b := range backends {
			st := s.add(newResult(wStartup, implOf(b), implLabel(implOf(b), wStartup), k))
			st.Note = "New to first result"
			rss := s.add(newResult(wRSS, implOf(b), implLabel(implOf(b), wRSS), k))
			if b == procpool.Goroutines {
				rss.Skipped = "no process of its own: it shares the parent's heap"
			}
			s.do(sec, func() error {
				settle()
				d, mem, err := startOncePool(ctx, k, b)
				st.Runs = append(st.Runs, millis(d))
				if b == procpool.Processes {
					rss.Runs = append(rss.Runs, mem)
				}
				return err
			})
		}
		rec := s.add(newResult(wRecovery, iProcesses, implLabel(iProcesses, wRecovery), k))
		rec.Note = fmt.Sprintf("SIGKILL to a result from the new pid (calls pause %d µs)", whoamiPause)
		s.do(sec, func() error {
			settle()
			d, err := recoverOnce(ctx, ps[k].respawn, k)
			rec.Runs = append(rec.Runs, millis(d))
			return err
		})
		rg := s.add(newResult(wRecovery, iGoroutines, implLabel(iGoroutines, wRecovery), k))
		rg.Skipped = "a goroutine cannot be killed: SIGKILL would end the program"
	}
	return s, nil
}

// settle lets the work of the steps before a start-up measurement finish:
// a collection of their garbage, the reaping of stopped children. A
// program starts its pool in a quiet process, and so should the figure.
func settle() {
	settleHeap()
	time.Sleep(20 * time.Millisecond)
}

// cpus is the number of CPUs this process may use.
func cpus() int { return runtime.NumCPU() }

// run executes runs passes over the steps, reporting each section as it
// starts, then turns the compute workloads' seconds into speed-ups.
func (s *suite) run(runs int, progress func(format string, args ...any)) error {
	do := func(steps []step, prefix string) error {
		last := ""
		for _, st := range steps {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			if st.section != last {
				progress("%s%s", prefix, st.section)
				last = st.section
			}
			if err := st.fn(); err != nil {
				return fmt.Errorf("%s: %w", st.section, err)
			}
		}
		return nil
	}
	for run := range runs {
		if err := do(s.steps, fmt.Sprintf("run %d/%d: ", run+1, runs)); err != nil {
			return err
		}
	}
	if err := do(s.final, "once: "); err != nil {
		return err
	}
	s.finish()
	return nil
}

// finish computes every figure's median, min and max. A compute workload's
// figure of run i is the serial time of run i divided by its time of run i;
// the serial row itself shows its median divided by each run's time.
func (s *suite) finish() {
	for _, r := range s.results {
		if serial := s.serial[r.Workload]; serial != nil && r.Impl != iFloor {
			r.Runs = r.Runs[:0]
			if r == serial {
				med := medianOf(r.secs)
				for _, t := range r.secs {
					r.Runs = append(r.Runs, med/t)
				}
				r.Note = fmt.Sprintf("%.0f ms per run", med*1e3)
				if r.Workload == wAlloc {
					r.Note += fmt.Sprintf("; the parent's live heap, which goroutines share, is %.1f MiB", mib(int64(medianOf(s.allocHeap))))
				}
			} else {
				for i, t := range r.secs {
					r.Runs = append(r.Runs, serial.secs[i]/t)
				}
			}
			if r.Workload == wAlloc {
				r.GCCycles = medianOf(r.gcs)
			}
		}
		r.finish()
	}
}

// elapsed is a progress function that prefixes the time since start.
func elapsed(w io.Writer, start time.Time) func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(w, "bench: %6.1fs  %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}
