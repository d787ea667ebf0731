//go:build unix

// Tests of cancellation: when the caller of Map or Imap stops caring, no new
// call of it starts anywhere, and a call that ignores its context costs its
// worker; and of the deadline a task's context carries.
package procpool_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// markArgs are n calls of Mark in dir, of ms milliseconds each.
func markArgs(dir string, n, ms int, stubborn bool) []MarkArg {
	in := make([]MarkArg, n)
	for i := range in {
		in[i] = MarkArg{Dir: dir, I: i, Ms: ms, Stubborn: stubborn}
	}
	return in
}

// startedAfter counts the calls whose marker says they started after t.
func startedAfter(t *testing.T, dir string, after time.Time) (n, total int) {
	t.Helper()
	files, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(dir, f.Name()))
		require.NoError(t, err)
		ns, err := strconv.ParseInt(string(b), 10, 64)
		require.NoError(t, err)
		if time.Unix(0, ns).After(after) {
			n++
		}
	}
	return n, len(files)
}

// TestMapDeadlineStopsItsWork: when a Map's context reaches its deadline,
// no call of it starts afterwards, in the queue or in the chunks the
// workers hold, and the pool is free for other work at once.
func TestMapDeadlineStopsItsWork(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	dir := t.TempDir()
	c, cancel := context.WithTimeout(ctx(t), 300*time.Millisecond)
	defer cancel()
	deadline, _ := c.Deadline()
	_, err := Mark.Map(c, p, markArgs(dir, 400, 10, false), procpool.Chunksize(20))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	v, err := Square.Submit(p, 4).Get(ctx(t))
	require.NoError(t, err, "the pool goes on")
	assert.Equal(t, 16, v)
	time.Sleep(300 * time.Millisecond) // long enough for a held chunk to have started
	// A call is not started once the deadline has passed; its marker comes
	// a moment after that check.
	late, total := startedAfter(t, dir, deadline.Add(5*time.Millisecond))
	t.Logf("%d of 400 calls started, %d after the deadline", total, late)
	assert.Zero(t, late, "calls started after the Map's deadline")
	assert.Less(t, total, 400)
	require.NoError(t, p.Close())
}

// TestMapCancelStopsItsWork: the same for a context cancelled by hand: the
// workers learn of it by a message, so a call may start while it travels,
// but none later.
func TestMapCancelStopsItsWork(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	dir := t.TempDir()
	c, cancel := context.WithCancel(ctx(t))
	time.AfterFunc(300*time.Millisecond, cancel)
	_, err := Mark.Map(c, p, markArgs(dir, 400, 10, false), procpool.Chunksize(20))
	require.ErrorIs(t, err, context.Canceled)
	returned := time.Now()
	time.Sleep(300 * time.Millisecond)
	late, total := startedAfter(t, dir, returned.Add(50*time.Millisecond))
	t.Logf("%d of 400 calls started, %d more than 50 ms after Map returned", total, late)
	assert.Zero(t, late)
	require.NoError(t, p.Close())
}

// TestImapBreakStopsItsWork: breaking out of the loop over Imap stops the
// calls it had in flight.
func TestImapBreakStopsItsWork(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 2})
	dir := t.TempDir()
	in := markArgs(dir, 400, 10, false)
	seen := 0
	for _, err := range Mark.Imap(ctx(t), p, func(yield func(MarkArg) bool) {
		for _, a := range in {
			if !yield(a) {
				return
			}
		}
	}, procpool.Chunksize(10), procpool.Window(8)) {
		require.NoError(t, err)
		if seen++; seen == 20 {
			break
		}
	}
	broke := time.Now()
	time.Sleep(300 * time.Millisecond)
	late, total := startedAfter(t, dir, broke.Add(50*time.Millisecond))
	t.Logf("%d calls started, %d more than 50 ms after the loop broke", total, late)
	assert.Zero(t, late)
	require.NoError(t, p.Close())
}

