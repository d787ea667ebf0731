package wire

import (
	"bytes"
	"io"
	"slices"
	"testing"
)

// benchShapes are the two ends of what a Run or Result carries: many small
// values, where per-element overhead dominates, and one large value, where
// copying does.
var benchShapes = []struct {
	name   string
	values [][]byte
}{
	{"100x16B", slices.Repeat([][]byte{[]byte("0123456789abcdef")}, 100)},
	{"1x1MiB", [][]byte{bytes.Repeat([]byte{0x5a}, 1<<20)}},
}

func BenchmarkWriteRun(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) {
			m := &Run{ID: 1, Task: "resize", Args: shape.values}
			w := NewWriter(io.Discard, DefaultMaxFrame)
			b.SetBytes(int64(len(frame(encode(b, m)))))
			b.ReportAllocs()
			for b.Loop() {
				if err := w.Write(m); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkReadResult(b *testing.B) {
	for _, shape := range benchShapes {
		b.Run(shape.name, func(b *testing.B) {
			items := make([]Item, len(shape.values))
			for i, v := range shape.values {
				items[i] = Item{Value: v}
			}
			stream := frame(encode(b, &Result{ID: 1, Items: items}))
			r := NewReader(&replay{data: stream}, DefaultMaxFrame)
			d := NewDecoder()
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			for b.Loop() {
				body, err := r.ReadFrame()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := d.Decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
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
