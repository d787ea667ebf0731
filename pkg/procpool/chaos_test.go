package procpool_test

// The reliability suite (issue 6), part two: races between deaths and the
// pool's own transitions (loky's workers that kill each other, deaths during
// Close, recycling and retries, Terminate with a backlog), and the chaos
// soak.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/procpool/procpool/pkg/procpool"
)

// relKillArg is the argument of RelKillPeer.
type relKillArg struct {
	X    int
	Kill bool  // kill a random other worker of Pids (itself if it is alone)
	Pids []int // the pool's workers when the Map started
	Ms   int   // milliseconds to sleep first
}

// RelKillPeer squares X, and first, if Kill is set, sends SIGKILL to a
// random other worker of the list (a sibling: a process with the same
// parent, so that a reused pid is never hit).
var RelKillPeer = procpool.Register("test.rel.kill-peer", func(_ context.Context, a relKillArg) (int, error) {
	time.Sleep(time.Duration(a.Ms) * time.Millisecond)
	if a.Kill {
		others := slices.DeleteFunc(slices.Clone(a.Pids), func(pid int) bool { return pid == os.Getpid() })
		if len(others) == 0 {
			others = a.Pids
		}
		if victim := others[rand.IntN(len(others))]; victim > 0 {
			if ppid, state, ok := procStat(victim); ok && ppid == os.Getppid() && state != 'Z' {
				_ = unix.Kill(victim, unix.SIGKILL)
			}
		}
	}
	return a.X * a.X, nil
})

// relDieArg is the argument of RelDieN.
type relDieArg struct {
	X      int
	Dir    string // where the attempts are counted
	Deaths int    // how many attempts die before one succeeds
	Ms     int    // milliseconds a surviving attempt sleeps
}

// RelDieN dies (os.Exit(1)) on its first Deaths attempts and returns X on
// the next; every attempt leaves a file in Dir, and the first surviving
// attempt marks that it is running before it sleeps Ms.
var RelDieN = procpool.Register("test.rel.die-n", func(_ context.Context, a relDieArg) (int, error) {
	key := filepath.Join(a.Dir, strconv.Itoa(a.X))
	n := 0
	for {
		f, err := os.OpenFile(fmt.Sprintf("%s.%d", key, n), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err == nil {
			f.Close()
			break
		}
		n++
	}
	if n < a.Deaths {
		os.Exit(1)
	}
	if a.Ms > 0 && n == a.Deaths { // the first attempt that survives
		_ = os.WriteFile(key+".running", nil, 0o600)
		time.Sleep(time.Duration(a.Ms) * time.Millisecond)
	}
	return a.X, nil
})

// relAttempts counts the attempts RelDieN made for x.
func relAttempts(dir string, x int) int {
	m, _ := filepath.Glob(filepath.Join(dir, strconv.Itoa(x)+".[0-9]*"))
	return len(m)
}

// relMapOutcome checks the outcome of a Map under Respawn with retries while
// workers die: every result right, or the error of a call whose retries ran
// out.
func relMapOutcome(t *testing.T, out []int, err error, n int) (lost bool) {
	t.Helper()
	if err != nil {
		require.ErrorIs(t, err, procpool.ErrWorkerLost, "the only failure allowed is a lost call")
		require.NotErrorIs(t, err, procpool.ErrBrokenPool)
		var exit *procpool.WorkerExitError
		require.ErrorAs(t, err, &exit)
		assert.Positive(t, exit.PID)
		return true
	}
	require.Len(t, out, n)
	for i, v := range out {
		require.Equal(t, i*i, v, "result %d", i)
	}
	return false
}

// Workers that SIGKILL each other while a Map runs, at 1, 2, 5 and 13
// workers (loky's test_reusable_executor), three rounds each: under Respawn
// with retries every Map ends with its results, or with ErrWorkerLost, and
// the pool serves on at full strength.
func TestWorkersKillEachOther(t *testing.T) {
	for _, n := range []int{1, 2, 5, 13} {
		t.Run(fmt.Sprintf("%d workers", n), func(t *testing.T) {
			p, _ := relPool(t, 60*time.Second, procpool.Config{
				Workers: n, OnCrash: procpool.Respawn, Retries: 3,
				MaxConsecutiveDeaths: 1000, // the kills are the test, not a crash loop
			})
			lostRounds := 0
			for round := range 3 {
				pids := p.Workers()
				in := make([]relKillArg, 60)
				for i := range in {
					in[i] = relKillArg{X: i, Kill: i%6 == 3, Pids: pids, Ms: 2}
				}
				out, err := RelKillPeer.Map(ctx(t), p, in)
				if relMapOutcome(t, out, err, len(in)) {
					lostRounds++
				}
				require.Eventually(t, func() bool { return len(p.Workers()) == n }, 10*time.Second, 5*time.Millisecond, "round %d", round)
			}
			st := p.Stats()
			t.Logf("%d workers: %d deaths, %d calls retried, %d lost, %d of 3 Maps lost a call", n, st.Deaths, st.Retried, st.Lost, lostRounds)
			assert.Positive(t, st.Deaths, "the workers did kill each other")
			assert.Equal(t, lostRounds > 0, st.Lost > 0)
			v, err := Square.Submit(p, 9).Get(ctx(t))
			require.NoError(t, err)
			assert.Equal(t, 81, v)
			require.NoError(t, p.Close())
		})
	}
}

// relChaos SIGKILLs a random worker of p every interval until stop is
// closed, and counts the workers it killed (a worker hit twice before it
// died counts once; a pid that names a new worker counts again).
func relChaos(p *procpool.Pool, interval time.Duration, stop <-chan struct{}, kills *atomic.Int64) *sync.WaitGroup {
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		killed := map[string]bool{} // pid and start time
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			pids := p.Workers()
			if len(pids) == 0 {
				continue
			}
			pid := pids[rand.IntN(len(pids))]
			id := relProcID(pid)
			if id != "" && relKill(pid) && !killed[id] {
				killed[id] = true
				kills.Add(1)
			}
		}
	})
	return &wg
}

