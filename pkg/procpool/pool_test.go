//go:build unix

package procpool_test

// Pool basics: Submit, Get, Map, Cancel, concurrent callers, separate processes.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestSubmitAndMap(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})

	v, err := Square.Submit(p, 7).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 49, v)

	in := make([]int, 1000)
	want := make([]int, len(in))
	for i := range in {
		in[i], want[i] = i, i*i
	}
	for _, tc := range []struct {
		name string
		opts []procpool.MapOption
		in   []int
	}{
		{"default chunksize", nil, in},
		{"chunksize 1", []procpool.MapOption{procpool.Chunksize(1)}, in},
		{"chunksize 7", []procpool.MapOption{procpool.Chunksize(7)}, in},
		{"one chunk", []procpool.MapOption{procpool.Chunksize(5000)}, in},
		{"empty", nil, []int{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Square.Map(ctx(t), p, tc.in, tc.opts...)
			require.NoError(t, err)
			assert.Equal(t, want[:len(tc.in)], out)
		})
	}
	require.NoError(t, p.Close())
}

func TestWorkersAreSeparateProcesses(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2, WorkerGOMAXPROCS: 1})
	pids := map[int]bool{}
	fs := make([]*procpool.Future[int], 20)
	for i := range fs {
		fs[i] = Sleep.Submit(p, 20)
	}
	for range 20 {
		pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
		require.NoError(t, err)
		pids[pid] = true
	}
	assert.NotContains(t, pids, os.Getpid())
	assert.Subset(t, p.Workers(), keys(pids))
	n, err := GOMAXPROCS.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 1, n, "GOMAXPROCS in the worker")
	require.NoError(t, p.Close())
	for _, f := range fs {
		_, err := f.Get(ctx(t))
		assert.NoError(t, err, "Close waits for submitted work")
	}
}

func keys(m map[int]bool) []int {
	var ks []int
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestConcurrentSubmitters(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for g := range 50 {
		wg.Go(func() {
			fs := make([]*procpool.Future[int], 40)
			for i := range fs {
				fs[i] = Square.Submit(p, g*1000+i)
			}
			for i, f := range fs {
				v, err := f.Get(ctx(t))
				if err == nil && v != (g*1000+i)*(g*1000+i) {
					err = fmt.Errorf("square(%d) = %d", g*1000+i, v)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	require.NoError(t, p.Close())
}

func TestGetAndCancel(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, Prefetch: 1})
	running := Sleep.Submit(p, 300)
	queued := Sleep.Submit(p, 300)

	short, cancel := context.WithTimeout(ctx(t), 20*time.Millisecond)
	defer cancel()
	_, err := running.Get(short)
	require.ErrorIs(t, err, context.DeadlineExceeded, "Get gives up when its context ends")

	assert.True(t, queued.Cancel(), "a queued task is cancelled")
	_, err = queued.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	<-queued.Done()

	pid := p.Workers()[0]
	assert.True(t, running.Cancel(), "so is a running one")
	_, err = running.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	v, err := Square.Submit(p, 5).Get(ctx(t))
	require.NoError(t, err)
	assert.Equal(t, 25, v)
	assert.Equal(t, []int{pid}, p.Workers(), "a task that heeds its context stops without a kill")
	require.NoError(t, p.Close())
}
