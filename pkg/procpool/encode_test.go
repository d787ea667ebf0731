package procpool

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/wire"
)

// addAll encodes what add encodes, one by one, and stops where it should:
// at the byte bound, and at a value that does not fit in a frame.
func TestAddAllAsAdd(t *testing.T) {
	for name, e := range map[string]func() *argEncoder[[]byte]{
		"fast": func() *argEncoder[[]byte] {
			return &argEncoder[[]byte]{task: "t", maxFrame: 64 << 10, fast: codec.FastFor[[]byte](), c: codec.New()}
		},
		"general": func() *argEncoder[[]byte] { return &argEncoder[[]byte]{task: "t", maxFrame: 64 << 10, c: codec.New()} },
	} {
		t.Run(name, func(t *testing.T) {
			in := [][]byte{{1}, make([]byte, 300), make([]byte, 5000), {2}, make([]byte, 70000), {3}}
			one := e()
			for i := range 4 {
				require.NoError(t, one.add(&in[i]))
			}
			want := one.take()

			all := e()
			n, err := all.addAll(in, 1<<20)
			require.Equal(t, 4, n)
			var ce *CodecError
			require.ErrorAs(t, err, &ce, "the fifth value is over the frame limit")
			require.ErrorIs(t, err, ErrFrameTooLarge)
			got := all.take()
			require.Equal(t, wire.Canonical(&wire.Run{Args: want}), wire.Canonical(&wire.Run{Args: got}))

			bounded := e()
			n, err = bounded.addAll(in, 300)
			require.NoError(t, err)
			require.Equal(t, 2, n, "the chunk ends once it holds 300 bytes")
		})
	}
}

// BenchmarkEncodeChunk encodes a chunk of 4,096 ints, by add one by one
// and by addAll: the parent's side of a bulk Map.
func BenchmarkEncodeChunk(b *testing.B) {
	in := make([]int, 4096)
	for i := range in {
		in[i] = i * 1000
	}
	e := &argEncoder[int]{task: "t", maxFrame: wire.DefaultMaxFrame, fast: codec.FastFor[int](), c: codec.New()}
	b.Run("add", func(b *testing.B) {
		for b.Loop() {
			for i := range in {
				if err := e.add(&in[i]); err != nil {
					b.Fatal(err)
				}
			}
			e.recycle(e.take())
		}
	})
	b.Run("addAll", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.addAll(in, 1<<30); err != nil {
				b.Fatal(err)
			}
			e.recycle(e.take())
		}
	})
}
