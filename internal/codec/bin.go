package codec

// Bin returns the bytes of the msgpack byte string (bin or str, which
// msgpack decodes alike into a []byte) that spans exactly b, without copying
// them; ok is false for anything else, nil included. It lets a caller that
// owns b hand out a large []byte result in place rather than copy it.
func Bin(b []byte) (v []byte, ok bool) {
	n, rest, ok := readBytesLen(b)
	if !ok || n < 0 || n != len(rest) {
		return nil, false
	}
	return rest[:n:n], true
}
