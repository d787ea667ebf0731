package main

// This file is the catalogue: the scenarios, the policies, what procpool
// promises for each cell (scenario × policy), and RunCell, which runs one
// cell and checks it against its promise. The demo's main only prints.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// Chunk is the workload's chunk size. It is fixed, rather than Imap's
// adaptive default, so that what a death costs is the same on every run.
const Chunk = 25

// Workload is what every cell runs: an Imap over the items 1..Items, of
// which the items Faults fault.
type Workload struct {
	Items  int
	Faults []int // each a multiple of Chunk: the last item of its chunk
}

// DefaultWorkload is the demo's: 3000 items, three of which fault.
var DefaultWorkload = Workload{Items: 3000, Faults: []int{500, 1500, 2500}}

func (w Workload) check() error {
	if w.Items < 1 || len(w.Faults) == 0 {
		return errors.New("a workload needs items and faults")
	}
	for _, f := range w.Faults {
		if f < 1 || f > w.Items || f%Chunk != 0 {
			return fmt.Errorf("fault item %d: want a multiple of %d in 1..%d", f, Chunk, w.Items)
		}
	}
	return nil
}

// Policy is a column of the table: what the pool does when a worker dies,
// or, for the goroutine backend, that there is no worker process to die.
type Policy struct {
	Name    string // as the -policy flag names it
	Label   string // as the table shows it
	OnCrash procpool.CrashPolicy
	Retries int
	// Backend is where the tasks run. A Goroutines cell runs in a program
	// of its own, a child of the demo (see goroutines.go): a fault that
	// kills the process kills that whole program, and the demo reports it.
	Backend procpool.Backend
}

// Policies are the columns.
var Policies = []Policy{
	{Name: "break", Label: "Break", OnCrash: procpool.Break},
	{Name: "respawn", Label: "Respawn", OnCrash: procpool.Respawn},
	{Name: "retries", Label: "Respawn+Retries=2", OnCrash: procpool.Respawn, Retries: 2},
	{Name: "goroutines", Label: "Goroutines", Backend: procpool.Goroutines},
}

// The outcome kinds, as a caller tells them apart with errors.Is and
// errors.As.
const (
	KindOK      = "ok"
	KindRemote  = "RemoteError"
	KindPanic   = "RemoteError(panic)"
	KindTimeout = "ErrTaskTimeout"
	KindLost    = "ErrWorkerLost"
	KindBroken  = "ErrBrokenPool"
	KindWrong   = "wrong value" // a result that is not the item's: never expected
)

// KindCodec is the kind of a *CodecError at stage.
func KindCodec(stage procpool.Stage) string { return "CodecError(" + string(stage) + ")" }

// KindDied is the outcome of a Goroutines cell whose whole program died
// before it could report: no caller was left to see an error. how is
// Exited(code) or Signalled(name).
func KindDied(how string) string { return "the whole program died (" + how + ")" }

// Exited and Signalled say how a program ended, for KindDied.
func Exited(code int) string       { return fmt.Sprintf("exit %d", code) }
func Signalled(name string) string { return "signal " + name }

// Classify names err as a caller would tell it apart.
func Classify(err error) string {
	var remote *procpool.RemoteError
	var codec *procpool.CodecError
	switch {
	case err == nil:
		return KindOK
	case errors.Is(err, procpool.ErrBrokenPool):
		return KindBroken
	case errors.Is(err, procpool.ErrWorkerLost):
		return KindLost
	case errors.Is(err, procpool.ErrTaskTimeout):
		return KindTimeout
	case errors.As(err, &codec):
		return KindCodec(codec.Stage)
	case errors.As(err, &remote) && remote.Panic:
		return KindPanic
	case errors.As(err, &remote):
		return KindRemote
	case errors.Is(err, procpool.ErrClosed):
		return "ErrClosed"
	case errors.Is(err, errWrongValue):
		return KindWrong
	}
	return fmt.Sprintf("unexpected %T", err)
}

var errWrongValue = errors.New("wrong value")

// Expect is what procpool promises for a cell.
type Expect struct {
	// Outcome is the kind of the first error the caller sees, in input
	// order, or KindOK if every item succeeds.
	Outcome string `json:"outcome"`
	// Usable: a call submitted after the workload succeeds.
	Usable bool `json:"usable"`
	// PerFault is what each faulting item costs in Pool.Stats, where that is
	// determined; nil where it depends on timing (what else was in flight
	// when a Break pool broke).
	PerFault *PerFault `json:"per_fault,omitempty"`
	// Deaths is Pool.Stats.Deaths where PerFault is nil.
	Deaths int `json:"deaths,omitempty"`
	// Says, for a program that died (KindDied), is what the headline of
	// its stderr contains: the Go runtime's crash report.
	Says string `json:"says,omitempty"`
}