// relProcID names a process for as long as it lives: its pid and its start
// time, since pids are reused.
func relProcID(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 20 {
		return ""
	}
	return fmt.Sprintf("%d@%s", pid, f[19])
}

// Workers killed while Close drains the pool, or while it stops them, and
// sometimes while Terminate runs too: Close returns, every call ends as its
// policy promises, nothing is left behind.
func TestDeathsDuringClose(t *testing.T) {
	for _, policy := range []procpool.CrashPolicy{procpool.Break, procpool.Respawn} {
		for i := range 8 {
			t.Run(fmt.Sprintf("%s/%d", policy, i), func(t *testing.T) {
				p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 3, OnCrash: policy, Retries: 1, MaxConsecutiveDeaths: 1000})
				var fs []*procpool.Future[int]
				if i%4 != 3 { // one run in four has no work: the kills hit workers being stopped
					for j := range 30 {
						fs = append(fs, Sleep.Submit(p, 5+j%20))
					}
				}
				pids := p.Workers()
				closed := make(chan error, 1)
				go func() { closed <- p.Close() }()
				terminate := i%4 == 1 // and Terminate, racing the kills and Close
				terminated := make(chan error, 1)
				if terminate {
					go func() { time.Sleep(time.Duration(i) * time.Millisecond); terminated <- p.Terminate() }()
				}
				time.Sleep(time.Duration(i*7) * time.Millisecond)
				for _, pid := range pids[:1+i%3] {
					relKill(pid)
				}
				if terminate {
					select {
					case err := <-terminated:
						require.NoError(t, err)
					case <-time.After(5 * time.Second):
						t.Fatal("Terminate did not return")
					}
				}
				select {
				case err := <-closed:
					require.NoError(t, err)
				case <-time.After(15 * time.Second):
					t.Fatal("Close did not return")
				}
				for j, f := range fs {
					v, err := f.Get(ctx(t))
					switch {
					case err == nil:
						assert.Equal(t, 5+j%20, v)
					case terminate && errors.Is(err, procpool.ErrClosed):
					case policy == procpool.Break:
						require.ErrorIs(t, err, procpool.ErrBrokenPool, "call %d", j)
					default:
						require.ErrorIs(t, err, procpool.ErrWorkerLost, "call %d", j)
					}
				}
				assert.Empty(t, p.Workers())
				_, err := Square.Submit(p, 1).Get(ctx(t))
				require.True(t, relErrIs(err, procpool.ErrClosed, procpool.ErrBrokenPool), "after Close: %v", err)
			})
		}
	}
}

