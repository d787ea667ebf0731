package codec

import (
	"reflect"
	"unsafe"
)

// Fast encodes and decodes values of one type T without reflection or
// boxing, byte for byte as [Codec] does. [FastFor] returns nil for a type
// without a fast path; callers then use [Codec.Encode] and [Codec.Decode].
//
// The types with a fast path are bool, the sized and unsized ints and
// uints, float32, float64, string and []byte, and unnamed slices of them
// ([]int, []string, [][]byte…). Named types have none, even when their
// underlying type is one of these: msgpack may encode them differently,
// through methods or msgpack.RegisterExt, which the fast path cannot see.
//
// Plain structs have one too: struct types, named or not, whose fields
// msgpack encodes (the exported ones not tagged `msgpack:"-"`) are all of
// the types above, or plain structs, or unnamed slices of plain structs.
// A field may be renamed by its `msgpack` tag and tagged omitempty (but
// for a struct field). Refused, and left to msgpack, are structs with:
//   - msgpack or encoding methods (CustomEncoder, Marshaler,
//     BinaryMarshaler, TextMarshaler, their decoding counterparts) on the
//     type or its pointer, which is also what msgpack.RegisterExt needs;
//   - a package path whose first element has no dot: the standard
//     library's (time.Time…), and any program's whose module path has none;
//   - an embedded field, a field named _msgpack (as_array), a tag with
//     other options or quotes, two fields of one name;
//   - a field of any other type: a named type (type Celsius float64),
//     pointer, interface, map, array, or a struct holding itself;
//   - an encoder or decoder registered for the type or one in it, by
//     msgpack.Register or RegisterExtEncoder/Decoder, which FastFor finds
//     by encoding and decoding sample values both ways. It cannot find one
//     registered after FastFor was called: register before.
//
// Decoding takes a struct only as a map with the keys in field order as
// msgpack writes them (or nil); any other form is left to msgpack. A
// decoded slice of structs is the one thing allocated through reflect
// (reflect.Value.Grow), the only way to give the garbage collector the
// element type.
//
// A Fast holds nothing but what its type determines, and never changes,
// so one may be shared by any number of goroutines.
type Fast[T any] struct {
	k kind
	s *structPlan // k == kStruct
}

// kind is the type a Fast handles: one of the predeclared types, or an
// unnamed slice of one (kSlice|elem), or a plain struct (kStruct).
type kind uint8

const (
	kBool kind = iota + 1
	kInt
	kInt8
	kInt16
	kInt32
	kInt64
	kUint
	kUint8
	kUint16
	kUint32
	kUint64
	kFloat32
	kFloat64
	kString
	kBytes

	kSlice kind = 0x20 // or'ed with the element's kind
)

// FastFor returns the fast path for values of type T, or nil if T has
// none. It is meant to be called once per type, not per value: for a
// struct type the first call works out a plan by reflection, and checks
// it against msgpack.
func FastFor[T any]() *Fast[T] {
	if k := kindOf(any((*T)(nil))); k != 0 {
		return &Fast[T]{k: k}
	}
	if t := reflect.TypeFor[T](); t.Kind() == reflect.Struct {
		if s := planOf(t); s != nil {
			return &Fast[T]{k: kStruct, s: s}
		}
	}
	return nil
}

// kindOf returns the kind of the type p points to, 0 if it has no fast
// path. A type switch matches only the type itself, never a named type
// with the same underlying type, which is what keeps named types out.
func kindOf(p any) kind {
	switch p.(type) {
	case *bool:
		return kBool
	case *int:
		return kInt
	case *int8:
		return kInt8
	case *int16:
		return kInt16
	case *int32:
		return kInt32
	case *int64:
		return kInt64
	case *uint:
		return kUint
	case *uint8:
		return kUint8
	case *uint16:
		return kUint16
	case *uint32:
		return kUint32
	case *uint64:
		return kUint64
	case *float32:
		return kFloat32
	case *float64:
		return kFloat64
	case *string:
		return kString
	case *[]byte:
		return kBytes
	case *[]bool:
		return kSlice | kBool
	case *[]int:
		return kSlice | kInt
	case *[]int8:
		return kSlice | kInt8
	case *[]int16:
		return kSlice | kInt16
	case *[]int32:
		return kSlice | kInt32
	case *[]int64:
		return kSlice | kInt64
	case *[]uint:
		return kSlice | kUint
	case *[]uint16:
		return kSlice | kUint16
	case *[]uint32:
		return kSlice | kUint32
	case *[]uint64:
		return kSlice | kUint64
	case *[]float32:
		return kSlice | kFloat32
	case *[]float64:
		return kSlice | kFloat64
	case *[]string:
		return kSlice | kString
	case *[][]byte:
		return kSlice | kBytes
	}
	return 0
}

// Append appends the msgpack encoding of *v to dst and returns the
// extended slice: byte for byte what Codec.Encode(*v) produces.
func (f *Fast[T]) Append(dst []byte, v *T) []byte {
	return appendKind(dst, f.k, unsafe.Pointer(v), f.s)
}

