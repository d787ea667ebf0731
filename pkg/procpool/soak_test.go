//go:build unix

package procpool_test

// The chaos soak: 100,000-item Imaps and Maps while workers are SIGKILLed.

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/procpool/procpool/pkg/procpool"
)

// TestChaosSoak runs Imap, Map and ImapUnordered over 100,000 items under
// Respawn with Retries: 3, while a chaos goroutine SIGKILLs a random worker
// every few milliseconds (never faster than workers start): every item ends
// with its correct result or with ErrWorkerLost, once; nothing hangs. Long
// run:
//
//	PROCPOOL_CHAOS_DURATION=5m go test -run TestChaosSoak -v -timeout 0 ./pkg/procpool/
func TestChaosSoak(t *testing.T) {
	duration, interval := relChaosSettings(t)
	const n = 100_000
	logs := newTailBuffer(256 << 10)
	wd := startWatchdog(t, duration+3*time.Minute)
	const workers = 4
	started := time.Now()
	countersFile := filepath.Join(t.TempDir(), "runs")
	require.NoError(t, os.WriteFile(countersFile, make([]byte, 4*n), 0o600))
	runs, err := relMapCounters(countersFile)
	require.NoError(t, err)
	p, _ := newPool(t, relCfg(procpool.Config{
		Workers: workers, OnCrash: procpool.Respawn, Retries: 3,
		MaxConsecutiveDeaths: 1 << 30, // the chaos is the test, not a crash loop
		Logger:               relTailLogger(logs),
		Env:                  []string{"PROCPOOL_TEST_RUNS=" + countersFile},
	}))
	interval = relChaosEvery(interval, started, workers)
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
	retriedBefore, rerunsBefore := 0, 0
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
		// Every run beyond a call's first is a retry of a call that was
		// running when its worker died (one killed before its function
		// began is retried too, and runs once).
		retried := p.Stats().Retried
		for i := range runs {
			tally.reruns += max(int(atomic.SwapUint32(&runs[i], 0))-1, 0)
		}
		require.LessOrEqual(t, tally.reruns-rerunsBefore, retried-retriedBefore, "calls run more than once, round %d", round)
		retriedBefore, rerunsBefore = retried, tally.reruns
		if tally.unexpected > 0 || tally.misplaced > 0 || tally.duplicated > 0 {
			break
		}
	}
	close(stop)
	chaos.Wait()
	took := time.Since(start)
	// The pool is whole again once the chaos stops, and has counted the
	// last deaths.
	require.Eventually(t, func() bool { return len(p.Workers()) == workers && p.Stats().Deaths >= int(kills.Load()) },
		10*time.Second, 5*time.Millisecond)
	st := p.Stats()
	t.Logf("chaos soak: %d items in %d rounds %v, %s, %d kills (one every %s), %d deaths, %d calls retried, "+
		"%d ok, %d lost in Imap rounds, %d Maps that ended with a lost call, %d lost per Stats, %d duplicated, %d misplaced, %d run more than once (each a retry), %d unexpected errors",
		tally.items, rounds["Imap"]+rounds["Map"]+rounds["ImapUnordered"], rounds, took.Round(time.Millisecond), kills.Load(), interval, st.Deaths, st.Retried,
		tally.ok, tally.lost, tally.mapsLost, st.Lost, tally.duplicated, tally.misplaced, tally.reruns, tally.unexpected)
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
	reruns                                                       int // runs of a call beyond its first
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
