package wire

// This file reads the msgpack values of a body by hand, straight from the
// slice: Results of many small items are the parent's hot path, and a
// msgpack.Decoder costs several calls through an io.Reader per value. It
// accepts what msgpack.Decoder accepted here (integers of any width, nil
// for zero, str for bin; see refdecode_test.go), and checks every length
// against the bytes left before anything is allocated.

import (
	"encoding/binary"
	"fmt"
)

// The msgpack codes the protocol uses (msgpcode has them as variables).
const (
	codePosFixMax = 0x7f
	codeFixArray  = 0x90 // to 0x9f
	codeFixStr    = 0xa0 // to 0xbf
	codeNil       = 0xc0
	codeFalse     = 0xc2
	codeTrue      = 0xc3
	codeBin8      = 0xc4
	codeBin16     = 0xc5
	codeBin32     = 0xc6
	codeUint8     = 0xcc
	codeUint16    = 0xcd
	codeUint32    = 0xce
	codeUint64    = 0xcf
	codeInt8      = 0xd0
	codeInt16     = 0xd1
	codeInt32     = 0xd2
	codeInt64     = 0xd3
	codeStr8      = 0xd9
	codeStr16     = 0xda
	codeStr32     = 0xdb
	codeArray16   = 0xdc
	codeArray32   = 0xdd
	codeNegFixMin = 0xe0
)

// isArray reports whether c starts an array.
func isArray(c byte) bool {
	return c&0xf0 == codeFixArray || c == codeArray16 || c == codeArray32
}

// The readers below share a sticky error: after the first failure, each
// returns a zero value and reads nothing, so a message's decode reads its
// fields in a row and checks d.err once, before anything it allocates.

// fail records the first error.
func (d *Decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf(format, args...)
	}
}

// has reports whether the next code and the n bytes after it are there,
// and no earlier value failed. When not, the caller fails with short.
func (d *Decoder) has(n int) bool { return d.err == nil && d.off+n < len(d.b) }

// short fails for a value cut off by the end of the body, unless an
// earlier value failed.
func (d *Decoder) short(what string) {
	if d.err != nil {
		return
	}
	if d.off < len(d.b) {
		d.fail("at byte %d: the body ends inside %s (code %#02x)", d.off, what, d.b[d.off])
	} else {
		d.fail("at byte %d: the body ends before %s", d.off, what)
	}
}

func (d *Decoder) badCode(what string) {
	d.fail("at byte %d: code %#02x is not %s", d.off, d.b[d.off], what)
}

// uint reads an integer of any width, as msgpack.Decoder.DecodeUint64 does:
// nil is 0, and a negative number keeps its two's-complement bits, so that
// int64(d.uint()) reads a signed one.
func (d *Decoder) uint(what string) uint64 {
	if !d.has(0) {
		d.short(what)
		return 0
	}
	c := d.b[d.off]
	if c <= codePosFixMax || c >= codeNegFixMin {
		d.off++
		return uint64(int8(c))
	}
	var width int
	switch c {
	case codeNil:
		d.off++
		return 0
	case codeUint8, codeInt8:
		width = 1
	case codeUint16, codeInt16:
		width = 2
	case codeUint32, codeInt32:
		width = 4
	case codeUint64, codeInt64:
		width = 8
	default:
		d.badCode(what)
		return 0
	}
	if !d.has(width) {
		d.short(what)
		return 0
	}
	b := d.b[d.off+1:]
	d.off += 1 + width
	switch c {
	case codeUint8:
		return uint64(b[0])
	case codeInt8:
		return uint64(int8(b[0]))
	case codeUint16:
		return uint64(binary.BigEndian.Uint16(b))
	case codeInt16:
		return uint64(int16(binary.BigEndian.Uint16(b)))
	case codeUint32:
		return uint64(binary.BigEndian.Uint32(b))
	case codeInt32:
		return uint64(int32(binary.BigEndian.Uint32(b)))
	}
	return binary.BigEndian.Uint64(b)
}

// int reads a signed integer; see uint.
func (d *Decoder) int(what string) int64 { return int64(d.uint(what)) }

// bool reads a boolean; nil is false.
func (d *Decoder) bool(what string) bool {
	if !d.has(0) {
		d.short(what)
		return false
	}
	switch c := d.b[d.off]; c {
	case codeNil, codeFalse, codeTrue:
		d.off++
		return c == codeTrue
	}
	d.badCode(what)
	return false
}

