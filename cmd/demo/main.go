// Command demo is procpool's crash-recovery demo, and a check of it.
//
// It runs a catalogue of real faults inside worker processes (a task that
// returns an error or panics, os.Exit, SIGKILL, a segfault, Go fatal errors,
// hangs, runaway memory, garbage on stdout, values that cannot be encoded, a
// crash after the result was sent), each struck by a few items in the middle
// of a real workload, under each crash policy, and prints what the caller
// saw, and how many calls ran more than once. The
// last column runs the same cells on the goroutine backend, each in a
// program of its own (the demo re-executed), because there a fault that
// kills the process kills the whole program: the demo reports how it died.
// Every cell has a promise in the catalogue; the demo exits 1 if any cell
// broke its promise.
//
//	go run ./cmd/demo [-scenario substr] [-policy break|respawn|retries|goroutines|all] [-workers n] [-json] [-v]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/schollz/progressbar/v3"

	"github.com/procpool/procpool/pkg/procpool"
)

func main() {
	procpool.Main()
	ServeCell() // in a child running a Goroutines cell: runs it and exits
	scenario := flag.String("scenario", "", "run only the scenarios whose name or title contains this")
	policy := flag.String("policy", "all", "crash policy: break, respawn, retries, goroutines (the goroutine backend) or all")
	workers := flag.Int("workers", 2, "workers per pool: processes, or goroutines")
	asJSON := flag.Bool("json", false, "print one JSON record per cell, and no table")
	verbose := flag.Bool("v", false, "show the pool's log, with the workers' stderr")
	flag.Parse()

	scenarios, policies, err := selectCells(*scenario, *policy)
	if err == nil && *workers < 1 {
		err = errors.New("-workers must be at least 1")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(2)
	}
	var logger hclog.Logger
	if *verbose {
		logger = hclog.New(&hclog.LoggerOptions{Name: "procpool", Level: hclog.Debug, Output: os.Stderr})
	}
	bars := !*asJSON && !*verbose && isTerminal(os.Stdout)

	w := DefaultWorkload
	if !*asJSON {
		fmt.Printf("Each cell: Imap over items 1..%d (chunks of %d) on %d worker processes; items %s fault.\n",
			w.Items, Chunk, *workers, joinInts(w.Faults))
		if slices.ContainsFunc(policies, func(p Policy) bool { return p.Backend == procpool.Goroutines }) {
			fmt.Printf("Goroutines: the same on %d goroutines, in a program of its own that the demo starts for the cell.\n", *workers)
		}
		fmt.Println()
	}
	start := time.Now()
	var results []*Result
	enc := json.NewEncoder(os.Stdout)
	for _, s := range scenarios {
		var bar *progressbar.ProgressBar
		opts := Options{Workers: *workers, Workload: w, Logger: logger}
		if *verbose {
			opts.Stderr = os.Stderr
		}
		if bars {
			bar = newBar(s.Title, len(policies)*w.Items)
			opts.Progress = func(n int) { bar.Add(n) }
		}
		for _, pol := range policies {
			if *verbose {
				logger.Info(fmt.Sprintf("=== %s, under %s", s.Title, pol.Label))
			}
			r, err := RunCell(context.Background(), s, pol, opts)
			if err != nil {
				fmt.Fprintln(os.Stderr, "demo:", err)
				os.Exit(1)
			}
			results = append(results, r)
			if *asJSON {
				enc.Encode(r)
			}
		}
		if bar != nil {
			bar.Finish()
		}
	}
	took := time.Since(start)

	failed := 0
	for _, r := range results {
		if !r.OK() {
			failed++
		}
	}
	if !*asJSON {
		if bars {
			fmt.Println()
		}
		printTable(os.Stdout, results)
		printDeaths(os.Stdout, results)
		printGoroutines(os.Stdout, results)
		fmt.Println()
		if failed == 0 {
			fmt.Printf("All %d cells behaved as the catalogue promises (%s).\n", len(results), took.Round(100*time.Millisecond))
		} else {
			fmt.Printf("%d of %d cells did NOT behave as the catalogue promises:\n", failed, len(results))
			for _, r := range results {
				for _, m := range r.Mismatches {
					fmt.Printf("  %s / %s: %s\n", r.Scenario, r.Policy, m)
				}
			}
		}
	}
	if failed > 0 {
		os.Exit(1)
	}
}

// selectCells applies the -scenario and -policy flags.
func selectCells(scenario, policy string) ([]Scenario, []Policy, error) {
	var ss []Scenario
	for _, s := range Catalogue {
		if strings.Contains(strings.ToLower(s.Name+" "+s.Title), strings.ToLower(scenario)) {
			ss = append(ss, s)
		}
	}
	if len(ss) == 0 {
		return nil, nil, fmt.Errorf("no scenario matches %q", scenario)
	}
	var ps []Policy
	for _, p := range Policies {
		if policy == "all" || policy == p.Name {
			ps = append(ps, p)
		}
	}
	if len(ps) == 0 {
		return nil, nil, fmt.Errorf("unknown -policy %q: want break, respawn, retries, goroutines or all", policy)
	}
	return ss, ps, nil
}

func newBar(title string, max int) *progressbar.ProgressBar {
	return progressbar.NewOptions(max,
		progressbar.OptionSetWriter(os.Stdout),
		progressbar.OptionSetDescription(fmt.Sprintf("%-32s", title)),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowCount(),
		progressbar.OptionThrottle(50*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Println() }),
	)
}

