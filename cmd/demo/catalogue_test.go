package main

import (
	"context"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/procpool/procpool/pkg/procpool"
)

// The test binary is its own worker: the pools re-execute it, and TestMain
// hands the worker to procpool.Main before any test runs.
func TestMain(m *testing.M) {
	procpool.Main()
	// Under -race, a process that exits with code 0 first sleeps for the
	// race runtime's atexit_sleep_ms, a second by default: every worker a
	// Close stops, and every os.Exit(0) scenario, would cost a second. The
	// workers inherit this; it changes nothing else.
	if _, set := os.LookupEnv("GORACE"); !set {
		os.Setenv("GORACE", "atexit_sleep_ms=0")
	}
	goleak.VerifyTestMain(m)
}

// TestCatalogue runs every cell of the demo's catalogue and checks that
// procpool kept the promise the catalogue makes for it: the demo cannot
// drift from the library.
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
					t.Logf("%s, detected in %v, stats %+v, usable %v, took %v", r.Outcome, r.Detect, r.Stats, r.Usable, r.Took)
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
