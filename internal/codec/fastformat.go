package codec

import (
	"encoding/binary"
	"math"
)

// The msgpack forms of the fast path, written and read as
// github.com/vmihailenco/msgpack/v5 (v5.4.1) does with the Codec's settings:
// compact ints, floats at their own width, no string interning. Where the
// library departs from the msgpack spec or from the obvious, a comment
// says so; fast_test.go checks every rule against the library.

// The msgpack type codes.
const (
	mNil     = 0xc0
	mFalse   = 0xc2
	mTrue    = 0xc3
	mBin8    = 0xc4
	mBin16   = 0xc5
	mBin32   = 0xc6
	mFloat   = 0xca
	mDouble  = 0xcb
	mUint8   = 0xcc
	mUint16  = 0xcd
	mUint32  = 0xce
	mUint64  = 0xcf
	mInt8    = 0xd0
	mInt16   = 0xd1
	mInt32   = 0xd2
	mInt64   = 0xd3
	mStr8    = 0xd9
	mStr16   = 0xda
	mStr32   = 0xdb
	mArray16 = 0xdc
	mArray32 = 0xdd

	mFixStr   = 0xa0 // | length < 32
	mFixArray = 0x90 // | length < 16
)

var be = binary.BigEndian

type signed interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64
}

type unsigned interface {
	~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64
}

// Writing.

func appendBool(dst []byte, x bool) []byte {
	if x {
		return append(dst, mTrue)
	}
	return append(dst, mFalse)
}

// appendUint writes n in the fewest bytes, whatever its Go width: with
// compact ints msgpack keeps the magnitude, not the type.
func appendUint(dst []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(dst, byte(n))
	case n <= math.MaxUint8:
		return append(dst, mUint8, byte(n))
	case n <= math.MaxUint16:
		return be.AppendUint16(append(dst, mUint16), uint16(n))
	case n <= math.MaxUint32:
		return be.AppendUint32(append(dst, mUint32), uint32(n))
	}
	return be.AppendUint64(append(dst, mUint64), n)
}

// appendInt writes n in the fewest bytes; a non-negative n is written as a
// uint, so the sign of a signed type is lost (8 and uint8(8) are one byte).
func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n)) // negative fixint
	case n >= math.MinInt8:
		return append(dst, mInt8, byte(n))
	case n >= math.MinInt16:
		return be.AppendUint16(append(dst, mInt16), uint16(n))
	case n >= math.MinInt32:
		return be.AppendUint32(append(dst, mInt32), uint32(n))
	}
	return be.AppendUint64(append(dst, mInt64), uint64(n))
}

func appendFloat32(dst []byte, x float32) []byte {
	return be.AppendUint32(append(dst, mFloat), math.Float32bits(x))
}

func appendFloat64(dst []byte, x float64) []byte {
	return be.AppendUint64(append(dst, mDouble), math.Float64bits(x))
}

// appendStrLen writes a string header. A length over 4 GiB is cut to 32
// bits, a corrupt encoding, as msgpack does.
func appendStrLen(dst []byte, n int) []byte {
	switch {
	case n < 32:
		return append(dst, mFixStr|byte(n))
	case n <= math.MaxUint8:
		return append(dst, mStr8, byte(n))
	case n <= math.MaxUint16:
		return be.AppendUint16(append(dst, mStr16), uint16(n))
	}
	return be.AppendUint32(append(dst, mStr32), uint32(n))
}

func appendString(dst []byte, s string) []byte {
	return append(appendStrLen(dst, len(s)), s...)
}

// appendBytes writes b as bin, an empty one as bin8 of length 0 (there is
// no fixbin), and a nil one as nil.
func appendBytes(dst []byte, b []byte) []byte {
	if b == nil {
		return append(dst, mNil)
	}
	return append(appendBinHeader(dst, len(b)), b...)
}

// appendBinHeader writes the header of a byte string of n bytes.
func appendBinHeader(dst []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, mBin8, byte(n))
	case n <= math.MaxUint16:
		return be.AppendUint16(append(dst, mBin16), uint16(n))
	}
	return be.AppendUint32(append(dst, mBin32), uint32(n))
}

// appendArrayLen writes the header of a slice; a nil slice is nil instead.
func appendArrayLen(dst []byte, n int) []byte {
	return appendLen(dst, n, mFixArray, mArray16, mArray32)
}