// arrayLen reads an array header, or nil as -1 when nilOK. A length beyond
// the bytes left (every element takes at least one) fails, so that a
// corrupt length cannot make the caller allocate much.
func (d *Decoder) arrayLen(what string, nilOK bool) int {
	if !d.has(0) {
		d.short(what)
		return 0
	}
	c := d.b[d.off]
	var n uint64 // not int: a 32-bit one could turn negative
	switch {
	case c&0xf0 == codeFixArray:
		n = uint64(c & 0x0f)
		d.off++
	case c == codeArray16:
		if !d.has(2) {
			d.short(what)
			return 0
		}
		n = uint64(binary.BigEndian.Uint16(d.b[d.off+1:]))
		d.off += 3
	case c == codeArray32:
		if !d.has(4) {
			d.short(what)
			return 0
		}
		n = uint64(binary.BigEndian.Uint32(d.b[d.off+1:]))
		d.off += 5
	case c == codeNil && nilOK:
		d.off++
		return -1
	default:
		d.badCode(what)
		return 0
	}
	if n > uint64(len(d.b)-d.off) {
		d.fail("at byte %d: %s of %d elements does not fit in the %d bytes left", d.off, what, n, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

// bin reads a byte string (or a string, or nil) without copying: the
// result refers into the body, capped so that appending to it cannot
// overwrite what follows.
func (d *Decoder) bin(what string) []byte {
	if !d.has(0) {
		d.short(what)
		return nil
	}
	c := d.b[d.off]
	var n uint64 // not int: a 32-bit one could turn negative
	var at int
	switch c {
	case codeBin8, codeStr8:
		if !d.has(1) {
			d.short(what)
			return nil
		}
		n, at = uint64(d.b[d.off+1]), d.off+2
	case codeBin16, codeStr16:
		if !d.has(2) {
			d.short(what)
			return nil
		}
		n, at = uint64(binary.BigEndian.Uint16(d.b[d.off+1:])), d.off+3
	case codeBin32, codeStr32:
		if !d.has(4) {
			d.short(what)
			return nil
		}
		n, at = uint64(binary.BigEndian.Uint32(d.b[d.off+1:])), d.off+5
	case codeNil:
		d.off++
		return nil
	default:
		if c&0xe0 != codeFixStr {
			d.badCode(what)
			return nil
		}
		n, at = uint64(c&0x1f), d.off+1
	}
	if n > uint64(len(d.b)-at) {
		d.fail("at byte %d: %s of %d bytes does not fit in the %d bytes left", d.off, what, n, len(d.b)-at)
		return nil
	}
	d.off = at + int(n)
	return d.b[at:d.off:d.off]
}

// shortBin reads a byte string of up to 255 bytes, the usual argument or
// value, with none of bin's calls, and returns where it lies in the body.
// For anything else it reads nothing and reports false.
func (d *Decoder) shortBin() (start, end uint32, ok bool) {
	b, at := d.b, d.off
	if at+1 < len(b) && b[at] == codeBin8 {
		if n, from := int(b[at+1]), at+2; n <= len(b)-from {
			d.off = from + n
			return uint32(from), uint32(d.off), true
		}
	}
	return 0, 0, false
}

// str reads a string through bin, so its length is checked against the
// bytes left before anything is allocated.
func (d *Decoder) str(what string) string { return string(d.bin(what)) }

// strs reads an array of strings, nil included, with the same checks.
func (d *Decoder) strs(what string) []string {
	n := d.arrayLen(what, true)
	if n < 0 || d.err != nil {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = d.str(what)
	}
	return ss
}

// item reads a Result's item, all of it: the fields of a reused one are
// overwritten. An OK item is a byte string, any other the array [status,
// message, stack, codes].
func (d *Decoder) item(it *Item) {
	if !d.has(0) {
		d.short("an item")
		return
	}
	if !isArray(d.b[d.off]) {
		*it = Item{Value: d.bin("an item's value")}
		return
	}
	n := d.arrayLen("an item", false)
	// msgpack.Decoder.DecodeUint8 kept the low byte.
	status := Status(d.uint("an item's status"))
	if d.err == nil && (status == StatusOK || n != 4) {
		d.fail("item with status %d has %d fields", status, n)
	}
	*it = Item{Status: status, Message: d.str("an item's message"), Stack: d.str("an item's stack"), Codes: d.strs("an item's codes")}
}
