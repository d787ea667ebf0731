// Command bench measures what procpool's process isolation costs, against
// the physical floor and the alternatives, in one run on one machine.
//
// Every workload runs over procpool's worker processes, its goroutine
// backend, bare goroutines (errgroup with SetLimit) and, when python3 is
// installed, Python's multiprocessing.Pool and ProcessPoolExecutor (fork
// start method), at 1, 2 and NumCPU workers. The floor is a raw pipe to a
// re-exec'd child of this very program, with no encoding at all. Each figure
// is the median of -runs runs, with min and max, and its ratio to the floor
// and to the best other implementation; the targets are checked at the end.
//
// The sections: 1, the round trip of one call; 2, Map of a trivial function
// at several chunk sizes; 3 and 4, CPU-bound and allocation-heavy tasks; 5a,
// byte payloads of 64 KiB, 1 MiB and 16 MiB echoed at chunksize 1; 5b, the
// parent's peak resident memory growth during a Map of 512 distinct 1 MiB
// blocks to their lengths (2 workers, a fresh child process per run, Linux
// only); 6, start-up, recovery and idle memory. The fast data path's
// targets compare sections 1, 2, 5a and 5b with Python and the floors at 2
// workers.
//
// A scaling section then runs the same kind of work at many more workers
// than CPUs (-scaling, 2, 16, 64 and 256 by default), procpool's worker
// processes and Python's multiprocessing.Pool: the round trip, a Map at
// chunksize 1, a Map of 10 ms sleeps, start-up, Close, Terminate and the
// replacement of a killed worker, each with its ratio to the fewest
// workers. -main=false runs that section alone.
//
//	go run ./cmd/bench [-runs 5] [-quick] [-json] [-out bench-results] [-python python3]
//	                   [-scaling 2,16,64,256] [-main=true]
//
// The program is its own worker, its own floor child and its own memory
// child (section 5b): main calls procpool.Main first, then serveRole, each
// of which takes over a process started for that role and never returns in
// it.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