// appendLen writes the header of an array or a map of n items, whose codes
// are fix (its first), c16 and c32, in the shortest form, as msgpack does.
func appendLen(dst []byte, n int, fix, c16, c32 byte) []byte {
	switch {
	case n < 16:
		return append(dst, fix|byte(n))
	case n <= math.MaxUint16:
		return be.AppendUint16(append(dst, c16), uint16(n))
	}
	return be.AppendUint32(append(dst, c32), uint32(n))
}

func appendBools(dst []byte, s []bool) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendBool(dst, x)
	}
	return dst
}

func appendInts[E signed](dst []byte, s []E) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendInt(dst, int64(x))
	}
	return dst
}

func appendUints[E unsigned](dst []byte, s []E) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendUint(dst, uint64(x))
	}
	return dst
}

// appendFloat32s writes each element through float64 and back, as msgpack
// does through reflect.Value.Float: that quiets a signalling NaN (sets the
// top bit of its mantissa), which a float32 on its own keeps as it is.
func appendFloat32s(dst []byte, s []float32) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendFloat32(dst, float32(float64(x)))
	}
	return dst
}

func appendFloat64s(dst []byte, s []float64) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendFloat64(dst, x)
	}
	return dst
}

func appendStrings(dst []byte, s []string) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendString(dst, x)
	}
	return dst
}

func appendByteSlices(dst []byte, s [][]byte) []byte {
	if s == nil {
		return append(dst, mNil)
	}
	dst = appendArrayLen(dst, len(s))
	for _, x := range s {
		dst = appendBytes(dst, x)
	}
	return dst
}

// Reading. Each reader takes one value from the front of b and returns it
// and the bytes after it, or ok=false for any form the general decoder
// would refuse for the type, or that runs past the end of b.

// readBool reads true, false, or nil as false.
func readBool(b []byte) (x bool, rest []byte, ok bool) {
	if len(b) == 0 {
		return false, b, false
	}
	switch b[0] {
	case mFalse, mNil:
		return false, b[1:], true
	case mTrue:
		return true, b[1:], true
	}
	return false, b, false
}

// readInt reads any msgpack int, signed or not, or nil as 0, into an
// int64: a uint64 over MaxInt64 wraps to a negative. Callers convert it to
// their type, which truncates: 300 decodes into an int8 as 44, -1 into a
// uint8 as 255, with no error, as in msgpack. A float is no int.
func readInt(b []byte) (x int64, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	c := b[0]
	if c <= 0x7f || c >= 0xe0 { // positive and negative fixint
		return int64(int8(c)), b[1:], true
	}
	var size int
	switch c {
	case mNil:
		return 0, b[1:], true
	case mUint8, mInt8:
		size = 1
	case mUint16, mInt16:
		size = 2
	case mUint32, mInt32:
		size = 4
	case mUint64, mInt64:
		size = 8
	default:
		return 0, b, false
	}
	if len(b) < 1+size {
		return 0, b, false
	}
	v, rest := b[1:1+size], b[1+size:]
	switch c {
	case mUint8:
		x = int64(v[0])
	case mInt8:
		x = int64(int8(v[0]))
	case mUint16:
		x = int64(be.Uint16(v))
	case mInt16:
		x = int64(int16(be.Uint16(v)))
	case mUint32:
		x = int64(be.Uint32(v))
	case mInt32:
		x = int64(int32(be.Uint32(v)))
	default: // mUint64, mInt64
		x = int64(be.Uint64(v))
	}
	return x, rest, true
}

// readFloat32 reads a float32, or an int (or nil) converted to float32.
// A float64 is refused, even one a float32 holds exactly.
func readFloat32(b []byte) (x float32, rest []byte, ok bool) {
	if len(b) > 0 && b[0] == mFloat {
		if len(b) < 5 {
			return 0, b, false
		}
		return math.Float32frombits(be.Uint32(b[1:])), b[5:], true
	}
	n, rest, ok := readInt(b)
	return float32(n), rest, ok
}

// readFloat32Elem reads an element of a []float32, which msgpack stores
// through float64 (reflect.Value.SetFloat), quieting a signalling NaN.
func readFloat32Elem(b []byte) (x float32, rest []byte, ok bool) {
	x, rest, ok = readFloat32(b)
	return float32(float64(x)), rest, ok
}

