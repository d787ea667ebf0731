package codec

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// FuzzFastDecode feeds arbitrary bytes to Decode for several types. What
// Decode takes, the general path must take too, whole and without an
// error, and decode alike; what it refuses, it must leave *v alone for.
// (The converse, that Decode takes all the general path takes, is for
// TestFastDecodeOthers: fed arbitrary bytes, msgpack allocates whatever
// length a header claims.)
func FuzzFastDecode(f *testing.F) {
	for _, b := range append(otherForms(), structForms()...) {
		f.Add(b)
	}
	for _, ft := range fastTypes(rand.New(rand.NewPCG(1, 2))) {
		for i, b := range ft.encodings() {
			if i%8 == 0 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := New()
		fuzzDecode(t, c, b, true)
		fuzzDecode(t, c, b, 7)
		fuzzDecode(t, c, b, int8(-7))
		fuzzDecode(t, c, b, uint16(7))
		fuzzDecode(t, c, b, uint64(7))
		fuzzDecode(t, c, b, float32(7))
		fuzzDecode(t, c, b, 7.5)
		fuzzDecode(t, c, b, "seven")
		fuzzDecode(t, c, b, []byte("seven"))
		fuzzDecode(t, c, b, []int{7})
		fuzzDecode(t, c, b, []uint32{7})
		fuzzDecode(t, c, b, []float32{7})
		fuzzDecode(t, c, b, []float64{7})
		fuzzDecode(t, c, b, []bool{true})
		fuzzDecode(t, c, b, []string{"seven"})
		fuzzDecode(t, c, b, [][]byte{[]byte("seven")})
		fuzzDecode(t, c, b, point{X: 7, Tag: "seven"})
		fuzzDecode(t, c, b, tagged{Name: "seven", Count: 7, List: []string{"seven"}})
		fuzzDecode(t, c, b, nested{Tail: 7, Ins: []inner{{A: 7}}})
		fuzzDecode(t, c, b, allKinds{I: 7, Ss: []string{"seven"}})
	})
}

// fuzzDecode decodes b into a T that holds before, and through
// DecodeSpans twice over, which must take b as Decode does.
func fuzzDecode[T any](t *testing.T, c *Codec, b []byte, before T) {
	v := before
	taken := FastFor[T]().Decode(b, &v)
	twice := make([]T, 2)
	n := FastFor[T]().DecodeSpans(append(slices.Clip(b), b...), []uint32{0, uint32(len(b)), uint32(len(b)), uint32(2 * len(b))}, twice)
	if want := map[bool]int{true: 2, false: 0}[taken]; n != want {
		t.Fatalf("%T: %x: DecodeSpans took %d of 2, Decode took it: %v", v, b, n, taken)
	}
	if !taken {
		if !same(before, v) {
			t.Fatalf("%T: %x refused, but *v changed", v, b)
		}
		return
	}
	if !same(twice[0], v) || !same(twice[1], v) {
		t.Fatalf("%T: %x: DecodeSpans gave %s and %s, Decode %s", v, b, short(twice[0]), short(twice[1]), short(v))
	}
	var general T
	if err := c.Decode(b, &general); err != nil {
		t.Fatalf("%T: %x taken by Decode, but Codec.Decode: %v", v, b, err)
	}
	if c.rd.Len() != 0 {
		t.Fatalf("%T: %x taken by Decode, but Codec.Decode left %d bytes", v, b, c.rd.Len())
	}
	if !same(general, v) {
		t.Fatalf("%T: %x: Decode gave %s, Codec.Decode %s", v, b, short(v), short(general))
	}
}

// FuzzFastAppend makes values of several types out of arbitrary bytes and
// checks that Append writes them as Codec.Encode does, and for structs
// that Decode reads them back as Codec.Decode does.
func FuzzFastAppend(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("hello\x00world"))
	f.Add(bytes.Repeat([]byte{0xff}, 40))
	f.Add([]byte{0x7f, 0x80, 0x00, 0x01, 0xff, 0xf0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		c := New()
		fuzzStruct(t, c, fromBytesOf[allKinds](b))
		fuzzStruct(t, c, fromBytesOf[tagged](b))
		fuzzStruct(t, c, fromBytesOf[nested](b))
		fuzzAppend(t, c, string(b))
		fuzzAppend(t, c, b)
		fuzzAppend(t, c, bytes.Split(b, []byte{0}))
		fuzzAppend(t, c, splitStrings(b))
		var i64s []int64
		var u32s []uint32
		var f64s []float64
		var f32s []float32
		for w := b; len(w) >= 8; w = w[8:] {
			i64s = append(i64s, int64(binary.BigEndian.Uint64(w)))
			f64s = append(f64s, math.Float64frombits(binary.BigEndian.Uint64(w)))
		}
		for w := b; len(w) >= 4; w = w[4:] {
			u32s = append(u32s, binary.BigEndian.Uint32(w))
			f32s = append(f32s, math.Float32frombits(binary.BigEndian.Uint32(w)))
		}
		fuzzAppend(t, c, i64s)
		fuzzAppend(t, c, u32s)
		fuzzAppend(t, c, f64s)
		fuzzAppend(t, c, f32s)
		for i := range i64s {
			fuzzAppend(t, c, i64s[i])
			fuzzAppend(t, c, int(i64s[i]))
			fuzzAppend(t, c, int16(i64s[i]))
			fuzzAppend(t, c, uint(i64s[i]))
			fuzzAppend(t, c, f64s[i])
		}
		for i := range u32s {
			fuzzAppend(t, c, u32s[i])
			fuzzAppend(t, c, int32(u32s[i]))
			fuzzAppend(t, c, f32s[i])
		}
	})
}

func splitStrings(b []byte) []string {
	var out []string
	for _, p := range bytes.Split(b, []byte{0}) {
		out = append(out, string(p))
	}
	return out
}

// fromBytesOf makes a T of the bytes b (see fromBytes).
func fromBytesOf[T any](b []byte) T {
	var v T
	fromBytes(&b, reflect.ValueOf(&v).Elem())
	return v
}

// fuzzAppend checks that Append writes v as Codec.Encode does, and
// returns the bytes.
func fuzzAppend[T any](t *testing.T, c *Codec, v T) []byte {
	c.Reset()
	want, err := c.Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	if got := FastFor[T]().Append(nil, &v); !bytes.Equal(want, got) {
		t.Fatalf("%s: Append wrote %x, Codec.Encode %x", short(v), got, want)
	}
	return want
}

// fuzzStruct checks that Append writes v as Codec.Encode does, and that
// Decode reads it back as Codec.Decode does: what a struct decodes to
// depends on more rules than the other types' values.
func fuzzStruct[T any](t *testing.T, c *Codec, v T) {
	want := fuzzAppend(t, c, v)
	var fast, general T
	if !FastFor[T]().Decode(want, &fast) {
		t.Fatalf("%s: Decode refused its own encoding %x", short(v), want)
	}
	if err := c.Decode(want, &general); err != nil {
		t.Fatal(err)
	}
	if !same(general, fast) {
		t.Fatalf("%x: Decode gave %s, Codec.Decode %s", want, short(fast), short(general))
	}
}
