package codec

import (
	"encoding/binary"
	"fmt"
)

// checkLengths checks that every length in the msgpack value at the start
// of b fits in the bytes that follow it: a string or byte string in its
// bytes, an array's elements and a map's keys and values at one byte each at
// least. msgpack's decoder trusts a length and allocates for it before it
// reads anything: five bytes claiming an array of 2³² elements would ask for
// tens of gigabytes and end the program. Bytes after the value are left
// alone, as the decoder leaves them.
func checkLengths(b []byte) error {
	off, pending := 0, 1 // pending: values still to scan
	for pending > 0 {
		if off >= len(b) {
			return fmt.Errorf("corrupt msgpack: the value ends after %d bytes, inside an element", len(b))
		}
		c := b[off]
		off++
		pending--
		var size, elems int // bytes to skip, values to add
		switch {
		case c <= 0x7f || c >= 0xe0, c == mNil, c == mFalse, c == mTrue: // and the fixints
		case c >= 0x80 && c <= 0x8f:
			elems = 2 * int(c&0x0f)
		case c >= mFixArray && c <= mFixArray|0x0f:
			elems = int(c & 0x0f)
		case c >= mFixStr && c <= mFixStr|0x1f:
			size = int(c & 0x1f)
		case c == mFloat:
			size = 4
		case c == mDouble:
			size = 8
		case c >= mUint8 && c <= mUint64:
			size = 1 << (c - mUint8)
		case c >= mInt8 && c <= mInt64:
			size = 1 << (c - mInt8)
		case c >= 0xd4 && c <= 0xd8: // fixext 1 to 16, after its type
			size = 1 + 1<<(c-0xd4)
		default:
			n, w, ok := length(b[off:], c)
			if !ok {
				return fmt.Errorf("corrupt msgpack: code %#x at byte %d", c, off-1)
			}
			off += w
			switch c {
			case mArray16, mArray32:
				elems = n
			case 0xde, 0xdf:
				elems = 2 * n
			case 0xc7, 0xc8, 0xc9: // ext: a type byte, then n bytes
				size = 1 + n
			default:
				size = n
			}
		}
		if left := len(b) - off; size > left || elems > left {
			return fmt.Errorf("corrupt msgpack: at byte %d, a length of %d does not fit in the %d bytes left", off, max(size, elems), left)
		}
		off += size
		pending += elems
	}
	return nil
}

// length reads the length that follows code c, of the codes with one: str,
// bin and ext 8/16/32, array and map 16/32. It returns the length and its
// width in bytes; ok is false for any other code or a length cut short.
func length(b []byte, c byte) (n, w int, ok bool) {
	switch c {
	case mBin8, 0xc7, mStr8: // and ext 8
		w = 1
	case mBin16, 0xc8, mStr16, mArray16, 0xde: // and ext 16, map 16
		w = 2
	case mBin32, 0xc9, mStr32, mArray32, 0xdf: // and ext 32, map 32
		w = 4
	default:
		return 0, 0, false
	}
	if len(b) < w {
		return 0, 0, false
	}
	switch w {
	case 1:
		n = int(b[0])
	case 2:
		n = int(binary.BigEndian.Uint16(b))
	default:
		n = int(binary.BigEndian.Uint32(b))
	}
	return n, w, true
}
