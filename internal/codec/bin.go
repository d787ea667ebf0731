package codec

import "encoding/binary"

// Bin returns the bytes of a msgpack byte string (bin 8, 16 or 32) that
// spans exactly b, without copying them; ok is false for anything else.
// It lets a caller that owns b hand out a large []byte result in place
// rather than copy it.
func Bin(b []byte) (v []byte, ok bool) {
	if len(b) < 2 {
		return nil, false
	}
	var n, h int
	switch b[0] {
	case 0xc4:
		n, h = int(b[1]), 2
	case 0xc5:
		if len(b) < 3 {
			return nil, false
		}
		n, h = int(binary.BigEndian.Uint16(b[1:])), 3
	case 0xc6:
		if len(b) < 5 {
			return nil, false
		}
		n, h = int(binary.BigEndian.Uint32(b[1:])), 5
	default:
		return nil, false
	}
	if len(b)-h != n {
		return nil, false
	}
	return b[h:len(b):len(b)], true
}
