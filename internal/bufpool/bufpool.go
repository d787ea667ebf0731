// Package bufpool recycles the buffers of the data path: the frames both
// sides read, and the spans and arguments of each chunk. A busy pool moves
// many megabytes a second through buffers that live for one chunk; made
// afresh, each is zeroed by the allocator and collected by the GC, which then
// runs often enough to make every pointer write of the worker's loop pay for
// a write barrier, and the runtime's scavenger hands the pages back to the
// kernel only for them to be faulted in again.
//
// The buffers are kept in size classes of an eighth of a power of two, so a
// buffer is at most 1/8 larger than asked for. Pools of powers of two
// (github.com/libp2p/go-buffer-pool, for one) would double a frame just over
// one, such as that of a 1 MiB value, and its zeroing with it.
package bufpool

import (
	"math/bits"
	"sync"
)

const (
	minShift = 10 // buffers of 1 KiB and less are cheaper made than pooled
	maxShift = 26 // and those over 64 Mi elements are not kept
	steps    = 8  // classes per power of two
)

// Pool keeps slices of T by capacity. The zero Pool is ready to use, and
// its methods may be called from any goroutine.
type Pool[T any] struct {
	classes [(maxShift - minShift) * steps]sync.Pool // of *[]T
	holders sync.Pool                                // empty *[]T, to spare Put an allocation
	// alloc makes a slice of length n and capacity size when the pool has
	// none; nil: make.
	alloc func(n, size int) []T
}

// Bytes is the pool of byte buffers: frames and encoded arguments. A large
// buffer it makes is neither cleared nor faulted in page by page (see
// uninitBytes).
var Bytes = Pool[byte]{alloc: uninitBytes}

// Spans is the pool of the spans that index values in a buffer
// (wire.Values).
var Spans Pool[uint32]

// Get returns a slice of length n, from the pool if it holds one large
// enough. Its contents are whatever its last user left: the caller
// overwrites what it reads.
func (p *Pool[T]) Get(n int) []T {
	c, size := classAbove(n)
	if c < 0 {
		return make([]T, n)
	}
	if h, _ := p.classes[c].Get().(*[]T); h != nil {
		s := (*h)[:n]
		*h = nil
		p.holders.Put(h)
		return s
	}
	if p.alloc != nil {
		return p.alloc(n, size)
	}
	return make([]T, n, size)
}

// Put gives s to the pool, for a later Get. The caller must not use s, or
// any slice of its array, afterwards.
func (p *Pool[T]) Put(s []T) {
	c := classBelow(cap(s))
	if c < 0 {
		return
	}
	h, _ := p.holders.Get().(*[]T)
	if h == nil {
		h = new([]T)
	}
	*h = s[:0]
	p.classes[c].Put(h)
}

// classAbove returns the smallest class whose size is n or more, and that
// size; -1 if n is outside the pooled sizes.
func classAbove(n int) (int, int) {
	if n <= 1<<minShift || n > 1<<maxShift {
		return -1, 0
	}
	shift := bits.Len(uint(n-1)) - 1 // 1<<shift < n <= 2<<shift
	step := 1 << (shift - 3)
	k := (n - 1<<shift + step - 1) / step // 1..8
	return (shift-minShift)*steps + k - 1, 1<<shift + k*step
}

// classBelow returns the largest class whose size is c or less: every
// slice Get takes from it fits in c. It is -1 if there is none.
func classBelow(c int) int {
	if c <= 1<<minShift || c > 2<<maxShift {
		return -1
	}
	shift := bits.Len(uint(c)) - 1           // 1<<shift <= c < 2<<shift
	k := (c - 1<<shift) / (1 << (shift - 3)) // 0..7
	class := (shift-minShift)*steps + k - 1  // k == 0: the top class of the octave below
	if class >= (maxShift-minShift)*steps {
		class = (maxShift-minShift)*steps - 1
	}
	return class
}
