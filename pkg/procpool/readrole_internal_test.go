package procpool

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/wire"
)

// TestReadOneHandsOverWhatArrivedTogether: the results that arrived whole
// together reach the scheduler in one hand-over, in order, and each that
// ends its run takes that run off the conn's runs in flight; one not yet
// whole waits for the next read.
func TestReadOneHandsOverWhatArrivedTogether(t *testing.T) {
	var out bytes.Buffer
	w := wire.NewStream(nil, &out, wire.DefaultMaxFrame)
	for _, r := range []wire.Result{{ID: 1}, {ID: 2, More: true}, {ID: 2}, {ID: 3}} {
		r.Values = wire.ValuesOf([]byte{byte(r.ID)})
		require.NoError(t, w.Write(&r))
	}
	require.NoError(t, w.Flush())
	frames := out.Bytes()
	cut := len(frames) - 3 // inside the last Result
	arrivals := &arrivals{chunks: [][]byte{frames[:cut], frames[cut:]}}

	ev := &recorder{}
	runs := []*batch{{id: 1}, {id: 2}, {id: 3}}
	c := &processConn{stream: wire.NewStream(arrivals, nil, wire.DefaultMaxFrame), ev: ev, inflight: slices.Clone(runs)}

	require.NoError(t, c.readOne())
	assert.Equal(t, [][]uint64{{1, 2, 2}}, ev.ids, "the three whole results at once")
	assert.Equal(t, runs[2:], c.inflight, "runs 1 and 2 ended")

	require.NoError(t, c.readOne())
	assert.Equal(t, [][]uint64{{1, 2, 2}, {3}}, ev.ids)
	assert.Empty(t, c.inflight)
	assert.Equal(t, []byte{3}, ev.last.At(0), "values are the scheduler's to keep")

	assert.ErrorIs(t, c.readOne(), io.EOF)
}

// arrivals is a stream whose bytes arrive in chunks, one per Read.
type arrivals struct{ chunks [][]byte }

func (a *arrivals) Read(p []byte) (int, error) {
	if len(a.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, a.chunks[0])
	if a.chunks[0] = a.chunks[0][n:]; len(a.chunks[0]) == 0 {
		a.chunks = a.chunks[1:]
	}
	return n, nil
}

// recorder is a conn's scheduler that notes the ids of each hand-over of
// results.
type recorder struct {
	ids  [][]uint64
	last wire.Values
}

func (r *recorder) ready(int) {}

func (r *recorder) results(rs []wire.Result) error {
	var ids []uint64
	for _, res := range rs {
		ids = append(ids, res.ID)
		r.last = res.Values
	}
	r.ids = append(r.ids, ids)
	return nil
}

func (r *recorder) ended(*WorkerExitError, endCause, *journal.Record) {}
