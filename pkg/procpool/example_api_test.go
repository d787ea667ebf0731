//go:build unix

package procpool_test

// Examples of ElementError and Shutdown, with the tasks of example_test.go.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"time"

	"github.com/procpool/procpool/pkg/procpool"
)

// An ImapUnordered yields results as they complete; the *ElementError of a
// failed element says which input it was.
func ExampleElementError() {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	in := slices.Values([]string{"1", "x", "3", "y"})
	var failed []int
	for _, err := range Atoi.ImapUnordered(context.Background(), p, in) {
		var ee *procpool.ElementError
		if errors.As(err, &ee) {
			failed = append(failed, ee.Index)
		}
	}
	slices.Sort(failed)
	fmt.Println("inputs that failed:", failed)
	// Output: inputs that failed: [1 3]
}

// Shutdown waits for the calls in progress as long as its context allows,
// then terminates what is left. (Nap is the task of ExampleAsCompleted.)
func ExamplePool_Shutdown() {
	p, err := procpool.New(procpool.Config{Workers: 2})
	if err != nil {
		log.Fatal(err)
	}
	long := Nap.Submit(p, 60_000)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	fmt.Println("shutdown:", p.Shutdown(ctx))
	_, err = long.Get(context.Background())
	fmt.Println("the long call:", errors.Is(err, procpool.ErrClosed))
	// Output:
	// shutdown: context deadline exceeded
	// the long call: true
}