// Workers killed while they are being recycled after every call
// (MaxTasksPerWorker: 1): a kill of a retiring worker is no crash, a kill of
// a working one costs a retry, and the Map ends.
func TestDeathsDuringRecycling(t *testing.T) {
	p, _ := relPool(t, 60*time.Second, procpool.Config{
		Workers: 2, OnCrash: procpool.Respawn, Retries: 3, MaxTasksPerWorker: 1, MaxConsecutiveDeaths: 1000,
	})
	var kills atomic.Int64
	stop := make(chan struct{})
	chaos := relChaos(p, 7*time.Millisecond, stop, &kills)
	lost := 0
	for range 3 {
		in := make([]relKillArg, 40)
		for i := range in {
			in[i] = relKillArg{X: i, Ms: 3}
		}
		out, err := RelKillPeer.Map(ctx(t), p, in, procpool.Chunksize(1))
		if relMapOutcome(t, out, err, len(in)) {
			lost++
		}
	}
	close(stop)
	chaos.Wait()
	require.Eventually(t, func() bool { return len(p.Workers()) == 2 }, 10*time.Second, 5*time.Millisecond)
	st := p.Stats()
	t.Logf("%d kills, %d deaths, %d retried, %d lost; %d of 3 Maps lost a call", kills.Load(), st.Deaths, st.Retried, st.Lost, lost)
	assert.Positive(t, kills.Load())
	assert.LessOrEqual(t, st.Deaths, int(kills.Load()), "a death is a kill; a retirement is not a death")
	restarts := 0
	for _, w := range st.Workers {
		restarts += w.Restarts
	}
	assert.GreaterOrEqual(t, restarts, 120-2, "every call retired its worker")
	require.NoError(t, p.Close())
}

// Deaths during a retry: a lost chunk is retried call by call, a call that
// dies again uses its next retry, and one that dies more often than Retries
// allows fails alone with ErrWorkerLost.
func TestDeathsDuringRetry(t *testing.T) {
	t.Run("a chunk lost, then one of its calls lost again", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 2})
		dir := t.TempDir()
		in := make([]relDieArg, 20)
		for i := range in {
			in[i] = relDieArg{X: i, Dir: dir}
		}
		in[3].Deaths = 2  // dies with its chunk, then alone in its retry, then succeeds
		in[15].Deaths = 1 // dies with its chunk, then succeeds
		out, err := RelDieN.Map(ctx(t), p, in, procpool.Chunksize(10))
		require.NoError(t, err)
		for i, v := range out {
			require.Equal(t, i, v)
		}
		assert.Equal(t, 3, relAttempts(dir, 3))
		assert.Equal(t, 2, relAttempts(dir, 15))
		st := p.Stats()
		assert.Equal(t, 3, st.Deaths)
		assert.Zero(t, st.Lost)
		assert.Equal(t, 10+1+10, st.Retried, "each lost chunk retried whole, call by call, and call 3 once more")
		require.NoError(t, p.Close())
	})
	t.Run("retries run out", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2, OnCrash: procpool.Respawn, Retries: 2})
		dir := t.TempDir()
		in := make([]relDieArg, 6)
		for i := range in {
			in[i] = relDieArg{X: i, Dir: dir}
		}
		in[4].Deaths = 3
		fs := make([]*procpool.Future[int], len(in))
		for i := range in {
			fs[i] = RelDieN.Submit(p, in[i])
		}
		for i, f := range fs {
			v, err := f.Get(ctx(t))
			if i == 4 {
				require.ErrorIs(t, err, procpool.ErrWorkerLost)
				var exit *procpool.WorkerExitError
				require.ErrorAs(t, err, &exit)
				assert.Equal(t, 1, exit.ExitCode)
				continue
			}
			require.NoError(t, err)
			assert.Equal(t, i, v)
		}
		assert.Equal(t, 3, relAttempts(dir, 4), "a first try and two retries")
		st := p.Stats()
		assert.Equal(t, 3, st.Deaths)
		assert.Equal(t, 1, st.Lost)
		assert.Equal(t, 2, st.Retried)
		require.NoError(t, p.Close())
	})
	t.Run("the worker running a retry is killed", func(t *testing.T) {
		p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 1, OnCrash: procpool.Respawn, Retries: 2})
		dir := t.TempDir()
		f := RelDieN.Submit(p, relDieArg{X: 7, Dir: dir, Deaths: 1, Ms: 5000})
		running := filepath.Join(dir, "7.running")
		require.Eventually(t, func() bool { _, err := os.Stat(running); return err == nil }, 10*time.Second, time.Millisecond)
		require.Equal(t, 2, relAttempts(dir, 7), "the retry is running")
		pids := p.Workers()
		require.Len(t, pids, 1)
		require.True(t, relKill(pids[0]))
		v, err := f.Get(ctx(t))
		require.NoError(t, err, "a second retry")
		assert.Equal(t, 7, v)
		assert.Equal(t, 3, relAttempts(dir, 7))
		st := p.Stats()
		assert.Equal(t, 2, st.Deaths)
		assert.Equal(t, 2, st.Retried)
		assert.Zero(t, st.Lost)
		require.NoError(t, p.Close())
	})
}