// readFloat64 reads a float64, a float32 widened, or an int (or nil)
// converted to float64.
func readFloat64(b []byte) (x float64, rest []byte, ok bool) {
	if len(b) > 0 {
		switch b[0] {
		case mFloat:
			if len(b) < 5 {
				return 0, b, false
			}
			return float64(math.Float32frombits(be.Uint32(b[1:]))), b[5:], true
		case mDouble:
			if len(b) < 9 {
				return 0, b, false
			}
			return math.Float64frombits(be.Uint64(b[1:])), b[9:], true
		}
	}
	n, rest, ok := readInt(b)
	return float64(n), rest, ok
}

// readBytesLen reads the header of a str or a bin, which msgpack takes
// alike for a string and for a []byte, and returns the length, -1 for nil.
// A length past the end of b is refused.
func readBytesLen(b []byte) (n int, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	c := b[0]
	var u uint64
	switch {
	case c == mNil:
		return -1, b[1:], true
	case c >= mFixStr && c <= mFixStr|0x1f:
		u, rest = uint64(c&0x1f), b[1:]
	case (c == mStr8 || c == mBin8) && len(b) >= 2:
		u, rest = uint64(b[1]), b[2:]
	case (c == mStr16 || c == mBin16) && len(b) >= 3:
		u, rest = uint64(be.Uint16(b[1:])), b[3:]
	case (c == mStr32 || c == mBin32) && len(b) >= 5:
		u, rest = uint64(be.Uint32(b[1:])), b[5:]
	default:
		return 0, b, false
	}
	if u > uint64(len(rest)) {
		return 0, b, false
	}
	return int(u), rest, true
}

// readString reads a str or a bin, nil as "", copied out of b.
func readString(b []byte) (s string, rest []byte, ok bool) {
	n, rest, ok := readBytesLen(b)
	if !ok || n < 0 {
		return "", rest, ok
	}
	return string(rest[:n]), rest[n:], true
}

// readBytes reads a bin or a str, copied out of b; nil is a nil slice, but
// an empty bin or str an empty slice that is not nil.
func readBytes(b []byte) (x []byte, rest []byte, ok bool) {
	n, rest, ok := readBytesLen(b)
	if !ok || n < 0 {
		return nil, rest, ok
	}
	src := rest[:n]
	x = make([]byte, len(src)) // the form the compiler copies into without zeroing first
	copy(x, src)
	return x, rest[n:], true
}

// readArrayLen reads the header of an array and returns its length, -1
// for nil. Every element takes a byte at least, so a length past the end
// of b is refused before anything is allocated for it. (msgpack
// allocates the whole length it reads: its cap on it is dead code.)
func readArrayLen(b []byte) (n int, rest []byte, ok bool) {
	return readLen(b, mFixArray, mArray16, mArray32, 1)
}

// readLen reads the header of an array or a map, whose codes are fix (its
// first), c16 and c32, and returns its length, -1 for nil. A length whose
// items, each of least bytes, would run past the end of b is refused.
func readLen(b []byte, fix, c16, c32 byte, least uint64) (n int, rest []byte, ok bool) {
	if len(b) == 0 {
		return 0, b, false
	}
	c := b[0]
	var u uint64
	switch {
	case c == mNil:
		return -1, b[1:], true
	case c >= fix && c <= fix|0x0f:
		u, rest = uint64(c&0x0f), b[1:]
	case c == c16 && len(b) >= 3:
		u, rest = uint64(be.Uint16(b[1:])), b[3:]
	case c == c32 && len(b) >= 5:
		u, rest = uint64(be.Uint32(b[1:])), b[5:]
	default:
		return 0, b, false
	}
	if least*u > uint64(len(rest)) {
		return 0, b, false
	}
	return int(u), rest, true
}

// readSlice reads an array of elements, each with read; nil is a nil
// slice, an empty array an empty slice that is not nil.
func readSlice[E any](b []byte, read func([]byte) (E, []byte, bool)) (s []E, rest []byte, ok bool) {
	n, rest, ok := readArrayLen(b)
	if !ok || n < 0 {
		return nil, rest, ok
	}
	s = make([]E, n)
	for i := range s {
		if s[i], rest, ok = read(rest); !ok {
			return nil, b, false
		}
	}
	return s, rest, true
}

// readInts is readSlice of readInt, without a call through a func value
// per element.
func readInts[E signed | unsigned](b []byte) (s []E, rest []byte, ok bool) {
	n, rest, ok := readArrayLen(b)
	if !ok || n < 0 {
		return nil, rest, ok
	}
	s = make([]E, n)
	for i := range s {
		var x int64
		if x, rest, ok = readInt(rest); !ok {
			return nil, b, false
		}
		s[i] = E(x)
	}
	return s, rest, true
}