// TestMapCancelKillsAStubbornTask: a running call that ignores its context
// costs its worker KillGrace after the Map's context ends (SIGTERM, then
// SIGKILL), the worker is replaced, and Close does not wait for the call.
func TestMapCancelKillsAStubbornTask(t *testing.T) {
	const grace = 200 * time.Millisecond
	p, _ := newPool(t, procpool.Config{Workers: 2, KillGrace: grace})
	before := p.Workers()
	c, cancel := context.WithTimeout(ctx(t), 200*time.Millisecond)
	defer cancel()
	_, err := Mark.Map(c, p, markArgs(t.TempDir(), 8, 60_000, true), procpool.Chunksize(1))
	require.ErrorIs(t, err, context.DeadlineExceeded)
	cancelled := time.Now()
	require.Eventually(t, func() bool {
		now := p.Workers()
		return len(now) == 2 && !slices.Contains(now, before[0]) && !slices.Contains(now, before[1])
	}, 2*grace+5*time.Second, 10*time.Millisecond, "both stubborn workers are replaced")
	t.Logf("replaced %s after the Map returned", time.Since(cancelled))
	start := time.Now()
	require.NoError(t, p.Close())
	took := time.Since(cancelled)
	t.Logf("Close took %s; %s since the Map returned", time.Since(start), took)
	assert.Less(t, took, 2*grace+time.Second, "Close after a cancelled Map returns within about 2 × KillGrace")
}

// TestTaskContextDeadline: a task's context carries its deadline: the
// caller's, for Map and Imap, and Config.TaskTimeout's, whichever is first.
func TestTaskContextDeadline(t *testing.T) {
	t.Run("none", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		left, err := Deadline.Submit(p, 0).Get(ctx(t))
		require.NoError(t, err)
		assert.EqualValues(t, -1, left)
		require.NoError(t, p.Close())
	})
	t.Run("Map's context", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1})
		c, cancel := context.WithTimeout(ctx(t), 5*time.Second)
		defer cancel()
		left, err := Deadline.Map(c, p, []int{0, 0, 0})
		require.NoError(t, err)
		for _, ms := range left {
			assert.InDelta(t, 5000, ms, 1000)
		}
		var got []int64
		for v, err := range Deadline.Imap(c, p, func(yield func(int) bool) { yield(0) }) {
			require.NoError(t, err)
			got = append(got, v)
		}
		require.Len(t, got, 1)
		assert.InDelta(t, 5000, got[0], 1000)
		require.NoError(t, p.Close())
	})
	t.Run("TaskTimeout", func(t *testing.T) {
		p, _ := newPool(t, procpool.Config{Workers: 1, TaskTimeout: 3 * time.Second})
		left, err := Deadline.Submit(p, 0).Get(ctx(t))
		require.NoError(t, err)
		assert.InDelta(t, 3000, left, 1000)
		c, cancel := context.WithTimeout(ctx(t), 20*time.Second)
		defer cancel()
		lefts, err := Deadline.Map(c, p, []int{0})
		require.NoError(t, err)
		assert.InDelta(t, 3000, lefts[0], 1000, "the earlier of the two")
		require.NoError(t, p.Close())
	})
}

// TestCancelReachesAWorkerBetweenQuickRuns: a worker reads its stream
// itself while its runs are quick, and has a reader goroutine read it while
// one lasts. Back and forth between the two, a long call's Cancel still
// reaches it: the call returns, and the same worker serves the next call at
// once, long before KillGrace would have replaced it.
func TestCancelReachesAWorkerBetweenQuickRuns(t *testing.T) {
	p, _ := newPool(t, procpool.Config{Workers: 1, KillGrace: time.Minute})
	pid, err := PID.Submit(p, struct{}{}).Get(ctx(t))
	require.NoError(t, err)
	for round := range 3 {
		for i := range 50 {
			v, err := Square.Submit(p, i).Get(ctx(t))
			require.NoError(t, err)
			require.Equal(t, i*i, v)
		}
		_, err := Sleep.Submit(p, 30).Get(ctx(t)) // lasts a tick of the worker's watch and longRun: its reader reads
		require.NoError(t, err)
		f := Sleep.Submit(p, 60_000)
		time.Sleep(50 * time.Millisecond)
		require.True(t, f.Cancel(), "round %d", round)
		c, cancel := context.WithTimeout(ctx(t), 5*time.Second)
		same, err := PID.Submit(p, struct{}{}).Get(c)
		cancel()
		require.NoError(t, err, "round %d: the worker did not learn of the Cancel", round)
		require.Equal(t, pid, same, "round %d: the worker was replaced", round)
	}
	require.NoError(t, p.Close())
}
