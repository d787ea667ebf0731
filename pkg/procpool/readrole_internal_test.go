package procpool

import (
	"bytes"
	"context"
	"io"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
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

// TestMayPoll: a caller polls for its result only where the result is
// expected within the poll, and a CPU is left for it besides those of the
// busy workers and of the callers that poll already.
func TestMayPoll(t *testing.T) {
	pool := func(cpus, busy int) *Pool {
		p := &Pool{}
		p.place.ncpu, p.place.ncpuAge = cpus, 1<<30
		p.place.busy = busy
		return p
	}
	quick := measuredBatch(1, time.Microsecond)
	idle, running := &member{}, &member{busy: true}
	assert.True(t, pool(2, 0).mayPoll(idle, quick), "an idle pool on 2 CPUs")
	assert.True(t, pool(2, 0).mayPoll(idle, measuredBatch(1, 0)), "a task not yet measured")
	assert.True(t, pool(2, 1).mayPoll(running, quick), "the one busy worker takes it")
	assert.False(t, pool(1, 0).mayPoll(idle, quick), "one CPU, which the worker needs")
	assert.False(t, pool(2, 1).mayPoll(idle, quick), "two CPUs, and another worker busy")
	p := pool(4, 1)
	p.polling.Store(2)
	assert.False(t, p.mayPoll(idle, quick), "four CPUs, a busy worker and two callers polling")
	assert.False(t, pool(2, 0).mayPoll(idle, measuredBatch(1, time.Millisecond)), "a call measured to take 1 ms")
	p = pool(2, 0)
	p.place.wake = time.Millisecond
	assert.False(t, p.mayPoll(idle, quick), "workers 1 ms away (over SSH, say)")
}

var pollSquare = Register("test.poll-square", func(_ context.Context, x int) (int, error) { return x * x, nil })

// TestPollsEndWithTheirLeases: a caller granted a poll gives it back when
// its lease ends, however that ends: its Get reads the result, it waits
// with Done, its Get's context had ended, or the pool closes first. A poll
// never given back would keep later callers from polling.
func TestPollsEndWithTheirLeases(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("a caller polls only where it has a CPU of its own")
	}
	p, err := New(Config{Workers: 1, Logger: hclog.NewNullLogger()})
	require.NoError(t, err)
	defer p.Close()
	ctx := context.Background()
	submit := func() *Future[int] {
		p.mu.Lock()
		// A loaded machine, or -race, must not keep the poll from being
		// granted: the call and the wake-up measured as slow.
		p.place.wake = 0
		p.place.cost(pollSquare.Name()).warm = 0
		p.mu.Unlock()
		f := pollSquare.Submit(p, 3)
		require.Equal(t, int32(1), p.polling.Load(), "the poll is granted")
		return f
	}

	for range 20 {
		got, err := submit().Get(ctx)
		require.NoError(t, err)
		require.Equal(t, 9, got)
		require.Zero(t, p.polling.Load(), "after Get")
	}

	<-submit().Done()
	assert.Zero(t, p.polling.Load(), "after Done")

	f := submit()
	ended, cancel := context.WithCancel(ctx)
	cancel()
	_, err = f.Get(ended)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Zero(t, p.polling.Load(), "after a Get whose context had ended")
	_, err = f.Get(ctx)
	require.NoError(t, err)

	submit()
	require.NoError(t, p.Close())
	assert.Zero(t, p.polling.Load(), "after Close, the last result unread")
}