// BinHeader appends to the arena the header that Fast.Encode gives a []byte
// of n bytes, and returns it: the header, then the bytes, are that
// encoding, which a caller may write one after the other rather than copy
// a large []byte into the arena. It is valid until Reset.
func (c *Codec) BinHeader(n int) []byte {
	start := len(c.small)
	c.small = appendBinHeader(c.small, n)
	return c.small[start:len(c.small):len(c.small)]
}

// Encode encodes *v into c and returns it, exactly as c.Encode(*v) would,
// with the same validity: until c is Reset, even as c grows.
func (f *Fast[T]) Encode(c *Codec, v *T) []byte {
	start := len(c.small)
	c.small = f.Append(c.small, v)
	return c.small[start:len(c.small):len(c.small)]
}

// Decode decodes b, which must hold exactly one value, into *v, replacing
// it whole: nothing of the old value is reused, and nothing of b is kept,
// since callers reuse b. The result is what Codec.Decode(b, v) gives into a
// zero *v. Decode reports false, leaving *v as it was, for anything the
// fast path does not take: an encoding msgpack refuses for T, bytes after
// the value, or one the fast path does not know (an extension, say; for a
// struct, keys out of field order or unknown, or the array form). The
// caller then decodes with Codec.Decode, which gives the error, if any.
func (f *Fast[T]) Decode(b []byte, v *T) bool {
	old := *v
	*v = *new(T) // a struct plan decodes into a zero struct
	if rest, ok := decodeKind(b, f.k, unsafe.Pointer(v), f.s); ok && len(rest) == 0 {
		return true
	}
	*v = old
	return false
}

// DecodeSpans decodes the values buf[span[2i]:span[2i+1]] into dst[i] in
// order, as Decode would each, and returns how many it decoded before the
// first it does not take: len(dst) if none. dst must hold zero values, as a
// new slice does. One loop for a whole chunk's results spares each value
// the calls and copies of Decode.
func (f *Fast[T]) DecodeSpans(buf []byte, span []uint32, dst []T) int {
	span = span[:2*len(dst)]
	for i := range dst {
		rest, ok := decodeKind(buf[span[2*i]:span[2*i+1]], f.k, unsafe.Pointer(&dst[i]), f.s)
		if !ok || len(rest) != 0 {
			return i
		}
	}
	return len(dst)
}

// EncodeWith encodes v into c's arena, by f if T has a fast path (f is
// not nil), else by c.Encode; either way the bytes, the errors and the
// slice's validity are c.Encode's. v stays on the caller's stack on the
// fast path.
func EncodeWith[T any](c *Codec, f *Fast[T], v T) ([]byte, error) {
	if f != nil {
		return f.Encode(c, &v), nil
	}
	return c.Encode(v)
}

// DecodeWith decodes b into a new T, by f if T has a fast path and it
// takes b, else by c.Decode, whose error it returns along with the T as
// c.Decode left it. The value is c.Decode's either way, and stays on the
// caller's stack on the fast path.
func DecodeWith[T any](c *Codec, f *Fast[T], b []byte) (T, error) {
	if v, ok := decodeFast(f, b); ok {
		return v, nil
	}
	return decodeGeneral[T](c, b)
}

// decodeFast and decodeGeneral are apart so that the fast path's T stays
// on the stack: Codec.Decode, which takes an any, moves the T it is given
// to the heap, even on calls that never reach it.
func decodeFast[T any](f *Fast[T], b []byte) (v T, ok bool) {
	ok = f != nil && f.Decode(b, &v)
	return v, ok
}

func decodeGeneral[T any](c *Codec, b []byte) (T, error) {
	var v T
	err := c.Decode(b, &v)
	return v, err
}

// appendKind appends the encoding of the value of kind k at p; sub is the
// plan of a struct (kStruct).
func appendKind(dst []byte, k kind, p unsafe.Pointer, sub *structPlan) []byte {
	switch k {
	case kBool:
		return appendBool(dst, *(*bool)(p))
	case kInt:
		return appendInt(dst, int64(*(*int)(p)))
	case kInt8:
		return appendInt(dst, int64(*(*int8)(p)))
	case kInt16:
		return appendInt(dst, int64(*(*int16)(p)))
	case kInt32:
		return appendInt(dst, int64(*(*int32)(p)))
	case kInt64:
		return appendInt(dst, *(*int64)(p))
	case kUint:
		return appendUint(dst, uint64(*(*uint)(p)))
	case kUint8:
		return appendUint(dst, uint64(*(*uint8)(p)))
	case kUint16:
		return appendUint(dst, uint64(*(*uint16)(p)))
	case kUint32:
		return appendUint(dst, uint64(*(*uint32)(p)))
	case kUint64:
		return appendUint(dst, *(*uint64)(p))
	case kFloat32:
		return appendFloat32(dst, *(*float32)(p))
	case kFloat64:
		return appendFloat64(dst, *(*float64)(p))
	case kString:
		return appendString(dst, *(*string)(p))
	case kBytes:
		return appendBytes(dst, *(*[]byte)(p))
	case kSlice | kBool:
		return appendBools(dst, *(*[]bool)(p))
	case kSlice | kInt:
		return appendInts(dst, *(*[]int)(p))
	case kSlice | kInt8:
		return appendInts(dst, *(*[]int8)(p))
	case kSlice | kInt16:
		return appendInts(dst, *(*[]int16)(p))
	case kSlice | kInt32:
		return appendInts(dst, *(*[]int32)(p))
	case kSlice | kInt64:
		return appendInts(dst, *(*[]int64)(p))
	case kSlice | kUint:
		return appendUints(dst, *(*[]uint)(p))
	case kSlice | kUint16:
		return appendUints(dst, *(*[]uint16)(p))
	case kSlice | kUint32:
		return appendUints(dst, *(*[]uint32)(p))
	case kSlice | kUint64:
		return appendUints(dst, *(*[]uint64)(p))
	case kSlice | kFloat32:
		return appendFloat32s(dst, *(*[]float32)(p))
	case kSlice | kFloat64:
		return appendFloat64s(dst, *(*[]float64)(p))
	case kSlice | kString:
		return appendStrings(dst, *(*[]string)(p))
	case kSlice | kBytes:
		return appendByteSlices(dst, *(*[][]byte)(p))
	case kStruct:
		return sub.append(dst, p)
	}
	panic("codec: Fast of an unknown kind")
}

