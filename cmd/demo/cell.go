package main

// This file runs one cell of the catalogue (RunCell) and checks what
// happened against its promise (Result.check). A Goroutines cell runs in a
// program of its own: see goroutines.go.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// Options are how RunCell runs a cell.
type Options struct {
	Workers  int
	Workload Workload
	Logger   hclog.Logger // the pool's; nil: none
	Progress func(n int)  // called as items end, if set
	// Stderr receives, if set, what the program of a Goroutines cell
	// writes to its stderr: the pool's log (at Debug level, when Logger is
	// set) and the Go runtime's crash report.
	Stderr io.Writer

	onItem func(item int, err error) // called for each item, in a cell's program
}

// Counts is a cell's Pool.Stats, after the workload.
type Counts struct {
	Completed   int `json:"completed"`
	Failed      int `json:"failed"`
	Lost        int `json:"lost"`
	Retried     int `json:"retried"`
	TimedOut    int `json:"timed_out"`
	MemoryKills int `json:"memory_kills"`
	Deaths      int `json:"deaths"`
}

// Items counts the items' outcomes as the caller saw them.
type Items struct {
	OK     int `json:"ok"`
	Failed int `json:"failed"`
	NotRun int `json:"not_run"` // never yielded: Imap stopped early
}

// Result is what happened in one cell.
type Result struct {
	Scenario string `json:"scenario"`
	Title    string `json:"title"`
	Policy   string `json:"policy"`

	Outcome    string `json:"outcome"`               // kind of the first error seen, or ok
	FirstError string `json:"first_error,omitempty"` // its text
	FirstItem  int    `json:"first_item,omitempty"`  // the item it was yielded for
	// Death is the first *WorkerExitError the caller saw, as it reads:
	// which worker died, how, and the headline of its crash report.
	Death string `json:"death,omitempty"`
	// OverMemory is the first *MemoryLimitError the caller saw, as it
	// reads: how far the runaway grew.
	OverMemory string `json:"over_memory,omitempty"`
	// Detect is the time from the fault (the moment the first faulting
	// call began, as the worker noted it) to the first error the caller saw;
	// zero if the caller saw none.
	Detect time.Duration `json:"detect_ns"`
	Items  Items         `json:"items"`
	Stats  Counts        `json:"stats"`
	// Rerun is how many calls began more than once, as the tasks noted
	// each run.
	Rerun  int           `json:"rerun"`
	Usable bool          `json:"usable"`
	Probe  string        `json:"probe_error,omitempty"` // why the pool was not usable
	Took   time.Duration `json:"took_ns"`
	// LeftRunning is how many calls were still running in the caller's
	// program after Close: abandoned goroutines.
	LeftRunning int `json:"left_running"`

	// Program is how the program of a Goroutines cell died, if it did.
	Program *Program `json:"program,omitempty"`
	// StrayStdout counts the lines the tasks of a Goroutines cell printed
	// to the program's own stdout; StrayExample is the first.
	StrayStdout  int    `json:"stray_stdout_lines,omitempty"`
	StrayExample string `json:"stray_stdout_example,omitempty"`

	Expect     Expect   `json:"expect"`
	Pass       bool     `json:"pass"` // whether the cell kept its promise
	Mismatches []string `json:"mismatches,omitempty"`
}

// OK reports whether the cell behaved as the catalogue promises.
func (r *Result) OK() bool { return len(r.Mismatches) == 0 }

// RunCell runs scenario s under policy pol and checks the result against
// the catalogue. An error means the cell could not run at all. A
// Goroutines cell runs in a program of its own (see runProgram).
func RunCell(ctx context.Context, s Scenario, pol Policy, o Options) (*Result, error) {
	w := o.Workload
	if err := w.check(); err != nil {
		return nil, err
	}
	exp, ok := s.Expect[pol.Name]
	if !ok {
		return nil, fmt.Errorf("scenario %s has no promise for policy %s", s.Name, pol.Name)
	}
	dir, err := os.MkdirTemp("", "procpool-demo-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if pol.Backend == procpool.Goroutines {
		return runProgram(ctx, s, pol, o, exp, dir)
	}
	return runPool(ctx, s, pol, o, exp, dir)
}

