package codec

import (
	"bytes"
	"reflect"
	"testing"
)

// The int benchmarks measure the per-value overhead a task pays around its
// own work: one boxed argument in, one result out.

func BenchmarkEncodeInt(b *testing.B) {
	c := New()
	var v any = 123456
	b.ReportAllocs()
	for b.Loop() {
		c.Reset()
		if _, err := c.Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInt(b *testing.B) {
	c := New()
	enc, err := c.Encode(123456)
	if err != nil {
		b.Fatal(err)
	}
	var n int
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Decode(enc, &n); err != nil {
			b.Fatal(err)
		}
	}
	if n != 123456 {
		b.Fatalf("decoded %d", n)
	}
}

// The struct benchmark is the common case of a task's value: a type with
// no recursion or interfaces, which the cycle check must not walk.

func BenchmarkEncodeStruct(b *testing.B) {
	c := New()
	var v any = point{X: 1, Y: -2, Tag: "p"}
	b.ReportAllocs()
	for b.Loop() {
		c.Reset()
		if _, err := c.Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

// The tree and JSON-like benchmarks measure values that are walked before
// encoding: a recursive type, and nested interfaces.

// benchTree is a tree of 1 + 4 + … + 4^depth nodes.
func benchTree(depth int) *benchNode {
	n := &benchNode{Name: "node", Weight: float64(depth)}
	if depth > 0 {
		for range 4 {
			n.Kids = append(n.Kids, benchTree(depth-1))
		}
	}
	return n
}

type benchNode struct {
	Name   string
	Weight float64
	Kids   []*benchNode
}

// benchJSON is a decoded JSON document of 1 + 4 + … + 4^depth objects.
func benchJSON(depth int) map[string]any {
	m := map[string]any{"name": "node", "weight": float64(depth), "tags": []any{"a", "b"}}
	if depth > 0 {
		kids := make([]any, 4)
		for i := range kids {
			kids[i] = benchJSON(depth - 1)
		}
		m["kids"] = kids
	}
	return m
}

func BenchmarkEncodeTree(b *testing.B) { benchEncode(b, benchTree(5)) }
func BenchmarkEncodeJSON(b *testing.B) { benchEncode(b, benchJSON(5)) }

func benchEncode(b *testing.B, v any) {
	c := New()
	b.ReportAllocs()
	for b.Loop() {
		c.Reset()
		if _, err := c.Encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

// The walk benchmarks measure the walk alone, the share of the two above
// that the check costs.

func BenchmarkWalkTree(b *testing.B) { benchWalk(b, benchTree(5)) }
func BenchmarkWalkJSON(b *testing.B) { benchWalk(b, benchJSON(5)) }

func benchWalk(b *testing.B, v any) {
	var w walker
	rv := reflect.ValueOf(v)
	ti := infoOf(rv.Type())
	b.ReportAllocs()
	for b.Loop() {
		if err := w.walk(rv, ti); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFast and BenchmarkGeneral compare the fast paths with the
// general ones on the values of bulk Maps of tiny tasks, each decoded into
// a fresh variable as a task's argument is (a small struct among them);
// compare them with `benchstat -col .name`.

func BenchmarkFast(b *testing.B)    { benchCodecs(b, true) }
func BenchmarkGeneral(b *testing.B) { benchCodecs(b, false) }

func benchCodecs(b *testing.B, fast bool) {
	ints := make([]int, 100)
	for i := range ints {
		ints[i] = i*i*i - 5000
	}
	benchType(b, fast, "int", 123456)
	benchType(b, fast, "string", "a short string, as a task takes")
	benchType(b, fast, "bytes1k", bytes.Repeat([]byte{0xab}, 1024))
	benchType(b, fast, "ints100", ints)
	benchType(b, fast, "struct", point{X: 1, Y: -2, Tag: "p"})
}

func benchType[T any](b *testing.B, fast bool, name string, v T) {
	f := FastFor[T]()
	c := New()
	b.Run("op=encode/type="+name, func(b *testing.B) {
		b.ReportAllocs()
		if fast {
			for b.Loop() {
				c.Reset()
				f.Encode(c, &v)
			}
			return
		}
		for b.Loop() {
			c.Reset()
			if _, err := c.Encode(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	enc := f.Append(nil, &v)
	b.Run("op=decode/type="+name, func(b *testing.B) {
		b.ReportAllocs()
		if fast {
			for b.Loop() {
				var out T
				if !f.Decode(enc, &out) {
					b.Fatal("refused")
				}
			}
			return
		}
		for b.Loop() {
			var out T
			if err := c.Decode(enc, &out); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeSpans decodes a chunk's results of 4,096 ints, one
// Decode per value against one DecodeSpans for all: the parent's side of
// a bulk Map.
func BenchmarkDecodeSpans(b *testing.B) {
	f := FastFor[int]()
	var buf []byte
	var span []uint32
	for i := range 4096 {
		start := len(buf)
		buf = f.Append(buf, &i)
		span = append(span, uint32(start), uint32(len(buf)))
	}
	dst := make([]int, 4096)
	b.Run("each", func(b *testing.B) {
		for b.Loop() {
			clear(dst)
			for i := range dst {
				if !f.Decode(buf[span[2*i]:span[2*i+1]], &dst[i]) {
					b.Fatal("refused")
				}
			}
		}
	})
	b.Run("spans", func(b *testing.B) {
		for b.Loop() {
			clear(dst)
			if f.DecodeSpans(buf, span, dst) != len(dst) {
				b.Fatal("refused")
			}
		}
	})
}