// Terminate with 10,000 calls queued, from Submit and from a Map: it returns
// at once and fails every one with ErrClosed.
func TestTerminateWithABacklog(t *testing.T) {
	p, _ := relPool(t, 30*time.Second, procpool.Config{Workers: 2})
	fs := make([]*procpool.Future[int], 10_000)
	for i := range fs {
		fs[i] = Sleep.Submit(p, 60_000)
	}
	in := make([]int, 10_000)
	for i := range in {
		in[i] = 60_000
	}
	mapped := make(chan error, 1)
	go func() {
		_, err := Sleep.Map(ctx(t), p, in, procpool.Chunksize(1))
		mapped <- err
	}()
	time.Sleep(100 * time.Millisecond) // let the Map queue its calls and the workers start some
	start := time.Now()
	require.NoError(t, p.Terminate())
	took := time.Since(start)
	t.Logf("Terminate took %s with 20,000 calls queued or running", took)
	assert.Less(t, took, 2*time.Second)
	for i, f := range fs {
		select {
		case <-f.Done():
		default:
			t.Fatalf("call %d is still pending after Terminate", i)
		}
		_, err := f.Get(ctx(t))
		require.ErrorIs(t, err, procpool.ErrClosed, "call %d", i)
	}
	select {
	case err := <-mapped:
		require.ErrorIs(t, err, procpool.ErrClosed)
	case <-time.After(2 * time.Second):
		t.Fatal("Map did not return after Terminate")
	}
	assert.Empty(t, p.Workers())
}

// ---------------------------------------------------------------------------
// Chaos soak

// RelChaos is the chaos soak's task: a value only the right input gives.
var RelChaos = procpool.Register("test.rel.chaos", func(_ context.Context, x int) (int, error) { return relChaosValue(x), nil })

func relChaosValue(x int) int { return 3*x + 1 }

// relChaosSettings reads the soak's length and kill interval from the
// environment: PROCPOOL_CHAOS_DURATION (default 10s; a run always finishes
// its current round of 100,000 items) and PROCPOOL_CHAOS_INTERVAL (default
// 5ms).
func relChaosSettings(t *testing.T) (time.Duration, time.Duration) {
	d, interval := 10*time.Second, 5*time.Millisecond
	if s := os.Getenv("PROCPOOL_CHAOS_DURATION"); s != "" {
		v, err := time.ParseDuration(s)
		require.NoError(t, err, "PROCPOOL_CHAOS_DURATION")
		d = v
	}
	if s := os.Getenv("PROCPOOL_CHAOS_INTERVAL"); s != "" {
		v, err := time.ParseDuration(s)
		require.NoError(t, err, "PROCPOOL_CHAOS_INTERVAL")
		interval = v
	}
	return d, interval
}

// relChaosTally counts what the soak saw.
type relChaosTally struct {
	items, ok, lost, mapsLost, duplicated, misplaced, unexpected int
	firstUnexpected                                              error
}

func (c *relChaosTally) other(err error) {
	c.unexpected++
	if c.firstUnexpected == nil {
		c.firstUnexpected = err
	}
}

// lostOK reports whether err is a lost call with its worker's exit.
func relLostOK(err error) bool {
	var exit *procpool.WorkerExitError
	return errors.Is(err, procpool.ErrWorkerLost) && !errors.Is(err, procpool.ErrBrokenPool) && errors.As(err, &exit) && exit.PID > 0
}

