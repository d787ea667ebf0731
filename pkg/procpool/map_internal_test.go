package procpool

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestChunking: by default a Map's chunks hold len/(4 × workers) calls, as
// Pool.map's do, and end at 64 KiB of arguments; Chunksize sets the calls,
// and only MaxChunkBytes ends them early.
func TestChunking(t *testing.T) {
	for _, c := range []struct {
		n, workers, chunksize, maxChunkBytes int
		size, maxBytes                       int
	}{
		{1_000_000, 2, 0, 1 << 20, 125_000, 64 << 10},
		{10, 4, 0, 1 << 20, 1, 64 << 10},
		{0, 4, 0, 1 << 20, 1, 64 << 10},
		{100, 2, 0, 32 << 10, 13, 32 << 10}, // a smaller MaxChunkBytes wins
		{1_000_000, 2, 5000, 1 << 20, 5000, 1 << 20},
		{1_000_000, 2, 1, 1 << 20, 1, 1 << 20},
	} {
		size, maxBytes := chunking(c.n, c.workers, c.chunksize, c.maxChunkBytes)
		assert.Equal(t, c.size, size, "%+v", c)
		assert.Equal(t, c.maxBytes, maxBytes, "%+v", c)
	}
}
