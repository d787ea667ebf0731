package main

// This file is the goroutine backend's column. On that backend the tasks
// run in the caller's own process: a fault that kills the process kills
// the whole program. So that the demo can show it, and live on, each
// Goroutines cell runs in a program of its own: the demo re-executes
// itself with envCell set, and the child runs the cell in-process and
// prints its Result. If the child dies instead, the demo reports how.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// envCell, in the environment of a child of the demo, is the cellSpec of
// the cell it is to run, in JSON.
const envCell = "PROCPOOL_DEMO_CELL"

// programTimeout bounds the life of a cell's program.
const programTimeout = time.Minute

// cellSpec is what a cell's program runs.
type cellSpec struct {
	Scenario string   `json:"scenario"`
	Policy   string   `json:"policy"`
	Workers  int      `json:"workers"`
	Workload Workload `json:"workload"`
	// Marker starts every line the program prints for the demo: its stdout
	// is also the tasks' stdout, and any other line is theirs.
	Marker  string `json:"marker"`
	Verbose bool   `json:"verbose"` // log the pool to stderr
}

// Program is how the program of a Goroutines cell died, as the demo saw it
// from outside.
type Program struct {
	PID      int    `json:"pid"`
	ExitCode int    `json:"exit_code"`        // -1 if a signal killed it
	Signal   string `json:"signal,omitempty"` // the signal that killed it
	// Stderr is the headline of its last words, as a pool's error gives a
	// dead worker's (procpool.WorkerExitError.Headline): the first line of
	// the Go runtime's crash report, or else its last line on stderr.
	Stderr string `json:"stderr,omitempty"`
	// After is the time from the first fault to the end of the program.
	After time.Duration `json:"fault_to_death_ns"`
}

// How says how the program ended, for KindDied.
func (p *Program) How() string {
	if p.Signal != "" {
		return Signalled(p.Signal)
	}
	return Exited(p.ExitCode)
}

// ServeCell runs the cell envCell names, prints its Result and exits, in a
// child of the demo; elsewhere it returns at once. Call it right after
// procpool.Main, in main and in TestMain.
func ServeCell() {
	spec, ok := os.LookupEnv(envCell)
	if !ok {
		return
	}
	if err := serveCell(spec); err != nil {
		fmt.Fprintln(os.Stderr, "demo cell:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func serveCell(spec string) error {
	var sp cellSpec
	if err := json.Unmarshal([]byte(spec), &sp); err != nil {
		return fmt.Errorf("%s: %w", envCell, err)
	}
	if sp.Marker == "" {
		return fmt.Errorf("%s: no marker", envCell)
	}
	if err := sp.Workload.check(); err != nil {
		return err
	}
	i := slices.IndexFunc(Catalogue, func(s Scenario) bool { return s.Name == sp.Scenario })
	j := slices.IndexFunc(Policies, func(p Policy) bool { return p.Name == sp.Policy })
	if i < 0 || j < 0 {
		return fmt.Errorf("no cell %s/%s", sp.Scenario, sp.Policy)
	}
	s, pol := Catalogue[i], Policies[j]
	exp, ok := s.Expect[pol.Name]
	if !ok {
		return fmt.Errorf("scenario %s has no promise for policy %s", s.Name, pol.Name)
	}
	o := Options{Workers: sp.Workers, Workload: sp.Workload}
	if sp.Verbose {
		o.Logger = hclog.New(&hclog.LoggerOptions{Name: "procpool", Level: hclog.Debug, Output: os.Stderr})
	}
	// One write per line, unbuffered: what the caller saw is out before
	// the program can die.
	o.onItem = func(item int, err error) {
		fmt.Fprintf(os.Stdout, "%sitem %d %s\n", sp.Marker, item, Classify(err))
	}
	r, err := runPool(context.Background(), s, pol, o, exp, os.Getenv(envDir))
	if err != nil {
		return err
	}
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(os.Stdout, "%sresult %s\n", sp.Marker, b)
	return err
}

// runProgram runs a Goroutines cell in a program of its own, and reads its
// Result, or, if it died, tells how: KindDied.
func runProgram(ctx context.Context, s Scenario, pol Policy, o Options, exp Expect, dir string) (*Result, error) {
	w := o.Workload
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	marker := "procpool-demo-" + hex.EncodeToString(nonce[:]) + " "
	spec, err := json.Marshal(cellSpec{Scenario: s.Name, Policy: pol.Name, Workers: o.Workers, Workload: w, Marker: marker, Verbose: o.Stderr != nil})
	if err != nil {
		return nil, err
	}
	faults := make([]string, len(w.Faults))
	for i, f := range w.Faults {
		faults[i] = strconv.Itoa(f)
	}

	ctx, cancel := context.WithTimeout(ctx, programTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe)
	// The tasks run in this program: it gets the environment a worker
	// would. GORACE: under -race a program that exits with status 0 would
	// sleep a second first.
	cmd.Env = append(os.Environ(), envCell+"="+string(spec), envFaults+"="+strings.Join(faults, ","), envDir+"="+dir)
	if _, set := os.LookupEnv("GORACE"); !set {
		cmd.Env = append(cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	words := &lastWords{tee: o.Stderr}
	cmd.Stderr = words // and stdin is /dev/null
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", s.Name, pol.Name, err)
	}

	var (
		reported            *Result
		badReport           error
		delivered           bool
		yielded, ok, failed int
		stray               int
		example             string
	)
	strayLine := func(line string) {
		if strings.TrimSpace(line) == "" {
			return
		}
		if stray++; stray == 1 {
			example = line
		}
	}
	br := bufio.NewReader(stdout)
	for {
		line, err := br.ReadString('\n')
		line = strings.TrimSuffix(line, "\n")
		// A task may have left a line unfinished: what precedes the marker
		// is the task's.
		before, msg, found := strings.Cut(line, marker)
		strayLine(before)
		switch kind, rest, _ := strings.Cut(msg, " "); {
		case !found:
		case kind == "item":
			yielded++
			if o.Progress != nil {
				o.Progress(1)
			}
			num, outcome, _ := strings.Cut(rest, " ")
			if outcome != KindOK {
				failed++
			} else if ok++; num == strconv.Itoa(w.Faults[0]) {
				delivered = true
			}
		case kind == "result":
			reported = new(Result)
			if err := json.Unmarshal([]byte(rest), reported); err != nil {
				reported, badReport = nil, err
			}
		}
		if err != nil {
			break
		}
	}
	end := time.Now()
	waitErr := cmd.Wait()
	took := time.Since(start)
	if o.Progress != nil && reported == nil && w.Items > yielded {
		o.Progress(w.Items - yielded)
	}

	r := reported
	if r == nil {
		r = &Result{Scenario: s.Name, Title: s.Title, Policy: pol.Name, Expect: exp,
			Items: Items{OK: ok, Failed: failed, NotRun: w.Items - yielded}}
	}
	r.Took, r.StrayStdout, r.StrayExample = took, stray, example
	bad := func(format string, args ...any) { r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...)) }
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		r.Outcome = "did not finish"
		bad("the cell's program did not finish within %s: killed", programTimeout)
	case waitErr != nil && !errors.As(waitErr, &exitErr):
		return nil, fmt.Errorf("%s/%s: %w", s.Name, pol.Name, waitErr)
	case reported != nil:
		if r.Scenario != s.Name || r.Policy != pol.Name {
			bad("the program reported cell %s/%s", r.Scenario, r.Policy)
		}
		if waitErr != nil {
			bad("the program reported, then ended with %v: %s", waitErr, death(cmd.ProcessState, words).Headline())
		}
		if pf := exp.PerFault; pf != nil && stray != len(w.Faults)*pf.Stdout {
			bad("%d lines reached the program's stdout, want %d", stray, len(w.Faults)*pf.Stdout)
		}
	default:
		d := death(cmd.ProcessState, words)
		r.Program = &Program{PID: d.PID, ExitCode: d.ExitCode, Signal: d.Signal, Stderr: d.Headline()}
		r.Outcome = KindDied(r.Program.How())
		if badReport != nil {
			r.FirstError = "unreadable result: " + badReport.Error()
		}
		fault, struck := firstFault(dir)
		if struck {
			r.Program.After = max(0, end.Sub(fault))
		}
		r.checkDied(w, s, delivered, struck)
	}
	r.Pass = r.OK()
	return r, nil
}

