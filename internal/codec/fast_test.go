package codec

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fast path is only right if it agrees with msgpack itself, so every
// test here checks it against the general path, Codec.Encode and
// Codec.Decode, on the same values and bytes.

func TestFastForTypes(t *testing.T) {
	with := []bool{
		FastFor[bool]() != nil, FastFor[int]() != nil, FastFor[int8]() != nil,
		FastFor[int16]() != nil, FastFor[int32]() != nil, FastFor[int64]() != nil,
		FastFor[uint]() != nil, FastFor[uint8]() != nil, FastFor[uint16]() != nil,
		FastFor[uint32]() != nil, FastFor[uint64]() != nil, FastFor[float32]() != nil,
		FastFor[float64]() != nil, FastFor[string]() != nil, FastFor[[]byte]() != nil,
		FastFor[[]bool]() != nil, FastFor[[]int]() != nil, FastFor[[]int8]() != nil,
		FastFor[[]int16]() != nil, FastFor[[]int32]() != nil, FastFor[[]int64]() != nil,
		FastFor[[]uint]() != nil, FastFor[[]uint16]() != nil, FastFor[[]uint32]() != nil,
		FastFor[[]uint64]() != nil, FastFor[[]float32]() != nil, FastFor[[]float64]() != nil,
		FastFor[[]string]() != nil, FastFor[[][]byte]() != nil,
	}
	for i, ok := range with {
		require.True(t, ok, "type %d has a fast path", i)
	}

	// Named types may have msgpack methods or an extension of their own;
	// other types are for the general path.
	type celsius float64
	type ints []int
	type raw []byte
	require.Nil(t, FastFor[celsius]())
	require.Nil(t, FastFor[[]celsius]())
	require.Nil(t, FastFor[ints]())
	require.Nil(t, FastFor[raw]())
	require.Nil(t, FastFor[[]raw]())
	require.Nil(t, FastFor[time.Duration]())
	require.Nil(t, FastFor[point]())
	require.Nil(t, FastFor[any]())
	require.Nil(t, FastFor[error]())
	require.Nil(t, FastFor[*int]())
	require.Nil(t, FastFor[[4]byte]())
	require.Nil(t, FastFor[[][]int]())
	require.Nil(t, FastFor[[]any]())
	require.Nil(t, FastFor[map[string]int]())
	require.Nil(t, FastFor[uintptr]())
	require.Nil(t, FastFor[complex128]())
}

// TestFastOwnValues checks, for every type with a fast path, edge values
// and random ones: Append writes what Codec.Encode writes, after whatever
// dst holds, and Decode takes those bytes back to what Codec.Decode gives.
func TestFastOwnValues(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for _, ft := range fastTypes(rand.New(rand.NewPCG(seed, 1))) {
		t.Run(ft.String(), ft.checkOwn)
	}
}

// TestFastDecodeOthers decodes into every type with a fast path what
// msgpack made of every other such type, and forms msgpack accepts but
// never writes, each whole, cut short, and followed by a byte. Decode must
// take exactly what Codec.Decode takes without an error and without bytes
// left over, and decode it alike.
func TestFastDecodeOthers(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 2))
	types := fastTypes(r)
	corpus := otherForms()
	for _, ft := range types {
		corpus = append(corpus, ft.encodings()...)
	}
	var more [][]byte
	for _, b := range corpus {
		more = append(more, b[:r.IntN(len(b)+1)], append(bytes.Clone(b), 0x00))
	}
	corpus = append(corpus, more...)
	for _, ft := range types {
		t.Run(ft.String(), func(t *testing.T) {
			c := New()
			var taken int
			for _, b := range corpus {
				if ft.decodeLikeGeneral(t, c, b) {
					taken++
				}
			}
			require.NotZero(t, taken)
		})
	}
}

