package codec

import (
	"testing"
)

func TestProbe(t *testing.T) {
	c := New()
	type S struct {
		A int
		B string
		C chan int
	}
	_, _ = c.Encode(1)
	before := c.Len()
	b, err := c.Encode(S{A: 1, B: "xx", C: make(chan int)})
	t.Logf("%v %v before=%d after=%d", b, err, before, c.Len())
	for _, v := range []any{100, 200, -5, 1000, uint8(5), int64(1 << 40)} {
		c.Reset()
		b, _ := c.Encode(v)
		var a any
		err := c.Decode(b, &a)
		t.Logf("%T %v -> %x -> %T %v %v", v, v, b, a, a, err)
	}
}
