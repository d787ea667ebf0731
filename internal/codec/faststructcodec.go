package codec

import (
	"bytes"
	"reflect"
	"unsafe"
)

// The per-value code of the struct fast path: it follows a structPlan
// through unsafe pointers, with no reflection (but for allocating a slice
// of structs, see decodeStructs) and no boxing.

// The msgpack map codes.
const (
	mFixMap = 0x80 // | length < 16
	mMap16  = 0xde
	mMap32  = 0xdf
)

// sliceHeader is the layout of every slice.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// appendMapLen writes the header of a map of n pairs.
func appendMapLen(dst []byte, n int) []byte { return appendLen(dst, n, mFixMap, mMap16, mMap32) }

// readMapLen reads the header of a map and returns its number of pairs,
// -1 for nil. A length past the end of b, at two bytes a pair, is refused.
func readMapLen(b []byte) (n int, rest []byte, ok bool) {
	return readLen(b, mFixMap, mMap16, mMap32, 2)
}

// append writes the struct at base as msgpack does: a map of the fields
// not left out by omitempty, in order.
func (p *structPlan) append(dst []byte, base unsafe.Pointer) []byte {
	if !p.omitted {
		dst = append(dst, p.header...)
	} else {
		n := 0
		for i := range p.fields {
			if f := &p.fields[i]; !f.omit || !empty(f.k, unsafe.Add(base, f.off)) {
				n++
			}
		}
		dst = appendMapLen(dst, n)
	}
	for i := range p.fields {
		f := &p.fields[i]
		q := unsafe.Add(base, f.off)
		if f.omit && empty(f.k, q) {
			continue
		}
		dst = appendField(append(dst, f.key...), f, q)
	}
	return dst
}

// empty reports whether the field of kind k at p is empty as msgpack's
// omitempty has it: false, 0 (-0 too, NaN not), and a string or slice
// of length 0, nil or not. (A struct field is never tagged omitempty in a
// plan.)
func empty(k kind, p unsafe.Pointer) bool {
	switch k {
	case kBool:
		return !*(*bool)(p)
	case kInt, kUint:
		return *(*uint)(p) == 0
	case kInt8, kUint8:
		return *(*uint8)(p) == 0
	case kInt16, kUint16:
		return *(*uint16)(p) == 0
	case kInt32, kUint32:
		return *(*uint32)(p) == 0
	case kInt64, kUint64:
		return *(*uint64)(p) == 0
	case kFloat32:
		return *(*float32)(p) == 0
	case kFloat64:
		return *(*float64)(p) == 0
	case kString:
		return len(*(*string)(p)) == 0
	}
	return (*sliceHeader)(p).len == 0 // []byte and every slice
}

// appendField writes the field f at p. It differs from Fast.Append in
// one rule: msgpack writes a float32 field through float64, as it does a
// []float32's elements, which quiets a signalling NaN.
func appendField(dst []byte, f *fieldPlan, p unsafe.Pointer) []byte {
	switch f.k {
	case kFloat32:
		return appendFloat32(dst, float32(float64(*(*float32)(p))))
	case kSlice | kStruct:
		s := (*sliceHeader)(p)
		if s.data == nil {
			return append(dst, mNil)
		}
		dst = appendArrayLen(dst, s.len)
		for i := range s.len {
			dst = f.sub.append(dst, unsafe.Add(s.data, uintptr(i)*f.sub.size))
		}
		return dst
	}
	return appendKind(dst, f.k, p, f.sub)
}

// decode reads a struct from the front of b into the zero struct at base,
// and returns the bytes after it; ok is false, with base's struct partly
// written, for anything but a map (or nil, the zero struct) whose keys
// are fields of the plan, in its order, each written as msgpack writes
// it. Keys in another order or twice, unknown keys and the array form are
// left to msgpack: rare, and each has rules of its own.
func (p *structPlan) decode(b []byte, base unsafe.Pointer) (rest []byte, ok bool) {
	n, rest, ok := readMapLen(b)
	if !ok {
		return b, false
	}
	next := 0 // the fields before next are behind: keys come in order
	for range n {
		i := next
		for i < len(p.fields) && !bytes.HasPrefix(rest, p.fields[i].key) {
			i++
		}
		if i == len(p.fields) {
			return b, false
		}
		f := &p.fields[i]
		if rest, ok = decodeField(rest[len(f.key):], f, unsafe.Add(base, f.off)); !ok {
			return b, false
		}
		next = i + 1
	}
	return rest, true
}

// decodeField reads field f from the front of b into its zero value at
// p, with the rules of Fast.Decode but one: a float32 field is stored
// through float64, as msgpack does.
func decodeField(b []byte, f *fieldPlan, p unsafe.Pointer) (rest []byte, ok bool) {
	switch f.k {
	case kFloat32:
		x, rest, ok := readFloat32Elem(b)
		return put(p, x, rest, ok)
	case kSlice | kStruct:
		return decodeStructs(b, f, p)
	}
	return decodeKind(b, f.k, p, f.sub)
}

// decodeStructs reads a slice of structs into the nil slice at p: nil
// stays nil, an empty array is an empty slice that is not nil.
func decodeStructs(b []byte, f *fieldPlan, p unsafe.Pointer) (rest []byte, ok bool) {
	n, rest, ok := readArrayLen(b)
	switch {
	case !ok || n < 0:
		return rest, ok
	case n == 0:
		// Any pointer but nil will do; new of a size of 0 allocates nothing.
		*(*sliceHeader)(p) = sliceHeader{data: unsafe.Pointer(new(struct{}))}
		return rest, true
	}
	// The one use of reflect per value: only it can allocate memory the
	// garbage collector knows holds structs of a type known at run time.
	// Growing the field in place allocates the elements and nothing else.
	// Their number was checked against the bytes left, a byte each.
	s := reflect.NewAt(f.typ, p).Elem()
	s.Grow(n)
	s.SetLen(n)
	data := (*sliceHeader)(p).data
	for i := range n {
		if rest, ok = f.sub.decode(rest, unsafe.Add(data, uintptr(i)*f.sub.size)); !ok {
			return b, false
		}
	}
	return rest, true
}

// put stores x in *p if it was read.
func put[E any](p unsafe.Pointer, x E, rest []byte, ok bool) ([]byte, bool) {
	if ok {
		*(*E)(p) = x
	}
	return rest, ok
}