// TestFastRules pins the msgpack rules the fast path copies that are
// least expected; the other tests check the same against msgpack, but
// only by agreement.
func TestFastRules(t *testing.T) {
	sNaN := math.Float32frombits(0x7f800001)
	require.Equal(t, []byte{mFloat, 0x7f, 0x80, 0x00, 0x01}, FastFor[float32]().Append(nil, &sNaN), "a float32 keeps its bits")
	s := []float32{sNaN}
	require.Equal(t, []byte{0x91, mFloat, 0x7f, 0xc0, 0x00, 0x01}, FastFor[[]float32]().Append(nil, &s), "a []float32 goes through float64")

	empty := []byte{}
	require.Equal(t, []byte{mBin8, 0}, FastFor[[]byte]().Append(nil, &empty), "no fixbin")
	u := uint64(200)
	require.Equal(t, []byte{mUint8, 200}, FastFor[uint64]().Append(nil, &u), "compact")
	i8 := int8(-100)
	require.Equal(t, []byte{mInt8, 0x9c}, FastFor[int8]().Append(nil, &i8))

	var n8 int8
	require.True(t, FastFor[int8]().Decode([]byte{mUint16, 0x01, 0x2c}, &n8))
	require.Equal(t, int8(44), n8, "300 truncated")
	var f64 float64
	require.True(t, FastFor[float64]().Decode([]byte{mUint64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, &f64))
	require.Equal(t, -1.0, f64, "MaxUint64 is read as an int64")
	var f32 float32
	require.False(t, FastFor[float32]().Decode([]byte{mDouble, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0}, &f32), "no float64 into a float32")
	var str string
	require.True(t, FastFor[string]().Decode([]byte{mBin8, 1, 'x'}, &str))
	require.Equal(t, "x", str)
	var ss []string
	require.True(t, FastFor[[]string]().Decode([]byte{0x90}, &ss))
	require.NotNil(t, ss)
	var fs []float32
	require.True(t, FastFor[[]float32]().Decode([]byte{0x91, mFloat, 0x7f, 0x80, 0x00, 0x01}, &fs))
	require.Equal(t, uint32(0x7fc00001), math.Float32bits(fs[0]), "a []float32 goes through float64")
	var n int
	require.False(t, FastFor[int]().Decode([]byte{0x01, 0x02}, &n), "trailing bytes")
}

// TestFastRefusesLengthsPastTheEnd gives Decode headers that claim more
// than follows them: it must refuse them before allocating for them.
func TestFastRefusesLengthsPastTheEnd(t *testing.T) {
	fints, fbs, fs, fraw := FastFor[[]int](), FastFor[[][]byte](), FastFor[string](), FastFor[[]byte]()
	for _, b := range [][]byte{
		{mArray32, 0xff, 0xff, 0xff, 0xff}, {mArray16, 0xff, 0xff, 0x01}, {0x93, 0x01, 0x02},
		{mBin32, 0xff, 0xff, 0xff, 0xff}, {mStr32, 0x7f, 0xff, 0xff, 0xff, 'x'}, {0xa2, 'x'},
	} {
		var ints []int
		var bs [][]byte
		var s string
		var raw []byte
		took := false
		allocs := testing.AllocsPerRun(10, func() {
			took = took || fints.Decode(b, &ints) || fbs.Decode(b, &bs) || fs.Decode(b, &s) || fraw.Decode(b, &raw)
		})
		require.False(t, took, "%x", b)
		require.Zero(t, allocs, "%x", b)
	}
}

// TestFastDecodeCopies checks that decoded strings and slices hold no
// byte of the input, which the caller reuses.
func TestFastDecodeCopies(t *testing.T) {
	b := []byte{0x92, 0xa2, 'h', 'i', mBin8, 2, 'y', 'o'}
	var ss []string
	require.True(t, FastFor[[]string]().Decode(b, &ss))
	var bs [][]byte
	require.True(t, FastFor[[][]byte]().Decode(b, &bs))
	for i := range b {
		b[i] = 'X'
	}
	require.Equal(t, []string{"hi", "yo"}, ss)
	require.Equal(t, [][]byte{[]byte("hi"), []byte("yo")}, bs)
}

// TestFastEncodeIntoArena checks Fast.Encode against Codec.Encode's rules:
// the value follows what the arena holds, and its slice is capped and
// survives the arena's growth.
func TestFastEncodeIntoArena(t *testing.T) {
	c := New()
	first, err := c.Encode("first")
	require.NoError(t, err)
	fs := FastFor[string]()
	var got, want [][]byte
	for i := range 2000 {
		s := fmt.Sprintf("value %d %s", i, strings.Repeat("x", i%300))
		b := fs.Encode(c, &s)
		require.Equal(t, len(b), cap(b))
		got = append(got, b)
		w, err := New().Encode(s)
		require.NoError(t, err)
		want = append(want, w)
	}
	require.Greater(t, c.Len(), 128<<10, "the arena must have grown several times")
	require.Equal(t, bytes.Join(append([][]byte{first}, want...), nil), c.Bytes())
	for i := range got {
		require.Equal(t, want[i], got[i], "value %d", i)
	}
}

// fastType is a type with a fast path, and values of it to test.
type fastType interface {
	String() string
	checkOwn(t *testing.T)
	encodings() [][]byte // of the values, by the general path, the short ones
	// decodeLikeGeneral decodes b with Fast.Decode, checks that what it
	// takes Codec.Decode decodes alike, and reports whether it took it.
	decodeLikeGeneral(t *testing.T, c *Codec, b []byte) bool
}

type typed[T any] struct {
	vals []T
	f    *Fast[T]
}

func newTyped[T any](vals []T) fastType { return typed[T]{vals, FastFor[T]()} }

func (tt typed[T]) String() string { return reflect.TypeFor[T]().String() }

func (tt typed[T]) checkOwn(t *testing.T) {
	c := New()
	prefix := []byte("prefix")
	for _, v := range tt.vals {
		c.Reset()
		want, err := c.Encode(v)
		require.NoError(t, err)
		// The messages are made only on failure: printing a value of
		// 65536 elements takes far longer than checking it.
		if got := tt.f.Append(nil, &v); !bytes.Equal(want, got) {
			t.Fatalf("%s: Append wrote %x, Codec.Encode %x", short(v), got, want)
		}
		require.Equal(t, append(bytes.Clone(prefix), want...), tt.f.Append(bytes.Clone(prefix), &v))

		var fast, general T
		if !tt.f.Decode(want, &fast) {
			t.Fatalf("%s: Decode refused its own encoding %x", short(v), want)
		}
		require.NoError(t, c.Decode(want, &general))
		if !same(general, fast) {
			t.Fatalf("%s: Decode gave %s, Codec.Decode %s", short(v), short(fast), short(general))
		}
	}
}

func (tt typed[T]) encodings() [][]byte {
	var out [][]byte
	for _, v := range tt.vals {
		if b := tt.f.Append(nil, &v); len(b) <= 2048 {
			out = append(out, b)
		}
	}
	return out
}

func (tt typed[T]) decodeLikeGeneral(t *testing.T, c *Codec, b []byte) bool {
	// A value that is there before must still be there after a refusal.
	before := tt.vals[len(tt.vals)-1]
	v := before
	took := tt.f.Decode(b, &v)
	var general T
	err := c.Decode(b, &general)
	whole := err == nil && c.rd.Len() == 0 // the general path read b, all of it
	switch {
	case took && !whole:
		t.Fatalf("%x: Decode took it, Codec.Decode gave %v and left %d bytes", b, err, c.rd.Len())
	case !took && whole:
		t.Fatalf("%x: Decode refused what Codec.Decode takes", b)
	case !took && !same(before, v):
		t.Fatalf("%x: Decode refused it, but changed *v", b)
	case took && !same(general, v):
		t.Fatalf("%x: Decode gave %s, Codec.Decode %s", b, short(v), short(general))
	}
	return took
}

// same is reflect.DeepEqual, except that floats are equal when their bits
// are: NaN equals itself, and a signalling NaN differs from a quiet one.
func same(a, b any) bool {
	switch a := a.(type) {
	case float32:
		return math.Float32bits(a) == math.Float32bits(b.(float32))
	case float64:
		return math.Float64bits(a) == math.Float64bits(b.(float64))
	case []float32:
		b := b.([]float32)
		return (a == nil) == (b == nil) && slicesEqualFunc(a, b, func(x, y float32) bool { return math.Float32bits(x) == math.Float32bits(y) })
	case []float64:
		b := b.([]float64)
		return (a == nil) == (b == nil) && slicesEqualFunc(a, b, func(x, y float64) bool { return math.Float64bits(x) == math.Float64bits(y) })
	}
	return reflect.DeepEqual(a, b)
}

func slicesEqualFunc[E any](a, b []E, eq func(E, E) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !eq(a[i], b[i]) {
			return false
		}
	}
	return true
}

