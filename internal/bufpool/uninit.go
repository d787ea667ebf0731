package bufpool

import (
	"strings"
	"unsafe"
)

// uninitMin is the size from which Bytes makes its buffers uncleared.
const uninitMin = 64 << 10

// populateMin is the size from which it also has their pages backed at once.
const populateMin = 256 << 10

// uninitBytes returns a byte slice of length n and capacity size whose
// contents are unspecified, with its pages already backed by memory where
// the system can do that in one call (see populate).
//
// A buffer Bytes makes is filled at once by a read, so clearing it, as make
// does for memory the heap used before, is wasted; and on memory the
// runtime had returned to the kernel, clearing is what faults it back in,
// one page at a time, which for a megabyte frame costs more than reading
// it (2 to 4 ms per MiB on a virtual machine, measured). The standard
// library makes such buffers for strings.Builder, uncleared; Grow gives one
// with nothing in it, and a builder's String shares its bytes, so the
// buffer is reached through the first byte the string holds. The string is
// dropped: the bytes are the caller's.
func uninitBytes(n, size int) []byte {
	if size < uninitMin {
		return make([]byte, n, size)
	}
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteByte(0)
	s := sb.String()
	b := unsafe.Slice(unsafe.StringData(s), size)
	if size >= populateMin {
		populate(b)
	}
	return b[:n]
}
