package bufpool

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClassesFit checks, for sizes across the pooled range and its edges,
// that the class Get takes from holds only slices large enough, and that
// what it makes on a miss wastes at most an eighth.
func TestClassesFit(t *testing.T) {
	sizes := []int{0, 1, 1 << minShift, 1<<minShift + 1, 1152, 1153, 2047, 2048, 2049, 1 << 20, 1<<20 + 20, 1<<maxShift - 1, 1 << maxShift, 1<<maxShift + 1}
	for range 2000 {
		sizes = append(sizes, rand.IntN(1<<maxShift+1<<20))
	}
	for _, n := range sizes {
		c, size := classAbove(n)
		if n <= 1<<minShift || n > 1<<maxShift {
			require.Equal(t, -1, c, "n=%d", n)
			continue
		}
		require.GreaterOrEqual(t, size, n, "n=%d", n)
		require.LessOrEqual(t, size, n+n/8+1, "n=%d: class of %d wastes more than an eighth", n, size)
		// A slice made for this class goes back into it.
		require.Equal(t, c, classBelow(size), "n=%d size=%d", n, size)
		// Any capacity filed under c holds size.
		for _, capacity := range []int{size, size + 1, size + size/16} {
			if b := classBelow(capacity); b >= 0 {
				_, bsize := classAt(b)
				require.LessOrEqual(t, bsize, capacity, "cap=%d filed in a class of %d", capacity, bsize)
			}
		}
	}
}

// classAt returns the size of class c.
func classAt(c int) (int, int) {
	shift := c/steps + minShift
	k := c%steps + 1
	return c, 1<<shift + k*(1<<(shift-3))
}

func TestGetPutReuses(t *testing.T) {
	var p Pool[byte]
	s := p.Get(100_000)
	require.Len(t, s, 100_000)
	s[0] = 7
	p.Put(s)
	// sync.Pool may drop what it holds at any time, so only the sizes are
	// certain; a reused slice is the one put, at the length asked for.
	r := p.Get(99_000)
	require.Len(t, r, 99_000)
	require.GreaterOrEqual(t, cap(r), 99_000)
	if &r[0] == &s[0] {
		require.Equal(t, byte(7), r[0])
	}
	small := p.Get(10)
	require.Len(t, small, 10)
	p.Put(small) // not kept, and harmless

	var q Pool[uint32]
	u := q.Get(5000)
	require.Len(t, u, 5000)
	q.Put(u[:0])
	require.Len(t, q.Get(4500), 4500)
}

func BenchmarkGetPut(b *testing.B) {
	var p Pool[byte]
	for b.Loop() {
		p.Put(p.Get(64 << 10))
	}
}