// short prints a value for a failure message, cut to a readable length.
func short(v any) string {
	s := fmt.Sprintf("%T %#v", v, v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func fastTypes(r *rand.Rand) []fastType {
	return []fastType{
		newTyped(bools(r)),
		newTyped(ints[int](r)),
		newTyped(ints[int8](r)),
		newTyped(ints[int16](r)),
		newTyped(ints[int32](r)),
		newTyped(ints[int64](r)),
		newTyped(ints[uint](r)),
		newTyped(ints[uint8](r)),
		newTyped(ints[uint16](r)),
		newTyped(ints[uint32](r)),
		newTyped(ints[uint64](r)),
		newTyped(floats32(r)),
		newTyped(floats64(r)),
		newTyped(strs(r, true)),
		newTyped(byteSlices(r, true)),
		newTyped(slicesOf(r, bools(r))),
		newTyped(slicesOf(r, ints[int](r))),
		newTyped(slicesOf(r, ints[int8](r))),
		newTyped(slicesOf(r, ints[int16](r))),
		newTyped(slicesOf(r, ints[int32](r))),
		newTyped(slicesOf(r, ints[int64](r))),
		newTyped(slicesOf(r, ints[uint](r))),
		newTyped(slicesOf(r, ints[uint16](r))),
		newTyped(slicesOf(r, ints[uint32](r))),
		newTyped(slicesOf(r, ints[uint64](r))),
		newTyped(slicesOf(r, floats32(r))),
		newTyped(slicesOf(r, floats64(r))),
		newTyped(slicesOf(r, strs(r, false))),
		newTyped(slicesOf(r, byteSlices(r, false))),
	}
}

const randomValues = 100

func bools(r *rand.Rand) []bool {
	out := []bool{false, true}
	for range 20 {
		out = append(out, r.IntN(2) == 0)
	}
	return out
}

// ints returns each width's edges (the boundaries of msgpack's forms,
// truncated to E), and random values of every magnitude.
func ints[E signed | unsigned](r *rand.Rand) []E {
	var out []E
	for _, x := range []int64{
		0, 1, -1, 31, 32, -32, -33, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769,
		65535, 65536, math.MaxInt32, math.MaxInt32 + 1, math.MinInt32, math.MinInt32 - 1,
		math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64, math.MinInt64,
	} {
		out = append(out, E(x))
	}
	for _, x := range []uint64{math.MaxUint64, 1 << 63, math.MaxUint64 - 1} {
		out = append(out, E(x))
	}
	for range randomValues {
		x := r.Uint64() >> r.IntN(64)
		if r.IntN(2) == 0 {
			x = -x
		}
		out = append(out, E(x))
	}
	return out
}

func floats64(r *rand.Rand) []float64 {
	out := []float64{
		0, math.Copysign(0, -1), 1, -1, 0.5, 1e300, -1e-300, math.MaxFloat64, math.SmallestNonzeroFloat64,
		math.Inf(1), math.Inf(-1), math.NaN(), math.Float64frombits(0x7ff0000000000001), // signalling NaN
		math.Float64frombits(0xfff8000000000123), float64(math.MaxInt64), float64(math.MinInt64),
	}
	for range randomValues {
		switch r.IntN(3) {
		case 0:
			out = append(out, math.Float64frombits(r.Uint64()))
		case 1:
			out = append(out, float64(int64(r.Uint64()>>r.IntN(64))))
		default:
			out = append(out, r.NormFloat64()*1e6)
		}
	}
	return out
}

func floats32(r *rand.Rand) []float32 {
	out := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.5, math.MaxFloat32, math.SmallestNonzeroFloat32,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		math.Float32frombits(0x7f800001), math.Float32frombits(0xffbfffff), // signalling NaNs
		math.Float32frombits(0x7fc00123),
	}
	for range randomValues {
		switch r.IntN(3) {
		case 0:
			out = append(out, math.Float32frombits(r.Uint32()))
		case 1:
			out = append(out, float32(int32(r.Uint32()>>r.IntN(32))))
		default:
			out = append(out, float32(r.NormFloat64()*1e3))
		}
	}
	return out
}

// lengths are the boundaries of msgpack's str, bin and array forms.
var lengths = []int{0, 1, 15, 16, 17, 31, 32, 33, 255, 256, 65535, 65536}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		if r.IntN(4) == 0 {
			b[i] = byte(r.Uint32()) // invalid UTF-8 at times
		} else {
			b[i] = byte('a' + r.IntN(26))
		}
	}
	return b
}

