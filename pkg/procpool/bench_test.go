//go:build unix

package procpool_test

// Benchmarks of a round trip and of Map throughput, against the pipe floor.

import (
	"context"
	"io"
	"os"
	"os/exec"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/procpool/procpool/pkg/procpool"
)

// The benchmarks quote figures against the floor measured in the same run:
// BenchmarkPipeFloor is a raw round trip of one small message through a
// re-exec'd child, with no encoding and no pool. Compare them with benchstat.

func BenchmarkPipeFloor(b *testing.B) {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PROCPOOL_TEST_ROLE=pipe-echo")
	pingPong(b, cmd)
}

// pingPong times 16-byte round trips through cmd, which runs pipeEcho.
func pingPong(b *testing.B, cmd *exec.Cmd) {
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer in.Close()
	msg := make([]byte, 16)
	for b.Loop() {
		if _, err := in.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(out, msg); err != nil {
			b.Fatal(err)
		}
	}
}

func benchPool(b *testing.B, workers int) *procpool.Pool {
	p, err := procpool.New(procpool.Config{Workers: workers, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { p.Close() })
	return p
}

// BenchmarkSubmitGet is the round trip of one trivial call.
func BenchmarkSubmitGet(b *testing.B) {
	p := benchPool(b, 1)
	ctx := context.Background()
	for b.Loop() {
		if _, err := Square.Submit(p, 3).Get(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMap is the throughput of Map over a trivial task, per element.
func BenchmarkMap(b *testing.B) {
	in := make([]int, 100_000)
	for i := range in {
		in[i] = i
	}
	for _, bc := range []struct {
		name string
		opts []procpool.MapOption
	}{
		{"chunksize=1", []procpool.MapOption{procpool.Chunksize(1)}},
		{"chunksize=default", nil},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := benchPool(b, 2)
			ctx := context.Background()
			n := len(in)
			if bc.opts != nil {
				n = 10_000
			}
			for b.Loop() {
				if _, err := Square.Map(ctx, p, in[:n], bc.opts...); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/item")
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "items/s")
		})
	}
}
