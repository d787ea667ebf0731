package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/procpool/procpool/pkg/procpool"
)

// The test binary is its own worker: the pools re-execute it, and TestMain
// hands the worker to procpool.Main before any test runs. It is also the
// program of a Goroutines cell: re-executed with envCell set, ServeCell
// runs the cell and exits.
func TestMain(m *testing.M) {
	procpool.Main()
	ServeCell()
	// Under -race, a process that exits with code 0 first sleeps for the
	// race runtime's atexit_sleep_ms, a second by default: every worker a
	// Close stops, and every os.Exit(0) scenario, would cost a second. The
	// workers and the cells' programs inherit this; it changes nothing else.
	if _, set := os.LookupEnv("GORACE"); !set {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

// TestCatalogue runs every cell of the demo's catalogue and checks that
// procpool kept the promise the catalogue makes for it: the demo cannot
// drift from the library. The Goroutines cells run in programs of their
// own, copies of this test binary: the faults that kill them leave the
// test alone.
func TestCatalogue(t *testing.T) {
	w := DefaultWorkload
	if testing.Short() {
		w = Workload{Items: 1000, Faults: []int{250, 750}}
	}
	for _, s := range Catalogue {
		t.Run(s.Name, func(t *testing.T) {
			for _, pol := range Policies {
				t.Run(pol.Name, func(t *testing.T) {
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					r, err := RunCell(ctx, s, pol, Options{Workers: 2, Workload: w})
					if err != nil {
						t.Fatal(err)
					}
					for _, m := range r.Mismatches {
						t.Error(m)
					}
					if r.Program != nil {
						t.Logf("%s: %s, items %+v, took %v", r.Outcome, goroutineNote(r), r.Items, r.Took)
						return
					}
					t.Logf("%s, detected in %v, stats %+v, usable %v, left running %d, took %v", r.Outcome, r.Detect, r.Stats, r.Usable, r.LeftRunning, r.Took)
				})
			}
		})
	}
}

// Every scenario makes a promise under every policy, and the names the
// -scenario flag filters on are unique.
func TestCatalogueIsComplete(t *testing.T) {
	names := map[string]bool{}
	for _, s := range Catalogue {
		if names[s.Name] {
			t.Errorf("scenario name %q twice", s.Name)
		}
		names[s.Name] = true
		if s.run == nil {
			t.Errorf("scenario %s has no workload", s.Name)
		}
		for _, pol := range Policies {
			if _, ok := s.Expect[pol.Name]; !ok {
				t.Errorf("scenario %s makes no promise under %s", s.Name, pol.Name)
			}
		}
		if len(s.Expect) != len(Policies) {
			t.Errorf("scenario %s has promises for %d policies, want %d", s.Name, len(s.Expect), len(Policies))
		}
	}
	if err := DefaultWorkload.check(); err != nil {
		t.Error(err)
	}
	if os.Getenv(envFaults) != "" {
		t.Errorf("%s is set in the test's own environment", envFaults)
	}
}

// The goroutine backend keeps the API and errors of the process backend:
// a fault that leaves the process alive is promised the same outcome on
// both. A fault that kills a worker process kills, on the goroutine
// backend, the whole program, with a status the catalogue names. A runaway
// call, which the pool stops by killing its worker process, has nothing to
// stop it on the goroutine backend: it fails as the task gives up.
func TestGoroutinePromises(t *testing.T) {
	unbounded := map[string]Expect{
		"memory": {Outcome: KindRemote, Usable: true, PerFault: &PerFault{Failed: 1}},
	}
	want := map[string]string{
		"exit1":           KindDied(Exited(1)),
		"exit0":           KindDied(Exited(0)),
		"flaky":           KindDied(Exited(1)),
		"sigkill":         KindDied(Signalled("SIGKILL")),
		"sigsegv":         KindDied(Exited(2)),
		"goroutine-panic": KindDied(Exited(2)),
		"map-writes":      KindDied(Exited(2)),
		"stack-overflow":  KindDied(Exited(2)),
		"after-send":      KindDied(Exited(1)),
	}
	for _, s := range Catalogue {
		g := s.Expect["goroutines"]
		killsWorker := s.Expect["break"].Outcome == KindBroken
		if killsWorker {
			if g.Outcome != want[s.Name] {
				t.Errorf("%s kills a worker process; on goroutines it promises %q, want %q", s.Name, g.Outcome, want[s.Name])
			}
			if g.Usable || g.PerFault != nil {
				t.Errorf("%s: a dead program is promised usable or with Pool.Stats", s.Name)
			}
			continue
		}
		if _, ok := want[s.Name]; ok {
			t.Errorf("%s does not kill a worker process, but is listed here as killing the program", s.Name)
		}
		if u, ok := unbounded[s.Name]; ok {
			if g.Outcome != u.Outcome || g.Usable != u.Usable || g.PerFault == nil || *g.PerFault != *u.PerFault {
				t.Errorf("%s: goroutines promise %+v, want %+v", s.Name, g, u)
			}
			continue
		}
		p := s.Expect["respawn"]
		if g.Outcome != p.Outcome || g.Usable != p.Usable || g.PerFault == nil || p.PerFault == nil {
			t.Errorf("%s: goroutines promise %+v, processes %+v", s.Name, g, p)
			continue
		}
		// The same cost, but a hung call that is left running, and the
		// lines a task prints, which reach the program's stdout.
		pf := *g.PerFault
		pf.LeftRunning, pf.Stdout = 0, 0
		if pf != *p.PerFault {
			t.Errorf("%s: goroutines cost %+v per fault, processes %+v", s.Name, *g.PerFault, *p.PerFault)
		}
	}
}

// lastWords keeps what the headline of a program's death needs from its
// stderr, however the writes cut it: procpool's WorkerExitError finds the
// first line of a Go crash report in it, or falls back to the last line.
func TestLastWords(t *testing.T) {
	noise := strings.Repeat(strings.Repeat("n", 99)+"\n", 2000) // 200 KB: more than lastWords keeps
	for _, tc := range []struct{ name, stderr, want string }{
		{"nothing", "", ""},
		{"last line", "hello\nbye\n\n", "bye"},
		{"no final newline", "no newline at the end", "no newline at the end"},
		{"fatal error", "log line\nfatal error: concurrent map writes\n\ngoroutine 7 [running]:\nmain.f()\n\t/x.go:1 +0x1\n", "fatal error: concurrent map writes"},
		{"fault", "unexpected fault address 0xdead\nfatal error: fault\n[signal SIGSEGV: segmentation violation]\n\ngoroutine 1:\n", "fatal error: fault [signal SIGSEGV: segmentation violation]"},
		{"crlf", "panic: boom\r\n\ngoroutine 1 [running]:\npanic: not this one\n", "panic: boom"},
		{"signal in C", "SIGSEGV: segmentation violation\nPC=0x4b5460 m=0 sigcode=1 addr=0x0\nsignal arrived during cgo execution\n\nrax    0x4b5460\ngs     0x0\n", "SIGSEGV: segmentation violation"},
		{"panic after much output", noise + "panic: boom\n\ngoroutine 1 [running]:\n", "panic: boom"},
		{"panic before a long dump", "panic: boom\n\ngoroutine 1 [running]:\n" + noise, "panic: boom"},
		{"last line after much output", noise + "bye\n", "bye"},
	} {
		for _, size := range []int{1, 3, 4096, 1 << 20} {
			if size < 4096 && len(tc.stderr) > 4096 {
				continue
			}
			l := &lastWords{}
			for b := []byte(tc.stderr); len(b) > 0; {
				n := min(size, len(b))
				l.Write(b[:n])
				b = b[n:]
			}
			if len(l.String()) > 2*lastWordsHalf+64 {
				t.Errorf("%s in writes of %d: kept %d bytes", tc.name, size, len(l.String()))
			}
			e := procpool.WorkerExitError{PID: 7, ExitCode: 2, Stderr: l.String()}
			if got := e.Headline(); got != tc.want {
				t.Errorf("%s in writes of %d: headline %q, want %q", tc.name, size, got, tc.want)
			}
		}
	}
}