func main() {
	procpool.Main() // a worker serves tasks here and never returns
	serveRole()     // a floor child serves its pipe here and never returns

	var o Options
	flag.IntVar(&o.Runs, "runs", 5, "runs per figure; the table shows their median, min and max")
	flag.BoolVar(&o.Quick, "quick", false, "small sizes and 1 run: a smoke run in seconds, not figures to quote")
	flag.BoolVar(&o.JSON, "json", false, "print the report as JSON instead of the table")
	flag.StringVar(&o.Out, "out", "bench-results", "folder for the charts (SVG, PNG), results.json and table.txt")
	flag.StringVar(&o.Python, "python", "python3", `Python interpreter for the Python peers; "" skips them`)
	scaling := flag.String("scaling", countsString(defaultScaling), `worker counts of the scaling section, a comma list; "" skips it (-quick: `+countsString(quickScaling)+`)`)
	mainSections := flag.Bool("main", true, "run sections 1 to 6; -main=false runs only the scaling section")
	flag.Parse()
	if o.Quick && !isSet("runs") {
		o.Runs = 1
	}
	if o.Runs < 1 {
		fmt.Fprintln(os.Stderr, "bench: -runs must be at least 1")
		os.Exit(2)
	}
	if o.Quick && !isSet("scaling") {
		*scaling = countsString(quickScaling)
	}
	var err error
	if o.Scaling, err = parseCounts(*scaling); err != nil {
		fmt.Fprintln(os.Stderr, "bench: -scaling:", err)
		os.Exit(2)
	}
	o.SkipMain = !*mainSections
	if o.SkipMain && len(o.Scaling) == 0 {
		fmt.Fprintln(os.Stderr, "bench: -main=false and -scaling \"\": nothing to measure")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, o, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
	if o.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		err = enc.Encode(rep)
	} else {
		rep.writeTable(os.Stdout)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func isSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// Options are the program's flags.
type Options struct {
	Runs   int
	Quick  bool
	JSON   bool
	Out    string // "" writes no files
	Python string // "" skips the Python peers
	// Scaling are the worker counts of the scaling section; none skips it.
	Scaling []int
	// SkipMain skips sections 1 to 6, to run the scaling section alone.
	SkipMain bool
}

// countsString prints worker counts as -scaling takes them.
func countsString(ks []int) string {
	var fs []string
	for _, k := range ks {
		fs = append(fs, strconv.Itoa(k))
	}
	return strings.Join(fs, ",")
}

// workerCounts is 1, 2 and the number of CPUs, each once.
func workerCounts() []int {
	ws := []int{1, 2, runtime.NumCPU()}
	slices.Sort(ws)
	return slices.Compact(ws)
}

// run measures everything, in an order that keeps the figures apart:
// calibration first on a small heap, then the floors, the serial
// references, each worker count in turn, the scaling section with pools of
// its own, and Python last. It writes the files into o.Out and returns the
// report; progress goes to progress.
func run(ctx context.Context, o Options, progress io.Writer) (*Report, error) {
	start, clock := time.Now(), readCPUClock()
	sizes := fullSizes
	if o.Quick {
		sizes = quickSizes
	}
	step := elapsed(progress, start)
	rep := &Report{Machine: detectMachine(), Quick: o.Quick, Runs: o.Runs, Scaling: o.Scaling}
	if !o.SkipMain {
		rep.Workers = workerCounts()
	}
	python, why := findPython(o.Python)
	if why != "" {
		rep.Notes = append(rep.Notes, why)
		fmt.Fprintln(progress, "bench:", why)
	} else {
		rep.Machine.Python = pythonVersion(python)
	}

	if !o.SkipMain {
		step("calibrating the tasks, starting the pools and the floor children")
		s, err := newSuite(ctx, sizes, rep.Workers)
		if err != nil {
			return nil, err
		}
		rep.SpinRounds, rep.ChurnTrees = s.w.spin10, s.w.trees
		err = s.run(o.Runs, step)
		s.close()
		if err != nil {
			return nil, err
		}
		rep.Results = s.results
		s.w = nil
		runtime.GC()
	}

	if len(o.Scaling) > 0 {
		s, err := newScalingSuite(ctx, sizes, o.Scaling, step)
		if err != nil {
			return nil, err
		}
		err = s.run(o.Runs, step)
		step("scaling: closing its pools")
		s.close()
		if err != nil {
			return nil, err
		}
		rep.Results = append(rep.Results, s.results...)
		runtime.GC()
	}

	if python != "" {
		step("Python peers (%s %s)", python, rep.Machine.Python)
		pctx, cancel := context.WithTimeout(ctx, pythonTimeout(o.Quick, len(o.Scaling) > 0))
		rs, version, err := runPython(pctx, python, sizes, rep.Workers, o.Scaling, o.Runs, prefixWriter(progress, "bench:          "))
		cancel()
		if err != nil {
			// The Go figures stand on their own: say so and carry on.
			rep.Notes = append(rep.Notes, fmt.Sprintf("Python peers failed: %v", err))
			fmt.Fprintln(progress, "bench: Python peers failed:", err)
		} else {
			rep.Machine.Python = version
			rep.Results = append(rep.Results, rs...)
		}
	}

	rep.sortResults()
	rep.computeRatios()
	rep.computeChecks()
	rep.WallSeconds = time.Since(start).Seconds()
	rep.Machine.OthersCPU = clock.othersSince()
	if o.Out != "" {
		step("writing %s", o.Out)
		if err := rep.writeFiles(o.Out); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// writeFiles writes the charts, results.json and table.txt into dir.
func (rep *Report) writeFiles(dir string) error {
	files, err := writeCharts(rep, dir)
	if err != nil {
		return err
	}
	rep.Notes = append(rep.Notes, "charts: "+strings.Join(files, ", "))
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var sb strings.Builder
	rep.writeTable(&sb)
	return os.WriteFile(filepath.Join(dir, "table.txt"), []byte(sb.String()), 0o644)
}

// prefixWriter prefixes each line written to w.
func prefixWriter(w io.Writer, prefix string) io.Writer {
	return &prefixed{w: w, prefix: prefix, bol: true}
}

type prefixed struct {
	w      io.Writer
	prefix string
	bol    bool
}

func (p *prefixed) Write(b []byte) (int, error) {
	var sb strings.Builder
	for _, c := range string(b) {
		if p.bol {
			sb.WriteString(p.prefix)
		}
		sb.WriteRune(c)
		p.bol = c == '\n'
	}
	if _, err := io.WriteString(p.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}