// PerFault is the cost of one faulting item in Pool.Stats. The calls that
// did not complete are its Failed, Lost, TimedOut and Unsent; every other
// item completes.
type PerFault struct {
	Failed   int `json:"failed"`
	Lost     int `json:"lost"`
	Retried  int `json:"retried"`
	TimedOut int `json:"timed_out"`
	Deaths   int `json:"deaths"`
	Unsent   int `json:"unsent"` // calls that never left the caller: their argument could not be encoded
	// LeftRunning: calls still running in the caller's program after
	// Close, abandoned. A worker process that does not stop a call is
	// killed; a goroutine cannot be.
	LeftRunning int `json:"left_running,omitempty"`
	// Stdout: lines the tasks printed that reached the stdout of the
	// caller's program. Counted for the Goroutines cells only, which run in
	// a program of their own.
	Stdout int `json:"stdout_lines,omitempty"`
}

// Scenario is a row of the table: a fault, struck by a few items of a real
// workload.
type Scenario struct {
	Name  string // for the -scenario filter
	Title string // for the table
	// Config adjusts the pool's configuration, if the scenario needs it.
	Config func(*procpool.Config)
	// Delivered: the first faulting item's result must reach the caller,
	// whatever happens after.
	Delivered bool
	// Expect is the promise, by policy name.
	Expect map[string]Expect

	run runFunc
}

// runFunc runs a cell's workload through p and reports each item's outcome,
// in input order, to c.each.
type runFunc func(ctx context.Context, p *procpool.Pool, c *cell)

// cell is what a workload needs to know of the cell it runs in.
type cell struct {
	w    Workload
	dir  string                    // where faults are noted
	each func(item int, err error) // called for each item, in input order
}

// everywhere is the same promise under every policy and on both backends:
// faults that leave the worker alive do not depend on the crash policy, and
// the goroutine backend keeps the same API and errors.
func everywhere(e Expect) map[string]Expect { return processes(e, e) }

// processes is promise e under every crash policy of the process backend,
// and goroutines on the goroutine backend.
func processes(e, goroutines Expect) map[string]Expect {
	return map[string]Expect{"break": e, "respawn": e, "retries": e, "goroutines": goroutines}
}

// died is the goroutine backend's promise for a fault that kills the
// process: there is no worker process to lose, the process is the caller's
// own, so the whole program dies, as the fault makes it (how: Exited or
// Signalled), saying says on stderr. No caller is left to see an error.
func died(how, says string) Expect { return Expect{Outcome: KindDied(how), Says: says} }

// broken is the promise of Break for a fault that kills a worker: the pool
// breaks at the first death. Which calls completed before it depends on
// timing; but exactly one worker died abruptly (Stats.Deaths counts
// "workers that died abruptly (not retired, not killed on purpose)"; the
// pool kills the others on purpose).
var broken = Expect{Outcome: KindBroken, Usable: false, Deaths: 1}

// deadly is the promise for a fault that kills the worker mid-call. Break:
// the pool breaks, every pending call fails with ErrBrokenPool. Respawn: the
// chunk the worker was running is lost (its calls fail with ErrWorkerLost),
// the rest goes on with a replacement. With Retries, the lost chunk is
// retried call by call: the poison call kills two more workers, then is
// lost alone, and its neighbours complete. On the goroutine backend the
// process is the program's own: goroutines is how it dies.
func deadly(goroutines Expect) map[string]Expect {
	return map[string]Expect{
		"break":      broken,
		"respawn":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: Chunk, Deaths: 1}},
		"retries":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: 1, Retried: Chunk + 1, Deaths: 3}},
		"goroutines": goroutines,
	}
}

// hangConfig is the configuration of the hang scenarios: a short timeout,
// and a short grace before SIGTERM and again before SIGKILL.
func hangConfig(c *procpool.Config) {
	c.TaskTimeout = 300 * time.Millisecond
	c.KillGrace = 100 * time.Millisecond
}