// strs returns strings of the edge lengths (up to 300 bytes unless big)
// and random ones.
func strs(r *rand.Rand, big bool) []string {
	var out []string
	for _, n := range lengths {
		if big || n <= 300 {
			out = append(out, string(randomBytes(r, n)))
		}
	}
	for range randomValues {
		out = append(out, string(randomBytes(r, r.IntN(40))))
	}
	return out
}

func byteSlices(r *rand.Rand, big bool) [][]byte {
	out := [][]byte{nil}
	for _, s := range strs(r, big) {
		out = append(out, []byte(s))
	}
	return out
}

// slicesOf returns nil, slices of the edge lengths and random ones, of
// elements drawn from elems.
func slicesOf[E any](r *rand.Rand, elems []E) [][]E {
	out := [][]E{nil}
	gen := func(n int) []E {
		s := make([]E, n)
		for i := range s {
			s[i] = elems[r.IntN(len(elems))]
		}
		return s
	}
	for _, n := range lengths {
		out = append(out, gen(n))
	}
	for range randomValues / 4 {
		out = append(out, gen(r.IntN(20)))
	}
	return out
}

// otherForms are encodings msgpack reads but the Codec never writes, and
// ones it refuses. None claims a length past its end, for which msgpack
// allocates what it claims before finding the bytes missing (see
// TestFastRefusesLengthsPastTheEnd).
func otherForms() [][]byte {
	return [][]byte{
		{},
		{mNil},
		{0xc1}, // never used
		// Ints in wider forms than needed.
		{mUint8, 5}, {mUint16, 0, 5}, {mUint32, 0, 0, 0, 5}, {mUint64, 0, 0, 0, 0, 0, 0, 0, 5},
		{mInt8, 5}, {mInt8, 0xfb}, {mInt16, 0xff, 0xfb}, {mInt32, 0xff, 0xff, 0xff, 0xfb},
		{mInt64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb},
		{mInt64, 0x80, 0, 0, 0, 0, 0, 0, 0}, {mUint64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{mInt16, 0x01, 0x2c}, {mUint32, 0xff, 0xff, 0xff, 0xff},
		// Floats of whole numbers, and one a float32 holds exactly.
		{mFloat, 0x40, 0x40, 0, 0}, {mDouble, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, {mDouble, 0x40, 0x08, 0, 0, 0, 0, 0, 0},
		// Strings as bin and in wider forms, bins as str.
		{mBin8, 3, 'a', 'b', 'c'}, {mBin8, 0}, {mBin16, 0, 1, 'x'}, {mBin32, 0, 0, 0, 0},
		{mStr8, 3, 'a', 'b', 'c'}, {mStr16, 0, 1, 'x'}, {mStr32, 0, 0, 0, 2, 'h', 'i'}, {mStr8, 0},
		// Arrays in wider forms, of nils, of mixed forms.
		{0x90}, {0x92, mNil, mNil}, {mArray16, 0, 2, 0x01, 0x02}, {mArray32, 0, 0, 0, 1, 0x01}, {mArray16, 0, 0},
		{0x93, 0x01, mFloat, 0x3f, 0x80, 0, 0, mDouble, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0},
		{0x92, 0xa1, 'x', mBin8, 1, 'y'}, {0x92, mBin8, 0, 0xa0}, {0x92, mTrue, mFalse}, {0x91, 0x91, 0x01},
		{0x92, 0x01, 0xa1, 'x'}, {0x91, mUint64, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
		{0x91, mFloat, 0x7f, 0x80, 0x00, 0x01}, {0x91, mDouble, 0x7f, 0xf0, 0, 0, 0, 0, 0, 1}, // signalling NaNs
		// Maps and extensions.
		{0x80}, {0x81, 0xa1, 'k', 0x01}, {0xd4, 0x01, 0x00}, {0xc7, 0x00, 0x01}, {0xd6, 0xff, 0, 0, 0, 1},
	}
}
