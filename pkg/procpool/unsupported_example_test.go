package procpool_test

// ErrUnsupported's fallback, on every platform: worker processes where they
// run, goroutines where they do not.

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/procpool/procpool/pkg/procpool"
)

var fallbackCube = procpool.Register("fallback.cube", func(_ context.Context, x int) (int, error) {
	return x * x * x, nil
})

// A program that must run where worker processes do not (Windows, for now)
// falls back to the Goroutines backend: the same tasks, in this process.
func ExampleErrUnsupported() {
	cfg := procpool.Config{Workers: 2}
	p, err := procpool.New(cfg)
	if errors.Is(err, procpool.ErrUnsupported) {
		cfg.Backend = procpool.Goroutines
		p, err = procpool.New(cfg)
	}
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	out, err := fallbackCube.Map(context.Background(), p, []int{1, 2, 3})
	fmt.Println(out, err)
	// Output: [1 8 27] <nil>
}
