package wire

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
)

// bigValues are byte strings around splitMin, from which a Writer leaves
// them where they are, and beyond its buffer.
func bigValues() [][]byte {
	var vs [][]byte
	for i, n := range []int{0, 1, splitMin - 1, splitMin, splitMin + 1, 255, 256, 1<<16 - 1, 1 << 16, bufSize + 3, 1 << 20} {
		vs = append(vs, bytes.Repeat([]byte{byte(i + 1)}, n))
	}
	return append(vs, nil)
}

// TestWriteSegments checks that the byte strings a Writer does not copy
// reach the stream in place: the stream is the plain encoding, byte for
// byte, whatever the buffer held before.
func TestWriteSegments(t *testing.T) {
	vs := bigValues()
	items := make([]Item, 0, len(vs)+1)
	for _, v := range vs {
		items = append(items, Item{Value: v})
	}
	items = append(items, Item{Status: StatusPanic, Message: "boom", Stack: "stack"})
	msgs := []Message{
		&Run{ID: 1, Task: "t", Args: ValuesOf(vs...)},
		&Result{ID: 2, Items: items},
		&Cancel{ID: 3},
		&Run{ID: 4, Task: "big", Args: ValuesOf(vs[len(vs)-2])},
		&Result{ID: 5, More: true, Items: items[len(items)-3 : len(items)-2]},
		&Setup{MaxFrame: DefaultMaxFrame, InitTask: "init", InitArg: vs[len(vs)-2]},
		&Ready{Init: Item{Value: vs[4]}},
	}
	// Each alone, and all in a row, so that large values meet a buffer
	// empty, part full and nearly full.
	var all []byte
	for _, m := range msgs {
		var buf bytes.Buffer
		w := NewWriter(&buf, DefaultMaxFrame)
		require.NoError(t, w.Write(m))
		require.NoError(t, w.Flush())
		want := frame(encode(t, m))
		require.Equal(t, want, buf.Bytes(), "%T", m)
		all = append(all, want...)
		require.Empty(t, w.enc.segs)
	}
	for _, pad := range []int{1, 100, bufSize - 5000, bufSize - 10} {
		var buf bytes.Buffer
		w := NewWriter(&buf, DefaultMaxFrame)
		filler := &Run{ID: 9, Task: "pad", Args: ValuesOf(make([]byte, pad))}
		require.NoError(t, w.Write(filler))
		for _, m := range msgs {
			require.NoError(t, w.Write(m))
		}
		require.NoError(t, w.Flush())
		require.Equal(t, append(frame(encode(t, filler)), all...), buf.Bytes(), "after %d bytes", pad)
		// The Writer keeps none of the values once Write returns.
		require.NotZero(t, cap(w.enc.segs), "no value was left in place")
		for _, s := range w.enc.segs[:cap(w.enc.segs)] {
			require.Nil(t, s.data)
		}
	}
}

// TestWriteSegmentsLimit checks that the size limit applies to the whole
// body, segments included, and that a refused message writes nothing.
func TestWriteSegmentsLimit(t *testing.T) {
	m := &Result{ID: 1, Items: []Item{{Value: make([]byte, 3*splitMin)}, {Value: make([]byte, 2*splitMin)}, {Value: []byte{1}}}}
	size := len(encode(t, m))
	var buf bytes.Buffer
	w := NewWriter(&buf, size-1)
	require.ErrorIs(t, w.Write(m), ErrFrameTooLarge)
	require.NoError(t, w.Flush())
	require.Zero(t, buf.Len(), "a refused message must write nothing")
	for _, s := range w.enc.segs[:cap(w.enc.segs)] {
		require.Nil(t, s.data, "a refused message's values are not kept")
	}

	w.SetMax(size)
	require.NoError(t, w.Write(m))
	require.NoError(t, w.Flush())
	require.Equal(t, frame(encode(t, m)), buf.Bytes())
}

// TestEncodeMatchesReference encodes Runs and Results with values of every
// length class, alone and through a Writer, and compares them with
// msgpack.Encoder's encoding (reference_test.go).
func TestEncodeMatchesReference(t *testing.T) {
	var vs [][]byte
	for _, n := range []int{0, 1, 31, 32, 255, 256, 1<<16 - 1, 1 << 16, splitMin - 1, splitMin} {
		vs = append(vs, bytes.Repeat([]byte{byte(n)}, n))
	}
	vs = append(vs, nil)
	var items []Item
	for _, v := range vs {
		items = append(items, Item{Value: v})
	}
	items = append(items, Item{Status: StatusError, Message: "m", Codes: []string{"a"}}, Item{Status: StatusTooLarge})
	for _, m := range []Message{
		&Run{ID: 1, Task: "t", Args: ValuesOf(vs...), Deadline: -5},
		&Run{ID: 1 << 40, Task: "t"},
		&Result{ID: 2, More: true, Took: 300, Items: items},
		&Result{ID: 3},
	} {
		want := refEncode(t, m)
		require.Equal(t, want, encode(t, m), "%T", m)
		var buf bytes.Buffer
		w := NewWriter(&buf, DefaultMaxFrame)
		require.NoError(t, w.Write(m))
		require.NoError(t, w.Flush())
		require.Equal(t, frame(want), buf.Bytes(), "%T through a Writer", m)
	}
}
