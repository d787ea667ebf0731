//go:build unix

package procpool_test

// Benchmarks of a round trip, of Map throughput and of the bulk data path,
// against the pipe floor, and of the parent's memory during a large Map.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkPayload echoes byte payloads through 2 workers, 32 per Map at
// chunksize 1 (4 of 16 MiB, so that it stays quick): the bulk data path,
// both ways. MB/s counts the bytes sent.
func BenchmarkPayload(b *testing.B) {
	for _, bc := range []struct{ size, blocks int }{{64 << 10, 32}, {1 << 20, 32}, {16 << 20, 4}} {
		size := bc.size
		b.Run(fmt.Sprintf("size=%dKiB", size>>10), func(b *testing.B) {
			p := benchPool(b, 2)
			in := make([][]byte, bc.blocks)
			for i := range in {
				in[i] = make([]byte, size)
			}
			b.SetBytes(int64(len(in) * size))
			for b.Loop() {
				if _, err := Echo.Map(context.Background(), p, in, procpool.Chunksize(1)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// benchLength is BenchmarkMapMemory's task: a large input, a small result.
var benchLength = procpool.Register("test.bench-length", func(_ context.Context, b []byte) (int, error) { return len(b), nil })

// BenchmarkMapMemory maps benchLength over 512 distinct 1 MiB blocks at
// chunksize 1 through 2 workers, and reports the most memory the parent's
// runtime held above what it held before, the input included, while the
// Maps ran (peak-MiB, sampled every millisecond: a pool that streams its
// input holds a few blocks, one that encodes it ahead holds a copy), and
// what each Map allocated (alloc-MiB/op).
func BenchmarkMapMemory(b *testing.B) {
	const blocks, size = 512, 1 << 20
	p := benchPool(b, 2)
	ctx := context.Background()
	one := procpool.Chunksize(1)
	in := make([][]byte, blocks)
	for i := range in {
		in[i] = bytes.Repeat([]byte{byte(i)}, size)
	}
	if _, err := benchLength.Map(ctx, p, in[:2], one); err != nil { // warm up
		b.Fatal(err)
	}
	runtime.GC()
	base := heldBytes()
	var peak atomic.Uint64
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			if h := heldBytes(); h > peak.Load() {
				peak.Store(h)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.SetBytes(blocks * size)
	for b.Loop() {
		lens, err := benchLength.Map(ctx, p, in, one)
		if err != nil {
			b.Fatal(err)
		}
		if len(lens) != blocks || lens[blocks-1] != size {
			b.Fatalf("wrong lengths: %d of them, the last %d", len(lens), lens[len(lens)-1])
		}
	}
	runtime.ReadMemStats(&after)
	close(stop)
	<-done
	b.ReportMetric(float64(max(peak.Load(), base)-base)/(1<<20), "peak-MiB")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
}

// heldBytes is the memory the Go runtime holds from the system and has not
// released: its share of the resident memory, heap and the rest.
func heldBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}

// BenchmarkScaling runs the same work at 2, 16, 64 and 256 workers: a round
// trip, Map of trivial calls at chunksize 1, and 5,120 calls of 10 ms at
// chunksize 1 (ideal: 5,120 × 10 ms / workers). The cost of scheduling
// should not grow with the workers. Set PROCPOOL_BENCH_SCALING=2,16 to pick.
func BenchmarkScaling(b *testing.B) {
	counts := []int{2, 16, 64, 256}
	if s := os.Getenv("PROCPOOL_BENCH_SCALING"); s != "" {
		counts = counts[:0]
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(f)
			if err != nil {
				b.Fatal(err)
			}
			counts = append(counts, n)
		}
	}
	ctx := context.Background()
	tiny := make([]int, 10_000)
	sleeps := make([]int, 5120)
	for i := range sleeps {
		sleeps[i] = 10
	}
	for _, n := range counts {
		p := benchPool(b, n)
		b.Run(fmt.Sprintf("workers=%d/roundtrip", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Square.Submit(p, 3).Get(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("workers=%d/map-chunksize=1", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Square.Map(ctx, p, tiny, procpool.Chunksize(1)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*len(tiny))/b.Elapsed().Seconds(), "items/s")
		})
		if n >= 64 {
			b.Run(fmt.Sprintf("workers=%d/sleeps-10ms", n), func(b *testing.B) {
				for b.Loop() {
					if _, err := Sleep.Map(ctx, p, sleeps, procpool.Chunksize(1)); err != nil {
						b.Fatal(err)
					}
				}
				ideal := time.Duration(len(sleeps)/n) * 10 * time.Millisecond
				b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(ideal), "x-ideal")
			})
		}
		p.Close()
	}
}
