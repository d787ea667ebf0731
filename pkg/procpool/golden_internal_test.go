package procpool

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/internal/wire/wiretest"
)

// TestGoldenFramesFromWorkers reads the golden frames a worker sends (Hello,
// Ready, Result) through the stream a process connection reads, and turns
// every failed item into the caller's error, as deliver does.
func TestGoldenFramesFromWorkers(t *testing.T) {
	stream, want := wiretest.Stream(t, false)
	s := wire.NewStream(bytes.NewReader(stream), io.Discard, wire.DefaultMaxFrame)
	kinds := map[string]bool{}
	for i, w := range want {
		m, err := s.Read()
		require.NoError(t, err, "frame %d, want %T", i, w)
		require.Equal(t, wire.Canonical(w), wire.Canonical(m), "frame %d", i)
		kinds[kindOf(m)] = true
		res, ok := m.(*wire.Result)
		if !ok {
			continue
		}
		for _, it := range res.Items {
			err := itemError("sum", &it)
			switch it.Status {
			case wire.StatusOK:
				assert.NoError(t, err)
			case wire.StatusError, wire.StatusPanic:
				var re *RemoteError
				require.ErrorAs(t, err, &re)
				assert.Equal(t, it.Message, re.Message)
			case wire.StatusUnknownTask:
				assert.ErrorIs(t, err, ErrUnknownTask)
			case wire.StatusTooLarge:
				assert.ErrorIs(t, err, ErrFrameTooLarge)
			default:
				var ce *CodecError
				assert.ErrorAs(t, err, &ce, "status %d", it.Status)
			}
			if len(it.Codes) > 0 {
				assert.ErrorIs(t, err, context.DeadlineExceeded)
				assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
				assert.False(t, errors.Is(err, context.Canceled))
			}
		}
		s.Release()
	}
	assert.Equal(t, map[string]bool{"Hello": true, "Ready": true, "Result": true}, kinds)
	_, err := s.Read()
	require.Equal(t, io.EOF, err)
}