// Catalogue is the table's rows.
var Catalogue = []Scenario{
	{
		Name: "error", Title: "task returns an error",
		Expect: everywhere(Expect{Outcome: KindRemote, Usable: true, PerFault: &PerFault{Failed: 1}}),
		run:    imapInts(taskError),
	},
	{
		Name: "panic", Title: "task panics",
		Expect: everywhere(Expect{Outcome: KindPanic, Usable: true, PerFault: &PerFault{Failed: 1}}),
		run:    imapInts(taskPanic),
	},
	{
		Name: "exit1", Title: "os.Exit(1) mid-task",
		Expect: deadly(died(Exited(1), "")),
		run:    imapInts(taskExit1),
	},
	{
		// On the goroutine backend the program ends "successfully", with
		// status 0, in the middle of its work.
		Name: "exit0", Title: "os.Exit(0) mid-task",
		Expect: deadly(died(Exited(0), "")),
		run:    imapInts(taskExit0),
	},
	{
		// A transient death: what Retries is for. On the goroutine backend
		// there is no second try: the first ends the program.
		Name: "flaky", Title: "os.Exit(1) on first try only",
		Expect: map[string]Expect{
			"break":      broken,
			"respawn":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: Chunk, Deaths: 1}},
			"retries":    {Outcome: KindOK, Usable: true, PerFault: &PerFault{Retried: Chunk, Deaths: 1}},
			"goroutines": died(Exited(1), ""),
		},
		run: imapInts(taskFlaky),
	},
	{
		Name: "sigkill", Title: "SIGKILL (the OOM killer)",
		Expect: deadly(died(Signalled("SIGKILL"), "")),
		run:    imapInts(taskSIGKILL),
	},
	{
		// Go fatal errors exit with status 2, after the runtime's report.
		Name: "sigsegv", Title: "SIGSEGV (wild pointer write)",
		Expect: deadly(died(Exited(2), "[signal SIGSEGV")),
		run:    imapInts(taskSIGSEGV),
	},
	{
		Name: "goroutine-panic", Title: "panic in a task's goroutine",
		Expect: deadly(died(Exited(2), "panic in a goroutine the task started")),
		run:    imapInts(taskGoroutinePanic),
	},
	{
		Name: "map-writes", Title: "concurrent map writes",
		Expect: deadly(died(Exited(2), "fatal error: concurrent map writes")),
		run:    imapInts(taskMapWrites),
	},
	{
		Name: "stack-overflow", Title: "stack overflow",
		Expect: deadly(died(Exited(2), "fatal error: stack overflow")),
		run:    imapInts(taskStackOverflow),
	},
	{
		// The pool kills a worker that does not stop a timed-out call on
		// purpose, and replaces it under either policy: not a crash. A
		// goroutine cannot be killed: the call fails on time all the same,
		// a fresh goroutine takes its place, and the task is left running,
		// abandoned, in the caller's program.
		Name: "hang", Title: "hang (TaskTimeout 300ms)",
		Config: hangConfig,
		Expect: processes(
			Expect{Outcome: KindTimeout, Usable: true, PerFault: &PerFault{TimedOut: 1}},
			Expect{Outcome: KindTimeout, Usable: true, PerFault: &PerFault{TimedOut: 1, LeftRunning: 1}}),
		run: imapInts(taskHang),
	},
	{
		// No signal is sent to a goroutine: the same as a plain hang (but
		// the task's signal.Ignore holds for the whole program).
		Name: "hang-sigterm", Title: "hang ignoring SIGTERM",
		Config: hangConfig,
		Expect: processes(
			Expect{Outcome: KindTimeout, Usable: true, PerFault: &PerFault{TimedOut: 1}},
			Expect{Outcome: KindTimeout, Usable: true, PerFault: &PerFault{TimedOut: 1, LeftRunning: 1}}),
		run: imapInts(taskHangTERM),
	},
	{
		// Harmless on both backends; but on the goroutine backend the
		// garbage really reaches the program's stdout (the demo counts it).
		Name: "stdout", Title: "garbage printed to stdout",
		Expect: processes(
			Expect{Outcome: KindOK, Usable: true, PerFault: &PerFault{}},
			Expect{Outcome: KindOK, Usable: true, PerFault: &PerFault{Stdout: 2}}),
		run: imapInts(taskStdout),
	},
	{
		// On the goroutine backend the task reads the program's own stdin
		// (in the demo, /dev/null).
		Name: "stdin", Title: "task reads stdin",
		Expect: everywhere(Expect{Outcome: KindOK, Usable: true, PerFault: &PerFault{}}),
		run:    imapInts(taskStdin),
	},
	{
		// Arguments and results go through the codec on both backends.
		Name: "bad-argument", Title: "argument cannot be encoded",
		Expect: everywhere(Expect{Outcome: KindCodec(procpool.EncodeArgument), Usable: true, PerFault: &PerFault{Unsent: 1}}),
		run:    runBadArgument,
	},
	{
		Name: "bad-result", Title: "result cannot be encoded",
		Expect: everywhere(Expect{Outcome: KindCodec(procpool.EncodeResult), Usable: true, PerFault: &PerFault{Failed: 1}}),
		run:    runBadResult,
	},
	{
		// The worker dies after it sent the faulting item's result, in its
		// next chunk: under Respawn that chunk is lost, or retried; under
		// Break what follows fails. The result already sent stands. On the
		// goroutine backend the program dies, after its caller got the
		// result.
		Name: "after-send", Title: "crash after the result was sent",
		Delivered: true,
		Expect: map[string]Expect{
			"break":      broken,
			"respawn":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: Chunk, Deaths: 1}},
			"retries":    {Outcome: KindOK, Usable: true, PerFault: &PerFault{Retried: Chunk, Deaths: 1}},
			"goroutines": died(Exited(1), ""),
		},
		run: imapInts(taskAfterSend),
	},
}

