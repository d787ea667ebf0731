package codec

import (
	"math"
	"math/rand/v2"
)

// The values the fast path is tested on: for each type, the edges of
// msgpack's forms and random values, and encodings msgpack reads but the
// Codec never writes.

func fastTypes(r *rand.Rand) []fastType {
	types := []fastType{
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
	return append(types, structTypes(r)...)
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