// TestChaosSoak runs Imap, Map and ImapUnordered over 100,000 items under
// Respawn with Retries: 3, while a chaos goroutine SIGKILLs a random worker
// every few milliseconds: every item ends with its correct result or with
// ErrWorkerLost, once; nothing hangs. Long run:
//
//	PROCPOOL_CHAOS_DURATION=5m go test -run TestChaosSoak -v -timeout 0 ./pkg/procpool/
func TestChaosSoak(t *testing.T) {
	duration, interval := relChaosSettings(t)
	const n = 100_000
	logs := newTailBuffer(256 << 10)
	wd := startWatchdog(t, duration+3*time.Minute)
	p, _ := newPool(t, relCfg(procpool.Config{
		Workers: 4, OnCrash: procpool.Respawn, Retries: 3,
		MaxConsecutiveDeaths: 1 << 30, // the chaos is the test, not a crash loop
		Logger:               relTailLogger(logs),
	}))
	wd.watch(p, logs)
	var kills atomic.Int64
	stop := make(chan struct{})
	chaos := relChaos(p, interval, stop, &kills)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		chaos.Wait()
	}()

	in := func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
	var tally relChaosTally
	rounds := map[string]int{}
	start := time.Now()
	for round := 0; round == 0 || time.Since(start) < duration; round++ {
		switch round % 3 {
		case 0: // in input order: each output is attributed to its input
			rounds["Imap"]++
			i := 0
			for v, err := range RelChaos.Imap(ctx(t), p, in, procpool.Chunksize(64)) {
				tally.items++
				switch {
				case err == nil && v == relChaosValue(i):
					tally.ok++
				case err == nil:
					tally.misplaced++
				case relLostOK(err):
					tally.lost++
				default:
					tally.other(err)
				}
				i++
			}
			require.Equal(t, n, i, "Imap yields exactly one output per input")
		case 1: // all or the first error
			rounds["Map"]++
			xs := make([]int, n)
			for i := range xs {
				xs[i] = i
			}
			out, err := RelChaos.Map(ctx(t), p, xs, procpool.Chunksize(64))
			tally.items += n
			switch {
			case err == nil:
				require.Len(t, out, n)
				for i, v := range out {
					if v == relChaosValue(i) {
						tally.ok++
					} else {
						tally.misplaced++
					}
				}
			case relLostOK(err):
				tally.mapsLost++ // Map reports the first lost call only
			default:
				tally.other(err)
			}
		case 2: // in completion order: no value may come twice
			rounds["ImapUnordered"]++
			seen := make([]bool, n)
			outs := 0
			for v, err := range RelChaos.ImapUnordered(ctx(t), p, in) {
				tally.items++
				outs++
				switch {
				case err == nil && (v-1)%3 == 0 && (v-1)/3 >= 0 && (v-1)/3 < n:
					if x := (v - 1) / 3; seen[x] {
						tally.duplicated++
					} else {
						seen[x] = true
						tally.ok++
					}
				case err == nil:
					tally.misplaced++
				case relLostOK(err):
					tally.lost++
				default:
					tally.other(err)
				}
			}
			require.Equal(t, n, outs, "ImapUnordered yields exactly one output per input")
		}
		if tally.unexpected > 0 || tally.misplaced > 0 || tally.duplicated > 0 {
			break
		}
	}
	close(stop)
	chaos.Wait()
	took := time.Since(start)
	// The pool is whole again once the chaos stops, and has counted the
	// last deaths.
	require.Eventually(t, func() bool { return len(p.Workers()) == 4 && p.Stats().Deaths >= int(kills.Load()) },
		10*time.Second, 5*time.Millisecond)
	st := p.Stats()
	t.Logf("chaos soak: %d items in %d rounds %v, %s, %d kills (one every %s), %d deaths, %d calls retried, "+
		"%d ok, %d lost in Imap rounds, %d Maps that ended with a lost call, %d lost per Stats, %d duplicated, %d misplaced, %d unexpected errors",
		tally.items, rounds["Imap"]+rounds["Map"]+rounds["ImapUnordered"], rounds, took.Round(time.Millisecond), kills.Load(), interval, st.Deaths, st.Retried,
		tally.ok, tally.lost, tally.mapsLost, st.Lost, tally.duplicated, tally.misplaced, tally.unexpected)
	require.Zero(t, tally.unexpected, "first unexpected error: %v", tally.firstUnexpected)
	require.Zero(t, tally.duplicated)
	require.Zero(t, tally.misplaced)
	assert.Positive(t, kills.Load())
	assert.Equal(t, int(kills.Load()), st.Deaths, "every kill is a death, and every death a kill")

	out, err := Square.Map(ctx(t), p, []int{1, 2, 3, 4, 5, 6, 7, 8})
	require.NoError(t, err)
	assert.Equal(t, []int{1, 4, 9, 16, 25, 36, 49, 64}, out)
	require.NoError(t, p.Close())
	if t.Failed() {
		t.Logf("pool log tail:\n%s", logs.String())
	}
}

// tailBuffer keeps the last bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 2*b.max {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-b.max:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf[max(0, len(b.buf)-b.max):])
}

// relTailLogger logs warnings and worse into b.
func relTailLogger(b *tailBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Name: "procpool", Output: b, Level: hclog.Warn})
}