// items yields 1..n.
func items(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for v := 1; v <= n; v++ {
			if !yield(v) {
				return
			}
		}
	}
}

// imapInts runs a workload of int items through task, checking each result.
func imapInts(task *procpool.Task[int, int]) runFunc {
	return func(ctx context.Context, p *procpool.Pool, c *cell) {
		item := 0
		for got, err := range task.Imap(ctx, p, items(c.w.Items), procpool.Chunksize(Chunk)) {
			item++
			if err == nil && got != work(item) {
				err = fmt.Errorf("%w: item %d gave %d, want %d", errWrongValue, item, got, work(item))
			}
			c.each(item, err)
		}
	}
}

// runBadArgument sends a chan in place of each faulting item.
func runBadArgument(ctx context.Context, p *procpool.Pool, c *cell) {
	in := func(yield func(any) bool) {
		for v := range items(c.w.Items) {
			var x any = v
			if slices.Contains(c.w.Faults, v) {
				noteFaultIn(c.dir)
				x = make(chan int)
			}
			if !yield(x) {
				return
			}
		}
	}
	item := 0
	for got, err := range taskAnyArg.Imap(ctx, p, in, procpool.Chunksize(Chunk)) {
		item++
		if err == nil && got != work(item) {
			err = fmt.Errorf("%w: item %d gave %d, want %d", errWrongValue, item, got, work(item))
		}
		c.each(item, err)
	}
}

// runBadResult expects the result of every item that does not fault.
func runBadResult(ctx context.Context, p *procpool.Pool, c *cell) {
	item := 0
	for got, err := range taskAnyResult.Imap(ctx, p, items(c.w.Items), procpool.Chunksize(Chunk)) {
		item++
		if v, ok := asInt(got); err == nil && (!ok || v != work(item)) {
			err = fmt.Errorf("%w: item %d gave %v, want %d", errWrongValue, item, got, work(item))
		}
		c.each(item, err)
	}
}

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
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Lost      int `json:"lost"`
	Retried   int `json:"retried"`
	TimedOut  int `json:"timed_out"`
	Deaths    int `json:"deaths"`
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
	// Detect is the time from the fault (the moment the first faulting
	// call began, as the worker noted it) to the first error the caller saw;
	// zero if the caller saw none.
	Detect time.Duration `json:"detect_ns"`
	Items  Items         `json:"items"`
	Stats  Counts        `json:"stats"`
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
	}})
	r.Items.NotRun = w.Items - yielded
	if o.Progress != nil && r.Items.NotRun > 0 {
		o.Progress(r.Items.NotRun)
	}
	st := p.Stats()
	r.Stats = Counts{Completed: st.Completed, Failed: st.Failed, Lost: st.Lost, Retried: st.Retried, TimedOut: st.TimedOut, Deaths: st.Deaths}

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

	if t, ok := firstFault(dir); ok && !seen.IsZero() {
		r.Detect = max(0, seen.Sub(t))
	}
	r.check(w, s, delivered)
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

// check compares r with its promise.
func (r *Result) check(w Workload, s Scenario, delivered bool) {
	e := r.Expect
	bad := func(format string, args ...any) { r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...)) }
	if r.Outcome != e.Outcome {
		bad("first error seen: %s (%s), want %s", r.Outcome, r.FirstError, e.Outcome)
	}
	if r.Usable != e.Usable {
		bad("usable afterwards: %v (%s), want %v", r.Usable, r.Probe, e.Usable)
	}
	if (r.Outcome == KindBroken || r.Outcome == KindLost) && r.Death == "" {
		bad("the %s error holds no *WorkerExitError", r.Outcome)
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
	if s.Delivered && !delivered {
		bad("the result of item %d, sent before its worker died, did not reach the caller", w.Faults[0])
	}
	if pf := e.PerFault; pf != nil {
		n := len(w.Faults)
		want := Counts{
			Completed: w.Items - n*(pf.Failed+pf.Lost+pf.TimedOut+pf.Unsent),
			Failed:    n * pf.Failed,
			Lost:      n * pf.Lost,
			Retried:   n * pf.Retried,
			TimedOut:  n * pf.TimedOut,
			Deaths:    n * pf.Deaths,
		}
		if r.Stats != want {
			bad("stats %+v, want %+v", r.Stats, want)
		}
		if r.LeftRunning != n*pf.LeftRunning {
			bad("%d calls still running in the program after Close, want %d", r.LeftRunning, n*pf.LeftRunning)
		}
	}
}
