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
	require.NotNil(t, FastFor[point](), "a plain struct")
	require.Nil(t, FastFor[shape](), "a struct with a map")
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
// each value's slice is capped, survives the arena's growth and later
// encodes of either kind, and holds what Codec.Encode gives.
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
		if i%100 == 0 {
			_, err := c.Encode(i) // the general path in between
			require.NoError(t, err)
		}
	}
	require.Greater(t, cap(c.small), 128<<10, "the arena must have grown several times")
	require.Equal(t, []byte("\xa5first"), first)
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
	// lenient is for structs: Decode may refuse forms msgpack takes (keys
	// in another order, unknown keys, arrays…), as long as it takes its
	// own, which checkOwn checks.
	lenient bool
}

func newTyped[T any](vals []T) fastType {
	return typed[T]{vals, FastFor[T](), reflect.TypeFor[T]().Kind() == reflect.Struct}
}

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
	case !took && whole && !tt.lenient:
		t.Fatalf("%x: Decode refused what Codec.Decode takes", b)
	case !took && !same(before, v):
		t.Fatalf("%x: Decode refused it, but changed *v", b)
	case took && !same(general, v):
		t.Fatalf("%x: Decode gave %s, Codec.Decode %s", b, short(v), short(general))
	}
	return took
}

// same is reflect.DeepEqual, except that floats are equal when their bits
// are, in structs and slices too: NaN equals itself, and a signalling NaN
// differs from a quiet one. Unexported fields count.
func same(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	if !va.IsValid() || !vb.IsValid() || va.Type() != vb.Type() {
		return va.IsValid() == vb.IsValid() && !va.IsValid()
	}
	// Addressable copies, to read floats' bits in unexported fields.
	ca, cb := reflect.New(va.Type()).Elem(), reflect.New(va.Type()).Elem()
	ca.Set(va)
	cb.Set(vb)
	return sameValue(ca, cb)
}

func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Float32:
		return math.Float32bits(*(*float32)(a.Addr().UnsafePointer())) == math.Float32bits(*(*float32)(b.Addr().UnsafePointer()))
	case reflect.Float64:
		return math.Float64bits(a.Float()) == math.Float64bits(b.Float())
	case reflect.Bool:
		return a.Bool() == b.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() == b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() == b.Uint()
	case reflect.String:
		return a.String() == b.String()
	case reflect.Slice:
		if a.IsNil() != b.IsNil() || a.Len() != b.Len() {
			return false
		}
		if a.Type().Elem().Kind() == reflect.Uint8 {
			return bytes.Equal(a.Bytes(), b.Bytes())
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Struct:
		for i := range a.NumField() {
			if !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	}
	// Not in any type with a fast path; compared as reflect does.
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

// short prints a value for a failure message, cut to a readable length.
func short(v any) string {
	s := fmt.Sprintf("%T %#v", v, v)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// TestEncodeDecodeWith checks the helpers give what the general path
// gives, with or without a fast path, errors included, and that with one
// they allocate nothing for an int.
func TestEncodeDecodeWith(t *testing.T) {
	c := New()
	f := FastFor[int]()
	for _, fast := range []*Fast[int]{f, nil} {
		b, err := EncodeWith(c, fast, 300)
		require.NoError(t, err)
		require.Equal(t, []byte{mUint16, 0x01, 0x2c}, b)
		n, err := DecodeWith(c, fast, b)
		require.NoError(t, err)
		require.Equal(t, 300, n)
		_, err = DecodeWith(c, fast, []byte{0xa1, 'x'})
		require.EqualError(t, err, c.Decode([]byte{0xa1, 'x'}, new(int)).Error())
	}
	_, err := EncodeWith(c, FastFor[chan int](), make(chan int))
	require.Error(t, err)

	arg := []byte{mUint16, 0x01, 0x2c}
	allocs := testing.AllocsPerRun(100, func() {
		c.Reset()
		n, err := DecodeWith(c, f, arg)
		if err != nil || n != 300 {
			t.Fatal(n, err)
		}
		if _, err := EncodeWith(c, f, n+1); err != nil {
			t.Fatal(err)
		}
	})
	require.Zero(t, allocs)
}
