package worker

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/wire"
)

func init() {
	double := func(_ context.Context, n int) (int, error) { return 2 * n, nil }
	registry.Register("worker-test.double", registry.Func(double), registry.BulkFunc(double, registry.Func(double)), "worker-test.double(int) int", 0)
	fill := func(_ context.Context, n int) ([]byte, error) {
		for i := range reused {
			reused[i] = byte(n)
		}
		return reused, nil
	}
	registry.Register("worker-test.fill", registry.Func(fill), registry.BulkFunc(fill, registry.Func(fill)), "worker-test.fill(int) []byte", 0)
}

// reused is the one buffer worker-test.fill returns, filled anew each call.
var reused = make([]byte, 128<<10)

// TestReturnedBytesSentBeforeTheNextCall: a large []byte result goes out
// from the bytes the task returned, so it must be written before the task
// runs again and may reuse them, as a task that returns one buffer every
// call does; with a journal or without, through the bulk loop or, in
// progress mode, call by call.
func TestReturnedBytesSentBeforeTheNextCall(t *testing.T) {
	c := codec.New()
	args := make([][]byte, 4)
	for i := range args {
		args[i], _ = c.Encode(i + 1)
	}
	for _, tc := range []struct {
		name     string
		journal  bool
		progress bool
	}{{"journal", true, false}, {"no journal", false, false}, {"progress", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			x := NewExecutor(&wire.Setup{Progress: tc.progress})
			x.c.Share = true
			if tc.journal {
				x.j = journal.NewWriter(make([]byte, journal.Size))
			}
			var sent bytes.Buffer
			w := wire.NewWriter(&sent, wire.DefaultMaxFrame)
			emit := func(res *wire.Result, _ bool) error { return w.Write(res) }
			require.NoError(t, x.Execute(&wire.Run{ID: 1, Task: "worker-test.fill", Args: wire.ValuesOf(args...)}, emit))
			require.NoError(t, w.Flush())

			r := wire.NewReader(&sent, wire.DefaultMaxFrame)
			var got []wire.Item
			for {
				body, err := r.ReadFrame()
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				m, err := wire.NewDecoder().Decode(body)
				require.NoError(t, err)
				got = append(got, m.(*wire.Result).Outcomes()...)
			}
			require.Len(t, got, len(args))
			for i, it := range got {
				var v []byte
				require.NoError(t, c.Decode(it.Value, &v))
				require.Equal(t, bytes.Repeat([]byte{byte(i + 1)}, len(reused)), v, "call %d's result", i)
			}
		})
	}
}

// TestLongRunStreamsItsResultsInParts: a run of many calls comes back in
// Results of at most partItems outcomes, every part but the last marked
// More, in order.
func TestLongRunStreamsItsResultsInParts(t *testing.T) {
	const calls = 2*partItems + 100
	c := codec.New()
	args := make([][]byte, calls)
	for i := range args {
		v, err := c.Encode(i)
		require.NoError(t, err)
		args[i] = v
	}
	x := NewExecutor(&wire.Setup{})
	var parts []int
	next := 0
	err := x.Execute(&wire.Run{ID: 7, Task: "worker-test.double", Args: wire.ValuesOf(args...)}, func(res *wire.Result, _ bool) error {
		require.Equal(t, uint64(7), res.ID)
		items := res.Outcomes()
		require.Equal(t, next+len(items) < calls, res.More, "More on part %d", len(parts))
		for _, it := range items {
			var got int
			require.NoError(t, c.Decode(it.Value, &got))
			require.Equal(t, 2*next, got, "call %d", next)
			next++
		}
		parts = append(parts, len(items))
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []int{partItems, partItems, 100}, parts)
}

// TestRunsForgetTheirValues: after each run, long or short, no item of the
// executor's buffer holds a value, which would keep its arena alive.
func TestRunsForgetTheirValues(t *testing.T) {
	c := codec.New()
	x := NewExecutor(&wire.Setup{})
	for _, calls := range []int{3000, 1, 0, 2, 500} {
		args := make([][]byte, calls)
		for i := range args {
			v, err := c.Encode(i)
			require.NoError(t, err)
			args[i] = v
		}
		got := 0
		require.NoError(t, x.Execute(&wire.Run{ID: 1, Task: "worker-test.double", Args: wire.ValuesOf(args...)}, func(res *wire.Result, _ bool) error {
			got += res.Len()
			return nil
		}))
		require.Equal(t, calls, got)
		all := x.res.Items[:cap(x.res.Items)]
		for i := range all {
			require.Nil(t, all[i].Value, "item %d of the buffer after a run of %d calls", i, calls)
			require.Nil(t, all[i].Tail, "item %d of the buffer after a run of %d calls", i, calls)
		}
	}
}

// BenchmarkExecute is a worker's cost per call of a trivial task in a run
// of 4,096, with its journal, its Result encoded as for the pipe: the
// worker's side of a bulk Map.
func BenchmarkExecute(b *testing.B) {
	c := codec.New()
	args := make([][]byte, partItems)
	for i := range args {
		args[i], _ = c.Encode(i)
	}
	run := &wire.Run{ID: 1, Task: "worker-test.double", Args: wire.ValuesOf(args...)}
	x := NewExecutor(&wire.Setup{})
	x.j = journal.NewWriter(make([]byte, journal.Size))
	w := wire.NewWriter(io.Discard, wire.DefaultMaxFrame)
	emit := func(res *wire.Result, _ bool) error { return w.Write(res) }
	for b.Loop() {
		if err := x.Execute(run, emit); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*partItems), "ns/call")
}
