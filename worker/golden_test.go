package worker

import (
	"bytes"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/internal/wire/wiretest"
)

// TestGoldenFrames feeds the golden frames a worker receives (Setup, Run,
// Cancel), one after another as on its pipe, through the worker's own
// reading path, and checks that each arrives as its message, of a type the
// handshake or the read loop handles.
func TestGoldenFrames(t *testing.T) {
	stream, want := wiretest.Stream(t, true)
	s := &server{stream: wire.NewStream(bytes.NewReader(stream), io.Discard, wire.DefaultMaxFrame)}
	for i, w := range want {
		m, err := s.stream.Read()
		require.NoError(t, err, "frame %d, want %T", i, w)
		require.Equal(t, wire.Canonical(w), wire.Canonical(m), "frame %d", i)
		switch m.(type) {
		case *wire.Setup, *wire.Run, *wire.Cancel:
		default:
			t.Fatalf("frame %d: a worker does not handle a %T", i, m)
		}
	}
	_, err := s.stream.Read()
	require.Equal(t, io.EOF, err, "after the last frame, the end of the stream")
}
