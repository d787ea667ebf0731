//go:build unix

package procpool_test

// TaskTimeout, and Cancel of a running call: a task that ignores them is killed.

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

func TestTaskTimeout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		submit   func(p *procpool.Pool) *procpool.Future[int]
		replaced bool
	}{
		{"a task that heeds its context stops", func(p *procpool.Pool) *procpool.Future[int] { return Sleep.Submit(p, 60_000) }, false},
		{"a task that ignores it is killed", func(p *procpool.Pool) *procpool.Future[int] { return Stubborn.Submit(p, "") }, true},
		{"a task that ignores SIGTERM too is killed", func(p *procpool.Pool) *procpool.Future[int] { return Stubborn.Submit(p, "term") }, true},
	} {
		for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
			t.Run(fmt.Sprintf("%s/%s", tc.name, policy), func(t *testing.T) {
				p, _ := newPool(t, procpool.Config{Workers: 1, OnCrash: policy, TaskTimeout: 200 * time.Millisecond, KillGrace: 100 * time.Millisecond})
				before := p.Workers()
				slow := tc.submit(p)
				others := []*procpool.Future[int]{Square.Submit(p, 2), Square.Submit(p, 3)}
				start := time.Now()
				_, err := slow.Get(ctx(t))
				require.ErrorIs(t, err, procpool.ErrTaskTimeout)
				assert.Less(t, time.Since(start), 5*time.Second, "the future fails on time")
				for i, f := range others {
					v, err := f.Get(ctx(t))
					require.NoError(t, err, "no other task is lost")
					assert.Equal(t, (i+2)*(i+2), v)
				}
				require.Eventually(t, func() bool { return len(p.Workers()) == 1 }, 5*time.Second, 10*time.Millisecond)
				if tc.replaced {
					assert.NotEqual(t, before, p.Workers())
				} else {
					assert.Equal(t, before, p.Workers())
				}
				st := p.Stats()
				assert.Equal(t, 1, st.TimedOut)
				assert.Zero(t, st.Deaths)
				require.NoError(t, p.Close())
			})
		}
	}
}

func TestCancelRunningStubbornTask(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, KillGrace: 50 * time.Millisecond})
	before := p.Workers()
	f := Stubborn.Submit(p, "")
	time.Sleep(50 * time.Millisecond) // let it start
	assert.True(t, f.Cancel())
	_, err := f.Get(ctx(t))
	require.ErrorIs(t, err, context.Canceled)
	v, err := Square.Submit(p, 4).Get(ctx(t))
	require.NoError(t, err, "the pool serves on, under Break too")
	assert.Equal(t, 16, v)
	assert.NotEqual(t, before, p.Workers(), "the worker was replaced")
	assert.True(t, f.Cancel(), "it stays cancelled")
	require.NoError(t, p.Close())
}
