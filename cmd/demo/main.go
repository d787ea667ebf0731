// Command demo runs real work through a process pool and shows what happens
// when a worker crashes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// CountPrimes counts the primes below n: real CPU work for the workers.
var CountPrimes = procpool.Register("demo.count-primes", func(_ context.Context, n int) (int, error) {
	count := 0
	for i := 2; i < n; i++ {
		prime := true
		for d := 2; d <= int(math.Sqrt(float64(i))); d++ {
			if i%d == 0 {
				prime = false
				break
			}
		}
		if prime {
			count++
		}
	}
	return count, nil
})

// Segfault dies the hard way: a write through a wild pointer.
var Segfault = procpool.Register("demo.segfault", func(_ context.Context, n int) (int, error) {
	if n == 13 {
		crashHard()
	}
	return n, nil
})

func main() {
	procpool.Main()
	workers := flag.Int("workers", 2, "worker processes")
	verbose := flag.Bool("v", false, "show the pool's log, with the workers' stderr")
	flag.Parse()
	level := hclog.Off
	if *verbose {
		level = hclog.Debug
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: "procpool", Level: level})
	if err := run(*workers, logger); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(workers int, logger hclog.Logger) error {
	ctx := context.Background()
	start := time.Now()
	p, err := procpool.New(procpool.Config{Workers: workers, Logger: logger})
	if err != nil {
		return err
	}
	fmt.Printf("started %d workers %v in %v\n", workers, p.Workers(), time.Since(start).Round(time.Microsecond))

	in := []int{100_000, 200_000, 300_000, 400_000, 500_000, 600_000, 700_000, 800_000}
	start = time.Now()
	counts, err := CountPrimes.Map(ctx, p, in, procpool.Chunksize(1))
	if err != nil {
		return err
	}
	fmt.Printf("primes below %v: %v (%v)\n", in, counts, time.Since(start).Round(time.Millisecond))
	p.Close()

	fmt.Println("\nnow a Map of 100 items where item 13 segfaults in its worker:")
	p, err = procpool.New(procpool.Config{Workers: workers, Logger: logger})
	if err != nil {
		return err
	}
	defer p.Close()
	items := make([]int, 100)
	for i := range items {
		items[i] = i
	}
	_, err = Segfault.Map(ctx, p, items, procpool.Chunksize(1))
	var exit *procpool.WorkerExitError
	if !errors.As(err, &exit) || !errors.Is(err, procpool.ErrBrokenPool) {
		return fmt.Errorf("expected a broken pool, got %v", err)
	}
	fmt.Printf("  error:      %v\n", err)
	fmt.Printf("  broken:     errors.Is(err, procpool.ErrBrokenPool) = %v\n", errors.Is(err, procpool.ErrBrokenPool))
	fmt.Printf("  worker:     pid %d, exit code %d, signal %q\n", exit.PID, exit.ExitCode, exit.Signal)
	fmt.Printf("  its stderr: %s\n", firstLines(exit.Stderr, 3))
	_, err = CountPrimes.Submit(p, 10).Get(ctx)
	fmt.Printf("  next Submit: %v\n", err)
	return nil
}

func firstLines(s string, n int) string {
	out := ""
	for i, line := range splitLines(s) {
		if i == n {
			return out + "\n              …"
		}
		if i > 0 {
			out += "\n              "
		}
		out += line
	}
	return out
}

func splitLines(s string) []string {
	var lines []string
	for len(s) > 0 {
		i := 0
		for i < len(s) && s[i] != '\n' {
			i++
		}
		lines = append(lines, s[:i])
		if i < len(s) {
			i++
		}
		s = s[i:]
	}
	return lines
}