// checkDied compares the result of a program that died with its promise.
func (r *Result) checkDied(w Workload, s Scenario, delivered, struck bool) {
	e := r.Expect
	bad := func(format string, args ...any) { r.Mismatches = append(r.Mismatches, fmt.Sprintf(format, args...)) }
	if r.Outcome != e.Outcome {
		m := fmt.Sprintf("%s, want %s", r.Outcome, e.Outcome)
		if r.Program.Stderr != "" {
			m += ": " + r.Program.Stderr
		}
		bad("%s", m)
	}
	if e.Says != "" && !strings.Contains(r.Program.Stderr, e.Says) {
		bad("the program's last words: %q, want %q in them", r.Program.Stderr, e.Says)
	}
	if !struck {
		bad("the program died before any fault struck")
	}
	if e.Usable {
		bad("usable afterwards: the program is dead, want usable")
	}
	if s.Delivered && !delivered {
		bad("the result of item %d, sent before the program died, did not reach the caller", w.Faults[0])
	}
}

// death describes how a cell's program died, as the pool describes a
// worker's death: its headline is the line of its stderr that says most.
func death(ps *os.ProcessState, stderr *lastWords) *procpool.WorkerExitError {
	e := &procpool.WorkerExitError{PID: ps.Pid(), ExitCode: ps.ExitCode(), Stderr: stderr.String()}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		e.Signal = signalName(ws.Signal())
	}
	return e
}

// lastWords keeps what a program writes to stderr, for the headline of its
// death: all of it up to 128 KiB, else its first and its last 64 KiB, so
// that a crash report's first line is kept whether the program wrote much
// before it or dumped many goroutines after it. It copies everything to
// tee, if set.
type lastWords struct {
	tee        io.Writer
	head, tail []byte // tail grows to twice lastWordsHalf, then drops the older half
	dropped    int    // bytes dropped from the front of tail
}

const lastWordsHalf = 64 << 10

func (l *lastWords) Write(b []byte) (int, error) {
	if l.tee != nil {
		l.tee.Write(b)
	}
	n := len(b)
	if room := lastWordsHalf - len(l.head); room > 0 {
		k := min(room, len(b))
		l.head, b = append(l.head, b[:k]...), b[k:]
	}
	l.tail = append(l.tail, b...)
	if len(l.tail) > 2*lastWordsHalf {
		over := len(l.tail) - lastWordsHalf
		l.tail = append(l.tail[:0], l.tail[over:]...)
		l.dropped += over
	}
	return n, nil
}

// String returns what was kept, with a line in place of what was not.
func (l *lastWords) String() string {
	tail, dropped := l.tail, l.dropped
	if over := len(tail) - lastWordsHalf; over > 0 {
		tail, dropped = tail[over:], dropped+over
	}
	if dropped == 0 {
		return string(l.head) + string(tail)
	}
	return fmt.Sprintf("%s\n[%d bytes not kept]\n%s", l.head, dropped, tail)
}
