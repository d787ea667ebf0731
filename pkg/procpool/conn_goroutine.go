package procpool

import (
	"errors"
	"os"
	"sync"

	"github.com/procpool/procpool/internal/wire"
	"github.com/procpool/procpool/worker"
)

// goroutineConn is a worker of the Goroutines backend: a goroutine of this
// program that runs the posted batches through the same executor as a worker
// process, results passing through the codec as they would through a pipe.
// A goroutine cannot be killed: one the pool gives up on is abandoned, its
// end reported at once, and its task left to return on its own.
type goroutineConn struct {
	// Set at start and never changed.
	spec     connSpec
	ev       events
	x        *worker.Executor
	wake     chan struct{} // the goroutine has work
	stopCh   chan struct{} // closed to make it exit when idle
	stopOnce sync.Once
	release  sync.Once // its share of the pool's WaitGroup
	exitOnce sync.Once

	outMu sync.Mutex // guards out
	out   []*batch   // posted, not yet run

	res [1]wire.Result // deliver's, which only the goroutine calls

	mu        sync.Mutex // guards abandoned
	abandoned bool
}

func newGoroutineConn(s connSpec) *goroutineConn {
	return &goroutineConn{
		spec:   s,
		x:      worker.NewExecutor(&s.setup), // same clock: no Setup.Clock
		wake:   make(chan struct{}, 1),
		stopCh: make(chan struct{}),
	}
}

// serve starts the goroutine, which reports to ev.
func (c *goroutineConn) serve(ev events) {
	c.ev = ev
	c.spec.pool.wg.Add(1)
	go c.run()
}

func (c *goroutineConn) pid() int                     { return os.Getpid() }
func (c *goroutineConn) rss() int64                   { return -1 }          // the program's own: not the worker's to answer for
func (c *goroutineConn) running() (uint64, int, bool) { return 0, 0, false } // no journal: nothing kills a goroutine's call midway
func (c *goroutineConn) sendNow()                     {}
func (c *goroutineConn) stop()                        { c.stopOnce.Do(func() { close(c.stopCh) }) }
func (c *goroutineConn) kill(why string)              { c.abandon(why) }
func (c *goroutineConn) terminate(why string)         { c.abandon(why) }

func (c *goroutineConn) post(b *batch) {
	c.x.Queue(b.id) // a Cancel before it starts is kept for it
	c.outMu.Lock()
	c.out = append(c.out, b)
	c.outMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *goroutineConn) cancel(id uint64, whole bool) { c.x.Cancel(id, whole) }

// errAbandoned ends a run whose goroutine the pool has given up on.
var errAbandoned = errors.New("abandoned")

// run is the goroutine's life: the initializer, then the posted batches,
// until it is stopped or abandoned.
func (c *goroutineConn) run() {
	defer c.release.Do(c.spec.pool.wg.Done)
	if c.spec.setup.InitTask != "" {
		it := c.x.Init(c.spec.setup.InitTask, c.spec.setup.InitArg)
		if err := initError(c.spec.initTask, &it); err != nil {
			c.exit(endInitFailed, "", err)
			return
		}
	}
	c.ev.ready(os.Getpid())
	var runs []*batch
	for {
		select {
		case <-c.wake:
		case <-c.stopCh:
			c.exit(endExited, "", nil)
			return
		}
		for {
			c.outMu.Lock()
			runs, c.out = c.out, runs[:0]
			c.outMu.Unlock()
			if len(runs) == 0 {
				break
			}
			for _, b := range runs {
				if c.x.Execute(&wire.Run{ID: b.id, Task: b.task, Args: b.args, Deadline: b.deadline}, c.deliver) != nil {
					return // abandoned: the pool has moved on
				}
			}
			clear(runs)
		}
	}
}

// deliver hands a Result to the scheduler as it would come from a pipe,
// with the values copied out of the executor's arena, which it reuses.
func (c *goroutineConn) deliver(res *wire.Result, _ bool) error {
	vals, fails := res.Values.Clone(), []wire.Fail(nil)
	if res.Items != nil {
		vals, fails = wire.Pack(res.Items)
	}
	c.res[0] = wire.Result{ID: res.ID, More: res.More, Took: res.Took, Values: vals, Fails: fails}
	err := c.ev.results(c.res[:])
	c.res[0] = wire.Result{}
	if err != nil {
		return errAbandoned
	}
	return nil
}

// abandon detaches a goroutine that will not stop: its end is reported now
// and the pool no longer waits for it. It may be called under the pool's lock.
func (c *goroutineConn) abandon(why string) {
	c.mu.Lock()
	first := !c.abandoned
	c.abandoned = true
	c.mu.Unlock()
	if first {
		c.stop() // an idle loop exits; a busy one when its task returns
		wg := &c.spec.pool.wg
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.exit(endKilled, why, nil)
		}()
	}
}

// exit reports the end of the goroutine, once.
func (c *goroutineConn) exit(cause endCause, why string, initErr error) {
	c.exitOnce.Do(func() {
		e := &WorkerExitError{PID: os.Getpid(), Err: initErr}
		switch cause {
		case endInitFailed:
			e.Reason = initErr.Error()
		case endKilled:
			e.ExitCode = -1
			e.Reason = "goroutine left running: " + why
		}
		c.ev.ended(e, cause, nil)
		c.release.Do(c.spec.pool.wg.Done)
	})
}
