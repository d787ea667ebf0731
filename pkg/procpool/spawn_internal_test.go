package procpool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestPipeSize: the pipes of a pool are grown to 1 MiB while the pool's
// pipes stay within pipeBudget, less for bigger pools, not at all once that
// would be no more than a pipe's default.
func TestPipeSize(t *testing.T) {
	for n, want := range map[int]int{1: 1 << 20, 2: 1 << 20, 8: 1 << 20, 9: 512 << 10, 16: 512 << 10, 64: 128 << 10, 65: 0, 256: 0} {
		got := pipeSize(n)
		assert.Equal(t, want, got, "%d workers", n)
		assert.LessOrEqual(t, 2*n*got, pipeBudget, "%d workers", n)
	}
}
