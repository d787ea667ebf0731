package main

// This file is the catalogue: the scenarios, the policies, and what
// procpool promises for each cell (scenario × policy). RunCell, which runs
// one cell and checks it against its promise, is in cell.go. The demo's
// main only prints.

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

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
	KindMemory  = "ErrMemoryLimit"
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
	case errors.Is(err, procpool.ErrMemoryLimit):
		return KindMemory
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
// did not complete are its Failed, Lost, TimedOut, MemoryKills and Unsent;
// every other item completes.
type PerFault struct {
	Failed      int `json:"failed"`
	Lost        int `json:"lost"`
	Retried     int `json:"retried"`
	TimedOut    int `json:"timed_out"`
	MemoryKills int `json:"memory_kills"`
	Deaths      int `json:"deaths"`
	Unsent      int `json:"unsent"` // calls that never left the caller: their argument could not be encoded
	// Rerun: calls that began more than once, as the tasks noted each run
	// (not a Pool.Stats). Only Retries runs a call again: a death costs
	// the call that was running, and the calls its worker held but had not
	// begun run once, elsewhere.
	Rerun int `json:"rerun"`
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
// pool kills the others on purpose), and no call ran twice.
var broken = Expect{Outcome: KindBroken, Usable: false, Deaths: 1}

// deadly is the promise for a fault that kills the worker mid-call. Break:
// the pool breaks, every pending call fails with ErrBrokenPool. Respawn:
// the call the worker was running is lost, alone (it fails with
// ErrWorkerLost): the calls of its chunk that completed keep their results,
// those it had not begun run once on a replacement. With Retries, the lost
// call runs again: the poison call kills two more workers, then is lost. On
// the goroutine backend the process is the program's own: goroutines is how
// it dies.
func deadly(goroutines Expect) map[string]Expect {
	return map[string]Expect{
		"break":      broken,
		"respawn":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: 1, Deaths: 1}},
		"retries":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: 1, Retried: 2, Deaths: 3, Rerun: 1}},
		"goroutines": goroutines,
	}
}

// transient is the promise for a fault that kills the worker once: lost
// alone under Respawn, and under Retries run again, with success. On the
// goroutine backend there is no second try: the first ends the program.
func transient(goroutines Expect) map[string]Expect {
	return map[string]Expect{
		"break":      broken,
		"respawn":    {Outcome: KindLost, Usable: true, PerFault: &PerFault{Lost: 1, Deaths: 1}},
		"retries":    {Outcome: KindOK, Usable: true, PerFault: &PerFault{Retried: 1, Deaths: 1, Rerun: 1}},
		"goroutines": goroutines,
	}
}

// memoryLimit is the runaway-memory scenario's Config.MaxMemoryPerWorker.
const memoryLimit = 100 << 20

// memoryConfig is the configuration of the runaway-memory scenario.
func memoryConfig(c *procpool.Config) { c.MaxMemoryPerWorker = memoryLimit }

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
		// A transient death: what Retries is for.
		Name: "flaky", Title: "os.Exit(1) on first try only",
		Expect: transient(died(Exited(1), "")),
		run:    imapInts(taskFlaky),
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
		// The pool kills a worker that a call takes over
		// MaxMemoryPerWorker as it grows, and replaces it under either
		// policy: not a crash, and the pool does not break. The call fails
		// with ErrMemoryLimit, and is not run again, whatever Retries: it
		// would only grow another worker as far. A goroutine's memory is
		// the program's: nothing stops it, and it fails as it gives up.
		Name: "memory", Title: "runaway memory (limit 100 MiB)",
		Config: memoryConfig,
		Expect: processes(
			Expect{Outcome: KindMemory, Usable: true, PerFault: &PerFault{MemoryKills: 1}},
			Expect{Outcome: KindRemote, Usable: true, PerFault: &PerFault{Failed: 1}}),
		run: imapInts(taskMemory),
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
		// The worker dies after it sent the faulting item's result, in the
		// call it runs next: under Respawn that call is lost, or retried;
		// under Break what follows fails. The result already sent stands.
		// On the goroutine backend the program dies, after its caller got
		// the result.
		Name: "after-send", Title: "crash after the result was sent",
		Delivered: true,
		Expect:    transient(died(Exited(1), "")),
		run:       imapInts(taskAfterSend),
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