// runPool runs the cell's pool, here, and checks it. dir is where the
// cell's faults are noted.
func runPool(ctx context.Context, s Scenario, pol Policy, o Options, exp Expect, dir string) (*Result, error) {
	w := o.Workload
	logger := o.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	faults := make([]string, len(w.Faults))
	for i, f := range w.Faults {
		faults[i] = strconv.Itoa(f)
	}
	cfg := procpool.Config{
		Workers: o.Workers,
		OnCrash: pol.OnCrash,
		Retries: pol.Retries,
		Backend: pol.Backend,
		Logger:  logger,
		Env:     []string{envFaults + "=" + strings.Join(faults, ","), envDir + "=" + dir},
	}
	if s.Config != nil {
		s.Config(&cfg)
	}
	start := time.Now()
	p, err := procpool.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s.Name, pol.Name, err)
	}
	defer p.Terminate()

	r := &Result{Scenario: s.Name, Title: s.Title, Policy: pol.Name, Outcome: KindOK, Expect: exp}
	var seen time.Time // when the first error reached the caller
	delivered := false
	yielded := 0
	s.run(ctx, p, &cell{w: w, dir: dir, each: func(item int, err error) {
		yielded++
		if o.Progress != nil {
			o.Progress(1)
		}
		if o.onItem != nil {
			o.onItem(item, err)
		}
		if err == nil {
			r.Items.OK++
			if item == w.Faults[0] {
				delivered = true
			}
			return
		}
		r.Items.Failed++
		if r.Outcome == KindOK {
			seen = time.Now()
			r.Outcome, r.FirstError, r.FirstItem = Classify(err), err.Error(), item
		}
		var exit *procpool.WorkerExitError
		if r.Death == "" && errors.As(err, &exit) {
			r.Death = exit.Error()
		}
		var mle *procpool.MemoryLimitError
		if r.OverMemory == "" && errors.As(err, &mle) {
			r.OverMemory = mle.Error()
		}
	}})
	r.Items.NotRun = w.Items - yielded
	if o.Progress != nil && r.Items.NotRun > 0 {
		o.Progress(r.Items.NotRun)
	}
	st := p.Stats()
	r.Stats = Counts{Completed: st.Completed, Failed: st.Failed, Lost: st.Lost, Retried: st.Retried, TimedOut: st.TimedOut, MemoryKills: st.MemoryKills, Deaths: st.Deaths}

	probeCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	v, err := taskProbe.Submit(p, 7).Get(probeCtx)
	cancel()
	r.Usable = err == nil && v == 49
	if err != nil {
		r.Probe = err.Error()
	}
	if err := p.Close(); err != nil {
		r.Mismatches = append(r.Mismatches, fmt.Sprintf("Close: %v", err))
	}
	r.Took = time.Since(start)
	r.LeftRunning = int(stillRunning.Load())
	// After Close: every worker has ended, and noted every call it began.
	if r.Rerun, err = reruns(dir); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s.Name, pol.Name, err)
	}

	if t, ok := firstFault(dir); ok && !seen.IsZero() {
		r.Detect = max(0, seen.Sub(t))
	}
	r.check(w, s, pol, delivered)
	r.Pass = r.OK()
	return r, nil
}

// firstFault reads the moment of the earliest fault the cell noted.
func firstFault(dir string) (time.Time, bool) {
	b, err := os.ReadFile(filepath.Join(dir, faultLog))
	if err != nil {
		return time.Time{}, false
	}
	var first int64
	for line := range strings.Lines(string(b)) {
		ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
		if err == nil && (first == 0 || ns < first) {
			first = ns
		}
	}
	return time.Unix(0, first), first != 0
}

// check compares r, a cell of policy pol, with its promise.
func (r *Result) check(w Workload, s Scenario, pol Policy, delivered bool) {
	e := r.Expect
	bad := func(format string, args ...any) { r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...)) }
	if r.Outcome != e.Outcome {
		bad("first error seen: %s (%s), want %s", r.Outcome, r.FirstError, e.Outcome)
	}
	if r.Usable != e.Usable {
		bad("usable afterwards: %v (%s), want %v", r.Usable, r.Probe, e.Usable)
	}
	if (r.Outcome == KindBroken || r.Outcome == KindLost || r.Outcome == KindMemory) && r.Death == "" {
		bad("the %s error holds no *WorkerExitError", r.Outcome)
	}
	if r.Outcome == KindMemory && r.OverMemory == "" {
		bad("the %s error is no *MemoryLimitError", r.Outcome)
	}
	// Imap "yields each result with its error in input order ... A failed
	// call yields its error and iteration goes on": the caller sees every
	// item, and the result of every call the pool completed. A broken pool
	// takes no more work: Imap yields what was in flight, and stops.
	if r.Items.NotRun > 0 && r.Outcome != KindBroken {
		bad("Imap stopped early: %d of %d items never yielded, after %s at item %d", r.Items.NotRun, w.Items, r.Outcome, r.FirstItem)
	}
	if r.Items.OK != r.Stats.Completed {
		bad("the pool completed %d calls, but Imap yielded %d results", r.Stats.Completed, r.Items.OK)
	}
	if e.PerFault == nil && r.Stats.Deaths != e.Deaths {
		bad("Stats.Deaths %d, want %d (workers that died abruptly)", r.Stats.Deaths, e.Deaths)
	}
	if pol.Retries == 0 && r.Rerun != 0 {
		bad("%d calls began more than once, without Retries", r.Rerun)
	}
	if s.Delivered && !delivered {
		bad("the result of item %d, sent before its worker died, did not reach the caller", w.Faults[0])
	}
	if pf := e.PerFault; pf != nil {
		n := len(w.Faults)
		want := Counts{
			Completed:   w.Items - n*(pf.Failed+pf.Lost+pf.TimedOut+pf.MemoryKills+pf.Unsent),
			Failed:      n * pf.Failed,
			Lost:        n * pf.Lost,
			Retried:     n * pf.Retried,
			TimedOut:    n * pf.TimedOut,
			MemoryKills: n * pf.MemoryKills,
			Deaths:      n * pf.Deaths,
		}
		if r.Stats != want {
			bad("stats %+v, want %+v", r.Stats, want)
		}
		if r.Rerun != n*pf.Rerun {
			bad("%d calls began more than once, want %d", r.Rerun, n*pf.Rerun)
		}
		if r.LeftRunning != n*pf.LeftRunning {
			bad("%d calls still running in the program after Close, want %d", r.LeftRunning, n*pf.LeftRunning)
		}
	}
}
