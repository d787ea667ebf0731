package wire

import (
	"bytes"
	"io"
	"os"
	"slices"
	"testing"
	"time"
)

// benchShapes are the ends of what a Run or Result carries: many small
// values, where per-element overhead dominates, and one large value, where
// copying does. 100000x1B is a Map of tiny calls, say ints to ints.
var benchShapes = []struct {
	name   string
	values [][]byte
}{
	{"100x16B", slices.Repeat([][]byte{[]byte("0123456789abcdef")}, 100)},
	{"100000x1B", slices.Repeat([][]byte{{0x2a}}, 100000)},
	{"1x1MiB", [][]byte{bytes.Repeat([]byte{0x5a}, 1<<20)}},
}

// benchRun is a Run of values, built as the parent builds its arguments.
func benchRun(values [][]byte) *Run {
	var args Values
	for _, v := range values {
		start := args.Begin()
		args.Buf = append(args.Buf, v...)
		args.End(start)
	}
	return &Run{ID: 1, Task: "resize", Args: args}
}

func benchResult(values [][]byte) *Result {
	items := make([]Item, len(values))
	for i, v := range values {
		items[i] = Item{Value: v}
	}
	return &Result{ID: 1, Items: items}
}

func BenchmarkWriteRun(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) { benchWrite(b, io.Discard, benchRun(shape.values)) })
	}
}

func BenchmarkWriteResult(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) { benchWrite(b, io.Discard, benchResult(shape.values)) })
	}
}

// BenchmarkWritePipe writes to a real pipe, which a goroutine drains as the
// other side's Reader does, 64 KiB at a time: the cost of a large value
// there is the copies and the system calls.
func BenchmarkWritePipe(b *testing.B) {
	big := [][]byte{bytes.Repeat([]byte{0x5a}, 1<<20)}
	for _, m := range []struct {
		name string
		msg  Message
	}{
		{"Run/1x1MiB", benchRun(big)},
		{"Result/1x1MiB", benchResult(big)},
		{"Result/100000x1B", benchResult(benchShapes[1].values)},
	} {
		b.Run(m.name, func(b *testing.B) {
			pw := drainedPipe(b)
			benchWrite(b, pw, m.msg)
		})
	}
}

// benchWrite writes and flushes m to w once per iteration.
func benchWrite(b *testing.B, w io.Writer, m Message) {
	fw := NewWriter(w, DefaultMaxFrame)
	b.SetBytes(int64(len(frame(encode(b, m)))))
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		if err := fw.Write(m); err != nil {
			b.Fatal(err)
		}
		if err := fw.Flush(); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// reportCPU reports the process's CPU time per iteration since start, a
// steadier measure than the wall time on a shared machine. It includes the
// garbage collector's, and a pipe benchmark's reader's.
func reportCPU(b *testing.B, start time.Duration) {
	if used := cpuTime() - start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// drainedPipe returns the write end of a pipe whose read end a goroutine
// reads until the benchmark ends.
func drainedPipe(b *testing.B) *os.File {
	pr, pw, err := os.Pipe()
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, bufSize)
		for {
			if _, err := pr.Read(buf); err != nil {
				return
			}
		}
	}()
	b.Cleanup(func() {
		pw.Close()
		<-done
		pr.Close()
	})
	return pw
}

func BenchmarkReadResult(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) { benchRead(b, benchResult(shape.values)) })
	}
}

// BenchmarkReadRun is the worker's side: the arguments of a run.
func BenchmarkReadRun(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) { benchRead(b, benchRun(shape.values)) })
	}
}

// BenchmarkDecode decodes one body over and over: the parsing alone, with
// no frame to allocate, so little for the garbage collector to blur.
func BenchmarkDecode(b *testing.B) {
	for _, shape := range benchShapes {
		for _, m := range []Message{benchResult(shape.values), benchRun(shape.values)} {
			b.Run(m.kind().String()+"/"+shape.name, func(b *testing.B) {
				body := encode(b, m)
				d := NewDecoder()
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				start := cpuTime()
				for b.Loop() {
					if _, err := d.Decode(body); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, start)
			})
		}
	}
}

// benchRead reads and decodes m's frame once per iteration. It does not
// Release, so a Result's items buffer is reused even when it is too large
// to keep: what it measures is the parsing.
func benchRead(b *testing.B, m Message) {
	stream := frame(encode(b, m))
	r := NewReader(&replay{data: stream}, DefaultMaxFrame)
	d := NewDecoder()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		body, err := r.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := d.Decode(body); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start)
}

// replay serves data over and over, so one Reader, and its buffer, lasts
// the whole benchmark.
type replay struct {
	data []byte
	off  int
}

func (r *replay) Read(p []byte) (int, error) {
	n := copy(p, r.data[r.off:])
	r.off = (r.off + n) % len(r.data)
	return n, nil
}
