package bufpool

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestUninitBytes checks the buffers Bytes makes on a miss, cleared or not:
// the length asked for, room for the whole class, each its own memory, and
// every byte writable and kept through a collection.
func TestUninitBytes(t *testing.T) {
	for _, n := range []int{2000, uninitMin - 1, uninitMin, populateMin - 1, populateMin, 1<<20 + 13, 16 << 20} {
		_, size := classAbove(n)
		a, b := uninitBytes(n, size), uninitBytes(n, size)
		require.Len(t, a, n)
		require.Equal(t, size, cap(a), "n=%d", n)
		a, b = a[:cap(a)], b[:cap(b)]
		for i := range a {
			a[i], b[i] = byte(i), byte(i+1)
		}
		runtime.GC() // the string the bytes came through is gone; they stay
		for i := range a {
			if a[i] != byte(i) || b[i] != byte(i+1) {
				t.Fatalf("n=%d: byte %d is %d and %d, want %d and %d: the buffers overlap or were freed", n, i, a[i], b[i], byte(i), byte(i+1))
			}
		}
	}
}

// TestBytesGetMakesLarge checks that a miss of Bytes, the pool with an
// allocator, gives the length asked for and goes back into its class.
func TestBytesGetMakesLarge(t *testing.T) {
	s := Bytes.Get(3 << 20)
	require.Len(t, s, 3<<20)
	c, _ := classAbove(3 << 20)
	require.Equal(t, c, classBelow(cap(s)))
	Bytes.Put(s)
}
