package codec

import "testing"

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
