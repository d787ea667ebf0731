package worker

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/internal/codec"
	"github.com/procpool/procpool/internal/journal"
	"github.com/procpool/procpool/internal/registry"
	"github.com/procpool/procpool/internal/wire"
)

// fickle fails at 4500, panics at 4700 (a panic's stack, whose length
// varies, counts towards the frame budget, and must not decide where a
// part ends) and returns a value of 0 to 600 bytes otherwise, by n.
func fickle(_ context.Context, n int) ([]int, error) {
	switch n {
	case 4500:
		return nil, errors.New("odd one out")
	case 4700:
		panic("fickle")
	}
	v := make([]int, n%200) // 0 to 199 ints of 1 to 3 bytes: values on both sides of 255 bytes
	for i := range v {
		v[i] = n
	}
	return v, nil
}

func init() {
	h := registry.Func(fickle)
	registry.Register("worker-test.fickle", h, registry.BulkFunc(fickle, h), "worker-test.fickle(int) []int", 0)
	registry.Register("worker-test.fickle-items", h, nil, "worker-test.fickle-items(int) []int", 0)
}

// TestBulkAsItems: runs of a task with a Bulk form give the Results the
// same task gives without one, part by part, flushed alike: successes,
// errors, panics, arguments the fast path does not take (a string where an
// int is due), values over the frame budget, frames filled, a journal too
// small for a run, and a run whose deadline has passed.
func TestBulkAsItems(t *testing.T) {
	c := codec.New()
	var args [][]byte
	for n := range 5000 {
		v, err := c.Encode(n)
		require.NoError(t, err)
		if n == 4800 { // the fast path does not take it: the general way fails
			v, _ = c.Encode("not an int")
		}
		args = append(args, v)
	}
	for _, tc := range []struct {
		name     string
		calls    int
		maxFrame int
		journal  int // 0: none
		deadline int64
	}{
		{"short", 50, 0, 0, 0},
		{"parts", 5000, 0, 0, 0},
		{"journal", 5000, 0, journal.Size, 0},
		{"frames", 2000, 16 << 10, journal.Size, 0},
		{"too-large", 600, 512, 0, 0}, // values over 448 bytes fail
		{"small-journal", 3000, 0, 4 << 10, 0},
		{"expired", 20, 0, 0, time.Now().Add(-time.Second).UnixNano()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			valuesParts := 0 // parts emitted as Values: runBulk's
			run := func(task string) ([]*wire.Result, []bool) {
				x := NewExecutor(&wire.Setup{MaxFrame: tc.maxFrame})
				if tc.journal > 0 {
					x.j = journal.NewWriter(make([]byte, tc.journal))
				}
				var out bytes.Buffer
				w := wire.NewWriter(&out, wire.DefaultMaxFrame)
				var flushes []bool
				err := x.Execute(&wire.Run{ID: 9, Task: task, Args: wire.ValuesOf(args[:tc.calls]...), Deadline: tc.deadline}, func(res *wire.Result, flush bool) error {
					flushes = append(flushes, flush)
					if res.Items == nil {
						valuesParts++
					}
					return w.Write(res)
				})
				require.NoError(t, err)
				require.NoError(t, w.Flush())
				var results []*wire.Result
				s := wire.NewStream(&out, nil, wire.DefaultMaxFrame)
				for range flushes {
					m, err := s.Read()
					require.NoError(t, err)
					res := wire.Canonical(m).(*wire.Result)
					res.Took = 0
					for i := range res.Items {
						res.Items[i].Stack = "" // where it panicked differs
					}
					results = append(results, res)
				}
				return results, flushes
			}
			want, wantFlushes := run("worker-test.fickle-items")
			require.Zero(t, valuesParts)
			got, gotFlushes := run("worker-test.fickle")
			if tc.deadline == 0 {
				require.NotZero(t, valuesParts, "no part went the bulk way")
			}
			require.Equal(t, wantFlushes, gotFlushes, "parts, and which were flushed")
			for i := range want {
				require.Equal(t, len(want[i].Items), len(got[i].Items), "outcomes in part %d", i)
				require.Equal(t, want[i].More, got[i].More, "part %d", i)
				for k, w := range want[i].Items {
					g := got[i].Items[k]
					require.True(t, w.Status == g.Status && w.Message == g.Message && bytes.Equal(w.Value, g.Value) && slices.Equal(w.Codes, g.Codes),
						"part %d, outcome %d: %d %q %x, want %d %q %x", i, k, g.Status, g.Message, g.Value, w.Status, w.Message, w.Value)
				}
			}
		})
	}
}