// decodeKind reads a value of kind k from the front of b into *p, and
// returns the bytes after it; *p is written only if ok, but for a struct
// (kStruct, by the plan sub), which is decoded into the zero struct at p,
// in place.
func decodeKind(b []byte, k kind, p unsafe.Pointer, sub *structPlan) (rest []byte, ok bool) {
	switch k {
	case kBool:
		x, rest, ok := readBool(b)
		return put(p, x, rest, ok)
	case kInt:
		x, rest, ok := readInt(b)
		return put(p, int(x), rest, ok)
	case kInt8:
		x, rest, ok := readInt(b)
		return put(p, int8(x), rest, ok)
	case kInt16:
		x, rest, ok := readInt(b)
		return put(p, int16(x), rest, ok)
	case kInt32:
		x, rest, ok := readInt(b)
		return put(p, int32(x), rest, ok)
	case kInt64:
		x, rest, ok := readInt(b)
		return put(p, x, rest, ok)
	case kUint:
		x, rest, ok := readInt(b)
		return put(p, uint(x), rest, ok)
	case kUint8:
		x, rest, ok := readInt(b)
		return put(p, uint8(x), rest, ok)
	case kUint16:
		x, rest, ok := readInt(b)
		return put(p, uint16(x), rest, ok)
	case kUint32:
		x, rest, ok := readInt(b)
		return put(p, uint32(x), rest, ok)
	case kUint64:
		x, rest, ok := readInt(b)
		return put(p, uint64(x), rest, ok)
	case kFloat32:
		x, rest, ok := readFloat32(b)
		return put(p, x, rest, ok)
	case kFloat64:
		x, rest, ok := readFloat64(b)
		return put(p, x, rest, ok)
	case kString:
		x, rest, ok := readString(b)
		return put(p, x, rest, ok)
	case kBytes:
		x, rest, ok := readBytes(b)
		return put(p, x, rest, ok)
	case kSlice | kBool:
		x, rest, ok := readSlice(b, readBool)
		return put(p, x, rest, ok)
	case kSlice | kInt:
		x, rest, ok := readInts[int](b)
		return put(p, x, rest, ok)
	case kSlice | kInt8:
		x, rest, ok := readInts[int8](b)
		return put(p, x, rest, ok)
	case kSlice | kInt16:
		x, rest, ok := readInts[int16](b)
		return put(p, x, rest, ok)
	case kSlice | kInt32:
		x, rest, ok := readInts[int32](b)
		return put(p, x, rest, ok)
	case kSlice | kInt64:
		x, rest, ok := readInts[int64](b)
		return put(p, x, rest, ok)
	case kSlice | kUint:
		x, rest, ok := readInts[uint](b)
		return put(p, x, rest, ok)
	case kSlice | kUint16:
		x, rest, ok := readInts[uint16](b)
		return put(p, x, rest, ok)
	case kSlice | kUint32:
		x, rest, ok := readInts[uint32](b)
		return put(p, x, rest, ok)
	case kSlice | kUint64:
		x, rest, ok := readInts[uint64](b)
		return put(p, x, rest, ok)
	case kSlice | kFloat32:
		x, rest, ok := readSlice(b, readFloat32Elem)
		return put(p, x, rest, ok)
	case kSlice | kFloat64:
		x, rest, ok := readSlice(b, readFloat64)
		return put(p, x, rest, ok)
	case kSlice | kString:
		x, rest, ok := readSlice(b, readString)
		return put(p, x, rest, ok)
	case kSlice | kBytes:
		x, rest, ok := readSlice(b, readBytes)
		return put(p, x, rest, ok)
	case kStruct:
		return sub.decode(b, p)
	}
	panic("codec: Fast of an unknown kind")
}