// isTerminal reports whether f is a terminal (a character device).
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// printTable prints the results, a row per cell, grouped by scenario.
func printTable(out io.Writer, results []*Result) {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tPOLICY\tFIRST ERROR THE CALLER SEES\tFAULT→ERROR\tCOMPLETED\tFAILED\tLOST\tRETRIED\tTIMED OUT\tMEM KILLS\tDEATHS\tRERUN\tPOOL AFTER\tPROMISE")
	prev := ""
	for _, r := range results {
		title := r.Title
		if title == prev {
			title = ""
		}
		prev = r.Title
		detect := "—"
		if r.Detect > 0 {
			detect = fmtDuration(r.Detect)
		}
		after := "usable"
		if !r.Usable {
			after = "broken"
		}
		check := "✓ kept"
		if !r.OK() {
			check = "✗ NOT KEPT"
		}
		stats := fmt.Sprintf("%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d",
			r.Stats.Completed, r.Stats.Failed, r.Stats.Lost, r.Stats.Retried, r.Stats.TimedOut, r.Stats.MemoryKills, r.Stats.Deaths, r.Rerun)
		if r.Program != nil {
			// No Pool.Stats, no count of runs: the pool died with the program.
			stats, after = "—\t—\t—\t—\t—\t—\t—\t—", "dead"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			title, policyLabel(r.Policy), r.Outcome, detect, stats, after, check)
	}
	tw.Flush()
	fmt.Fprintln(out, "\nFAULT→ERROR: from the moment the first faulting call began, as its worker noted it (the caller, for an argument")
	fmt.Fprintln(out, "that cannot be encoded), to the first error the caller saw.")
	fmt.Fprintln(out, "COMPLETED … DEATHS: Pool.Stats after the workload (MEM KILLS: calls that took their worker over MaxMemoryPerWorker).")
	fmt.Fprintln(out, "RERUN: calls that began more than once, as the tasks noted each run: only Retries runs a call again.")
	fmt.Fprintln(out, "POOL AFTER: whether a call submitted afterwards succeeded.")
	if slices.ContainsFunc(results, func(r *Result) bool { return r.Policy == "goroutines" }) {
		fmt.Fprintln(out, "Goroutines, where the whole program died: how it ended, as the demo saw it from outside; no caller was left")
		fmt.Fprintln(out, "to see an error, and no Pool.Stats to read.")
	}
}

// printGoroutines prints what the goroutine backend's cells did that the
// table does not show: how each program died, what the tasks left behind.
func printGoroutines(out io.Writer, results []*Result) {
	var lines []string
	for _, r := range results {
		if note := goroutineNote(r); note != "" {
			lines = append(lines, fmt.Sprintf("%s\t%s", r.Title, note))
		}
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(out, "\nGoroutines: the tasks run in the caller's own process, and share its fate, stdin, stdout and signals:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintln(tw, "  "+l)
	}
	tw.Flush()
}

// goroutineNote says what a Goroutines cell did that the table does not.
func goroutineNote(r *Result) string {
	var b strings.Builder
	switch p := r.Program; {
	case p != nil:
		total := r.Items.OK + r.Items.Failed + r.Items.NotRun
		fmt.Fprintf(&b, "pid %d: ", p.PID)
		switch {
		case p.Signal != "":
			fmt.Fprintf(&b, "killed by %s", p.Signal)
		case p.ExitCode == 0:
			b.WriteString(`exit status 0, "success", in the middle of its work`)
		default:
			fmt.Fprintf(&b, "exit status %d", p.ExitCode)
		}
		fmt.Fprintf(&b, ", %s after the fault, with %d of %d results seen", fmtDuration(p.After), r.Items.OK+r.Items.Failed, total)
		if p.Stderr != "" {
			fmt.Fprintf(&b, ": %s", p.Stderr)
		}
		return truncate(b.String(), 150)
	case r.LeftRunning > 0:
		return fmt.Sprintf("%s on time, but %d timed-out calls still run in the program after Close: a goroutine cannot be killed",
			r.Outcome, r.LeftRunning)
	case r.Policy == "goroutines" && r.Scenario == "memory":
		return fmt.Sprintf("%s: nothing bounds a goroutine's memory, which is the program's: each runaway grew to %d MiB, then gave up",
			r.Outcome, runawayCap>>20)
	case r.StrayStdout > 0:
		return fmt.Sprintf("%s, but %d lines the tasks printed went to the program's own stdout, such as %q",
			r.Outcome, r.StrayStdout, truncate(r.StrayExample, 40))
	}
	return ""
}

// printDeaths prints, per scenario, how its first dead worker was reported.
func printDeaths(out io.Writer, results []*Result) {
	seen := map[string]bool{}
	var lines []string
	for _, r := range results {
		if r.Death == "" || seen[r.Scenario] {
			continue
		}
		seen[r.Scenario] = true
		lines = append(lines, fmt.Sprintf("%s\t%s", r.Title, truncate(r.Death, 110)))
	}
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(out, "\nThe first *WorkerExitError each scenario's caller got (errors.As), as it reads:")
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	for _, l := range lines {
		fmt.Fprintln(tw, "  "+l)
	}
	tw.Flush()
	for _, r := range results {
		if r.OverMemory != "" {
			fmt.Fprintf(out, "\nThe *MemoryLimitError the caller of a runaway call got (errors.As):\n  %s\n", r.OverMemory)
			return
		}
	}
}

func policyLabel(name string) string {
	for _, p := range Policies {
		if p.Name == name {
			return p.Label
		}
	}
	return name
}

func fmtDuration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return d.Round(time.Millisecond).String()
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

func joinInts(vs []int) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ", ")
}
